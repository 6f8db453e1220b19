//! AF_UNIX sockets: `SOCK_STREAM`, `SOCK_DGRAM` and `SOCK_SEQPACKET` between the
//! threads of the one process, with Linux's semantics and errnos (checked against
//! native runs on Linux 6.x).
//!
//! This module owns the sockets themselves: names (paths through socket inodes in the
//! VFS, the abstract namespace, autobind — see `names`), connections and their
//! backlog, the receive queues with Linux's send-buffer accounting (see [`queue`]),
//! `SCM_RIGHTS` and `SCM_CREDENTIALS`, shutdown and close, and readiness for `poll` and
//! epoll. The generic socket system calls (`socket`, `bind`, `sendmsg`...) live in the
//! syscall layer and reach a socket through [`Socket`]; nothing here blocks (see
//! [`crate::socket`]).
//!
//! # API
//!
//! * [`socket`]`(fs, type, protocol, flags)` and [`socketpair`]`(type, protocol,
//!   flags)` make open files whose device is a [`UnixSocket`]. A socket keeps its
//!   process's [`FsContext`], so `bind` and `connect` resolve relative paths against
//!   the working directory at the time of the call and `bind` applies the umask.
//! * Received `SCM_RIGHTS` files come back in [`Received::rights`]; the syscall layer
//!   installs them as descriptors (and closes what does not fit, as Linux).
//!
//! # For the syscall layer
//!
//! * Pass `MSG_DONTWAIT` to [`Socket::recv`] for `O_NONBLOCK` descriptors too: a
//!   datagram socket shut down for reading answers `EAGAIN` to a caller that will not
//!   wait and 0 to one that would (Linux's blocking receive returns 0 there, and
//!   waiting on its readiness would spin).
//! * Two `EAGAIN`s are not visible in the caller's own readiness, as on Linux, where
//!   the caller sleeps on the *other* socket: `connect` to a listener whose backlog is
//!   full, and `sendto` an unconnected datagram socket whose queue is full. A blocking
//!   caller should retry on each I/O event (the listener's `accept` and the
//!   receiver's reads change them) rather than wait for its own `EPOLLOUT`.
//! * `SO_PASSCRED` is read from [`OptionValues::passcred`], so the generic option code
//!   may own it; [`UnixSocket::setsockopt`] also accepts it.
//! * Every address that is not AF_UNIX is `EINVAL` here, as in Linux's
//!   `unix_validate_addr` (including families [`SockAddr::decode`] calls
//!   `EAFNOSUPPORT`); `AF_UNSPEC` dissolves a datagram socket's association.
//! * Wake I/O waiters after `send`, `recv`, `accept`, `connect`, `shutdown` and close,
//!   as for pipes: readiness here only changes through those.
//!
//! # Model
//!
//! Each socket is an [`Endpoint`] held by its open file ([`UnixSocket`]); connected
//! endpoints hold each other. Closing the file *releases* the endpoint (Linux's
//! `unix_release_sock`): it leaves the name tables, marks its peer shut down (with
//! `ECONNRESET` when it dies with unread data or was never accepted), drops its queue,
//! and forgets its peer, which breaks the reference cycle; the survivor keeps the dead
//! endpoint to report its name and to notice it is gone.
//!
//! Two state locks are taken in address order. A message is never dropped with a lock
//! held: it may carry the last reference to another socket, whose release takes locks.
//!
//! # Differences from Linux
//!
//! * Out-of-band data (`MSG_OOB` on streams) is not supported: sending it is
//!   `EOPNOTSUPP`, receiving it `EINVAL` (what Linux answers when none is pending).
//! * Sockets in flight inside each other's queues form reference cycles that are never
//!   collected (Linux has a garbage collector for them).
//! * `SO_SNDBUF`/`SO_RCVBUF` are capped at Linux's default `wmem_max`/`rmem_max`
//!   (212 992 bytes), whatever the host's sysctls say.
//! * Credentials are those of the first process: pid 1, uid 0, gid 0 (whichever
//!   process sends).

mod names;
pub mod queue;

use crate::device::{event_stamp, CharDevice, Generation, IoctlOut, FIONREAD};
use crate::epoll::{
    EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLRDNORM, EPOLLWRBAND, EPOLLWRNORM,
};
use crate::fdtable::FsContext;
use crate::file::OpenFile;
use crate::socket::*;
use crate::types::{FileType, S_IFSOCK};
use crate::vfs::Location;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use queue::{datagram_truesize, stream_chunk, stream_truesize, Charge, Message, SendAccount};
use skiff_errno::{Errno, KResult};
use spin::{Mutex, MutexGuard};

/// Linux's `wmem_default`/`rmem_default`: the buffer sizes a new socket gets.
pub const DEFAULT_BUFFER: usize = 212_992;
/// Linux's default `wmem_max`/`rmem_max`: the most `SO_SNDBUF`/`SO_RCVBUF` may ask for
/// (the stored value is twice the request).
pub const MAX_BUFFER_REQUEST: usize = 212_992;
/// `SOCK_MIN_SNDBUF` and `SOCK_MIN_RCVBUF`.
const MIN_SNDBUF: usize = 4608;
const MIN_RCVBUF: usize = 2304;
/// `net.unix.max_dgram_qlen`: datagrams queued at a receiver before senders that are
/// not its peer get `EAGAIN` (Linux lets one more in than this).
pub const MAX_DGRAM_QLEN: usize = 10;
/// `net.core.somaxconn`: the largest listen backlog.
pub const SOMAXCONN: usize = 4096;
/// `SCM_MAX_FD`: descriptors one message may carry.
pub const SCM_MAX_FD: usize = 253;
/// Linux reserves this much of the send buffer: a datagram may be at most
/// `SO_SNDBUF - 32` bytes.
const DGRAM_RESERVE: usize = 32;
/// `SIOCOUTQ` (= `TIOCOUTQ`): bytes charged to the sender and not yet consumed.
pub const SIOCOUTQ: u32 = 0x5411;

