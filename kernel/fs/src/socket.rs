//! The socket contract: what every socket family offers the syscall layer, the
//! addresses and option values they exchange in Linux's exact layouts, and the open-file
//! wrapper that puts a socket in the descriptor table.
//!
//! Families implement [`Socket`] (AF_INET/AF_INET6 in `skiff-net`, AF_UNIX in
//! [`crate::unix`]) together with [`CharDevice`], whose `read`/`write` are `recv`/`send`
//! without flags and whose `poll_mask`/`generation` give readiness, so sockets work with
//! `read(2)`, `poll`, `select` and epoll like any other file.
//!
//! **Never blocking.** As with pipes, a socket operation that would have to wait
//! answers `EAGAIN` (`EINPROGRESS`/`EALREADY` for `connect`); the syscall layer, which
//! owns waiting, blocks callers whose descriptor is not `O_NONBLOCK` (and who did not pass
//! `MSG_DONTWAIT`) until [`CharDevice::poll_mask`] shows the condition, honouring
//! `SO_RCVTIMEO`/`SO_SNDTIMEO` from [`SocketOptions`]. Signals (`SIGPIPE` for `EPIPE`
//! without `MSG_NOSIGNAL`) are the syscall layer's too.
//!
//! **Wakeups.** A socket whose readiness changes stamps it ([`crate::Generation`]); the
//! code that changed it (the network stack's poll, a peer's send) then wakes I/O
//! waiters through the syscall layer's I/O event, as pipes do.

use crate::device::CharDevice;
use crate::file::OpenFile;
use crate::types::{makedev, OpenFlags, Stat, S_IFSOCK};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};
use spin::Mutex;

// ---- address families, types, protocols ----

pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;
pub const AF_PACKET: u16 = 17;

pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
pub const SOCK_RAW: u32 = 3;
pub const SOCK_SEQPACKET: u32 = 5;
/// `socket`/`socketpair`/`accept4` type flags.
pub const SOCK_NONBLOCK: u32 = OpenFlags::O_NONBLOCK;
pub const SOCK_CLOEXEC: u32 = OpenFlags::O_CLOEXEC;
/// The bits of the `type` argument that select the type (the rest are flags).
pub const SOCK_TYPE_MASK: u32 = 0xf;

pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_ICMP: i32 = 1;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_IPV6: i32 = 41;

// ---- send/recv flags ----

pub const MSG_OOB: u32 = 0x1;
pub const MSG_PEEK: u32 = 0x2;
pub const MSG_DONTROUTE: u32 = 0x4;
pub const MSG_CTRUNC: u32 = 0x8;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_EOR: u32 = 0x80;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_CONFIRM: u32 = 0x800;
pub const MSG_ERRQUEUE: u32 = 0x2000;
pub const MSG_NOSIGNAL: u32 = 0x4000;
pub const MSG_MORE: u32 = 0x8000;
pub const MSG_WAITFORONE: u32 = 0x10000;
pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;

pub const SHUT_RD: u32 = 0;
pub const SHUT_WR: u32 = 1;
pub const SHUT_RDWR: u32 = 2;

// ---- option levels and names ----

pub const SOL_SOCKET: i32 = 1;
pub const SOL_TCP: i32 = IPPROTO_TCP;
pub const SOL_UDP: i32 = IPPROTO_UDP;
pub const SOL_IP: i32 = IPPROTO_IP;
pub const SOL_IPV6: i32 = IPPROTO_IPV6;

