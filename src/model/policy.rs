//! What a route does to a request besides choosing its backend: typed filters with validated
//! fields, and the pure rules that apply them (rewrites, redirect targets). The proxy runs
//! them as stages; nothing here touches a socket or a clock.

use super::access::{Access, ClientCertPolicy, Cors, Limits};
use super::endpoints::Backend;
use super::path::PathRegex;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// Everything a route does besides choosing its backend. `Policy::default()` is a plain
/// route: the request goes to the backend unchanged, with the proxy's global limits.
#[derive(Debug, Default)]
pub struct Policy {
    /// Request filters, run in order before the request goes anywhere.
    pub filters: Vec<Filter>,
    /// How the backend is tried.
    pub upstream: UpstreamPolicy,
    /// Upstream answers replaced by another backend's (`custom-http-errors`).
    pub errors: Option<CustomErrors>,
    /// Who may use the route: address lists and authentication (the guard stage).
    pub access: Option<Arc<Access>>,
    /// Rate and connection limits per client address (the guard stage).
    pub limits: Option<Arc<Limits>>,
    /// What the route asks of client certificates (the guard stage; the TLS listener asks
    /// for them).
    pub client_cert: Option<ClientCertPolicy>,
    /// `mirror-target`, Gateway API `RequestMirror`s: a copy of each request goes to each.
    pub mirrors: Vec<Arc<Mirror>>,
}

/// `mirror-target`, `mirror-request-body`, `mirror-host`, or a Gateway API `RequestMirror`: a
/// fire-and-forget copy of each request; its answer is discarded and its failure never
/// reaches the client.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub target: MirrorTarget,
    /// The `Host` the copy carries (default: the target's for a URL, the request's for a
    /// Service).
    pub host: Option<HeaderValue>,
    /// Whether the copy carries the request body (`mirror-request-body`, on).
    pub body: bool,
    /// The share of requests copied, as numerator and denominator (`None`: all).
    pub fraction: Option<(u32, u32)>,
}

/// Where a mirror's copies go.
#[derive(Debug, Clone)]
pub enum MirrorTarget {
    /// An `http(s)://` URL; `$request_uri`, `$host` and the other template variables are
    /// filled in per request (ingress-nginx's `mirror-target`).
    Url(String),
    /// An endpoint of a Service port, the request's path and query kept (Gateway API).
    Backend(Arc<Backend>),
}

/// A Gateway API `RequestHeaderModifier` or `ResponseHeaderModifier`: headers replaced,
/// appended and removed, in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// The header changes that come with one backend of a route (Gateway API `backendRefs[].filters`).
#[derive(Debug, Clone, Default)]
pub struct BackendFilters {
    pub request: Option<HeaderEdits>,
    pub response: Option<HeaderEdits>,
}

/// How a Gateway API redirect or rewrite changes the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    /// `ReplaceFullPath`.
    Full(String),
    /// `ReplacePrefixMatch`: `matched` (the route's prefix, without trailing `/`) becomes `with`.
    Prefix { matched: String, with: String },
}

impl PathChange {
    /// The new path for request path `path` (the spec's ReplacePrefixMatch table: one `/`
    /// between the replacement and the rest, `/` for nothing at all).
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathChange::Full(p) => p.clone(),
            PathChange::Prefix { matched, with } => {
                let rest = path.get(matched.len()..).unwrap_or_default();
                match (rest.is_empty(), with.is_empty()) {
                    (true, true) => "/".to_owned(),
                    (true, false) => with.clone(),
                    (false, _) => format!("{}{rest}", with.trim_end_matches('/')),
                }
            }
        }
    }
}

/// A Gateway API `RequestRedirect`: each part unset keeps the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRedirect {
    /// `http` or `https`.
    pub scheme: Option<&'static str>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathChange>,
    pub code: StatusCode,
}

