//! Cluster mode: kube-rs reflectors for Ingress, IngressClass, Service, EndpointSlice and TLS
//! Secret (by field selector). The stores feed the same `model::build` as file mode; each
//! change wakes the rebuild loop, which debounces.

use crate::model::Snapshot;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The reflector stores of the five kinds.
#[derive(Clone)]
pub struct Stores {
    ingresses: Store<Ingress>,
    ingress_classes: Store<IngressClass>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

impl Stores {
    /// The objects as the stores hold them now.
    pub fn snapshot(&self) -> Snapshot {
        fn all<K: Resource + Clone>(store: &Store<K>) -> Vec<K>
        where
            K::DynamicType: Eq + Hash + Clone,
        {
            store.state().iter().map(|o| (**o).clone()).collect()
        }
        Snapshot {
            ingresses: all(&self.ingresses),
            ingress_classes: all(&self.ingress_classes),
            services: all(&self.services),
            endpoint_slices: all(&self.endpoint_slices),
            secrets: all(&self.secrets),
        }
        .sorted()
    }

    /// Resolves once every reflector has listed its kind.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.ingresses.wait_until_ready().await?;
        self.ingress_classes.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.endpoint_slices.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        Ok(())
    }
}

/// Starts one reflector per kind (namespaced kinds limited to `namespace` when given). The
/// receiver yields once per burst of changes. The tasks run until aborted; a lost watch is
/// resumed or relisted by the watcher while the stores keep their last state.
pub fn watch(
    client: Client,
    namespace: Option<&str>,
) -> (Stores, mpsc::Receiver<()>, Vec<JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel(1);
    let namespaced =
        |client: &Client| -> (Api<Ingress>, Api<Service>, Api<EndpointSlice>, Api<Secret>) {
            match namespace {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                ),
            }
        };
    let (ingresses, services, slices, secrets) = namespaced(&client);
    let all = watcher::Config::default();
    let tls_only = watcher::Config::default().fields("type=kubernetes.io/tls");
    let mut tasks = Vec::new();
    let stores = Stores {
        ingresses: reflect(ingresses, all.clone(), &tx, &mut tasks),
        ingress_classes: reflect(Api::all(client), all.clone(), &tx, &mut tasks),
        services: reflect(services, all.clone(), &tx, &mut tasks),
        endpoint_slices: reflect(slices, all, &tx, &mut tasks),
        secrets: reflect(secrets, tls_only, &tx, &mut tasks),
    };
    (stores, rx, tasks)
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: &mpsc::Sender<()>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let changed = changed.clone();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let events = watcher(api, config)
        .default_backoff()
        // Nothing here reads managedFields; dropping them roughly halves what the stores hold.
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        events
            .for_each(|event| {
                match event {
                    // A full channel already holds a wake-up that will see this change.
                    Ok(_) => {
                        let _ = changed.try_send(());
                    }
                    Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying, the last state keeps serving"),
                }
                std::future::ready(())
            })
            .await
    }));
    store
}
