//! Who is asking: the client address that limits and throttles count against.
//!
//! The socket peer, unless the peer is one of the operator's proxies
//! (`CLINIC_CONNECT_TRUSTED_PROXIES`): then `X-Forwarded-For` is read from the right, each
//! trusted hop skipped, and the first address not ours is the client. Entries further left
//! were written by whoever sent the request and are never believed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use actix_web::HttpRequest;

/// One trusted network: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(raw: &str) -> Result<Self, String> {
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{raw}` is not an IP address or CIDR network"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{raw}`: the prefix length must be a number from 0 to {max}")),
            },
        };
        Ok(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` may be believed. Empty by default: the peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Comma-separated IP addresses or CIDR networks (`10.0.0.0/8, 192.0.2.7, fd00::/8`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for part in raw.split(',').map(str::trim) {
            if part.is_empty() {
                return Err("an entry is empty (two commas in a row, or a trailing comma)".to_owned());
            }
            networks.push(Network::parse(part)?);
        }
        Ok(Self(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|n| format!("{}/{}", n.addr, n.prefix)).collect();
        f.write_str(&parts.join(", "))
    }
}

/// `::ffff:192.0.2.1` is the IPv4 address it carries: one client, one key.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key a client counts under in limits: the address itself, except that an IPv6 client
/// counts by its /64 (one host usually holds the whole block, so counting single addresses
/// would give it billions of allowances).
pub fn limit_key(addr: IpAddr) -> IpAddr {
    match canonical(addr) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// The request's client address (see the module's documentation).
pub fn client_addr(req: &HttpRequest, trusted: &TrustedProxies) -> IpAddr {
    // No peer only happens for requests built in-process; they count as one unknown client.
    let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let forwarded: Vec<&str> =
        req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    select(peer, &forwarded, trusted)
}

/// The selection itself, apart from the request: `forwarded` lists the header's entries in
/// order, every `X-Forwarded-For` header joined.
pub fn select(peer: IpAddr, forwarded: &[&str], trusted: &TrustedProxies) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted.contains(client) {
        return client;
    }
    for entry in forwarded.iter().rev() {
        let Some(hop) = parse_entry(entry) else {
            // A trusted proxy does not write garbage: whatever is left of here is not
            // believable, so the last hop we could vouch for is the best answer.
            return client;
        };
        client = hop;
        if !trusted.contains(hop) {
            return hop;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_networks() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7 ,fd00::/8,::ffff:198.51.100.1").unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        // An IPv4-mapped address is the IPv4 address, both ways round.
        assert!(t.contains(ip("198.51.100.1")));
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(TrustedProxies::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        assert!(!TrustedProxies::parse("0.0.0.0/0").unwrap().contains(ip("2001:db8::1")));
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn refuses_what_is_not_an_address_or_network() {
        for bad in [
            "",
            "proxy.internal",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.1,,10.0.0.2",
            "10.0.0.1,",
            "10.0.0.256",
            "10.0.0.1:80",
        ] {
            let err = TrustedProxies::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(TrustedProxies::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
    }

    #[test]
    fn limits_count_ipv4_addresses_alone_and_ipv6_by_their_slash_64() {
        assert_eq!(limit_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(limit_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(limit_key(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), limit_key(ip("2001:db8:1:2::1")));
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(select(ip("203.0.113.9"), &["198.51.100.1"], &none), ip("203.0.113.9"));
        // A peer that is not a trusted proxy cannot speak for anyone else either.
        let trusted = TrustedProxies::parse("10.0.0.1").unwrap();
        assert_eq!(select(ip("203.0.113.9"), &["198.51.100.1"], &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client_and_spoofed_entries_are_ignored() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client claimed to be 1.2.3.4 and 5.6.7.8; our proxy appended what it saw.
        let header = ["1.2.3.4", " 5.6.7.8", " 203.0.113.9"];
        assert_eq!(select(ip("10.0.0.1"), &header, &trusted), ip("203.0.113.9"));
        // Two of our proxies in a row are both skipped.
        let header = ["1.2.3.4", "203.0.113.9", "10.0.0.2"];
        assert_eq!(select(ip("10.0.0.1"), &header, &trusted), ip("203.0.113.9"));
        // Ports and brackets are tolerated.
        assert_eq!(select(ip("10.0.0.1"), &["203.0.113.9:4711"], &trusted), ip("203.0.113.9"));
        assert_eq!(select(ip("10.0.0.1"), &["[2001:db8::1]:4711"], &trusted), ip("2001:db8::1"));
        // Nothing forwarded, or only our own hops: the left-most trusted hop we know.
        assert_eq!(select(ip("10.0.0.1"), &[], &trusted), ip("10.0.0.1"));
        assert_eq!(select(ip("10.0.0.1"), &["10.0.0.3"], &trusted), ip("10.0.0.3"));
        // Garbage where our proxy should have written an address: stop at the last hop we trust.
        assert_eq!(select(ip("10.0.0.1"), &["203.0.113.9", "not-an-ip"], &trusted), ip("10.0.0.1"));
        assert_eq!(select(ip("10.0.0.1"), &["not-an-ip", "10.0.0.4"], &trusted), ip("10.0.0.4"));
    }
}
