//! The guest's network, host side: which network the VM gets (`user`, `none` or a tap
//! device), which guest ports are published on the host, the guest's address, and the
//! DNS servers it is told about.
//!
//! Settings arrive from three places (a manifest, an image's `run.toml`, the command
//! line) as [`NetSettings`], where everything is optional; [`NetSettings::resolve`]
//! fills in the defaults and checks the combination, giving a [`Network`]. A `Network` knows its
//! QEMU arguments ([`Network::qemu_args`]), its kernel command-line words (the
//! `skiff.ip`/`skiff.gw`/`skiff.dhcp` keys of [`skiff_bootproto::cmdline`]) and the
//! guest's DNS servers. [`check_host_ports`] makes sure the host ports can be
//! bound before QEMU is started.
//!
//! Everything but [`check_host_ports`] and [`check_tap_device`], which look at the host,
//! is a pure function, pinned by the tests below.

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::Path;
use std::str::FromStr;

use skiff_bootproto::{cmdline, Transport};

use crate::qemu::Machine;

/// The address a published port is bound to on the host when `-p` names none: local
/// only, so that publishing a port never exposes it to the network by accident.
pub const DEFAULT_HOST_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The guest's address under QEMU user networking (the first address its DHCP server
/// hands out; QEMU forwards published ports there).
pub const USER_GUEST_IP: Ipv4Cidr = Ipv4Cidr {
    addr: Ipv4Addr::new(10, 0, 2, 15),
    prefix: 24,
};
/// QEMU user networking's gateway (NAT to the host's network).
pub const USER_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// QEMU user networking's DNS forwarder (it asks the host's resolver).
pub const USER_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// Name servers a resolv.conf may list: glibc and musl read no more than three.
pub const MAX_NAMESERVERS: usize = 3;

/// The network a VM gets when `--net` (or a manifest's `net`) does not choose one.
///
/// User networking, because it is nearly free and what a user expects: measured under
/// TCG on this project's machines (`skiff run --timing` and wall clock, 40 interleaved
/// runs of a program that exits at once, before the kernel drives the card), the card
/// and its backend add about 2 ms to a 104 ms microvm run and nothing measurable (in
/// wall time) on q35 once its network boot ROM is left out (see
/// [`Network::qemu_args`]). In exchange
/// programs can connect out and resolve names without flags. `--net none` is there for
/// programs that should have no network at all.
pub const DEFAULT_MODE: NetMode = NetMode::User;

/// Which network the VM is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetMode {
    /// QEMU user networking: NAT to the host's network, published ports forwarded.
    User,
    /// No network card at all.
    None,
    /// An existing tap device on the host (the guest is on that device's network).
    Tap(String),
}

impl fmt::Display for NetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetMode::User => f.write_str("user"),
            NetMode::None => f.write_str("none"),
            NetMode::Tap(name) => write!(f, "tap:{name}"),
        }
    }
}

impl FromStr for NetMode {
    type Err = String;

    /// `user`, `none` or `tap:IFNAME`.
    fn from_str(text: &str) -> Result<NetMode, String> {
        match text {
            "user" => Ok(NetMode::User),
            "none" => Ok(NetMode::None),
            "tap" | "tap:" => Err(format!(
                "'{text}' needs the tap device's name: tap:IFNAME (e.g. tap:tap0)"
            )),
            _ => match text.strip_prefix("tap:") {
                Some(name) => check_interface_name(name).map(|()| NetMode::Tap(name.into())),
                None => Err(format!(
                    "unknown network '{text}'; use user, none or tap:IFNAME"
                )),
            },
        }
    }
}

/// Linux's rules for interface names (`dev_valid_name`): 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or white space.
fn check_interface_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("'{name}' is not a network interface name: {why}"));
    if name.is_empty() || name.len() > 15 {
        return bad("it must be 1 to 15 characters long");
    }
    if name == "." || name == ".." {
        return bad("it cannot be . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("it cannot contain /, : or white space");
    }
    Ok(())
}

/// The name of a transport as `-p` and the ready line write it.
pub fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    }
}

/// One published port: `HOST_IP:HOST_PORT` on the host forwards to `GUEST_PORT` in the
/// guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub guest_port: u16,
    pub transport: Transport,
}

const PORT_USAGE: &str = "use [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp], e.g. 8080:80";

fn parse_port(text: &str, which: &str, whole: &str) -> Result<u16, String> {
    if text.contains('-') {
        return Err(format!(
            "'{whole}': port ranges are not supported; publish each port with its own -p"
        ));
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{whole}': the {which} port '{text}' is not a number; {PORT_USAGE}"
        ));
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(format!(
            "'{whole}': the {which} port {text} is out of range; ports are 1 to 65535"
        )),
    }
}

