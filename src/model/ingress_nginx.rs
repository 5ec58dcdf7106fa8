//! ingress-nginx's annotations, read into typed values: which ones Vestibule implements, how
//! each value is checked, and which are reported as ignored. Every annotation is accepted
//! under `nginx.ingress.kubernetes.io/` and under `vestibule.dev/` (which wins when both are
//! set). The meanings follow ingress-nginx's `annotations.md` and its e2e tests.

use super::access::{
    Access, AuthCache, BasicAuth, ClientCertPolicy, Cors, CorsOrigins, ExternalAuth, Limits,
    VerifyClient,
};
use super::balance::{Affinity, AffinityMode, Balance};
use super::canary::CanaryRule;
use super::client::IpSet;
use super::endpoints::Backend;
use super::host::HostRule;
use super::policy::{
    CustomErrors, Filter, Mirror, MirrorTarget, Policy, Redirect, RedirectTo, Retry, Rewrite,
    UpstreamPolicy, UpstreamProtocol, UpstreamTls, parse_size,
};
use super::settings::Global;
use super::values::{boolean, integer, load_balance, next_upstream, seconds, status_list};
use http::{HeaderName, HeaderValue, StatusCode, header};
use k8s_openapi::api::networking::v1::Ingress;
use std::sync::Arc;
use std::time::Duration;

/// `auth-type: basic`: which Secret holds the users and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuthRef {
    pub namespace: String,
    pub name: String,
    /// `auth-secret-type: auth-map` (user → hash keys) rather than `auth-file` (key `auth`).
    pub map: bool,
    pub realm: String,
}

/// The limit annotations, before the ConfigMap's statuses join them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitAnnotations {
    pub rps: Option<u32>,
    pub rpm: Option<u32>,
    pub connections: Option<u32>,
    pub burst_multiplier: u32,
    pub exempt: Option<IpSet>,
}

/// `proxy-ssl-*`, before the Secret is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySslRef {
    pub secret: Option<(String, String)>,
    pub depth: u8,
    pub verify: bool,
    pub sni: bool,
    pub name: Option<String>,
    pub tls12: bool,
    pub tls13: bool,
}

/// Whether `v` is a DNS name or an IP address rustls can verify against.
fn rustls_name_ok(v: &str) -> bool {
    rustls::pki_types::ServerName::try_from(v.to_owned()).is_ok()
}

/// `auth-tls-secret` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertRef {
    pub namespace: String,
    pub name: String,
    pub verify: VerifyClient,
    pub depth: u8,
    pub pass_to_upstream: bool,
    pub error_page: Option<HeaderValue>,
}

impl ClientCertRef {
    /// The route's side of the rule (the CA goes to the TLS listener).
    pub fn policy(&self) -> ClientCertPolicy {
        ClientCertPolicy {
            verify: self.verify,
            depth: self.depth,
            pass_to_upstream: self.pass_to_upstream,
            error_page: self.error_page.clone(),
        }
    }
}

/// ingress-nginx's CORS defaults (annotations.md).
pub const CORS_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
pub const CORS_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
pub const CORS_MAX_AGE: &str = "1728000";

/// ingress-nginx's prefix.
pub const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// Vestibule's own prefix for the same names.
pub const VESTIBULE: &str = "vestibule.dev/";

