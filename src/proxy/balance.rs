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

/// How fast older response times fade from an endpoint's average (ingress-nginx's ewma
/// balancer decays over 10 s).
const DECAY: Duration = Duration::from_secs(10);
/// Endpoints with latency state; beyond, the state starts over.
const MAX_STATS: usize = 1 << 16;

/// `load-balance: ewma`: per endpoint, a decaying average of response times and the requests
/// in flight. A request takes the better of two endpoints drawn at random (power of two
/// choices), the score being the average times (in flight + 1).
#[derive(Default)]
pub struct Latencies {
    stats: Mutex<FxHashMap<Target, Stat>>,
}

#[derive(Clone, Copy)]
struct Stat {
    average: f64,
    at: Instant,
    in_flight: u32,
}

impl Latencies {
    /// The index of the target a request should start with.
    pub fn choose(&self, targets: &[Target]) -> usize {
        match targets.len() {
            0 | 1 => 0,
            n => {
                let a = (roll(n as u32) - 1) as usize;
                let b = (a + roll(n as u32 - 1) as usize) % n;
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let score = |t: &Target| {
                    stats.get(t).map_or(0.0, |s| {
                        decayed(s.average, now.duration_since(s.at)) * f64::from(s.in_flight + 1)
                    })
                };
                if score(&targets[b]) < score(&targets[a]) {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// A request went to `target`.
    pub fn begin(&self, target: &Target) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if stats.len() >= MAX_STATS && !stats.contains_key(target) {
            stats.clear();
        }
        let now = Instant::now();
        let s = stats.entry(target.clone()).or_insert(Stat {
            average: 0.0,
            at: now,
            in_flight: 0,
        });
        s.in_flight += 1;
    }

    /// A request to `target` got its response headers after `took` (or failed: `None`).
    pub fn end(&self, target: &Target, took: Option<Duration>) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = stats.get_mut(target) else {
            return;
        };
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(took) = took {
            let now = Instant::now();
            let old = decayed(s.average, now.duration_since(s.at));
            let weight =
                1.0 - (-(now.duration_since(s.at).as_secs_f64()) / DECAY.as_secs_f64()).exp();
            s.average = old + (took.as_secs_f64() - old) * weight.max(0.1);
            s.at = now;
        }
    }
}

/// An average `age` old, faded towards zero (an endpoint not heard from looks fast again).
fn decayed(average: f64, age: Duration) -> f64 {
    average * (-(age.as_secs_f64()) / DECAY.as_secs_f64()).exp()
}

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
    fn ewma_prefers_the_faster_endpoint() {
        let targets: Vec<Target> = ["10.0.0.1:80", "10.0.0.2:80"]
            .iter()
            .map(|a| Target::Ip(a.parse().unwrap()))
            .collect();
        let l = Latencies::default();
        for _ in 0..5 {
            l.begin(&targets[0]);
            l.end(&targets[0], Some(Duration::from_millis(200)));
            l.begin(&targets[1]);
            l.end(&targets[1], Some(Duration::from_millis(5)));
        }
        let fast = (0..100).filter(|_| l.choose(&targets) == 1).count();
        assert_eq!(fast, 100, "two endpoints: both are drawn, the faster wins");
        // Requests in flight count against an endpoint.
        for _ in 0..100 {
            l.begin(&targets[1]);
        }
        let fast = (0..100).filter(|_| l.choose(&targets) == 1).count();
        assert_eq!(fast, 0);
    }

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
