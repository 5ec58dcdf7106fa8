//! Who may use a route, as ingress-nginx decides it: address lists (`whitelist-source-range`,
//! `denylist-source-range`), basic auth from an htpasswd Secret, external auth (`auth-url`),
//! `satisfy`, rate and connection limits, and CORS. The rules are pure; the proxy's guard stage
//! applies them and keeps the state (buckets, counters, caches).

use super::client::IpSet;
use super::snapshot::ObjectRef;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The access rules of a route.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub allow: Option<IpSet>,
    pub deny: Option<IpSet>,
    /// The ConfigMap's `block-cidrs`: refused whatever else holds.
    pub blocked: Option<IpSet>,
    /// Path prefixes the external auth skips (`no-auth-locations`, for the global auth).
    pub unguarded_paths: Vec<String>,
    pub basic: Option<BasicAuth>,
    pub external: Option<ExternalAuth>,
    /// `satisfy: any`: the address list or the authentication suffices.
    pub satisfy_any: bool,
}

/// What the address lists say about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressVerdict {
    /// No list applies, or the client is allowed.
    Allowed,
    /// Denied (403).
    Denied,
}

impl Access {
    /// The deny list first, then the allow list (nginx's `deny` … `allow` … `deny all`).
    pub fn address(&self, ip: IpAddr) -> AddressVerdict {
        if self.deny.as_ref().is_some_and(|d| d.contains(ip)) || self.is_blocked(ip) {
            return AddressVerdict::Denied;
        }
        match &self.allow {
            Some(allow) if !allow.contains(ip) => AddressVerdict::Denied,
            _ => AddressVerdict::Allowed,
        }
    }

    /// Whether `block-cidrs` refuses `ip`.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked.as_ref().is_some_and(|b| b.contains(ip))
    }

    /// Whether the external auth guards `path`.
    pub fn external_guards(&self, path: &str) -> bool {
        !self
            .unguarded_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }

    /// Whether an address list is what grants access (for `satisfy any`).
    pub fn has_address_list(&self) -> bool {
        self.allow.is_some() || self.deny.is_some()
    }

    /// Whether the route authenticates at all.
    pub fn authenticates(&self) -> bool {
        self.basic.is_some() || self.external.is_some()
    }
}

/// `auth-type: basic`: the users of an htpasswd file (or an `auth-map` Secret).
#[derive(Clone)]
pub struct BasicAuth {
    pub realm: String,
    /// The Secret the users came from (shown in `/debug/routes`; the hashes never are).
    pub secret: ObjectRef,
    users: FxHashMap<String, String>,
    /// Identifies this set of users, so caches of checked credentials follow a changed Secret.
    pub version: u64,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.realm)
            .field("secret", &self.secret)
            .field("users", &self.users.len())
            .finish()
    }
}

impl BasicAuth {
    /// Users from `name:hash` lines (an htpasswd file). Blank lines and `#` comments are
    /// skipped; a line without a hash in a format htpasswd writes is an error naming the line.
    pub fn from_htpasswd(
        realm: String,
        secret: ObjectRef,
        text: &str,
    ) -> Result<BasicAuth, String> {
        let mut users = FxHashMap::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {} is not user:hash", i + 1));
            };
            check_hash(hash).map_err(|e| format!("line {}: {e}", i + 1))?;
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self::new(realm, secret, users))
    }

    /// Users from an `auth-map` Secret: each key a user, each value a hash.
    pub fn from_map<'a>(
        realm: String,
        secret: ObjectRef,
        entries: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<BasicAuth, String> {
        let mut users = FxHashMap::default();
        for (user, hash) in entries {
            let hash = hash.trim();
            check_hash(hash).map_err(|e| format!("user {user:?}: {e}"))?;
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self::new(realm, secret, users))
    }

    fn new(realm: String, secret: ObjectRef, users: FxHashMap<String, String>) -> BasicAuth {
        let mut sorted: Vec<_> = users.iter().collect();
        sorted.sort();
        let mut hasher = rustc_hash::FxHasher::default();
        std::hash::Hash::hash(&(&realm, sorted), &mut hasher);
        let version = std::hash::Hasher::finish(&hasher);
        BasicAuth {
            realm,
            secret,
            users,
            version,
        }
    }

    /// Whether `Authorization: Basic …` names a user of this file with the right password.
    /// Slow by design for bcrypt: call it off the request runtime.
    pub fn verify(&self, authorization: &[u8]) -> bool {
        let Some((user, password)) = basic_credentials(authorization) else {
            return false;
        };
        match self.users.get(&user) {
            Some(hash) => verify_hash(hash, &password),
            None => false,
        }
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> HeaderValue {
        let realm = self.realm.replace(['"', '\\'], "");
        HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .unwrap_or(HeaderValue::from_static("Basic"))
    }
}

