//! TCP: the user-visible socket ([`TcpSock`]), its listener, and its connections
//! ([`Conn`]), with Linux's semantics on top of smoltcp's state machine.
//!
//! A connection is a smoltcp socket in a set of its own, indexed by 4-tuple. Who holds
//! it changes over its life: a listener's queue (half-open, then established until
//! accepted), a socket, and finally nobody (an *orphan* closing in the background after
//! the last descriptor went, freed once smoltcp reaches CLOSED or TIME-WAIT ends). The
//! port binding follows whoever is responsible for the connection's lifetime.
//!
//! Closing the sending half after the peer's FIN (CLOSE-WAIT) with data still queued
//! only notes the FIN (`Conn::fin_pending`); it goes to smoltcp once that data is
//! acknowledged. smoltcp in LAST-ACK takes a pure window update (an ACK that
//! acknowledges nothing new) for a duplicate ACK and drops it without reading its
//! window, so a connection in LAST-ACK with data queued towards a peer whose window
//! had closed would wait for the zero-window probe timer (a second, then two, four...)
//! each time that window filled. In FIN-WAIT-1 smoltcp reads the window, so a
//! `shutdown(SHUT_WR)` before the peer's FIN sends its FIN at once.
//!
//! Timers smoltcp does not have are ours: the SYN retry limit (`TCP_SYNCNT`, 127 s by
//! default), the half-open limit (63 s), the data timeout (`TCP_USER_TIMEOUT`, else
//! Linux's ~15 minutes of retransmission), keep-alive with idle/interval/count (smoltcp
//! sends the probes, we decide when to start and when to give up), and the orphan
//! FIN-WAIT-2 limit (`TCP_LINGER2`, 60 s).

use crate::ports::{Binding, BindingId, Proto};
use crate::sockopt::*;
use crate::stack::{egress_set, newest, stamp, Cell, ConnKey, Id, IfaceId, Inner, Sock, Timed};
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use skiff_bootproto::Transport;
use skiff_errno::{Errno, KResult};
use skiff_fs::epoll::*;
use skiff_fs::socket::*;
use skiff_fs::Generation;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

/// Most half-open connections a listener keeps (Linux keeps its SYN queue apart from
/// the accept queue; bounding it keeps a SYN flood from allocating without end).
const MAX_HALF_OPEN: usize = 256;

/// A TCP socket as the application sees it.
pub(crate) struct TcpSock {
    pub phase: Phase,
    /// The port this socket holds (explicit `bind`, or implicit at connect/listen).
    pub binding: Option<BindingId>,
    pub bound_addr: Option<IpAddress>,
    pub bound_port: u16,
    /// `bind` chose the port (so a disconnect keeps it, as Linux's bind lock does).
    pub explicit_port: bool,
    pub shut_rd: bool,
    pub shut_wr: bool,
    /// A pending error not tied to a connection (a failed connect).
    pub error: Option<Errno>,
    pub opts: TcpOpts,
    pub gen: Generation,
}

pub(crate) enum Phase {
    Fresh,
    Listening(Listener),
    /// `connect` started; the connection may have completed since (until `connect`
    /// reports it once, Linux's socket stays "connecting" for `connect` itself).
    Connecting(Id),
    Connected(Id),
    /// A connect failed; the next `connect` reports it (or `ECONNABORTED` if
    /// `SO_ERROR` took the error) and the socket is fresh again.
    Failed,
}

pub(crate) struct Listener {
    /// `listen`'s backlog, clamped; the accept queue is full beyond `backlog + 1`
    /// connections, as Linux counts.
    pub backlog: usize,
    pub pending: Vec<Id>,
    pub ready: VecDeque<Id>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Socket(Id),
    Listener(Id),
    Orphan,
}

/// One TCP connection.
pub(crate) struct Conn {
    /// The smoltcp socket; `None` once the connection was dropped without a word
    /// (timeouts: Linux sends nothing then either).
    pub cell: Option<Cell>,
    pub iface: IfaceId,
    pub local: IpEndpoint,
    pub remote: IpEndpoint,
    pub owner: Owner,
    /// The port binding, while the connection itself is responsible for it.
    pub binding: Option<BindingId>,
    /// The state last observed.
    pub state: State,
    pub fin_received: bool,
    /// Why the connection ended abnormally.
    pub ended: Option<Errno>,
    /// The error not yet reported (by `recv`, `send`, `SO_ERROR` or `connect`).
    pub error: Option<Errno>,
    pub gen: Generation,
    rx_seen: usize,
    tx_seen: usize,
    /// When a segment last arrived.
    last_rx: u64,
    /// Since when data or a FIN has been waiting for acknowledgement.
    outstanding_since: Option<u64>,
    /// When the handshake is given up.
    handshake_deadline: Option<u64>,
    /// smoltcp's keep-alive probing is on.
    probing: bool,
    fin_wait2_since: Option<u64>,
    /// Our side closed its sending half in CLOSE-WAIT; the FIN goes once the queued
    /// data is acknowledged (see the module docs).
    fin_pending: bool,
    pub opts: TcpOpts,
    indexed: bool,
}

impl Conn {
    fn new(
        cell: Cell,
        iface: IfaceId,
        local: IpEndpoint,
        remote: IpEndpoint,
        owner: Owner,
        opts: TcpOpts,
        now: u64,
    ) -> Conn {
        let state = cell.get::<tcp::Socket>().state();
        Conn {
            cell: Some(cell),
            iface,
            local,
            remote,
            owner,
            binding: None,
            state,
            fin_received: false,
            ended: None,
            error: None,
            gen: Generation::default(),
            rx_seen: 0,
            tx_seen: 0,
            last_rx: now,
            outstanding_since: None,
            handshake_deadline: None,
            probing: false,
            fin_wait2_since: None,
            fin_pending: false,
            opts,
            indexed: true,
        }
    }

    pub(crate) fn key(&self) -> ConnKey {
        ConnKey {
            iface: self.iface,
            local: self.local,
            remote: self.remote,
        }
    }

