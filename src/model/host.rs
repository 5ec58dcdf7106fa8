//! Host rules (exact and `*.one-label` wildcards) and normalisation of the host a request names.

use std::fmt;

/// The host part of an Ingress rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostRule {
    /// `foo.example.com`, stored lower-case without a trailing dot.
    Exact(String),
    /// `*.example.com`, stored as the suffix `example.com`: matches exactly one extra label.
    Wildcard(String),
    /// No `host`: the rule applies to requests for any host that no host rule claims.
    Any,
}

impl HostRule {
    /// Parses `spec.rules[].host`. Comparison is case-insensitive, so upper case is folded here.
    pub fn parse(host: Option<&str>) -> Result<HostRule, String> {
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return Ok(HostRule::Any);
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if let Some(suffix) = host.strip_prefix("*.") {
            check_dns_name(suffix).map_err(|e| format!("invalid wildcard host {host:?}: {e}"))?;
            return Ok(HostRule::Wildcard(suffix.to_owned()));
        }
        check_dns_name(&host).map_err(|e| format!("invalid host {host:?}: {e}"))?;
        Ok(HostRule::Exact(host))
    }

    /// Whether a normalised request host falls under this rule.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostRule::Exact(h) => h == host,
            HostRule::Wildcard(suffix) => wildcard_suffix(host) == Some(suffix.as_str()),
            HostRule::Any => true,
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Exact(h) => f.write_str(h),
            HostRule::Wildcard(s) => write!(f, "*.{s}"),
            HostRule::Any => f.write_str("*"),
        }
    }
}

/// For `a.example.com`, `example.com`: the part a one-label wildcard would have to name.
pub fn wildcard_suffix(host: &str) -> Option<&str> {
    let (first, rest) = host.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then_some(rest)
}

fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(
                "only letters, digits, '-' and '.' are allowed (a '*' only as the whole first label)",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    Ok(())
}

/// The longest host name DNS allows, plus room for a trailing dot.
const MAX_HOST: usize = 254;

/// A request's host, lower-cased, without port and trailing dot. Routing a request allocates
/// nothing: the host is borrowed as sent when it needs no folding, else folded on the stack.
// The large variant is the point: folding happens on the stack, not the heap.
#[allow(clippy::large_enum_variant)]
pub enum RequestHost<'a> {
    AsSent(&'a str),
    Folded { buf: [u8; MAX_HOST], len: usize },
}

impl<'a> RequestHost<'a> {
    /// Normalises the `Host` header or HTTP/2 `:authority`: strips `:port` (also after an IPv6
    /// literal `[::1]`) and one trailing dot, folds case. `None` when it cannot be a host.
    pub fn parse(raw: &'a str) -> Option<RequestHost<'a>> {
        let host = if raw.starts_with('[') {
            let end = raw.find(']')?;
            match &raw[end + 1..] {
                "" => {}
                rest => valid_port(rest.strip_prefix(':')?).then_some(())?,
            }
            &raw[..=end]
        } else {
            match raw.split_once(':') {
                Some((host, port)) => valid_port(port).then_some(host)?,
                None => raw,
            }
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > MAX_HOST {
            return None;
        }
        let mut upper = false;
        for b in host.bytes() {
            if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':'))
            {
                return None;
            }
            upper |= b.is_ascii_uppercase();
        }
        if !upper {
            return Some(RequestHost::AsSent(host));
        }
        let mut buf = [0u8; MAX_HOST];
        buf[..host.len()].copy_from_slice(host.as_bytes());
        buf[..host.len()].make_ascii_lowercase();
        Some(RequestHost::Folded {
            buf,
            len: host.len(),
        })
    }

    /// The normalised host.
    pub fn as_str(&self) -> &str {
        match self {
            RequestHost::AsSent(h) => h,
            // Only ASCII bytes were admitted by `parse`, so this never fails.
            RequestHost::Folded { buf, len } => {
                std::str::from_utf8(&buf[..*len]).unwrap_or_default()
            }
        }
    }
}

fn valid_port(digits: &str) -> bool {
    !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}