/// `user` and `password` of a `Basic` authorization value.
pub fn basic_credentials(authorization: &[u8]) -> Option<(String, String)> {
    use base64::Engine;
    let text = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `hash` is in a format htpasswd writes: bcrypt (`$2y$`, `$2a$`, `$2b$`), Apache MD5
/// (`$apr1$`), SHA1 (`{SHA}`), or crypt (`$1$`, `$5$`, `$6$`, 13-character DES).
fn check_hash(hash: &str) -> Result<(), String> {
    let known = ["$2y$", "$2a$", "$2b$", "$apr1$", "$1$", "$5$", "$6$"];
    let des = hash.len() == 13
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if known.iter().any(|p| hash.starts_with(p)) || hash.starts_with("{SHA}") || des {
        Ok(())
    } else if hash.is_empty() {
        Err("no password hash".to_owned())
    } else {
        Err("not a password hash htpasswd writes (bcrypt, apr1, SHA1 or crypt)".to_owned())
    }
}

fn verify_hash(hash: &str, password: &str) -> bool {
    if let Some(sha) = hash.strip_prefix("{SHA}") {
        use base64::Engine;
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
        let ours = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        return same(ours.as_bytes(), sha.as_bytes());
    }
    // htpasswd's `$2y$` is bcrypt's `$2b$`.
    crypt3_rs::unix::verify(password, hash)
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `auth-url` and its companions: a sub-request decides.
#[derive(Debug, Clone)]
pub struct ExternalAuth {
    /// The auth service: `http://host[:port]/path?query`.
    pub url: http::Uri,
    /// `auth-method` (default: the request's own method is not used; GET, as nginx's
    /// `auth_request` sends).
    pub method: Method,
    /// `auth-signin`: where a 401 redirects, with `$host`, `$scheme`, `$request_uri` and
    /// `$escaped_request_uri` filled in; `rd=` (or `auth-signin-redirect-param`) is added with
    /// the original URL unless the template already names `$escaped_request_uri`.
    pub signin: Option<String>,
    pub redirect_param: String,
    /// `auth-request-redirect`: sent as `X-Auth-Request-Redirect` (default: the request URI).
    pub request_redirect: Option<HeaderValue>,
    /// `auth-response-headers`: copied from the auth service's answer into the request.
    pub response_headers: Vec<HeaderName>,
    /// `auth-cache-key` with `auth-cache-duration`.
    pub cache: Option<AuthCache>,
    /// `auth-always-set-cookie`: pass the auth service's Set-Cookie on error answers too.
    pub always_set_cookie: bool,
}

/// Which auth answers are remembered, under what key, for how long.
#[derive(Debug, Clone)]
pub struct AuthCache {
    /// The key template: literal text with `$http_<name>`, `$cookie_<name>`, `$remote_addr`,
    /// `$host` and `$request_uri`.
    pub key: String,
    /// Statuses remembered (nginx's `proxy_cache_valid`; default 200 202 401).
    pub statuses: Vec<u16>,
    pub duration: Duration,
}

/// What an external auth answer means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// 2xx: let the request through.
    Allow,
    /// 401 or 403: the client gets it (a 401 becomes the sign-in redirect when there is one).
    Refuse(StatusCode),
    /// Anything else, or no answer: 500.
    Fail,
}

/// nginx's `auth_request`: 2xx allows, 401 and 403 are passed on, the rest is an error.
pub fn auth_verdict(status: StatusCode) -> AuthVerdict {
    match status.as_u16() {
        200..=299 => AuthVerdict::Allow,
        401 | 403 => AuthVerdict::Refuse(status),
        _ => AuthVerdict::Fail,
    }
}

/// The values a template may name, for one request.
pub struct TemplateFacts<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub request_uri: &'a str,
    pub remote_addr: &'a str,
    pub headers: &'a http::HeaderMap,
}