/// The credentials of the one process, as `SO_PEERCRED` and `SCM_CREDENTIALS` report
/// them.
pub const PROCESS_CREDENTIALS: Ucred = Ucred {
    pid: 1,
    uid: 0,
    gid: 0,
};
/// `SO_PEERCRED` of a socket with no peer credentials: pid 0, uid and gid -1.
const NO_PEER_CREDENTIALS: Ucred = Ucred {
    pid: 0,
    uid: u32::MAX,
    gid: u32::MAX,
};
/// `SCM_CREDENTIALS` of a message sent while neither end asked for credentials: pid 0
/// and the overflow ids.
const UNRECORDED_CREDENTIALS: Ucred = Ucred {
    pid: 0,
    uid: 65534,
    gid: 65534,
};

/// `sk_shutdown` bits.
const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;
const SHUTDOWN_MASK: u8 = RCV_SHUTDOWN | SEND_SHUTDOWN;

/// The socket types AF_UNIX offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Stream,
    Datagram,
    SeqPacket,
}

impl Kind {
    /// `SOCK_RAW` is a datagram socket, as in Linux's `unix_create`.
    fn from_type(ty: u32) -> KResult<Kind> {
        match ty {
            SOCK_STREAM => Ok(Kind::Stream),
            SOCK_DGRAM | SOCK_RAW => Ok(Kind::Datagram),
            SOCK_SEQPACKET => Ok(Kind::SeqPacket),
            _ => Err(Errno::ESOCKTNOSUPPORT),
        }
    }

    fn sock_type(self) -> u32 {
        match self {
            Kind::Stream => SOCK_STREAM,
            Kind::Datagram => SOCK_DGRAM,
            Kind::SeqPacket => SOCK_SEQPACKET,
        }
    }

    fn connection_based(self) -> bool {
        self != Kind::Datagram
    }
}

/// Checks `socket`/`socketpair` arguments: the protocol (0 or `PF_UNIX`) first, as
/// Linux, then the type; flags other than `SOCK_NONBLOCK`/`SOCK_CLOEXEC` are `EINVAL`.
fn check_arguments(ty: u32, protocol: i32, flags: u32) -> KResult<Kind> {
    if ty & !SOCK_TYPE_MASK != 0 || flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    if protocol != 0 && protocol != i32::from(AF_UNIX) {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Kind::from_type(ty)
}

/// `socket(AF_UNIX, ty, protocol)` with `flags` (`SOCK_NONBLOCK`; the caller applies
/// `SOCK_CLOEXEC` to the descriptor). `ty` is the type without flag bits.
pub fn socket(fs: &Arc<FsContext>, ty: u32, protocol: i32, flags: u32) -> KResult<Arc<OpenFile>> {
    let kind = check_arguments(ty, protocol, flags)?;
    let endpoint = Endpoint::new(kind, protocol, Arc::downgrade(fs));
    Ok(UnixSocket::open(endpoint, flags))
}

/// `socketpair(AF_UNIX, ty, protocol)`: two connected sockets. They have no file-system
/// context, so they can bind abstract names but not paths (`EOPNOTSUPP`); use
/// [`socketpair_in`] to give them one.
pub fn socketpair(ty: u32, protocol: i32, flags: u32) -> KResult<(Arc<OpenFile>, Arc<OpenFile>)> {
    pair(ty, protocol, flags, Weak::new())
}

/// [`socketpair`] for sockets that may later bind paths resolved in `fs`.
pub fn socketpair_in(
    fs: &Arc<FsContext>,
    ty: u32,
    protocol: i32,
    flags: u32,
) -> KResult<(Arc<OpenFile>, Arc<OpenFile>)> {
    pair(ty, protocol, flags, Arc::downgrade(fs))
}

fn pair(
    ty: u32,
    protocol: i32,
    flags: u32,
    fs: Weak<FsContext>,
) -> KResult<(Arc<OpenFile>, Arc<OpenFile>)> {
    let kind = check_arguments(ty, protocol, flags)?;
    let a = Endpoint::new(kind, protocol, fs.clone());
    let b = Endpoint::new(kind, protocol, fs);
    for (me, other) in [(&a, &b), (&b, &a)] {
        let mut st = me.state.lock();
        st.peer = Some(other.clone());
        st.peercred = Some(PROCESS_CREDENTIALS);
        if kind.connection_based() {
            st.phase = Phase::Connected;
        }
    }
    Ok((UnixSocket::open(a, flags), UnixSocket::open(b, flags)))
}

/// Where a socket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not connected (a datagram socket's association is `State::peer` alone).
    Unconnected,
    Listening,
    /// A connection-based socket with a peer (which may since have closed).
    Connected,
}

/// How a socket is registered in a name table.
enum Registration {
    /// Bound to this socket inode.
    Node(Location),
    Abstract(Vec<u8>),
}

