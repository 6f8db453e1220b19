//! The stack: both links, every socket's state, the classification of received frames,
//! the timer index, and [`Stack`], the face the kernel sees.
//!
//! Everything lives in one [`Inner`] behind one lock; socket objects hold only an id.
//! The work loop is: take a frame (from the card or the loopback queue), classify it
//! ([`crate::flow`]), hand it to smoltcp together with the one socket set it is for,
//! then *settle* every entity it touched: run our own timers for it, let smoltcp
//! transmit what it wants, record readiness changes and reschedule its timer.

use crate::config::NetConfig;
use crate::device::NetDevice;
use crate::flow::{self, Class};
use crate::phy::{LinkPhy, Wire};
use crate::ports::PortTable;
use crate::socket::{self, InetSocket};
use crate::tcp::{Conn, TcpSock};
use crate::udp::UdpSock;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use hashbrown::{HashMap, HashSet};
use skiff_bootproto::{Listening, Transport};
use skiff_errno::{Errno, KResult};
use skiff_fs::device::event_stamp;
use skiff_fs::socket::*;
use skiff_fs::{Generation, OpenFile};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, AnySocket};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr,
};
use spin::Mutex;

pub(crate) type Id = u64;

/// Which link a socket set talks through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum IfaceId {
    Loopback = 0,
    Nic = 1,
}

/// One of the two smoltcp interfaces with its device.
pub(crate) struct Link {
    pub iface: Interface,
    pub phy: LinkPhy,
}

/// A smoltcp socket in a set of its own, so that processing a packet for it or letting
/// it transmit touches nothing else (see the crate docs).
pub(crate) struct Cell {
    pub set: SocketSet<'static>,
    pub handle: SocketHandle,
}

impl Cell {
    pub(crate) fn new<T: AnySocket<'static>>(socket: T) -> Cell {
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(socket);
        Cell { set, handle }
    }

    pub(crate) fn get<T: AnySocket<'static>>(&self) -> &T {
        self.set.get(self.handle)
    }

    pub(crate) fn get_mut<T: AnySocket<'static>>(&mut self) -> &mut T {
        self.set.get_mut(self.handle)
    }
}

/// Something whose smoltcp timers (and ours) the timer index tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Timed {
    Conn(Id),
    Udp(Id, IfaceId),
    /// The link's own set: ARP, pings, RSTs for unknown ports, and DHCP on the card.
    Control(IfaceId),
}

/// A user-visible socket's state.
pub(crate) enum Sock {
    Tcp(TcpSock),
    Udp(UdpSock),
}

/// The 4-tuple of a TCP connection, as seen from our end, on one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    pub iface: IfaceId,
    pub local: IpEndpoint,
    pub remote: IpEndpoint,
}

/// Most frames taken from the card per `poll`, so one call stays bounded.
const MAX_FRAMES_PER_POLL: usize = 512;
/// Most loopback packets processed per flush before the rest wait for `poll`.
const MAX_LOOPBACK_PER_FLUSH: usize = 1 << 16;
/// How many segments one socket may emit per settle (the rest follow at `poll`).
const EGRESS_ROUNDS: usize = 64;
/// How long to wait before retrying when the card's transmit ring was full.
const TX_RETRY_NS: u64 = 1_000_000;

