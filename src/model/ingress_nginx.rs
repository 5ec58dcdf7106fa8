//! ingress-nginx's annotations, read into typed values: which ones Vestibule implements, how
//! each value is checked, and which are reported as ignored. Every annotation is accepted
//! under `nginx.ingress.kubernetes.io/` and under `vestibule.dev/` (which wins when both are
//! set). The meanings follow ingress-nginx's `annotations.md` and its e2e tests.

use super::endpoints::Backend;
use super::host::HostRule;
use super::policy::{
    CustomErrors, Filter, Policy, Redirect, RedirectTo, Retry, Rewrite, UpstreamPolicy, parse_size,
};
use http::{HeaderName, HeaderValue, StatusCode, header};
use k8s_openapi::api::networking::v1::Ingress;
use std::sync::Arc;
use std::time::Duration;

/// ingress-nginx's prefix.
pub const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// Vestibule's own prefix for the same names.
pub const VESTIBULE: &str = "vestibule.dev/";

/// The annotation names (after the prefix) that Vestibule implements.
pub const IMPLEMENTED: &[&str] = &[
    "app-root",
    "custom-http-errors",
    "default-backend",
    "force-ssl-redirect",
    "from-to-www-redirect",
    "permanent-redirect",
    "permanent-redirect-code",
    "proxy-body-size",
    "proxy-connect-timeout",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "proxy-read-timeout",
    "proxy-send-timeout",
    "rewrite-target",
    "server-alias",
    "ssl-redirect",
    "temporal-redirect",
    "temporal-redirect-code",
    "upstream-vhost",
    "use-regex",
    "x-forwarded-prefix",
];

/// How bad a finding is: errors disable what the annotation shapes, warnings only inform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One finding about one annotation: its field path, the reason, and how bad it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub field: String,
    pub reason: String,
    pub level: Level,
}

