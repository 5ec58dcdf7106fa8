//! Chained builders for the five kinds, so that a test or benchmark reads like the YAML it
//! stands for: `ingress("default/web").host("a.example").prefix("/", "web", 80)`.
//! Public for the benches and integration tests; not part of the supported API.
#![doc(hidden)]

use super::class::{DEFAULT_CLASS_ANNOTATION, LEGACY_CLASS_ANNOTATION};
use super::endpoints::PortRef;
use super::slice::EndpointSlice as KeptSlice;
use super::slice::SERVICE_NAME_LABEL;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Secret, Service, ServicePort, ServiceSpec, TypedLocalObjectReference,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec,
    IngressRule, IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

fn meta(ns_name: &str) -> ObjectMeta {
    let (namespace, name) = match ns_name.split_once('/') {
        Some((ns, name)) => (Some(ns.to_owned()), name),
        None => (None, ns_name),
    };
    ObjectMeta {
        namespace,
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn backend(service: &str, port: impl Into<PortRef>) -> IngressBackend {
    let port = match port.into() {
        PortRef::Number(n) => ServiceBackendPort {
            number: Some(n),
            name: None,
        },
        PortRef::Name(n) => ServiceBackendPort {
            number: None,
            name: Some(n),
        },
    };
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.to_owned(),
            port: Some(port),
        }),
        resource: None,
    }
}