struct State {
    phase: Phase,
    /// Connections a listener holds beyond this are refused (`EAGAIN`).
    backlog: usize,
    /// Connections waiting for `accept`, oldest first: the server-side endpoints.
    pending: VecDeque<Arc<Endpoint>>,
    peer: Option<Arc<Endpoint>>,
    /// The name `getsockname` reports (accepted sockets share their listener's).
    name: Option<UnixAddr>,
    registration: Option<Registration>,
    queue: VecDeque<Message>,
    shutdown: u8,
    /// `sk_err`: reported once by the next receive or `SO_ERROR`.
    error: Option<Errno>,
    peercred: Option<Ucred>,
    /// The socket's file was closed (Linux's `SOCK_DEAD`).
    released: bool,
    rcvbuf: usize,
}

/// One AF_UNIX socket.
pub struct Endpoint {
    kind: Kind,
    protocol: i32,
    ino: u64,
    fs: Weak<FsContext>,
    options: SocketOptions,
    account: Arc<SendAccount>,
    state: Mutex<State>,
    /// Stamp of the last message or connection queued here.
    arrivals: AtomicU64,
    /// Stamp of the last change of shutdown, error or peer state.
    hangups: AtomicU64,
    /// Stamp of the last datagram taken from a queue that was full (the senders it
    /// held back may go on).
    drained: AtomicU64,
}

/// Locks two different endpoints in address order; the guards come back as (a, b).
fn lock_two<'a>(
    a: &'a Endpoint,
    b: &'a Endpoint,
) -> (MutexGuard<'a, State>, MutexGuard<'a, State>) {
    if (a as *const Endpoint) < (b as *const Endpoint) {
        let ga = a.state.lock();
        let gb = b.state.lock();
        (ga, gb)
    } else {
        let gb = b.state.lock();
        let ga = a.state.lock();
        (ga, gb)
    }
}

fn is(a: &Option<Arc<Endpoint>>, b: &Endpoint) -> bool {
    a.as_ref().is_some_and(|a| core::ptr::eq(Arc::as_ptr(a), b))
}

fn stamp(at: &AtomicU64) {
    at.store(event_stamp(), Ordering::Release);
}

/// Linux's `SO_SNDBUF`/`SO_RCVBUF` rule: the request, capped (unless forced) and
/// doubled, never below the minimum.
fn buffer_size(value: &[u8], cap: bool, min: usize) -> KResult<usize> {
    let raw = i32::from_ne_bytes(
        value
            .get(..4)
            .ok_or(Errno::EINVAL)?
            .try_into()
            .map_err(|_| Errno::EINVAL)?,
    );
    let requested = if cap {
        (raw as u32 as usize).min(MAX_BUFFER_REQUEST)
    } else {
        raw.clamp(0, i32::MAX / 2) as usize
    };
    Ok((requested * 2).max(min))
}

