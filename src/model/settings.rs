//! Controller-wide settings: the flags' values, overridden key by key by ingress-nginx's
//! ConfigMap (`--configmap namespace/name`, keys as in its `configmap.md`). A key whose value
//! does not parse is an error Diagnostic and keeps the value it had before; a key Vestibule
//! does not implement is a warning; a key removed from the ConfigMap returns to the flag's value.

use super::access::ExternalAuth;
use super::client::{ClientAddressRule, IpSet};
use super::diagnostic::Diagnostic;
use super::policy::{Retry, parse_size};
use super::snapshot::ObjectRef;
use super::values::{boolean, integer, next_upstream, seconds, status_list};
use http::{HeaderName, HeaderValue, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use std::time::Duration;

/// `Strict-Transport-Security` on responses over TLS (`hsts`, `hsts-max-age`,
/// `hsts-include-subdomains`, `hsts-preload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts {
    pub enabled: bool,
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Default for Hsts {
    /// Vestibule's flags' defaults: off (ingress-nginx turns it on; its ConfigMap can too).
    fn default() -> Self {
        Hsts {
            enabled: false,
            max_age: 31_536_000,
            include_subdomains: false,
            preload: false,
        }
    }
}

impl Hsts {
    /// The header value, when HSTS is on.
    pub fn header(&self) -> Option<HeaderValue> {
        if !self.enabled {
            return None;
        }
        let mut value = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        HeaderValue::from_str(&value).ok()
    }
}

/// Settings that hold for every route unless its annotations say otherwise, and for every
/// connection.
#[derive(Debug, Clone)]
pub struct Global {
    /// `proxy-body-size` (`None`: no limit).
    pub proxy_body_size: Option<u64>,
    /// `proxy-connect-timeout`, `-read-`, `-send-` (`None`: the flags' upstream timeouts).
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    /// `proxy-next-upstream`, `-tries`, `-timeout`; `None` keeps Vestibule's default rule.
    pub retry: Option<Retry>,
    /// `ssl-redirect`: plain HTTP to a host with TLS is redirected.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: also hosts without TLS.
    pub force_ssl_redirect: bool,
    /// `custom-http-errors`: statuses the `--default-backend` answers instead of the pod.
    pub custom_http_errors: Vec<u16>,
    pub hsts: Hsts,
    /// The `Strict-Transport-Security` value [`Hsts::header`] makes, made once per build.
    pub hsts_value: Option<HeaderValue>,
    pub client: ClientAddressRule,
    /// `whitelist-source-range`: the allow list of every route without its own.
    pub allow: Option<IpSet>,
    /// `block-cidrs`: addresses refused on every route, whatever its own lists say.
    pub block: Option<IpSet>,
    /// `http-redirect-code`: the status of redirects to https (308).
    pub http_redirect_code: StatusCode,
    /// `proxy-protocol-header-timeout`: how long a PROXY protocol header may take (5s).
    pub proxy_protocol_timeout: Duration,
    /// `global-auth-*`: external auth for every route without its own `auth-url` (and
    /// without `enable-global-auth: "false"`).
    pub external_auth: Option<ExternalAuth>,
    /// `no-auth-locations`: path prefixes the global auth does not guard.
    pub no_auth_locations: Vec<String>,
    /// `load-balance`: how routes without their own rule pick endpoints.
    pub load_balance: super::balance::Balance,
    /// `service-upstream`: every route sends to its Service's cluster IP.
    pub service_upstream: bool,
    /// `limit-req-status-code` and `limit-conn-status-code` (503, as ingress-nginx).
    pub limit_req_status: StatusCode,
    pub limit_conn_status: StatusCode,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            proxy_body_size: Some(1 << 20),
            connect_timeout: None,
            read_timeout: None,
            send_timeout: None,
            retry: None,
            ssl_redirect: true,
            force_ssl_redirect: false,
            custom_http_errors: Vec::new(),
            hsts: Hsts::default(),
            hsts_value: None,
            client: ClientAddressRule::default(),
            allow: None,
            block: None,
            http_redirect_code: StatusCode::PERMANENT_REDIRECT,
            proxy_protocol_timeout: Duration::from_secs(5),
            external_auth: None,
            no_auth_locations: vec!["/.well-known/acme-challenge".to_owned()],
            load_balance: super::balance::Balance::RoundRobin,
            service_upstream: false,
            limit_req_status: StatusCode::SERVICE_UNAVAILABLE,
            limit_conn_status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The settings in force: `defaults` (the flags) with `config_map`'s keys applied; a key whose
/// value is bad keeps its value from `previous` (the settings in force before).
pub fn resolve(
    config_map: Option<&ConfigMap>,
    defaults: &Global,
    previous: &Global,
) -> (Global, Vec<Diagnostic>) {
    let mut out = Reading {
        global: defaults.clone(),
        previous,
        object: ObjectRef {
            kind: "ConfigMap",
            namespace: String::new(),
            name: String::new(),
        },
        diagnostics: Vec::new(),
    };
    let Some(config_map) = config_map else {
        out.global.hsts_value = out.global.hsts.header();
        return (out.global, out.diagnostics);
    };
    out.object = ObjectRef::of("ConfigMap", &config_map.metadata);
    let empty = Default::default();
    let data = config_map.data.as_ref().unwrap_or(&empty);
    // Tries and timeout refine the rule; they are read after it.
    let mut retry_extras = Vec::new();
    for (key, value) in data {
        match key.as_str() {
            "proxy-next-upstream-tries" | "proxy-next-upstream-timeout" => {
                retry_extras.push((key, value))
            }
            _ => out.key(key, value),
        }
    }
    for (key, value) in retry_extras {
        out.key(key, value);
    }
    out.global.hsts_value = out.global.hsts.header();
    (out.global, out.diagnostics)
}

struct Reading<'a> {
    global: Global,
    previous: &'a Global,
    object: ObjectRef,
    diagnostics: Vec<Diagnostic>,
}

impl Reading<'_> {
    fn key(&mut self, key: &str, value: &str) {
        let g = &mut self.global;
        let p = self.previous;
        let result: Result<(), String> = match key {
            "allow-snippet-annotations" => boolean(value).map(|_| ()),
            "proxy-body-size" => parse_size(value).map(|v| g.proxy_body_size = v),
            "proxy-connect-timeout" => seconds(value).map(|v| g.connect_timeout = Some(v)),
            "proxy-read-timeout" => seconds(value).map(|v| g.read_timeout = Some(v)),
            "proxy-send-timeout" => seconds(value).map(|v| g.send_timeout = Some(v)),
            "proxy-next-upstream" => next_upstream(value).map(|r| {
                let old = g.retry.unwrap_or_default();
                g.retry = Some(Retry {
                    tries: old.tries,
                    timeout: old.timeout,
                    ..r
                })
            }),
            "proxy-next-upstream-tries" => integer(value)
                .and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is not a number of tries")))
                .map(|n| g.retry.get_or_insert_with(Retry::default).tries = n),
            "proxy-next-upstream-timeout" => seconds(value).map(|t| {
                g.retry.get_or_insert_with(Retry::default).timeout = (!t.is_zero()).then_some(t)
            }),
            "ssl-redirect" => boolean(value).map(|v| g.ssl_redirect = v),
            "force-ssl-redirect" => boolean(value).map(|v| g.force_ssl_redirect = v),
            "custom-http-errors" => status_list(value).map(|v| g.custom_http_errors = v),
            "hsts" => boolean(value).map(|v| g.hsts.enabled = v),
            "hsts-max-age" => integer(value)
                .and_then(|n| {
                    u64::try_from(n).map_err(|_| format!("{n} is not a number of seconds"))
                })
                .map(|v| g.hsts.max_age = v),
            "hsts-include-subdomains" => boolean(value).map(|v| g.hsts.include_subdomains = v),
            "hsts-preload" => boolean(value).map(|v| g.hsts.preload = v),
            "use-forwarded-headers" => boolean(value).map(|v| g.client.use_forwarded_headers = v),
            "compute-full-forwarded-for" => {
                boolean(value).map(|v| g.client.compute_full_forwarded_for = v)
            }
            "forwarded-for-header" => HeaderName::from_bytes(value.trim().as_bytes())
                .map(|v| g.client.forwarded_for_header = v)
                .map_err(|_| format!("{value:?} is not a header name")),
            "proxy-real-ip-cidr" => IpSet::parse(value).map(|v| g.client.trusted = v),
            "use-proxy-protocol" => boolean(value).map(|v| g.client.proxy_protocol = v),
            "whitelist-source-range" => IpSet::parse(value).map(|v| g.allow = non_empty(v)),
            "block-cidrs" => IpSet::parse(value).map(|v| g.block = non_empty(v)),
            "load-balance" => super::values::load_balance(value).map(|b| g.load_balance = b),
            "service-upstream" => boolean(value).map(|v| g.service_upstream = v),
            "http-redirect-code" => integer(value).and_then(|n| match n {
                301 | 302 | 307 | 308 => StatusCode::from_u16(n as u16)
                    .map(|c| g.http_redirect_code = c)
                    .map_err(|e| e.to_string()),
                n => Err(format!("{n} is not 301, 302, 307 or 308")),
            }),
            "proxy-protocol-header-timeout" => humantime::parse_duration(value.trim())
                .or_else(|_| seconds(value))
                .map(|v| g.proxy_protocol_timeout = v)
                .map_err(|_| format!("{value:?} is not a duration")),
            "no-auth-locations" => {
                g.no_auth_locations = value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(())
            }
            // Read as the auth-* annotations are, by the build (see `ingress_nginx::global_auth`).
            k if k.starts_with("global-auth-") => Ok(()),
            "limit-req-status-code" => status(value).map(|v| g.limit_req_status = v),
            "limit-conn-status-code" => status(value).map(|v| g.limit_conn_status = v),
            _ => {
                let field = format!("data[{key}]");
                let reason = match key.ends_with("-snippet") {
                    true => "ignored: snippets are refused by design",
                    false => "ignored: not supported",
                };
                let d = Diagnostic::warning(self.object.clone(), field, reason);
                self.diagnostics.push(d);
                return;
            }
        };
        if let Err(reason) = result {
            self.keep_previous(key, p);
            let field = format!("data[{key}]");
            let reason = format!("{reason}; the previous value stays");
            self.diagnostics
                .push(Diagnostic::error(self.object.clone(), field, reason));
        }
    }

    /// Restores the setting `key` names to its value in `previous`.
    fn keep_previous(&mut self, key: &str, p: &Global) {
        let g = &mut self.global;
        match key {
            "proxy-body-size" => g.proxy_body_size = p.proxy_body_size,
            "proxy-connect-timeout" => g.connect_timeout = p.connect_timeout,
            "proxy-read-timeout" => g.read_timeout = p.read_timeout,
            "proxy-send-timeout" => g.send_timeout = p.send_timeout,
            "proxy-next-upstream" | "proxy-next-upstream-tries" | "proxy-next-upstream-timeout" => {
                g.retry = p.retry
            }
            "ssl-redirect" => g.ssl_redirect = p.ssl_redirect,
            "force-ssl-redirect" => g.force_ssl_redirect = p.force_ssl_redirect,
            "custom-http-errors" => g.custom_http_errors = p.custom_http_errors.clone(),
            "hsts" => g.hsts.enabled = p.hsts.enabled,
            "hsts-max-age" => g.hsts.max_age = p.hsts.max_age,
            "hsts-include-subdomains" => g.hsts.include_subdomains = p.hsts.include_subdomains,
            "hsts-preload" => g.hsts.preload = p.hsts.preload,
            "use-forwarded-headers" => {
                g.client.use_forwarded_headers = p.client.use_forwarded_headers
            }
            "compute-full-forwarded-for" => {
                g.client.compute_full_forwarded_for = p.client.compute_full_forwarded_for
            }
            "forwarded-for-header" => {
                g.client.forwarded_for_header = p.client.forwarded_for_header.clone()
            }
            "proxy-real-ip-cidr" => g.client.trusted = p.client.trusted.clone(),
            "use-proxy-protocol" => g.client.proxy_protocol = p.client.proxy_protocol,
            "whitelist-source-range" => g.allow = p.allow.clone(),
            "block-cidrs" => g.block = p.block.clone(),
            "load-balance" => g.load_balance = p.load_balance.clone(),
            "service-upstream" => g.service_upstream = p.service_upstream,
            "http-redirect-code" => g.http_redirect_code = p.http_redirect_code,
            "proxy-protocol-header-timeout" => g.proxy_protocol_timeout = p.proxy_protocol_timeout,
            "limit-req-status-code" => g.limit_req_status = p.limit_req_status,
            "limit-conn-status-code" => g.limit_conn_status = p.limit_conn_status,
            _ => {}
        }
    }
}