pub const SO_DEBUG: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_DONTROUTE: i32 = 5;
pub const SO_BROADCAST: i32 = 6;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_OOBINLINE: i32 = 10;
pub const SO_NO_CHECK: i32 = 11;
pub const SO_PRIORITY: i32 = 12;
pub const SO_LINGER: i32 = 13;
pub const SO_BSDCOMPAT: i32 = 14;
pub const SO_REUSEPORT: i32 = 15;
pub const SO_PASSCRED: i32 = 16;
pub const SO_PEERCRED: i32 = 17;
pub const SO_RCVLOWAT: i32 = 18;
pub const SO_SNDLOWAT: i32 = 19;
pub const SO_RCVTIMEO: i32 = 20;
pub const SO_SNDTIMEO: i32 = 21;
pub const SO_BINDTODEVICE: i32 = 25;
pub const SO_TIMESTAMP: i32 = 29;
pub const SO_ACCEPTCONN: i32 = 30;
pub const SO_PEERSEC: i32 = 31;
pub const SO_SNDBUFFORCE: i32 = 32;
pub const SO_RCVBUFFORCE: i32 = 33;
pub const SO_PROTOCOL: i32 = 38;
pub const SO_DOMAIN: i32 = 39;

pub const TCP_NODELAY: i32 = 1;
pub const TCP_MAXSEG: i32 = 2;
pub const TCP_CORK: i32 = 3;
pub const TCP_KEEPIDLE: i32 = 4;
pub const TCP_KEEPINTVL: i32 = 5;
pub const TCP_KEEPCNT: i32 = 6;
pub const TCP_SYNCNT: i32 = 7;
pub const TCP_LINGER2: i32 = 8;
pub const TCP_DEFER_ACCEPT: i32 = 9;
pub const TCP_WINDOW_CLAMP: i32 = 10;
pub const TCP_INFO: i32 = 11;
pub const TCP_QUICKACK: i32 = 12;
pub const TCP_CONGESTION: i32 = 13;
pub const TCP_USER_TIMEOUT: i32 = 18;
pub const TCP_FASTOPEN: i32 = 23;

pub const IP_TOS: i32 = 1;
pub const IP_TTL: i32 = 2;
pub const IP_RECVERR: i32 = 11;
pub const IP_MTU_DISCOVER: i32 = 10;
pub const IPV6_V6ONLY: i32 = 26;

/// `SCM_RIGHTS` control messages carry descriptors (AF_UNIX).
pub const SCM_RIGHTS: i32 = 1;
/// `SCM_CREDENTIALS` control messages carry `struct ucred`.
pub const SCM_CREDENTIALS: i32 = 2;

/// `sizeof(struct sockaddr_storage)`: the largest address a caller needs room for.
pub const SOCKADDR_STORAGE_SIZE: usize = 128;
/// `sizeof(sun_path)`.
pub const UNIX_PATH_MAX: usize = 108;

// ---- addresses ----

/// An AF_UNIX address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// No name (an unbound socket, or one end of a `socketpair`).
    Unnamed,
    /// A path in the file system (without the terminating NUL).
    Path(Vec<u8>),
    /// A name in the abstract namespace (the bytes after the leading NUL).
    Abstract(Vec<u8>),
}

/// A socket address, decoded from and encoded to Linux's `struct sockaddr_*` layouts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SockAddr {
    /// `AF_UNSPEC` (used to dissolve a datagram socket's association in `connect`).
    Unspec,
    /// `struct sockaddr_in`: address in network order as four bytes, port in host order.
    Inet {
        addr: [u8; 4],
        port: u16,
    },
    /// `struct sockaddr_in6`.
    Inet6 {
        addr: [u8; 16],
        port: u16,
        flowinfo: u32,
        scope_id: u32,
    },
    Unix(UnixAddr),
}