    pub(crate) fn socket(&self) -> Option<&tcp::Socket<'static>> {
        self.cell.as_ref().map(|c| c.get::<tcp::Socket>())
    }

    fn socket_mut(&mut self) -> Option<&mut tcp::Socket<'static>> {
        self.cell.as_mut().map(|c| c.get_mut::<tcp::Socket>())
    }

    fn current_state(&self) -> State {
        self.socket().map_or(State::Closed, |s| s.state())
    }

    pub(crate) fn rx_len(&self) -> usize {
        self.socket().map_or(0, |s| s.recv_queue())
    }

    pub(crate) fn tx_len(&self) -> usize {
        self.socket().map_or(0, |s| s.send_queue())
    }

    /// Our side still has something to deliver: queued bytes, a FIN not yet sent, or a
    /// FIN not yet acknowledged.
    pub(crate) fn output_pending(&self) -> bool {
        self.tx_len() > 0
            || self.fin_pending
            || matches!(
                self.current_state(),
                State::FinWait1 | State::Closing | State::LastAck
            )
    }

    /// Connected enough to move data (what Linux's socket calls "connected").
    fn synchronized(&self) -> bool {
        !matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Listen
        )
    }

    /// Close our sending half: a FIN after everything queued, handed to smoltcp at once
    /// unless that would put it in LAST-ACK with data queued (see the module docs).
    fn close_sending(&mut self) {
        if self.current_state() == State::CloseWait {
            self.fin_pending = true;
            self.send_fin_when_drained();
        } else if let Some(s) = self.socket_mut() {
            s.close();
        }
    }

    /// Hand a pending FIN to smoltcp once nothing queued waits for acknowledgement.
    fn send_fin_when_drained(&mut self) {
        if self.fin_pending && self.tx_len() == 0 {
            self.fin_pending = false;
            if let Some(s) = self.socket_mut() {
                s.close();
            }
        }
    }

    /// Drop the connection without sending anything, with `errno` as its end.
    fn kill(&mut self, errno: Errno) {
        self.cell = None;
        if self.ended.is_none() {
            self.ended = Some(errno);
            self.error = Some(errno);
        }
    }

    /// Our own timers' next deadline.
    fn own_deadline(&self) -> Option<u64> {
        let s = |secs: i32| u64::try_from(secs).unwrap_or(0) * 1_000_000_000;
        let mut d: Option<u64> = None;
        let mut at = |t: u64| d = Some(d.map_or(t, |x| x.min(t)));
        if let Some(h) = self.handshake_deadline {
            at(h);
        }
        if let Some(since) = self.outstanding_since {
            at(since.max(self.last_rx) + self.data_timeout_ns());
        }
        // Keep-alive only runs while nothing waits for acknowledgement (as in
        // `conn_timers`), else its deadline would stay in the past.
        if self.opts.keepalive
            && self.outstanding_since.is_none()
            && matches!(self.state, State::Established | State::CloseWait)
        {
            let idle = s(self.opts.keepidle_s);
            if self.probing {
                let count = u64::try_from(self.opts.keepcnt).unwrap_or(0);
                at(self.last_rx + idle + s(self.opts.keepintvl_s) * count);
            } else {
                at(self.last_rx + idle);
            }
        }
        if let Some(since) = self.fin_wait2_since {
            at(since + s(self.fin_timeout_s()));
        }
        d
    }

    fn data_timeout_ns(&self) -> u64 {
        match self.opts.user_timeout_ms {
            0 => DEFAULT_DATA_TIMEOUT_MS * 1_000_000,
            ms => u64::from(ms) * 1_000_000,
        }
    }

    fn fin_timeout_s(&self) -> i32 {
        if self.opts.linger2_s > 0 {
            self.opts.linger2_s
        } else {
            FIN_TIMEOUT_S
        }
    }
}

impl TcpSock {
    pub(crate) fn new() -> TcpSock {
        TcpSock {
            phase: Phase::Fresh,
            binding: None,
            bound_addr: None,
            bound_port: 0,
            explicit_port: false,
            shut_rd: false,
            shut_wr: false,
            error: None,
            opts: TcpOpts::default(),
            gen: Generation::default(),
        }
    }

    fn conn_id(&self) -> Option<Id> {
        match self.phase {
            Phase::Connecting(c) | Phase::Connected(c) => Some(c),
            _ => None,
        }
    }
}

/// A smoltcp socket with the buffers and settings `opts` ask for.
fn new_smoltcp_socket(opts: &TcpOpts, iface: IfaceId) -> tcp::Socket<'static> {
    let rx = vec![0u8; buffer_bytes(opts.rcvbuf)];
    let tx = vec![0u8; buffer_bytes(opts.sndbuf)];
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
    s.set_nagle_enabled(!opts.nodelay);
    s.set_hop_limit(opts.ttl);
    if iface == IfaceId::Loopback {
        // Acknowledging costs nothing on loopback; Linux's `lo` acks at once too.
        s.set_ack_delay(None);
    }
    s
}

/// Apply settings that can change on a live connection.
fn apply_opts(conn: &mut Conn) {
    let opts = conn.opts;
    if let Some(s) = conn.socket_mut() {
        s.set_nagle_enabled(!opts.nodelay);
        s.set_hop_limit(opts.ttl);
    }
}

impl Inner {
    pub(crate) fn tcp(&mut self, id: Id) -> KResult<&mut TcpSock> {
        match self.socks.get_mut(&id) {
            Some(Sock::Tcp(s)) => Ok(s),
            _ => Err(Errno::EBADF),
        }
    }

    fn tcp_ref(&self, id: Id) -> Option<&TcpSock> {
        match self.socks.get(&id) {
            Some(Sock::Tcp(s)) => Some(s),
            _ => None,
        }
    }

    // ---- connections: receiving, settling, freeing ----

