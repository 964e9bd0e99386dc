//! The policy: public addresses, plus the ranges the operator allows.

use std::fmt;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use url::{Host, Url};

use crate::address::{AddressClass, classify, embedded_ipv4};

/// The operator's setting that allows more ranges, as refusals name it.
pub const SETTING: &str = "`[egress] allow` (CATALOGD_EGRESS__ALLOW)";

/// An allowed range: `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range like \"10.0.0.0/8\", \"fd00::/8\" or \"127.0.0.1\"")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let trimmed = text.trim();
        if let Ok(net) = trimmed.parse::<IpNet>() {
            // Host bits are dropped: "10.1.2.3/8" means 10.0.0.0/8.
            return Ok(Cidr(net.trunc()));
        }
        trimmed
            .parse::<IpAddr>()
            .map(|address| Cidr(IpNet::from(address)))
            .map_err(|_| CidrError(text.to_owned()))
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(text: String) -> Result<Cidr, CidrError> {
        text.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where outbound requests may go: every public address, and the non-public ranges the
/// operator allows. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allow: Arc<[Cidr]>,
}

/// A request the policy refused, naming the address, why it is refused and the setting
/// that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    /// The name that resolved to `address`; `None` when the URL held the address itself.
    pub host: Option<String>,
    pub address: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            // The address a name resolved to is not shown: tenants read this, and it would
            // let them read the operator's internal DNS.
            Some(host) => write!(f, "{host} resolves to a {} address", self.class)?,
            None => write!(f, "{} is a {} address", self.address, self.class)?,
        }
        write!(
            f,
            "; outbound requests go only to public addresses unless the operator allows the range with {SETTING}"
        )
    }
}

impl Policy {
    /// Public addresses only: the default.
    pub fn public_only() -> Policy {
        Policy::default()
    }

    /// Public addresses and `allow`.
    pub fn allowing(allow: impl IntoIterator<Item = Cidr>) -> Policy {
        Policy {
            allow: allow.into_iter().collect(),
        }
    }

    /// Public addresses and loopback: for tests, the demo and benchmarks, whose stores and
    /// providers are simulators on this machine.
    pub fn allowing_loopback() -> Policy {
        Policy::allowing(Self::loopback_ranges())
    }

    /// `127.0.0.0/8` and `::1/128`.
    pub fn loopback_ranges() -> [Cidr; 2] {
        [
            Cidr(IpNet::from_str("127.0.0.0/8").expect("a valid range")),
            Cidr(IpNet::from_str("::1/128").expect("a valid range")),
        ]
    }

    pub fn allowed_ranges(&self) -> &[Cidr] {
        &self.allow
    }

