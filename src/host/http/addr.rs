//! The address policy of `cs.http.fetch` (contract §6): which IP addresses a function may reach.
//!
//! Pure functions, no I/O. [`check`] is applied to *every* address the fetcher would connect to:
//! IP literals in URLs (including the numeric forms libc's `inet_aton` accepts, see
//! [`parse_ipv4_numeric`]) and every address a host name resolves to.
//!
//! Two classes of denial:
//! - *private* ranges (loopback, RFC 1918, CGNAT, link-local, unique-local, …): denied unless
//!   private networks are allowed (the `allow_private_networks` switch, tests and on-premise);
//! - *non-unicast* ranges (`0.0.0.0/8`, multicast, `240.0.0.0/4` with broadcast, `::`, `ff00::/8`):
//!   always denied, nothing legitimate is there for an HTTP client.
//!
//! IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, SIIT `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo
//! `2001::/32`) are judged by the embedded IPv4 address, so a denied IPv4 address cannot be
//! reached through them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// What the range is, e.g. `"loopback"`.
    pub kind: &'static str,
    /// The range in CIDR notation, e.g. `"127.0.0.0/8"`.
    pub range: &'static str,
    /// The IPv6 form the IPv4 address was embedded in, if any.
    pub via: Option<&'static str>,
    /// `true` for private ranges that `allow_private_networks` lets through; `false` for the
    /// always-denied non-unicast ranges.
    pub private: bool,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.range)?;
        if let Some(via) = self.via {
            write!(f, " embedded in an IPv6 address ({via})")?;
        }
        Ok(())
    }
}

const fn private(kind: &'static str, range: &'static str) -> Denied {
    Denied {
        kind,
        range,
        via: None,
        private: true,
    }
}

const fn never(kind: &'static str, range: &'static str) -> Denied {
    Denied {
        kind,
        range,
        via: None,
        private: false,
    }
}

/// IPv4 ranges never reachable by a function: every entry of the IANA IPv4 Special-Purpose
/// Address Registry marked "not globally reachable" (RFC 6890 and its updates; checked against
/// the registry of 2026), plus multicast: (network, prefix length, denial). Longer prefixes
/// first where ranges nest. The registry's globally reachable exceptions inside 192.0.0.0/24
/// (192.0.0.9, PCP anycast, and 192.0.0.10, TURN anycast) are in [`V4_GLOBAL_EXCEPTIONS`].
const V4_DENIED: &[(u32, u32, Denied)] = &[
    (0x0000_0000, 8, never("\"this network\"", "0.0.0.0/8")),
    (0x0a00_0000, 8, private("private", "10.0.0.0/8")),
    (
        0x6440_0000,
        10,
        private("carrier-grade NAT", "100.64.0.0/10"),
    ),
    (0x7f00_0000, 8, private("loopback", "127.0.0.0/8")),
    (0xa9fe_0000, 16, private("link-local", "169.254.0.0/16")),
    (0xac10_0000, 12, private("private", "172.16.0.0/12")),
    (
        0xc000_0000,
        24,
        private("IETF protocol assignments", "192.0.0.0/24"),
    ),
    (
        0xc000_0200,
        24,
        private("documentation (TEST-NET-1)", "192.0.2.0/24"),
    ),
    (
        0xc058_6300,
        24,
        private("deprecated 6to4 relay anycast", "192.88.99.0/24"),
    ),
    (0xc0a8_0000, 16, private("private", "192.168.0.0/16")),
    (0xc612_0000, 15, private("benchmarking", "198.18.0.0/15")),
    (
        0xc633_6400,
        24,
        private("documentation (TEST-NET-2)", "198.51.100.0/24"),
    ),
    (
        0xcb00_7100,
        24,
        private("documentation (TEST-NET-3)", "203.0.113.0/24"),
    ),
    (0xe000_0000, 4, never("multicast", "224.0.0.0/4")),
    (
        0xf000_0000,
        4,
        never("reserved or broadcast", "240.0.0.0/4"),
    ),
];

/// Globally reachable single addresses inside a denied range of [`V4_DENIED`].
const V4_GLOBAL_EXCEPTIONS: &[u32] = &[0xc000_0009, 0xc000_000a];

/// An address bound on one of this host's own interfaces (whatever its range).
pub const OWN_ADDRESS: Denied = private("an address of this host", "its own interfaces");

fn in_v4(addr: u32, net: u32, len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    addr & mask == net
}

fn in_v6(addr: u128, net: u128, len: u32) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    addr & mask == net
}

