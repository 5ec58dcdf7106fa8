//! The objects one routing table is built from (Ingress and Gateway API kinds and what they
//! name), gathered by any source and kept in a stable order.

use super::slice::EndpointSlice;
use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::fmt;
use std::sync::Arc;

/// Every object of the kinds Vestibule reads, as the API server (or a manifest file) gave them
/// (trimmed of what routing never reads; EndpointSlices in the model's own form,
/// [`super::EndpointSlice`]).
///
/// The order of the vectors carries no meaning: [`Snapshot::sorted`] puts them in
/// `namespace/name` order so that `build` is deterministic whatever order a source used.
/// Objects are shared (`Arc`), as reflector stores hand them out: a snapshot costs pointers,
/// not copies.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub ingresses: Vec<Arc<Ingress>>,
    pub ingress_classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
    /// The `--configmap` ConfigMap (sources keep only that one; the model looks it up by name).
    pub config_maps: Vec<Arc<ConfigMap>>,
    /// Gateway API: only their labels matter (a listener's `allowedRoutes` selector).
    pub namespaces: Vec<Arc<Namespace>>,
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    pub gateways: Vec<Arc<Gateway>>,
    pub http_routes: Vec<Arc<HttpRoute>>,
    /// v1 and v1beta1 alike (one schema).
    pub reference_grants: Vec<Arc<ReferenceGrant>>,
}

/// One object of a kind Vestibule reads, shared: a source keeps it, and every snapshot it
/// is part of points at the same copy.
#[derive(Clone, Debug)]
pub enum Object {
    Ingress(Arc<Ingress>),
    IngressClass(Arc<IngressClass>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Secret(Arc<Secret>),
    ConfigMap(Arc<ConfigMap>),
    Namespace(Arc<Namespace>),
    GatewayClass(Arc<GatewayClass>),
    Gateway(Arc<Gateway>),
    HttpRoute(Arc<HttpRoute>),
    ReferenceGrant(Arc<ReferenceGrant>),
}

/// The identity of an object: kind, namespace and name. Cluster-scoped kinds have an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl ObjectRef {
    pub(crate) fn of(kind: &'static str, meta: &ObjectMeta) -> Self {
        ObjectRef {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// `namespace/name`, as users write it on the command line and in logs.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl Object {
    /// The object's kind, namespace and name.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::of(self.kind(), self.metadata())
    }

    /// The object's kind, as manifests write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Ingress(_) => "Ingress",
            Object::IngressClass(_) => "IngressClass",
            Object::Service(_) => "Service",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::Secret(_) => "Secret",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Namespace(_) => "Namespace",
            Object::GatewayClass(_) => "GatewayClass",
            Object::Gateway(_) => "Gateway",
            Object::HttpRoute(_) => "HTTPRoute",
            Object::ReferenceGrant(_) => "ReferenceGrant",
        }
    }

    /// Whether this is the object `r` names (without building its [`ObjectRef`]).
    pub fn is(&self, r: &ObjectRef) -> bool {
        let meta = self.metadata();
        self.kind() == r.kind
            && meta.name.as_deref().unwrap_or_default() == r.name
            && meta.namespace.as_deref().unwrap_or_default() == r.namespace
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HttpRoute(o) => &o.metadata,
            Object::ReferenceGrant(o) => &o.metadata,
        }
    }

    /// Mutable metadata, so that sources can fill in defaults such as the namespace (a copy
    /// if the object is shared already).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Ingress(o) => &mut Arc::make_mut(o).metadata,
            Object::IngressClass(o) => &mut Arc::make_mut(o).metadata,
            Object::Service(o) => &mut Arc::make_mut(o).metadata,
            Object::EndpointSlice(o) => &mut Arc::make_mut(o).metadata,
            Object::Secret(o) => &mut Arc::make_mut(o).metadata,
            Object::ConfigMap(o) => &mut Arc::make_mut(o).metadata,
            Object::Namespace(o) => &mut Arc::make_mut(o).metadata,
            Object::GatewayClass(o) => &mut Arc::make_mut(o).metadata,
            Object::Gateway(o) => &mut Arc::make_mut(o).metadata,
            Object::HttpRoute(o) => &mut Arc::make_mut(o).metadata,
            Object::ReferenceGrant(o) => &mut Arc::make_mut(o).metadata,
        }
    }

    /// Whether the kind lives in a namespace (all but IngressClass, GatewayClass, Namespace).
    pub fn is_namespaced(&self) -> bool {
        !matches!(
            self,
            Object::IngressClass(_) | Object::GatewayClass(_) | Object::Namespace(_)
        )
    }
}

macro_rules! object_from {
    ($($kind:ident),*) => {$(
        impl From<$kind> for Object {
            fn from(o: $kind) -> Self {
                Object::$kind(Arc::new(o))
            }
        }
    )*};
}
/// A source's EndpointSlice, kept as the model reads it.
impl From<k8s_openapi::api::discovery::v1::EndpointSlice> for Object {
    fn from(o: k8s_openapi::api::discovery::v1::EndpointSlice) -> Self {
        Object::EndpointSlice(Arc::new(o.into()))
    }
}

