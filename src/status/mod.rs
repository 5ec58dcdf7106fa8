//! Status, written by the one replica that holds a coordination.k8s.io/v1 Lease (every
//! replica serves traffic): Ingress `status.loadBalancer`, the addresses clients reach
//! Vestibule at (the chart's LoadBalancer Service, or fixed addresses), here; the Gateway API
//! kinds' conditions in [`gateway`].

mod gateway;

use crate::model::ObjectRef;
use crate::source::kube::Stores;
use crate::state::Shared;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Where the addresses come from.
#[derive(Debug, Clone)]
pub enum Publish {
    /// `--publish-service ns/name`: copy that Service's `status.loadBalancer.ingress`.
    Service { namespace: String, name: String },
    /// `--publish-status-address`: these IPs or host names.
    Addresses(Vec<String>),
}

/// Leader election and status settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None`: no Ingress addresses are written (Gateway API status still is).
    pub publish: Option<Publish>,
    /// `--controller-name`, as HTTPRoute `status.parents[].controllerName`.
    pub controller_name: String,
    /// Name of the Lease.
    pub election_id: String,
    /// Namespace of the Lease: `POD_NAMESPACE`, else the client's default namespace.
    pub namespace: String,
    /// This replica: `POD_NAME`, else host name and process id.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// At shutdown, clear the addresses unless another replica takes the Lease over.
    pub update_on_shutdown: bool,
}

