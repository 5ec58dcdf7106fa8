//! Routing semantics: a pure function from a [`Snapshot`] of Kubernetes objects to a
//! [`RoutingTable`], the TLS host map and [`Diagnostic`]s ([`build`]), and
//! [`incremental::Model`], which gives the same result for a change at the cost of what the
//! change touches. No I/O, no clock, no async.

pub mod access;
pub mod balance;
mod build;
pub mod canary;
pub mod class;
pub mod client;
pub mod diagnostic;
pub mod endpoints;
pub mod fixtures;
pub mod gateway;
pub mod host;
pub mod incremental;
pub mod ingress_nginx;
pub mod passthrough;
pub mod path;
pub mod policy;
pub mod refresh;
pub mod secret;
pub mod settings;
pub mod sharded;
pub mod slice;
pub mod snapshot;
pub mod table;
pub mod values;

#[cfg(test)]
mod tests;

pub use build::{
    Built, ClientAuthBinding, Diagnostic, Options, Pem, Severity, TlsBinding, build, build_after,
    tls_material,
};
pub use endpoints::{Backend, Endpoint, Endpoints, PortRef, ServiceRef, Target};
pub use gateway::GatewayPorts;
pub use host::HostRule;
pub use path::{PathRule, PathType};
pub use policy::{Filter, Policy};
pub use slice::EndpointSlice;
pub use snapshot::{Object, ObjectRef, Snapshot};
pub use table::{Route, RouteId, RoutingTable, WeightedBackend};
