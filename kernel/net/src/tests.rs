//! Host tests: two stacks joined by an in-memory Ethernet wire, loopback within one
//! stack, a fake clock that only moves when a test moves it.

use crate::config::NetConfig;
use crate::device::NetDevice;
use crate::stack::Stack;
use skiff_errno::{Errno, KResult};
use skiff_fs::epoll::*;
use skiff_fs::socket::*;
use skiff_fs::OpenFile;
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address, Ipv4Cidr};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

mod bulk;
mod dhcp;
mod scale;
mod tcp;
mod udp;

// ---- the fake clock and kick, per test thread ----

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(1_000_000_000) };
    static KICKS: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn now() -> u64 {
    NOW.with(|n| n.get())
}

pub(crate) fn set_now(ns: u64) {
    NOW.with(|n| n.set(ns.max(n.get())));
}

pub(crate) fn advance_ms(ms: u64) {
    set_now(now() + ms * 1_000_000);
}

fn kick() {
    KICKS.with(|k| k.set(k.get() + 1));
}

pub(crate) fn kicks() -> u64 {
    KICKS.with(|k| k.get())
}

// ---- the wire ----

/// One end of a point-to-point Ethernet cable.
pub(crate) struct FakeNic {
    mac: [u8; 6],
    rx: Mutex<VecDeque<Vec<u8>>>,
    peer: Mutex<Weak<FakeNic>>,
    /// Frames the transmit ring still takes (`usize::MAX`: unlimited).
    pub tx_room: Mutex<usize>,
    /// Frames sent while `cut` is set vanish (a dead peer or a black hole).
    pub cut: Mutex<bool>,
    /// Every frame this end sent, for tests that inspect traffic.
    pub sent: Mutex<Vec<Vec<u8>>>,
}