fn now() -> MicroTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    MicroTime(
        Timestamp::new(since.as_secs() as i64, since.subsec_nanos() as i32)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

fn seconds(t: &MicroTime) -> f64 {
    t.0.as_second() as f64 + f64::from(t.0.subsec_nanosecond()) / 1e9
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One replica's view of the Lease.
struct Elector {
    api: Api<Lease>,
    settings: Settings,
    /// When this replica last wrote the Lease as its holder.
    renewed: Option<Instant>,
}

impl Elector {
    /// Tries to acquire or renew; returns whether this replica leads now. A leader that could
    /// not renew within the renew deadline stops leading, so two replicas never both lead.
    async fn round(&mut self) -> bool {
        match self.try_round().await {
            Ok(true) => {
                self.renewed = Some(Instant::now());
                true
            }
            Ok(false) => {
                self.renewed = None;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.settings.election_id, "leader election: Lease not updated");
                self.renewed
                    .is_some_and(|t| t.elapsed() < self.settings.renew_deadline)
            }
        }
    }

    async fn try_round(&self) -> Result<bool, kube::Error> {
        let me = &self.settings.identity;
        let duration = self.settings.lease_duration.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.settings.election_id).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.election_id.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let expires = spec.renew_time.as_ref().map_or(0.0, seconds)
            + f64::from(spec.lease_duration_seconds.unwrap_or(duration));
        let expired = expires < seconds(&now());
        if holder.as_ref() != Some(me) {
            if holder.is_some() && !expired {
                return Ok(false);
            }
            spec.holder_identity = Some(me.clone());
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(duration);
        // The replace carries the resourceVersion read above: a concurrent writer makes it fail.
        match self
            .api
            .replace(&self.settings.election_id, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up so another replica can take it at once.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.election_id).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_ref() != Some(&self.settings.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        self.api
            .replace(&self.settings.election_id, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    /// Whether someone else holds the Lease now.
    async fn other_holder(&self) -> bool {
        match self.api.get_opt(&self.settings.election_id).await {
            Ok(Some(l)) => l
                .spec
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| !h.is_empty() && h != self.settings.identity),
            _ => false,
        }
    }
}

/// The addresses to publish, as Ingress status entries. The published Service is read from
/// the Service store (so no `get` permission is needed); it must be in a watched namespace.
fn addresses(
    stores: &Stores,
    publish: &Publish,
) -> Result<Vec<IngressLoadBalancerIngress>, String> {
    let entry = |a: &str| match a.parse::<IpAddr>() {
        Ok(_) => IngressLoadBalancerIngress {
            ip: Some(a.to_owned()),
            ..Default::default()
        },
        Err(_) => IngressLoadBalancerIngress {
            hostname: Some(a.to_owned()),
            ..Default::default()
        },
    };
    match publish {
        Publish::Addresses(list) => Ok(list.iter().map(|a| entry(a)).collect()),
        Publish::Service { namespace, name } => {
            let service = stores.service(namespace, name).ok_or_else(|| {
                format!(
                    "--publish-service {namespace}/{name}: no such Service among the watched ones"
                )
            })?;
            let found = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default();
            Ok(found
                .into_iter()
                .filter_map(|i| i.ip.or(i.hostname))
                .map(|a| entry(&a))
                .collect())
        }
    }
}

fn object_of(ingress: &Ingress) -> ObjectRef {
    ObjectRef {
        kind: "Ingress",
        namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
        name: ingress.metadata.name.clone().unwrap_or_default(),
    }
}

fn current(ingress: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

/// Replaces the status of `ingress` (as last seen, resourceVersion and all): a concurrent
/// change makes it fail with 409 and the next round tries again.
async fn write(
    client: &Client,
    ingress: &Ingress,
    addresses: &[IngressLoadBalancerIngress],
) -> Result<(), kube::Error> {
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let name = ingress.metadata.name.as_deref().unwrap_or_default();
    let api = Api::<Ingress>::namespaced(client.clone(), namespace);
    let mut updated = ingress.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    status
        .load_balancer
        .get_or_insert_with(Default::default)
        .ingress = (!addresses.is_empty()).then(|| addresses.to_vec());
    api.replace_status(name, &PostParams::default(), &updated)
        .await
        .map(|_| ())
}

/// Brings every Ingress's status in line: ours get `desired`, those that stopped being ours
/// (and that this controller wrote before) get theirs cleared.
async fn reconcile(
    client: &Client,
    stores: &Stores,
    shared: &Shared,
    desired: &[IngressLoadBalancerIngress],
    written: &mut BTreeSet<ObjectRef>,
) {
    let ours: BTreeSet<ObjectRef> = shared.peek().built.ours.keys().cloned().collect();
    for ingress in stores.ingresses() {
        let object = object_of(&ingress);
        let want: &[IngressLoadBalancerIngress] = if ours.contains(&object) {
            desired
        } else if written.contains(&object) {
            &[]
        } else {
            continue;
        };
        if current(&ingress) == want {
            if want.is_empty() {
                written.remove(&object);
            }
            continue;
        }
        match write(client, &ingress, want).await {
            Ok(()) => {
                tracing::info!(ingress = %object.key(), addresses = want.len(), "wrote Ingress status");
                if want.is_empty() {
                    written.remove(&object);
                } else {
                    written.insert(object);
                }
            }
            Err(e) => {
                tracing::warn!(ingress = %object.key(), error = %e, "could not write Ingress status")
            }
        }
    }
}

/// Runs the election and, while leading, keeps Ingress statuses right, until `stop` turns
/// true. Then releases the Lease and, with `update_on_shutdown`, clears the addresses unless
/// another replica took over.
pub async fn run(
    client: Client,
    settings: Settings,
    stores: Stores,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let api = Api::<Lease>::namespaced(client.clone(), &settings.namespace);
    let retry = settings.retry_period;
    let mut elector = Elector {
        api,
        settings,
        renewed: None,
    };
    let mut leading = false;
    let mut written = BTreeSet::new();
    loop {
        // Without --publish-* there is only Gateway API status to write: no Lease traffic
        // until a GatewayClass of ours exists.
        let needed =
            elector.settings.publish.is_some() || !shared.peek().built.gateway.classes.is_empty();
        if !needed && !leading {
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
            }
            continue;
        }
        let now_leading = elector.round().await;
        if now_leading != leading {
            tracing::info!(identity = %elector.settings.identity, lease = %elector.settings.election_id, leading = now_leading, "leader election");
            leading = now_leading;
        }
        if leading {
            let desired = match &elector.settings.publish {
                None => None,
                Some(publish) => match addresses(&stores, publish) {
                    Ok(desired) => Some(desired),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the addresses to publish");
                        None
                    }
                },
            };
            if let Some(desired) = &desired {
                reconcile(&client, &stores, &shared, desired, &mut written).await;
            }
            if stores.watches_gateway_api() {
                let controller = &elector.settings.controller_name;
                let found = desired.as_deref().unwrap_or_default();
                gateway::reconcile(&client, &stores, &shared, controller, found).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
        }
    }
    if !leading {
        return;
    }
    if let Err(e) = elector.release().await {
        tracing::warn!(error = %e, "could not release the Lease");
    }
    if elector.settings.update_on_shutdown && elector.settings.publish.is_some() {
        // Another replica that remains takes the Lease within a couple of its retry periods.
        tokio::time::sleep(retry * 2 + Duration::from_millis(500)).await;
        if !elector.other_holder().await {
            tracing::info!("no other replica took over: clearing Ingress status");
            let ours: BTreeSet<ObjectRef> = shared.peek().built.ours.keys().cloned().collect();
            for ingress in stores.ingresses() {
                let object = object_of(&ingress);
                if ours.contains(&object)
                    && !current(&ingress).is_empty()
                    && let Err(e) = write(&client, &ingress, &[]).await
                {
                    tracing::warn!(ingress = %object.key(), error = %e, "could not clear Ingress status");
                }
            }
        }
    }
}
