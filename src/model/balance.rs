//! Which endpoint of a backend a request starts with: round robin (the default), consistent
//! hashing on a key built from the request (`upstream-hash-by`, with `-subset`), or a session
//! cookie (`affinity: cookie`). Hashing is rendezvous (highest random weight): adding or
//! removing one endpoint of N moves about 1/N of the keys, and every replica agrees.

use super::endpoints::Target;
use http::HeaderValue;
use std::time::Duration;

/// How a route's requests pick their endpoint.
#[derive(Debug, Clone, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    /// `load-balance: ewma`: the better of two endpoints by recent response time and load.
    Ewma,
    /// `upstream-hash-by`: the key template (`$request_uri`, `$remote_addr`, `$http_<name>`,
    /// `$cookie_<name>` and literals); with `upstream-hash-by-subset`, the key picks a subset
    /// of this many endpoints and requests rotate within it.
    Hash { key: String, subset: Option<usize> },
    /// `affinity: cookie`.
    Cookie(Affinity),
}

/// `affinity-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityMode {
    /// The cookie holds a session token; the endpoint is the token's rendezvous winner, so a
    /// scaled-up backend takes over a share of the sessions.
    Balanced,
    /// The cookie names the endpoint; sessions stay while it is ready.
    Persistent,
}

/// The session cookie and its attributes (`session-cookie-*`).
#[derive(Debug, Clone)]
pub struct Affinity {
    pub mode: AffinityMode,
    /// `session-cookie-name` (`INGRESSCOOKIE`).
    pub name: String,
    /// `session-cookie-path` (default: the Ingress path, or `/`).
    pub path: String,
    pub domain: Option<String>,
    pub max_age: Option<u64>,
    /// `session-cookie-expires`, seconds from now (written as `Expires`).
    pub expires: Option<u64>,
    pub secure: bool,
    /// `session-cookie-samesite`: `None`, `Lax` or `Strict`.
    pub same_site: Option<String>,
    /// `session-cookie-conditional-samesite-none`: no `SameSite=None` for browsers that
    /// mishandle it.
    pub conditional_same_site_none: bool,
    /// `session-cookie-change-on-failure`: a session whose endpoint failed moves (a new
    /// cookie) instead of keeping its endpoint.
    pub change_on_failure: bool,
}

impl Affinity {
    /// The index of the endpoint a cookie value names among `targets`, if it names one.
    pub fn endpoint_of(&self, value: &str, targets: &[Target]) -> Option<usize> {
        match self.mode {
            AffinityMode::Persistent => {
                let wanted = u64::from_str_radix(value, 16).ok()?;
                targets.iter().position(|t| token_of(t) == wanted)
            }
            AffinityMode::Balanced => (!value.is_empty() && !targets.is_empty())
                .then(|| rendezvous(value.as_bytes(), targets)),
        }
    }