/// An Ingress's annotations, parsed. Absent annotations are `None` (or the default).
#[derive(Debug, Default)]
pub struct Annotations {
    /// `ssl-redirect` (default true): redirect plain HTTP to https on hosts with TLS.
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect`: redirect plain HTTP to https even without TLS on the host.
    pub force_ssl_redirect: bool,
    pub rewrite_target: Option<String>,
    pub use_regex: bool,
    /// `permanent-redirect` / `temporal-redirect` with their codes (temporal wins, as in
    /// ingress-nginx).
    pub redirect: Option<(HeaderValue, StatusCode)>,
    pub app_root: Option<String>,
    pub from_to_www: bool,
    pub aliases: Vec<HostRule>,
    pub upstream_vhost: Option<HeaderValue>,
    pub x_forwarded_prefix: Option<HeaderValue>,
    /// `proxy-body-size`: `Some(None)` is `0`, no limit.
    pub body_size: Option<Option<u64>>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub retry: Retry,
    /// `default-backend`: a Service of the Ingress's namespace.
    pub default_backend: Option<String>,
    pub custom_http_errors: Option<Vec<u16>>,
    pub findings: Vec<Finding>,
    /// Whether the Ingress has any annotation under one of the two prefixes; without, every
    /// field keeps its default and the Ingress's routes share the plain policy.
    pub any: bool,
}

impl Annotations {
    /// Whether the Ingress's paths are regexes, and its host's paths with them.
    pub fn regex_paths(&self) -> bool {
        self.use_regex || self.rewrite_target.is_some()
    }

    /// The first error, which disables the routes of the Ingress.
    pub fn denial(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.level == Level::Error)
    }
}

/// What a route's policy depends on besides its Ingress's annotations.
pub struct Context {
    /// The route's host has TLS.
    pub tls: bool,
    /// `--proxy-body-size` (`None`: no limit).
    pub default_body_limit: Option<u64>,
    /// The `default-backend` Service, resolved.
    pub fallback: Option<Arc<Backend>>,
    /// Who answers `custom-http-errors`: the `default-backend` Service, else the global one.
    pub error_backend: Option<Arc<Backend>>,
}

/// `X-Forwarded-Prefix`.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

impl Annotations {
    /// The policy of one route of the Ingress. An Ingress whose annotations have an error
    /// gets a policy that answers 503: never half a policy.
    pub fn policy(&self, cx: Context) -> Policy {
        if let Some(denial) = self.denial() {
            let reason = format!("{}: {}", denial.field, denial.reason);
            return Policy {
                filters: vec![Filter::Deny(reason)],
                ..Policy::default()
            };
        }
        let mut filters = Vec::new();
        // nginx checks the body size before anything else, then `return`s a redirect in the
        // rewrite phase, before the https redirect (Lua, at the end of that phase).
        if let Some(limit) = self.body_size.unwrap_or(cx.default_body_limit) {
            filters.push(Filter::BodyLimit(limit));
        }
        if let Some((url, code)) = &self.redirect {
            filters.push(Filter::Redirect(Redirect {
                to: RedirectTo::Url(url.clone()),
                code: *code,
            }));
        }
        if self.force_ssl_redirect || (cx.tls && self.ssl_redirect.unwrap_or(true)) {
            filters.push(Filter::HttpsRedirect);
        }
        if let Some(target) = &self.rewrite_target {
            filters.push(Filter::Rewrite(Rewrite::new(target)));
        }
        if let Some(host) = &self.upstream_vhost {
            filters.push(Filter::SetHeader(header::HOST, host.clone()));
        }
        if let Some(prefix) = &self.x_forwarded_prefix {
            filters.push(Filter::SetHeader(X_FORWARDED_PREFIX, prefix.clone()));
        }
        let errors = match (&self.custom_http_errors, cx.error_backend) {
            (Some(codes), Some(backend)) if !codes.is_empty() => Some(CustomErrors {
                codes: codes.clone(),
                backend,
            }),
            _ => None,
        };
        Policy {
            filters,
            upstream: UpstreamPolicy {
                connect_timeout: self.connect_timeout,
                read_timeout: self.read_timeout,
                send_timeout: self.send_timeout,
                retry: self.retry,
                fallback: cx.fallback,
            },
            errors,
        }
    }
}

/// Reads every annotation of `ingress` that Vestibule knows, and reports the others.
pub fn read(ingress: &Ingress) -> Annotations {
    // (name, key, value) of every annotation under our prefixes, `vestibule.dev/` first so
    // that it wins.
    let mut ours: Vec<(&str, &str, &str)> = Vec::new();
    for (key, value) in ingress.metadata.annotations.iter().flatten() {
        if let Some(name) = key.strip_prefix(VESTIBULE) {
            ours.insert(0, (name, key, value));
        } else if let Some(name) = key.strip_prefix(NGINX) {
            ours.push((name, key, value));
        }
    }
    let mut r = Reader {
        ingress,
        out: Annotations {
            any: !ours.is_empty(),
            ..Annotations::default()
        },
        ours,
    };
    if !r.out.any {
        return r.out;
    }
    r.report_unknown();
    r.read_redirects();
    r.read_rewrites();
    r.read_upstream();
    r.read_hosts();
    r.out
}

struct Reader<'a> {
    ingress: &'a Ingress,
    ours: Vec<(&'a str, &'a str, &'a str)>,
    out: Annotations,
}

impl<'a> Reader<'a> {
    /// The value of annotation `name` and the key it was found under.
    fn get(&self, name: &str) -> Option<(&'a str, &'a str)> {
        self.ours
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, key, value)| (key, value))
    }

    fn finding(&mut self, key: &str, level: Level, reason: String) {
        self.out.findings.push(Finding {
            field: format!("metadata.annotations[{key}]"),
            reason,
            level,
        });
    }

    /// Parses annotation `name` with `parse`; a value that does not parse is an error.
    fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (key, value) = self.get(name)?;
        match parse(value) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.finding(key, Level::Error, reason);
                None
            }
        }
    }

    fn report_unknown(&mut self) {
        let Some(annotations) = self.ingress.metadata.annotations.as_ref() else {
            return;
        };
        for key in annotations.keys() {
            let (name, ours) = match (key.strip_prefix(NGINX), key.strip_prefix(VESTIBULE)) {
                (Some(n), _) => (n, false),
                (_, Some(n)) => (n, true),
                _ => continue,
            };
            if IMPLEMENTED.contains(&name) {
                continue;
            }
            let reason = if name.ends_with("-snippet") {
                "ignored: snippets are refused by design (Vestibule never templates configuration from strings)"
                    .to_owned()
            } else if ours {
                "ignored: Vestibule has no such annotation".to_owned()
            } else {
                "ignored: not supported".to_owned()
            };
            self.finding(key, Level::Warning, reason);
        }
    }

    fn read_redirects(&mut self) {
        self.out.ssl_redirect = self.parsed("ssl-redirect", boolean);
        self.out.force_ssl_redirect = self.parsed("force-ssl-redirect", boolean).unwrap_or(false);
        let temporal = self.redirect("temporal-redirect", StatusCode::FOUND);
        let permanent = self.redirect("permanent-redirect", StatusCode::MOVED_PERMANENTLY);
        self.out.redirect = temporal.or(permanent);
        self.out.app_root = self.parsed("app-root", |v| {
            if v.starts_with('/') && HeaderValue::from_str(v).is_ok() && !v.contains(' ') {
                Ok(v.to_owned())
            } else {
                Err(format!("{v:?} is not an absolute path"))
            }
        });
    }

    /// `<name>` (a URL) and `<name>-code` (300–308, else `default`, as ingress-nginx).
    fn redirect(&mut self, name: &str, default: StatusCode) -> Option<(HeaderValue, StatusCode)> {
        let url = self.parsed(name, redirect_url)?;
        let code_name = format!("{name}-code");
        let code = match self.parsed(&code_name, integer) {
            None => default,
            Some(n) => match u16::try_from(n)
                .ok()
                .and_then(|n| StatusCode::from_u16(n).ok())
            {
                Some(code) if (300..=308).contains(&code.as_u16()) => code,
                _ => {
                    let key = self.get(&code_name).map(|(k, _)| k).unwrap_or_default();
                    let reason = format!(
                        "{n} is not a redirect code (300-308); using {}",
                        default.as_u16()
                    );
                    self.finding(key, Level::Warning, reason);
                    default
                }
            },
        };
        Some((url, code))
    }

    fn read_rewrites(&mut self) {
        self.out.use_regex = self.parsed("use-regex", boolean).unwrap_or(false);
        self.out.rewrite_target = self
            .parsed("rewrite-target", |v| {
                if names_a_variable(v) {
                    return Err(format!(
                        "{v:?} uses an nginx variable; only $1…$9 (the path's groups) are supported"
                    ));
                }
                Ok(v.to_owned())
            })
            .filter(|v| !v.is_empty());
        self.out.upstream_vhost = self.parsed("upstream-vhost", header_token);
        self.out.x_forwarded_prefix = self.parsed("x-forwarded-prefix", |v| {
            HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be a header value"))
        });
    }

    fn read_upstream(&mut self) {
        self.out.body_size = self.parsed("proxy-body-size", parse_size);
        self.out.connect_timeout = self.parsed("proxy-connect-timeout", seconds);
        self.out.read_timeout = self.parsed("proxy-read-timeout", seconds);
        self.out.send_timeout = self.parsed("proxy-send-timeout", seconds);
        if let Some(r) = self.parsed("proxy-next-upstream", next_upstream) {
            self.out.retry = Retry {
                tries: self.out.retry.tries,
                timeout: self.out.retry.timeout,
                ..r
            };
        }
        if let Some(n) = self.parsed("proxy-next-upstream-tries", integer) {
            match u32::try_from(n) {
                Ok(n) => self.out.retry.tries = n,
                Err(_) => {
                    let key = self
                        .get("proxy-next-upstream-tries")
                        .map(|(k, _)| k)
                        .unwrap_or_default();
                    self.finding(key, Level::Error, format!("{n} is not a number of tries"));
                }
            }
        }
        if let Some(t) = self.parsed("proxy-next-upstream-timeout", seconds) {
            self.out.retry.timeout = (!t.is_zero()).then_some(t);
        }
        self.out.default_backend = self.parsed("default-backend", |v| {
            let v = v.trim();
            let dns_label = !v.is_empty()
                && v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !v.starts_with('-')
                && !v.ends_with('-');
            if dns_label {
                Ok(v.to_owned())
            } else {
                Err(format!("{v:?} is not a Service name of this namespace"))
            }
        });
        self.out.custom_http_errors = self.parsed("custom-http-errors", |v| {
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
        });
    }

    fn read_hosts(&mut self) {
        self.out.from_to_www = self
            .parsed("from-to-www-redirect", boolean)
            .unwrap_or(false);
        self.out.aliases = self
            .parsed("server-alias", |v| {
                let mut hosts = Vec::new();
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    match HostRule::parse(Some(name)) {
                        Ok(h @ (HostRule::Exact(_) | HostRule::Wildcard(_))) => hosts.push(h),
                        _ => return Err(format!("{name:?} is not a host name")),
                    }
                }
                Ok(hosts)
            })
            .unwrap_or_default();
    }
}

/// Go's `strconv.ParseBool`, which ingress-nginx uses.
fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{v:?} is not \"true\" or \"false\"")),
    }
}

fn integer(v: &str) -> Result<i64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

/// A timeout in whole seconds, as ingress-nginx's timeout annotations take it.
fn seconds(v: &str) -> Result<Duration, String> {
    match integer(v)? {
        n if n >= 0 => Ok(Duration::from_secs(n as u64)),
        n => Err(format!("{n} is not a number of seconds")),
    }
}

fn redirect_url(v: &str) -> Result<HeaderValue, String> {
    let v = v.trim();
    let uri: http::Uri = v.parse().map_err(|_| format!("{v:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => {}
        _ => return Err(format!("{v:?} is not an http or https URL")),
    }
    HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a URL"))
}

/// A value that must be one token (a host name, maybe with a port).
fn header_token(v: &str) -> Result<HeaderValue, String> {
    let v = v.trim();
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{v:?} is not a host name"));
    }
    HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a host name"))
}

/// Whether `v` names an nginx variable (`$host`, `${uri}`), which Vestibule does not expand.
fn names_a_variable(v: &str) -> bool {
    v.match_indices('$').any(|(i, _)| {
        v[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '{' || c == '_')
    })
}

/// `proxy-next-upstream`: space-separated nginx conditions, or `off`.
fn next_upstream(v: &str) -> Result<Retry, String> {
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

#[cfg(test)]
mod tests;