impl FromStr for PortMapping {
    type Err = String;

    /// `[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]`; the host address defaults to
    /// [`DEFAULT_HOST_IP`], the protocol to TCP.
    fn from_str(text: &str) -> Result<PortMapping, String> {
        let (ports, transport) = match text.split_once('/') {
            Some((ports, "tcp")) => (ports, Transport::Tcp),
            Some((ports, "udp")) => (ports, Transport::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "'{text}': unknown protocol '{other}'; use /tcp or /udp"
                ))
            }
            None => (text, Transport::Tcp),
        };
        if ports.starts_with('[') {
            return Err(format!(
                "'{text}': only IPv4 host addresses can be published to; {PORT_USAGE}"
            ));
        }
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, guest_port) = match parts.as_slice() {
            [host_port, guest_port] => (DEFAULT_HOST_IP, *host_port, *guest_port),
            [host_ip, host_port, guest_port] => {
                let ip = host_ip.parse::<Ipv4Addr>().map_err(|_| {
                    format!("'{text}': '{host_ip}' is not an IPv4 address; {PORT_USAGE}")
                })?;
                (ip, *host_port, *guest_port)
            }
            [_] => {
                return Err(format!(
                    "'{text}' needs both ports: HOST_PORT:GUEST_PORT (e.g. 8080:80)"
                ))
            }
            _ => return Err(format!("'{text}': {PORT_USAGE}")),
        };
        Ok(PortMapping {
            host_ip,
            host_port: parse_port(host_port, "host", text)?,
            guest_port: parse_port(guest_port, "guest", text)?,
            transport,
        })
    }
}

impl fmt::Display for PortMapping {
    /// The canonical form, as `run.toml` stores it: `127.0.0.1:8080:80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}/{}",
            self.host_ip,
            self.host_port,
            self.guest_port,
            transport_name(self.transport)
        )
    }
}

impl PortMapping {
    /// `127.0.0.1:8080 -> guest port 80/tcp`, for the ready line and messages.
    pub fn describe(&self) -> String {
        format!(
            "{}:{} -> guest port {}/{}",
            self.host_ip,
            self.host_port,
            self.guest_port,
            transport_name(self.transport)
        )
    }

    /// QEMU's `hostfwd=` value: `tcp:127.0.0.1:8080-:80` (an empty guest address is
    /// the guest's DHCP address, [`USER_GUEST_IP`]).
    fn hostfwd(&self) -> String {
        format!(
            "{}:{}:{}-:{}",
            transport_name(self.transport),
            self.host_ip,
            self.host_port,
            self.guest_port
        )
    }

    /// Whether two mappings would need the same host socket: same protocol and port,
    /// and the same address or either one the wildcard (which covers every address).
    fn shares_host_socket(&self, other: &PortMapping) -> bool {
        self.transport == other.transport
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

/// Check a list of published ports: no host socket may be used twice.
pub fn check_ports(ports: &[PortMapping]) -> Result<(), String> {
    for (i, port) in ports.iter().enumerate() {
        if let Some(earlier) = ports[..i].iter().find(|p| p.shares_host_socket(port)) {
            return Err(if earlier == port {
                format!("port {port} is published twice")
            } else {
                format!(
                    "host port {}/{} is published twice ({} and {}); each host port can \
                     forward to one guest port",
                    port.host_port,
                    transport_name(port.transport),
                    earlier.describe(),
                    port.describe()
                )
            });
        }
    }
    Ok(())
}

/// An IPv4 address with its prefix length, `192.168.100.2/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// Whether `other` is on this address's network.
    pub fn contains(self, other: Ipv4Addr) -> bool {
        (u32::from(self.addr) ^ u32::from(other)) & self.mask() == 0
    }

    fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    /// `A.B.C.D/N`, N from 1 to 32, for a host (not the network's or broadcast address).
    fn from_str(text: &str) -> Result<Ipv4Cidr, String> {
        let Some((addr, prefix)) = text.split_once('/') else {
            return Err(format!(
                "'{text}' needs a prefix length: A.B.C.D/N (e.g. 192.168.100.2/24)"
            ));
        };
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("'{text}': '{addr}' is not an IPv4 address"))?;
        let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        let prefix = match prefix.parse::<u8>() {
            Ok(prefix @ 1..=32) if digits => prefix,
            _ => {
                return Err(format!(
                    "'{text}': the prefix length must be a number from 1 to 32"
                ))
            }
        };
        let cidr = Ipv4Cidr { addr, prefix };
        if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast()
        {
            return Err(format!("'{text}' cannot be a guest's address"));
        }
        if prefix <= 30 {
            let host_bits = !cidr.mask();
            let host = u32::from(addr) & host_bits;
            if host == 0 {
                return Err(format!(
                    "'{text}' is the network's own address; give the guest a host address \
                     in {}/{prefix}",
                    cidr.network()
                ));
            }
            if host == host_bits {
                return Err(format!(
                    "'{text}' is the network's broadcast address; give the guest a host \
                     address in {}/{prefix}",
                    cidr.network()
                ));
            }
        }
        Ok(cidr)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Network settings as a manifest, an image or the command line gives them: every one
/// optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSettings {
    pub mode: Option<NetMode>,
    pub ports: Vec<PortMapping>,
    /// The guest's static address (tap networks).
    pub ip: Option<Ipv4Cidr>,
    /// The default gateway that goes with `ip`.
    pub gateway: Option<Ipv4Addr>,
    /// Configure the guest's address by DHCP.
    pub dhcp: bool,
    /// Name servers for the guest's resolv.conf.
    pub dns: Vec<Ipv4Addr>,
}

/// How the guest configures its network interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestAddress {
    Static {
        ip: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
    },
    Dhcp,
}

