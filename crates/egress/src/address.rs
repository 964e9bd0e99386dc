//! Which addresses are not public, and why.
//!
//! Ranges from the IANA special-purpose registries (RFC 6890 and its updates): everything a
//! tenant could use to reach the daemon's own host, its network, a cloud metadata service
//! (169.254.169.254, fd00:ec2::254, Alibaba's 100.100.100.200) or anything else that is not the
//! public Internet. IPv6 addresses that carry an IPv4 one (mapped, compatible, NAT64, 6to4) are
//! judged by the IPv4 address they lead to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, and IPv6 site-local fec0::/10.
    Private,
    /// 169.254.0.0/16 (where cloud metadata services answer), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8 and :: (connecting to them reaches the local host on Linux).
    Unspecified,
    /// 100.64.0.0/10, carrier-grade NAT (and some clouds' metadata services).
    SharedAddressSpace,
    /// Documentation, benchmarking, protocol-assignment, discard and future-use ranges,
    /// and the broadcast address.
    Reserved,
}

impl AddressClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::SharedAddressSpace => "shared (carrier-grade NAT)",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a non-public address; `None` for a public one.
pub fn classify(address: IpAddr) -> Option<AddressClass> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(address: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let class = match address.octets() {
        [0, ..] => Unspecified,
        [127, ..] => Loopback,
        [10, ..] | [192, 168, ..] => Private,
        [172, second, ..] if (16..=31).contains(&second) => Private,
        [169, 254, ..] => LinkLocal,
        [100, second, ..] if (64..=127).contains(&second) => SharedAddressSpace,
        [224..=239, ..] => Multicast,
        // 240.0.0.0/4 (future use) and 255.255.255.255 (broadcast).
        [240..=255, ..] => Reserved,
        [192, 0, 0 | 2, _] | [198, 51, 100, _] | [203, 0, 113, _] | [198, 18 | 19, ..] => Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(address: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if address.is_unspecified() {
        return Some(Unspecified);
    }
    if address.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = embedded_ipv4(address) {
        return classify_v4(v4);
    }
    let segments = address.segments();
    let class = match segments[0] {
        first if first & 0xfe00 == 0xfc00 => UniqueLocal,
        first if first & 0xffc0 == 0xfe80 => LinkLocal,
        first if first & 0xffc0 == 0xfec0 => Private,
        first if first & 0xff00 == 0xff00 => Multicast,
        // 2001:db8::/32, documentation.
        0x2001 if segments[1] == 0x0db8 => Reserved,
        // 100::/64, discard-only.
        0x0100 if segments[1..4] == [0, 0, 0] => Reserved,
        _ => return None,
    };
    Some(class)
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped `::ffff:a.b.c.d` (which the
/// kernel connects to over IPv4), IPv4-compatible `::a.b.c.d` (deprecated), NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
pub fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = address.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = address.segments();
    let low = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0, _, _] => Some(low()),
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(low()),
        [0x2002, high, low16, ..] => Some(Ipv4Addr::new(
            (high >> 8) as u8,
            high as u8,
            (low16 >> 8) as u8,
            low16 as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<AddressClass> {
        classify(text.parse().expect("an address"))
    }

    #[test]
    fn each_refused_range_has_its_class() {
        use AddressClass::*;
        for (address, expected) in [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("fec0::1", Private),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fc00::1", UniqueLocal),
            ("fd00:ec2::254", UniqueLocal),
            ("fdff:ffff::1", UniqueLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("ff05::1:3", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("100.64.0.1", SharedAddressSpace),
            ("100.100.100.200", SharedAddressSpace),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("2001:db8::1", Reserved),
        ] {
            assert_eq!(class(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn ipv6_forms_of_refused_ipv4_addresses_are_refused_alike() {
        use AddressClass::*;
        for (address, expected) in [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:2", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:172.20.0.1", Private),
            ("::ffff:192.168.0.10", Private),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:224.0.0.1", Multicast),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::169.254.169.254", LinkLocal),
            ("64:ff9b::10.0.0.1", Private),
            ("2002:7f00:1::", Loopback),
            ("2002:a9fe:a9fe::1", LinkLocal),
        ] {
            assert_eq!(class(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "192.169.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4007:80e::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            assert_eq!(class(address), None, "{address}");
        }
    }
}