    /// A TCP segment arrived on `iface`.
    pub(crate) fn ingress_tcp(
        &mut self,
        iface: IfaceId,
        frame: Vec<u8>,
        src: IpEndpoint,
        dst: IpEndpoint,
        pure_syn: bool,
        rst: bool,
    ) {
        let key = ConnKey {
            iface,
            local: dst,
            remote: src,
        };
        if let Some(&id) = self.conn_index.get(&key) {
            let now = self.now;
            let Inner { lo, nic, conns, .. } = self;
            let (Some(conn), Some(link)) = (
                conns.get_mut(&id),
                match iface {
                    IfaceId::Loopback => Some(lo),
                    IfaceId::Nic => nic.as_mut(),
                },
            ) else {
                return;
            };
            conn.last_rx = now;
            if conn.probing {
                // Processing resets smoltcp's idle timer; with probing off it will not
                // re-arm a probe: our keep-alive timer decides when to probe again.
                if let Some(s) = conn.socket_mut() {
                    s.set_keep_alive(None);
                }
                conn.probing = false;
            }
            if let Some(cell) = conn.cell.as_mut() {
                // Data and FIN in one segment go in as two (see `flow::split_fin`).
                let parts = match crate::flow::split_fin(&frame, iface == IfaceId::Nic) {
                    Some((data, fin)) => [Some(data), Some(fin)],
                    None => [Some(frame), None],
                };
                for part in parts.into_iter().flatten() {
                    crate::stack::ingress_set(link, &mut cell.set, part, now);
                }
            }
            self.observe_conn(id, rst);
            self.touch(Timed::Conn(id));
            return;
        }
        if pure_syn {
            if let Some(listener) = self.find_listener(iface, dst, src) {
                let mut frame = frame;
                if iface == IfaceId::Loopback {
                    crate::flow::strip_window_scale(&mut frame);
                }
                self.accept_syn(listener, iface, frame, src, dst);
                return;
            }
        }
        self.ingress_control(iface, frame);
    }

    /// The listening socket a SYN from `src` to `dst` on `iface` is for: one bound to
    /// `dst`'s address beats one bound to the wildcard; among `SO_REUSEPORT` peers of the
    /// same rank the peer's address and port pick one.
    fn find_listener(&self, iface: IfaceId, dst: IpEndpoint, src: IpEndpoint) -> Option<Id> {
        let ids = self.listen_index.get(&dst.port)?;
        if iface == IfaceId::Nic && Some(dst.addr) != self.nic_addr() {
            return None;
        }
        let rank = |id: &Id| match self.tcp_ref(*id).map(|s| s.bound_addr) {
            Some(None) => 1,
            Some(Some(a)) if a == dst.addr => 2,
            _ => 0,
        };
        let best = ids.iter().map(rank).max().filter(|&r| r > 0)?;
        let candidates: Vec<Id> = ids.iter().copied().filter(|id| rank(id) == best).collect();
        let IpAddress::Ipv4(a) = src.addr;
        let hash =
            u32::from(a).wrapping_mul(0x9e37_79b1) ^ u32::from(src.port).wrapping_mul(0x85eb_ca6b);
        Some(candidates[hash as usize % candidates.len()])
    }

    /// A SYN for a listener: start a half-open connection if the queues have room; else
    /// drop the SYN as Linux does (the client retransmits it).
    fn accept_syn(
        &mut self,
        lid: Id,
        iface: IfaceId,
        frame: Vec<u8>,
        src: IpEndpoint,
        dst: IpEndpoint,
    ) {
        let now = self.now;
        let Some(sock) = self.tcp_ref(lid) else {
            return;
        };
        let Phase::Listening(l) = &sock.phase else {
            return;
        };
        if l.ready.len() + l.pending.len() > l.backlog || l.pending.len() >= MAX_HALF_OPEN {
            return;
        }
        let opts = sock.opts;
        let (reuseaddr, reuseport) = sock
            .binding
            .and_then(|b| self.ports.get(b))
            .map_or((false, false), |b| (b.reuseaddr, b.reuseport));
        let mut s = new_smoltcp_socket(&opts, iface);
        if s.listen(IpListenEndpoint {
            addr: Some(dst.addr),
            port: dst.port,
        })
        .is_err()
        {
            return;
        }
        let mut cell = Cell::new(s);
        let Some(link) = self.link(iface) else {
            return;
        };
        crate::stack::ingress_set(link, &mut cell.set, frame, now);
        if cell.get::<tcp::Socket>().state() != State::SynReceived {
            return;
        }
        let id = self.new_id();
        let mut conn = Conn::new(cell, iface, dst, src, Owner::Listener(lid), opts, now);
        conn.handshake_deadline = Some(now + SYNACK_TIMEOUT_MS * 1_000_000);
        conn.binding = Some(self.ports.bind_unchecked(Binding {
            proto: Proto::Tcp,
            addr: Some(dst.addr),
            port: dst.port,
            reuseaddr,
            reuseport,
            listening: false,
        }));
        self.conn_index.insert(conn.key(), id);
        self.conns.insert(id, conn);
        if let Ok(TcpSock {
            phase: Phase::Listening(l),
            ..
        }) = self.tcp(lid)
        {
            l.pending.push(id);
        }
        self.touch(Timed::Conn(id));
    }

    /// Record what happened to a connection since it was last looked at: state
    /// changes, the peer's FIN, a reset (`rst`: the segment just processed carried
    /// RST), new data and new room, as readiness stamps.
    fn observe_conn(&mut self, id: Id, rst: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let new = conn.current_state();
        let old = conn.state;
        let fin_before = conn.fin_received;
        if matches!(
            new,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        ) {
            conn.fin_received = true;
        }
        let mut hangup = new != old || conn.fin_received != fin_before;
        if new != old && conn.ended.is_none() {
            let abnormal = match new {
                // A half-open connection that got a RST goes back to LISTEN in smoltcp.
                State::Listen => true,
                State::Closed => !matches!(old, State::LastAck | State::TimeWait),
                _ => false,
            };
            if abnormal {
                // Linux's `tcp_reset`: a reset after the peer's own FIN says EPIPE.
                let errno = match (rst, old) {
                    (true, State::SynSent) => Errno::ECONNREFUSED,
                    (true, State::CloseWait) => Errno::EPIPE,
                    (true, _) => Errno::ECONNRESET,
                    // smoltcp closed it on its own (its source address went away).
                    (false, _) => Errno::ETIMEDOUT,
                };
                conn.ended = Some(errno);
                conn.error = Some(errno);
                hangup = true;
            }
        }
        if new == State::Listen {
            conn.cell = None;
        }
        let (rx, tx) = (conn.rx_len(), conn.tx_len());
        let input = rx > conn.rx_seen || conn.fin_received != fin_before;
        let output = tx < conn.tx_seen;
        conn.rx_seen = rx;
        conn.tx_seen = tx;
        conn.state = conn.current_state();
        stamp(&mut conn.gen, input, output, hangup);
    }

