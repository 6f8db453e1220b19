//! UDP sockets.
//!
//! A socket has one smoltcp UDP socket per link it can use (each in a set of its own),
//! created when it binds: loopback for 127/8 and the card's own address, the card for
//! the rest, both for the wildcard. smoltcp only decodes and encodes datagrams here:
//! each datagram received is moved at once into the socket's own queue, which keeps
//! arrival order across both links, enforces `SO_RCVBUF`, and supports `MSG_PEEK` and
//! `MSG_TRUNC` with the real length. Which socket gets a datagram (the connected one
//! from that peer, a specific address before the wildcard, every matching one for a
//! broadcast) is decided here, as Linux's lookup does.

use crate::ports::{Binding, BindingId, Proto};
use crate::sockopt::*;
use crate::stack::{egress_set, ingress_set, stamp, Cell, Id, IfaceId, Inner, Sock, Timed};
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use skiff_bootproto::Transport;
use skiff_errno::{Errno, KResult};
use skiff_fs::epoll::*;
use skiff_fs::socket::*;
use skiff_fs::Generation;
use smoltcp::phy::PacketMeta;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, UdpMetadata};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

/// What a queued datagram costs against `SO_RCVBUF` besides its bytes (Linux charges
/// the buffer's true size, several hundred bytes for a small packet).
const DATAGRAM_OVERHEAD: usize = 768;
/// Largest UDP payload in one IPv4 datagram.
pub(crate) const MAX_UDP_PAYLOAD: usize = 65_507;
/// IPv4 and UDP headers.
const UDP_IP_HEADERS: usize = 28;
/// Datagrams that may wait in smoltcp for the card (ARP, a full ring).
const TX_SLOTS: usize = 32;
/// How long datagrams sent just before `close` may still wait for the card (a
/// neighbour being resolved) before they are dropped; Linux's ARP gives up after about
/// three seconds too.
const CLOSE_LINGER_NS: u64 = 3_000_000_000;

pub(crate) struct Datagram {
    from: IpEndpoint,
    data: Vec<u8>,
}

pub(crate) struct UdpSock {
    pub binding: Option<BindingId>,
    /// The bound address (`None`: wildcard) and port (0: unbound).
    pub addr: Option<IpAddress>,
    pub port: u16,
    /// `bind` chose them (a dissolved association keeps only what `bind` chose).
    explicit_addr: bool,
    explicit_port: bool,
    pub peer: Option<IpEndpoint>,
    /// The smoltcp socket for each link, indexed by `IfaceId`.
    cells: [Option<Cell>; 2],
    rxq: VecDeque<Datagram>,
    rx_bytes: usize,
    /// Stored `SO_RCVBUF` / `SO_SNDBUF`.
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub shut_rd: bool,
    pub shut_wr: bool,
    pub error: Option<Errno>,
    pub gen: Generation,
    pub ttl: Option<u8>,
    pub tos: i32,
    pub recverr: bool,
    pub mtu_discover: i32,
    tx_seen: [usize; 2],
    /// The descriptor is gone; the socket stays only to send what it queued.
    closed_at: Option<u64>,
}

impl UdpSock {
    /// Datagrams queued for the card and not yet handed to it.
    pub(crate) fn card_output_pending(&self) -> bool {
        self.cells[IfaceId::Nic as usize]
            .as_ref()
            .is_some_and(|c| c.get::<udp::Socket>().send_queue() > 0)
    }

    pub(crate) fn new() -> UdpSock {
        UdpSock {
            binding: None,
            addr: None,
            port: 0,
            explicit_addr: false,
            explicit_port: false,
            peer: None,
            cells: [None, None],
            rxq: VecDeque::new(),
            rx_bytes: 0,
            rcvbuf: UDP_DEFAULT_BUF,
            sndbuf: UDP_DEFAULT_BUF,
            shut_rd: false,
            shut_wr: false,
            error: None,
            gen: Generation::default(),
            ttl: None,
            tos: 0,
            recverr: false,
            mtu_discover: 0,
            tx_seen: [0; 2],
            closed_at: None,
        }
    }

    fn writable(&self) -> bool {
        self.cells.iter().flatten().all(|c| {
            let s = c.get::<udp::Socket>();
            s.send_queue() * 2 <= s.payload_send_capacity()
        })
    }