/// A checked network with its defaults applied: what the VM gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub mode: NetMode,
    /// Published ports (only with [`NetMode::User`]).
    pub ports: Vec<PortMapping>,
    /// `None` without a network card.
    pub address: Option<GuestAddress>,
    /// Name servers for resolv.conf (empty: the guest gets no resolv.conf from skiff).
    pub dns: Vec<Ipv4Addr>,
}

impl NetSettings {
    /// The network mode these settings mean: the one named, else user networking when
    /// something needs it (published ports, DNS servers, DHCP), else [`DEFAULT_MODE`].
    pub fn effective_mode(&self) -> NetMode {
        match &self.mode {
            Some(mode) => mode.clone(),
            None if self.implies_user() => NetMode::User,
            None => DEFAULT_MODE,
        }
    }

    fn implies_user(&self) -> bool {
        !self.ports.is_empty() || !self.dns.is_empty() || self.dhcp
    }

    fn has_address(&self) -> bool {
        self.ip.is_some() || self.gateway.is_some() || self.dhcp
    }

    /// Apply the defaults and check that the settings make sense together. `source`
    /// decides how messages name the settings.
    pub fn resolve(&self, source: Source) -> Result<Network, String> {
        let mode = self.effective_mode();
        check_ports(&self.ports)?;
        if self.dns.len() > MAX_NAMESERVERS {
            return Err(format!(
                "{} DNS servers given; programs read at most {MAX_NAMESERVERS}",
                self.dns.len()
            ));
        }
        let [ports, ip, gateway, dhcp, dns] =
            ["ports", "ip", "gateway", "dhcp", "dns"].map(|key| source.name(key));
        let address = match &mode {
            NetMode::None => {
                let none = source.setting("net", "none");
                if !self.ports.is_empty() {
                    return Err(format!(
                        "publishing ports ({ports}) needs a network, but {none} gives the VM \
                         none: use {}",
                        source.setting("net", "user")
                    ));
                }
                if self.has_address() {
                    return Err(format!(
                        "{ip}, {gateway} and {dhcp} configure a network card, but {none} gives \
                         the VM none"
                    ));
                }
                if !self.dns.is_empty() {
                    return Err(format!(
                        "DNS servers ({dns}) need a network, but {none} gives the VM none"
                    ));
                }
                None
            }
            NetMode::User => {
                if self.ip.is_some() || self.gateway.is_some() {
                    return Err(format!(
                        "{ip} and {gateway} are for {}; user networking gives the guest \
                         {USER_GUEST_IP} with gateway {USER_GATEWAY}",
                        source.setting("net", "tap:IFNAME")
                    ));
                }
                Some(if self.dhcp {
                    GuestAddress::Dhcp
                } else {
                    GuestAddress::Static {
                        ip: USER_GUEST_IP,
                        gateway: Some(USER_GATEWAY),
                    }
                })
            }
            NetMode::Tap(name) => {
                let tap = source.setting("net", &mode.to_string());
                if !self.ports.is_empty() {
                    return Err(format!(
                        "ports cannot be published with {tap}: the guest has its own address \
                         on {name}'s network and is reachable there directly ({ports} is for \
                         {})",
                        source.setting("net", "user")
                    ));
                }
                Some(match (self.ip, self.gateway, self.dhcp) {
                    (Some(_), _, true) => {
                        return Err(format!("give either {ip} or {dhcp}, not both"))
                    }
                    (None, Some(_), true) => {
                        return Err(format!(
                            "{gateway} goes with {ip}; with {dhcp} the gateway comes from DHCP"
                        ))
                    }
                    (None, Some(_), false) => {
                        return Err(format!(
                            "{gateway} needs the guest's address: add {}",
                            source.setting("ip", "A.B.C.D/N")
                        ))
                    }
                    (None, None, false) => {
                        return Err(format!(
                            "{tap} needs the guest's address: {} (with {}), or {}",
                            source.setting("ip", "A.B.C.D/N"),
                            source.setting("gateway", "A.B.C.D"),
                            source.setting("dhcp", "true")
                        ))
                    }
                    (None, None, true) => GuestAddress::Dhcp,
                    (Some(ip), gateway, false) => {
                        if let Some(gateway) = gateway {
                            if !ip.contains(gateway) || gateway == ip.addr {
                                return Err(format!(
                                    "the gateway {gateway} is not another address on the \
                                     guest's network {}/{}",
                                    ip.network(),
                                    ip.prefix
                                ));
                            }
                        }
                        GuestAddress::Static { ip, gateway }
                    }
                })
            }
        };
        let dns = match (&mode, self.dns.is_empty()) {
            (_, false) => self.dns.clone(),
            (NetMode::User, true) => vec![USER_DNS],
            _ => Vec::new(),
        };
        Ok(Network {
            ports: self.ports.clone(),
            mode,
            address,
            dns,
        })
    }
}

