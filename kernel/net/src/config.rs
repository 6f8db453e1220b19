//! How the guest's network interface is configured: a static address and gateway from
//! the kernel command line (QEMU user networking's by default), or DHCP.

use alloc::format;
use alloc::string::String;
use skiff_bootproto::cmdline;
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// The network interface's configuration.
///
/// Addresses are smoltcp's version-independent types so that IPv6 can be added without
/// changing this interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The interface's address and prefix (`None` until DHCP leases one).
    pub address: Option<IpCidr>,
    /// The default gateway, if any.
    pub gateway: Option<IpAddress>,
    /// Configure the interface by DHCP (then `address` and `gateway` start empty).
    pub dhcp: bool,
}

impl Default for NetConfig {
    /// QEMU user networking: `10.0.2.15/24` with the gateway at `10.0.2.2`.
    fn default() -> NetConfig {
        NetConfig {
            address: Some(IpCidr::Ipv4(Ipv4Cidr::new(
                Ipv4Address::new(10, 0, 2, 15),
                24,
            ))),
            gateway: Some(IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 2))),
            dhcp: false,
        }
    }
}

impl NetConfig {
    /// The configuration the kernel command line asks for (`skiff.ip=A.B.C.D/PREFIX`,
    /// `skiff.gw=A.B.C.D`, `skiff.dhcp=1`); with none of them, [`NetConfig::default`].
    /// `skiff.gw` alone keeps the default address. A value that cannot work (not an
    /// address, a prefix over 32, an address that is not a unicast host address, a
    /// gateway outside the interface's subnet, DHCP together with a static address) is an
    /// `Err` with a message saying what is wrong.
    pub fn from_cmdline(line: &str) -> Result<NetConfig, String> {
        let ip = cmdline::get(line, cmdline::NET_IP);
        let gw = cmdline::get(line, cmdline::NET_GATEWAY);
        let dhcp = cmdline::get(line, cmdline::NET_DHCP).is_some();
        if dhcp {
            if !cmdline::flag(line, cmdline::NET_DHCP) {
                // `skiff.dhcp=0` (or `off`) explicitly asks for no DHCP.
                let value = cmdline::get(line, cmdline::NET_DHCP).unwrap_or_default();
                if !matches!(value, "0" | "off" | "no" | "false") {
                    return Err(format!("{}={value}: expected 1 or 0", cmdline::NET_DHCP));
                }
            } else {
                if ip.is_some() || gw.is_some() {
                    return Err(format!(
                        "{} cannot be combined with {} or {}: DHCP assigns both",
                        cmdline::NET_DHCP,
                        cmdline::NET_IP,
                        cmdline::NET_GATEWAY
                    ));
                }
                return Ok(NetConfig {
                    address: None,
                    gateway: None,
                    dhcp: true,
                });
            }
        }
        let default = NetConfig::default();
        let (address, default_gateway) = match ip {
            Some(value) => (parse_cidr(value)?, None),
            None => (
                match default.address {
                    Some(IpCidr::Ipv4(c)) => c,
                    None => unreachable!("the default has an address"),
                },
                default.gateway,
            ),
        };
        let gateway = match gw {
            Some(value) => {
                let gw = parse_ipv4(value)
                    .map_err(|e| format!("{}={value}: {e}", cmdline::NET_GATEWAY))?;
                if !is_host_address(gw) {
                    return Err(format!(
                        "{}={value}: not a unicast host address",
                        cmdline::NET_GATEWAY
                    ));
                }
                if gw == address.address() {
                    return Err(format!(
                        "{}={value}: the gateway cannot be the interface's own address",
                        cmdline::NET_GATEWAY
                    ));
                }
                if !address.contains_addr(&gw) {
                    return Err(format!(
                        "{}={value}: not in the interface's subnet {address}",
                        cmdline::NET_GATEWAY
                    ));
                }
                Some(IpAddress::Ipv4(gw))
            }
            None => default_gateway,
        };
        Ok(NetConfig {
            address: Some(IpCidr::Ipv4(address)),
            gateway,
            dhcp: false,
        })
    }
}

/// Whether `a` can be a host's own address on an Ethernet: not unspecified, loopback,
/// multicast, broadcast or in the reserved class E range.
pub(crate) fn is_host_address(a: Ipv4Address) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_broadcast()
        || a.octets()[0] >= 240)
}

fn parse_ipv4(s: &str) -> Result<Ipv4Address, String> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in octets.iter_mut() {
        let part = parts.next().ok_or("expected four dot-separated numbers")?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(String::from("expected four dot-separated numbers"));
        }
        *octet = part
            .parse::<u8>()
            .map_err(|_| String::from("each number must be 0-255"))?;
    }
    if parts.next().is_some() {
        return Err(String::from("expected four dot-separated numbers"));
    }
    Ok(Ipv4Address::from(octets))
}

