//! TLS passthrough (`ssl-passthrough`, with `--enable-ssl-passthrough`): hosts whose TLS
//! connections are not terminated but spliced to a pod as they are, chosen by the SNI of the
//! ClientHello. No HTTP feature applies to them.

use super::endpoints::Backend;
use super::host::{HostRule, RequestHost, wildcard_suffix};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// The passthrough hosts and the backend each is spliced to.
#[derive(Debug, Default, Clone)]
pub struct Passthrough {
    exact: FxHashMap<String, Arc<Backend>>,
    wildcard: FxHashMap<String, Arc<Backend>>,
}

impl Passthrough {
    /// Adds `host`, unless it is there already (the older Ingress keeps it). `false` when
    /// it was taken.
    pub fn add(&mut self, host: &HostRule, backend: Arc<Backend>) -> bool {
        let map = match host {
            HostRule::Exact(h) => (&mut self.exact, h),
            HostRule::Wildcard(s) => (&mut self.wildcard, s),
            HostRule::Any => return false,
        };
        if map.0.contains_key(map.1) {
            return false;
        }
        map.0.insert(map.1.clone(), backend);
        true
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// The backend for a ClientHello's SNI: exact host, then one-label wildcard.
    pub fn find(&self, sni: &str) -> Option<&Arc<Backend>> {
        let host = RequestHost::parse(sni)?;
        let h = host.as_str();
        self.exact
            .get(h)
            .or_else(|| wildcard_suffix(h).and_then(|s| self.wildcard.get(s)))
    }

    /// The hosts, for `/debug/routes`.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .exact
            .keys()
            .cloned()
            .chain(self.wildcard.keys().map(|s| format!("*.{s}")))
            .collect();
        hosts.sort();
        hosts
    }
}