/// Where network settings were written, so that messages name them as the user wrote
/// them: `--net none` or `net = "none"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `skiff run`'s options (also for an image run with options on top).
    CommandLine,
    /// The `[vm]` table of a manifest.
    Manifest,
}

impl Source {
    /// A setting's name: `--ip` or `ip`.
    fn name(self, key: &str) -> String {
        match (self, key) {
            (Source::CommandLine, "ports") => "-p".into(),
            (Source::CommandLine, _) => format!("--{key}"),
            (Source::Manifest, _) => key.into(),
        }
    }

    /// A setting with a value: `--net user` or `net = "user"` (`--dhcp` or `dhcp = true`).
    fn setting(self, key: &str, value: &str) -> String {
        match (self, key) {
            (Source::CommandLine, "dhcp") => "--dhcp".into(),
            (Source::CommandLine, _) => format!("--{key} {value}"),
            (Source::Manifest, "dhcp") => format!("{key} = {value}"),
            (Source::Manifest, _) => format!("{key} = \"{value}\""),
        }
    }
}

/// The id of the VM's one network backend in QEMU's arguments.
const NETDEV_ID: &str = "n0";

impl Network {
    /// QEMU's arguments for this network: a `-netdev` backend and a virtio-net card
    /// (MMIO on microvm, PCI on q35). None without a network (`-nodefaults` keeps QEMU
    /// from adding a card of its own). The PCI card gets no option ROM (`romfile=`):
    /// Skiff never boots from the network, and SeaBIOS running the card's iPXE ROM made
    /// every q35 boot about 15 ms slower.
    pub fn qemu_args(&self, machine: Machine) -> Vec<String> {
        let backend = match &self.mode {
            NetMode::None => return Vec::new(),
            NetMode::User => {
                let mut backend = format!("user,id={NETDEV_ID}");
                for port in &self.ports {
                    backend.push_str(",hostfwd=");
                    backend.push_str(&port.hostfwd());
                }
                backend
            }
            NetMode::Tap(name) => {
                // Linux allows a comma in an interface name; QEMU's option syntax needs
                // it doubled.
                let name = name.replace(',', ",,");
                format!("tap,id={NETDEV_ID},ifname={name},script=no,downscript=no")
            }
        };
        let device = match machine {
            Machine::Microvm => format!("virtio-net-device,netdev={NETDEV_ID}"),
            Machine::Q35 => format!("virtio-net-pci,netdev={NETDEV_ID},romfile="),
        };
        vec!["-netdev".into(), backend, "-device".into(), device]
    }

    /// The kernel command-line words that configure the guest's interface.
    pub fn cmdline_words(&self) -> Vec<String> {
        match self.address {
            None => Vec::new(),
            Some(GuestAddress::Dhcp) => vec![format!("{}=1", cmdline::NET_DHCP)],
            Some(GuestAddress::Static { ip, gateway }) => {
                let mut words = vec![format!("{}={ip}", cmdline::NET_IP)];
                if let Some(gateway) = gateway {
                    words.push(format!("{}={gateway}", cmdline::NET_GATEWAY));
                }
                words
            }
        }
    }

    /// One line for `--verbose`: `user (guest 10.0.2.15/24, gateway 10.0.2.2, DNS
    /// 10.0.2.3)`.
    pub fn describe(&self) -> String {
        let mut details = Vec::new();
        match self.address {
            Some(GuestAddress::Static { ip, gateway }) => {
                details.push(format!("guest {ip}"));
                if let Some(gateway) = gateway {
                    details.push(format!("gateway {gateway}"));
                }
            }
            Some(GuestAddress::Dhcp) => details.push("guest address by DHCP".into()),
            None => {}
        }
        if !self.dns.is_empty() {
            let servers: Vec<String> = self.dns.iter().map(Ipv4Addr::to_string).collect();
            details.push(format!("DNS {}", servers.join(" ")));
        }
        if details.is_empty() {
            self.mode.to_string()
        } else {
            format!("{} ({})", self.mode, details.join(", "))
        }
    }
}

