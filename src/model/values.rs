//! The value syntaxes ingress-nginx's annotations and ConfigMap share (Go's booleans, whole
//! seconds, status lists, nginx's `proxy_next_upstream` conditions), checked into typed values.

use super::balance::Balance;
use super::policy::Retry;
use std::time::Duration;

/// Go's `strconv.ParseBool`, which ingress-nginx uses.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{v:?} is not \"true\" or \"false\"")),
    }
}

pub fn integer(v: &str) -> Result<i64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

/// A timeout in whole seconds, as ingress-nginx's timeout annotations take it.
pub fn seconds(v: &str) -> Result<Duration, String> {
    match integer(v)? {
        n if n >= 0 => Ok(Duration::from_secs(n as u64)),
        n => Err(format!("{n} is not a number of seconds")),
    }
}

/// `proxy-next-upstream`: space-separated nginx conditions, or `off`.
pub fn next_upstream(v: &str) -> Result<Retry, String> {
    let mut r = Retry {
        on_error: false,
        on_timeout: false,
        after_sent: true,
        ..Retry::default()
    };
    for token in v.split_whitespace() {
        match token {
            "error" => r.on_error = true,
            "timeout" => r.on_timeout = true,
            "non_idempotent" => r.non_idempotent = true,
            "off" => {
                r.on_error = false;
                r.on_timeout = false;
                r.on_status = Default::default();
            }
            // Vestibule checks response headers as hyper parses them; a malformed header is
            // an error already.
            "invalid_header" => r.on_error = true,
            t => match t.strip_prefix("http_").and_then(|c| c.parse::<u16>().ok()) {
                Some(code) if r.on_status.insert(code) => {}
                _ => return Err(format!("{t:?} is not a proxy-next-upstream condition")),
            },
        }
    }
    Ok(r)
}

/// `custom-http-errors`: comma-separated error statuses, sorted and without repeats.
pub fn status_list(v: &str) -> Result<Vec<u16>, String> {
    let mut codes = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(c) if (400..=599).contains(&c) => codes.push(c),
            _ => return Err(format!("{part:?} is not an HTTP error status (400-599)")),
        }
    }
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}

/// `load-balance`: `round_robin` or `ewma` (ingress-nginx's other balancers are not offered).
pub fn load_balance(v: &str) -> Result<Balance, String> {
    match v.trim() {
        "round_robin" => Ok(Balance::RoundRobin),
        "ewma" => Ok(Balance::Ewma),
        other => Err(format!("{other:?} is not round_robin or ewma")),
    }
}