fn non_empty(set: IpSet) -> Option<IpSet> {
    (!set.is_empty()).then_some(set)
}

fn status(value: &str) -> Result<StatusCode, String> {
    match integer(value)? {
        n @ 200..=599 => StatusCode::from_u16(n as u16).map_err(|e| e.to_string()),
        n => Err(format!("{n} is not an HTTP status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config_map(pairs: &[(&str, &str)]) -> ConfigMap {
        let data: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                namespace: Some("ingress".into()),
                name: Some("vestibule".into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    // configmap.md: the keys' names and meanings.
    #[test]
    fn keys_override_the_flags() {
        let defaults = Global::default();
        let cm = config_map(&[
            ("proxy-body-size", "8m"),
            ("proxy-read-timeout", "120"),
            ("ssl-redirect", "false"),
            ("hsts", "true"),
            ("hsts-include-subdomains", "true"),
            ("hsts-preload", "true"),
            ("hsts-max-age", "600"),
            ("use-forwarded-headers", "true"),
            ("proxy-real-ip-cidr", "10.0.0.0/8,192.168.0.0/16"),
            ("use-proxy-protocol", "true"),
            ("limit-req-status-code", "429"),
            ("whitelist-source-range", "10.0.0.0/8"),
            ("proxy-next-upstream", "error http_502"),
            ("proxy-next-upstream-tries", "5"),
            ("allow-snippet-annotations", "false"),
            ("block-cidrs", "192.0.2.0/24"),
            ("http-redirect-code", "301"),
            ("proxy-protocol-header-timeout", "2s"),
            ("no-auth-locations", "/health, /.well-known/acme-challenge"),
            ("global-auth-url", "http://auth.test/check"),
        ]);
        let (g, diagnostics) = resolve(Some(&cm), &defaults, &defaults);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(g.proxy_body_size, Some(8 << 20));
        assert_eq!(g.read_timeout, Some(Duration::from_secs(120)));
        assert!(!g.ssl_redirect);
        assert_eq!(
            g.hsts.header().unwrap(),
            "max-age=600; includeSubDomains; preload"
        );
        assert!(g.client.use_forwarded_headers && g.client.proxy_protocol);
        assert!(g.client.trusted.contains("192.168.3.4".parse().unwrap()));
        assert!(!g.client.trusted.contains("172.16.0.1".parse().unwrap()));
        assert_eq!(g.limit_req_status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(g.limit_conn_status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(g.allow.unwrap().contains("10.9.9.9".parse().unwrap()));
        let retry = g.retry.unwrap();
        assert!(
            retry.on_error
                && !retry.on_timeout
                && retry.on_status.contains(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(
            retry.tries, 5,
            "tries apply whatever order the keys come in"
        );
        assert!(g.block.unwrap().contains("192.0.2.9".parse().unwrap()));
        assert_eq!(g.http_redirect_code, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(g.proxy_protocol_timeout, Duration::from_secs(2));
        assert_eq!(
            g.no_auth_locations,
            ["/health", "/.well-known/acme-challenge"]
        );
        assert!(g.external_auth.is_none(), "the build reads global-auth-*");
    }

    #[test]
    fn a_bad_value_keeps_the_previous_one_and_says_so() {
        let defaults = Global::default();
        let before = resolve(
            Some(&config_map(&[("proxy-body-size", "4m"), ("hsts", "true")])),
            &defaults,
            &defaults,
        )
        .0;
        let cm = config_map(&[("proxy-body-size", "lots"), ("hsts", "false")]);
        let (g, diagnostics) = resolve(Some(&cm), &defaults, &before);
        assert_eq!(g.proxy_body_size, Some(4 << 20), "the previous value stays");
        assert!(!g.hsts.enabled, "good keys still apply");
        assert_eq!(diagnostics.len(), 1);
        let d = &diagnostics[0];
        assert_eq!(d.object.to_string(), "ConfigMap ingress/vestibule");
        assert_eq!(d.field, "data[proxy-body-size]");
        assert!(
            d.reason.contains("the previous value stays"),
            "{}",
            d.reason
        );
        assert!(!d.is_warning());
    }

    #[test]
    fn unknown_keys_are_warnings_and_removed_keys_return_to_the_flags() {
        let defaults = Global {
            proxy_body_size: Some(2 << 20),
            ..Global::default()
        };
        let before = resolve(
            Some(&config_map(&[("proxy-body-size", "4m")])),
            &defaults,
            &defaults,
        )
        .0;
        let cm = config_map(&[("worker-processes", "4"), ("http-snippet", "x")]);
        let (g, diagnostics) = resolve(Some(&cm), &defaults, &before);
        assert_eq!(g.proxy_body_size, Some(2 << 20));
        assert_eq!(diagnostics.len(), 2);
        assert!(diagnostics.iter().all(Diagnostic::is_warning));
        assert!(diagnostics[0].reason.contains("snippets"));
        assert_eq!(diagnostics[1].reason, "ignored: not supported");
        let (g, none) = resolve(None, &defaults, &before);
        assert_eq!(g.proxy_body_size, defaults.proxy_body_size);
        assert!(none.is_empty());
    }
}