object_from!(
    Ingress,
    IngressClass,
    Service,
    EndpointSlice,
    Secret,
    ConfigMap,
    Namespace,
    GatewayClass,
    Gateway,
    HttpRoute,
    ReferenceGrant
);

impl Snapshot {
    /// Adds one object to the vector of its kind.
    pub fn push(&mut self, object: impl Into<Object>) {
        match object.into() {
            Object::Ingress(o) => self.ingresses.push(o),
            Object::IngressClass(o) => self.ingress_classes.push(o),
            Object::Service(o) => self.services.push(o),
            Object::EndpointSlice(o) => self.endpoint_slices.push(o),
            Object::Secret(o) => self.secrets.push(o),
            Object::ConfigMap(o) => self.config_maps.push(o),
            Object::Namespace(o) => self.namespaces.push(o),
            Object::GatewayClass(o) => self.gateway_classes.push(o),
            Object::Gateway(o) => self.gateways.push(o),
            Object::HttpRoute(o) => self.http_routes.push(o),
            Object::ReferenceGrant(o) => self.reference_grants.push(o),
        }
    }

    /// Builder form of [`Snapshot::push`].
    pub fn with(mut self, object: impl Into<Object>) -> Self {
        self.push(object);
        self
    }

    /// Every vector in `namespace/name` order.
    pub fn sorted(mut self) -> Self {
        fn by_key<T>(list: &mut [Arc<T>], meta: fn(&T) -> &ObjectMeta) {
            // Borrowed keys: no string is copied to sort 100k objects. Keys are unique, so
            // an unstable sort gives the one order.
            list.sort_unstable_by(|a, b| {
                let (a, b) = (meta(a), meta(b));
                (a.namespace.as_deref(), a.name.as_deref())
                    .cmp(&(b.namespace.as_deref(), b.name.as_deref()))
            });
        }
        // Many Ingresses sort on a thread of their own: at 100k objects each sort is a
        // tenth of a second of cache misses, and a cluster's first listing waits for them.
        std::thread::scope(|scope| {
            let ingresses = &mut self.ingresses;
            match ingresses.len() > 10_000 {
                true => drop(scope.spawn(move || by_key(ingresses, |o| &o.metadata))),
                false => by_key(ingresses, |o| &o.metadata),
            }
            by_key(&mut self.ingress_classes, |o| &o.metadata);
            by_key(&mut self.services, |o| &o.metadata);
            by_key(&mut self.endpoint_slices, |o| &o.metadata);
            by_key(&mut self.secrets, |o| &o.metadata);
            by_key(&mut self.config_maps, |o| &o.metadata);
            by_key(&mut self.namespaces, |o| &o.metadata);
            by_key(&mut self.gateway_classes, |o| &o.metadata);
            by_key(&mut self.gateways, |o| &o.metadata);
            by_key(&mut self.http_routes, |o| &o.metadata);
            by_key(&mut self.reference_grants, |o| &o.metadata);
        });
        self
    }

    /// How many objects the snapshot holds, all kinds together.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
            + self.config_maps.len()
            + self.namespaces.len()
            + self.gateway_classes.len()
            + self.gateways.len()
            + self.http_routes.len()
            + self.reference_grants.len()
    }

    /// Whether the snapshot holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named<T: Default>(ns: &str, name: &str, meta: fn(&mut T) -> &mut ObjectMeta) -> Arc<T> {
        let mut o = T::default();
        let m = meta(&mut o);
        m.namespace = Some(ns.to_owned());
        m.name = Some(name.to_owned());
        Arc::new(o)
    }

    fn keys(list: &[Arc<impl k8s_openapi::Metadata<Ty = ObjectMeta>>]) -> Vec<(String, String)> {
        list.iter()
            .map(|o| {
                let m = o.metadata();
                (m.namespace.clone().unwrap(), m.name.clone().unwrap())
            })
            .collect()
    }

    #[test]
    fn few_and_many_ingresses_sort_by_namespace_then_name() {
        // Above 10k Ingresses they sort on a thread of their own; both ways must sort.
        for n in [5, 10_001] {
            let order = |i: usize| (i * 7919) % n;
            let mut s = Snapshot::default();
            for i in 0..n {
                let j = order(i);
                s.ingresses.push(named(
                    &format!("ns{}", j % 3),
                    &format!("i{j:05}"),
                    |o: &mut Ingress| &mut o.metadata,
                ));
                s.services.push(named(
                    &format!("ns{}", j % 3),
                    &format!("s{j:05}"),
                    |o: &mut Service| &mut o.metadata,
                ));
            }
            let s = s.sorted();
            for got in [keys(&s.ingresses), keys(&s.services)] {
                let mut want = got.clone();
                want.sort();
                assert_eq!(got, want, "{n} objects");
                assert_eq!(got.len(), n);
            }
        }
    }
}