/// The variables a template may use; anything else that looks like one is refused when the
/// annotation is read. Values are only ever placed in a URL or a cache key, never interpreted.
pub const VARIABLES: &[&str] = &[
    "binary_remote_addr",
    "escaped_request_uri",
    "request_uri",
    "remote_addr",
    "scheme",
    "host",
];

/// Fills in `template`'s variables. `$http_<name>` and `$cookie_<name>` read the request.
pub fn expand(template: &str, facts: &TemplateFacts<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = &after[..name_len];
        match name {
            "escaped_request_uri" => out.push_str(&escape(facts.request_uri)),
            "request_uri" => out.push_str(facts.request_uri),
            "remote_addr" | "binary_remote_addr" => out.push_str(facts.remote_addr),
            "scheme" => out.push_str(facts.scheme),
            "host" => out.push_str(facts.host),
            _ if name.starts_with("http_") => {
                let header = name["http_".len()..].replace('_', "-");
                let value = facts.headers.get(header.as_str());
                out.push_str(value.and_then(|v| v.to_str().ok()).unwrap_or(""));
            }
            _ if name.starts_with("cookie_") => out.push_str(
                request_cookie(facts.headers, &name["cookie_".len()..]).unwrap_or_default(),
            ),
            _ => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

/// Whether every `$variable` of `template` is one [`expand`] knows.
pub fn known_variables(template: &str) -> Result<(), String> {
    for (i, _) in template.match_indices('$') {
        let after = &template[i + 1..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let known = VARIABLES.contains(&name.as_str())
            || (name.starts_with("http_") && name.len() > 5)
            || (name.starts_with("cookie_") && name.len() > 7);
        if !known {
            return Err(format!(
                "${name} is not a variable Vestibule fills in ($host, $scheme, $request_uri, $escaped_request_uri, $remote_addr, $http_<name>, $cookie_<name>)"
            ));
        }
    }
    Ok(())
}

/// The value of cookie `name` in a request's Cookie headers (for templates, canaries and
/// session affinity).
pub fn request_cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// nginx's `set_escape_uri`: everything but unreserved characters percent-encoded.
pub fn escape(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, KEEP).to_string()
}

impl ExternalAuth {
    /// The sign-in redirect for a refused request, as ingress-nginx builds it: the template,
    /// and `?rd=<scheme>://<host><escaped request uri>` unless the template carries its own.
    pub fn signin_location(&self, facts: &TemplateFacts<'_>) -> Option<String> {
        let template = self.signin.as_ref()?;
        let mut location = expand(template, facts);
        if !template.contains("$escaped_request_uri") {
            let sep = if location.contains('?') { '&' } else { '?' };
            let original = format!(
                "{}://{}{}",
                facts.scheme,
                facts.host,
                escape(facts.request_uri)
            );
            location.push(sep);
            location.push_str(&self.redirect_param);
            location.push('=');
            location.push_str(&original);
        }
        Some(location)
    }
}

/// `limit-rps`, `limit-rpm`, `limit-connections` per client address, as ingress-nginx (per
/// replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub rps: Option<u32>,
    pub rpm: Option<u32>,
    pub connections: Option<u32>,
    /// `limit-burst-multiplier` (default 5): the burst a rate allows, as a multiple of it.
    pub burst_multiplier: u32,
    /// `limit-whitelist`: addresses no limit applies to.
    pub exempt: Option<IpSet>,
    /// The statuses over the limits (the ConfigMap's `limit-req-status-code`,
    /// `limit-conn-status-code`).
    pub rate_status: StatusCode,
    pub conn_status: StatusCode,
}

impl Limits {
    /// Whether `ip` is exempt from the limits.
    pub fn exempts(&self, ip: IpAddr) -> bool {
        self.exempt.as_ref().is_some_and(|s| s.contains(ip))
    }
}

/// `auth-tls-verify-client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    On,
    Off,
    Optional,
    /// Ask for a certificate, accept any (not checked against the CA).
    OptionalNoCa,
}

