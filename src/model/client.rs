//! Who the client is. The TCP peer (or the PROXY protocol's source) is the client unless the
//! controller is told to trust forwarded headers from it (`use-forwarded-headers`); then the
//! client is found in `X-Forwarded-For` the way nginx's realip module finds it with
//! `real_ip_recursive on`: the rightmost address that is not a trusted proxy
//! (`proxy-real-ip-cidr`), or the leftmost when every one is trusted.

use ipnet::IpNet;
use std::net::IpAddr;

/// A set of address ranges (`whitelist-source-range`, `proxy-real-ip-cidr`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet(Vec<IpNet>);

impl IpSet {
    /// Parses a comma-separated list of addresses and CIDR ranges (IPv4 and IPv6); a bare
    /// address is a single-address range. The error names the first entry that is neither.
    pub fn parse(text: &str) -> Result<IpSet, String> {
        let mut nets = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("{entry:?} is not an IP address or CIDR range")),
                },
            };
            nets.push(net);
        }
        Ok(IpSet(nets))
    }

    /// Whether `ip` is in one of the ranges. An IPv4-mapped IPv6 address (a dual-stack
    /// socket's view of an IPv4 client) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, as written back (for `/debug/routes`).
    pub fn ranges(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// How the client address is found (ingress-nginx's ConfigMap keys of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddressRule {
    /// `use-forwarded-headers`: believe `X-Forwarded-For` (the header below), `-Proto`,
    /// `-Port` and `-Host` from trusted peers.
    pub use_forwarded_headers: bool,
    /// `forwarded-for-header`: the header that names the client (`X-Forwarded-For`).
    pub forwarded_for_header: http::HeaderName,
    /// `compute-full-forwarded-for`: the pod gets the received `X-Forwarded-For` with the
    /// peer appended, instead of the client address alone.
    pub compute_full_forwarded_for: bool,
    /// `proxy-real-ip-cidr`: the peers (and forwarded hops) that are trusted. ingress-nginx's
    /// default is `0.0.0.0/0`.
    pub trusted: IpSet,
    /// `use-proxy-protocol`: every connection starts with a PROXY protocol header (v1 or v2).
    pub proxy_protocol: bool,
}

impl Default for ClientAddressRule {
    fn default() -> Self {
        ClientAddressRule {
            use_forwarded_headers: false,
            forwarded_for_header: http::HeaderName::from_static("x-forwarded-for"),
            compute_full_forwarded_for: false,
            trusted: IpSet(vec!["0.0.0.0/0".parse().expect("a valid range")]),
            proxy_protocol: false,
        }
    }
}

impl ClientAddressRule {
    /// The client of a request that came from `peer` with `forwarded` (the values of the
    /// forwarded-for header, in order). Entries that do not parse end the walk, as in nginx.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.use_forwarded_headers || !self.trusted.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusted.contains(ip) {
                break;
            }
        }
        client
    }

    /// Whether forwarded headers from `peer` are believed.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.use_forwarded_headers && self.trusted.contains(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rule(trusted: &str) -> ClientAddressRule {
        ClientAddressRule {
            use_forwarded_headers: true,
            trusted: IpSet::parse(trusted).unwrap(),
            ..ClientAddressRule::default()
        }
    }

    #[test]
    fn ranges_parse_and_contain_both_families() {
        let set = IpSet::parse("10.0.0.0/8, 192.168.1.7 ,2001:db8::/32").unwrap();
        assert!(set.contains(ip("10.1.2.3")));
        assert!(!set.contains(ip("11.0.0.1")));
        assert!(set.contains(ip("192.168.1.7")));
        assert!(!set.contains(ip("192.168.1.8")));
        assert!(set.contains(ip("2001:db8::1")));
        assert!(!set.contains(ip("2001:db9::1")));
        assert!(
            set.contains(ip("::ffff:10.0.0.1")),
            "IPv4-mapped counts as IPv4"
        );
        // A host address with a prefix is its network, as nginx reads it.
        assert!(
            IpSet::parse("10.1.2.3/8")
                .unwrap()
                .contains(ip("10.200.0.1"))
        );
        assert_eq!(
            IpSet::parse("10.0.0.0/8, nonsense").unwrap_err(),
            "\"nonsense\" is not an IP address or CIDR range"
        );
        assert!(IpSet::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn without_forwarded_headers_the_peer_is_the_client() {
        let r = ClientAddressRule::default();
        assert_eq!(
            r.client(ip("192.0.2.1"), ["203.0.113.9"].into_iter()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_name_a_client() {
        let r = rule("10.0.0.0/8");
        assert_eq!(
            r.client(ip("192.0.2.1"), ["203.0.113.9"].into_iter()),
            ip("192.0.2.1")
        );
        assert!(!r.trusts(ip("192.0.2.1")));
        assert!(r.trusts(ip("10.0.0.1")));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let r = rule("10.0.0.0/8");
        let hops = ["198.51.100.1, 203.0.113.9, 10.0.0.2", "10.0.0.3"];
        assert_eq!(
            r.client(ip("10.0.0.1"), hops.into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        // ingress-nginx's default trusts all of IPv4.
        let r = rule("0.0.0.0/0");
        let hops = ["198.51.100.1, 203.0.113.9"];
        assert_eq!(
            r.client(ip("10.0.0.1"), hops.into_iter()),
            ip("198.51.100.1")
        );
        assert_eq!(r.client(ip("10.0.0.1"), [].into_iter()), ip("10.0.0.1"));
    }

    #[test]
    fn a_hop_that_is_not_an_address_ends_the_walk() {
        let r = rule("10.0.0.0/8");
        let hops = ["203.0.113.9, unknown, 10.0.0.2"];
        assert_eq!(r.client(ip("10.0.0.1"), hops.into_iter()), ip("10.0.0.2"));
        assert_eq!(
            r.client(
                ip("10.0.0.1"),
                ["[2001:db8::1]:443, 10.0.0.5:80"].into_iter()
            ),
            ip("2001:db8::1")
        );
    }
}