impl SockAddr {
    /// Decode `bytes` (the caller's `addr`, `addrlen` bytes long). `EINVAL` for a length
    /// that does not fit the family, `EAFNOSUPPORT` for an unknown family.
    pub fn decode(bytes: &[u8]) -> KResult<SockAddr> {
        if bytes.len() < 2 {
            return Err(Errno::EINVAL);
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        match family {
            AF_UNSPEC => Ok(SockAddr::Unspec),
            AF_INET => {
                if bytes.len() < 16 {
                    return Err(Errno::EINVAL);
                }
                Ok(SockAddr::Inet {
                    port: u16::from_be_bytes([bytes[2], bytes[3]]),
                    addr: [bytes[4], bytes[5], bytes[6], bytes[7]],
                })
            }
            AF_INET6 => {
                // Linux accepts the old 24-byte form without scope id.
                if bytes.len() < 24 {
                    return Err(Errno::EINVAL);
                }
                let mut addr = [0u8; 16];
                addr.copy_from_slice(&bytes[8..24]);
                let scope_id = if bytes.len() >= 28 {
                    u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]])
                } else {
                    0
                };
                Ok(SockAddr::Inet6 {
                    port: u16::from_be_bytes([bytes[2], bytes[3]]),
                    flowinfo: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
                    addr,
                    scope_id,
                })
            }
            AF_UNIX => {
                let path = &bytes[2..bytes.len().min(2 + UNIX_PATH_MAX)];
                if bytes.len() > 2 + UNIX_PATH_MAX {
                    return Err(Errno::EINVAL);
                }
                if path.is_empty() {
                    return Ok(SockAddr::Unix(UnixAddr::Unnamed));
                }
                if path[0] == 0 {
                    return Ok(SockAddr::Unix(UnixAddr::Abstract(path[1..].to_vec())));
                }
                // A path ends at its first NUL (Linux tolerates a missing terminator).
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                Ok(SockAddr::Unix(UnixAddr::Path(path[..end].to_vec())))
            }
            _ => Err(Errno::EAFNOSUPPORT),
        }
    }

    /// The address family.
    pub fn family(&self) -> u16 {
        match self {
            SockAddr::Unspec => AF_UNSPEC,
            SockAddr::Inet { .. } => AF_INET,
            SockAddr::Inet6 { .. } => AF_INET6,
            SockAddr::Unix(_) => AF_UNIX,
        }
    }

    /// Linux's encoding: the bytes `getsockname`, `accept` and `recvfrom` copy out (the
    /// caller truncates to the user's buffer and reports this full length).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.family().to_ne_bytes());
        match self {
            SockAddr::Unspec => {}
            SockAddr::Inet { addr, port } => {
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(addr);
                out.extend_from_slice(&[0; 8]);
            }
            SockAddr::Inet6 {
                addr,
                port,
                flowinfo,
                scope_id,
            } => {
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&flowinfo.to_be_bytes());
                out.extend_from_slice(addr);
                out.extend_from_slice(&scope_id.to_ne_bytes());
            }
            SockAddr::Unix(UnixAddr::Unnamed) => {}
            SockAddr::Unix(UnixAddr::Path(p)) => {
                out.extend_from_slice(p);
                out.push(0);
            }
            SockAddr::Unix(UnixAddr::Abstract(name)) => {
                out.push(0);
                out.extend_from_slice(name);
            }
        }
        out
    }
}

// ---- messages ----

/// Credentials as `SO_PEERCRED` and `SCM_CREDENTIALS` report them (`struct ucred`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Ucred {
    pub const SIZE: usize = 12;
    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.pid.to_ne_bytes());
        b[4..8].copy_from_slice(&self.uid.to_ne_bytes());
        b[8..12].copy_from_slice(&self.gid.to_ne_bytes());
        b
    }
}

/// What a `sendmsg` carries besides its data.
#[derive(Default)]
pub struct SendAncillary {
    /// `SCM_RIGHTS`: open files to pass (AF_UNIX only; other families answer
    /// `EINVAL`, as Linux's inet sockets do).
    pub rights: Vec<Arc<OpenFile>>,
    /// `SCM_CREDENTIALS`, if the sender attached them.
    pub credentials: Option<Ucred>,
}

/// The result of one non-blocking receive.
#[derive(Default)]
pub struct Received {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The datagram's full length (`MSG_TRUNC` in the flags returns this instead of
    /// `len` for datagram sockets); equals `len` for streams.
    pub full_len: usize,
    /// The sender (datagram sockets, and `recvfrom` on AF_UNIX); `None` for connected
    /// stream sockets, which report nothing.
    pub from: Option<SockAddr>,
    /// `msg_flags` to report: `MSG_TRUNC` when a datagram did not fit, `MSG_CTRUNC`
    /// when control data did not.
    pub flags: u32,
    /// `SCM_RIGHTS` descriptors that arrived with the data.
    pub rights: Vec<Arc<OpenFile>>,
    /// `SCM_CREDENTIALS` (only when `SO_PASSCRED` is on).
    pub credentials: Option<Ucred>,
}

