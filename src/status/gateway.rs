//! Gateway API status, as the model decided it (`Built::gateway`): GatewayClass `Accepted`
//! and `supportedFeatures`; Gateway `Accepted`, `Programmed`, `addresses` (the published
//! ones) and each listener's conditions and `attachedRoutes`; HTTPRoute `status.parents[]`
//! for our Gateways, other controllers' entries kept. Each write replaces the object as last
//! seen (its resourceVersion checked); a condition keeps its `lastTransitionTime` while its
//! status stays, and carries the generation it was computed for.

use crate::model::gateway::{
    ClassState, GROUP, GatewayState, ParentState, RouteState, SUPPORTED_FEATURES, StatusCondition,
};
use crate::source::kube::Stores;
use crate::state::Shared;
use gateway_api::gatewayclasses::{
    GatewayClass, GatewayClassStatus, GatewayClassStatusSupportedFeatures,
};
use gateway_api::gateways::{
    Gateway, GatewayStatus, GatewayStatusAddresses, GatewayStatusListeners,
    GatewayStatusListenersSupportedKinds,
};
use gateway_api::httproutes::{
    HttpRoute, HttpRouteStatus, HttpRouteStatusParents, HttpRouteStatusParentsParentRef,
};
use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::PostParams;
use kube::{Api, Client};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Brings the status of every Gateway API object of ours in line with the published table.
pub async fn reconcile(
    client: &Client,
    stores: &Stores,
    shared: &Shared,
    controller: &str,
    addresses: &[IngressLoadBalancerIngress],
) {
    let status = shared.peek().built.gateway.clone();
    let snapshot = stores.gateway_objects();
    for class in &status.classes {
        let Some(current) = snapshot
            .gateway_classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(class.name.as_str()))
        else {
            continue;
        };
        let wanted = class_status(class, current.status.as_ref());
        if current.status.as_ref() != Some(&wanted) {
            let mut updated = (**current).clone();
            updated.status = Some(wanted);
            write(
                Api::<GatewayClass>::all(client.clone()),
                &class.name,
                &updated,
            )
            .await;
        }
    }
    for gateway in &status.gateways {
        let Some(current) = snapshot.gateways.iter().find(|g| {
            g.metadata.name.as_deref() == Some(gateway.object.name.as_str())
                && g.metadata.namespace.as_deref() == Some(gateway.object.namespace.as_str())
        }) else {
            continue;
        };
        let wanted = gateway_status(gateway, current.status.as_ref(), addresses);
        if current.status.as_ref() != Some(&wanted) {
            let mut updated = (**current).clone();
            updated.status = Some(wanted);
            let api = Api::<Gateway>::namespaced(client.clone(), &gateway.object.namespace);
            write(api, &gateway.object.name, &updated).await;
        }
    }
    for route in &snapshot.http_routes {
        let ns = route.metadata.namespace.as_deref().unwrap_or("default");
        let name = route.metadata.name.as_deref().unwrap_or_default();
        let ours = status.route(ns, name);
        let current = route.status.as_ref();
        let had_ours =
            current.is_some_and(|s| s.parents.iter().any(|p| p.controller_name == controller));
        if ours.is_none() && !had_ours {
            continue;
        }
        let wanted = route_status(ours, controller, current);
        if current != Some(&wanted) {
            let mut updated = (**route).clone();
            updated.status = Some(wanted);
            write(
                Api::<HttpRoute>::namespaced(client.clone(), ns),
                name,
                &updated,
            )
            .await;
        }
    }
}

async fn write<K>(api: Api<K>, name: &str, object: &K)
where
    K: Clone + DeserializeOwned + Serialize + Debug + kube::Resource<DynamicType = ()>,
{
    let kind = K::kind(&()).into_owned();
    match api
        .replace_status(name, &PostParams::default(), object)
        .await
    {
        Ok(_) => tracing::info!(kind, name, "wrote status"),
        // A concurrent change (409) or a deleted object: the next round sees the new state.
        Err(e) => tracing::warn!(kind, name, error = %e, "could not write status"),
    }
}