    /// `Err` with the address's class when requests may not go to `address`.
    pub fn check(&self, address: IpAddr) -> Result<(), AddressClass> {
        let Some(class) = classify(address) else {
            return Ok(());
        };
        let embedded = match address {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = self
            .allow
            .iter()
            .any(|range| range.contains(address) || embedded.is_some_and(|v4| range.contains(v4)));
        if allowed { Ok(()) } else { Err(class) }
    }

    /// Checks a URL's host as far as it can be without resolving it: an address, or
    /// `localhost` and `*.localhost`, which RFC 6761 reserves for loopback. Other names pass
    /// here: they are checked on what they resolve to when a connection is made (and the
    /// connected socket again). Nothing is looked up, so this answers no question about the
    /// operator's DNS.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        let (host, address) = match url.host() {
            Some(Host::Ipv4(v4)) => (None, IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => (None, IpAddr::V6(v6)),
            Some(Host::Domain(name)) if is_localhost(name) => {
                (Some(name.to_owned()), IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            Some(Host::Domain(_)) | None => return Ok(()),
        };
        self.check(address).map_err(|class| Refusal {
            host,
            address,
            class,
        })
    }

    /// The addresses of `host` requests may go to; a refusal when none is left.
    pub(crate) fn filter(
        &self,
        host: &str,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Vec<IpAddr>, Refusal> {
        let mut allowed = Vec::new();
        let mut refused = None;
        for address in addresses {
            match self.check(address) {
                Ok(()) => allowed.push(address),
                Err(class) => {
                    refused.get_or_insert(Refusal {
                        host: Some(host.to_owned()),
                        address,
                        class,
                    });
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (true, Some(refusal)) => Err(refusal),
            _ => Ok(allowed),
        }
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn policy(ranges: &[&str]) -> Policy {
        Policy::allowing(ranges.iter().map(|r| r.parse::<Cidr>().expect("a range")))
    }

    #[test]
    fn the_default_refuses_every_non_public_range() {
        let policy = Policy::public_only();
        for refused in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "224.0.0.251",
            "ff02::fb",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:192.168.1.1",
        ] {
            assert!(policy.check(address(refused)).is_err(), "{refused}");
        }
        assert_eq!(policy.check(address("93.184.215.14")), Ok(()));
        assert_eq!(policy.check(address("2606:4700::1111")), Ok(()));
    }

    #[test]
    fn allowed_ranges_open_exactly_themselves() {
        let policy = policy(&["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(policy.check(address("10.20.30.40")), Ok(()));
        assert_eq!(policy.check(address("127.0.0.1")), Ok(()));
        // The IPv4-mapped form of an allowed address is the same address.
        assert_eq!(policy.check(address("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(
            policy.check(address("127.0.0.2")),
            Err(AddressClass::Loopback)
        );
        assert_eq!(policy.check(address("::1")), Err(AddressClass::Loopback));
        assert_eq!(
            policy.check(address("192.168.0.1")),
            Err(AddressClass::Private)
        );
        assert_eq!(
            policy.check(address("169.254.169.254")),
            Err(AddressClass::LinkLocal)
        );
    }

    #[test]
    fn ranges_parse_like_the_setting_documents() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            " fd00::/8 ".parse::<Cidr>().unwrap().to_string(),
            "fd00::/8"
        );
        for bad in ["", "10.0.0.0/33", "localhost", "10/8", "10.0.0.0/"] {
            let error = bad.parse::<Cidr>().unwrap_err();
            assert!(error.to_string().contains("10.0.0.0/8"), "{bad}: {error}");
        }
    }

    #[test]
    fn address_urls_are_checked_and_names_wait_for_resolution() {
        let policy = Policy::public_only();
        for refused in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "https://169.254.169.254/",
        ] {
            let url = Url::parse(refused).unwrap();
            let refusal = policy.check_url(&url).expect_err(refused);
            assert!(refusal.to_string().contains(SETTING), "{refusal}");
        }
        assert!(
            policy
                .check_url(&Url::parse("https://shop.example/").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn a_name_is_refused_only_when_every_address_is() {
        let policy = policy(&[]);
        let mixed = policy
            .filter(
                "shop.example",
                [address("127.0.0.1"), address("93.184.215.14")],
            )
            .unwrap();
        assert_eq!(mixed, vec![address("93.184.215.14")]);
        let refusal = policy
            .filter("shop.example", [address("10.0.0.1"), address("::1")])
            .unwrap_err();
        assert_eq!(refusal.host.as_deref(), Some("shop.example"));
        assert_eq!(refusal.address, address("10.0.0.1"));
        // The resolved address is not repeated to whoever reads the refusal.
        assert_eq!(
            refusal.to_string(),
            "shop.example resolves to a private address; outbound requests go only to \
             public addresses unless the operator allows the range with `[egress] allow` \
             (CATALOGD_EGRESS__ALLOW)"
        );
    }

    #[test]
    fn localhost_names_are_loopback_without_a_lookup() {
        for name in ["localhost", "LOCALHOST.", "shop.localhost"] {
            let url = Url::parse(&format!("http://{name}:9/")).unwrap();
            let refusal = Policy::public_only().check_url(&url).unwrap_err();
            assert_eq!(refusal.class, AddressClass::Loopback);
            assert!(
                refusal
                    .to_string()
                    .contains("resolves to a loopback address")
            );
            assert!(Policy::allowing_loopback().check_url(&url).is_ok());
        }
        let url = Url::parse("http://localhost.shop.example/").unwrap();
        assert!(Policy::public_only().check_url(&url).is_ok());
    }
}