pub(crate) struct Inner {
    pub now: u64,
    pub lo: Link,
    pub nic: Option<Link>,
    /// The card's address (static, or leased) and the default gateway.
    pub nic_cidr: Option<Ipv4Cidr>,
    pub gateway: Option<Ipv4Address>,
    /// Each link's control set; the card's holds the DHCP client, if any.
    pub control: [SocketSet<'static>; 2],
    pub dhcp: Option<SocketHandle>,
    pub socks: HashMap<Id, Sock>,
    pub conns: HashMap<Id, Conn>,
    /// Established and half-open connections by 4-tuple.
    pub conn_index: HashMap<ConnKey, Id>,
    /// Listening TCP sockets and bound UDP sockets by port.
    pub listen_index: HashMap<u16, Vec<Id>>,
    pub udp_index: HashMap<u16, Vec<Id>>,
    pub ports: PortTable,
    /// `(deadline ns, what)`, and each entry's current deadline.
    timers: BTreeSet<(u64, Timed)>,
    scheduled: HashMap<Timed, u64>,
    /// Entities touched since the last settle.
    work: Vec<Timed>,
    in_work: HashSet<Timed>,
    next_id: Id,
    rng: u64,
    listening_new: Vec<Listening>,
    listening_seen: HashSet<(u8, u16)>,
    pub log: Vec<String>,
    /// The deadline the kernel was last given (by `poll` or a kick).
    armed: Option<u64>,
    kick_wanted: bool,
}

pub(crate) fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

fn instant_ns(i: Instant) -> u64 {
    (i.total_micros().max(0) as u64).saturating_mul(1000)
}

/// Let the set's sockets transmit what they want to, a bounded number of rounds.
pub(crate) fn egress_set(link: &mut Link, set: &mut SocketSet<'static>, now: u64) {
    for _ in 0..EGRESS_ROUNDS {
        if link.iface.poll_egress(instant(now), &mut link.phy, set) == PollResult::None {
            break;
        }
    }
}

/// Process the staged frame with `set`.
pub(crate) fn ingress_set(link: &mut Link, set: &mut SocketSet<'static>, frame: Vec<u8>, now: u64) {
    link.phy.stage(frame);
    let _ = link
        .iface
        .poll_ingress_single(instant(now), &mut link.phy, set);
    link.phy.unstage();
}

impl Inner {
    fn new(device: Option<Arc<dyn NetDevice>>, config: &NetConfig, now: u64, seed: u64) -> Inner {
        let mut log = Vec::new();
        let mut lo_phy = LinkPhy::loopback();
        let mut lo_config = Config::new(HardwareAddress::Ip);
        lo_config.random_seed = seed;
        let mut lo_iface = Interface::new(lo_config, &mut lo_phy, instant(now));
        lo_iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
        });
        // Every 127.x.y.z is ours, as on Linux (the loopback link only carries our own
        // packets, so accepting any destination is safe).
        lo_iface.set_any_ip(true);
        let lo = Link {
            iface: lo_iface,
            phy: lo_phy,
        };

        let nic = device.and_then(|device| {
            let mac = EthernetAddress(device.mac());
            let max_frame = device.max_frame();
            if !mac.is_unicast() {
                log.push(alloc::format!(
                    "net: the network card's MAC address {mac} is not unicast; networking stays on loopback"
                ));
                return None;
            }
            if !(590..=65535).contains(&max_frame) {
                log.push(alloc::format!(
                    "net: the network card's frame size {max_frame} is unusable; networking stays on loopback"
                ));
                return None;
            }
            let mut phy = LinkPhy::nic(device);
            let mut c = Config::new(HardwareAddress::Ethernet(mac));
            c.random_seed = seed ^ 0x9e37_79b9_7f4a_7c15;
            let iface = Interface::new(c, &mut phy, instant(now));
            Some(Link { iface, phy })
        });

        let mut control = [SocketSet::new(Vec::new()), SocketSet::new(Vec::new())];
        let dhcp = (nic.is_some() && config.dhcp)
            .then(|| control[IfaceId::Nic as usize].add(dhcpv4::Socket::new()));