/// The policy for an IPv4 address: `Ok(())` when it is public.
pub fn check_v4(ip: Ipv4Addr) -> Result<(), Denied> {
    let a = u32::from(ip);
    if V4_GLOBAL_EXCEPTIONS.contains(&a) {
        return Ok(());
    }
    match V4_DENIED.iter().find(|(net, len, _)| in_v4(a, *net, *len)) {
        Some((_, _, d)) => Err(*d),
        None => Ok(()),
    }
}

fn embedded(ip: Ipv4Addr, via: &'static str) -> Result<(), Denied> {
    check_v4(ip).map_err(|d| Denied {
        via: Some(via),
        ..d
    })
}

/// The policy for an IPv6 address: `Ok(())` when it is public, judging IPv4-embedding forms by
/// their IPv4 address.
pub fn check_v6(ip: Ipv6Addr) -> Result<(), Denied> {
    let a = u128::from(ip);
    let low32 = Ipv4Addr::from(a as u32);
    if a == 0 {
        return Err(never("unspecified", "::/128"));
    }
    if a == 1 {
        return Err(private("loopback", "::1/128"));
    }
    // ::ffff:0:0/96, IPv4-mapped.
    if in_v6(a, 0xffff_0000_0000, 96) {
        return embedded(low32, "IPv4-mapped, ::ffff:0:0/96");
    }
    // ::/96, the deprecated IPv4-compatible form (:: and ::1 handled above).
    if in_v6(a, 0, 96) {
        return embedded(low32, "IPv4-compatible, ::/96");
    }
    // ::ffff:0:0:0/96, IPv4-translated (SIIT).
    if in_v6(a, 0xffff_0000_0000_0000, 96) {
        return embedded(low32, "IPv4-translated, ::ffff:0:0:0/96");
    }
    // 64:ff9b::/96, the well-known NAT64 prefix.
    if in_v6(a, 0x0064_ff9b_u128 << 96, 96) {
        return embedded(low32, "NAT64, 64:ff9b::/96");
    }
    // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): translates into the operator's own networks.
    if in_v6(a, 0x0064_ff9b_0001_u128 << 80, 48) {
        return Err(private("local-use NAT64", "64:ff9b:1::/48"));
    }
    // 2002::/16, 6to4: the IPv4 address is bits 16..48.
    if in_v6(a, 0x2002_u128 << 112, 16) {
        return embedded(Ipv4Addr::from((a >> 80) as u32), "6to4, 2002::/16");
    }
    // 100::/64 discard-only, 100:0:0:1::/64 dummy prefix (RFC 9780).
    if in_v6(a, 0x0100_u128 << 112, 64) {
        return Err(never("discard-only", "100::/64"));
    }
    if in_v6(a, (0x0100_u128 << 112) | (1u128 << 64), 64) {
        return Err(never("dummy prefix", "100:0:0:1::/64"));
    }
    // 2001::/23, IETF protocol assignments, with the registry's globally reachable entries
    // inside it. Teredo (2001::/32) is in it: a tunnel to somewhere no policy can see.
    if in_v6(a, 0x2001_u128 << 112, 23) {
        let global = [
            (0x2001_0001_u128 << 96 | 1, 128), // 2001:1::1, PCP anycast
            (0x2001_0001_u128 << 96 | 2, 128), // 2001:1::2, TURN anycast
            (0x2001_0001_u128 << 96 | 3, 128), // 2001:1::3, DNS-SD SRP anycast
            (0x2001_0003_u128 << 96, 32),      // 2001:3::/32, AMT
            (0x2001_0004_0112_u128 << 80, 48), // 2001:4:112::/48, AS112-v6
            (0x2001_0020_u128 << 96, 28),      // 2001:20::/28, ORCHIDv2
            (0x2001_0030_u128 << 96, 28),      // 2001:30::/28, drone remote ID
        ];
        if global.iter().any(|(net, len)| in_v6(a, *net, *len)) {
            return Ok(());
        }
        if in_v6(a, 0x2001_0000_u128 << 96, 32) {
            return Err(private("Teredo tunnelling", "2001::/32"));
        }
        if in_v6(a, 0x2001_0002_0000_u128 << 80, 48) {
            return Err(private("benchmarking", "2001:2::/48"));
        }
        return Err(private("IETF protocol assignments", "2001::/23"));
    }
    if in_v6(a, 0x2001_0db8_u128 << 96, 32) {
        return Err(private("documentation", "2001:db8::/32"));
    }
    // 3fff::/20, documentation (RFC 9637).
    if in_v6(a, 0x3fff_u128 << 112, 20) {
        return Err(private("documentation", "3fff::/20"));
    }
    // 5f00::/16, SRv6 segment identifiers (RFC 9602).
    if in_v6(a, 0x5f00_u128 << 112, 16) {
        return Err(private("SRv6 SIDs", "5f00::/16"));
    }
    if in_v6(a, 0xfc00_u128 << 112, 7) {
        return Err(private("unique local", "fc00::/7"));
    }
    if in_v6(a, 0xfe80_u128 << 112, 10) {
        return Err(private("link-local", "fe80::/10"));
    }
    if in_v6(a, 0xfec0_u128 << 112, 10) {
        return Err(private("deprecated site-local", "fec0::/10"));
    }
    if in_v6(a, 0xff00_u128 << 112, 8) {
        return Err(never("multicast", "ff00::/8"));
    }
    Ok(())
}

