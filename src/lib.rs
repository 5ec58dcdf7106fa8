//! Vestibule, a Kubernetes ingress controller: routing semantics in [`model`], objects from
//! [`source`], the data path in [`proxy`], wiring in [`app`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod source;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod validate;