    /// Run a connection's own timers, let it transmit, look at the result, act for its
    /// owner, and reschedule it.
    pub(crate) fn settle_conn(&mut self, id: Id) {
        if !self.conns.contains_key(&id) {
            return;
        }
        self.conn_timers(id);
        let now = self.now;
        {
            let Inner { lo, nic, conns, .. } = self;
            let conn = conns.get_mut(&id).expect("checked above");
            conn.send_fin_when_drained();
            let link = match conn.iface {
                IfaceId::Loopback => Some(lo),
                IfaceId::Nic => nic.as_mut(),
            };
            if let (Some(cell), Some(link)) = (conn.cell.as_mut(), link) {
                egress_set(link, &mut cell.set, now);
            }
        }
        self.observe_conn(id, false);
        if !self.conn_followup(id) {
            return;
        }
        let Inner { lo, nic, conns, .. } = self;
        let conn = conns.get_mut(&id).expect("followup kept it");
        let link = match conn.iface {
            IfaceId::Loopback => Some(lo),
            IfaceId::Nic => nic.as_mut(),
        };
        let mut deadline = match (conn.cell.as_ref(), link) {
            (Some(cell), Some(link)) => Inner::smoltcp_deadline(link, &cell.set, now),
            _ => None,
        };
        if let Some(own) = conn.own_deadline() {
            // `conn_timers` just acted on everything due, so an own deadline is in the
            // future; the floor only guards against spinning should that ever fail.
            let own = own.max(now + 1_000_000);
            deadline = Some(deadline.map_or(own, |d| d.min(own)));
        }
        self.schedule(Timed::Conn(id), deadline);
    }

