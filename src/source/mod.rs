//! Where snapshots come from. Both sources feed the same `model::build`.

pub mod files;
pub mod kube;