        let mut inner = Inner {
            now,
            lo,
            nic,
            nic_cidr: None,
            gateway: None,
            control,
            dhcp,
            socks: HashMap::new(),
            conns: HashMap::new(),
            conn_index: HashMap::new(),
            listen_index: HashMap::new(),
            udp_index: HashMap::new(),
            ports: PortTable::default(),
            timers: BTreeSet::new(),
            scheduled: HashMap::new(),
            work: Vec::new(),
            in_work: HashSet::new(),
            next_id: 0,
            rng: seed | 1,
            listening_new: Vec::new(),
            listening_seen: HashSet::new(),
            log,
            armed: None,
            kick_wanted: false,
        };
        if inner.nic.is_some() && !config.dhcp {
            let cidr = config.address.map(|IpCidr::Ipv4(c)| c);
            let gw = config.gateway.map(|IpAddress::Ipv4(g)| g);
            inner.set_nic_address(cidr, gw);
        }
        if inner.dhcp.is_some() {
            inner.touch(Timed::Control(IfaceId::Nic));
        }
        inner
    }

    pub(crate) fn new_id(&mut self) -> Id {
        self.next_id += 1;
        self.next_id
    }

    /// A pseudo-random number (xorshift64*), for ephemeral ports and `SO_REUSEPORT`
    /// spreading.
    pub(crate) fn random(&mut self) -> u32 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    pub(crate) fn link(&mut self, iface: IfaceId) -> Option<&mut Link> {
        match iface {
            IfaceId::Loopback => Some(&mut self.lo),
            IfaceId::Nic => self.nic.as_mut(),
        }
    }

    /// The card's current address, if it has one.
    pub(crate) fn nic_addr(&self) -> Option<IpAddress> {
        self.nic_cidr.map(|c| IpAddress::Ipv4(c.address()))
    }

    /// Give the card `cidr` (or take its address away) with `gateway` as default route.
    /// The loopback link also answers for the card's address, so that the guest talking
    /// to itself by that address never leaves memory.
    pub(crate) fn set_nic_address(&mut self, cidr: Option<Ipv4Cidr>, gateway: Option<Ipv4Address>) {
        let Some(nic) = self.nic.as_mut() else {
            return;
        };
        nic.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(c) = cidr {
                let _ = addrs.push(IpCidr::Ipv4(c));
            }
        });
        nic.iface.routes_mut().remove_default_ipv4_route();
        if let (Some(_), Some(gw)) = (cidr, gateway) {
            let _ = nic.iface.routes_mut().add_default_ipv4_route(gw);
        }
        self.lo.iface.update_ip_addrs(|addrs| {
            addrs.truncate(1);
            if let Some(c) = cidr {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(c.address()), 32));
            }
        });
        self.nic_cidr = cidr;
        self.gateway = gateway.filter(|_| cidr.is_some());
    }

    /// Which link reaches `dst` and the source address to send from: 127/8 and the
    /// card's own address stay on loopback; everything else needs the card with an
    /// address and either the destination on its subnet or a gateway.
    pub(crate) fn route(&self, dst: IpAddress) -> KResult<(IfaceId, IpAddress)> {
        let IpAddress::Ipv4(d) = dst;
        if d.is_loopback() || d.is_unspecified() {
            return Ok((IfaceId::Loopback, IpAddress::v4(127, 0, 0, 1)));
        }
        let cidr = self.nic_cidr.filter(|_| self.nic.is_some());
        let Some(cidr) = cidr else {
            return Err(Errno::ENETUNREACH);
        };
        if d == cidr.address() {
            return Ok((IfaceId::Loopback, dst));
        }
        if d.is_broadcast() || cidr.contains_addr(&d) || self.gateway.is_some() {
            return Ok((IfaceId::Nic, IpAddress::Ipv4(cidr.address())));
        }
        Err(Errno::ENETUNREACH)
    }

    /// Whether `addr` is one a socket may bind: the wildcard, loopback, the card's own,
    /// or a broadcast or multicast address (Linux accepts those too).
    pub(crate) fn bindable(&self, addr: IpAddress) -> bool {
        let IpAddress::Ipv4(a) = addr;
        a.is_unspecified()
            || a.is_loopback()
            || a.is_broadcast()
            || a.is_multicast()
            || self
                .nic_cidr
                .is_some_and(|c| c.address() == a || c.broadcast() == Some(a))
    }

    /// Whether `addr` is a broadcast address for the card.
    pub(crate) fn is_broadcast(&self, addr: IpAddress) -> bool {
        let IpAddress::Ipv4(a) = addr;
        a.is_broadcast() || self.nic_cidr.is_some_and(|c| c.broadcast() == Some(a))
    }

    /// Note a port now served on an address reachable from outside, for
    /// [`Stack::take_listening`].
    pub(crate) fn report_listening(
        &mut self,
        transport: Transport,
        addr: Option<IpAddress>,
        port: u16,
    ) {
        let outside = match addr {
            None => true,
            Some(a) => Some(a) == self.nic_addr(),
        };
        if outside && self.listening_seen.insert((transport as u8, port)) {
            self.listening_new.push(Listening { transport, port });
        }
    }

    // ---- work and timers ----

    /// Remember that `t` needs settling (transmit, readiness, timers).
    pub(crate) fn touch(&mut self, t: Timed) {
        if self.in_work.insert(t) {
            self.work.push(t);
        }
    }

    /// Put `t` in the timer index at `deadline` (`None`: it waits for packets only).
    pub(crate) fn schedule(&mut self, t: Timed, deadline: Option<u64>) {
        if let Some(old) = self.scheduled.remove(&t) {
            self.timers.remove(&(old, t));
        }
        if let Some(d) = deadline {
            self.timers.insert((d, t));
            self.scheduled.insert(t, d);
        }
    }

    /// The next time smoltcp wants to run for `set` on `iface`.
    pub(crate) fn smoltcp_deadline(
        link: &mut Link,
        set: &SocketSet<'static>,
        now: u64,
    ) -> Option<u64> {
        link.iface.poll_at(instant(now), set).map(instant_ns)
    }

    /// Settle everything touched, then process looped-back packets (which touch more)
    /// until the loopback queue is empty.
    pub(crate) fn flush(&mut self) {
        let mut budget = MAX_LOOPBACK_PER_FLUSH;
        loop {
            while let Some(t) = self.work.pop() {
                self.in_work.remove(&t);
                self.settle(t);
            }
            if budget == 0 {
                // Leave the rest for the next poll.
                self.schedule(Timed::Control(IfaceId::Loopback), Some(self.now));
                break;
            }
            match self.lo.phy.pop_loopback() {
                Some(packet) => {
                    budget -= 1;
                    self.ingress(IfaceId::Loopback, packet);
                }
                None => break,
            }
        }
    }

    fn settle(&mut self, t: Timed) {
        match t {
            Timed::Conn(id) => self.settle_conn(id),
            Timed::Udp(id, iface) => self.settle_udp(id, iface),
            Timed::Control(iface) => self.settle_control(iface),
        }
    }

    fn settle_control(&mut self, iface: IfaceId) {
        let now = self.now;
        let Inner {
            lo, nic, control, ..
        } = self;
        let link = match iface {
            IfaceId::Loopback => lo,
            IfaceId::Nic => match nic {
                Some(l) => l,
                None => return,
            },
        };
        let set = &mut control[iface as usize];
        egress_set(link, set, now);
        if iface == IfaceId::Nic {
            self.dhcp_events();
        }
        let Inner {
            lo, nic, control, ..
        } = self;
        let link = match iface {
            IfaceId::Loopback => lo,
            IfaceId::Nic => nic.as_mut().expect("checked above"),
        };
        let deadline = Self::smoltcp_deadline(link, &control[iface as usize], now);
        self.schedule(Timed::Control(iface), deadline);
    }

    /// Apply what the DHCP client learnt.
    fn dhcp_events(&mut self) {
        let Some(handle) = self.dhcp else {
            return;
        };
        let event = self.control[IfaceId::Nic as usize]
            .get_mut::<dhcpv4::Socket>(handle)
            .poll()
            .map(|e| match e {
                dhcpv4::Event::Configured(c) => Some((c.address, c.router)),
                dhcpv4::Event::Deconfigured => None,
            });
        match event {
            Some(Some((cidr, router))) => {
                if !crate::config::is_host_address(cidr.address()) || cidr.prefix_len() == 0 {
                    self.log.push(alloc::format!(
                        "net: DHCP offered the unusable address {cidr}; ignored"
                    ));
                    return;
                }
                let router = router.filter(|r| cidr.contains_addr(r) && *r != cidr.address());
                self.set_nic_address(Some(cidr), router);
                match router {
                    Some(r) => self
                        .log
                        .push(alloc::format!("net: DHCP lease {cidr}, gateway {r}")),
                    None => self
                        .log
                        .push(alloc::format!("net: DHCP lease {cidr}, no gateway")),
                }
            }
            Some(None) => {
                self.set_nic_address(None, None);
                self.log.push(String::from(
                    "net: DHCP lease lost; the card has no address",
                ));
            }
            None => {}
        }
    }

    /// Touch everything whose deadline has come.
    fn run_timers(&mut self) {
        while let Some(&(deadline, t)) = self.timers.first() {
            if deadline > self.now {
                break;
            }
            self.schedule(t, None);
            self.touch(t);
        }
    }

    /// The earliest deadline in the index.
    fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(d, _)| d)
    }

    /// Note whether the kernel must be kicked: the earliest deadline is now before the
    /// one it was last given.
    fn update_kick(&mut self) {
        if let Some(d) = self.next_deadline() {
            if self.armed.is_none_or(|a| d < a) {
                self.armed = Some(d);
                self.kick_wanted = true;
            }
        }
    }

    // ---- receiving ----

    /// Process one received frame.
    pub(crate) fn ingress(&mut self, iface: IfaceId, frame: Vec<u8>) {
        match flow::classify(&frame, iface == IfaceId::Nic) {
            Class::Tcp {
                src,
                dst,
                syn,
                ack,
                rst,
            } => self.ingress_tcp(iface, frame, src, dst, syn && !ack && !rst, rst),
            Class::Udp { src, dst } => self.ingress_udp(iface, frame, src, dst),
            Class::IcmpError {
                errno,
                hard,
                protocol,
                local,
                remote,
            } => {
                self.icmp_error(iface, errno, hard, protocol, local, remote);
                self.ingress_control(iface, frame);
            }
            Class::Arp => {
                self.ingress_control(iface, frame);
                self.wake_neighbor_waiters();
            }
            Class::Other => self.ingress_control(iface, frame),
        }
    }

    /// After an ARP packet: sockets that could not send for want of a neighbour's
    /// address wait in smoltcp's one-second neighbour silence; try them again now. They
    /// are among the card's entities due within that second.
    fn wake_neighbor_waiters(&mut self) {
        const SILENCE_NS: u64 = 1_000_000_000;
        let due: Vec<Timed> = self
            .timers
            .range(
                (self.now, Timed::Conn(0))..=(self.now + SILENCE_NS, Timed::Control(IfaceId::Nic)),
            )
            .map(|&(_, t)| t)
            .filter(|t| match t {
                Timed::Conn(id) => self.conns.get(id).is_some_and(|c| c.iface == IfaceId::Nic),
                Timed::Udp(_, iface) | Timed::Control(iface) => *iface == IfaceId::Nic,
            })
            .collect();
        for t in due {
            self.touch(t);
        }
    }

    /// Give the frame to the link's control set: smoltcp answers ARP and pings, sends
    /// RSTs for TCP to nobody and port-unreachables for UDP to nobody, feeds DHCP.
    pub(crate) fn ingress_control(&mut self, iface: IfaceId, frame: Vec<u8>) {
        let now = self.now;
        let Inner {
            lo, nic, control, ..
        } = self;
        let link = match iface {
            IfaceId::Loopback => lo,
            IfaceId::Nic => match nic {
                Some(l) => l,
                None => return,
            },
        };
        ingress_set(link, &mut control[iface as usize], frame, now);
        self.touch(Timed::Control(iface));
    }

    /// Frames from the card, at most `MAX_FRAMES_PER_POLL`; whether more wait.
    fn nic_ingress(&mut self) -> bool {
        let Some(device) = self.nic.as_ref().and_then(|l| match &l.phy.medium {
            Wire::Nic(d) => Some(d.clone()),
            Wire::Loopback(_) => None,
        }) else {
            return false;
        };
        for _ in 0..MAX_FRAMES_PER_POLL {
            let mut frame = Vec::new();
            if !device.receive(&mut |f| frame.extend_from_slice(f)) {
                return false;
            }
            self.ingress(IfaceId::Nic, frame);
            self.flush();
        }
        device.rx_pending()
    }
}

