//! An EndpointSlice as the model keeps it: what reading it the way kube-proxy does needs
//! (the Service it belongs to, the address type, the ports, each endpoint's addresses and
//! conditions) and nothing else of the API object.
//!
//! Both sources convert on arrival. The API type is large for what routing reads: each
//! endpoint is 352 bytes of struct (pod reference, node, zone, hints), and the one label that
//! names the Service costs a 540-byte map node; at 100k Services that was 1.2 KB an app.

use k8s_openapi::api::discovery::v1 as api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// The API object's metadata without its labels (the one read is [`Self::service`]).
    pub metadata: ObjectMeta,
    /// The Service its `kubernetes.io/service-name` label names, if any.
    pub service: Option<String>,
    /// `IPv4`, `IPv6` or `FQDN` (anything else makes the slice unusable).
    pub address_type: String,
    pub ports: Box<[SlicePort]>,
    pub endpoints: Box<[SliceEndpoint]>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlicePort {
    /// `None` for the unnamed port.
    pub name: Option<String>,
    pub port: Option<i32>,
}

/// One endpoint; an unset condition keeps its API meaning (ready and serving unless said
/// otherwise, not terminating).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SliceEndpoint {
    pub addresses: Box<[String]>,
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

impl From<api::EndpointSlice> for EndpointSlice {
    fn from(slice: api::EndpointSlice) -> Self {
        let mut metadata = slice.metadata;
        let service = metadata
            .labels
            .take()
            .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL));
        let ports = slice
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| SlicePort {
                name: p.name,
                port: p.port,
            });
        let endpoints = slice.endpoints.unwrap_or_default().into_iter().map(|e| {
            let conditions = e.conditions.unwrap_or_default();
            SliceEndpoint {
                addresses: e.addresses.into_boxed_slice(),
                ready: conditions.ready,
                serving: conditions.serving,
                terminating: conditions.terminating,
            }
        });
        EndpointSlice {
            metadata,
            service,
            address_type: slice.address_type,
            ports: ports.collect(),
            endpoints: endpoints.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_service_the_ports_and_each_endpoints_addresses_and_conditions() {
        let api: api::EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n",
                         "labels": {"kubernetes.io/service-name": "web", "app": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9090}],
            "endpoints": [
                {"addresses": ["10.0.0.1", "10.0.0.9"], "conditions": {"ready": true, "terminating": false},
                 "nodeName": "n1", "zone": "z", "targetRef": {"kind": "Pod", "name": "p1"}},
                {"addresses": ["10.0.0.2"]}
            ]
        }))
        .unwrap();
        let slice = EndpointSlice::from(api);
        assert_eq!(slice.metadata.name.as_deref(), Some("s"));
        assert_eq!(slice.metadata.namespace.as_deref(), Some("n"));
        assert_eq!(slice.metadata.labels, None);
        assert_eq!(slice.service.as_deref(), Some("web"));
        assert_eq!(slice.address_type, "IPv4");
        let ports: Vec<_> = slice
            .ports
            .iter()
            .map(|p| (p.name.as_deref(), p.port))
            .collect();
        assert_eq!(ports, [(Some("http"), Some(8080)), (None, Some(9090))]);
        assert_eq!(
            &*slice.endpoints,
            [
                SliceEndpoint {
                    addresses: ["10.0.0.1".to_owned(), "10.0.0.9".to_owned()].into(),
                    ready: Some(true),
                    serving: None,
                    terminating: Some(false),
                },
                SliceEndpoint {
                    addresses: ["10.0.0.2".to_owned()].into(),
                    ..SliceEndpoint::default()
                },
            ]
        );
    }

    #[test]
    fn a_slice_without_the_label_belongs_to_no_service() {
        let api: api::EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n", "labels": {"app": "web"}},
            "addressType": "IPv4",
        }))
        .unwrap();
        let slice = EndpointSlice::from(api);
        assert_eq!(slice.service, None);
        assert!(slice.ports.is_empty() && slice.endpoints.is_empty());
    }
}