/// The annotation names (after the prefix) that Vestibule implements.
pub const IMPLEMENTED: &[&str] = &[
    "affinity",
    "affinity-mode",
    "allowlist-source-range",
    "app-root",
    "auth-always-set-cookie",
    "auth-cache-duration",
    "auth-cache-key",
    "auth-method",
    "auth-realm",
    "auth-request-redirect",
    "auth-response-headers",
    "auth-secret",
    "auth-secret-type",
    "auth-signin",
    "auth-signin-redirect-param",
    "auth-tls-error-page",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-type",
    "auth-url",
    "backend-protocol",
    "canary",
    "canary-by-cookie",
    "canary-by-header",
    "canary-by-header-pattern",
    "canary-by-header-value",
    "canary-weight",
    "canary-weight-total",
    "cors-allow-credentials",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-origin",
    "cors-expose-headers",
    "cors-max-age",
    "custom-http-errors",
    "default-backend",
    "denylist-source-range",
    "enable-cors",
    "enable-global-auth",
    "force-ssl-redirect",
    "from-to-www-redirect",
    "limit-burst-multiplier",
    "limit-connections",
    "limit-rpm",
    "limit-rps",
    "limit-whitelist",
    "load-balance",
    "mirror-host",
    "mirror-request-body",
    "mirror-target",
    "permanent-redirect",
    "permanent-redirect-code",
    "proxy-body-size",
    "proxy-connect-timeout",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "proxy-read-timeout",
    "proxy-send-timeout",
    "proxy-ssl-name",
    "proxy-ssl-protocols",
    "proxy-ssl-secret",
    "proxy-ssl-server-name",
    "proxy-ssl-verify",
    "proxy-ssl-verify-depth",
    "rewrite-target",
    "satisfy",
    "server-alias",
    "service-upstream",
    "session-cookie-change-on-failure",
    "session-cookie-conditional-samesite-none",
    "session-cookie-domain",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-samesite",
    "session-cookie-secure",
    "ssl-passthrough",
    "ssl-redirect",
    "temporal-redirect",
    "temporal-redirect-code",
    "upstream-hash-by",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "upstream-vhost",
    "use-regex",
    "whitelist-source-range",
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
    pub force_ssl_redirect: Option<bool>,
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
    /// `proxy-next-upstream`, `-tries` and `-timeout`, each `None` when absent.
    pub retry_rule: Option<Retry>,
    pub retry_tries: Option<u32>,
    pub retry_timeout: Option<Option<Duration>>,
    /// `default-backend`: a Service of the Ingress's namespace.
    pub default_backend: Option<String>,
    pub custom_http_errors: Option<Vec<u16>>,
    /// `whitelist-source-range` (or `allowlist-source-range`), `denylist-source-range`.
    pub allow: Option<IpSet>,
    pub deny: Option<IpSet>,
    /// `auth-type: basic` with `auth-secret` (namespace, name), `auth-secret-type`
    /// (`auth-map` when true) and `auth-realm`.
    pub basic_auth: Option<BasicAuthRef>,
    pub external_auth: Option<ExternalAuth>,
    pub satisfy_any: bool,
    /// `enable-global-auth: "false"`: the ConfigMap's `global-auth-url` does not apply.
    pub global_auth_off: bool,
    pub cors: Option<Cors>,
    /// `limit-rps`, `limit-rpm`, `limit-connections`, `limit-burst-multiplier`,
    /// `limit-whitelist`; the statuses come from the ConfigMap.
    pub limits: Option<LimitAnnotations>,
    /// `canary: "true"` with its `canary-by-*` and `canary-weight*` rules: the Ingress's paths
    /// are alternatives of the main Ingress's.
    pub canary: Option<CanaryRule>,
    /// `upstream-hash-by` or `affinity: cookie` (the hash wins, as in ingress-nginx).
    pub balance: Balance,
    /// `load-balance` (`round_robin`, `ewma`), when neither of those is set.
    pub load_balance: Option<Balance>,
    /// `service-upstream`: send to the Service's cluster IP, not its endpoints.
    pub service_upstream: Option<bool>,
    pub mirror: Option<Mirror>,
    /// `backend-protocol`.
    pub protocol: UpstreamProtocol,
    /// `ssl-passthrough`: TLS to the Ingress's hosts is spliced to the pods, not terminated.
    pub ssl_passthrough: bool,
    /// `proxy-ssl-*`, read for HTTPS and GRPCS backends.
    pub proxy_ssl: Option<ProxySslRef>,
    /// `auth-tls-*`: a client certificate for the Ingress's hosts.
    pub client_certs: Option<ClientCertRef>,
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

    /// When a request goes to the next endpoint: the annotations, each falling back to
    /// `global` (the ConfigMap's rule), else Vestibule's default.
    pub fn retry(&self, global: Option<Retry>) -> Retry {
        let base = self.retry_rule.or(global).unwrap_or_default();
        Retry {
            tries: self
                .retry_tries
                .or(global.map(|g| g.tries))
                .unwrap_or(base.tries),
            timeout: self
                .retry_timeout
                .or(global.map(|g| g.timeout))
                .unwrap_or(base.timeout),
            ..base
        }
    }

    /// The first error, which disables the routes of the Ingress.
    pub fn denial(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.level == Level::Error)
    }
}