/// The model's conditions as API conditions: the generation they are for, and the time of
/// the last change of each one's status kept from `current`.
fn conditions(
    wanted: &[StatusCondition],
    generation: Option<i64>,
    current: Option<&[Condition]>,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let same = current.into_iter().flatten().find(|c| c.type_ == w.type_);
            let since = same
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(now);
            Condition {
                type_: w.type_.to_owned(),
                status: status.to_owned(),
                reason: w.reason.to_owned(),
                message: w.message.chars().take(32_768).collect(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

fn now() -> Time {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time(
        k8s_openapi::jiff::Timestamp::from_second(since.as_secs() as i64)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

fn class_status(class: &ClassState, current: Option<&GatewayClassStatus>) -> GatewayClassStatus {
    let existing = current.and_then(|c| c.conditions.as_deref());
    GatewayClassStatus {
        conditions: Some(conditions(&class.conditions, class.generation, existing)),
        supported_features: Some(
            SUPPORTED_FEATURES
                .iter()
                .map(|f| GatewayClassStatusSupportedFeatures {
                    name: (*f).to_owned(),
                })
                .collect(),
        ),
    }
}

fn gateway_status(
    gateway: &GatewayState,
    current: Option<&GatewayStatus>,
    addresses: &[IngressLoadBalancerIngress],
) -> GatewayStatus {
    let mut wanted = gateway.conditions.clone();
    // Programmed needs an address to be reached at.
    if addresses.is_empty()
        && let Some(p) = wanted
            .iter_mut()
            .find(|c| c.type_ == "Programmed" && c.status)
    {
        *p = StatusCondition {
            type_: "Programmed",
            status: false,
            reason: "AddressNotAssigned",
            message: "no address is published yet (--publish-service or --publish-status-address)"
                .to_owned(),
        };
    }
    let existing = current.and_then(|c| c.conditions.as_deref());
    let listeners = gateway
        .listeners
        .iter()
        .map(|l| {
            let before = current
                .and_then(|c| c.listeners.as_ref())
                .and_then(|ls| ls.iter().find(|x| x.name == l.name))
                .map(|x| x.conditions.as_slice());
            GatewayStatusListeners {
                attached_routes: l.attached_routes,
                conditions: conditions(&l.conditions, gateway.generation, before),
                name: l.name.clone(),
                supported_kinds: Some(
                    l.supported_kinds
                        .iter()
                        .map(|k| GatewayStatusListenersSupportedKinds {
                            group: Some(GROUP.to_owned()),
                            kind: (*k).to_owned(),
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    GatewayStatus {
        addresses: (!addresses.is_empty()).then(|| {
            addresses
                .iter()
                .filter_map(|a| match (&a.ip, &a.hostname) {
                    (Some(ip), _) => Some(GatewayStatusAddresses {
                        r#type: Some("IPAddress".to_owned()),
                        value: ip.clone(),
                    }),
                    (None, Some(h)) => Some(GatewayStatusAddresses {
                        r#type: Some("Hostname".to_owned()),
                        value: h.clone(),
                    }),
                    (None, None) => None,
                })
                .collect()
        }),
        attached_listener_sets: current.and_then(|c| c.attached_listener_sets),
        conditions: Some(conditions(&wanted, gateway.generation, existing)),
        listeners: Some(listeners),
    }
}

/// Other controllers' parents as they were, then ours as the model says.
fn route_status(
    ours: Option<&RouteState>,
    controller: &str,
    current: Option<&HttpRouteStatus>,
) -> HttpRouteStatus {
    let mut parents: Vec<HttpRouteStatusParents> = current
        .map(|c| {
            c.parents
                .iter()
                .filter(|p| p.controller_name != controller)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for p in ours.map(|r| r.parents.as_slice()).unwrap_or_default() {
        let before = current
            .into_iter()
            .flat_map(|c| c.parents.iter())
            .find(|x| x.controller_name == controller && same_parent(&x.parent_ref, p))
            .map(|x| x.conditions.as_slice());
        let generation = ours.and_then(|r| r.generation);
        parents.push(HttpRouteStatusParents {
            conditions: conditions(&p.conditions, generation, before),
            controller_name: controller.to_owned(),
            parent_ref: HttpRouteStatusParentsParentRef {
                group: Some(GROUP.to_owned()),
                kind: Some("Gateway".to_owned()),
                name: p.gateway.name.clone(),
                namespace: Some(p.gateway.namespace.clone()),
                port: p.port,
                section_name: p.section_name.clone(),
            },
        });
    }
    HttpRouteStatus { parents }
}

fn same_parent(r: &HttpRouteStatusParentsParentRef, p: &ParentState) -> bool {
    r.name == p.gateway.name
        && r.namespace.as_deref() == Some(p.gateway.namespace.as_str())
        && r.section_name == p.section_name
        && r.port == p.port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(status: bool, reason: &'static str) -> StatusCondition {
        StatusCondition {
            type_: "Accepted",
            status,
            reason,
            message: "m".to_owned(),
        }
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let then = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let before = vec![Condition {
            type_: "Accepted".to_owned(),
            status: "True".to_owned(),
            reason: "Accepted".to_owned(),
            message: "old".to_owned(),
            observed_generation: Some(1),
            last_transition_time: then.clone(),
        }];
        // Same status, new generation and reason: the time stays, the rest follows.
        let same = conditions(&[wanted(true, "ListenersNotValid")], Some(2), Some(&before));
        assert_eq!(same[0].last_transition_time, then);
        assert_eq!(
            (same[0].observed_generation, same[0].reason.as_str()),
            (Some(2), "ListenersNotValid")
        );
        // The status flips: a new time.
        let flipped = conditions(&[wanted(false, "Invalid")], Some(2), Some(&before));
        assert_ne!(flipped[0].last_transition_time, then);
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn other_controllers_parents_are_kept_and_ours_replaced() {
        let theirs = HttpRouteStatusParents {
            conditions: Vec::new(),
            controller_name: "example.com/mesh".to_owned(),
            parent_ref: HttpRouteStatusParentsParentRef {
                name: "mesh".to_owned(),
                ..Default::default()
            },
        };
        let stale = HttpRouteStatusParents {
            controller_name: "ours".to_owned(),
            parent_ref: HttpRouteStatusParentsParentRef {
                name: "gone".to_owned(),
                ..Default::default()
            },
            ..theirs.clone()
        };
        let current = HttpRouteStatus {
            parents: vec![theirs.clone(), stale],
        };
        let route = RouteState {
            object: crate::model::ObjectRef {
                kind: "HTTPRoute",
                namespace: "ns".to_owned(),
                name: "r".to_owned(),
            },
            generation: Some(4),
            parents: vec![ParentState {
                gateway: crate::model::ObjectRef {
                    kind: "Gateway",
                    namespace: "infra".to_owned(),
                    name: "edge".to_owned(),
                },
                section_name: Some("http".to_owned()),
                port: None,
                conditions: vec![wanted(true, "Accepted")],
            }],
        };
        let out = route_status(Some(&route), "ours", Some(&current));
        assert_eq!(out.parents.len(), 2);
        assert_eq!(out.parents[0], theirs);
        let ours = &out.parents[1];
        assert_eq!(ours.parent_ref.name, "edge");
        assert_eq!(ours.parent_ref.namespace.as_deref(), Some("infra"));
        assert_eq!(ours.parent_ref.kind.as_deref(), Some("Gateway"));
        assert_eq!(ours.conditions[0].observed_generation, Some(4));
        // No longer ours at all: only theirs remains.
        assert_eq!(
            route_status(None, "ours", Some(&current)).parents,
            vec![theirs]
        );
    }
}