fn parse_cidr(value: &str) -> Result<Ipv4Cidr, String> {
    let key = cmdline::NET_IP;
    let (addr, prefix) = value
        .split_once('/')
        .ok_or_else(|| format!("{key}={value}: expected ADDRESS/PREFIX, e.g. 10.0.2.15/24"))?;
    let addr = parse_ipv4(addr).map_err(|e| format!("{key}={value}: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(|| format!("{key}={value}: the prefix length must be 1-32"))?;
    if !is_host_address(addr) {
        return Err(format!("{key}={value}: not a unicast host address"));
    }
    let cidr = Ipv4Cidr::new(addr, prefix);
    if prefix < 31 && (cidr.network().address() == addr || cidr.broadcast() == Some(addr)) {
        return Err(format!(
            "{key}={value}: that is the subnet's network or broadcast address"
        ));
    }
    Ok(cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Address {
        Ipv4Address::new(a, b, c, d)
    }

    #[test]
    fn nothing_given_is_qemu_user_networking() {
        let c = NetConfig::from_cmdline("console=ttyS0 skiff.verbose=1").unwrap();
        assert_eq!(c, NetConfig::default());
        assert_eq!(
            c.address,
            Some(IpCidr::Ipv4(Ipv4Cidr::new(v4(10, 0, 2, 15), 24)))
        );
        assert_eq!(c.gateway, Some(IpAddress::Ipv4(v4(10, 0, 2, 2))));
        assert!(!c.dhcp);
    }

    #[test]
    fn static_address_with_and_without_gateway() {
        let c = NetConfig::from_cmdline("skiff.ip=192.168.7.9/24 skiff.gw=192.168.7.1").unwrap();
        assert_eq!(
            c.address,
            Some(IpCidr::Ipv4(Ipv4Cidr::new(v4(192, 168, 7, 9), 24)))
        );
        assert_eq!(c.gateway, Some(IpAddress::Ipv4(v4(192, 168, 7, 1))));
        let c = NetConfig::from_cmdline("skiff.ip=172.16.0.2/16").unwrap();
        assert_eq!(c.gateway, None);
        let c = NetConfig::from_cmdline("skiff.gw=10.0.2.3").unwrap();
        assert_eq!(c.address, NetConfig::default().address);
        assert_eq!(c.gateway, Some(IpAddress::Ipv4(v4(10, 0, 2, 3))));
    }

    #[test]
    fn dhcp_starts_without_address() {
        let c = NetConfig::from_cmdline("skiff.dhcp=1").unwrap();
        assert!(c.dhcp);
        assert_eq!(c.address, None);
        assert_eq!(c.gateway, None);
        assert_eq!(NetConfig::from_cmdline("skiff.dhcp").unwrap(), c);
        assert_eq!(
            NetConfig::from_cmdline("skiff.dhcp=0").unwrap(),
            NetConfig::default()
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = |line: &str| NetConfig::from_cmdline(line).unwrap_err();
        assert!(err("skiff.ip=10.0.2.15").contains("ADDRESS/PREFIX"));
        assert!(err("skiff.ip=10.0.2/24").contains("four"));
        assert!(err("skiff.ip=10.0.2.256/24").contains("0-255"));
        assert!(err("skiff.ip=10.0.2.1.5/24").contains("four"));
        assert!(err("skiff.ip=10.0.2.15/33").contains("1-32"));
        assert!(err("skiff.ip=10.0.2.15/0").contains("1-32"));
        assert!(err("skiff.ip=10.0.2.15/x").contains("1-32"));
        assert!(err("skiff.ip=127.0.0.2/8").contains("unicast"));
        assert!(err("skiff.ip=224.0.0.1/24").contains("unicast"));
        assert!(err("skiff.ip=0.0.0.0/24").contains("unicast"));
        assert!(err("skiff.ip=10.0.2.255/24").contains("broadcast"));
        assert!(err("skiff.ip=10.0.2.0/24").contains("network"));
        assert!(err("skiff.ip=10.0.2.15/24 skiff.gw=10.0.3.1").contains("subnet"));
        assert!(err("skiff.ip=10.0.2.15/24 skiff.gw=10.0.2.15").contains("own address"));
        assert!(err("skiff.gw=255.255.255.255").contains("unicast"));
        assert!(err("skiff.gw=").contains("four"));
        assert!(err("skiff.dhcp=1 skiff.ip=10.0.2.15/24").contains("DHCP"));
        assert!(err("skiff.dhcp=maybe").contains("1 or 0"));
    }

    #[test]
    fn point_to_point_prefixes_allow_every_address() {
        let c = NetConfig::from_cmdline("skiff.ip=10.1.1.0/31").unwrap();
        assert_eq!(
            c.address,
            Some(IpCidr::Ipv4(Ipv4Cidr::new(v4(10, 1, 1, 0), 31)))
        );
        assert!(NetConfig::from_cmdline("skiff.ip=10.1.1.1/32").is_ok());
    }
}
