//! Which hosts ringback may POST a client's events to (api.md §9 "Callback hosts").
//!
//! A `callbackUrl` is chosen by whoever holds an API token, and every attempt's status and latency
//! show on the call's timeline: were ringback to call any address, a token holder could map (and
//! POST to) the network ringback runs in, cloud metadata included. So a deployment calls public
//! unicast addresses only, and `ringback-local` adds loopback, where a developer's receiver runs.
//!
//! The rules are judged on addresses, wherever they come from: a literal in the URL, or each
//! address a name resolves to at connect time (`adapters::callback_http`), so a name that points at
//! a private address (or is re-pointed there after the request was accepted) gets nowhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What an address is, as far as callbacks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast: a receiver on the internet.
    Public,
    /// This machine (127/8, ::1): allowed in the local runner only.
    Loopback,
    /// Never called; the word says why ("private", "link-local", ...).
    Forbidden(&'static str),
}

/// The policy: which address classes a deployment may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallbackHosts {
    /// Public addresses only (every Lambda).
    #[default]
    Deployment,
    /// Public addresses and loopback, over http or https (`ringback-local`: a receiver on the
    /// developer's machine); private networks are still refused.
    Local,
}

impl CallbackHosts {
    /// `CALLBACK_HOSTS`: `deployment` or `local`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "deployment" => Ok(Self::Deployment),
            "local" => Ok(Self::Local),
            other => Err(format!("{other:?} is neither \"deployment\" nor \"local\"")),
        }
    }

    pub fn allows(self, ip: IpAddr) -> bool {
        self.check_ip(ip).is_ok()
    }

    /// `Ok` if ringback may connect to `ip`; otherwise why not, naming the address (it is the
    /// client's own input, or a class of address, never what a name resolved to).
    pub fn check_ip(self, ip: IpAddr) -> Result<(), String> {
        match (classify(ip), self) {
            (AddressClass::Public, _) | (AddressClass::Loopback, Self::Local) => Ok(()),
            (AddressClass::Loopback, Self::Deployment) => Err(format!(
                "host {ip} is a loopback address; callbacks go to public hosts only"
            )),
            (AddressClass::Forbidden(why), _) => Err(format!(
                "host {ip} is a {why} address; callbacks go to public hosts only"
            )),
        }
    }

    /// Judges a URL's host (as the `url` crate parsed it: IPv4 in any of its decimal, octal or
    /// hex spellings is already an address here). `Ok(true)`: a loopback host, which may be
    /// plain http in the local runner. Names are judged by their spelling only; what they
    /// resolve to is judged when connecting.
    pub fn check_host(self, host: &url::Host<&str>) -> Result<bool, String> {
        match host {
            url::Host::Ipv4(a) => self.check_ip(IpAddr::V4(*a)).map(|()| a.is_loopback()),
            url::Host::Ipv6(a) => {
                let ip = IpAddr::V6(*a);
                self.check_ip(ip)
                    .map(|()| classify(ip) == AddressClass::Loopback)
            }
            url::Host::Domain(d) => self.check_name(d),
        }
    }

    fn check_name(self, name: &str) -> Result<bool, String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let under = |zone: &str| name == zone || name.ends_with(&format!(".{zone}"));
        // RFC 6761: localhost and its subdomains are this machine, whatever DNS says.
        if under("localhost") {
            return match self {
                Self::Local => Ok(true),
                Self::Deployment => Err(format!(
                    "host {name} is this machine; callbacks go to public hosts only"
                )),
            };
        }
        // Names only a private network resolves: mDNS (RFC 6762), home networks (RFC 8375),
        // ICANN's private-use TLD (2024), and single labels, which a resolver completes with the
        // network's own search domains (`https://metadata/`). Refused by name so that the client
        // hears it at once rather than as failed attempts.
        let private = [
            "local",
            "internal",
            "home.arpa",
            "localdomain",
            "intranet",
            "lan",
        ];
        if !name.contains('.') || private.iter().any(|z| under(z)) {
            return Err(format!(
                "host {name} is a private-network name; callbacks go to public hosts only"
            ));
        }
        Ok(false)
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(a: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let [o0, o1, o2, _] = a.octets();
    match (o0, o1, o2) {
        (0, _, _) => Forbidden("unspecified"),
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Forbidden("private"),
        (100, 64..=127, _) => Forbidden("shared (CGNAT)"),
        (127, _, _) => Loopback,
        (169, 254, _) => Forbidden("link-local"),
        (192, 0, 0) => Forbidden("IETF protocol"),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Forbidden("documentation"),
        // The 6to4 relay anycast (deprecated by RFC 7526): whoever is nearest answers.
        (192, 88, 99) => Forbidden("6to4 relay"),
        (198, 18..=19, _) => Forbidden("benchmarking"),
        (224..=239, _, _) => Forbidden("multicast"),
        _ if a.is_broadcast() => Forbidden("broadcast"),
        (240..=255, _, _) => Forbidden("reserved"),
        _ => Public,
    }
}

