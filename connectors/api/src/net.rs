//! Where an account's connector may connect: accounts registered by tenant admins
//! must not reach the server's own network (loopback, private, link-local, metadata
//! addresses) unless the operator allows the host. Connectors apply the policy when
//! they connect, to the resolved addresses, so DNS answers and redirects pass the
//! same check.

use crate::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The network policy of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    restricted: bool,
    allow_hosts: Vec<String>,
}

impl NetPolicy {
    /// Anything may be reached (accounts the operator registers).
    pub fn open() -> Self {
        Self::default()
    }

    /// Only public addresses, and the hosts in `allow_hosts` (names as written in
    /// URLs, or IP addresses; case and a trailing dot do not matter).
    pub fn restricted(allow_hosts: &[String]) -> Self {
        Self { restricted: true, allow_hosts: allow_hosts.iter().map(|h| normal_host(h)).collect() }
    }

    pub fn is_restricted(&self) -> bool {
        self.restricted
    }

    /// Whether `host` (a name or an IP literal, brackets allowed) is allow-listed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = normal_host(host);
        self.allow_hosts.contains(&host)
    }

    /// Whether a connection to `ip`, reached through `host`, is allowed.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        !self.restricted || is_public(ip) || self.host_allowed(host) || self.host_allowed(&ip.to_string())
    }

    /// Checks a host as written in a URL: an IP literal is checked as it is; a name
    /// is checked when it is resolved (`localhost` is refused at once).
    pub fn check_host(&self, host: &str) -> Result<(), Error> {
        if !self.restricted || self.host_allowed(host) {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) if !self.allows(host, ip) => Err(refused(host)),
            Err(_) if is_localhost_name(bare) => Err(refused(host)),
            _ => Ok(()),
        }
    }
}

/// The one answer for a refused target: the same whether anything listens there.
pub fn refused(host: &str) -> Error {
    Error::local(format!(
        "{host} is not reachable for accounts registered by tenant admins: it is, or resolves to, a loopback, \
         private, link-local or metadata address (the server's operator may allow the host in [accounts] allow_hosts)"
    ))
}

fn normal_host(h: &str) -> String {
    h.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// `localhost` and names under it (RFC 6761: they resolve to loopback).
pub fn is_localhost_name(host: &str) -> bool {
    let h = normal_host(host);
    h == "localhost" || h.ends_with(".localhost")
}

/// Whether `host` (name or IP literal) is this machine: loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => is_localhost_name(bare),
    }
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918),
/// CGNAT (100.64/10), link-local (169.254/16 with the metadata address, fe80::/10),
/// unique-local (fc00::/7), site-local, unspecified, multicast, broadcast or reserved,
/// and not one of those inside an IPv4-mapped, -compatible, NAT64, 6to4 or Teredo address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return false;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated) ::a.b.c.d
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 64:ff9b::a.b.c.d
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    !((s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: the IPv4 inside is hidden
        || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn inner_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public(ip(a)), "{a}");
        }
        for a in ["1.1.1.1", "172.32.0.1", "100.128.0.1", "8.8.8.8", "2a00:1450:4001::1", "::ffff:8.8.8.8"] {
            assert!(is_public(ip(a)), "{a}");
        }
    }

    #[test]
    fn the_policy_refuses_inner_targets_unless_allowed() {
        let open = NetPolicy::open();
        assert!(open.allows("x", ip("127.0.0.1")) && open.check_host("localhost").is_ok());
        let p = NetPolicy::restricted(&["dav.internal".into(), "10.0.0.5".into()]);
        assert!(!p.allows("evil.example", ip("127.0.0.1")));
        assert!(p.allows("DAV.internal.", ip("10.9.9.9")));
        assert!(p.allows("other", ip("10.0.0.5")));
        assert!(p.allows("public.example", ip("1.1.1.1")));
        for h in ["localhost", "a.localhost", "127.0.0.1", "[::1]", "169.254.169.254", "10.0.0.6"] {
            assert!(p.check_host(h).is_err(), "{h}");
        }
        assert!(p.check_host("10.0.0.5").is_ok() && p.check_host("example.org").is_ok());
        let e = p.check_host("127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("allow_hosts"), "{e}");
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.2", "[::1]", "::1"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "example.org", "localhost.example"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
