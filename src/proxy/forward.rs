//! Header rewriting between client and upstream: hop-by-hop removal, `X-Forwarded-*`,
//! `X-Real-IP`, `X-Request-Id`, and the headers an `Upgrade` must keep.

use crate::model::client::ClientAddressRule;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// non-standard `Proxy-Connection` and `Keep-Alive`.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub const X_ORIGINAL_FORWARDED_FOR: HeaderName =
    HeaderName::from_static("x-original-forwarded-for");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Facts about one client connection, with the header values every request on it carries
/// (made once per connection, not per request).
#[derive(Debug, Clone)]
pub struct ClientSide {
    /// The peer, or the source a PROXY protocol header named.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The peer's IP, for `X-Real-IP` and `X-Forwarded-For`.
    ip: HeaderValue,
    /// The port the client connected to, for `X-Forwarded-Port`.
    port: HeaderValue,
}

impl ClientSide {
    /// A client at `addr` that connected to our `port` over `proto`.
    pub fn new(addr: SocketAddr, proto: &'static str, port: u16) -> Self {
        ClientSide {
            addr,
            proto,
            ip: ip_value(addr.ip()),
            port: HeaderValue::from(port),
        }
    }

    /// The client of one request: this connection's peer, unless `rule` trusts the peer's
    /// forwarded headers, which then name the client, the scheme, the port and the host.
    pub fn client(&self, headers: &HeaderMap, rule: &ClientAddressRule) -> Client {
        let received = || {
            headers
                .get_all(&rule.forwarded_for_header)
                .iter()
                .filter_map(|v| v.to_str().ok())
        };
        let original = headers.get(&X_FORWARDED_FOR).cloned();
        if !rule.trusts(self.addr.ip()) {
            return Client {
                ip: self.addr.ip(),
                real_ip: self.ip.clone(),
                forwarded_for: self.ip.clone(),
                proto: HeaderValue::from_static(self.proto),
                port: self.port.clone(),
                host: None,
                original_forwarded_for: original,
            };
        }
        let ip = rule.client(self.addr.ip(), received());
        let real_ip = ip_value(ip);
        let joined: Vec<&str> = received().collect();
        let forwarded_for = match (rule.compute_full_forwarded_for, joined.is_empty()) {
            (true, false) => {
                HeaderValue::from_str(&format!("{}, {}", joined.join(", "), self.addr.ip()))
                    .unwrap_or_else(|_| self.ip.clone())
            }
            (true, true) => self.ip.clone(),
            (false, _) => real_ip.clone(),
        };
        let non_empty = |name: &HeaderName| headers.get(name).filter(|v| !v.is_empty()).cloned();
        Client {
            ip,
            real_ip,
            forwarded_for,
            proto: non_empty(&X_FORWARDED_PROTO)
                .unwrap_or_else(|| HeaderValue::from_static(self.proto)),
            port: non_empty(&X_FORWARDED_PORT).unwrap_or_else(|| self.port.clone()),
            host: non_empty(&X_FORWARDED_HOST),
            original_forwarded_for: original,
        }
    }
}

/// Who one request is from, as the pod will be told (`X-Real-IP`, `X-Forwarded-*`).
#[derive(Debug, Clone)]
pub struct Client {
    /// The client address: what allow lists, rate limits and the access log use.
    pub ip: IpAddr,
    real_ip: HeaderValue,
    forwarded_for: HeaderValue,
    /// `http` or `https`: the scheme the client used (a trusted `X-Forwarded-Proto`).
    pub proto: HeaderValue,
    port: HeaderValue,
    /// A trusted `X-Forwarded-Host`.
    host: Option<HeaderValue>,
    /// The `X-Forwarded-For` the request came with, passed on as `X-Original-Forwarded-For`.
    original_forwarded_for: Option<HeaderValue>,
}

impl Client {
    /// Whether the client used https (for redirects from plain HTTP).
    pub fn used_https(&self) -> bool {
        self.proto.as_bytes().eq_ignore_ascii_case(b"https")
    }
}

fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Whether the request asks to switch protocols (WebSocket and the like) over HTTP/1.1.
pub fn upgrade_requested(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// Whether the upgrade asked for is a WebSocket (whose frames a drain may close cleanly).
pub fn upgrade_is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers, including those the `Connection` header names. With
/// `keep_upgrade`, `Upgrade` and `Connection: upgrade` survive so the handshake reaches the peer.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One look at each name present beats a hashed removal for every name that might be.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || (!keep_upgrade && *name == header::UPGRADE))
        .cloned()
        .collect();
    if doomed.contains(&header::CONNECTION) {
        let named = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE));
        doomed.extend(named);
    }
    for name in doomed {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Rewrites a request's headers for the upstream and returns its request id (kept from the
/// client when it sent one, otherwise new). `host` is the host the client asked for, as sent.
/// As ingress-nginx, the pod learns the client address alone in `X-Forwarded-For` (the
/// received chain only from a trusted peer with `compute-full-forwarded-for`); the chain the
/// client sent comes as `X-Original-Forwarded-For`.
pub fn request_headers(
    headers: &mut HeaderMap,
    client: &Client,
    host: &HeaderValue,
    upgrade: bool,
) -> HeaderValue {
    strip_hop_by_hop(headers, upgrade);
    if let Some(original) = &client.original_forwarded_for {
        headers.insert(X_ORIGINAL_FORWARDED_FOR, original.clone());
    }
    headers.insert(X_FORWARDED_FOR, client.forwarded_for.clone());
    headers.insert(X_REAL_IP, client.real_ip.clone());
    headers.insert(X_FORWARDED_PROTO, client.proto.clone());
    headers.insert(
        X_FORWARDED_HOST,
        client.host.clone().unwrap_or_else(|| host.clone()),
    );
    headers.insert(X_FORWARDED_PORT, client.port.clone());
    match headers.get(&X_REQUEST_ID) {
        Some(id) if !id.is_empty() => id.clone(),
        _ => {
            let id = new_request_id();
            headers.insert(X_REQUEST_ID, id.clone());
            id
        }
    }
}

/// 32 lower-case hex digits, as ingress-nginx's `$req_id`.
pub fn new_request_id() -> HeaderValue {
    let id = uuid::Uuid::new_v4();
    let mut buf = [0u8; 32];
    let text = id.simple().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn side() -> ClientSide {
        ClientSide::new("192.0.2.7:50000".parse().unwrap(), "http", 8080)
    }

    fn client(h: &HeaderMap) -> Client {
        side().client(h, &ClientAddressRule::default())
    }

    fn trusting(full: bool) -> ClientAddressRule {
        ClientAddressRule {
            use_forwarded_headers: true,
            compute_full_forwarded_for: full,
            trusted: crate::model::client::IpSet::parse("192.0.2.0/24").unwrap(),
            ..ClientAddressRule::default()
        }
    }

    const HOST: HeaderValue = HeaderValue::from_static("shop.example:8080");

    #[test]
    fn hop_by_hop_headers_go_and_forwarded_headers_come() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-proto", "https"),
            ("accept", "*/*"),
        ]);
        let c = client(&h);
        let id = request_headers(&mut h, &c, &HOST, false);
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "transfer-encoding",
            "te",
            "upgrade",
        ] {
            assert!(!h.contains_key(gone), "{gone} should be removed");
        }
        assert_eq!(
            h["x-forwarded-for"], "192.0.2.7",
            "an untrusted peer's chain is not passed on as ingress-nginx"
        );
        assert_eq!(h["x-original-forwarded-for"], "203.0.113.1");
        assert_eq!(
            h["x-forwarded-proto"], "http",
            "the client does not choose the proto"
        );
        assert_eq!(h["x-forwarded-host"], "shop.example:8080");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(id.len(), 32);
        assert_eq!(h["x-request-id"], id);
    }

    #[test]
    fn request_id_is_kept_and_upgrade_survives() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("x-request-id", "abc"),
        ]);
        assert!(upgrade_requested(&h));
        let c = client(&h);
        let id = request_headers(&mut h, &c, &HOST, true);
        assert_eq!(id, "abc");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!upgrade_requested(&headers(&[("upgrade", "websocket")])));
    }

    // ingress-nginx's nginx.tmpl: with use-forwarded-headers the client, scheme, port and host
    // come from a trusted peer's headers; compute-full-forwarded-for appends the peer.
    #[test]
    fn a_trusted_peer_names_the_client_scheme_port_and_host() {
        let sent = headers(&[
            ("x-forwarded-for", "203.0.113.1, 198.51.100.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-host", "shop.example"),
        ]);
        let c = side().client(&sent, &trusting(false));
        assert_eq!(c.ip, "198.51.100.2".parse::<IpAddr>().unwrap());
        assert!(c.used_https());
        let mut h = sent.clone();
        request_headers(&mut h, &c, &HOST, false);
        assert_eq!(h["x-forwarded-for"], "198.51.100.2");
        assert_eq!(h["x-real-ip"], "198.51.100.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-forwarded-host"], "shop.example");

        let full = side().client(&sent, &trusting(true));
        let mut h = sent.clone();
        request_headers(&mut h, &full, &HOST, false);
        assert_eq!(h["x-forwarded-for"], "203.0.113.1, 198.51.100.2, 192.0.2.7");
        assert_eq!(h["x-real-ip"], "198.51.100.2");

        let untrusted = ClientSide::new("10.9.9.9:1".parse().unwrap(), "http", 80);
        let c = untrusted.client(&sent, &trusting(true));
        assert_eq!(c.ip, "10.9.9.9".parse::<IpAddr>().unwrap());
        assert!(
            !c.used_https(),
            "an untrusted peer's X-Forwarded-Proto is ignored"
        );
    }
}
