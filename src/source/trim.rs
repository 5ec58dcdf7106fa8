//! What both sources drop from an object before they keep it: the fields routing never reads
//! (managedFields, kubectl's last-applied copy of the whole object, an EndpointSlice's labels
//! but the one naming its Service, an endpoint's pod, node, zone and hints) and the spare
//! room of its lists. A list read from JSON grows to four
//! slots, so two endpoints of 352 bytes each took 1.4 KB; at 100k apps the spare room alone
//! was 1.6 KB per app.

use crate::model::Object;
use crate::model::endpoints::SERVICE_NAME_LABEL;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Resource;
use std::sync::Arc;

/// Any object: its metadata only.
pub fn meta<K: Resource>(o: &mut K) {
    let meta = o.meta_mut();
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

pub fn endpoint_slice(slice: &mut EndpointSlice) {
    meta(slice);
    // The controller copies the Service's labels onto its slices; only this one is read.
    if let Some(labels) = slice.metadata.labels.as_mut() {
        labels.retain(|k, _| k == SERVICE_NAME_LABEL);
    }
    for e in slice.endpoints.iter_mut().flatten() {
        e.target_ref = None;
        e.node_name = None;
        e.zone = None;
        e.hints = None;
        e.deprecated_topology = None;
        e.addresses.shrink_to_fit();
    }
    if let Some(endpoints) = slice.endpoints.as_mut() {
        endpoints.shrink_to_fit();
    }
    if let Some(ports) = slice.ports.as_mut() {
        ports.shrink_to_fit();
    }
}

/// An object as a source holds it: trimmed in place when no one else holds it yet.
pub fn object(o: &mut Object) {
    match o {
        Object::Ingress(i) => ingress(Arc::make_mut(i)),
        Object::Service(s) => service(Arc::make_mut(s)),
        Object::EndpointSlice(s) => endpoint_slice(Arc::make_mut(s)),
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
    fn an_endpoint_slice_keeps_what_routing_reads_and_no_spare_room() {
        let mut slice: EndpointSlice = read(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n", "managedFields": [{"manager": "k"}],
                         "labels": {"kubernetes.io/service-name": "web", "app": "web",
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "nodeName": "n1", "zone": "z",
                 "targetRef": {"kind": "Pod", "name": "p1"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}}
            ]
        }));
        endpoint_slice(&mut slice);
        assert_eq!(slice.metadata.managed_fields, None);
        let annotations = slice.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["keep"]);
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            ["kubernetes.io/service-name"]
        );
        let endpoints = slice.endpoints.as_ref().unwrap();
        assert_eq!(endpoints.capacity(), 2);
        assert_eq!(endpoints[0].addresses, ["10.0.0.1"]);
        assert_eq!(endpoints[0].conditions.as_ref().unwrap().ready, Some(true));
        assert_eq!(endpoints[0].target_ref, None);
        assert_eq!(endpoints[0].node_name, None);
        assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
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
