//! Where snapshots come from. Both sources trim objects the same way ([`trim`]) and feed the
//! same `model::incremental::Model`.

pub mod files;
pub mod kube;
pub mod trim;