/// The guest's TCP/IP stack: the card (if any) and loopback, with every AF_INET socket.
pub struct Stack {
    inner: Mutex<Inner>,
    card: Option<Arc<dyn NetDevice>>,
    now_ns: fn() -> u64,
    kick: fn(),
    logger: Mutex<Option<fn(&str)>>,
}

impl Stack {
    /// A stack over `device` (`None`: loopback only) configured by `config`. `now_ns`
    /// is the monotonic clock, `seed` seeds sequence numbers, DHCP transaction ids and
    /// ephemeral ports, and `kick` is called (from thread context, without locks held)
    /// when the stack wants [`Stack::poll`] to run before the deadline it last
    /// returned. Call `poll` once after creating the stack (DHCP starts there).
    pub fn new(
        device: Option<Arc<dyn NetDevice>>,
        config: NetConfig,
        now_ns: fn() -> u64,
        seed: u64,
        kick: fn(),
    ) -> Arc<Stack> {
        let inner = Inner::new(device.clone(), &config, now_ns(), seed);
        Arc::new(Stack {
            inner: Mutex::new(inner),
            card: device,
            now_ns,
            kick,
            logger: Mutex::new(None),
        })
    }

    /// Where the stack's messages go (a DHCP lease, a card it cannot use). Messages
    /// produced before a logger is set are kept until then.
    pub fn set_logger(&self, logger: fn(&str)) {
        *self.logger.lock() = Some(logger);
        let lines = core::mem::take(&mut self.inner.lock().log);
        self.emit_logs(lines);
    }