/// Check before booting that every published port can be bound on the host, so that a
/// port in use is one clear message instead of QEMU's. (QEMU binds them itself a moment
/// later; the test socket is closed first.)
pub fn check_host_ports(ports: &[PortMapping]) -> Result<(), String> {
    for port in ports {
        let address = SocketAddrV4::new(port.host_ip, port.host_port);
        let bound = match port.transport {
            Transport::Tcp => TcpListener::bind(address).map(drop),
            Transport::Udp => UdpSocket::bind(address).map(drop),
        };
        if let Err(error) = bound {
            return Err(host_port_error(port, &error));
        }
    }
    Ok(())
}

/// Where Linux lists network devices.
pub const SYS_CLASS_NET: &str = "/sys/class/net";

/// Check that `name` is an existing tap device, so that a missing or wrong device is a
/// clear message with the command that makes one rather than QEMU's. `sys_class_net`
/// is [`SYS_CLASS_NET`] (a directory of fakes in tests); tun and tap devices are the
/// ones with a `tun_flags` file, and tap ones have `IFF_TAP` there.
pub fn check_tap_device(name: &str, sys_class_net: &Path) -> Result<(), String> {
    const IFF_TUN: u32 = 0x0001;
    const IFF_TAP: u32 = 0x0002;
    let device = sys_class_net.join(name);
    if !device.exists() {
        return Err(format!(
            "there is no network device {name}; create the tap device first, e.g.: \
             ip tuntap add dev {name} mode tap user $USER && ip link set {name} up"
        ));
    }
    let flags = fs::read_to_string(device.join("tun_flags"))
        .ok()
        .and_then(|text| {
            let text = text.trim();
            u32::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
        });
    match flags {
        Some(flags) if flags & (IFF_TUN | IFF_TAP) == IFF_TAP => Ok(()),
        Some(_) => Err(format!(
            "{name} is a tun device, which carries IP packets; the VM needs a tap device \
             (ip tuntap add dev NAME mode tap)"
        )),
        None => Err(format!(
            "{name} is not a tap device; --net tap:IFNAME needs one (ip tuntap add dev NAME \
             mode tap; a bridge joins it to {name}'s network)"
        )),
    }
}

