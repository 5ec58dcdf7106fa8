//! What both sources drop from an object before they keep it: the fields routing never reads
//! (managedFields, kubectl's last-applied copy of the whole object) and the spare room of
//! its lists. A list read from JSON grows to four slots: at 100k apps the spare room alone
//! was 1.6 KB per app. EndpointSlices are kept in the model's own, smaller form
//! ([`crate::model::EndpointSlice`]), converted on arrival.

use crate::model::{EndpointSlice, Object};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use std::sync::Arc;

/// Any object: its metadata only.
pub fn meta<K: Resource>(o: &mut K) {
    metadata(o.meta_mut());
}

fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if let Some(owners) = meta.owner_references.as_mut() {
        owners.shrink_to_fit();
    }
}

pub fn ingress(ingress: &mut Ingress) {
    meta(ingress);
    let Some(spec) = ingress.spec.as_mut() else {
        return;
    };
    for rule in spec.rules.iter_mut().flatten() {
        if let Some(http) = rule.http.as_mut() {
            http.paths.shrink_to_fit();
        }
    }
    if let Some(rules) = spec.rules.as_mut() {
        rules.shrink_to_fit();
    }
    for tls in spec.tls.iter_mut().flatten() {
        if let Some(hosts) = tls.hosts.as_mut() {
            hosts.shrink_to_fit();
        }
    }
    if let Some(tls) = spec.tls.as_mut() {
        tls.shrink_to_fit();
    }
}

pub fn service(service: &mut Service) {
    meta(service);
    let Some(spec) = service.spec.as_mut() else {
        return;
    };
    let lists = [
        &mut spec.cluster_ips,
        &mut spec.external_ips,
        &mut spec.ip_families,
        &mut spec.load_balancer_source_ranges,
    ];
    for list in lists.into_iter().flatten() {
        list.shrink_to_fit();
    }
    if let Some(ports) = spec.ports.as_mut() {
        ports.shrink_to_fit();
    }
}

/// An EndpointSlice from the API server as the model keeps it.
pub fn endpoint_slice(slice: k8s_openapi::api::discovery::v1::EndpointSlice) -> EndpointSlice {
    let mut slice = EndpointSlice::from(slice);
    metadata(&mut slice.metadata);
    slice
}

/// An object as a source holds it: trimmed in place when no one else holds it yet.
pub fn object(o: &mut Object) {
    match o {
        Object::Ingress(i) => ingress(Arc::make_mut(i)),
        Object::Service(s) => service(Arc::make_mut(s)),
        Object::EndpointSlice(s) => metadata(&mut Arc::make_mut(s).metadata),
        Object::IngressClass(o) => meta(Arc::make_mut(o)),
        Object::Secret(o) => meta(Arc::make_mut(o)),
        Object::ConfigMap(o) => meta(Arc::make_mut(o)),
        Object::Namespace(o) => meta(Arc::make_mut(o)),
        Object::GatewayClass(o) => meta(Arc::make_mut(o)),
        Object::Gateway(o) => meta(Arc::make_mut(o)),
        Object::HttpRoute(o) => meta(Arc::make_mut(o)),
        Object::ReferenceGrant(o) => meta(Arc::make_mut(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from text, as both sources do: lists grow as they are read (a `Value` would
    /// size them exactly).
    fn read<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn an_endpoint_slice_keeps_what_routing_reads() {
        let slice: k8s_openapi::api::discovery::v1::EndpointSlice = read(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n", "managedFields": [{"manager": "k"}],
                         "labels": {"kubernetes.io/service-name": "web", "app": "web"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "nodeName": "n1"}]
        }));
        let mut o = Object::from(slice);
        object(&mut o);
        let Object::EndpointSlice(slice) = o else {
            panic!("not a slice")
        };
        assert_eq!(slice.metadata.managed_fields, None);
        let annotations = slice.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["keep"]);
        assert_eq!(slice.service.as_deref(), Some("web"));
        assert_eq!(&*slice.endpoints[0].addresses, ["10.0.0.1"]);
        assert_eq!(slice.ports[0].port, Some(8080));
    }

    #[test]
    fn an_ingress_and_a_service_keep_every_rule_and_port() {
        let mut ingress: Ingress = read(serde_json::json!({
            "metadata": {"name": "i", "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
            "spec": {"rules": [{"host": "a", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                {"path": "/b", "pathType": "Exact", "backend": {"service": {"name": "s", "port": {"number": 80}}}}
            ]}}], "tls": [{"hosts": ["a"], "secretName": "t"}]}
        }));
        let before = ingress.clone();
        super::ingress(&mut ingress);
        assert_eq!(ingress, before);
        let paths = &ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
            .http
            .as_ref()
            .unwrap()
            .paths;
        assert_eq!(paths.capacity(), 2);
        let mut svc: Service = read(serde_json::json!({
            "metadata": {"name": "s"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }));
        let before = svc.clone();
        service(&mut svc);
        assert_eq!(svc, before);
        assert_eq!(
            svc.spec
                .as_ref()
                .unwrap()
                .ports
                .as_ref()
                .unwrap()
                .capacity(),
            1
        );
    }
}