impl GatewayRedirect {
    /// The `Location` for a request over `scheme` to `host` (without port) with `path` and
    /// `query`, that arrived on the Gateway listener port `listener_port`. Without a port of
    /// its own the redirect takes the scheme's well-known port when it sets a scheme, else the
    /// listener's; a port that is its scheme's default is left out (HTTPRequestRedirectFilter).
    pub fn location(
        &self,
        scheme: &str,
        host: &str,
        listener_port: u16,
        path: &str,
        query: Option<&str>,
    ) -> String {
        let to_scheme = self.scheme.unwrap_or(scheme);
        let port = match (self.port, self.scheme) {
            (Some(p), _) => p,
            (None, Some("https")) => 443,
            (None, Some(_)) => 80,
            (None, None) => listener_port,
        };
        let host = self.hostname.as_deref().unwrap_or(host);
        let port = match (to_scheme, port) {
            ("http", 80) | ("https", 443) => String::new(),
            (_, p) => format!(":{p}"),
        };
        let path = match &self.path {
            Some(change) => change.apply(path),
            None => path.to_owned(),
        };
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{to_scheme}://{host}{port}{path}{query}")
    }
}

/// A Gateway API `URLRewrite`: the Host and path the pod sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathChange>,
}

impl Policy {
    /// The route's CORS rules, if it has them.
    pub fn cors(&self) -> Option<&Cors> {
        self.filters.iter().find_map(|f| match f {
            Filter::Cors(c) => Some(&**c),
            _ => None,
        })
    }

    /// The largest request body this route takes, if it says.
    pub fn body_limit(&self) -> Option<u64> {
        self.filters.iter().find_map(|f| match f {
            Filter::BodyLimit(n) => Some(*n),
            _ => None,
        })
    }
}

/// One request filter.
#[derive(Debug)]
pub enum Filter {
    /// The route is not served: an annotation that shapes it did not parse (ingress-nginx's
    /// "location denied"). Answers 503 with the reason in the log.
    Deny(String),
    /// Plain-HTTP requests are redirected to https with this status (308 unless the
    /// ConfigMap's `http-redirect-code` says otherwise).
    HttpsRedirect(StatusCode),
    /// Answers with a redirect instead of forwarding.
    Redirect(Redirect),
    /// Request bodies larger than this get 413 (`0` never gets here: it means no limit).
    BodyLimit(u64),
    /// The path (and query) the pod sees.
    Rewrite(Rewrite),
    /// Sets (replaces) a request header towards the pod.
    SetHeader(HeaderName, HeaderValue),
    /// CORS: a preflight is answered here (204); other responses get the headers.
    Cors(Arc<Cors>),
    /// Gateway API `RequestRedirect`.
    GatewayRedirect(GatewayRedirect),
    /// Gateway API `URLRewrite`.
    UrlRewrite(UrlRewrite),
    /// Gateway API `RequestHeaderModifier`: headers towards the pod.
    RequestHeaders(HeaderEdits),
    /// Gateway API `ResponseHeaderModifier`: headers of every answer (run as a response
    /// filter).
    ResponseHeaders(HeaderEdits),
    /// A Gateway API rule whose filters cannot be honoured (an `ExtensionRef`, a redirect and
    /// a rewrite together) answers 500, as the spec requires; the reason goes to the log.
    Fail(String),
}

impl Filter {
    /// A short name, for `/debug/routes`.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::Deny(_) => "deny",
            Filter::HttpsRedirect(_) => "https-redirect",
            Filter::Redirect(_) => "redirect",
            Filter::BodyLimit(_) => "body-limit",
            Filter::Rewrite(_) => "rewrite",
            Filter::SetHeader(..) => "set-header",
            Filter::Cors(_) => "cors",
            Filter::GatewayRedirect(_) => "redirect",
            Filter::UrlRewrite(_) => "url-rewrite",
            Filter::RequestHeaders(_) => "request-header-modifier",
            Filter::ResponseHeaders(_) => "response-header-modifier",
            Filter::Fail(..) => "fail",
        }
    }
}

