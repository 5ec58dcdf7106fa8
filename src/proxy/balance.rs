//! Endpoint choice: round robin over a backend's targets, skipping endpoints that recently
//! refused connections (passive ejection).

use crate::model::{Backend, Target};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an endpoint that refused a connection is left out of the rotation.
pub const EJECTION: Duration = Duration::from_secs(5);

/// Endpoints left out of the rotation, and until when. Read on every request without a lock;
/// written only when a connection fails.
#[derive(Debug, Default)]
pub struct Ejections {
    until: ArcSwap<HashMap<Target, Instant>>,
}

impl Ejections {
    /// Leaves `target` out for [`EJECTION`].
    pub fn eject(&self, target: &Target) {
        let now = Instant::now();
        self.until.rcu(|old| {
            let mut next: HashMap<Target, Instant> = old
                .iter()
                .filter(|(_, t)| **t > now)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            next.insert(target.clone(), now + EJECTION);
            next
        });
    }

    fn is_ejected(&self, map: &HashMap<Target, Instant>, target: &Target, now: Instant) -> bool {
        map.get(target).is_some_and(|until| *until > now)
    }

    /// The next target of `backend` in round-robin order that was not `tried` yet, preferring
    /// endpoints that are not ejected. `None` once every target was tried.
    pub fn pick(&self, backend: &Backend, tried: &[Target]) -> Option<Target> {
        let targets = &backend.endpoints.targets;
        if targets.is_empty() {
            return None;
        }
        let start = backend.next_turn();
        let candidates = (0..targets.len())
            .map(|i| &targets[(start + i) % targets.len()])
            .filter(|t| !tried.contains(t));
        let map = self.until.load();
        if map.is_empty() {
            return candidates.into_iter().next().cloned();
        }
        let now = Instant::now();
        let mut fallback = None;
        for t in candidates {
            if !self.is_ejected(&map, t, now) {
                return Some(t.clone());
            }
            fallback.get_or_insert(t);
        }
        // Every untried endpoint is ejected: trying one beats refusing the request.
        fallback.cloned()
    }
}

/// Shared handle.
pub type SharedEjections = Arc<Ejections>;