/// Why a published port cannot be bound, in the user's terms.
pub fn host_port_error(port: &PortMapping, error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let (number, ip) = (port.host_port, port.host_ip);
    let which = match port.transport {
        Transport::Tcp => format!("port {number}"),
        Transport::Udp => format!("UDP port {number}"),
    };
    match error.kind() {
        ErrorKind::AddrInUse => format!("{which} is already in use on {ip}"),
        ErrorKind::AddrNotAvailable => {
            format!("cannot publish {which} on {ip}: it is not an address of this host")
        }
        ErrorKind::PermissionDenied => format!(
            "cannot publish {which} on {ip}: permission denied (ports below \
             net.ipv4.ip_unprivileged_port_start, usually 1024, need privileges; use a \
             higher host port)"
        ),
        _ => format!("cannot publish {which} on {ip}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(text: &str) -> PortMapping {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn port_error(text: &str) -> String {
        text.parse::<PortMapping>().unwrap_err()
    }

    #[test]
    fn port_mappings() {
        let local = Ipv4Addr::LOCALHOST;
        assert_eq!(
            port("8080:80"),
            PortMapping {
                host_ip: local,
                host_port: 8080,
                guest_port: 80,
                transport: Transport::Tcp
            }
        );
        assert_eq!(port("5353:53/udp").transport, Transport::Udp);
        assert_eq!(port("8080:80/tcp"), port("8080:80"));
        let any = port("0.0.0.0:1:65535/udp");
        assert_eq!(
            (any.host_ip, any.host_port, any.guest_port),
            (Ipv4Addr::UNSPECIFIED, 1, 65535)
        );
        assert_eq!(
            port("192.168.1.5:8443:443").to_string(),
            "192.168.1.5:8443:443/tcp"
        );
        assert_eq!(port("8080:80").to_string(), "127.0.0.1:8080:80/tcp");
        assert_eq!(
            port("5353:53/udp").describe(),
            "127.0.0.1:5353 -> guest port 53/udp"
        );
        // The canonical form reads back as itself.
        let canonical = port("10.1.2.3:22:2222/udp");
        assert_eq!(port(&canonical.to_string()), canonical);
    }

    #[test]
    fn port_mappings_rejected() {
        for (text, needle) in [
            ("80", "needs both ports"),
            ("0:80", "host port 0 is out of range"),
            ("8080:0", "guest port 0 is out of range"),
            ("65536:80", "out of range"),
            ("8080:99999999999", "out of range"),
            ("8080:80/sctp", "unknown protocol 'sctp'; use /tcp or /udp"),
            ("8080:80/TCP", "unknown protocol 'TCP'"),
            ("8080:80/tcp/udp", "unknown protocol 'tcp/udp'"),
            ("8080:80/", "unknown protocol ''"),
            ("http:80", "host port 'http' is not a number"),
            ("8080:", "guest port '' is not a number"),
            (":80", "host port '' is not a number"),
            ("+80:80", "not a number"),
            ("8080-8090:80-90", "port ranges are not supported"),
            ("localhost:8080:80", "'localhost' is not an IPv4 address"),
            ("1.2.3:8080:80", "not an IPv4 address"),
            ("[::1]:8080:80", "only IPv4"),
            ("a:b:c:d", "use [HOST_IP:]HOST_PORT:GUEST_PORT"),
            ("", "needs both ports"),
        ] {
            let e = port_error(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn host_sockets_are_used_once() {
        let ports = |list: &[&str]| list.iter().map(|t| port(t)).collect::<Vec<_>>();
        assert!(check_ports(&ports(&[
            "8080:80",
            "8081:80",
            "8080:80/udp",
            "127.0.0.2:8080:81"
        ]))
        .is_ok());
        let e = check_ports(&ports(&["8080:80", "8080:80/tcp"])).unwrap_err();
        assert_eq!(e, "port 127.0.0.1:8080:80/tcp is published twice");
        let e = check_ports(&ports(&["8080:80", "8080:81"])).unwrap_err();
        assert!(e.contains("host port 8080/tcp is published twice"), "{e}");
        assert!(
            e.contains(
                "127.0.0.1:8080 -> guest port 80/tcp and 127.0.0.1:8080 -> guest port 81/tcp"
            ),
            "{e}"
        );
        let e = check_ports(&ports(&["0.0.0.0:53:53/udp", "127.0.0.1:53:5353/udp"])).unwrap_err();
        assert!(e.contains("host port 53/udp is published twice"), "{e}");
    }

    #[test]
    fn net_modes() {
        assert_eq!("user".parse(), Ok(NetMode::User));
        assert_eq!("none".parse(), Ok(NetMode::None));
        assert_eq!("tap:tap0".parse(), Ok(NetMode::Tap("tap0".into())));
        assert_eq!(
            NetMode::Tap("skiff-tap".into()).to_string(),
            "tap:skiff-tap"
        );
        for (text, needle) in [
            ("tap", "needs the tap device's name"),
            ("tap:", "needs the tap device's name"),
            (
                "bridge",
                "unknown network 'bridge'; use user, none or tap:IFNAME",
            ),
            ("User", "unknown network"),
            ("tap:a-very-long-name0", "1 to 15 characters"),
            ("tap:a/b", "cannot contain"),
            ("tap:a:b", "cannot contain"),
            ("tap:a b", "cannot contain"),
            ("tap:..", "cannot be . or .."),
        ] {
            let e = text.parse::<NetMode>().unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn guest_addresses() {
        let cidr: Ipv4Cidr = "192.168.100.2/24".parse().unwrap();
        assert_eq!(
            (cidr.addr, cidr.prefix),
            (Ipv4Addr::new(192, 168, 100, 2), 24)
        );
        assert_eq!(cidr.to_string(), "192.168.100.2/24");
        assert!(cidr.contains(Ipv4Addr::new(192, 168, 100, 1)));
        assert!(!cidr.contains(Ipv4Addr::new(192, 168, 101, 1)));
        assert!("10.0.0.7/32".parse::<Ipv4Cidr>().is_ok());
        assert!("10.0.0.0/31".parse::<Ipv4Cidr>().is_ok());
        for (text, needle) in [
            ("192.168.100.2", "needs a prefix length"),
            ("192.168.100.2/0", "from 1 to 32"),
            ("192.168.100.2/33", "from 1 to 32"),
            ("192.168.100.2/+24", "from 1 to 32"),
            ("192.168.100.2/x", "from 1 to 32"),
            ("192.168.100/24", "not an IPv4 address"),
            (
                "192.168.100.0/24",
                "the network's own address; give the guest a host address in 192.168.100.0/24",
            ),
            ("192.168.100.255/24", "broadcast address"),
            ("127.0.0.2/8", "cannot be a guest's address"),
            ("0.0.0.0/8", "cannot be a guest's address"),
            ("224.0.0.1/4", "cannot be a guest's address"),
        ] {
            let e = text.parse::<Ipv4Cidr>().unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    fn settings(mode: Option<&str>) -> NetSettings {
        NetSettings {
            mode: mode.map(|m| m.parse().unwrap()),
            ..NetSettings::default()
        }
    }

    #[test]
    fn default_and_implied_modes() {
        assert_eq!(settings(None).effective_mode(), DEFAULT_MODE);
        let published = NetSettings {
            ports: vec![port("8080:80")],
            ..settings(None)
        };
        assert_eq!(published.effective_mode(), NetMode::User);
        let dns = NetSettings {
            dns: vec![Ipv4Addr::new(1, 1, 1, 1)],
            ..settings(None)
        };
        assert_eq!(dns.effective_mode(), NetMode::User);
        assert_eq!(settings(Some("none")).effective_mode(), NetMode::None);
    }

    #[test]
    fn user_networking_resolves_to_qemus_addresses() {
        let net = NetSettings {
            ports: vec![port("8080:80"), port("0.0.0.0:5353:53/udp")],
            ..settings(Some("user"))
        }
        .resolve(Source::CommandLine)
        .unwrap();
        assert_eq!(
            net.address,
            Some(GuestAddress::Static {
                ip: USER_GUEST_IP,
                gateway: Some(USER_GATEWAY)
            })
        );
        assert_eq!(net.dns, [USER_DNS]);
        assert_eq!(
            net.qemu_args(Machine::Microvm),
            [
                "-netdev",
                "user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:5353-:53",
                "-device",
                "virtio-net-device,netdev=n0"
            ]
        );
        assert_eq!(
            net.qemu_args(Machine::Q35)[3],
            "virtio-net-pci,netdev=n0,romfile="
        );
        assert_eq!(
            net.cmdline_words(),
            ["skiff.ip=10.0.2.15/24", "skiff.gw=10.0.2.2"]
        );
        assert_eq!(
            net.describe(),
            "user (guest 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3)"
        );

        let dhcp = NetSettings {
            dhcp: true,
            dns: vec![Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)],
            ..settings(Some("user"))
        }
        .resolve(Source::CommandLine)
        .unwrap();
        assert_eq!(dhcp.cmdline_words(), ["skiff.dhcp=1"]);
        assert_eq!(dhcp.qemu_args(Machine::Microvm)[1], "user,id=n0");
        assert_eq!(
            dhcp.dns,
            [Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)]
        );
    }

    #[test]
    fn no_network() {
        let net = settings(Some("none")).resolve(Source::CommandLine).unwrap();
        assert!(net.qemu_args(Machine::Microvm).is_empty());
        assert!(net.cmdline_words().is_empty());
        assert!(net.dns.is_empty());
        assert_eq!(net.describe(), "none");
        for (extra, needle) in [
            (
                NetSettings { ports: vec![port("8080:80")], ..settings(Some("none")) },
                "publishing ports (-p) needs a network, but --net none gives the VM none: use --net user",
            ),
            (NetSettings { dhcp: true, ..settings(Some("none")) }, "--dhcp configure a network card"),
            (
                NetSettings { dns: vec![USER_DNS], ..settings(Some("none")) },
                "DNS servers (--dns) need a network",
            ),
        ] {
            let e = extra.resolve(Source::CommandLine).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn tap_networks() {
        let tap = |ip: Option<&str>, gateway: Option<&str>, dhcp: bool| NetSettings {
            ip: ip.map(|t| t.parse().unwrap()),
            gateway: gateway.map(|t| t.parse().unwrap()),
            dhcp,
            ..settings(Some("tap:tap0"))
        };
        let net = tap(Some("192.168.100.2/24"), Some("192.168.100.1"), false)
            .resolve(Source::CommandLine)
            .unwrap();
        assert_eq!(
            net.qemu_args(Machine::Q35),
            [
                "-netdev",
                "tap,id=n0,ifname=tap0,script=no,downscript=no",
                "-device",
                "virtio-net-pci,netdev=n0,romfile="
            ]
        );
        assert_eq!(
            net.cmdline_words(),
            ["skiff.ip=192.168.100.2/24", "skiff.gw=192.168.100.1"]
        );
        assert!(net.dns.is_empty());
        let words = net.cmdline_words().join(" ");
        assert_eq!(
            cmdline::get(&words, cmdline::NET_IP),
            Some("192.168.100.2/24")
        );
        assert_eq!(
            cmdline::get(&words, cmdline::NET_GATEWAY),
            Some("192.168.100.1")
        );

        let lone = tap(Some("10.9.0.5/16"), None, false)
            .resolve(Source::CommandLine)
            .unwrap();
        assert_eq!(lone.cmdline_words(), ["skiff.ip=10.9.0.5/16"]);
        let dhcp = tap(None, None, true).resolve(Source::CommandLine).unwrap();
        assert!(cmdline::flag(
            &dhcp.cmdline_words().join(" "),
            cmdline::NET_DHCP
        ));

        for (settings, needle) in [
            (
                tap(None, None, false),
                "--net tap:tap0 needs the guest's address: --ip",
            ),
            (
                tap(Some("10.0.0.2/24"), None, true),
                "either --ip or --dhcp",
            ),
            (
                tap(None, Some("10.0.0.1"), true),
                "with --dhcp the gateway comes from DHCP",
            ),
            (
                tap(None, Some("10.0.0.1"), false),
                "--gateway needs the guest's address",
            ),
            (
                tap(Some("10.0.0.2/24"), Some("10.0.1.1"), false),
                "the gateway 10.0.1.1 is not another address on the guest's network 10.0.0.0/24",
            ),
            (
                tap(Some("10.0.0.2/24"), Some("10.0.0.2"), false),
                "not another address",
            ),
            (
                NetSettings {
                    ports: vec![port("8080:80")],
                    ..tap(None, None, true)
                },
                "ports cannot be published with --net tap:tap0: the guest has its own address",
            ),
        ] {
            let e = settings.resolve(Source::CommandLine).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        let e = NetSettings {
            ip: Some("10.0.0.2/24".parse().unwrap()),
            ..settings(Some("user"))
        }
        .resolve(Source::CommandLine)
        .unwrap_err();
        assert!(
            e.contains("--ip and --gateway are for --net tap:IFNAME"),
            "{e}"
        );
        let e = NetSettings {
            dns: vec![USER_DNS; 4],
            ..settings(Some("user"))
        }
        .resolve(Source::CommandLine)
        .unwrap_err();
        assert!(e.contains("at most 3"), "{e}");
    }

    #[test]
    fn messages_name_settings_as_written() {
        let none_with_port = NetSettings {
            ports: vec![port("8080:80")],
            ..settings(Some("none"))
        };
        assert_eq!(
            none_with_port.resolve(Source::Manifest).unwrap_err(),
            "publishing ports (ports) needs a network, but net = \"none\" gives the VM none: \
             use net = \"user\""
        );
        let bare_tap = settings(Some("tap:tap0"));
        assert_eq!(
            bare_tap.resolve(Source::CommandLine).unwrap_err(),
            "--net tap:tap0 needs the guest's address: --ip A.B.C.D/N (with --gateway \
             A.B.C.D), or --dhcp"
        );
        assert_eq!(
            bare_tap.resolve(Source::Manifest).unwrap_err(),
            "net = \"tap:tap0\" needs the guest's address: ip = \"A.B.C.D/N\" (with gateway \
             = \"A.B.C.D\"), or dhcp = true"
        );
    }

    #[test]
    fn tap_devices_are_checked() {
        let sys = crate::tempfiles::test_dir();
        let device = |name: &str, flags: Option<&str>| {
            fs::create_dir(sys.path().join(name)).unwrap();
            if let Some(flags) = flags {
                fs::write(sys.path().join(name).join("tun_flags"), flags).unwrap();
            }
        };
        device("tap0", Some("0x1802\n"));
        device("tun0", Some("0x1001\n"));
        device("eth0", None);
        assert_eq!(check_tap_device("tap0", sys.path()), Ok(()));
        let e = check_tap_device("tap9", sys.path()).unwrap_err();
        assert!(e.starts_with("there is no network device tap9; create the tap device first, e.g.: ip tuntap add dev tap9 mode tap"), "{e}");
        let e = check_tap_device("tun0", sys.path()).unwrap_err();
        assert!(e.starts_with("tun0 is a tun device"), "{e}");
        let e = check_tap_device("eth0", sys.path()).unwrap_err();
        assert!(e.starts_with("eth0 is not a tap device"), "{e}");
    }

    #[test]
    fn ports_in_use_are_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let number = taken.local_addr().unwrap().port();
        let mapping = port(&format!("{number}:80"));
        assert_eq!(
            check_host_ports(&[mapping]),
            Err(format!("port {number} is already in use on 127.0.0.1"))
        );
        let udp_taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let number = udp_taken.local_addr().unwrap().port();
        let mapping = port(&format!("{number}:53/udp"));
        assert_eq!(
            check_host_ports(&[mapping]),
            Err(format!("UDP port {number} is already in use on 127.0.0.1"))
        );
        // A port nobody holds (the probe closed its socket again).
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let number = free.local_addr().unwrap().port();
        drop(free);
        assert_eq!(check_host_ports(&[port(&format!("{number}:80"))]), Ok(()));
        let e = check_host_ports(&[port("192.0.2.77:8080:80")]).unwrap_err();
        assert_eq!(
            e,
            "cannot publish port 8080 on 192.0.2.77: it is not an address of this host"
        );
    }
}