/// A redirect answer.
#[derive(Debug)]
pub struct Redirect {
    pub to: RedirectTo,
    pub code: StatusCode,
}

/// Where a redirect points.
#[derive(Debug)]
pub enum RedirectTo {
    /// Exactly this URL, whatever was asked (`permanent-redirect`, `temporal-redirect`).
    Url(HeaderValue),
    /// The same scheme, path and query on another host (`from-to-www-redirect`).
    Host(String),
    /// The same scheme and host, another path, only for requests of `/` (`app-root`).
    Root(String),
}

impl RedirectTo {
    /// The `Location` for a request over `scheme` to `host` (as sent, port included) with
    /// `path_and_query`; `None` when the redirect does not apply to this request.
    pub fn location(&self, scheme: &str, host: &str, path_and_query: &str) -> Option<String> {
        match self {
            RedirectTo::Url(url) => url.to_str().ok().map(str::to_owned),
            RedirectTo::Host(to) => Some(format!("{scheme}://{to}{path_and_query}")),
            RedirectTo::Root(root) => {
                let path = path_and_query.split('?').next().unwrap_or_default();
                (path == "/").then(|| format!("{scheme}://{host}{root}"))
            }
        }
    }
}

/// `rewrite-target`: the path the pod sees, as nginx's `rewrite "(?i)<path>" <target> break`;
/// the pattern is the route's path regex.
#[derive(Debug)]
pub struct Rewrite {
    /// The target, cut at its `$n` references once (not at every request).
    parts: Box<[Part]>,
    /// Whether the target carries its own query (the request's then follows after `&`).
    has_query: bool,
    /// Whether the target is a URL, answered as a 302.
    is_url: bool,
}

/// A piece of a rewrite target.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(Box<str>),
    /// `$0`…`$9`.
    Group(usize),
}

/// What a rewrite makes of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewritten {
    /// The pod gets this path and query.
    Path(String),
    /// The target is a URL: nginx answers it as a 302 instead of forwarding.
    Redirect(String),
}

impl Rewrite {
    /// The rewrite to `target`, in which `$1`…`$9` stand for the pattern's groups (a `$` not
    /// followed by a digit is itself).
    pub fn new(target: &str) -> Rewrite {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = target;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.as_bytes().first() {
                Some(d @ b'0'..=b'9') => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text).into()));
                    }
                    parts.push(Part::Group(usize::from(d - b'0')));
                    rest = &after[1..];
                }
                _ => {
                    text.push('$');
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text.into()));
        }
        Rewrite {
            parts: parts.into(),
            has_query: target.contains('?'),
            is_url: target.starts_with("http://") || target.starts_with("https://"),
        }
    }

    /// Applies the rewrite to `path` (without query) and `query`. `None`: the pattern does
    /// not match, the request goes on unchanged (nginx skips the rewrite then).
    pub fn apply(&self, pattern: &PathRegex, path: &str, query: Option<&str>) -> Option<Rewritten> {
        let caps = pattern.captures(path)?;
        let mut out = String::with_capacity(path.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Group(g) => {
                    let text = caps.get(*g).map_or(&b""[..], |m| m.as_bytes());
                    // Paths are ASCII on the wire; a group cut inside a UTF-8 sequence is
                    // not worth a panic.
                    out.push_str(&String::from_utf8_lossy(text));
                }
            }
        }
        if self.is_url {
            return Some(Rewritten::Redirect(out));
        }
        // nginx appends the request's arguments to the new ones (after `&`) or alone.
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            out.push(if self.has_query { '&' } else { '?' });
            out.push_str(query);
        }
        Some(Rewritten::Path(out))
    }
}