/// A socket of any family. Every method is non-blocking (see the module docs). Option
/// values are the raw bytes of the caller's `optval`; the syscall layer copies them in
/// and copies results out (truncated to the caller's `optlen`).
pub trait Socket: Send + Sync {
    /// `(family, type, protocol)` as `SO_DOMAIN`, `SO_TYPE`, `SO_PROTOCOL` report them.
    fn kind(&self) -> (u16, u32, i32);
    fn bind(&self, addr: &SockAddr) -> KResult<()>;
    /// Start accepting; `backlog` as the caller gave it (the family clamps it).
    fn listen(&self, backlog: i32) -> KResult<()>;
    /// Take one established connection: a new open file (with `flags`: `O_NONBLOCK`)
    /// and the peer's address. `EAGAIN` when none is queued, `EINVAL` when not
    /// listening.
    fn accept(&self, flags: u32) -> KResult<(Arc<OpenFile>, SockAddr)>;
    /// Linux's non-blocking `connect`: the first call starts it (`EINPROGRESS` when it
    /// cannot finish at once), later calls answer `EALREADY` while it is under way,
    /// `Ok` once (when it has completed) and `EISCONN` after that; a failed attempt
    /// reports its error (`ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH`). Datagram
    /// sockets set their default peer (`SockAddr::Unspec` dissolves it).
    fn connect(&self, addr: &SockAddr) -> KResult<()>;
    /// Queue `data` (the gathered iovecs) for `to` (datagram sockets; `None` for
    /// the connected peer). Returns the bytes taken: a stream takes what fits, a
    /// datagram all or nothing. `EAGAIN` if nothing fits now; `EPIPE` after shutdown
    /// of the sending side or the peer's reset on a stream; `ENOTCONN`,
    /// `EDESTADDRREQ`, `EMSGSIZE` as Linux.
    fn send(
        &self,
        data: &[u8],
        to: Option<&SockAddr>,
        flags: u32,
        ancillary: SendAncillary,
    ) -> KResult<usize>;
    /// Receive into `buf` (`MSG_PEEK` leaves the data queued). Streams at end of file
    /// return `len == 0`. `EAGAIN` if nothing is queued; `ECONNRESET` once after a reset;
    /// `ENOTCONN` for an unconnected stream.
    fn recv(&self, buf: &mut [u8], flags: u32) -> KResult<Received>;
    fn shutdown(&self, how: u32) -> KResult<()>;
    /// `getsockname`.
    fn local_addr(&self) -> KResult<SockAddr>;
    /// `getpeername`: `ENOTCONN` when not connected.
    fn peer_addr(&self) -> KResult<SockAddr>;
    /// Options the family itself implements (`IPPROTO_TCP`, `SO_RCVBUF` sizing,
    /// `SO_ERROR`...). Return `Err(ENOPROTOOPT)` for options it does not know; the syscall
    /// layer answers generic `SOL_SOCKET` options from [`SocketOptions`] before asking.
    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> KResult<()>;
    fn getsockopt(&self, level: i32, name: i32) -> KResult<Vec<u8>>;
    /// The options every socket keeps the same way.
    fn options(&self) -> &SocketOptions;
    /// Bytes waiting to be read (`FIONREAD`/`SIOCINQ`) and waiting to be sent
    /// (`SIOCOUTQ`).
    fn queued(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// Generic `SOL_SOCKET` options, kept alike for every family: timeouts the syscall layer
/// applies while blocking, and flags that are recorded and reported back.
#[derive(Default)]
pub struct SocketOptions {
    inner: Mutex<OptionValues>,
}

/// The recorded values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionValues {
    /// `SO_RCVTIMEO` in nanoseconds (0: wait for ever).
    pub rcvtimeo_ns: u64,
    /// `SO_SNDTIMEO` in nanoseconds (0: wait for ever).
    pub sndtimeo_ns: u64,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub keepalive: bool,
    pub broadcast: bool,
    pub oobinline: bool,
    pub passcred: bool,
    pub timestamp: bool,
    pub priority: i32,
    pub rcvlowat: i32,
    /// `SO_LINGER`: `(l_onoff, l_linger)`.
    pub linger: (i32, i32),
}

impl SocketOptions {
    pub fn new() -> SocketOptions {
        SocketOptions {
            inner: Mutex::new(OptionValues {
                rcvlowat: 1,
                ..OptionValues::default()
            }),
        }
    }