/// What a route's policy depends on besides its Ingress's annotations.
pub struct Context<'a> {
    /// The route's host has TLS.
    pub tls: bool,
    /// The controller-wide defaults (flags and ConfigMap).
    pub global: &'a Global,
    /// The `default-backend` Service, resolved.
    pub fallback: Option<Arc<Backend>>,
    /// Who answers `custom-http-errors`: the `default-backend` Service, else the global one.
    pub error_backend: Option<Arc<Backend>>,
    /// The users of `auth-secret`, read (an error names what is wrong with the Secret).
    pub basic: Option<Result<BasicAuth, String>>,
    /// Whether `auth-tls-secret` holds a usable CA (an error says why not).
    pub client_ca: Option<Result<(), String>>,
    /// TLS to the pods, with `proxy-ssl-secret` read (an error says why not).
    pub upstream_tls: Option<Result<UpstreamTls, String>>,
}

/// `X-Forwarded-Prefix`.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

impl Annotations {
    /// The policy of one route of the Ingress. An Ingress whose annotations have an error
    /// gets a policy that answers 503: never half a policy.
    pub fn policy(&self, cx: Context<'_>) -> Policy {
        let global = cx.global;
        let denied = |reason: String| Policy {
            filters: vec![Filter::Deny(reason)],
            ..Policy::default()
        };
        if let Some(denial) = self.denial() {
            return denied(format!("{}: {}", denial.field, denial.reason));
        }
        if let Some(Err(reason)) = cx.client_ca {
            return denied(reason);
        }
        let upstream_tls = match cx.upstream_tls {
            Some(Err(reason)) => return denied(reason),
            Some(Ok(tls)) => Some(Arc::new(tls)),
            None => None,
        };
        let basic = match cx.basic {
            Some(Err(reason)) => return denied(reason),
            Some(Ok(users)) => Some(users),
            None => None,
        };
        let mut filters = Vec::new();
        // nginx checks the body size before anything else, then `return`s a redirect in the
        // rewrite phase, before the https redirect (Lua, at the end of that phase).
        if let Some(limit) = self.body_size.unwrap_or(global.proxy_body_size) {
            filters.push(Filter::BodyLimit(limit));
        }
        // A preflight is answered in the rewrite phase, before redirects and authentication.
        if let Some(cors) = &self.cors {
            filters.push(Filter::Cors(Arc::new(cors.clone())));
        }
        if let Some((url, code)) = &self.redirect {
            filters.push(Filter::Redirect(Redirect {
                to: RedirectTo::Url(url.clone()),
                code: *code,
            }));
        }
        let force = self.force_ssl_redirect.unwrap_or(global.force_ssl_redirect);
        if force || (cx.tls && self.ssl_redirect.unwrap_or(global.ssl_redirect)) {
            filters.push(Filter::HttpsRedirect(global.http_redirect_code));
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
        let codes = self.custom_http_errors.as_ref();
        let errors = match (codes.or(Some(&global.custom_http_errors)), cx.error_backend) {
            (Some(codes), Some(backend)) if !codes.is_empty() => Some(CustomErrors {
                codes: codes.clone(),
                backend,
            }),
            _ => None,
        };
        Policy {
            filters,
            upstream: UpstreamPolicy {
                connect_timeout: self.connect_timeout.or(global.connect_timeout),
                read_timeout: self.read_timeout.or(global.read_timeout),
                send_timeout: self.send_timeout.or(global.send_timeout),
                retry: self.retry(global.retry),
                protocol: self.protocol,
                request_timeout: None,
                tls: upstream_tls,
                balance: match (&self.balance, &self.load_balance) {
                    (Balance::RoundRobin, Some(lb)) => lb.clone(),
                    (Balance::RoundRobin, None) => global.load_balance.clone(),
                    (b, _) => b.clone(),
                },
                fallback: cx.fallback,
            },
            errors,
            access: self.access(basic, global),
            client_cert: self
                .client_certs
                .as_ref()
                .filter(|c| c.verify != VerifyClient::Off)
                .map(ClientCertRef::policy),
            mirrors: self.mirror.clone().map(Arc::new).into_iter().collect(),
            limits: self.limits.as_ref().map(|l| {
                Arc::new(Limits {
                    rps: l.rps,
                    rpm: l.rpm,
                    connections: l.connections,
                    burst_multiplier: l.burst_multiplier,
                    exempt: l.exempt.clone(),
                    rate_status: global.limit_req_status,
                    conn_status: global.limit_conn_status,
                })
            }),
        }
    }

    /// The access rules: the annotations' address lists (else the ConfigMap's) and auth.
    fn access(&self, basic: Option<BasicAuth>, global: &Global) -> Option<Arc<Access>> {
        let (external, unguarded_paths) = match &self.external_auth {
            Some(own) => (Some(own.clone()), Vec::new()),
            None if !self.global_auth_off => (
                global.external_auth.clone(),
                global.no_auth_locations.clone(),
            ),
            None => (None, Vec::new()),
        };
        let access = Access {
            allow: self.allow.clone().or_else(|| global.allow.clone()),
            deny: self.deny.clone(),
            blocked: global.block.clone(),
            unguarded_paths,
            basic,
            external,
            satisfy_any: self.satisfy_any,
        };
        let any = access.has_address_list() || access.authenticates() || access.blocked.is_some();
        any.then(|| Arc::new(access))
    }
}

/// The ConfigMap's `global-auth-*` keys, read exactly as the `auth-*` annotations of the
/// same names are: the external auth, and findings on `data[global-auth-…]`.
pub fn global_auth(
    data: &std::collections::BTreeMap<String, String>,
) -> (Option<ExternalAuth>, Vec<Finding>) {
    let annotations: std::collections::BTreeMap<String, String> = data
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("global-auth-")?;
            Some((format!("{NGINX}auth-{name}"), v.clone()))
        })
        .collect();
    if !annotations.contains_key(&format!("{NGINX}auth-url")) {
        return (None, Vec::new());
    }
    let ingress = Ingress {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            annotations: Some(annotations),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut read = read(&ingress);
    let findings = read
        .findings
        .drain(..)
        .filter(|f| !f.field.contains("-snippet"))
        .map(|f| Finding {
            field: f.field.replace(
                &format!("metadata.annotations[{NGINX}auth-"),
                "data[global-auth-",
            ),
            ..f
        })
        .collect();
    (read.external_auth, findings)
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
    r.read_access();
    r.read_client_certs();
    r.read_canary();
    r.read_balance();
    r.read_mirror();
    r.read_protocol();
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
        self.out.force_ssl_redirect = self.parsed("force-ssl-redirect", boolean);
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
        self.out.retry_rule = self.parsed("proxy-next-upstream", next_upstream);
        if let Some(n) = self.parsed("proxy-next-upstream-tries", integer) {
            match u32::try_from(n) {
                Ok(n) => self.out.retry_tries = Some(n),
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
            self.out.retry_timeout = Some((!t.is_zero()).then_some(t));
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
        self.out.custom_http_errors = self.parsed("custom-http-errors", status_list);
    }

    fn read_access(&mut self) {
        let allow = self.parsed("whitelist-source-range", IpSet::parse);
        let allow = allow.or_else(|| self.parsed("allowlist-source-range", IpSet::parse));
        self.out.allow = allow;
        self.out.deny = self.parsed("denylist-source-range", IpSet::parse);
        self.out.global_auth_off = self.parsed("enable-global-auth", boolean) == Some(false);
        self.out.satisfy_any = self.parsed("satisfy", |v| match v.trim() {
            "any" => Ok(true),
            "all" | "" => Ok(false),
            other => Err(format!("{other:?} is not \"any\" or \"all\"")),
        }) == Some(true);
        self.read_basic_auth();
        self.read_external_auth();
        self.read_cors();
        self.read_limits();
    }

    fn read_basic_auth(&mut self) {
        let kind = self.parsed("auth-type", |v| match v.trim() {
            "basic" => Ok(true),
            "digest" => Err("digest authentication is not supported; use basic".to_owned()),
            other => Err(format!("{other:?} is not \"basic\"")),
        });
        if kind != Some(true) {
            return;
        }
        let namespace = self.ingress.metadata.namespace.clone().unwrap_or_default();
        let secret = self.parsed("auth-secret", |v| secret_ref(v, &namespace));
        let map = self.parsed("auth-secret-type", |v| match v.trim() {
            "auth-file" | "" => Ok(false),
            "auth-map" => Ok(true),
            other => Err(format!("{other:?} is not \"auth-file\" or \"auth-map\"")),
        });
        let realm = self.get("auth-realm").map(|(_, v)| v.to_owned());
        let Some((namespace, name)) = secret else {
            if self.get("auth-secret").is_none() {
                let key = self.get("auth-type").map(|(k, _)| k).unwrap_or_default();
                self.finding(
                    key,
                    Level::Error,
                    "auth-type basic needs auth-secret".to_owned(),
                );
            }
            return;
        };
        self.out.basic_auth = Some(BasicAuthRef {
            namespace,
            name,
            map: map.unwrap_or(false),
            realm: realm.unwrap_or_default(),
        });
    }

    fn read_external_auth(&mut self) {
        let Some(url) = self.parsed("auth-url", auth_url) else {
            return;
        };
        let method = self
            .parsed("auth-method", |v| {
                http::Method::from_bytes(v.trim().as_bytes())
                    .map_err(|_| format!("{v:?} is not an HTTP method"))
            })
            .unwrap_or(http::Method::GET);
        let signin = self.parsed("auth-signin", |v| {
            super::access::known_variables(v)?;
            let probe = v.replace('$', "");
            match probe.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) => Ok(v.to_owned()),
                _ => Err(format!("{v:?} is not an http or https URL")),
            }
        });
        let redirect_param = self
            .parsed("auth-signin-redirect-param", |v| {
                let v = v.trim();
                let ok = !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                ok.then(|| v.to_owned())
                    .ok_or_else(|| format!("{v:?} is not a query parameter name"))
            })
            .unwrap_or_else(|| "rd".to_owned());
        let response_headers = self
            .parsed("auth-response-headers", |v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| {
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("{h:?} is not a header name"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let request_redirect = self.parsed("auth-request-redirect", |v| {
            HeaderValue::from_str(v.trim()).map_err(|_| format!("{v:?} cannot be a header value"))
        });
        let key = self.parsed("auth-cache-key", |v| {
            super::access::known_variables(v).map(|_| v.to_owned())
        });
        let duration = self.parsed("auth-cache-duration", cache_duration);
        let cache = key.filter(|k| !k.is_empty()).map(|key| {
            let (statuses, duration) =
                duration.unwrap_or((vec![200, 202, 401], Duration::from_secs(300)));
            AuthCache {
                key,
                statuses,
                duration,
            }
        });
        let always_set_cookie = self
            .parsed("auth-always-set-cookie", boolean)
            .unwrap_or(false);
        self.out.external_auth = Some(ExternalAuth {
            url,
            method,
            signin,
            redirect_param,
            request_redirect,
            response_headers,
            cache,
            always_set_cookie,
        });
    }

    fn read_cors(&mut self) {
        if self.parsed("enable-cors", boolean) != Some(true) {
            return;
        }
        let list = |allowed: fn(u8) -> bool| {
            move |v: &str| -> Result<HeaderValue, String> {
                let ok =
                    !v.trim().is_empty() && v.bytes().all(|b| allowed(b) || b == b',' || b == b' ');
                match ok {
                    true => HeaderValue::from_str(v.trim()).map_err(|e| e.to_string()),
                    false => Err(format!("{v:?} is not a comma-separated list")),
                }
            }
        };
        let methods = self.parsed("cors-allow-methods", list(|b| b.is_ascii_alphabetic()));
        let headers = self.parsed(
            "cors-allow-headers",
            list(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        );
        let expose = self.parsed(
            "cors-expose-headers",
            list(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*'),
        );
        let origins = self
            .get("cors-allow-origin")
            .map(|(_, v)| super::access::Cors::parse_origins(v))
            .unwrap_or(CorsOrigins::Any);
        let credentials = self
            .parsed("cors-allow-credentials", boolean)
            .unwrap_or(true);
        let max_age = self
            .parsed("cors-max-age", |v| {
                integer(v).and_then(|n| {
                    u64::try_from(n)
                        .map(HeaderValue::from)
                        .map_err(|_| format!("{n} is not a number of seconds"))
                })
            })
            .unwrap_or(HeaderValue::from_static(CORS_MAX_AGE));
        self.out.cors = Some(Cors {
            origins,
            methods: methods.unwrap_or(HeaderValue::from_static(CORS_METHODS)),
            headers: headers.unwrap_or(HeaderValue::from_static(CORS_HEADERS)),
            expose,
            credentials,
            max_age,
        });
    }

    fn read_limits(&mut self) {
        let count = |v: &str| -> Result<Option<u32>, String> {
            let n = integer(v)?;
            u32::try_from(n)
                .map(|n| (n > 0).then_some(n))
                .map_err(|_| format!("{n} is not a count"))
        };
        let rps = self.parsed("limit-rps", count).flatten();
        let rpm = self.parsed("limit-rpm", count).flatten();
        let connections = self.parsed("limit-connections", count).flatten();
        let burst_multiplier = self
            .parsed("limit-burst-multiplier", count)
            .flatten()
            .unwrap_or(5);
        let exempt = self.parsed("limit-whitelist", IpSet::parse);
        if rps.is_some() || rpm.is_some() || connections.is_some() {
            self.out.limits = Some(LimitAnnotations {
                rps,
                rpm,
                connections,
                burst_multiplier,
                exempt,
            });
        }
    }

    fn read_protocol(&mut self) {
        self.out.ssl_passthrough = self.parsed("ssl-passthrough", boolean).unwrap_or(false);
        self.out.protocol = self
            .parsed("backend-protocol", |v| {
                match v.trim().to_ascii_uppercase().as_str() {
                    "HTTP" | "AUTO_HTTP" => Ok(UpstreamProtocol::Http),
                    "H2C" => Ok(UpstreamProtocol::H2c),
                    "GRPC" => Ok(UpstreamProtocol::Grpc),
                    "HTTPS" => Ok(UpstreamProtocol::Https),
                    "GRPCS" => Ok(UpstreamProtocol::Grpcs),
                    other => Err(format!(
                        "{other:?} is not HTTP, HTTPS, GRPC, GRPCS, H2C or AUTO_HTTP"
                    )),
                }
            })
            .unwrap_or_default();
        if !self.out.protocol.is_tls() {
            return;
        }
        let namespace = self.ingress.metadata.namespace.clone().unwrap_or_default();
        let secret = self.parsed("proxy-ssl-secret", |v| secret_ref(v, &namespace));
        let on_off = |v: &str| match v.trim() {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(format!("{other:?} is not on or off")),
        };
        let verify = self.parsed("proxy-ssl-verify", on_off).unwrap_or(false);
        let sni = self
            .parsed("proxy-ssl-server-name", on_off)
            .unwrap_or(false);
        let name = self.parsed("proxy-ssl-name", |v| {
            let v = v.trim();
            rustls_name_ok(v)
                .then(|| v.to_owned())
                .ok_or_else(|| format!("{v:?} is not a server name"))
        });
        let (tls12, tls13) = self
            .parsed("proxy-ssl-protocols", |v| {
                let (mut t12, mut t13) = (false, false);
                for p in v.split_whitespace() {
                    match p {
                        "TLSv1.2" => t12 = true,
                        "TLSv1.3" => t13 = true,
                        other => {
                            return Err(format!("{other:?}: only TLSv1.2 and TLSv1.3 are spoken"));
                        }
                    }
                }
                match t12 || t13 {
                    true => Ok((t12, t13)),
                    false => Err("no protocol".to_owned()),
                }
            })
            .unwrap_or((true, true));
        let depth = self
            .parsed("proxy-ssl-verify-depth", |v| {
                integer(v).and_then(|n| match u8::try_from(n) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{n} is not a depth (1-255)")),
                })
            })
            .unwrap_or(1);
        if verify && secret.is_none() {
            let key = self
                .get("proxy-ssl-verify")
                .map(|(k, _)| k)
                .unwrap_or_default();
            let reason = "proxy-ssl-verify needs proxy-ssl-secret with the CA (ca.crt)".to_owned();
            self.finding(key, Level::Error, reason);
        }
        self.out.proxy_ssl = Some(ProxySslRef {
            secret,
            depth,
            verify,
            sni,
            name,
            tls12,
            tls13,
        });
    }

    fn read_mirror(&mut self) {
        let Some(target) = self.parsed("mirror-target", |v| {
            let v = v.trim();
            super::access::known_variables(v)?;
            let probe: Result<http::Uri, _> = v.replace('$', "").parse();
            match probe {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                    Ok(v.to_owned())
                }
                _ => Err(format!("{v:?} is not an http or https URL")),
            }
        }) else {
            return;
        };
        let body = self
            .parsed("mirror-request-body", |v| match v.trim() {
                "on" | "true" => Ok(true),
                "off" | "false" => Ok(false),
                other => Err(format!("{other:?} is not on or off")),
            })
            .unwrap_or(true);
        let host = self.parsed("mirror-host", header_token);
        self.out.mirror = Some(Mirror {
            target: MirrorTarget::Url(target),
            host,
            body,
            fraction: None,
        });
    }

    fn read_balance(&mut self) {
        self.out.service_upstream = self.parsed("service-upstream", boolean);
        let key = self.parsed("upstream-hash-by", |v| {
            super::access::known_variables(v)?;
            (!v.trim().is_empty())
                .then(|| v.trim().to_owned())
                .ok_or_else(|| "an empty key".to_owned())
        });
        let subset = self.parsed("upstream-hash-by-subset", boolean) == Some(true);
        let size = self
            .parsed("upstream-hash-by-subset-size", |v| {
                integer(v).and_then(|n| match usize::try_from(n) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{n} is not a subset size")),
                })
            })
            .unwrap_or(3);
        if let Some(key) = key {
            self.out.balance = Balance::Hash {
                key,
                subset: subset.then_some(size),
            };
            return;
        }
        let ewma = self.parsed("load-balance", load_balance);
        if let Some(b) = ewma {
            self.out.load_balance = Some(b);
        }
        let cookie = self.parsed("affinity", |v| match v.trim() {
            "cookie" => Ok(true),
            "" => Ok(false),
            other => Err(format!("{other:?} is not \"cookie\"")),
        });
        if cookie != Some(true) {
            return;
        }
        let mode = self
            .parsed("affinity-mode", |v| match v.trim() {
                "balanced" | "" => Ok(AffinityMode::Balanced),
                "persistent" => Ok(AffinityMode::Persistent),
                other => Err(format!("{other:?} is not balanced or persistent")),
            })
            .unwrap_or(AffinityMode::Balanced);
        let token = |v: &str| {
            let v = v.trim();
            let ok = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b));
            ok.then(|| v.to_owned())
                .ok_or_else(|| format!("{v:?} is not a cookie attribute value"))
        };
        let seconds_count = |v: &str| {
            integer(v).and_then(|n| {
                u64::try_from(n).map_err(|_| format!("{n} is not a number of seconds"))
            })
        };
        let name = self
            .parsed("session-cookie-name", token)
            .unwrap_or_else(|| "INGRESSCOOKIE".to_owned());
        let path = self
            .parsed("session-cookie-path", token)
            .unwrap_or_else(|| "/".to_owned());
        let domain = self.parsed("session-cookie-domain", token);
        let max_age = self.parsed("session-cookie-max-age", seconds_count);
        let expires = self.parsed("session-cookie-expires", seconds_count);
        let secure = self
            .parsed("session-cookie-secure", boolean)
            .unwrap_or(false);
        let same_site = self.parsed("session-cookie-samesite", |v| match v.trim() {
            s @ ("None" | "Lax" | "Strict") => Ok(s.to_owned()),
            other => Err(format!("{other:?} is not None, Lax or Strict")),
        });
        let conditional_same_site_none = self
            .parsed("session-cookie-conditional-samesite-none", boolean)
            .unwrap_or(false);
        let change_on_failure = self
            .parsed("session-cookie-change-on-failure", boolean)
            .unwrap_or(false);
        self.out.balance = Balance::Cookie(Affinity {
            mode,
            name,
            path,
            domain,
            max_age,
            expires,
            secure,
            same_site,
            conditional_same_site_none,
            change_on_failure,
        });
    }

    fn read_canary(&mut self) {
        if self.parsed("canary", boolean) != Some(true) {
            return;
        }
        let header = self.parsed("canary-by-header", |v| {
            HeaderName::from_bytes(v.trim().as_bytes())
                .map_err(|_| format!("{v:?} is not a header name"))
        });
        let header_value = self.parsed("canary-by-header-value", |v| {
            HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be a header value"))
        });
        let header_pattern = self.parsed("canary-by-header-pattern", |v| {
            regex::bytes::Regex::new(v).map_err(|e| format!("{v:?} is not a regex: {e}"))
        });
        let cookie = self.parsed("canary-by-cookie", |v| {
            let v = v.trim();
            let ok = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_graphic() && !b";=,".contains(&b));
            ok.then(|| v.to_owned())
                .ok_or_else(|| format!("{v:?} is not a cookie name"))
        });
        let count = |v: &str| {
            integer(v).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is not a weight")))
        };
        let weight = self.parsed("canary-weight", count).unwrap_or(0);
        let weight_total = self.parsed("canary-weight-total", count).unwrap_or(100);
        let rule = CanaryRule {
            header,
            header_value: header_value.filter(|v| !v.is_empty()),
            header_pattern,
            cookie,
            weight,
            weight_total,
        };
        if weight > rule.total() {
            let key = self
                .get("canary-weight")
                .map(|(k, _)| k)
                .unwrap_or_default();
            let reason = format!("{weight} is more than the total ({})", rule.total());
            self.finding(key, Level::Error, reason);
        }
        self.out.canary = Some(rule);
    }

    fn read_client_certs(&mut self) {
        let namespace = self.ingress.metadata.namespace.clone().unwrap_or_default();
        let Some((namespace, name)) = self.parsed("auth-tls-secret", |v| secret_ref(v, &namespace))
        else {
            return;
        };
        let verify = self
            .parsed("auth-tls-verify-client", |v| match v.trim() {
                "on" => Ok(VerifyClient::On),
                "off" => Ok(VerifyClient::Off),
                "optional" => Ok(VerifyClient::Optional),
                "optional_no_ca" => Ok(VerifyClient::OptionalNoCa),
                other => Err(format!(
                    "{other:?} is not on, off, optional or optional_no_ca"
                )),
            })
            .unwrap_or(VerifyClient::On);
        let depth = self
            .parsed("auth-tls-verify-depth", |v| {
                integer(v).and_then(|n| match u8::try_from(n) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{n} is not a depth (1-255)")),
                })
            })
            .unwrap_or(1);
        let pass_to_upstream = self
            .parsed("auth-tls-pass-certificate-to-upstream", boolean)
            .unwrap_or(false);
        let error_page = self.parsed("auth-tls-error-page", redirect_url);
        self.out.client_certs = Some(ClientCertRef {
            namespace,
            name,
            verify,
            depth,
            pass_to_upstream,
            error_page,
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

/// `name` (in `namespace`) or `namespace/name`, as ingress-nginx takes Secret references.
fn secret_ref(v: &str, namespace: &str) -> Result<(String, String), String> {
    let v = v.trim();
    let (ns, name) = match v.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, v),
    };
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match label(ns) && label(name) {
        true => Ok((ns.to_owned(), name.to_owned())),
        false => Err(format!("{v:?} is not a Secret name or namespace/name")),
    }
}