/// How the backend is tried: timeouts (the global ones when `None`), retries, fallback.
#[derive(Debug, Default)]
pub struct UpstreamPolicy {
    pub connect_timeout: Option<Duration>,
    /// Waiting for response headers and between two reads of the body (nginx's
    /// `proxy_read_timeout`).
    pub read_timeout: Option<Duration>,
    /// Between two writes of the request body to the pod.
    pub send_timeout: Option<Duration>,
    pub retry: Retry,
    /// Answers when the route's Service is missing or has no ready endpoint, with `X-Code:
    /// 503` (`default-backend`).
    pub fallback: Option<Arc<Backend>>,
    /// Which endpoint a request starts with.
    pub balance: super::balance::Balance,
    /// How pods are spoken to (`backend-protocol`).
    pub protocol: UpstreamProtocol,
    /// Gateway API `timeouts.request`: the whole exchange up to the response headers,
    /// retries included; past it the client gets 504.
    pub request_timeout: Option<Duration>,
    /// TLS to pods, for `HTTPS` and `GRPCS`.
    pub tls: Option<Arc<UpstreamTls>>,
}

/// `backend-protocol`: HTTP/1.1 (the default), HTTP/2 with prior knowledge, or gRPC over it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    #[default]
    Http,
    H2c,
    /// h2c to the pod; failures the proxy answers are gRPC errors (HTTP 200 with
    /// `grpc-status`).
    Grpc,
    /// HTTP/1.1 over TLS.
    Https,
    /// gRPC over TLS (HTTP/2 by ALPN).
    Grpcs,
}

/// PEM bytes (a CA bundle, a certificate chain, a key).
pub type Pem = Arc<[u8]>;

/// How TLS is spoken to pods (`backend-protocol: HTTPS`/`GRPCS` with `proxy-ssl-*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// `proxy-ssl-secret`'s `ca.crt`: with `verify`, the pod's certificate must chain to it.
    pub ca: Option<Pem>,
    /// `proxy-ssl-secret`'s `tls.crt` and `tls.key`: the proxy's client certificate.
    pub client: Option<(Pem, Pem)>,
    /// `proxy-ssl-verify` (off, as ingress-nginx: without it any certificate is taken).
    pub verify: bool,
    /// `proxy-ssl-name`: the name verified (and sent as SNI); default the request's host.
    pub name: Option<String>,
    /// `proxy-ssl-server-name`: send SNI (off, as nginx).
    pub sni: bool,
    /// `proxy-ssl-verify-depth` (1): intermediates the pod may present, its own certificate
    /// aside, are fewer than this.
    pub depth: u8,
    /// `proxy-ssl-protocols`: TLS 1.2 and/or 1.3.
    pub tls12: bool,
    pub tls13: bool,
    /// ALPN `h2` (GRPCS) rather than `http/1.1`.
    pub h2: bool,
    /// A digest of the settings above: connections and configurations are shared by id.
    pub id: u64,
}

impl UpstreamTls {
    /// TLS as nginx's `proxy_pass https://…` speaks it to an auth service or a mirror
    /// target: any certificate, SNI sent, TLS 1.2 and 1.3, HTTP/1.1.
    pub fn unverified() -> UpstreamTls {
        UpstreamTls {
            ca: None,
            client: None,
            verify: false,
            name: None,
            sni: true,
            depth: u8::MAX,
            tls12: true,
            tls13: true,
            h2: false,
            id: 0,
        }
        .identified()
    }

    /// `self` with its `id` computed from the other fields.
    pub fn identified(mut self) -> UpstreamTls {
        use std::hash::{Hash, Hasher};
        self.id = 0;
        let mut h = rustc_hash::FxHasher::default();
        self.hash(&mut h);
        self.id = h.finish();
        self
    }
}

impl UpstreamProtocol {
    /// Whether pods get HTTP/2.
    pub fn is_h2(self) -> bool {
        matches!(
            self,
            UpstreamProtocol::H2c | UpstreamProtocol::Grpc | UpstreamProtocol::Grpcs
        )
    }

    /// Whether failures are answered as gRPC errors.
    pub fn is_grpc(self) -> bool {
        matches!(self, UpstreamProtocol::Grpc | UpstreamProtocol::Grpcs)
    }