fn classify_v6(a: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if a.is_unspecified() {
        return Forbidden("unspecified");
    }
    if a.is_loopback() {
        return Loopback;
    }
    // Forms that carry an IPv4 address the packet ends up at: judged as that address, so that
    // `[::ffff:10.0.0.1]` is as private as 10.0.0.1.
    if let Some(v4) = embedded_v4(a) {
        return classify_v4(v4);
    }
    let s = a.segments();
    match s[0] {
        // NAT64 for a network's own use (RFC 8215): translates to its private IPv4.
        0x64 if s[1] == 0xff9b && s[2] == 1 => Forbidden("NAT64 local-use"),
        0x100 if s[1..4] == [0, 0, 0] => Forbidden("discard-only"),
        x if x & 0xfe00 == 0xfc00 => Forbidden("unique-local"),
        x if x & 0xffc0 == 0xfe80 => Forbidden("link-local"),
        x if x & 0xffc0 == 0xfec0 => Forbidden("site-local"),
        x if x & 0xff00 == 0xff00 => Forbidden("multicast"),
        0x2001 if s[1] == 0x0db8 => Forbidden("documentation"),
        0x3fff if s[1] < 0x1000 => Forbidden("documentation"),
        // 2001::/23: Teredo (which tunnels to an IPv4 address we cannot judge), benchmarking,
        // ORCHID and other protocol assignments; no receiver lives there.
        0x2001 if s[1] < 0x0200 => Forbidden("IETF protocol"),
        // Every global unicast allocation is in 2000::/3; the rest is reserved or unassigned.
        x if x & 0xe000 != 0x2000 => Forbidden("reserved"),
        _ => Public,
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`,
/// deprecated), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4
/// (`2002:AABB:CCDD::`) address.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0, 0, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use AddressClass::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_range_is_classified() {
        let table: &[(&str, AddressClass)] = &[
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("93.184.215.14", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("172.15.255.255", Public),
            ("172.32.0.0", Public),
            ("192.167.255.255", Public),
            ("198.17.255.255", Public),
            ("198.20.0.0", Public),
            ("223.255.255.255", Public),
            ("0.0.0.0", Forbidden("unspecified")),
            ("0.1.2.3", Forbidden("unspecified")),
            ("10.0.0.1", Forbidden("private")),
            ("10.255.255.255", Forbidden("private")),
            ("172.16.0.1", Forbidden("private")),
            ("172.31.255.255", Forbidden("private")),
            ("192.168.1.1", Forbidden("private")),
            ("100.64.0.1", Forbidden("shared (CGNAT)")),
            ("100.127.255.255", Forbidden("shared (CGNAT)")),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("169.254.169.254", Forbidden("link-local")),
            ("192.0.0.170", Forbidden("IETF protocol")),
            ("192.0.2.1", Forbidden("documentation")),
            ("198.51.100.7", Forbidden("documentation")),
            ("203.0.113.9", Forbidden("documentation")),
            ("192.88.99.1", Forbidden("6to4 relay")),
            ("198.18.0.1", Forbidden("benchmarking")),
            ("198.19.255.255", Forbidden("benchmarking")),
            ("224.0.0.1", Forbidden("multicast")),
            ("239.255.255.250", Forbidden("multicast")),
            ("240.0.0.1", Forbidden("reserved")),
            ("255.255.255.254", Forbidden("reserved")),
            ("255.255.255.255", Forbidden("broadcast")),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001:80b::200e", Public),
            ("::", Forbidden("unspecified")),
            ("::1", Loopback),
            ("::ffff:10.0.0.1", Forbidden("private")),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", Forbidden("link-local")),
            ("::ffff:8.8.8.8", Public),
            ("::10.0.0.1", Forbidden("private")),
            ("::ffff:0:192.168.0.1", Forbidden("private")),
            ("64:ff9b::10.0.0.1", Forbidden("private")),
            ("64:ff9b::169.254.169.254", Forbidden("link-local")),
            ("64:ff9b::8.8.8.8", Public),
            ("64:ff9b:1::1", Forbidden("NAT64 local-use")),
            ("2002:0a00:0001::1", Forbidden("private")),
            ("2002:7f00:0001::", Loopback),
            ("2002:0808:0808::1", Public),
            ("100::1", Forbidden("discard-only")),
            ("fc00::1", Forbidden("unique-local")),
            ("fd00::1", Forbidden("unique-local")),
            ("fdff:ffff::1", Forbidden("unique-local")),
            ("fe80::1", Forbidden("link-local")),
            ("febf::1", Forbidden("link-local")),
            ("fec0::1", Forbidden("site-local")),
            ("ff02::1", Forbidden("multicast")),
            ("ff0e::1", Forbidden("multicast")),
            ("2001:db8::1", Forbidden("documentation")),
            ("3fff::1", Forbidden("documentation")),
            ("2001::1", Forbidden("IETF protocol")),
            ("2001:2::1", Forbidden("IETF protocol")),
            ("2001:200::1", Public),
            ("4000::1", Forbidden("reserved")),
            ("1::1", Forbidden("reserved")),
        ];
        for (ip, want) in table {
            assert_eq!(class(ip), *want, "{ip}");
        }
    }

    #[test]
    fn the_policy_allows_loopback_only_locally() {
        let d = CallbackHosts::Deployment;
        let l = CallbackHosts::Local;
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!d.allows(ip) && l.allows(ip), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "169.254.169.254",
            "fd00::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!d.allows(ip) && !l.allows(ip), "{ip}");
            assert!(d.check_ip(ip).unwrap_err().contains(&ip.to_string()));
        }
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        assert!(d.allows(public) && l.allows(public));
    }

    #[test]
    fn the_policy_parses_by_name() {
        assert_eq!(
            CallbackHosts::parse("deployment"),
            Ok(CallbackHosts::Deployment)
        );
        assert_eq!(CallbackHosts::parse(" local "), Ok(CallbackHosts::Local));
        assert!(CallbackHosts::parse("true").is_err());
        assert_eq!(CallbackHosts::default(), CallbackHosts::Deployment);
    }

    #[test]
    fn names_for_this_machine_or_a_private_network() {
        let d = CallbackHosts::Deployment;
        let l = CallbackHosts::Local;
        let name = |n: &'static str| url::Host::Domain(n);
        for n in ["localhost", "LOCALHOST.", "api.localhost"] {
            assert!(d.check_host(&name(n)).is_err(), "{n}");
            assert_eq!(l.check_host(&name(n)), Ok(true), "{n}");
        }
        for n in [
            "metadata",
            "metadata.google.internal",
            "printer.local",
            "nas.home.arpa",
            "router.lan",
        ] {
            assert!(d.check_host(&name(n)).is_err(), "{n}");
            assert!(l.check_host(&name(n)).is_err(), "{n}");
        }
        for n in [
            "example.com",
            "hooks.example.co.uk",
            "localhost.example.com",
        ] {
            assert_eq!(d.check_host(&name(n)), Ok(false), "{n}");
        }
    }

    /// Every address in a forbidden v4 block is forbidden however IPv6 spells it.
    fn v6_spellings(v4: Ipv4Addr) -> [Ipv6Addr; 4] {
        let [a, b, c, d] = v4.octets();
        let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
        [
            v4.to_ipv6_mapped(),
            Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
        ]
    }

    proptest! {
        #[test]
        fn an_embedded_v4_is_judged_as_itself(v4 in any::<u32>().prop_map(Ipv4Addr::from)) {
            for v6 in v6_spellings(v4) {
                prop_assert_eq!(classify_v6(v6), classify_v4(v4), "{} {}", v4, v6);
            }
        }

        #[test]
        fn private_blocks_are_forbidden_everywhere_in_them(
            (base, bits) in prop::sample::select(vec![
                (0x0a00_0000u32, 8), (0xac10_0000, 12), (0xc0a8_0000, 16), (0x6440_0000, 10),
                (0xa9fe_0000, 16), (0xe000_0000, 4), (0xf000_0000, 4), (0x0000_0000, 8),
                (0xc612_0000, 15),
            ]),
            host in any::<u32>(),
        ) {
            let ip = Ipv4Addr::from(base | (host >> bits));
            for hosts in [CallbackHosts::Deployment, CallbackHosts::Local] {
                prop_assert!(!hosts.allows(IpAddr::V4(ip)), "{}", ip);
            }
        }

        #[test]
        fn ula_and_link_local_v6_are_forbidden(low in any::<u128>()) {
            let ula = Ipv6Addr::from((0xfc00u128 << 112) | (low >> 7));
            let link = Ipv6Addr::from((0xfe80u128 << 112) | (low >> 10));
            prop_assert!(matches!(classify_v6(ula), Forbidden(_)), "{}", ula);
            prop_assert!(matches!(classify_v6(link), Forbidden(_)), "{}", link);
        }
    }
}