/// What a route asks of client certificates (`auth-tls-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertPolicy {
    pub verify: VerifyClient,
    /// `auth-tls-verify-depth` (1): certificates the client may present, its own included.
    pub depth: u8,
    /// `auth-tls-pass-certificate-to-upstream`: the pod gets `ssl-client-cert`.
    pub pass_to_upstream: bool,
    /// `auth-tls-error-page`: a refused request is redirected here instead of a 400.
    pub error_page: Option<HeaderValue>,
}

/// What the client showed during the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedCert {
    /// No certificate (or a plain-HTTP request).
    Missing,
    /// A chain the CA verifies, of this many certificates (the client's own first).
    Verified { chain: usize },
    /// A certificate the CA does not verify, and why (not checked with `optional_no_ca`).
    Failed(String),
    /// A certificate, not checked (`optional_no_ca`).
    Unchecked,
}

impl ClientCertPolicy {
    /// Whether the request may go on; the `Err` is nginx's 400 text.
    pub fn admits(&self, presented: &PresentedCert) -> Result<(), &'static str> {
        match (self.verify, presented) {
            (VerifyClient::Off | VerifyClient::OptionalNoCa, _) => Ok(()),
            (VerifyClient::Optional, PresentedCert::Missing) => Ok(()),
            (VerifyClient::On, PresentedCert::Missing) => {
                Err("400 No required SSL certificate was sent\n")
            }
            (_, PresentedCert::Verified { chain }) if *chain <= usize::from(self.depth) => Ok(()),
            (_, PresentedCert::Verified { .. }) | (_, PresentedCert::Failed(_)) => {
                Err("400 The SSL certificate error\n")
            }
            (_, PresentedCert::Unchecked) => Err("400 The SSL certificate error\n"),
        }
    }

    /// nginx's `$ssl_client_verify` for the `ssl-client-verify` header.
    pub fn verify_header(presented: &PresentedCert) -> String {
        match presented {
            PresentedCert::Missing => "NONE".to_owned(),
            PresentedCert::Verified { .. } => "SUCCESS".to_owned(),
            PresentedCert::Unchecked => "FAILED:unverified".to_owned(),
            PresentedCert::Failed(reason) => format!("FAILED:{reason}"),
        }
    }
}

/// `enable-cors` and the `cors-*` annotations.
#[derive(Debug, Clone)]
pub struct Cors {
    pub origins: CorsOrigins,
    pub methods: HeaderValue,
    pub headers: HeaderValue,
    pub expose: Option<HeaderValue>,
    pub credentials: bool,
    pub max_age: HeaderValue,
}

#[derive(Debug, Clone)]
pub enum CorsOrigins {
    /// `*` (the default, or in the list): every response says `*`.
    Any,
    /// `scheme://host[:port]`, where host may start with `*.` (exactly one more label).
    List(Vec<(String, String, Option<u16>)>),
}

impl Cors {
    /// The `Access-Control-Allow-Origin` for a request with `origin`, or `None` when the
    /// origin is not allowed (no CORS headers then, and a preflight goes to the pod).
    pub fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                let origin = origin?;
                let (scheme, host, port) = split_origin(origin.to_str().ok()?)?;
                let ok = list
                    .iter()
                    .any(|(s, h, p)| *s == scheme && *p == port && host_matches(h, &host));
                ok.then(|| origin.clone())
            }
        }
    }

    /// Parses `cors-allow-origin`: entries that are not origins are skipped, as ingress-nginx
    /// does; `*` anywhere allows every origin.
    pub fn parse_origins(text: &str) -> CorsOrigins {
        let mut list = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return CorsOrigins::Any;
            }
            if let Some(parsed) = split_origin(entry) {
                list.push(parsed);
            }
        }
        CorsOrigins::List(list)
    }
}

/// `https://a.example:8080` → (`https`, `a.example`, Some(8080)).
fn split_origin(text: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = text.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.contains('/') || rest.is_empty() {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (rest, None),
    };
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
    (valid && !host.is_empty()).then(|| (scheme.to_owned(), host.to_ascii_lowercase(), port))
}

/// `*.origin.com` matches `foo.origin.com`, not `a.b.origin.com` (ingress-nginx's regex).
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests;