    /// Whether pods get TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, UpstreamProtocol::Https | UpstreamProtocol::Grpcs)
    }

    /// The label of the upstream metrics.
    pub fn label(self) -> &'static str {
        match self {
            UpstreamProtocol::Http => "http",
            UpstreamProtocol::H2c => "h2c",
            UpstreamProtocol::Grpc => "grpc",
            UpstreamProtocol::Https => "https",
            UpstreamProtocol::Grpcs => "grpcs",
        }
    }
}

/// When a request goes on to the next endpoint (`proxy-next-upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// No connection could be made, or the exchange failed before response headers.
    pub on_error: bool,
    /// Connecting or waiting for response headers took too long.
    pub on_timeout: bool,
    /// Response statuses that are tried again elsewhere (`http_502` …).
    pub on_status: StatusSet,
    /// Requests with non-idempotent methods are tried again after they were sent.
    pub non_idempotent: bool,
    /// Whether a request that reached a pod may go again at all. Without a
    /// `proxy-next-upstream` annotation only requests that never reached one do (a refused
    /// or timed-out connect), as Vestibule always did; the annotation turns on nginx's rules.
    pub after_sent: bool,
    /// Attempts in all, the first included; 0 means as many as there are endpoints.
    pub tries: u32,
    /// Retries start only within this long of the first attempt.
    pub timeout: Option<Duration>,
}

impl Default for Retry {
    /// ingress-nginx's `error timeout`, 3 tries, no time limit; but only for requests that
    /// did not reach a pod (see [`Retry::after_sent`]).
    fn default() -> Self {
        Retry {
            on_error: true,
            on_timeout: true,
            on_status: StatusSet::default(),
            non_idempotent: false,
            after_sent: false,
            tries: 3,
            timeout: None,
        }
    }
}

impl Retry {
    /// Whether a request with `method` may be sent again after it reached a pod.
    pub fn may_resend(&self, method: &Method) -> bool {
        self.after_sent && (self.non_idempotent || method.is_idempotent())
    }
}

/// A small set of status codes (the ones `proxy-next-upstream` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusSet(u8);

impl StatusSet {
    const CODES: [u16; 7] = [403, 404, 429, 500, 502, 503, 504];