    pub fn get(&self) -> OptionValues {
        *self.inner.lock()
    }

    pub fn update(&self, f: impl FnOnce(&mut OptionValues)) {
        f(&mut self.inner.lock())
    }
}

/// A unique inode number for a new socket, as Linux's sockfs hands them out (what
/// `fstat` and `/proc/self/fd` show: `socket:[ino]`).
pub fn next_socket_ino() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(10_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What `fstat` reports for a socket: sockfs's device, a per-socket inode, `S_IFSOCK`
/// with mode 0777.
pub fn socket_stat(ino: u64) -> Stat {
    Stat {
        dev: makedev(0, 8),
        ino,
        nlink: 1,
        mode: S_IFSOCK | 0o777,
        blksize: 4096,
        ..Stat::default()
    }
}

/// An open file for the socket `device` (which must answer [`CharDevice::as_socket`]),
/// read-write, with `flags` (`O_NONBLOCK`) as its status flags.
pub fn socket_file(device: Arc<dyn CharDevice>, ino: u64, flags: u32) -> Arc<OpenFile> {
    debug_assert!(device.as_socket().is_some());
    let status = OpenFlags::O_RDWR | (flags & OpenFlags::O_NONBLOCK);
    OpenFile::detached_device(device, OpenFlags(status), socket_stat(ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_round_trip_in_linux_layout() {
        let a = SockAddr::Inet {
            addr: [127, 0, 0, 1],
            port: 8080,
        };
        let bytes = a.encode();
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..8], &[2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
        assert_eq!(SockAddr::decode(&bytes).unwrap(), a);
        assert_eq!(SockAddr::decode(&bytes[..15]), Err(Errno::EINVAL));
    }

    #[test]
    fn inet6_addresses_round_trip() {
        let a = SockAddr::Inet6 {
            addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            port: 443,
            flowinfo: 0,
            scope_id: 3,
        };
        let bytes = a.encode();
        assert_eq!(bytes.len(), 28);
        assert_eq!(SockAddr::decode(&bytes).unwrap(), a);
    }

    #[test]
    fn unix_addresses_decode_paths_abstract_names_and_unnamed() {
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/tmp/s\0junk");
        assert_eq!(
            SockAddr::decode(&b).unwrap(),
            SockAddr::Unix(UnixAddr::Path(b"/tmp/s".to_vec()))
        );
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(b"\0name");
        assert_eq!(
            SockAddr::decode(&b).unwrap(),
            SockAddr::Unix(UnixAddr::Abstract(b"name".to_vec()))
        );
        assert_eq!(
            SockAddr::decode(&AF_UNIX.to_ne_bytes()).unwrap(),
            SockAddr::Unix(UnixAddr::Unnamed)
        );
        let long = [b'a'; 200];
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(&long);
        assert_eq!(SockAddr::decode(&b), Err(Errno::EINVAL));
        assert_eq!(
            SockAddr::Unix(UnixAddr::Path(b"/x".to_vec())).encode(),
            [1, 0, b'/', b'x', 0]
        );
    }

    #[test]
    fn unknown_families_are_not_supported() {
        assert_eq!(SockAddr::decode(&[99, 0, 0, 0]), Err(Errno::EAFNOSUPPORT));
        assert_eq!(SockAddr::decode(&[2]), Err(Errno::EINVAL));
    }
}