    /// Which links a socket bound to `addr` receives on.
    fn links_for(addr: Option<IpAddress>) -> &'static [IfaceId] {
        match addr {
            Some(IpAddress::Ipv4(a)) if a.is_loopback() => &[IfaceId::Loopback],
            _ => &[IfaceId::Loopback, IfaceId::Nic],
        }
    }
}

impl Inner {
    pub(crate) fn udp(&mut self, id: Id) -> KResult<&mut UdpSock> {
        match self.socks.get_mut(&id) {
            Some(Sock::Udp(s)) => Ok(s),
            _ => Err(Errno::EBADF),
        }
    }

    fn udp_ref(&self, id: Id) -> Option<&UdpSock> {
        match self.socks.get(&id) {
            Some(Sock::Udp(s)) => Some(s),
            _ => None,
        }
    }

    /// Make sure the socket has its smoltcp socket for `iface` (`false`: no such link).
    fn udp_cell(&mut self, id: Id, iface: IfaceId) -> bool {
        let Some(mtu) = self.link(iface).map(|l| l.phy.ip_mtu()) else {
            return false;
        };
        let Ok(sock) = self.udp(id) else {
            return false;
        };
        if sock.cells[iface as usize].is_some() {
            return true;
        }
        let max = mtu.min(MAX_UDP_PAYLOAD + UDP_IP_HEADERS);
        let rx = PacketBuffer::new(vec![PacketMetadata::EMPTY; 2], vec![0u8; max]);
        let tx_bytes = match iface {
            // Loopback sends go out at once; one datagram's room is enough.
            IfaceId::Loopback => max,
            IfaceId::Nic => max.max(32 * 1024),
        };
        let tx = PacketBuffer::new(vec![PacketMetadata::EMPTY; TX_SLOTS], vec![0u8; tx_bytes]);
        let mut s = udp::Socket::new(rx, tx);
        if s.bind(IpListenEndpoint {
            addr: sock.addr.filter(|a| !a.is_unspecified()),
            port: sock.port,
        })
        .is_err()
        {
            return false;
        }
        s.set_hop_limit(sock.ttl);
        sock.cells[iface as usize] = Some(Cell::new(s));
        true
    }

    fn udp_take_port(
        &mut self,
        id: Id,
        ep: IpEndpoint,
        reuseaddr: bool,
        reuseport: bool,
        explicit: bool,
    ) -> KResult<()> {
        let addr = (!ep.addr.is_unspecified()).then_some(ep.addr);
        let binding = Binding {
            proto: Proto::Udp,
            addr,
            port: ep.port,
            reuseaddr,
            reuseport,
            listening: false,
        };
        let bid = if ep.port == 0 {
            let start = self.random();
            self.ports
                .bind_ephemeral(binding, start)
                .ok_or(Errno::EADDRINUSE)?
        } else {
            self.ports.bind(binding)?
        };
        let port = self.ports.get(bid).map_or(0, |b| b.port);
        let sock = self.udp(id)?;
        sock.binding = Some(bid);
        sock.addr = addr;
        sock.port = port;
        if explicit {
            sock.explicit_addr = addr.is_some();
            sock.explicit_port = ep.port != 0;
        }
        self.udp_index.entry(port).or_default().push(id);
        for &iface in UdpSock::links_for(addr) {
            self.udp_cell(id, iface);
        }
        Ok(())
    }

    pub(crate) fn udp_bind(
        &mut self,
        id: Id,
        ep: IpEndpoint,
        reuseaddr: bool,
        reuseport: bool,
    ) -> KResult<()> {
        if !self.bindable(ep.addr) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if self.udp(id)?.binding.is_some() {
            return Err(Errno::EINVAL);
        }
        self.udp_take_port(id, ep, reuseaddr, reuseport, true)?;
        let sock = self.udp(id)?;
        let (addr, port) = (sock.addr, sock.port);
        self.report_listening(Transport::Udp, addr, port);
        Ok(())
    }

    fn udp_autobind(&mut self, id: Id, reuseaddr: bool, reuseport: bool) -> KResult<()> {
        if self.udp(id)?.binding.is_some() {
            return Ok(());
        }
        let any = IpEndpoint::new(IpAddress::v4(0, 0, 0, 0), 0);
        self.udp_take_port(id, any, reuseaddr, reuseport, false)
    }

