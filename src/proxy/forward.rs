//! Header rewriting between client and upstream: hop-by-hop removal, `X-Forwarded-*`,
//! `X-Real-IP`, `X-Request-Id`, and the headers an `Upgrade` must keep.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

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
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Facts about one client connection, with the header values every request on it carries
/// (made once per connection, not per request).
#[derive(Debug, Clone)]
pub struct ClientSide {
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The client's IP, for `X-Real-IP` and `X-Forwarded-For`.
    ip: HeaderValue,
    /// The port the client connected to, for `X-Forwarded-Port`.
    port: HeaderValue,
}

impl ClientSide {
    /// A client at `addr` that connected to our `port` over `proto`.
    pub fn new(addr: SocketAddr, proto: &'static str, port: u16) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("-"));
        ClientSide {
            addr,
            proto,
            ip,
            port: HeaderValue::from(port),
        }
    }
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
pub fn request_headers(
    headers: &mut HeaderMap,
    client: &ClientSide,
    host: &HeaderValue,
    upgrade: bool,
) -> HeaderValue {
    strip_hop_by_hop(headers, upgrade);
    let prior = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|prior| !prior.trim().is_empty());
    let forwarded_for = match prior {
        Some(prior) => {
            let ip = client.ip.to_str().unwrap_or("-");
            HeaderValue::from_str(&format!("{prior}, {ip}")).unwrap_or_else(|_| client.ip.clone())
        }
        None => client.ip.clone(),
    };
    headers.insert(X_FORWARDED_FOR, forwarded_for);
    headers.insert(X_REAL_IP, client.ip.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
    headers.insert(X_FORWARDED_HOST, host.clone());
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

    fn client() -> ClientSide {
        ClientSide::new("192.0.2.7:50000".parse().unwrap(), "http", 8080)
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
        let id = request_headers(&mut h, &client(), &HOST, false);
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
        assert_eq!(h["x-forwarded-for"], "203.0.113.1, 192.0.2.7");
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
        let id = request_headers(&mut h, &client(), &HOST, true);
        assert_eq!(id, "abc");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!upgrade_requested(&headers(&[("upgrade", "websocket")])));
    }
}