    fn emit_logs(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let logger = *self.logger.lock();
        match logger {
            Some(f) => lines.iter().for_each(|l| f(l)),
            // Keep them for when a logger arrives.
            None => self.inner.lock().log.extend(lines),
        }
    }

    /// Run `f` on the stack's state at the current time, then transmit what it queued
    /// and process loopback traffic, kick the network thread if a timer moved earlier,
    /// and emit log lines, outside the lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let now = (self.now_ns)();
        let (result, kick, logs) = {
            let mut inner = self.inner.lock();
            inner.now = inner.now.max(now);
            let result = f(&mut inner);
            inner.flush();
            inner.update_kick();
            let kick = core::mem::take(&mut inner.kick_wanted);
            let logs = if self.logger.lock().is_some() {
                core::mem::take(&mut inner.log)
            } else {
                Vec::new()
            };
            (result, kick, logs)
        };
        if kick {
            (self.kick)();
        }
        self.emit_logs(logs);
        result
    }

    /// Look at the stack's state without changing or transmitting anything.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&self.inner.lock())
    }

    /// Receive from the card and loopback, run due timers, transmit. Returns the
    /// monotonic time at which `poll` must run again (`None`: only when the card
    /// interrupts or the stack kicks).
    pub fn poll(&self) -> Option<u64> {
        let now = (self.now_ns)();
        let (deadline, logs) = {
            let mut inner = self.inner.lock();
            inner.now = inner.now.max(now);
            if let Some(nic) = inner.nic.as_mut() {
                nic.phy.tx_exhausted = false;
            }
            let more_frames = inner.nic_ingress();
            inner.run_timers();
            inner.flush();
            let exhausted = inner.nic.as_ref().is_some_and(|n| n.phy.tx_exhausted);
            let mut deadline = inner.next_deadline();
            if more_frames {
                deadline = Some(inner.now);
            } else if exhausted {
                // Frames are waiting for ring space: try again shortly whatever the
                // timers say. Not sooner (a socket with queued data asks for "now",
                // which would spin), and not later (the next timer may be far off;
                // the transmit interrupt is armed, but this is the fallback).
                deadline = Some(inner.now + TX_RETRY_NS);
            }
            inner.armed = deadline;
            inner.kick_wanted = false;
            let logs = if self.logger.lock().is_some() {
                core::mem::take(&mut inner.log)
            } else {
                Vec::new()
            };
            (deadline, logs)
        };
        self.emit_logs(logs);
        deadline
    }

    /// Create a socket: AF_INET stream (TCP) or datagram (UDP). `ty` is the type
    /// without flags; `flags` may hold `SOCK_NONBLOCK`.
    pub fn socket(
        self: &Arc<Self>,
        family: u16,
        ty: u32,
        protocol: i32,
        flags: u32,
    ) -> KResult<Arc<OpenFile>> {
        let kind = socket::resolve_kind(family, ty, protocol)?;
        let id = self.with(|inner| {
            let id = inner.new_id();
            let sock = match kind {
                socket::Kind::Tcp => Sock::Tcp(TcpSock::new()),
                socket::Kind::Udp => Sock::Udp(UdpSock::new()),
            };
            inner.socks.insert(id, sock);
            id
        });
        Ok(InetSocket::open(self.clone(), id, kind, None, flags))
    }

    /// Ports newly listened on from outside the guest (TCP `listen`, UDP `bind` on the
    /// wildcard or the card's address), each reported once.
    pub fn take_listening(&self) -> Vec<Listening> {
        core::mem::take(&mut self.inner.lock().listening_new)
    }

    /// Whether output for the card is still on its way: a TCP connection with bytes
    /// queued or a FIN not yet sent or acknowledged, a UDP socket with datagrams not yet
    /// handed to the card, or frames the card has not taken yet. What would be lost if
    /// the machine stopped now.
    pub fn card_output_pending(&self) -> bool {
        if self.card.as_ref().is_some_and(|c| c.transmit_in_flight()) {
            return true;
        }
        self.inspect(|inner| {
            inner
                .conns
                .values()
                .any(|c| c.iface == IfaceId::Nic && c.output_pending())
                || inner.socks.values().any(|s| match s {
                    Sock::Udp(u) => u.card_output_pending(),
                    Sock::Tcp(_) => false,
                })
        })
    }

    /// The card's current address, if it has one (static, or leased by DHCP).
    pub fn address(&self) -> Option<IpCidr> {
        self.inner.lock().nic_cidr.map(IpCidr::Ipv4)
    }
}

