//! Vestibule, a Kubernetes ingress controller: routing semantics in [`model`], objects from
//! [`source`], the data path in [`proxy`].
#![forbid(unsafe_code)]

pub mod model;