impl FakeNic {
    pub(crate) fn new(last: u8) -> Arc<FakeNic> {
        Arc::new(FakeNic {
            mac: [0x52, 0x54, 0, 0x12, 0x34, last],
            rx: Mutex::new(VecDeque::new()),
            peer: Mutex::new(Weak::new()),
            tx_room: Mutex::new(usize::MAX),
            cut: Mutex::new(false),
            sent: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn pair() -> (Arc<FakeNic>, Arc<FakeNic>) {
        let (a, b) = (FakeNic::new(1), FakeNic::new(2));
        *a.peer.lock().unwrap() = Arc::downgrade(&b);
        *b.peer.lock().unwrap() = Arc::downgrade(&a);
        (a, b)
    }

    /// Put a frame on the wire towards this end.
    pub(crate) fn inject(&self, frame: Vec<u8>) {
        self.rx.lock().unwrap().push_back(frame);
    }
}

impl NetDevice for FakeNic {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn max_frame(&self) -> usize {
        1514
    }
    fn rx_pending(&self) -> bool {
        !self.rx.lock().unwrap().is_empty()
    }
    fn receive(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        let frame = self.rx.lock().unwrap().pop_front();
        match frame {
            Some(frame) => {
                f(&frame);
                true
            }
            None => false,
        }
    }
    fn can_transmit(&self) -> bool {
        *self.tx_room.lock().unwrap() > 0
    }
    fn transmit_in_flight(&self) -> bool {
        // Frames go straight to the test's queue.
        false
    }
    fn transmit(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> KResult<()> {
        if len > self.max_frame() {
            return Err(Errno::EINVAL);
        }
        {
            let mut room = self.tx_room.lock().unwrap();
            if *room == 0 {
                return Err(Errno::EAGAIN);
            }
            if *room != usize::MAX {
                *room -= 1;
            }
        }
        let mut frame = vec![0u8; len];
        f(&mut frame);
        self.sent.lock().unwrap().push(frame.clone());
        if *self.cut.lock().unwrap() {
            return Ok(());
        }
        if let Some(peer) = self.peer.lock().unwrap().upgrade() {
            peer.inject(frame);
        }
        Ok(())
    }
}

// ---- stacks ----

pub(crate) fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Address {
    Ipv4Address::new(a, b, c, d)
}

pub(crate) fn config(last: u8) -> NetConfig {
    NetConfig {
        address: Some(IpCidr::Ipv4(Ipv4Cidr::new(v4(10, 0, 0, last), 24))),
        gateway: None,
        dhcp: false,
    }
}

/// Two stacks on one wire: A is 10.0.0.1, B is 10.0.0.2.
pub(crate) struct Net {
    pub a: Arc<Stack>,
    pub b: Arc<Stack>,
    pub nic_a: Arc<FakeNic>,
    pub nic_b: Arc<FakeNic>,
}

impl Net {
    pub(crate) fn new() -> Net {
        let (nic_a, nic_b) = FakeNic::pair();
        let a = Stack::new(Some(nic_a.clone()), config(1), now, 1, kick);
        let b = Stack::new(Some(nic_b.clone()), config(2), now, 2, kick);
        let net = Net { a, b, nic_a, nic_b };
        net.settle();
        net
    }

    /// Poll both stacks until nothing is in flight and no timer is due now.
    pub(crate) fn settle(&self) {
        for _ in 0..100_000 {
            self.a.poll();
            self.b.poll();
            if !self.nic_a.rx_pending() && !self.nic_b.rx_pending() {
                return;
            }
        }
        panic!("the wire never went quiet");
    }

    /// Let `ms` milliseconds of simulated time pass, running every timer that falls due.
    /// A stack that keeps asking to be polled again at once, with nothing arriving,
    /// would spin the kernel's network thread: that fails the test.
    pub(crate) fn run_ms(&self, ms: u64) {
        let end = now() + ms * 1_000_000;
        let mut at_once = 0;
        loop {
            self.settle();
            let next = [self.a.poll(), self.b.poll()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX);
            if self.nic_a.rx_pending() || self.nic_b.rx_pending() {
                continue;
            }
            at_once = if next <= now() { at_once + 1 } else { 0 };
            assert!(at_once < 100, "poll keeps asking to run at once");
            if next > end {
                set_now(end);
                self.settle();
                return;
            }
            set_now(next.max(now() + 1));
        }
    }
}

/// A stack with no card (loopback only).
pub(crate) fn lo_stack() -> Arc<Stack> {
    Stack::new(None, NetConfig::default(), now, 7, kick)
}

/// Run a loopback-only stack's timers for `ms`.
pub(crate) fn run_lo(stack: &Stack, ms: u64) {
    let end = now() + ms * 1_000_000;
    let mut at_once = 0;
    loop {
        let next = stack.poll().unwrap_or(u64::MAX);
        at_once = if next <= now() { at_once + 1 } else { 0 };
        assert!(at_once < 100, "poll keeps asking to run at once");
        if next > end {
            set_now(end);
            stack.poll();
            return;
        }
        set_now(next.max(now() + 1));
    }
}

// ---- socket helpers ----

pub(crate) fn sock(f: &OpenFile) -> &dyn Socket {
    f.socket().expect("a socket")
}

pub(crate) fn tcp(stack: &Arc<Stack>) -> Arc<OpenFile> {
    stack
        .socket(AF_INET, SOCK_STREAM, 0, SOCK_NONBLOCK)
        .unwrap()
}

pub(crate) fn udp(stack: &Arc<Stack>) -> Arc<OpenFile> {
    stack.socket(AF_INET, SOCK_DGRAM, 0, SOCK_NONBLOCK).unwrap()
}

pub(crate) fn addr(a: [u8; 4], port: u16) -> SockAddr {
    SockAddr::Inet { addr: a, port }
}

pub(crate) const LO: [u8; 4] = [127, 0, 0, 1];
pub(crate) const ANY: [u8; 4] = [0, 0, 0, 0];
pub(crate) const A: [u8; 4] = [10, 0, 0, 1];
pub(crate) const B: [u8; 4] = [10, 0, 0, 2];

pub(crate) fn set_int(f: &OpenFile, level: i32, name: i32, v: i32) -> KResult<()> {
    sock(f).setsockopt(level, name, &v.to_ne_bytes())
}

pub(crate) fn get_int(f: &OpenFile, level: i32, name: i32) -> KResult<i32> {
    let v = sock(f).getsockopt(level, name)?;
    Ok(i32::from_ne_bytes(v[..4].try_into().unwrap()))
}

pub(crate) fn send(f: &OpenFile, data: &[u8]) -> KResult<usize> {
    sock(f).send(data, None, 0, SendAncillary::default())
}

pub(crate) fn send_to(f: &OpenFile, data: &[u8], to: SockAddr) -> KResult<usize> {
    sock(f).send(data, Some(&to), 0, SendAncillary::default())
}

pub(crate) fn recv(f: &OpenFile, n: usize) -> KResult<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let r = sock(f).recv(&mut buf, 0)?;
    buf.truncate(r.len);
    Ok(buf)
}

pub(crate) fn recv_flags(f: &OpenFile, n: usize, flags: u32) -> KResult<(Vec<u8>, Received)> {
    let mut buf = vec![0u8; n];
    let r = sock(f).recv(&mut buf, flags)?;
    buf.truncate(r.len.min(n));
    Ok((buf, r))
}

pub(crate) fn mask(f: &OpenFile) -> u32 {
    f.poll_mask()
}

/// Connect as a blocking caller does: the first call answers `EINPROGRESS` (as
/// Linux's always does), the next reports the outcome, which over loopback is there.
pub(crate) fn connect_now(f: &OpenFile, to: SockAddr) -> KResult<()> {
    match sock(f).connect(&to) {
        Err(Errno::EINPROGRESS) => sock(f).connect(&to),
        r => r,
    }
}

/// A listener on `stack` at `at`, non-blocking.
pub(crate) fn listener(stack: &Arc<Stack>, at: SockAddr, backlog: i32) -> Arc<OpenFile> {
    let l = tcp(stack);
    sock(&l).bind(&at).unwrap();
    sock(&l).listen(backlog).unwrap();
    l
}

/// A connected pair over loopback: (client, server).
pub(crate) fn lo_pair(stack: &Arc<Stack>, port: u16) -> (Arc<OpenFile>, Arc<OpenFile>) {
    let l = listener(stack, addr(LO, port), 16);
    let c = tcp(stack);
    connect_now(&c, addr(LO, port)).unwrap();
    let (s, _) = sock(&l).accept(SOCK_NONBLOCK).unwrap();
    (c, s)
}

/// Read everything available (until EAGAIN or EOF).
pub(crate) fn drain(f: &OpenFile) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match recv(f, 65536) {
            Ok(d) if d.is_empty() => return out,
            Ok(d) => out.extend(d),
            Err(Errno::EAGAIN) => return out,
            Err(e) => panic!("recv failed: {e:?}"),
        }
    }
}

#[test]
fn socket_types_and_protocols_answer_as_linux() {
    let s = lo_stack();
    assert!(s.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, 0).is_ok());
    assert!(s.socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, 0).is_ok());
    let err = |f, t, p| s.socket(f, t, p, 0).err().unwrap();
    assert_eq!(err(AF_INET6, SOCK_STREAM, 0), Errno::EAFNOSUPPORT);
    assert_eq!(err(AF_INET, SOCK_RAW, IPPROTO_ICMP), Errno::EPERM);
    assert_eq!(err(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), Errno::EACCES);
    assert_eq!(
        err(AF_INET, SOCK_STREAM, IPPROTO_UDP),
        Errno::EPROTONOSUPPORT
    );
    assert_eq!(
        err(AF_INET, SOCK_DGRAM, IPPROTO_TCP),
        Errno::EPROTONOSUPPORT
    );
    assert_eq!(err(AF_INET, SOCK_STREAM, 132), Errno::EPROTONOSUPPORT);
    assert_eq!(err(AF_INET, SOCK_SEQPACKET, 0), Errno::ESOCKTNOSUPPORT);
    assert_eq!(err(AF_INET, 11, 0), Errno::EINVAL);
    assert_eq!(err(AF_INET, SOCK_STREAM, -1), Errno::EINVAL);
    let t = tcp(&s);
    assert_eq!(sock(&t).kind(), (AF_INET, SOCK_STREAM, IPPROTO_TCP));
    assert_eq!(get_int(&t, SOL_SOCKET, SO_PROTOCOL), Ok(IPPROTO_TCP));
    assert_eq!(get_int(&t, SOL_SOCKET, SO_TYPE), Ok(SOCK_STREAM as i32));
    assert_eq!(get_int(&t, SOL_SOCKET, SO_DOMAIN), Ok(AF_INET as i32));
    let name = t.poll_mask();
    assert_eq!(name, EPOLLOUT | EPOLLWRNORM | EPOLLHUP);
}