impl Endpoint {
    fn new(kind: Kind, protocol: i32, fs: Weak<FsContext>) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            kind,
            protocol,
            ino: next_socket_ino(),
            fs,
            options: SocketOptions::new(),
            account: Arc::new(SendAccount::new(DEFAULT_BUFFER)),
            state: Mutex::new(State {
                phase: Phase::Unconnected,
                backlog: 0,
                pending: VecDeque::new(),
                peer: None,
                name: None,
                registration: None,
                queue: VecDeque::new(),
                shutdown: 0,
                error: None,
                peercred: None,
                released: false,
                rcvbuf: DEFAULT_BUFFER,
            }),
            arrivals: AtomicU64::new(0),
            hangups: AtomicU64::new(0),
            drained: AtomicU64::new(0),
        })
    }

    fn passcred(&self) -> bool {
        self.options.get().passcred
    }

    /// This socket's name as a message's sender address (`None` when unnamed).
    fn sender_name(st: &State) -> Option<SockAddr> {
        st.name.clone().map(SockAddr::Unix)
    }

    // ---- names ----

    fn bind(self: &Arc<Self>, addr: &SockAddr) -> KResult<()> {
        let SockAddr::Unix(addr) = addr else {
            return Err(Errno::EINVAL);
        };
        match addr {
            UnixAddr::Unnamed => self.autobind(),
            UnixAddr::Abstract(name) => {
                let mut st = self.state.lock();
                if st.name.is_some() {
                    return Err(Errno::EINVAL);
                }
                names::claim_abstract(name, self)?;
                st.name = Some(addr.clone());
                st.registration = Some(Registration::Abstract(name.clone()));
                Ok(())
            }
            UnixAddr::Path(path) => self.bind_path(path),
        }
    }

    /// Binds to a new socket inode at `path` (`EADDRINUSE` if anything is there).
    fn bind_path(self: &Arc<Self>, path: &[u8]) -> KResult<()> {
        let fs = self.fs.upgrade().ok_or(Errno::EOPNOTSUPP)?;
        let base = fs.cwd();
        let vfs = fs.vfs();
        // Linux creates the node first: an existing path wins over "already bound".
        if vfs.stat(&base, path, false).is_ok() {
            return Err(Errno::EADDRINUSE);
        }
        if self.state.lock().name.is_some() {
            return Err(Errno::EINVAL);
        }
        let mode = S_IFSOCK | (0o777 & !fs.umask());
        let node = vfs.mknod(&base, path, mode, 0).map_err(|e| match e {
            Errno::EEXIST => Errno::EADDRINUSE,
            e => e,
        })?;
        let mut st = self.state.lock();
        if st.name.is_some() {
            // Another thread bound this socket meanwhile; undo, as Linux does.
            drop(st);
            let _ = vfs.unlink(&base, path, false);
            return Err(Errno::EINVAL);
        }
        names::claim_node(node.inode(), self);
        st.name = Some(UnixAddr::Path(path.to_vec()));
        st.registration = Some(Registration::Node(node));
        Ok(())
    }

    /// Binds to a free abstract name; a socket that has a name keeps it (`Ok`).
    fn autobind(self: &Arc<Self>) -> KResult<()> {
        let mut st = self.state.lock();
        if st.name.is_some() {
            return Ok(());
        }
        let name = names::claim_autobind(self)?;
        st.name = Some(UnixAddr::Abstract(name.clone()));
        st.registration = Some(Registration::Abstract(name));
        Ok(())
    }

    /// The open socket a name reaches: `ENOENT` for a missing path, `ECONNREFUSED`
    /// for a name nobody listens on (or a path that is not a socket), `EPROTOTYPE`
    /// for a socket of another type.
    fn lookup(&self, addr: &UnixAddr) -> KResult<Arc<Endpoint>> {
        let found = match addr {
            UnixAddr::Unnamed => return Err(Errno::EINVAL),
            UnixAddr::Abstract(name) => names::find_abstract(name),
            UnixAddr::Path(path) => {
                let fs = self.fs.upgrade().ok_or(Errno::ECONNREFUSED)?;
                let node = fs.vfs().resolve(&fs.cwd(), path, true)?;
                if node.file_type() != FileType::Socket {
                    return Err(Errno::ECONNREFUSED);
                }
                names::find_node(node.inode())
            }
        };
        let other = found.ok_or(Errno::ECONNREFUSED)?;
        if other.kind != self.kind {
            return Err(Errno::EPROTOTYPE);
        }
        Ok(other)
    }

    /// The target of `connect`/`sendto`: a named AF_UNIX address (`EINVAL` otherwise).
    fn named(addr: &SockAddr) -> KResult<&UnixAddr> {
        match addr {
            SockAddr::Unix(a @ (UnixAddr::Path(_) | UnixAddr::Abstract(_))) => Ok(a),
            _ => Err(Errno::EINVAL),
        }
    }

    // ---- connections ----

    fn listen(&self, backlog: i32) -> KResult<()> {
        if self.kind == Kind::Datagram {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut st = self.state.lock();
        if st.phase == Phase::Connected || st.name.is_none() {
            return Err(Errno::EINVAL);
        }
        st.backlog = usize::try_from(backlog)
            .ok()
            .filter(|&b| b <= SOMAXCONN)
            .unwrap_or(SOMAXCONN);
        st.phase = Phase::Listening;
        st.peercred = Some(PROCESS_CREDENTIALS);
        Ok(())
    }

    /// `connect` of a stream or seqpacket socket: completes at once (Linux's AF_UNIX
    /// connect is synchronous), queuing a server-side endpoint at the listener.
    fn connect_stream(self: &Arc<Self>, addr: &SockAddr) -> KResult<()> {
        let other = self.lookup(Self::named(addr)?)?;
        if self.passcred() {
            self.autobind()?;
        }
        if Arc::ptr_eq(self, &other) {
            // Only a listening socket can be its own target, and it cannot connect.
            let st = self.state.lock();
            return Err(
                if st.phase == Phase::Listening && st.shutdown & RCV_SHUTDOWN == 0 {
                    Errno::EINVAL
                } else {
                    Errno::ECONNREFUSED
                },
            );
        }
        let server = Endpoint::new(self.kind, self.protocol, other.fs.clone());
        {
            let (mut me, mut listener) = lock_two(self, &other);
            // Linux's order: the listener's state, its backlog, then our own state.
            if listener.released
                || listener.phase != Phase::Listening
                || listener.shutdown & RCV_SHUTDOWN != 0
            {
                return Err(Errno::ECONNREFUSED);
            }
            if listener.pending.len() > listener.backlog {
                return Err(Errno::EAGAIN);
            }
            match me.phase {
                Phase::Connected => return Err(Errno::EISCONN),
                Phase::Listening => return Err(Errno::EINVAL),
                Phase::Unconnected => {}
            }
            {
                let mut sv = server.state.lock();
                sv.phase = Phase::Connected;
                sv.peer = Some(self.clone());
                sv.name = listener.name.clone();
                sv.peercred = Some(PROCESS_CREDENTIALS);
            }
            me.phase = Phase::Connected;
            me.peer = Some(server.clone());
            me.peercred = listener.peercred;
            listener.pending.push_back(server);
        }
        stamp(&other.arrivals);
        stamp(&self.hangups);
        Ok(())
    }

    fn accept(&self, flags: u32) -> KResult<(Arc<OpenFile>, SockAddr)> {
        if self.kind == Kind::Datagram {
            return Err(Errno::EOPNOTSUPP);
        }
        let server = {
            let mut st = self.state.lock();
            if st.phase != Phase::Listening {
                return Err(Errno::EINVAL);
            }
            st.pending.pop_front().ok_or(Errno::EAGAIN)?
        };
        let client = server.state.lock().peer.clone();
        let name = client.and_then(|c| c.state.lock().name.clone());
        let addr = SockAddr::Unix(name.unwrap_or(UnixAddr::Unnamed));
        Ok((UnixSocket::open(server, flags & SOCK_NONBLOCK), addr))
    }

    /// `connect` of a datagram socket: sets (or with `AF_UNSPEC` dissolves) the default
    /// peer, which is also the only socket this one accepts datagrams from.
    fn connect_datagram(self: &Arc<Self>, addr: &SockAddr) -> KResult<()> {
        let other = match addr {
            SockAddr::Unspec => None,
            addr => Some(self.lookup(Self::named(addr)?)?),
        };
        if other.is_some() && self.passcred() {
            self.autobind()?;
        }
        let old = match &other {
            None => self.state.lock().peer.take(),
            Some(other) if Arc::ptr_eq(self, other) => {
                let mut me = self.state.lock();
                if !(me.peer.is_none() || is(&me.peer, self)) {
                    return Err(Errno::EPERM);
                }
                me.peer.replace(other.clone())
            }
            Some(other) => {
                let (mut me, target) = lock_two(self, other);
                if !(target.peer.is_none() || is(&target.peer, self)) {
                    return Err(Errno::EPERM);
                }
                if target.released {
                    return Err(Errno::ECONNREFUSED);
                }
                me.peer.replace(other.clone())
            }
        };
        if let Some(old) = old {
            if !other.as_ref().is_some_and(|o| Arc::ptr_eq(o, &old)) {
                self.disconnected_from(&old);
            }
        }
        Ok(())
    }

    /// Linux's `unix_dgram_disconnected`: leaving `old` drops what is queued here and,
    /// if `old` was connected back, tells it with `ECONNRESET`.
    fn disconnected_from(&self, old: &Arc<Endpoint>) {
        let purged = core::mem::take(&mut self.state.lock().queue);
        if purged.is_empty() {
            return;
        }
        drop(purged);
        let mut st = old.state.lock();
        if !st.released && is(&st.peer, self) {
            st.error = Some(Errno::ECONNRESET);
            drop(st);
            stamp(&old.hangups);
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        let mode = match how {
            SHUT_RD => RCV_SHUTDOWN,
            SHUT_WR => SEND_SHUTDOWN,
            SHUT_RDWR => SHUTDOWN_MASK,
            _ => return Err(Errno::EINVAL),
        };
        let peer = {
            let mut st = self.state.lock();
            st.shutdown |= mode;
            st.peer.clone().filter(|_| self.kind.connection_based())
        };
        stamp(&self.hangups);
        if let Some(peer) = peer {
            let mut peer_mode = 0;
            if mode & RCV_SHUTDOWN != 0 {
                peer_mode |= SEND_SHUTDOWN;
            }
            if mode & SEND_SHUTDOWN != 0 {
                peer_mode |= RCV_SHUTDOWN;
            }
            peer.state.lock().shutdown |= peer_mode;
            stamp(&peer.hangups);
        }
        Ok(())
    }

    /// The socket's file closed (`unix_release_sock`); `embryo` for a connection that
    /// was never accepted.
    fn release(self: &Arc<Self>, embryo: bool) {
        let (peer, pending, queue, registration) = {
            let mut st = self.state.lock();
            if st.released {
                return;
            }
            st.released = true;
            st.shutdown = SHUTDOWN_MASK;
            (
                st.peer.take(),
                core::mem::take(&mut st.pending),
                core::mem::take(&mut st.queue),
                st.registration.take(),
            )
        };
        stamp(&self.hangups);
        match &registration {
            Some(Registration::Node(node)) => names::release_node(node.inode(), self),
            Some(Registration::Abstract(name)) => names::release_abstract(name, self),
            None => {}
        }
        if let Some(peer) = &peer {
            if self.kind.connection_based() {
                let mut st = peer.state.lock();
                st.shutdown = SHUTDOWN_MASK;
                if !queue.is_empty() || embryo {
                    st.error = Some(Errno::ECONNRESET);
                }
            }
            stamp(&peer.hangups);
        }
        for server in pending {
            server.release(true);
        }
        drop(queue);
        drop(peer);
        drop(registration);
    }

    // ---- data ----

    fn check_ancillary(ancillary: &SendAncillary) -> KResult<()> {
        if ancillary.rights.len() > SCM_MAX_FD {
            return Err(Errno::EINVAL);
        }
        if let Some(c) = ancillary.credentials {
            // The only process that exists is this one; root may claim any ids.
            if c.pid != PROCESS_CREDENTIALS.pid {
                return Err(Errno::ESRCH);
            }
        }
        Ok(())
    }

    /// Credentials a message records: explicit ones, else the process's when either
    /// end asked for credentials (Linux's `maybe_add_creds`).
    fn record_creds(&self, other: &Endpoint, explicit: Option<Ucred>) -> Option<Ucred> {
        explicit.or((self.passcred() || other.passcred()).then_some(PROCESS_CREDENTIALS))
    }

    fn send_stream(
        &self,
        data: &[u8],
        to: Option<&SockAddr>,
        flags: u32,
        ancillary: SendAncillary,
    ) -> KResult<usize> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        Self::check_ancillary(&ancillary)?;
        let (peer, from) = {
            let st = self.state.lock();
            if to.is_some() {
                return Err(if st.phase == Phase::Connected {
                    Errno::EISCONN
                } else {
                    Errno::EOPNOTSUPP
                });
            }
            let peer = st.peer.clone().ok_or(Errno::ENOTCONN)?;
            if st.shutdown & SEND_SHUTDOWN != 0 {
                return Err(Errno::EPIPE);
            }
            (peer, Self::sender_name(&st))
        };
        let mut rights = Some(ancillary.rights);
        let creds = self.record_creds(&peer, ancillary.credentials);
        let sndbuf = self.account.sndbuf();
        let mut sent = 0;
        while sent < data.len() && self.account.has_room() {
            let size = stream_chunk(data.len() - sent, sndbuf);
            let message = Message::new(
                data[sent..sent + size].to_vec(),
                from.clone(),
                rights.take().unwrap_or_default(),
                creds,
                Charge::new(&self.account, stream_truesize(size)),
            );
            let mut st = peer.state.lock();
            if st.released || st.shutdown & RCV_SHUTDOWN != 0 {
                drop(st);
                drop(message);
                return if sent > 0 {
                    Ok(sent)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            st.queue.push_back(message);
            drop(st);
            stamp(&peer.arrivals);
            sent += size;
        }
        if sent == 0 && !data.is_empty() {
            return Err(Errno::EAGAIN);
        }
        Ok(sent)
    }

    fn send_datagram(
        self: &Arc<Self>,
        data: &[u8],
        to: Option<&SockAddr>,
        flags: u32,
        ancillary: SendAncillary,
    ) -> KResult<usize> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        Self::check_ancillary(&ancillary)?;
        // A seqpacket socket sends to its peer whatever address it is given.
        let target = match to {
            Some(addr) if self.kind == Kind::Datagram => Some(Self::named(addr)?),
            _ => None,
        };
        let peer = {
            let st = self.state.lock();
            if self.kind == Kind::SeqPacket && st.phase != Phase::Connected {
                return Err(Errno::ENOTCONN);
            }
            match target {
                Some(_) => None,
                None => Some(st.peer.clone().ok_or(Errno::ENOTCONN)?),
            }
        };
        if self.passcred() {
            self.autobind()?;
        }
        let sndbuf = self.account.sndbuf();
        if data.len() > sndbuf.saturating_sub(DGRAM_RESERVE) {
            return Err(Errno::EMSGSIZE);
        }
        let from = {
            let st = self.state.lock();
            if st.shutdown & SEND_SHUTDOWN != 0 {
                return Err(Errno::EPIPE);
            }
            Self::sender_name(&st)
        };
        if !self.account.has_room() {
            return Err(Errno::EAGAIN);
        }
        let other = match (peer, target) {
            (Some(peer), _) => peer,
            (None, Some(addr)) => self.lookup(addr)?,
            (None, None) => return Err(Errno::ENOTCONN),
        };
        let creds = self.record_creds(&other, ancillary.credentials);
        let message = Message::new(
            data.to_vec(),
            from,
            ancillary.rights,
            creds,
            Charge::new(&self.account, datagram_truesize(data.len())),
        );
        let mut garbage = None;
        let result = if Arc::ptr_eq(self, &other) {
            let mut me = self.state.lock();
            if !(me.peer.is_none() || is(&me.peer, self)) {
                Err(Errno::EPERM)
            } else if me.shutdown & RCV_SHUTDOWN != 0 {
                Err(Errno::EPIPE)
            } else {
                me.queue.push_back(message);
                Ok(data.len())
            }
        } else {
            let (mut me, mut target) = lock_two(self, &other);
            if !(target.peer.is_none() || is(&target.peer, self)) {
                Err(Errno::EPERM)
            } else if target.released {
                if self.kind == Kind::SeqPacket {
                    Err(Errno::EPIPE)
                } else {
                    if is(&me.peer, &other) {
                        // The peer is gone: this socket is no longer connected, and
                        // what it had queued is dropped (`unix_dgram_disconnected`).
                        garbage = Some((me.peer.take(), core::mem::take(&mut me.queue)));
                    }
                    Err(Errno::ECONNREFUSED)
                }
            } else if target.shutdown & RCV_SHUTDOWN != 0 {
                Err(Errno::EPIPE)
            } else if !is(&target.peer, self) && target.queue.len() > MAX_DGRAM_QLEN {
                Err(Errno::EAGAIN)
            } else {
                target.queue.push_back(message);
                Ok(data.len())
            }
        };
        if result.is_ok() {
            stamp(&other.arrivals);
        }
        drop(garbage);
        result
    }

    fn recv_stream(&self, buf: &mut [u8], flags: u32) -> KResult<Received> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EINVAL);
        }
        let peek = flags & MSG_PEEK != 0;
        let passcred = self.passcred();
        let mut got = Received::default();
        let mut finished = Vec::new();
        {
            let mut st = self.state.lock();
            if st.phase != Phase::Connected {
                return Err(Errno::EINVAL);
            }
            if st.queue.is_empty() {
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
                if st.shutdown & RCV_SHUTDOWN != 0 {
                    return Ok(got);
                }
                return Err(Errno::EAGAIN);
            }
            let first_creds = st.queue[0].creds;
            got.from = st.queue[0].from.clone();
            if passcred {
                got.credentials = Some(first_creds.unwrap_or(UNRECORDED_CREDENTIALS));
            }
            // Peeking walks the queue; reading takes from its head.
            let mut index = 0;
            let mut visited = 0;
            while index < st.queue.len() && got.len < buf.len() {
                let message = &mut st.queue[index];
                // With credentials asked for, data from different senders is not glued.
                if passcred && visited > 0 && message.creds != first_creds {
                    break;
                }
                visited += 1;
                let unread = message.unread();
                let n = unread.len().min(buf.len() - got.len);
                buf[got.len..got.len + n].copy_from_slice(&unread[..n]);
                got.len += n;
                let carried_rights = !message.rights.is_empty();
                if peek {
                    got.rights.extend(message.rights.iter().cloned());
                    index += 1;
                } else {
                    got.rights.append(&mut message.rights);
                    message.consumed += n;
                    if message.unread().is_empty() {
                        finished.extend(st.queue.pop_front());
                    } else {
                        break;
                    }
                }
                // A read ends after the data that brought descriptors.
                if carried_rights {
                    break;
                }
            }
        }
        got.full_len = got.len;
        drop(finished);
        Ok(got)
    }

    fn recv_datagram(&self, buf: &mut [u8], flags: u32) -> KResult<Received> {
        if flags & MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let peek = flags & MSG_PEEK != 0;
        let passcred = self.passcred();
        let (got, taken, was_full) = {
            let mut st = self.state.lock();
            if self.kind == Kind::SeqPacket && st.phase != Phase::Connected {
                return Err(Errno::ENOTCONN);
            }
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            let was_full = st.queue.len() > MAX_DGRAM_QLEN;
            let Some(message) = st.queue.front_mut() else {
                // End of file for a seqpacket socket whose peer is gone or that shut
                // reading down; a blocking datagram receive returns 0 then too.
                let eof = st.shutdown & RCV_SHUTDOWN != 0
                    && (self.kind == Kind::SeqPacket || flags & MSG_DONTWAIT == 0);
                return if eof {
                    Ok(Received::default())
                } else {
                    Err(Errno::EAGAIN)
                };
            };
            let n = message.data.len().min(buf.len());
            buf[..n].copy_from_slice(&message.data[..n]);
            let mut got = Received {
                len: n,
                full_len: message.data.len(),
                from: message.from.clone(),
                flags: if n < message.data.len() { MSG_TRUNC } else { 0 },
                rights: Vec::new(),
                credentials: passcred.then(|| message.creds.unwrap_or(UNRECORDED_CREDENTIALS)),
            };
            if peek {
                got.rights = message.rights.clone();
                (got, None, false)
            } else {
                got.rights = core::mem::take(&mut message.rights);
                (got, st.queue.pop_front(), was_full)
            }
        };
        drop(taken);
        if was_full {
            stamp(&self.drained);
        }
        Ok(got)
    }

    // ---- readiness ----

    /// Linux's `unix_poll` (streams) and `unix_dgram_poll` (datagrams, seqpacket).
    fn poll_mask(&self) -> u32 {
        let (mut mask, peer) = {
            let st = self.state.lock();
            let mut mask = 0;
            if st.error.is_some() {
                mask |= EPOLLERR;
            }
            if st.shutdown == SHUTDOWN_MASK {
                mask |= EPOLLHUP;
            }
            if st.shutdown & RCV_SHUTDOWN != 0 {
                mask |= EPOLLRDHUP | EPOLLIN | EPOLLRDNORM;
            }
            if !st.queue.is_empty() || !st.pending.is_empty() {
                mask |= EPOLLIN | EPOLLRDNORM;
            }
            if self.kind.connection_based() && st.phase == Phase::Unconnected {
                mask |= EPOLLHUP;
            }
            if st.phase != Phase::Listening && self.account.writable() {
                mask |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
            }
            let peer = st.peer.clone().filter(|_| self.kind != Kind::Stream);
            (mask, peer)
        };
        // A datagram socket whose peer's queue is full waits for room there, unless
        // that peer is connected back to it.
        if let Some(peer) = peer.filter(|p| !core::ptr::eq(Arc::as_ptr(p), self)) {
            let st = peer.state.lock();
            if !is(&st.peer, self) && st.queue.len() > MAX_DGRAM_QLEN {
                mask &= !(EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
            }
        }
        mask
    }

    fn generation(&self) -> Generation {
        let peer = self.state.lock().peer.clone();
        let drained = match (self.kind, peer) {
            (Kind::Stream, _) | (_, None) => 0,
            (_, Some(peer)) => peer.drained.load(Ordering::Acquire),
        };
        Generation {
            input: self.arrivals.load(Ordering::Acquire),
            output: self.account.room_stamp().max(drained),
            hangup: self.hangups.load(Ordering::Acquire),
        }
    }

    /// Bytes `FIONREAD` reports: everything queued on a connection, the next datagram
    /// on a datagram socket; `EINVAL` for a listener.
    fn input_queued(&self) -> KResult<usize> {
        let st = self.state.lock();
        if st.phase == Phase::Listening {
            return Err(Errno::EINVAL);
        }
        Ok(match self.kind {
            Kind::Datagram => st.queue.front().map_or(0, |m| m.data.len()),
            _ => st.queue.iter().map(|m| m.unread().len()).sum(),
        })
    }

    // ---- options ----

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> KResult<()> {
        if level != SOL_SOCKET {
            return Err(Errno::EOPNOTSUPP);
        }
        match name {
            SO_SNDBUF | SO_SNDBUFFORCE => {
                let size = buffer_size(value, name == SO_SNDBUF, MIN_SNDBUF)?;
                self.account.set_sndbuf(size);
            }
            SO_RCVBUF | SO_RCVBUFFORCE => {
                self.state.lock().rcvbuf = buffer_size(value, name == SO_RCVBUF, MIN_RCVBUF)?;
            }
            SO_PASSCRED => {
                let on = value.get(..4).ok_or(Errno::EINVAL)? != [0, 0, 0, 0];
                self.options.update(|o| o.passcred = on);
            }
            _ => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }

    fn getsockopt(&self, level: i32, name: i32) -> KResult<Vec<u8>> {
        if level != SOL_SOCKET {
            return Err(Errno::EOPNOTSUPP);
        }
        let int = |v: i32| Ok(v.to_ne_bytes().to_vec());
        match name {
            SO_TYPE => int(self.kind.sock_type() as i32),
            SO_DOMAIN => int(i32::from(AF_UNIX)),
            SO_PROTOCOL => int(self.protocol),
            SO_SNDBUF => int(self.account.sndbuf() as i32),
            SO_RCVBUF => int(self.state.lock().rcvbuf as i32),
            SO_PASSCRED => int(self.passcred() as i32),
            SO_ACCEPTCONN => int((self.state.lock().phase == Phase::Listening) as i32),
            SO_ERROR => {
                let e = self.state.lock().error.take();
                int(e.map_or(0, |e| i32::from(e.code())))
            }
            SO_PEERCRED => {
                let creds = self.state.lock().peercred;
                Ok(creds.unwrap_or(NO_PEER_CREDENTIALS).to_bytes().to_vec())
            }
            // SO_PEERSEC needs a security module, which Skiff does not have.
            _ => Err(Errno::ENOPROTOOPT),
        }
    }
}

/// An open AF_UNIX socket: the device behind its open file. Closing the file (the last
/// reference to this) releases the socket.
pub struct UnixSocket {
    endpoint: Arc<Endpoint>,
}

impl UnixSocket {
    fn open(endpoint: Arc<Endpoint>, flags: u32) -> Arc<OpenFile> {
        let ino = endpoint.ino;
        socket_file(Arc::new(UnixSocket { endpoint }), ino, flags)
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        self.endpoint.release(false);
    }
}

impl Socket for UnixSocket {
    fn kind(&self) -> (u16, u32, i32) {
        (
            AF_UNIX,
            self.endpoint.kind.sock_type(),
            self.endpoint.protocol,
        )
    }

    fn bind(&self, addr: &SockAddr) -> KResult<()> {
        self.endpoint.bind(addr)
    }

    fn listen(&self, backlog: i32) -> KResult<()> {
        self.endpoint.listen(backlog)
    }

    fn accept(&self, flags: u32) -> KResult<(Arc<OpenFile>, SockAddr)> {
        self.endpoint.accept(flags)
    }

    fn connect(&self, addr: &SockAddr) -> KResult<()> {
        match self.endpoint.kind {
            Kind::Datagram => self.endpoint.connect_datagram(addr),
            _ => self.endpoint.connect_stream(addr),
        }
    }

    fn send(
        &self,
        data: &[u8],
        to: Option<&SockAddr>,
        flags: u32,
        ancillary: SendAncillary,
    ) -> KResult<usize> {
        match self.endpoint.kind {
            Kind::Stream => self.endpoint.send_stream(data, to, flags, ancillary),
            _ => self.endpoint.send_datagram(data, to, flags, ancillary),
        }
    }

    /// `MSG_DONTWAIT` tells a receive that its caller will not wait (the syscall layer
    /// adds it for `O_NONBLOCK` descriptors): a datagram socket shut down for reading
    /// then answers `EAGAIN` where a waiting caller gets 0, as on Linux.
    fn recv(&self, buf: &mut [u8], flags: u32) -> KResult<Received> {
        match self.endpoint.kind {
            Kind::Stream => self.endpoint.recv_stream(buf, flags),
            _ => self.endpoint.recv_datagram(buf, flags),
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        self.endpoint.shutdown(how)
    }

    fn local_addr(&self) -> KResult<SockAddr> {
        let name = self.endpoint.state.lock().name.clone();
        Ok(SockAddr::Unix(name.unwrap_or(UnixAddr::Unnamed)))
    }

    fn peer_addr(&self) -> KResult<SockAddr> {
        let peer = self.endpoint.state.lock().peer.clone();
        let peer = peer.ok_or(Errno::ENOTCONN)?;
        let name = peer.state.lock().name.clone();
        Ok(SockAddr::Unix(name.unwrap_or(UnixAddr::Unnamed)))
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> KResult<()> {
        self.endpoint.setsockopt(level, name, value)
    }

    fn getsockopt(&self, level: i32, name: i32) -> KResult<Vec<u8>> {
        self.endpoint.getsockopt(level, name)
    }

    fn options(&self) -> &SocketOptions {
        &self.endpoint.options
    }

    fn queued(&self) -> (usize, usize) {
        (
            self.endpoint.input_queued().unwrap_or(0),
            self.endpoint.account.wmem(),
        )
    }
}

impl CharDevice for UnixSocket {
    fn read(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        let flags = if nonblock { MSG_DONTWAIT } else { 0 };
        Ok(self.recv(buf, flags)?.len)
    }

    fn write(&self, buf: &[u8]) -> KResult<usize> {
        self.send(buf, None, 0, SendAncillary::default())
    }

    fn seekable(&self) -> bool {
        false
    }

    fn ioctl(&self, cmd: u32, _arg: &[u8]) -> KResult<IoctlOut> {
        let bytes = match cmd {
            FIONREAD => self.endpoint.input_queued()?,
            SIOCOUTQ => self.endpoint.account.wmem(),
            _ => return Err(Errno::ENOTTY),
        };
        let bytes = bytes.min(i32::MAX as usize) as i32;
        Ok(IoctlOut::CopyOut(bytes.to_ne_bytes().to_vec()))
    }

    fn read_ready(&self) -> bool {
        self.poll_mask() & (EPOLLIN | EPOLLERR | EPOLLHUP) != 0
    }

    fn write_ready(&self) -> bool {
        self.poll_mask() & (EPOLLOUT | EPOLLERR | EPOLLHUP) != 0
    }

    fn buffered(&self) -> Option<usize> {
        self.endpoint.input_queued().ok()
    }

    fn poll_mask(&self) -> u32 {
        self.endpoint.poll_mask()
    }

    fn generation(&self) -> Generation {
        self.endpoint.generation()
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn as_socket(&self) -> Option<&dyn Socket> {
        Some(self)
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(format!("socket:[{}]", self.endpoint.ino).into_bytes())
    }
}