    /// Adds `code`; `false` when the set cannot hold it.
    pub fn insert(&mut self, code: u16) -> bool {
        match Self::CODES.iter().position(|c| *c == code) {
            Some(i) => {
                self.0 |= 1 << i;
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, code: StatusCode) -> bool {
        Self::CODES
            .iter()
            .position(|c| *c == code.as_u16())
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// `custom-http-errors`: these upstream statuses are answered by `backend` instead.
#[derive(Debug)]
pub struct CustomErrors {
    pub codes: Vec<u16>,
    pub backend: Arc<Backend>,
}

/// Parses an nginx size: digits with an optional `k`, `m` or `g` (either case). `0` is no
/// limit, returned as `None`.
pub fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, ' '),
    };
    let factor: u64 = match unit {
        ' ' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return Err(format!("{text:?} is not a size (digits with k, m or g)")),
    };
    let n: u64 = match digits.parse() {
        Ok(n) if !digits.starts_with('+') => n,
        _ => return Err(format!("{text:?} is not a size (digits with k, m or g)")),
    };
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    Ok((bytes > 0).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(path: &str, target: &str) -> (Rewrite, PathRegex) {
        (Rewrite::new(target), PathRegex::new(path).unwrap())
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn rewrites_expand_captures_and_keep_the_query() {
        // Rows: ingress-nginx docs/examples/rewrite/README.md and test/e2e/annotations/rewrite.go.
        let rows: &[(&str, &str, &str, Option<&str>, Option<&str>)] = &[
            // rewrite.go "should write rewrite logs": `/` for `/something`.
            ("/something", "/", "/something", None, Some("/")),
            // Mixed case still matches: the pattern is case-insensitive.
            ("/something", "/", "/SomeThing", None, Some("/")),
            // examples/rewrite: /something(/|$)(.*) → /$2.
            ("/something(/|$)(.*)", "/$2", "/something", None, Some("/")),
            ("/something(/|$)(.*)", "/$2", "/something/", None, Some("/")),
            (
                "/something(/|$)(.*)",
                "/$2",
                "/something/new",
                None,
                Some("/new"),
            ),
            // rewrite.go "should allow for custom rewrite parameters".
            (
                "/foo/bar/(.+)",
                "/new/backend/$1",
                "/foo/bar/bar",
                None,
                Some("/new/backend/bar"),
            ),
            // The query follows the new path; a target with its own query gets it after `&`.
            ("/a/(.*)", "/b/$1", "/a/x", Some("q=1"), Some("/b/x?q=1")),
            ("/a/(.*)", "/b?v=2", "/a/x", Some("q=1"), Some("/b?v=2&q=1")),
            // A group that did not take part is empty; `$` without a digit stays.
            ("/a(/x)?", "/b$1$", "/a", None, Some("/b$")),
            // No match: no rewrite.
            ("/other", "/", "/something", None, None),
        ];
        for (path, target, request, query, expected) in rows {
            let (rw, pattern) = rewrite(path, target);
            let got = rw.apply(&pattern, request, *query);
            let want = expected.map(|p| Rewritten::Path(p.to_owned()));
            assert_eq!(got, want, "{path} → {target} on {request}");
        }
        let (rw, pattern) = rewrite("/x", "https://elsewhere.test/$0");
        assert_eq!(
            rw.apply(&pattern, "/x", None),
            Some(Rewritten::Redirect("https://elsewhere.test//x".to_owned()))
        );
    }

    #[test]
    fn sizes_parse_like_nginx() {
        // e2e proxy.go: "8m" is set, "15r" is refused.
        assert_eq!(parse_size("8m"), Ok(Some(8 << 20)));
        assert_eq!(parse_size("8M"), Ok(Some(8 << 20)));
        assert_eq!(parse_size("1k"), Ok(Some(1024)));
        assert_eq!(parse_size("2g"), Ok(Some(2 << 30)));
        assert_eq!(parse_size("1000"), Ok(Some(1000)));
        assert_eq!(parse_size("0"), Ok(None));
        for bad in ["15r", "", "m", "-1", "+1", "1.5m", "99999999999999999999g"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_targets() {
        let www = RedirectTo::Host("www.shop.test".to_owned());
        assert_eq!(
            www.location("https", "shop.test", "/a?b=1").as_deref(),
            Some("https://www.shop.test/a?b=1")
        );
        let root = RedirectTo::Root("/app".to_owned());
        assert_eq!(
            root.location("http", "shop.test:8080", "/").as_deref(),
            Some("http://shop.test:8080/app")
        );
        assert_eq!(
            root.location("http", "shop.test", "/?x=1").as_deref(),
            Some("http://shop.test/app")
        );
        assert_eq!(root.location("http", "shop.test", "/other"), None);
    }

    #[test]
    fn requests_that_reached_a_pod_go_again_only_by_the_annotation() {
        let default = Retry::default();
        assert!(
            !default.may_resend(&Method::GET),
            "without proxy-next-upstream"
        );
        let set = Retry {
            after_sent: true,
            ..Retry::default()
        };
        assert!(set.may_resend(&Method::GET) && set.may_resend(&Method::PUT));
        assert!(!set.may_resend(&Method::POST) && !set.may_resend(&Method::PATCH));
        let any = Retry {
            non_idempotent: true,
            ..set
        };
        assert!(any.may_resend(&Method::POST));
    }

    #[test]
    fn status_sets_hold_what_proxy_next_upstream_names() {
        let mut s = StatusSet::default();
        assert!(s.insert(502));
        assert!(!s.insert(501));
        assert!(s.contains(StatusCode::BAD_GATEWAY));
        assert!(!s.contains(StatusCode::SERVICE_UNAVAILABLE));
    }
}