    /// Our timers for a connection (see the module docs).
    fn conn_timers(&mut self, id: Id) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let state = conn.current_state();
        if matches!(state, State::SynSent | State::SynReceived) {
            if conn.handshake_deadline.is_some_and(|d| now >= d) {
                conn.kill(Errno::ETIMEDOUT);
            }
            return;
        }
        conn.handshake_deadline = None;
        let outstanding =
            conn.tx_len() > 0 || matches!(state, State::FinWait1 | State::Closing | State::LastAck);
        if !outstanding {
            conn.outstanding_since = None;
        } else if conn.outstanding_since.is_none() {
            conn.outstanding_since = Some(now);
        }
        if let Some(since) = conn.outstanding_since {
            if now >= since.max(conn.last_rx) + conn.data_timeout_ns() {
                conn.kill(Errno::ETIMEDOUT);
                return;
            }
        }
        let sec = 1_000_000_000u64;
        let keepalive = conn.opts.keepalive
            && matches!(state, State::Established | State::CloseWait)
            && !outstanding;
        if keepalive {
            let idle = now.saturating_sub(conn.last_rx);
            let start = u64::try_from(conn.opts.keepidle_s).unwrap_or(0) * sec;
            let interval = u64::try_from(conn.opts.keepintvl_s).unwrap_or(1) * sec;
            let count = u64::try_from(conn.opts.keepcnt).unwrap_or(1);
            if idle >= start + interval * count {
                conn.kill(Errno::ETIMEDOUT);
                return;
            }
            if idle >= start && !conn.probing {
                conn.probing = true;
                if let Some(s) = conn.socket_mut() {
                    s.set_keep_alive(Some(smoltcp::time::Duration::from_micros(interval / 1000)));
                }
            }
        } else if conn.probing {
            conn.probing = false;
            if let Some(s) = conn.socket_mut() {
                s.set_keep_alive(None);
            }
        }
        if conn.owner == Owner::Orphan && state == State::FinWait2 {
            let since = *conn.fin_wait2_since.get_or_insert(now);
            if now >= since + u64::try_from(conn.fin_timeout_s()).unwrap_or(0) * sec {
                conn.kill(Errno::ETIMEDOUT);
            }
        }
    }

    /// Act on a connection's state for whoever owns it. `false` if it was freed.
    fn conn_followup(&mut self, id: Id) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let closed = conn.cell.is_none() || conn.state == State::Closed;
        let ended = conn.ended.is_some();
        let half_open = conn.state == State::SynReceived;
        let unread = conn.rx_len() > 0;
        let owner = conn.owner;
        if closed && conn.indexed {
            conn.indexed = false;
            let key = conn.key();
            self.conn_index.remove(&key);
        }
        let free = match owner {
            Owner::Listener(lid) => match self.socks.get_mut(&lid) {
                Some(Sock::Tcp(TcpSock {
                    phase: Phase::Listening(l),
                    gen,
                    ..
                })) => {
                    if closed || ended {
                        // A half-open connection that dies is forgotten; an established
                        // one stays queued, and `accept` returns it with its error, as
                        // on Linux.
                        let was_pending = l.pending.contains(&id);
                        l.pending.retain(|&c| c != id);
                        was_pending || !l.ready.contains(&id)
                    } else {
                        if !half_open {
                            if let Some(at) = l.pending.iter().position(|&c| c == id) {
                                l.pending.remove(at);
                                l.ready.push_back(id);
                                stamp(gen, true, false, false);
                            }
                        }
                        false
                    }
                }
                _ => true,
            },
            Owner::Socket(sid) => {
                let connecting = matches!(
                    self.socks.get(&sid),
                    Some(Sock::Tcp(TcpSock { phase: Phase::Connecting(c), .. })) if *c == id
                );
                if connecting && ended {
                    let error = self.conns.get_mut(&id).and_then(|c| c.error.take());
                    if let Some(Sock::Tcp(sock)) = self.socks.get_mut(&sid) {
                        sock.phase = Phase::Failed;
                        sock.error = error;
                        sock.shut_rd = true;
                        sock.shut_wr = true;
                        stamp(&mut sock.gen, true, true, true);
                    }
                    true
                } else {
                    false
                }
            }
            Owner::Orphan => {
                if !closed && unread {
                    // Nobody will read this: Linux answers data after close with RST.
                    if let Some(s) = self.conns.get_mut(&id).and_then(|c| c.socket_mut()) {
                        s.abort();
                    }
                    self.touch(Timed::Conn(id));
                }
                closed
            }
        };
        if free {
            self.free_conn(id);
        }
        !free
    }

    /// A hard ICMP error for a connection attempt ends it with that error.
    pub(crate) fn tcp_icmp_error(
        &mut self,
        iface: IfaceId,
        errno: Errno,
        local: IpEndpoint,
        remote: IpEndpoint,
    ) {
        let key = ConnKey {
            iface,
            local,
            remote,
        };
        let Some(&id) = self.conn_index.get(&key) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            if conn.state == State::SynSent {
                conn.kill(errno);
                self.touch(Timed::Conn(id));
            }
        }
    }

    /// Forget a connection: its index entries, timer and port.
    pub(crate) fn free_conn(&mut self, id: Id) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        if conn.indexed {
            self.conn_index.remove(&conn.key());
        }
        self.schedule(Timed::Conn(id), None);
        if let Some(b) = conn.binding {
            self.ports.release(b);
        }
    }

    /// Reset a connection (RST) and leave it to finish in the background.
    fn abort_as_orphan(&mut self, id: Id) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.owner = Owner::Orphan;
            if let Some(s) = conn.socket_mut() {
                s.abort();
            }
            self.touch(Timed::Conn(id));
        }
    }

    // ---- socket calls ----

    pub(crate) fn tcp_bind(
        &mut self,
        id: Id,
        ep: IpEndpoint,
        reuseaddr: bool,
        reuseport: bool,
    ) -> KResult<()> {
        if !self.bindable(ep.addr) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let sock = self.tcp(id)?;
        if sock.binding.is_some() || !matches!(sock.phase, Phase::Fresh) {
            return Err(Errno::EINVAL);
        }
        let addr = (!ep.addr.is_unspecified()).then_some(ep.addr);
        let binding = Binding {
            proto: Proto::Tcp,
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
        let sock = self.tcp(id)?;
        sock.binding = Some(bid);
        sock.bound_addr = addr;
        sock.bound_port = port;
        sock.explicit_port = ep.port != 0;
        Ok(())
    }

    /// Give an unbound socket an ephemeral port (`err` when none is left).
    fn tcp_autobind(
        &mut self,
        id: Id,
        reuseaddr: bool,
        reuseport: bool,
        err: Errno,
    ) -> KResult<()> {
        if self.tcp(id)?.binding.is_some() {
            return Ok(());
        }
        let start = self.random();
        let bid = self
            .ports
            .bind_ephemeral(
                Binding {
                    proto: Proto::Tcp,
                    addr: None,
                    port: 0,
                    reuseaddr,
                    reuseport,
                    listening: false,
                },
                start,
            )
            .ok_or(err)?;
        let port = self.ports.get(bid).map_or(0, |b| b.port);
        let sock = self.tcp(id)?;
        sock.binding = Some(bid);
        sock.bound_addr = None;
        sock.bound_port = port;
        Ok(())
    }

    pub(crate) fn tcp_listen(
        &mut self,
        id: Id,
        backlog: i32,
        reuseaddr: bool,
        reuseport: bool,
    ) -> KResult<()> {
        // Linux compares as unsigned: a negative backlog is the maximum.
        let backlog = if backlog as u32 > SOMAXCONN as u32 {
            SOMAXCONN
        } else {
            backlog
        } as usize;
        match &mut self.tcp(id)?.phase {
            Phase::Listening(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            Phase::Fresh => {}
            _ => return Err(Errno::EINVAL),
        }
        self.tcp_autobind(id, reuseaddr, reuseport, Errno::EADDRINUSE)?;
        let bid = self.tcp(id)?.binding.expect("bound above");
        self.ports.listen(bid)?;
        let sock = self.tcp(id)?;
        sock.phase = Phase::Listening(Listener {
            backlog,
            pending: Vec::new(),
            ready: VecDeque::new(),
        });
        sock.shut_rd = false;
        sock.shut_wr = false;
        let (addr, port) = (sock.bound_addr, sock.bound_port);
        self.listen_index.entry(port).or_default().push(id);
        self.report_listening(Transport::Tcp, addr, port);
        Ok(())
    }

    /// A listener stops listening (close, `shutdown(SHUT_RD)`, `connect(AF_UNSPEC)`):
    /// its queued connections are reset; it keeps its port.
    fn stop_listening(&mut self, id: Id) {
        let Ok(sock) = self.tcp(id) else {
            return;
        };
        let Phase::Listening(l) = core::mem::replace(&mut sock.phase, Phase::Fresh) else {
            return;
        };
        stamp(&mut sock.gen, false, false, true);
        let (port, binding) = (sock.bound_port, sock.binding);
        if let Some(ids) = self.listen_index.get_mut(&port) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.listen_index.remove(&port);
            }
        }
        if let Some(b) = binding {
            self.ports.unlisten(b);
        }
        for c in l.pending.into_iter().chain(l.ready) {
            self.abort_as_orphan(c);
        }
    }

    pub(crate) fn tcp_accept(&mut self, id: Id) -> KResult<(Id, IpEndpoint)> {
        let sock = self.tcp(id)?;
        let Phase::Listening(l) = &mut sock.phase else {
            return Err(Errno::EINVAL);
        };
        let cid = l.ready.pop_front().ok_or(Errno::EAGAIN)?;
        let new_id = self.new_id();
        let conn = self.conns.get_mut(&cid).ok_or(Errno::ECONNABORTED)?;
        conn.owner = Owner::Socket(new_id);
        let mut sock = TcpSock::new();
        sock.phase = Phase::Connected(cid);
        sock.binding = conn.binding.take();
        sock.bound_addr = Some(conn.local.addr);
        sock.bound_port = conn.local.port;
        sock.explicit_port = true;
        sock.opts = conn.opts;
        let peer = conn.remote;
        self.socks.insert(new_id, Sock::Tcp(sock));
        Ok((new_id, peer))
    }

    pub(crate) fn tcp_connect(
        &mut self,
        id: Id,
        ep: IpEndpoint,
        reuseaddr: bool,
        reuseport: bool,
    ) -> KResult<()> {
        let sock = self.tcp(id)?;
        match sock.phase {
            Phase::Listening(_) | Phase::Connected(_) => return Err(Errno::EISCONN),
            Phase::Connecting(c) => {
                let synchronized = self.conns.get(&c).is_some_and(|c| c.synchronized());
                if synchronized {
                    self.tcp(id)?.phase = Phase::Connected(c);
                    return Ok(());
                }
                return Err(Errno::EALREADY);
            }
            Phase::Failed => {
                sock.phase = Phase::Fresh;
                sock.shut_rd = false;
                sock.shut_wr = false;
                stamp(&mut sock.gen, false, false, true);
                return Err(sock.error.take().unwrap_or(Errno::ECONNABORTED));
            }
            Phase::Fresh => {}
        }
        let mut dst = ep;
        if dst.addr.is_unspecified() {
            // Linux: connecting to INADDR_ANY means this host.
            dst.addr = IpAddress::v4(127, 0, 0, 1);
        }
        let IpAddress::Ipv4(d) = dst.addr;
        if d.is_broadcast() || d.is_multicast() || self.is_broadcast(dst.addr) {
            return Err(Errno::ENETUNREACH);
        }
        let (iface, mut src) = self.route(dst.addr)?;
        if let Some(a) = self.tcp(id)?.bound_addr {
            let IpAddress::Ipv4(b) = a;
            if b.is_loopback() && iface == IfaceId::Nic {
                return Err(Errno::EINVAL);
            }
            if !(b.is_broadcast() || b.is_multicast() || self.is_broadcast(a)) {
                src = a;
            }
        }
        if dst.port == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        self.tcp_autobind(id, reuseaddr, reuseport, Errno::EADDRNOTAVAIL)?;
        let sock = self.tcp(id)?;
        let local = IpEndpoint::new(src, sock.bound_port);
        let opts = sock.opts;
        let key = ConnKey {
            iface,
            local,
            remote: dst,
        };
        if self.conn_index.contains_key(&key) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let now = self.now;
        let mut s = new_smoltcp_socket(&opts, iface);
        let link = self.link(iface).ok_or(Errno::ENETUNREACH)?;
        s.connect(link.iface.context(), dst, local)
            .map_err(|_| Errno::EINVAL)?;
        let cid = self.new_id();
        let mut conn = Conn::new(
            Cell::new(s),
            iface,
            local,
            dst,
            Owner::Socket(id),
            opts,
            now,
        );
        let limit_ms = match opts.user_timeout_ms {
            0 => syn_timeout_ms(opts.syncnt),
            ms => u64::from(ms),
        };
        conn.handshake_deadline = Some(now + limit_ms * 1_000_000);
        self.conn_index.insert(key, cid);
        self.conns.insert(cid, conn);
        let sock = self.tcp(id)?;
        sock.phase = Phase::Connecting(cid);
        sock.shut_rd = false;
        sock.shut_wr = false;
        self.touch(Timed::Conn(cid));
        // Send the SYN now; over loopback the whole handshake (or the refusal) happens
        // here. Linux's connect never finishes inside the first call, loopback or not:
        // the outcome is for poll, SO_ERROR and the next connect (where the syscall
        // layer's blocking connect finds it).
        self.flush();
        Err(Errno::EINPROGRESS)
    }

    /// `connect(AF_UNSPEC)`: Linux's `tcp_disconnect`.
    pub(crate) fn tcp_disconnect(&mut self, id: Id) -> KResult<()> {
        let sock = self.tcp(id)?;
        match sock.phase {
            Phase::Listening(_) => self.stop_listening(id),
            Phase::Connecting(c) | Phase::Connected(c) => {
                sock.phase = Phase::Fresh;
                sock.shut_rd = false;
                sock.shut_wr = false;
                stamp(&mut sock.gen, false, false, true);
                let keep_port = sock.explicit_port;
                let binding = if keep_port { None } else { sock.binding.take() };
                if !keep_port {
                    sock.bound_port = 0;
                    sock.bound_addr = None;
                }
                self.abort_as_orphan(c);
                if let Some(b) = binding {
                    if let Some(conn) = self.conns.get_mut(&c) {
                        conn.binding = Some(b);
                    } else {
                        self.ports.release(b);
                    }
                }
            }
            Phase::Failed => {
                sock.phase = Phase::Fresh;
                sock.shut_rd = false;
                sock.shut_wr = false;
            }
            Phase::Fresh => {}
        }
        Ok(())
    }

    pub(crate) fn tcp_send(&mut self, id: Id, data: &[u8], flags: u32) -> KResult<usize> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let sock = self.tcp(id)?;
        let cid = match sock.phase {
            Phase::Fresh | Phase::Listening(_) => return Err(Errno::EPIPE),
            Phase::Failed => return Err(sock.error.take().unwrap_or(Errno::EPIPE)),
            Phase::Connecting(c) | Phase::Connected(c) => c,
        };
        let shut_wr = sock.shut_wr;
        let conn = self.conns.get_mut(&cid).ok_or(Errno::EPIPE)?;
        if let Some(e) = conn.error.take() {
            return Err(e);
        }
        if !conn.synchronized() {
            return Err(Errno::EAGAIN);
        }
        if shut_wr || conn.ended.is_some() {
            return Err(Errno::EPIPE);
        }
        let s = conn.socket_mut().ok_or(Errno::EPIPE)?;
        if !s.may_send() {
            return Err(Errno::EPIPE);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = s.send_slice(data).map_err(|_| Errno::EPIPE)?;
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        self.touch(Timed::Conn(cid));
        Ok(n)
    }

    pub(crate) fn tcp_recv(&mut self, id: Id, buf: &mut [u8], flags: u32) -> KResult<Received> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let sock = self.tcp(id)?;
        let cid = match sock.phase {
            Phase::Fresh if sock.shut_rd => return Ok(Received::default()),
            Phase::Fresh | Phase::Listening(_) => return Err(Errno::ENOTCONN),
            Phase::Failed => {
                return match sock.error.take() {
                    Some(e) => Err(e),
                    None => Ok(Received::default()),
                }
            }
            Phase::Connecting(c) | Phase::Connected(c) => c,
        };
        let shut_rd = sock.shut_rd;
        let conn = self.conns.get_mut(&cid).ok_or(Errno::ENOTCONN)?;
        if !conn.synchronized() && conn.ended.is_none() {
            return Err(Errno::EAGAIN);
        }
        if conn.rx_len() > 0 {
            let s = conn.socket_mut().expect("data implies a socket");
            let n = if flags & MSG_PEEK != 0 {
                s.peek_slice(buf).unwrap_or(0)
            } else if flags & MSG_TRUNC != 0 {
                // Linux discards the bytes without copying them.
                let mut left = buf.len();
                while left > 0 {
                    let got = s
                        .recv(|b| {
                            let n = b.len().min(left);
                            (n, n)
                        })
                        .unwrap_or(0);
                    if got == 0 {
                        break;
                    }
                    left -= got;
                }
                buf.len() - left
            } else {
                s.recv_slice(buf).unwrap_or(0)
            };
            if flags & MSG_PEEK == 0 {
                // The window opened: tell the peer.
                self.touch(Timed::Conn(cid));
            }
            return Ok(Received {
                len: n,
                full_len: n,
                ..Received::default()
            });
        }
        if let Some(e) = conn.error.take() {
            return Err(e);
        }
        if shut_rd || conn.fin_received || conn.ended.is_some() {
            return Ok(Received::default());
        }
        Err(Errno::EAGAIN)
    }

    pub(crate) fn tcp_shutdown(&mut self, id: Id, how: u32) -> KResult<()> {
        let (rd, wr) = match how {
            SHUT_RD => (true, false),
            SHUT_WR => (false, true),
            SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let sock = self.tcp(id)?;
        let cid = match sock.phase {
            Phase::Fresh | Phase::Failed => {
                // Linux records the shutdown even while answering ENOTCONN.
                sock.shut_rd |= rd;
                sock.shut_wr |= wr;
                stamp(&mut sock.gen, rd, wr, true);
                return Err(Errno::ENOTCONN);
            }
            Phase::Listening(_) => {
                if rd {
                    self.stop_listening(id);
                }
                return Ok(());
            }
            Phase::Connecting(c) | Phase::Connected(c) => c,
        };
        let state = self.conns.get(&cid).map_or(State::Closed, |c| c.state);
        if state == State::SynSent {
            // Linux disconnects, leaving ECONNRESET as the pending error.
            let sock = self.tcp(id)?;
            sock.phase = Phase::Fresh;
            sock.error = Some(Errno::ECONNRESET);
            stamp(&mut sock.gen, false, false, true);
            self.free_conn(cid);
            return Ok(());
        }
        let sock = self.tcp(id)?;
        sock.shut_rd |= rd;
        sock.shut_wr |= wr;
        stamp(&mut sock.gen, rd, wr, true);
        let conn = self.conns.get_mut(&cid).ok_or(Errno::ENOTCONN)?;
        if conn.ended.is_some() || matches!(state, State::Closed | State::TimeWait) {
            return Err(Errno::ENOTCONN);
        }
        if wr {
            conn.close_sending();
            self.touch(Timed::Conn(cid));
        }
        Ok(())
    }

    /// The last descriptor went: see the module docs. `abort`: `SO_LINGER` with a zero
    /// timeout asked for a reset.
    pub(crate) fn tcp_close(&mut self, id: Id, abort: bool) {
        let Some(Sock::Tcp(sock)) = self.socks.get(&id) else {
            return;
        };
        if matches!(sock.phase, Phase::Listening(_)) {
            self.stop_listening(id);
        }
        let Some(Sock::Tcp(sock)) = self.socks.remove(&id) else {
            return;
        };
        match sock.phase {
            Phase::Fresh | Phase::Failed | Phase::Listening(_) => {
                if let Some(b) = sock.binding {
                    self.ports.release(b);
                }
            }
            Phase::Connecting(c) | Phase::Connected(c) => {
                let Some(conn) = self.conns.get_mut(&c) else {
                    if let Some(b) = sock.binding {
                        self.ports.release(b);
                    }
                    return;
                };
                conn.owner = Owner::Orphan;
                conn.binding = sock.binding;
                let state = conn.current_state();
                if conn.ended.is_some() || matches!(state, State::Closed | State::SynSent) {
                    // Nothing to say to the peer (a connect in progress just stops).
                    self.free_conn(c);
                    return;
                }
                let unread = conn.rx_len() > 0;
                if abort || unread {
                    if let Some(s) = conn.socket_mut() {
                        s.abort();
                    }
                } else {
                    conn.close_sending();
                }
                self.touch(Timed::Conn(c));
            }
        }
    }

    pub(crate) fn tcp_local_addr(&mut self, id: Id) -> KResult<(Option<IpAddress>, u16)> {
        let sock = self.tcp(id)?;
        if let Some(c) = sock.conn_id() {
            if let Some(conn) = self.conns.get(&c) {
                return Ok((Some(conn.local.addr), conn.local.port));
            }
        }
        let sock = self.tcp(id)?;
        Ok((sock.bound_addr, sock.bound_port))
    }

    pub(crate) fn tcp_peer_addr(&mut self, id: Id) -> KResult<IpEndpoint> {
        let sock = self.tcp(id)?;
        let conn = sock
            .conn_id()
            .and_then(|c| self.conns.get(&c))
            .ok_or(Errno::ENOTCONN)?;
        if conn.ended.is_some()
            || matches!(conn.state, State::SynSent | State::Closed | State::TimeWait)
        {
            return Err(Errno::ENOTCONN);
        }
        Ok(conn.remote)
    }

    /// What `poll` reports (Linux's `tcp_poll`).
    pub(crate) fn tcp_mask(&self, id: Id) -> u32 {
        let Some(sock) = self.tcp_ref(id) else {
            return EPOLLNVAL;
        };
        let mut mask = match &sock.phase {
            Phase::Fresh => {
                let mut m = EPOLLOUT | EPOLLWRNORM | EPOLLHUP;
                if sock.shut_rd {
                    m |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
                }
                m
            }
            Phase::Listening(l) => {
                if l.ready.is_empty() {
                    0
                } else {
                    EPOLLIN | EPOLLRDNORM
                }
            }
            Phase::Failed => EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP,
            Phase::Connecting(c) | Phase::Connected(c) => match self.conns.get(c) {
                Some(conn) => conn_mask(conn, sock),
                None => EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP,
            },
        };
        let conn_error = sock
            .conn_id()
            .and_then(|c| self.conns.get(&c))
            .is_some_and(|c| c.error.is_some());
        if sock.error.is_some() || conn_error {
            mask |= EPOLLERR;
        }
        mask
    }

    pub(crate) fn tcp_generation(&self, id: Id) -> Generation {
        let Some(sock) = self.tcp_ref(id) else {
            return Generation::default();
        };
        match sock.conn_id().and_then(|c| self.conns.get(&c)) {
            Some(conn) => newest(sock.gen, conn.gen),
            None => sock.gen,
        }
    }

    /// `(bytes to read, bytes not yet acknowledged)`; `EINVAL` for a listener, as Linux.
    pub(crate) fn tcp_queued(&mut self, id: Id) -> KResult<(usize, usize)> {
        let sock = self.tcp(id)?;
        if matches!(sock.phase, Phase::Listening(_)) {
            return Err(Errno::EINVAL);
        }
        Ok(sock
            .conn_id()
            .and_then(|c| self.conns.get(&c))
            .map_or((0, 0), |c| (c.rx_len(), c.tx_len())))
    }

    /// `SO_ERROR`: the pending error, cleared.
    pub(crate) fn tcp_take_error(&mut self, id: Id) -> KResult<Option<Errno>> {
        let sock = self.tcp(id)?;
        if let Some(e) = sock.error.take() {
            return Ok(Some(e));
        }
        let cid = sock.conn_id();
        Ok(cid
            .and_then(|c| self.conns.get_mut(&c))
            .and_then(|c| c.error.take()))
    }

    pub(crate) fn tcp_is_listening(&mut self, id: Id) -> KResult<bool> {
        Ok(matches!(self.tcp(id)?.phase, Phase::Listening(_)))
    }

    /// The segment size `TCP_MAXSEG` reports: the link's once connected, else what was
    /// set or Linux's default.
    pub(crate) fn tcp_maxseg(&mut self, id: Id) -> KResult<i32> {
        let sock = self.tcp(id)?;
        let set = sock.opts.maxseg;
        let iface = sock
            .conn_id()
            .and_then(|c| self.conns.get(&c))
            .filter(|c| c.synchronized())
            .map(|c| c.iface);
        Ok(match iface.and_then(|i| self.link(i)) {
            Some(link) => {
                let mss = (link.phy.ip_mtu() - 40) as i32;
                if set > 0 {
                    mss.min(set)
                } else {
                    mss
                }
            }
            None if set > 0 => set,
            None => TCP_MSS_DEFAULT,
        })
    }

    /// Change the socket's TCP settings with `f` and carry them to its connection.
    pub(crate) fn tcp_update_opts(&mut self, id: Id, f: impl FnOnce(&mut TcpOpts)) -> KResult<()> {
        let sock = self.tcp(id)?;
        f(&mut sock.opts);
        let opts = sock.opts;
        if let Some(c) = sock.conn_id() {
            if let Some(conn) = self.conns.get_mut(&c) {
                // Buffer sizes are fixed once a connection exists (see `getsockopt`).
                let (rcvbuf, sndbuf) = (conn.opts.rcvbuf, conn.opts.sndbuf);
                conn.opts = TcpOpts {
                    rcvbuf,
                    sndbuf,
                    ..opts
                };
                apply_opts(conn);
                self.touch(Timed::Conn(c));
            }
        }
        Ok(())
    }
}

/// Readiness of a socket with a connection, as Linux's `tcp_poll`.
fn conn_mask(conn: &Conn, sock: &TcpSock) -> u32 {
    if conn.ended.is_none() && matches!(conn.state, State::SynSent | State::SynReceived) {
        return 0;
    }
    let ended = conn.ended.is_some();
    let rcv_shut = sock.shut_rd || conn.fin_received || ended;
    let snd_shut = sock.shut_wr || ended;
    let closed = ended || matches!(conn.state, State::Closed | State::TimeWait);
    let mut mask = 0;
    if (rcv_shut && snd_shut) || closed {
        mask |= EPOLLHUP;
    }
    if rcv_shut {
        mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
    }
    if conn.rx_len() > 0 {
        mask |= EPOLLIN | EPOLLRDNORM;
    }
    if snd_shut || closed {
        mask |= EPOLLOUT | EPOLLWRNORM;
    } else if let Some(s) = conn.socket() {
        // Linux's `sk_stream_is_writeable`: free space at least half of what is queued.
        let queued = s.send_queue();
        let free = s.send_capacity() - queued;
        if s.may_send() && free > 0 && free * 2 >= queued {
            mask |= EPOLLOUT | EPOLLWRNORM;
        }
    }
    mask
}