    /// Release the socket's port and its smoltcp sockets.
    fn udp_unbind(&mut self, id: Id) {
        let Ok(sock) = self.udp(id) else {
            return;
        };
        let (binding, port) = (sock.binding.take(), sock.port);
        sock.port = 0;
        sock.cells = [None, None];
        if let Some(ids) = self.udp_index.get_mut(&port) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.udp_index.remove(&port);
            }
        }
        if let Some(b) = binding {
            self.ports.release(b);
        }
        self.schedule(Timed::Udp(id, IfaceId::Loopback), None);
        self.schedule(Timed::Udp(id, IfaceId::Nic), None);
    }

    /// Where a datagram to `dst` goes, from where. Checks as Linux's `udp_sendmsg` and
    /// `ip4_datagram_connect` do.
    fn udp_route(
        &self,
        id: Id,
        dst: IpEndpoint,
        broadcast_ok: bool,
    ) -> KResult<(IfaceId, IpAddress, IpEndpoint)> {
        let mut dst = dst;
        if dst.addr.is_unspecified() {
            dst.addr = IpAddress::v4(127, 0, 0, 1);
        }
        let (iface, mut src) = self.route(dst.addr)?;
        if self.is_broadcast(dst.addr) && !broadcast_ok {
            return Err(Errno::EACCES);
        }
        if let Some(a) = self.udp_ref(id).and_then(|s| s.addr) {
            let IpAddress::Ipv4(b) = a;
            if b.is_loopback() && iface == IfaceId::Nic {
                return Err(Errno::EINVAL);
            }
            if !(b.is_broadcast() || b.is_multicast() || self.is_broadcast(a)) {
                src = a;
            }
        }
        Ok((iface, src, dst))
    }

    pub(crate) fn udp_connect(
        &mut self,
        id: Id,
        ep: IpEndpoint,
        broadcast_ok: bool,
        reuseaddr: bool,
        reuseport: bool,
    ) -> KResult<()> {
        let (_, src, dst) = self.udp_route(id, ep, broadcast_ok)?;
        self.udp_autobind(id, reuseaddr, reuseport)?;
        let sock = self.udp(id)?;
        sock.peer = Some(dst);
        if sock.addr.is_none() {
            // Linux narrows the socket to the source address its route chose.
            sock.addr = Some(src);
            let binding = sock.binding;
            if let Some(b) = binding {
                self.ports.set_addr(b, Some(src));
            }
        }
        Ok(())
    }

    /// `connect(AF_UNSPEC)`: forget the peer, and whatever `bind` did not choose.
    pub(crate) fn udp_disconnect(&mut self, id: Id) -> KResult<()> {
        let sock = self.udp(id)?;
        sock.peer = None;
        if !sock.explicit_addr {
            sock.addr = None;
            if let Some(b) = sock.binding {
                self.ports.set_addr(b, None);
            }
        }
        let sock = self.udp(id)?;
        if !sock.explicit_port && sock.binding.is_some() {
            self.udp_unbind(id);
        }
        Ok(())
    }

    pub(crate) fn udp_send(
        &mut self,
        id: Id,
        data: &[u8],
        to: Option<IpEndpoint>,
        flags: u32,
        broadcast_ok: bool,
        reuse: (bool, bool),
    ) -> KResult<usize> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if data.len() > MAX_UDP_PAYLOAD {
            return Err(Errno::EMSGSIZE);
        }
        // Linux binds the socket before anything else is checked, then checks the
        // destination and the route, and only when it allocates the packet reports a
        // pending error or a shut-down sending side (`sock_alloc_send_pskb`).
        self.udp_autobind(id, reuse.0, reuse.1)?;
        let sock = self.udp(id)?;
        let dst = to.or(sock.peer).ok_or(Errno::EDESTADDRREQ)?;
        if dst.port == 0 {
            return Err(Errno::EINVAL);
        }
        let (iface, src, dst) = self.udp_route(id, dst, broadcast_ok)?;
        let sock = self.udp(id)?;
        if let Some(e) = sock.error.take() {
            return Err(e);
        }
        if sock.shut_wr {
            return Err(Errno::EPIPE);
        }
        let mtu = self.link(iface).map_or(0, |l| l.phy.ip_mtu());
        if data.len() + UDP_IP_HEADERS > mtu {
            // No IP fragmentation (see the crate docs): too big for the link.
            return Err(Errno::EMSGSIZE);
        }
        if !self.udp_cell(id, iface) {
            return Err(Errno::ENETUNREACH);
        }
        let sock = self.udp(id)?;
        let cell = sock.cells[iface as usize].as_mut().expect("created above");
        let meta = UdpMetadata {
            endpoint: dst,
            local_address: Some(src),
            meta: PacketMeta::default(),
        };
        match cell.get_mut::<udp::Socket>().send_slice(data, meta) {
            Ok(()) => {}
            Err(udp::SendError::BufferFull) => return Err(Errno::EAGAIN),
            Err(udp::SendError::Unaddressable) => return Err(Errno::EINVAL),
        }
        self.touch(Timed::Udp(id, iface));
        Ok(data.len())
    }

    pub(crate) fn udp_recv(&mut self, id: Id, buf: &mut [u8], flags: u32) -> KResult<Received> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let sock = self.udp(id)?;
        if let Some(e) = sock.error.take() {
            return Err(e);
        }
        let Some(d) = sock.rxq.front() else {
            // After SHUT_RD Linux's nonblocking receive says EAGAIN and a blocking one
            // returns 0; never blocking here, the 0 keeps blocking callers from waiting
            // for ever on a socket that polls readable.
            return if sock.shut_rd {
                Ok(Received::default())
            } else {
                Err(Errno::EAGAIN)
            };
        };
        let n = buf.len().min(d.data.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let full = d.data.len();
        let from = crate::stack::sockaddr_of(Some(d.from.addr), d.from.port);
        if flags & MSG_PEEK == 0 {
            sock.rxq.pop_front();
            sock.rx_bytes -= full + DATAGRAM_OVERHEAD;
        }
        Ok(Received {
            len: n,
            full_len: full,
            from: Some(from),
            flags: if full > n { MSG_TRUNC } else { 0 },
            ..Received::default()
        })
    }

    pub(crate) fn udp_shutdown(&mut self, id: Id, how: u32) -> KResult<()> {
        let (rd, wr) = match how {
            SHUT_RD => (true, false),
            SHUT_WR => (false, true),
            SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let sock = self.udp(id)?;
        // Linux records the shutdown even on an unconnected socket, then says ENOTCONN.
        sock.shut_rd |= rd;
        sock.shut_wr |= wr;
        stamp(&mut sock.gen, rd, wr, true);
        if sock.peer.is_none() {
            return Err(Errno::ENOTCONN);
        }
        Ok(())
    }

    /// The descriptor went. Datagrams still waiting for the card (for ARP, or a full
    /// ring) go out first, as on Linux; the socket stops receiving at once.
    pub(crate) fn udp_close(&mut self, id: Id) {
        let now = self.now;
        let Ok(sock) = self.udp(id) else {
            return;
        };
        let port = sock.port;
        let waiting = sock.cells[IfaceId::Nic as usize]
            .as_ref()
            .is_some_and(|c| c.get::<udp::Socket>().send_queue() > 0);
        if !waiting {
            self.udp_unbind(id);
            self.socks.remove(&id);
            return;
        }
        sock.closed_at = Some(now);
        sock.rxq.clear();
        sock.cells[IfaceId::Loopback as usize] = None;
        if let Some(ids) = self.udp_index.get_mut(&port) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.udp_index.remove(&port);
            }
        }
        self.touch(Timed::Udp(id, IfaceId::Nic));
    }

    pub(crate) fn udp_mask(&self, id: Id) -> u32 {
        let Some(sock) = self.udp_ref(id) else {
            return EPOLLNVAL;
        };
        let mut mask = 0;
        if sock.writable() {
            mask |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
        }
        if !sock.rxq.is_empty() {
            mask |= EPOLLIN | EPOLLRDNORM;
        }
        if sock.error.is_some() {
            mask |= EPOLLERR;
        }
        if sock.shut_rd {
            mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
            if sock.shut_wr {
                mask |= EPOLLHUP;
            }
        }
        mask
    }

    pub(crate) fn udp_generation(&self, id: Id) -> Generation {
        self.udp_ref(id).map_or(Generation::default(), |s| s.gen)
    }

    /// `(size of the next datagram, bytes waiting to be sent)`, as Linux's `FIONREAD`
    /// and `SIOCOUTQ` for UDP.
    pub(crate) fn udp_queued(&mut self, id: Id) -> KResult<(usize, usize)> {
        let sock = self.udp(id)?;
        let next = sock.rxq.front().map_or(0, |d| d.data.len());
        let out = sock
            .cells
            .iter()
            .flatten()
            .map(|c| c.get::<udp::Socket>().send_queue())
            .sum();
        Ok((next, out))
    }

    pub(crate) fn udp_local_addr(&mut self, id: Id) -> KResult<(Option<IpAddress>, u16)> {
        let sock = self.udp(id)?;
        Ok((sock.addr, sock.port))
    }

    pub(crate) fn udp_peer_addr(&mut self, id: Id) -> KResult<IpEndpoint> {
        self.udp(id)?.peer.ok_or(Errno::ENOTCONN)
    }

    pub(crate) fn udp_set_ttl(&mut self, id: Id, ttl: Option<u8>) -> KResult<()> {
        let sock = self.udp(id)?;
        sock.ttl = ttl;
        for cell in sock.cells.iter_mut().flatten() {
            cell.get_mut::<udp::Socket>().set_hop_limit(ttl);
        }
        Ok(())
    }

    // ---- receiving and transmitting ----

    /// The sockets a datagram from `src` to `dst` goes to: for a unicast, the best
    /// match (a connected socket from this peer beats an unconnected one, a specific
    /// address beats the wildcard; among equals the most recently bound, or one spread
    /// by peer address for `SO_REUSEPORT`); for a broadcast or multicast, every match.
    fn udp_targets(&self, iface: IfaceId, src: IpEndpoint, dst: IpEndpoint) -> Vec<Id> {
        let Some(ids) = self.udp_index.get(&dst.port) else {
            return Vec::new();
        };
        let IpAddress::Ipv4(d) = dst.addr;
        let group = self.is_broadcast(dst.addr) || d.is_multicast();
        if iface == IfaceId::Nic && !group && Some(dst.addr) != self.nic_addr() {
            return Vec::new();
        }
        let score = |id: &Id| -> Option<u32> {
            let s = self.udp_ref(*id)?;
            if !UdpSock::links_for(s.addr).contains(&iface) {
                return None;
            }
            let mut score = 1;
            match s.addr {
                None => {}
                Some(a) if a == dst.addr => score += 4,
                Some(_) => return None,
            }
            match s.peer {
                Some(p) if p == src => score += 4,
                Some(_) => return None,
                None => {}
            }
            Some(score)
        };
        if group {
            return ids
                .iter()
                .copied()
                .filter(|id| score(id).is_some())
                .collect();
        }
        let Some(best) = ids.iter().filter_map(score).max() else {
            return Vec::new();
        };
        let ties: Vec<Id> = ids
            .iter()
            .copied()
            .filter(|id| score(id) == Some(best))
            .collect();
        let reuseport = ties.len() > 1
            && ties.iter().all(|id| {
                self.udp_ref(*id)
                    .and_then(|s| s.binding)
                    .and_then(|b| self.ports.get(b))
                    .is_some_and(|b| b.reuseport)
            });
        let pick = if reuseport {
            let IpAddress::Ipv4(a) = src.addr;
            let hash = u32::from(a).wrapping_mul(0x9e37_79b1) ^ u32::from(src.port);
            ties[hash as usize % ties.len()]
        } else {
            *ties.last().expect("best exists")
        };
        vec![pick]
    }

    pub(crate) fn ingress_udp(
        &mut self,
        iface: IfaceId,
        frame: Vec<u8>,
        src: IpEndpoint,
        dst: IpEndpoint,
    ) {
        let dhcp_reply =
            iface == IfaceId::Nic && self.dhcp.is_some() && src.port == 67 && dst.port == 68;
        let targets = if dhcp_reply {
            Vec::new()
        } else {
            self.udp_targets(iface, src, dst)
        };
        if targets.is_empty() {
            // Nobody: smoltcp answers with ICMP port unreachable (or feeds DHCP).
            self.ingress_control(iface, frame);
            return;
        }
        let last = targets.len() - 1;
        let mut frame = Some(frame);
        for (i, id) in targets.into_iter().enumerate() {
            let copy = if i == last {
                frame.take().expect("moved once")
            } else {
                frame.as_ref().expect("still here").clone()
            };
            if !self.udp_cell(id, iface) {
                continue;
            }
            let now = self.now;
            let Inner { lo, nic, socks, .. } = self;
            let link = match iface {
                IfaceId::Loopback => lo,
                IfaceId::Nic => nic.as_mut().expect("udp_cell checked the link"),
            };
            let Some(Sock::Udp(sock)) = socks.get_mut(&id) else {
                continue;
            };
            let cell = sock.cells[iface as usize].as_mut().expect("created above");
            ingress_set(link, &mut cell.set, copy, now);
            drain_received(sock, iface);
        }
    }

    /// An ICMP error about a datagram or segment we sent: a connected UDP socket gets a
    /// hard error as its pending error (Linux without `IP_RECVERR`); a connection
    /// attempt gets it as its failure.
    pub(crate) fn icmp_error(
        &mut self,
        iface: IfaceId,
        errno: Errno,
        hard: bool,
        protocol: smoltcp::wire::IpProtocol,
        local: IpEndpoint,
        remote: IpEndpoint,
    ) {
        if !hard {
            return;
        }
        match protocol {
            smoltcp::wire::IpProtocol::Udp => {
                let Some(ids) = self.udp_index.get(&local.port).cloned() else {
                    return;
                };
                for id in ids {
                    if let Ok(sock) = self.udp(id) {
                        let addr_ok = sock.addr.is_none_or(|a| a == local.addr);
                        if addr_ok && sock.peer == Some(remote) {
                            sock.error = Some(errno);
                            stamp(&mut sock.gen, false, false, true);
                        }
                    }
                }
            }
            smoltcp::wire::IpProtocol::Tcp => {
                self.tcp_icmp_error(iface, errno, local, remote);
            }
            _ => {}
        }
    }

    pub(crate) fn settle_udp(&mut self, id: Id, iface: IfaceId) {
        let now = self.now;
        let Inner { lo, nic, socks, .. } = self;
        let link = match iface {
            IfaceId::Loopback => lo,
            IfaceId::Nic => match nic.as_mut() {
                Some(l) => l,
                None => return,
            },
        };
        let Some(Sock::Udp(sock)) = socks.get_mut(&id) else {
            return;
        };
        let Some(cell) = sock.cells[iface as usize].as_mut() else {
            return;
        };
        egress_set(link, &mut cell.set, now);
        let deadline = Inner::smoltcp_deadline(link, &cell.set, now);
        let queued = cell.get::<udp::Socket>().send_queue();
        let room = queued < sock.tx_seen[iface as usize];
        sock.tx_seen[iface as usize] = queued;
        stamp(&mut sock.gen, false, room, false);
        drain_received(sock, iface);
        if let Some(closed) = sock.closed_at {
            let give_up = closed + CLOSE_LINGER_NS;
            if queued == 0 || now >= give_up {
                // Not through `udp_unbind`'s index removal: a closed socket left it.
                let binding = sock.binding.take();
                self.socks.remove(&id);
                if let Some(b) = binding {
                    self.ports.release(b);
                }
                self.schedule(Timed::Udp(id, IfaceId::Loopback), None);
                self.schedule(Timed::Udp(id, IfaceId::Nic), None);
                return;
            }
            self.schedule(
                Timed::Udp(id, iface),
                Some(deadline.map_or(give_up, |d| d.min(give_up))),
            );
            return;
        }
        self.schedule(Timed::Udp(id, iface), deadline);
    }
}

/// Move what smoltcp received into the socket's queue, dropping what `SO_RCVBUF` has no
/// room for (Linux admits a datagram while the queue is within the limit).
fn drain_received(sock: &mut UdpSock, iface: IfaceId) {
    let Some(cell) = sock.cells[iface as usize].as_mut() else {
        return;
    };
    let mut arrived = false;
    while let Ok((data, meta)) = cell.get_mut::<udp::Socket>().recv() {
        if sock.rx_bytes > sock.rcvbuf {
            continue;
        }
        sock.rx_bytes += data.len() + DATAGRAM_OVERHEAD;
        sock.rxq.push_back(Datagram {
            from: meta.endpoint,
            data: data.to_vec(),
        });
        arrived = true;
    }
    stamp(&mut sock.gen, arrived, false, false);
}