/// Convert a socket address to an endpoint: `EAFNOSUPPORT` for other families.
pub(crate) fn endpoint_of(addr: &SockAddr) -> KResult<IpEndpoint> {
    match addr {
        SockAddr::Inet { addr, port } => Ok(IpEndpoint::new(
            IpAddress::v4(addr[0], addr[1], addr[2], addr[3]),
            *port,
        )),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

pub(crate) fn sockaddr_of(addr: Option<IpAddress>, port: u16) -> SockAddr {
    let IpAddress::Ipv4(a) = addr.unwrap_or(IpAddress::v4(0, 0, 0, 0));
    SockAddr::Inet {
        addr: a.octets(),
        port,
    }
}

/// A fresh readiness stamp for `g`'s `field`.
pub(crate) fn stamp(g: &mut Generation, input: bool, output: bool, hangup: bool) {
    if input || output || hangup {
        let s = event_stamp();
        if input {
            g.input = s;
        }
        if output {
            g.output = s;
        }
        if hangup {
            g.hangup = s;
        }
    }
}

/// The later of two stamp sets, field by field.
pub(crate) fn newest(a: Generation, b: Generation) -> Generation {
    Generation {
        input: a.input.max(b.input),
        output: a.output.max(b.output),
        hangup: a.hangup.max(b.hangup),
    }
}