/// The policy of contract §6 for one address: `Ok(())` when `ip` is public.
pub fn check(ip: IpAddr) -> Result<(), Denied> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

/// The policy when private networks are allowed: only the non-unicast ranges are refused.
pub fn check_allowing_private(ip: IpAddr) -> Result<(), Denied> {
    match check(ip) {
        Err(d) if !d.private => Err(d),
        _ => Ok(()),
    }
}

/// Parses `s` the way glibc's `inet_aton` does (and so `getaddrinfo`, `ping`, `curl`, …): one to
/// four dot-separated parts, each decimal, octal (leading `0`) or hex (`0x`); the last part fills
/// the remaining bytes, so `127.1` is `127.0.0.1`, `2130706433` and `0x7f000001` are `127.0.0.1`,
/// `0177.0.0.1` is `127.0.0.1`. Out-of-range parts make the whole string invalid.
///
/// Stricter than glibc in one point: glibc ignores anything after a whitespace character; here any
/// trailing character makes `s` not numeric (it can then only be a host name, whose resolved
/// addresses are vetted anyway).
pub fn parse_ipv4_numeric(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    let mut parts: [u64; 4] = [0; 4];
    let mut n = 0;
    let mut i = 0;
    loop {
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        let mut base = 10u64;
        let mut digit = false;
        if b[i] == b'0' {
            i += 1;
            if i < b.len() && (b[i] == b'x' || b[i] == b'X') {
                base = 16;
                i += 1;
            } else {
                base = 8;
                digit = true;
            }
        }
        let mut val: u64 = 0;
        while i < b.len() {
            let d = match b[i] {
                c @ b'0'..=b'9' => u64::from(c - b'0'),
                c @ b'a'..=b'f' if base == 16 => u64::from(c - b'a' + 10),
                c @ b'A'..=b'F' if base == 16 => u64::from(c - b'A' + 10),
                _ => break,
            };
            if d >= base {
                return None; // `8` or `9` in an octal part
            }
            val = val.checked_mul(base)?.checked_add(d)?;
            if val > u64::from(u32::MAX) {
                return None;
            }
            digit = true;
            i += 1;
        }
        if !digit {
            return None; // a bare `0x`
        }
        if n == 4 {
            return None;
        }
        parts[n] = val;
        n += 1;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            continue;
        }
        break;
    }
    if i != b.len() {
        return None;
    }
    let last = parts[n - 1];
    if parts[..n - 1].iter().any(|p| *p > 0xff) {
        return None;
    }
    let max_last: u64 = match n {
        1 => 0xffff_ffff,
        2 => 0xff_ffff,
        3 => 0xffff,
        _ => 0xff,
    };
    if last > max_last {
        return None;
    }
    let mut addr: u64 = 0;
    for (k, p) in parts[..n - 1].iter().enumerate() {
        addr |= p << (24 - 8 * k);
    }
    addr |= last;
    Some(Ipv4Addr::from(addr as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn every_denied_ipv4_range_is_denied_at_its_edges_and_its_neighbours_pass() {
        // (first, last, address just below, address just above) of each range of contract §6.
        let cases = [
            ("0.0.0.0", "0.255.255.255", None, Some("1.0.0.0")),
            (
                "10.0.0.0",
                "10.255.255.255",
                Some("9.255.255.255"),
                Some("11.0.0.0"),
            ),
            (
                "100.64.0.0",
                "100.127.255.255",
                Some("100.63.255.255"),
                Some("100.128.0.0"),
            ),
            (
                "127.0.0.0",
                "127.255.255.255",
                Some("126.255.255.255"),
                Some("128.0.0.0"),
            ),
            (
                "169.254.0.0",
                "169.254.255.255",
                Some("169.253.255.255"),
                Some("169.255.0.0"),
            ),
            (
                "172.16.0.0",
                "172.31.255.255",
                Some("172.15.255.255"),
                Some("172.32.0.0"),
            ),
            (
                "192.168.0.0",
                "192.168.255.255",
                Some("192.167.255.255"),
                Some("192.169.0.0"),
            ),
            (
                "224.0.0.0",
                "239.255.255.255",
                Some("223.255.255.255"),
                None,
            ),
            ("240.0.0.0", "255.255.255.255", None, None),
            // The IANA special-purpose entries that are not globally reachable.
            (
                "192.0.0.0",
                "192.0.0.255",
                Some("191.255.255.255"),
                Some("192.0.1.0"),
            ),
            (
                "192.0.2.0",
                "192.0.2.255",
                Some("192.0.1.255"),
                Some("192.0.3.0"),
            ),
            (
                "192.88.99.0",
                "192.88.99.255",
                Some("192.88.98.255"),
                Some("192.88.100.0"),
            ),
            (
                "198.18.0.0",
                "198.19.255.255",
                Some("198.17.255.255"),
                Some("198.20.0.0"),
            ),
            (
                "198.51.100.0",
                "198.51.100.255",
                Some("198.51.99.255"),
                Some("198.51.101.0"),
            ),
            (
                "203.0.113.0",
                "203.0.113.255",
                Some("203.0.112.255"),
                Some("203.0.114.0"),
            ),
        ];
        for (first, last, below, above) in cases {
            assert!(check_v4(v4(first)).is_err(), "{first}");
            assert!(check_v4(v4(last)).is_err(), "{last}");
            if let Some(b) = below {
                assert_eq!(check_v4(v4(b)), Ok(()), "{b}");
            }
            if let Some(a) = above {
                assert_eq!(check_v4(v4(a)), Ok(()), "{a}");
            }
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "223.255.255.255",
            "192.0.0.9",    // PCP anycast: globally reachable inside 192.0.0.0/24
            "192.0.0.10",   // TURN anycast
            "192.31.196.1", // AS112-v4, globally reachable
        ] {
            assert_eq!(check_v4(v4(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn named_addresses_get_their_reason() {
        let d = check_v4(v4("169.254.169.254")).unwrap_err();
        assert_eq!(d.range, "169.254.0.0/16");
        assert!(d.private);
        assert_eq!(check_v4(v4("127.0.0.1")).unwrap_err().kind, "loopback");
        let b = check_v4(v4("255.255.255.255")).unwrap_err();
        assert_eq!(b.range, "240.0.0.0/4");
        assert!(!b.private);
        assert!(!check_v4(v4("0.0.0.0")).unwrap_err().private);
        assert!(!check_v4(v4("224.0.0.1")).unwrap_err().private);
        assert_eq!(
            check_v4(v4("10.1.2.3")).unwrap_err().to_string(),
            "private (10.0.0.0/8)"
        );
    }

    #[test]
    fn ipv6_ranges() {
        let denied = [
            ("::", "::/128", false),
            ("::1", "::1/128", true),
            ("fc00::", "fc00::/7", true),
            ("fd12:3456::1", "fc00::/7", true),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7", true),
            ("fe80::", "fe80::/10", true),
            ("fe80::1", "fe80::/10", true),
            ("febf:ffff::1", "fe80::/10", true),
            ("fec0::1", "fec0::/10", true),
            ("ff02::1", "ff00::/8", false),
            ("64:ff9b:1::a00:1", "64:ff9b:1::/48", true),
            ("100::1", "100::/64", false),
            ("100::ffff:ffff:ffff:ffff", "100::/64", false),
            ("100:0:0:1::5", "100:0:0:1::/64", false),
            ("2001:db8::1", "2001:db8::/32", true),
            ("2001:db8:ffff::1", "2001:db8::/32", true),
            ("3fff::1", "3fff::/20", true),
            ("2001:2::1", "2001:2::/48", true),
            ("2001:10::1", "2001::/23", true),
            ("2001:1ff::1", "2001::/23", true),
            ("5f00::1", "5f00::/16", true),
        ];
        for (a, range, private) in denied {
            let d = check_v6(v6(a)).unwrap_err();
            assert_eq!(d.range, range, "{a}");
            assert_eq!(d.private, private, "{a}");
            assert_eq!(d.via, None, "{a}");
        }
        for public in [
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "fbff:ffff::1", // just below fc00::/7
            "fe00::1",      // between fc00::/7 and fe80::/10
            "2001:200::1",  // just above 2001::/23
            "2001:1::1",    // PCP anycast, globally reachable inside 2001::/23
            "2001:3::1",    // AMT
            "2001:20::1",   // ORCHIDv2
            "2001:db7::1",  // just below 2001:db8::/32
            "100:0:0:2::1", // past the dummy prefix
            "::2:0:0:1",    // outside ::/96
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(check_v6(v6(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_a_denied_ipv4_address_are_denied() {
        let cases = [
            ("::ffff:127.0.0.1", "127.0.0.0/8", "IPv4-mapped"),
            ("::ffff:7f00:1", "127.0.0.0/8", "IPv4-mapped"),
            ("::ffff:10.0.0.1", "10.0.0.0/8", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "169.254.0.0/16", "IPv4-mapped"),
            ("::ffff:0.0.0.0", "0.0.0.0/8", "IPv4-mapped"),
            ("::ffff:255.255.255.255", "240.0.0.0/4", "IPv4-mapped"),
            ("::127.0.0.1", "127.0.0.0/8", "IPv4-compatible"),
            ("::10.0.0.1", "10.0.0.0/8", "IPv4-compatible"),
            ("::0.0.0.2", "0.0.0.0/8", "IPv4-compatible"),
            ("::ffff:0:192.168.1.1", "192.168.0.0/16", "IPv4-translated"),
            ("64:ff9b::127.0.0.1", "127.0.0.0/8", "NAT64"),
            ("64:ff9b::a9fe:a9fe", "169.254.0.0/16", "NAT64"),
            ("2002:7f00:1::", "127.0.0.0/8", "6to4"),
            ("2002:c0a8:0101::1", "192.168.0.0/16", "6to4"),
            ("2002:c000:0201::1", "192.0.2.0/24", "6to4"),
        ];
        for (a, range, via) in cases {
            let d = check_v6(v6(a)).unwrap_err();
            assert_eq!(d.range, range, "{a}");
            assert!(d.via.unwrap().starts_with(via), "{a}: {d:?}");
            assert!(d.to_string().contains(via), "{a}: {d}");
        }
        // Teredo is refused whatever it embeds: 2001::/23 is not globally reachable.
        for teredo in ["2001:0:808:808::f7f7:f7f7", "2001:0:a00:1::1"] {
            assert_eq!(check_v6(v6(teredo)).unwrap_err().range, "2001::/32");
        }
    }

    #[test]
    fn check_dispatches_and_the_switch_keeps_non_unicast_denied() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(check(ip("127.0.0.1")).is_err());
        assert!(check(ip("::ffff:127.0.0.1")).is_err());
        assert_eq!(check(ip("8.8.8.8")), Ok(()));
        for ok in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:192.168.0.1",
            "8.8.8.8",
        ] {
            assert_eq!(check_allowing_private(ip(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "::ffff:0.0.0.0",
        ] {
            assert!(check_allowing_private(ip(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_host_forms_parse_like_inet_aton() {
        let ok = [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0X7F000001", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0177.1", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("10.1", "10.0.0.1"),
            ("169.254.43518", "169.254.169.254"),
            ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
            ("0", "0.0.0.0"),
            ("00", "0.0.0.0"),
            ("0x0", "0.0.0.0"),
            ("4294967295", "255.255.255.255"),
            ("0xffffffff", "255.255.255.255"),
            ("1.2.65535", "1.2.255.255"),
            ("1.16777215", "1.255.255.255"),
            ("0x00000000000007f.1", "127.0.0.1"), // leading zeros do not overflow
        ];
        for (s, want) in ok {
            assert_eq!(parse_ipv4_numeric(s), Some(v4(want)), "{s}");
        }
        let bad = [
            "",
            ".",
            "1.",
            ".1",
            "1..1",
            "1.2.3.4.5",
            "4294967296",
            "0x100000000",
            "256.1",
            "1.256.1",
            "1.2.65536",
            "1.16777216",
            "1.2.3.256",
            "08",
            "0179",
            "0x",
            "0x.1",
            "0xg",
            "1a",
            "a1",
            "localhost",
            "example.com",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.4x",
            "+1",
            "-1",
            "99999999999999999999999",
            "1e3",
            "１２７.0.0.1",
        ];
        for s in bad {
            assert_eq!(parse_ipv4_numeric(s), None, "{s:?}");
        }
    }

    #[test]
    fn numeric_forms_of_denied_addresses_are_denied() {
        for s in [
            "2130706433",
            "0x7f.1",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "10.1",
            "0xa9fea9fe",
            "2852039166",
            "0",
        ] {
            let ip = parse_ipv4_numeric(s).unwrap();
            assert!(check_v4(ip).is_err(), "{s} -> {ip}");
        }
        assert_eq!(check_v4(parse_ipv4_numeric("134744072").unwrap()), Ok(())); // 8.8.8.8
    }
}
