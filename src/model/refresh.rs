//! An EndpointSlice change without a rebuild: the backends of the Services whose slices
//! changed get their endpoints anew, computed exactly as a full build computes them
//! ([`super::endpoints::resolution`]); the table, its routes and policies stay. This is the
//! most frequent change in a cluster (every pod start, stop and readiness flip).

use super::build::Built;
use super::endpoints::{Backend, PortRef, Resolution, ServiceIndex, ServiceRef, resolution};
use super::slice::EndpointSlice;
use k8s_openapi::api::core::v1::Service;
use std::sync::Arc;

/// The new endpoints of every backend of `built` whose Service (namespace, name) is in
/// `touched`, from those Services' objects alone (`services` and `slices` need hold only
/// them). Only backends whose endpoints differ are listed, each with what it had. `None`: a
/// touched Service no longer resolves the way it did, which only a full build can say.
pub fn refresh_endpoints(
    built: &Built,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    touched: &[(String, String)],
) -> Option<Vec<Refreshed>> {
    let index = ServiceIndex::new(services, slices);
    let mut out = Vec::new();
    for (namespace, name) in touched {
        let Some(service) = services.iter().find(|s| {
            s.metadata.namespace.as_ref() == Some(namespace)
                && s.metadata.name.as_ref() == Some(name)
        }) else {
            // Gone: a Service change, for a full build (no backend can have endpoints).
            continue;
        };
        let ports = service.spec.iter().flat_map(|s| s.ports.iter().flatten());
        for port in ports {
            let named = port
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .map(PortRef::Name);
            for by in std::iter::once(PortRef::Number(port.port)).chain(named) {
                let key = ServiceRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    port: by,
                };
                let Some(backends) = built.backends.get(&key) else {
                    continue;
                };
                let fresh = resolution(&index, &key).ok()?;
                for b in backends {
                    let before = b.resolved_full();
                    if *before != fresh {
                        out.push(Refreshed {
                            service: key.clone(),
                            backend: b.clone(),
                            before,
                            after: fresh.clone(),
                        });
                    }
                }
            }
        }
    }
    Some(out)
}

/// One backend's endpoints, before and after.
pub struct Refreshed {
    pub service: ServiceRef,
    pub backend: Arc<Backend>,
    pub before: Arc<Resolution>,
    pub after: Resolution,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{ingress, service, slice};
    use crate::model::{Options, Snapshot, build};
    use proptest::prelude::*;

    const SERVICES: usize = 3;

    /// One change to the EndpointSlices: (service, slice, endpoints as (last octet, ready),
    /// or `None` to delete the slice).
    /// Conditions: 0 unset, 1 ready, 2 not ready, 3 terminating but serving.
    type Change = (usize, usize, Option<Vec<(u8, u8)>>);

    fn change() -> impl Strategy<Value = Change> {
        let endpoint = (1u8..6, 0..4u8);
        (
            0..SERVICES,
            0..2usize,
            proptest::option::of(proptest::collection::vec(endpoint, 0..4)),
        )
    }

    /// The base objects: an Ingress per Service (host s{i}.test), each Service with port
    /// `http`.
    fn base() -> Snapshot {
        let mut s = Snapshot::default();
        for i in 0..SERVICES {
            s.push(
                ingress(&format!("shop/web{i}"))
                    .host(&format!("s{i}.test"))
                    .prefix("/", &format!("svc{i}"), "http")
                    .build(),
            );
            s.push(service(&format!("shop/svc{i}")).port("http", 80).build());
        }
        s
    }

    fn with_slices(slices: &[Option<EndpointSlice>]) -> Snapshot {
        let mut s = base();
        for sl in slices.iter().flatten() {
            s.push(sl.clone());
        }
        s.sorted()
    }

    /// What each host's backend resolves to.
    fn resolved(built: &Built) -> Vec<Resolution> {
        (0..SERVICES)
            .map(|i| {
                let route = built.table.lookup(&format!("s{i}.test"), "/").unwrap();
                (**route.backend().resolved()).clone()
            })
            .collect()
    }

    proptest! {
        /// Any sequence of EndpointSlice changes, applied one at a time to the first build
        /// by `refresh_endpoints`, gives the backends a full build of the same objects gives.
        #[test]
        fn refreshing_equals_a_full_build(changes in proptest::collection::vec(change(), 1..12)) {
            let options = Options::default();
            let mut slices: Vec<Option<EndpointSlice>> = vec![None; SERVICES * 2];
            let incremental = build(&with_slices(&slices), &options);
            for (svc, which, endpoints) in changes {
                slices[svc * 2 + which] = endpoints.map(|list| {
                    let mut b = slice(&format!("shop/svc{svc}-{which}"), &format!("svc{svc}")).port("http", 8080);
                    for (octet, conditions) in list {
                        let address = format!("10.0.{svc}.{octet}");
                        b = match conditions {
                            0 => b.endpoint(&address, None, None, None),
                            1 => b.ready(&address),
                            2 => b.not_ready(&address),
                            _ => b.terminating(&address),
                        };
                    }
                    b.build()
                });
                let next = with_slices(&slices);
                let touched = [("shop".to_owned(), format!("svc{svc}"))];
                let updates = refresh_endpoints(
                    &incremental,
                    &next.services,
                    &next.endpoint_slices,
                    &touched,
                )
                .expect("the Service still resolves");
                for u in updates {
                    u.backend.publish(u.after);
                }
                let full = build(&next, &options);
                prop_assert_eq!(resolved(&incremental), resolved(&full));
            }
        }
    }
}
