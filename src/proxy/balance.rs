//! Endpoint choice: round robin over a backend's targets (one turn counter per route, kept
//! here because the table is immutable), skipping endpoints that recently refused
//! connections (passive ejection).

use crate::model::{RouteId, Target};
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Round-robin turns per route, by the route's stable id: they survive publishes. Sharded
/// locks, held for one increment.
pub struct Turns {
    shards: [Mutex<FxHashMap<RouteId, usize>>; SHARDS],
}

const SHARDS: usize = 16;
/// A shard that grows past this many routes is emptied (its routes start their rotation
/// again): ids of routes deleted long ago must not pile up.
const SHARD_CAP: usize = 1 << 16;

impl Default for Turns {
    fn default() -> Self {
        Turns {
            shards: std::array::from_fn(|_| Mutex::new(FxHashMap::default())),
        }
    }
}

impl Turns {
    /// A number that grows by one per call for the same route.
    pub fn next(&self, route: RouteId) -> usize {
        let shard = &self.shards[(route.0 as usize) % SHARDS];
        let Ok(mut turns) = shard.lock() else {
            return 0;
        };
        if turns.len() >= SHARD_CAP && !turns.contains_key(&route) {
            turns.clear();
        }
        let turn = turns.entry(route).or_insert(0);
        *turn = turn.wrapping_add(1);
        *turn - 1
    }
}

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

    /// The target at round-robin position `start` or after it that was not `tried` yet,
    /// preferring endpoints that are not ejected. `None` once every target was tried.
    pub fn pick(&self, targets: &[Target], start: usize, tried: &[Target]) -> Option<Target> {
        if targets.is_empty() {
            return None;
        }
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

/// A number uniform in `1..=n` (for canary weights: ingress-nginx's `math.random(n)`), from a
/// per-thread xorshift generator; not for anything secret.
pub fn roll(n: u32) -> u32 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
        );
    }
    let x = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    (((x >> 32) * u64::from(n.max(1))) >> 32) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_are_in_range_and_even() {
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let r = roll(10);
            assert!((1..=10).contains(&r), "{r}");
            counts[r as usize - 1] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(roll(1), 1);
    }

    #[test]
    fn turns_count_per_route() {
        let turns = Turns::default();
        let (a, b) = (RouteId(1), RouteId(17)); // the same shard
        assert_eq!(
            [turns.next(a), turns.next(a), turns.next(b), turns.next(a)],
            [0, 1, 0, 2]
        );
    }

    #[test]
    fn pick_goes_round_from_the_turn_and_skips_tried() {
        let targets: Vec<Target> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
            .iter()
            .map(|a| Target::Ip(a.parse().unwrap()))
            .collect();
        let e = Ejections::default();
        assert_eq!(e.pick(&targets, 4, &[]), Some(targets[1].clone()));
        assert_eq!(
            e.pick(&targets, 4, &[targets[1].clone()]),
            Some(targets[2].clone())
        );
        assert_eq!(e.pick(&targets, 0, &targets), None);
    }
}