    /// The cookie value for a new session that landed on `target`: the endpoint's token, or a
    /// session token whose rendezvous winner is `target` would be needed for `balanced`, so a
    /// balanced session's token is `salt` made to pick `target` among `targets`.
    pub fn value_for(&self, target: &Target, targets: &[Target], salt: u64) -> String {
        match self.mode {
            AffinityMode::Persistent => endpoint_token(target),
            AffinityMode::Balanced => {
                // Search a token that lands on `target` (expected N tries for N endpoints).
                let Some(want) = targets.iter().position(|t| t == target) else {
                    return format!("{salt:016x}");
                };
                (0..64u64 * targets.len() as u64)
                    .map(|i| format!("{:016x}", mix(salt ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
                    .find(|token| rendezvous(token.as_bytes(), targets) == want)
                    .unwrap_or_else(|| format!("{salt:016x}"))
            }
        }
    }

    /// The `Set-Cookie` value for `value`, with the configured attributes. `old_browser` is
    /// whether the user agent is one that rejects `SameSite=None`.
    pub fn set_cookie(&self, value: &str, old_browser: bool) -> Option<HeaderValue> {
        let mut c = format!("{}={value}; Path={}", self.name, self.path);
        if let Some(d) = &self.domain {
            c.push_str(&format!("; Domain={d}"));
        }
        if let Some(age) = self.max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if let Some(secs) = self.expires {
            let at = std::time::SystemTime::now() + Duration::from_secs(secs);
            c.push_str(&format!("; Expires={}", httpdate(at)));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        match self.same_site.as_deref() {
            Some("None") if self.conditional_same_site_none && old_browser => {}
            Some(s) => c.push_str(&format!("; SameSite={s}")),
            None => {}
        }
        c.push_str("; HttpOnly");
        HeaderValue::from_str(&c).ok()
    }
}

/// Whether a browser mishandles `SameSite=None` (treats it as `Strict`, or rejects the
/// cookie): Chrome and Chromium 51–66, UC Browser before 12.13.2, and Safari and embedded
/// browsers on iOS 12 and macOS 10.14 — the list ingress-nginx checks.
pub fn rejects_same_site_none(agent: &str) -> bool {
    let version = |marker: &str| -> Option<u32> {
        let at = agent.find(marker)? + marker.len();
        agent[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let chromium = ["Chrome/", "Chromium/"]
        .iter()
        .filter_map(|m| version(m))
        .any(|v| (51..=66).contains(&v));
    let ios12 = agent.contains("iPhone OS 12_") || agent.contains("iPad; CPU OS 12_");
    let mojave_safari = agent.contains("Macintosh; Intel Mac OS X 10_14")
        && agent.contains("Version/")
        && agent.contains("Safari");
    let old_uc =
        agent.contains("UCBrowser/") && version("UCBrowser/").is_some_and(|major| major < 12);
    chromium || ios12 || mojave_safari || old_uc
}

/// An endpoint's name in cookies: a hash of its address in hex, stable across replicas and
/// restarts, that does not spell the address out.
pub fn endpoint_token(target: &Target) -> String {
    format!("{:016x}", token_of(target))
}

/// [`endpoint_token`] as a number (compared without formatting, per request).
fn token_of(target: &Target) -> u64 {
    mix(target_hash(target) ^ 0x5e55_10c0_0c1e_5eed)
}

/// A stable hash of an endpoint's address, without formatting it.
fn target_hash(target: &Target) -> u64 {
    let mut h = Fnv::default();
    match target {
        Target::Ip(addr) => {
            match addr.ip() {
                std::net::IpAddr::V4(ip) => h.write(&ip.octets()),
                std::net::IpAddr::V6(ip) => h.write(&ip.octets()),
            }
            h.write(&addr.port().to_be_bytes());
        }
        Target::Dns { host, port } => {
            h.write(host.as_bytes());
            h.write(&port.to_be_bytes());
        }
    }
    mix(h.0)
}

/// The index of the target with the highest score for `key`.
pub fn rendezvous(key: &[u8], targets: &[Target]) -> usize {
    let k = hash_bytes(key);
    (0..targets.len())
        .max_by_key(|&i| score(k, &targets[i]))
        .unwrap_or(0)
}

/// The `n` targets with the highest scores for `key`, best first.
pub fn rendezvous_top(key: &[u8], targets: &[Target], n: usize) -> Vec<usize> {
    let k = hash_bytes(key);
    let mut ranked: Vec<(u64, usize)> = (0..targets.len())
        .map(|i| (score(k, &targets[i]), i))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().take(n.max(1)).map(|(_, i)| i).collect()
}

fn score(key: u64, target: &Target) -> u64 {
    mix(key ^ target_hash(target).rotate_left(17))
}

/// FNV-1a, then mixed: stable across processes and platforms (replicas must agree).
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    mix(h.0)
}

/// FNV-1a's state.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// splitmix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {d:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        months[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| {
                Target::Ip(
                    format!("10.0.{}.{}:8080", i / 250, i % 250 + 1)
                        .parse()
                        .unwrap(),
                )
            })
            .collect()
    }

    // The issue: adding or removing one endpoint of N moves about 1/N of the keys.
    #[test]
    fn one_endpoint_more_or_less_moves_about_one_nth_of_the_keys() {
        let ten = targets(10);
        let eleven = targets(11);
        let keys: Vec<String> = (0..10_000).map(|i| format!("/user/{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| {
                let a = &ten[rendezvous(k.as_bytes(), &ten)];
                let b = &eleven[rendezvous(k.as_bytes(), &eleven)];
                a != b
            })
            .count();
        // 1/11 of 10,000 is 909.
        assert!((700..1100).contains(&moved), "{moved} keys moved");
        let nine = &ten[..9];
        let moved_down = keys
            .iter()
            .filter(|k| ten[rendezvous(k.as_bytes(), &ten)] != nine[rendezvous(k.as_bytes(), nine)])
            .count();
        assert!((800..1200).contains(&moved_down), "{moved_down} keys moved");
        // Spread: every endpoint gets a share.
        let mut counts = [0usize; 10];
        for k in &keys {
            counts[rendezvous(k.as_bytes(), &ten)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(rendezvous_top(b"k", &ten, 3)[0], rendezvous(b"k", &ten));
        assert_eq!(rendezvous_top(b"k", &ten, 3).len(), 3);
    }

    fn affinity(mode: AffinityMode) -> Affinity {
        Affinity {
            mode,
            name: "INGRESSCOOKIE".into(),
            path: "/".into(),
            domain: None,
            max_age: Some(172_800),
            expires: None,
            secure: true,
            same_site: Some("None".into()),
            conditional_same_site_none: true,
            change_on_failure: false,
        }
    }

    #[test]
    fn cookies_name_endpoints_without_their_address() {
        let t = targets(3);
        for mode in [AffinityMode::Persistent, AffinityMode::Balanced] {
            let a = affinity(mode);
            for (i, target) in t.iter().enumerate() {
                let value = a.value_for(target, &t, 42 + i as u64);
                assert!(!value.contains("10.0"), "{value}");
                assert_eq!(a.endpoint_of(&value, &t), Some(i), "{mode:?}");
            }
        }
        let p = affinity(AffinityMode::Persistent);
        assert_eq!(
            p.endpoint_of("feedface", &t),
            None,
            "a gone endpoint names nothing"
        );
        let c = p.set_cookie("abc", false).unwrap();
        assert_eq!(
            c,
            "INGRESSCOOKIE=abc; Path=/; Max-Age=172800; Secure; SameSite=None; HttpOnly"
        );
        let old = p.set_cookie("abc", true).unwrap();
        assert!(!old.to_str().unwrap().contains("SameSite"), "{old:?}");
        assert_eq!(
            httpdate(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