/// `auth-url`: an http URL with a host and no variables (https needs HTTPS upstreams).
fn auth_url(v: &str) -> Result<http::Uri, String> {
    let v = v.trim();
    if v.contains('$') {
        return Err(format!(
            "{v:?} names a variable; auth-url must be a fixed URL"
        ));
    }
    let uri: http::Uri = v.parse().map_err(|_| format!("{v:?} is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    let host_ok = !host.is_empty()
        && !host.starts_with('.')
        && !host.contains("..")
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'.'
                || b == b'['
                || b == b']'
                || b == b':'
        });
    match uri.scheme_str() {
        Some("http" | "https") if host_ok => Ok(uri),
        _ => Err(format!("{v:?}: invalid url host")),
    }
}

/// `auth-cache-duration`: statuses, then a time (`200 202 401 30m`); a time alone means
/// 200 202 401 (nginx's `proxy_cache_valid`).
fn cache_duration(v: &str) -> Result<(Vec<u16>, Duration), String> {
    let mut statuses = Vec::new();
    let mut duration = None;
    for token in v.split_whitespace() {
        if let Ok(code) = token.parse::<u16>()
            && (100..=599).contains(&code)
            && duration.is_none()
        {
            statuses.push(code);
            continue;
        }
        let (digits, unit) = token
            .split_at(token.len() - token.trim_start_matches(|c: char| c.is_ascii_digit()).len());
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{token:?} is not a status or a time"))?;
        let seconds = match unit {
            "" | "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(format!("{token:?} is not a status or a time")),
        };
        duration = Some(Duration::from_secs(seconds));
    }
    let duration = duration.ok_or_else(|| format!("{v:?} has no time"))?;
    if statuses.is_empty() {
        statuses = vec![200, 202, 401];
    }
    Ok((statuses, duration))
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

#[cfg(test)]
mod tests;
