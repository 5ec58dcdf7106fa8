//! The apps the scale and memory benches make: each an Ingress (its own host, two paths), a
//! Service and an EndpointSlice with two endpoints.

use serde_json::{Value, json};

pub fn ingress(i: usize, host: &str) -> Value {
    let paths: Vec<Value> = ["/", "/api"]
        .iter()
        .map(|p| json!({"path": p, "pathType": "Prefix", "backend": {"service": {"name": format!("app{i}"), "port": {"name": "http"}}}}))
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": format!("app{i}"), "namespace": format!("ns{}", i % 100)},
           "spec": {"ingressClassName": "vestibule", "rules": [{"host": host, "http": {"paths": paths}}]}})
}

pub fn service(i: usize, port_name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": format!("app{i}"), "namespace": format!("ns{}", i % 100)},
           "spec": {"ports": [{"name": port_name, "port": 80}]}})
}

pub fn slice(i: usize, port: u16) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("app{i}-x1"), "namespace": format!("ns{}", i % 100),
                        "labels": {"kubernetes.io/service-name": format!("app{i}")}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
           "endpoints": [{"addresses": ["127.0.0.1"]}, {"addresses": ["127.0.0.2"]}]})
}

pub fn host(i: usize) -> String {
    format!("app{i}.scale.test")
}

pub fn class() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "vestibule"}, "spec": {"controller": "vestibule.dev/ingress-controller"}})
}