/// `ingress("ns/name")`: an Ingress of class `vestibule` unless told otherwise.
pub fn ingress(ns_name: &str) -> IngressBuilder {
    IngressBuilder(Ingress {
        metadata: meta(ns_name),
        spec: Some(IngressSpec {
            ingress_class_name: Some("vestibule".to_owned()),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

pub struct IngressBuilder(Ingress);

impl IngressBuilder {
    fn spec(&mut self) -> &mut IngressSpec {
        self.0.spec.get_or_insert_with(IngressSpec::default)
    }

    /// `spec.ingressClassName`.
    pub fn class(mut self, class: &str) -> Self {
        self.spec().ingress_class_name = Some(class.to_owned());
        self
    }

    /// No `spec.ingressClassName`.
    pub fn no_class(mut self) -> Self {
        self.spec().ingress_class_name = None;
        self
    }

    /// The legacy `kubernetes.io/ingress.class` annotation (and no class field).
    pub fn legacy_class(self, class: &str) -> Self {
        self.no_class().annotate(LEGACY_CLASS_ANNOTATION, class)
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// `metadata.creationTimestamp`, in seconds since the epoch.
    pub fn created(mut self, seconds: i64) -> Self {
        self.0.metadata.creation_timestamp = Timestamp::from_second(seconds).ok().map(Time);
        self
    }

    /// Starts a new rule for `host` ("" for a rule without host).
    pub fn host(mut self, host: &str) -> Self {
        let host = (!host.is_empty()).then(|| host.to_owned());
        self.spec()
            .rules
            .get_or_insert_with(Vec::new)
            .push(IngressRule {
                host,
                http: Some(HTTPIngressRuleValue { paths: Vec::new() }),
            });
        self
    }

    /// Adds a path of any type to the current rule (a host-less rule if none was started).
    pub fn path(
        mut self,
        path_type: &str,
        path: &str,
        service: &str,
        port: impl Into<PortRef>,
    ) -> Self {
        let p = HTTPIngressPath {
            path: Some(path.to_owned()),
            path_type: path_type.to_owned(),
            backend: backend(service, port),
        };
        self.push_path(p);
        self
    }

    pub fn prefix(self, path: &str, service: &str, port: impl Into<PortRef>) -> Self {
        self.path("Prefix", path, service, port)
    }

    pub fn exact(self, path: &str, service: &str, port: impl Into<PortRef>) -> Self {
        self.path("Exact", path, service, port)
    }

    pub fn implementation_specific(
        self,
        path: &str,
        service: &str,
        port: impl Into<PortRef>,
    ) -> Self {
        self.path("ImplementationSpecific", path, service, port)
    }

    /// A path whose backend is a resource, which Vestibule does not serve.
    pub fn resource_path(mut self, path: &str) -> Self {
        self.push_path(HTTPIngressPath {
            path: Some(path.to_owned()),
            path_type: "Prefix".to_owned(),
            backend: IngressBackend {
                service: None,
                resource: Some(TypedLocalObjectReference {
                    api_group: Some("k8s.example.com".to_owned()),
                    kind: "StorageBucket".to_owned(),
                    name: "static-assets".to_owned(),
                }),
            },
        });
        self
    }

    fn push_path(&mut self, p: HTTPIngressPath) {
        let rules = self.spec().rules.get_or_insert_with(Vec::new);
        if rules.is_empty() {
            rules.push(IngressRule {
                host: None,
                http: Some(HTTPIngressRuleValue { paths: Vec::new() }),
            });
        }
        if let Some(rule) = rules.last_mut() {
            rule.http
                .get_or_insert_with(|| HTTPIngressRuleValue { paths: Vec::new() })
                .paths
                .push(p);
        }
    }

    /// `spec.defaultBackend`.
    pub fn default_backend(mut self, service: &str, port: impl Into<PortRef>) -> Self {
        self.spec().default_backend = Some(backend(service, port));
        self
    }

    /// A `spec.tls` entry.
    pub fn tls(mut self, secret: &str, hosts: &[&str]) -> Self {
        self.spec()
            .tls
            .get_or_insert_with(Vec::new)
            .push(IngressTLS {
                secret_name: Some(secret.to_owned()),
                hosts: Some(hosts.iter().map(|h| (*h).to_owned()).collect()),
            });
        self
    }

    pub fn build(self) -> Ingress {
        self.0
    }
}

impl From<IngressBuilder> for super::Object {
    fn from(b: IngressBuilder) -> Self {
        super::Object::Ingress(std::sync::Arc::new(b.0))
    }
}

/// `ingress_class("name", "controller")`.
pub fn ingress_class(name: &str, controller: &str) -> IngressClassBuilder {
    IngressClassBuilder(IngressClass {
        metadata: meta(name),
        spec: Some(IngressClassSpec {
            controller: Some(controller.to_owned()),
            parameters: None,
        }),
    })
}

pub struct IngressClassBuilder(IngressClass);

impl IngressClassBuilder {
    /// Marks the class as the cluster default.
    pub fn default_class(mut self) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned());
        self
    }

    pub fn build(self) -> IngressClass {
        self.0
    }
}

impl From<IngressClassBuilder> for super::Object {
    fn from(b: IngressClassBuilder) -> Self {
        super::Object::IngressClass(std::sync::Arc::new(b.0))
    }
}

/// `service("ns/name")`: a ClusterIP Service; add ports with `.port(name, number)`.
pub fn service(ns_name: &str) -> ServiceBuilder {
    ServiceBuilder(Service {
        metadata: meta(ns_name),
        spec: Some(ServiceSpec::default()),
        ..Service::default()
    })
}

pub struct ServiceBuilder(Service);

impl ServiceBuilder {
    fn spec(&mut self) -> &mut ServiceSpec {
        self.0.spec.get_or_insert_with(ServiceSpec::default)
    }

    /// A port; `name` may be "" for the single unnamed port.
    pub fn port(mut self, name: &str, port: i32) -> Self {
        let name = (!name.is_empty()).then(|| name.to_owned());
        self.spec()
            .ports
            .get_or_insert_with(Vec::new)
            .push(ServicePort {
                name,
                port,
                // Deliberately different from the slice port: routing must not trust targetPort.
                target_port: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1),
                ),
                ..ServicePort::default()
            });
        self
    }

    /// `type: ExternalName` pointing at `host`.
    pub fn external_name(mut self, host: &str) -> Self {
        let spec = self.spec();
        spec.type_ = Some("ExternalName".to_owned());
        spec.external_name = Some(host.to_owned());
        self
    }

    pub fn build(self) -> Service {
        self.0
    }
}

impl From<ServiceBuilder> for super::Object {
    fn from(b: ServiceBuilder) -> Self {
        super::Object::Service(std::sync::Arc::new(b.0))
    }
}

/// `slice("ns/name", "service")`: an IPv4 EndpointSlice labelled for `service`.
pub fn slice(ns_name: &str, service: &str) -> SliceBuilder {
    let mut metadata = meta(ns_name);
    metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into());
    SliceBuilder(EndpointSlice {
        metadata,
        address_type: "IPv4".to_owned(),
        endpoints: Some(Vec::new()),
        ports: Some(Vec::new()),
    })
}

pub struct SliceBuilder(EndpointSlice);

impl SliceBuilder {
    /// No service-name label: a slice no Service owns.
    pub fn unlabelled(mut self) -> Self {
        self.0.metadata.labels = None;
        self
    }

    pub fn address_type(mut self, t: &str) -> Self {
        self.0.address_type = t.to_owned();
        self
    }

    /// A port; `name` "" for the unnamed port.
    pub fn port(mut self, name: &str, port: i32) -> Self {
        let name = (!name.is_empty()).then(|| name.to_owned());
        self.0
            .ports
            .get_or_insert_with(Vec::new)
            .push(EndpointPort {
                name,
                port: Some(port),
                ..EndpointPort::default()
            });
        self
    }

    /// An endpoint with the given conditions (`None` leaves a condition unset).
    pub fn endpoint(
        mut self,
        address: &str,
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> Self {
        self.0
            .endpoints
            .get_or_insert_with(Vec::new)
            .push(Endpoint {
                addresses: vec![address.to_owned()],
                conditions: Some(EndpointConditions {
                    ready,
                    serving,
                    terminating,
                }),
                ..Endpoint::default()
            });
        self
    }

    pub fn ready(self, address: &str) -> Self {
        self.endpoint(address, Some(true), Some(true), Some(false))
    }

    pub fn not_ready(self, address: &str) -> Self {
        self.endpoint(address, Some(false), Some(false), Some(false))
    }

    /// Shutting down but still serving: used only when nothing is ready.
    pub fn terminating(self, address: &str) -> Self {
        self.endpoint(address, Some(false), Some(true), Some(true))
    }

    /// The slice as a source keeps it.
    pub fn build(self) -> KeptSlice {
        self.0.into()
    }
}

impl From<SliceBuilder> for super::Object {
    fn from(b: SliceBuilder) -> Self {
        b.0.into()
    }
}

/// `tls_secret("ns/name", cert, key)`: a `kubernetes.io/tls` Secret.
pub fn tls_secret(ns_name: &str, cert_pem: &str, key_pem: &str) -> Secret {
    let mut data = std::collections::BTreeMap::new();
    if !cert_pem.is_empty() {
        data.insert(
            "tls.crt".to_owned(),
            ByteString(cert_pem.as_bytes().to_vec()),
        );
    }
    if !key_pem.is_empty() {
        data.insert(
            "tls.key".to_owned(),
            ByteString(key_pem.as_bytes().to_vec()),
        );
    }
    Secret {
        metadata: meta(ns_name),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}
