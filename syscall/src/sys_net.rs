//! Socket system calls: decode the registers and the user structures, call the socket
//! family through [`skiff_fs::Socket`], wait where Linux would block, encode.
//!
//! Families never block (see `skiff_fs::socket`): an operation that cannot proceed
//! answers `EAGAIN` (`EINPROGRESS`/`EALREADY` for `connect`) and this layer parks the
//! caller on the I/O wait queue until the socket's readiness changes, unless the
//! descriptor is `O_NONBLOCK` or the call passed `MSG_DONTWAIT`. `SO_RCVTIMEO` and
//! `SO_SNDTIMEO` bound those waits (`EAGAIN` when they expire, `EINPROGRESS` for
//! `connect`); a signal ends them with `EINTR` when a timeout is set and restarts the
//! call otherwise (`SA_RESTART` permitting), as Linux's `sock_intr_errno` does. A call
//! that has already moved data returns the count instead of an error.
//!
//! After every call that changed a socket, I/O waiters are woken: the peer of an
//! AF_UNIX or loopback connection may be waiting for exactly this.
//!
//! Generic `SOL_SOCKET` options are recorded here in the socket's
//! [`SocketOptions`](skiff_fs::socket::SocketOptions) and then offered to the family as
//! well, which may act on them (keep-alive timers, lingering close); reads ask the
//! family first and fall back to the recorded value.

use crate::args::{read_iovecs, Args, IoVec, UserPtr};
use crate::process::current;
use crate::sockmsg::{
    self, ControlMessage, ControlWriter, MsgHdr, MMSGHDR_SIZE, MMSG_LEN_OFFSET, MSGHDR_SIZE,
    MSG_CONTROLLEN_OFFSET, MSG_FLAGS_OFFSET, MSG_NAMELEN_OFFSET,
};
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_arch::time;
use skiff_errno::{Errno, KResult};
use skiff_fs::socket::*;
use skiff_fs::{OpenFile, OpenFlags};

/// Longest socket address a caller may pass (`sizeof(struct sockaddr_storage)`).
const MAX_ADDR_LEN: usize = SOCKADDR_STORAGE_SIZE;
/// `sizeof(struct sockaddr_in)`, the shortest address an AF_INET socket reads.
const SOCKADDR_IN_SIZE: usize = 16;
/// Largest piece of a stream moved between application memory and a socket in one
/// step (the kernel buffer of one send or receive).
const STREAM_CHUNK: usize = 256 * 1024;
/// Largest datagram this layer copies in or out in one piece; larger ones are
/// `EMSGSIZE` (Linux's limits are smaller still: 64 KiB for UDP, the send buffer for
/// AF_UNIX).
const MAX_DATAGRAM: usize = 4 << 20;
/// Largest control buffer `sendmsg` accepts (Linux's default `optmem_max`).
const MAX_CONTROL: usize = 20480;
/// Largest option value copied in.
const MAX_OPTION: usize = 256;
/// `sendmmsg`/`recvmmsg` handle at most this many messages per call (`UIO_MAXIOV`).
const MAX_MMSG: usize = 1024;

fn file(fd: i32) -> KResult<Arc<OpenFile>> {
    current().fs.fds.lock().get(fd)
}

/// The open file behind `fd` if it is a socket: `EBADF` for no descriptor, `ENOTSOCK`
/// for another kind of file.
fn socket_file(fd: i32) -> KResult<Arc<OpenFile>> {
    let f = file(fd)?;
    if f.socket().is_none() {
        return Err(Errno::ENOTSOCK);
    }
    Ok(f)
}

fn sock(f: &OpenFile) -> &dyn Socket {
    f.socket().expect("socket_file checked this is a socket")
}

fn install(f: Arc<OpenFile>, cloexec: bool) -> KResult<i32> {
    current().fs.fds.lock().insert(f, cloexec)
}

/// Decode the caller's socket address (`len` bytes at `ptr`) for a socket of `family`.
/// An address of a family Skiff does not know is `EAFNOSUPPORT`, except for AF_UNIX
/// sockets, which answer `EINVAL` to any foreign address, as Linux's do. An AF_INET
/// socket judges any address by its own rules first, as Linux's `inet_bind`,
/// `tcp_v4_connect` and `udp_sendmsg` do: shorter than a `sockaddr_in` is `EINVAL`,
/// another family (AF_UNSPEC aside) `EAFNOSUPPORT`, even where that family's own
/// layout would be too short.
fn read_addr(family: u16, ptr: UserPtr, len: u32) -> KResult<SockAddr> {
    let len = len as usize;
    if len > MAX_ADDR_LEN {
        return Err(Errno::EINVAL);
    }
    let bytes = ptr.read_bytes(len)?;
    if family == AF_INET {
        if let Some(e) = foreign_to_inet(&bytes) {
            return Err(e);
        }
    }
    match SockAddr::decode(&bytes) {
        Err(Errno::EAFNOSUPPORT) if family == AF_UNIX => Err(Errno::EINVAL),
        r => r,
    }
}

/// What an AF_INET socket answers to an address of another family (`None`: it is
/// AF_INET or AF_UNSPEC, or too short to have a family, which decoding reports).
fn foreign_to_inet(bytes: &[u8]) -> Option<Errno> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    if family == AF_INET || family == AF_UNSPEC {
        return None;
    }
    Some(if bytes.len() < SOCKADDR_IN_SIZE {
        Errno::EINVAL
    } else {
        Errno::EAFNOSUPPORT
    })
}

fn family_of(f: &OpenFile) -> u16 {
    sock(f).kind().0
}

/// Copy `addr` out the way Linux's `move_addr_to_user` does: at most the caller's
/// `*len_ptr` bytes, then `*len_ptr` = the address's full length (0 for none). Nothing
/// happens when `addr_ptr` is null.
fn write_addr(addr_ptr: UserPtr, len_ptr: UserPtr, addr: Option<&SockAddr>) -> KResult<()> {
    if addr_ptr.is_null() {
        return Ok(());
    }
    let room: i32 = len_ptr.read()?;
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let bytes = addr.map(SockAddr::encode).unwrap_or_default();
    let n = bytes.len().min(room as usize);
    addr_ptr.write_bytes(&bytes[..n])?;
    len_ptr.write(&(bytes.len() as u32))
}

/// The caller's `*addrlen` before the call, checked (`EINVAL` if negative).
fn check_addr_len(addr_ptr: UserPtr, len_ptr: UserPtr) -> KResult<()> {
    if !addr_ptr.is_null() && len_ptr.read::<i32>()? < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

// ---- waiting ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// How a call may wait: not at all, or until a deadline (or for ever).
struct Waiting {
    nonblocking: bool,
    deadline: Option<u64>,
    /// A timeout option bounds the wait: a signal then ends it with `EINTR`.
    timed: bool,
}

impl Waiting {
    fn new(file: &OpenFile, flags: u32, want: Want) -> Waiting {
        let nonblocking =
            flags & MSG_DONTWAIT != 0 || file.status_flags() & OpenFlags::O_NONBLOCK != 0;
        let options = sock(file).options().get();
        let timeout = match want {
            Want::Read => options.rcvtimeo_ns,
            Want::Write => options.sndtimeo_ns,
        };
        Waiting {
            nonblocking,
            deadline: (timeout != 0).then(|| time::monotonic_ns().saturating_add(timeout)),
            timed: timeout != 0,
        }
    }

    /// Park until `file` is ready for `want` and an I/O event has happened since the
    /// operation that answered `EAGAIN` began (`since`, from
    /// [`crate::wait::io_generation`]). The second condition matters when the socket
    /// looks ready but the operation waits on another one (an AF_UNIX connect to a full
    /// backlog, a datagram to a full receiver): it sleeps until something changes
    /// instead of spinning. `EAGAIN` when the timeout expired first; `EINTR`/restart
    /// when a signal arrived.
    fn wait(&self, file: &OpenFile, want: Want, since: u64) -> KResult<()> {
        let interrupted = if self.timed {
            Errno::EINTR
        } else {
            Errno::ERESTARTSYS
        };
        let ready = crate::wait::wait_io(self.deadline, interrupted, || {
            let (r, w) = file.poll_ready();
            let own = match want {
                Want::Read => r,
                Want::Write => w,
            };
            own && crate::wait::io_generation() != since
        })?;
        if ready {
            Ok(())
        } else {
            Err(Errno::EAGAIN)
        }
    }

    /// Run `op` until it stops answering `EAGAIN` or waiting ends.
    fn retry<T>(
        &self,
        file: &OpenFile,
        want: Want,
        mut op: impl FnMut() -> KResult<T>,
    ) -> KResult<T> {
        loop {
            let since = crate::wait::io_generation();
            match op() {
                Err(Errno::EAGAIN) if !self.nonblocking => self.wait(file, want, since)?,
                r => return r,
            }
        }
    }
}

/// A socket call changed something another thread may be waiting for.
fn changed() {
    crate::wait::io_event();
}

// ---- creating and connecting ----

/// The type argument of `socket`/`socketpair`: (type, flags); unknown flag bits are
/// `EINVAL`.
fn split_type(raw: u32) -> KResult<(u32, u32)> {
    let flags = raw & !SOCK_TYPE_MASK;
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok((raw & SOCK_TYPE_MASK, flags))
}

pub fn socket(a: &Args) -> KResult<u64> {
    let (ty, flags) = split_type(a.u32(1))?;
    let protocol = a.int(2);
    let file = match u16::try_from(a.int(0)) {
        Ok(AF_UNIX) => skiff_fs::unix::socket(&current().fs, ty, protocol, flags)?,
        Ok(family @ (AF_INET | AF_INET6)) => {
            crate::net::stack()?.socket(family, ty, protocol, flags)?
        }
        _ => return Err(Errno::EAFNOSUPPORT),
    };
    Ok(install(file, flags & SOCK_CLOEXEC != 0)? as u64)
}

pub fn socketpair(a: &Args) -> KResult<u64> {
    let (ty, flags) = split_type(a.u32(1))?;
    let out = a.ptr(3);
    out.check(8)?;
    let (first, second) = match u16::try_from(a.int(0)) {
        Ok(AF_UNIX) => skiff_fs::unix::socketpair_in(&current().fs, ty, a.int(2), flags)?,
        // Linux's inet families have no socketpair.
        Ok(AF_INET | AF_INET6) => return Err(Errno::EOPNOTSUPP),
        _ => return Err(Errno::EAFNOSUPPORT),
    };
    let cloexec = flags & SOCK_CLOEXEC != 0;
    let p = current();
    let mut fds = p.fs.fds.lock();
    let fd0 = fds.insert(first, cloexec)?;
    let fd1 = match fds.insert(second, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = fds.close(fd0);
            return Err(e);
        }
    };
    drop(fds);
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&fd0.to_ne_bytes());
    pair[4..].copy_from_slice(&fd1.to_ne_bytes());
    if let Err(e) = out.write_bytes(&pair) {
        let p = current();
        let mut fds = p.fs.fds.lock();
        let _ = fds.close(fd0);
        let _ = fds.close(fd1);
        return Err(e);
    }
    Ok(0)
}

pub fn bind(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let addr = read_addr(family_of(&f), a.ptr(1), a.u32(2))?;
    sock(&f).bind(&addr)?;
    crate::net::announce_listening();
    Ok(0)
}

pub fn listen(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    sock(&f).listen(a.int(1))?;
    crate::net::announce_listening();
    changed();
    Ok(0)
}

fn accept_common(a: &Args, flags: u32) -> KResult<u64> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = socket_file(a.fd(0)?)?;
    let (addr_ptr, len_ptr) = (a.ptr(1), a.ptr(2));
    check_addr_len(addr_ptr, len_ptr)?;
    let waiting = Waiting::new(&f, 0, Want::Read);
    let (new_file, peer) =
        waiting.retry(&f, Want::Read, || sock(&f).accept(flags & SOCK_NONBLOCK))?;
    changed();
    let fd = install(new_file, flags & SOCK_CLOEXEC != 0)?;
    if let Err(e) = write_addr(addr_ptr, len_ptr, Some(&peer)) {
        // As on Linux, a connection whose address cannot be delivered is dropped.
        let _ = current().fs.fds.lock().close(fd);
        return Err(e);
    }
    Ok(fd as u64)
}

pub fn accept(a: &Args) -> KResult<u64> {
    accept_common(a, 0)
}

pub fn accept4(a: &Args) -> KResult<u64> {
    accept_common(a, a.u32(3))
}

pub fn connect(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let addr = read_addr(family_of(&f), a.ptr(1), a.u32(2))?;
    let s = sock(&f);
    let waiting = Waiting::new(&f, 0, Want::Write);
    let mut since = crate::wait::io_generation();
    let mut result = s.connect(&addr);
    changed();
    // A blocking caller waits for the handshake (or, on AF_UNIX, for room in the
    // listener's backlog: `EAGAIN`); `EALREADY` comes from a connect that a signal
    // interrupted and `SA_RESTART` restarted: it goes on waiting, as on Linux.
    while matches!(
        result,
        Err(Errno::EINPROGRESS | Errno::EALREADY | Errno::EAGAIN)
    ) && !waiting.nonblocking
    {
        match waiting.wait(&f, Want::Write, since) {
            Ok(()) => {
                since = crate::wait::io_generation();
                result = s.connect(&addr);
            }
            // The send timeout expired with the handshake still under way.
            Err(Errno::EAGAIN) => return Err(Errno::EINPROGRESS),
            Err(e) => return Err(e),
        }
    }
    result.map(|()| 0)
}

pub fn shutdown(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let how = a.u32(1);
    if how > SHUT_RDWR {
        return Err(Errno::EINVAL);
    }
    sock(&f).shutdown(how)?;
    changed();
    Ok(0)
}

pub fn getsockname(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    check_addr_len(a.ptr(1), a.ptr(2))?;
    let addr = sock(&f).local_addr()?;
    write_addr(a.ptr(1), a.ptr(2), Some(&addr))?;
    Ok(0)
}

pub fn getpeername(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    check_addr_len(a.ptr(1), a.ptr(2))?;
    let addr = sock(&f).peer_addr()?;
    write_addr(a.ptr(1), a.ptr(2), Some(&addr))?;
    Ok(0)
}

// ---- data ----

/// Copy `len` bytes of the caller's iovecs, starting `skip` bytes in.
fn gather(iov: &[IoVec], mut skip: usize, len: usize) -> KResult<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    for v in iov {
        if out.len() == len {
            break;
        }
        let vlen = v.len as usize;
        if skip >= vlen {
            skip -= vlen;
            continue;
        }
        let take = (vlen - skip).min(len - out.len());
        let start = out.len();
        out.resize(start + take, 0);
        UserPtr(v.base)
            .offset(skip as u64)
            .read_into(&mut out[start..])?;
        skip = 0;
    }
    Ok(out)
}

/// Copy `data` into the caller's iovecs, starting `skip` bytes in.
fn scatter(iov: &[IoVec], mut skip: usize, mut data: &[u8]) -> KResult<()> {
    for v in iov {
        if data.is_empty() {
            break;
        }
        let vlen = v.len as usize;
        if skip >= vlen {
            skip -= vlen;
            continue;
        }
        let n = (vlen - skip).min(data.len());
        UserPtr(v.base)
            .offset(skip as u64)
            .write_bytes(&data[..n])?;
        data = &data[n..];
        skip = 0;
    }
    Ok(())
}

fn total_len(iov: &[IoVec]) -> usize {
    iov.iter().map(|v| v.len as usize).sum()
}

fn clone_ancillary(a: &SendAncillary) -> SendAncillary {
    SendAncillary {
        rights: a.rights.clone(),
        credentials: a.credentials,
    }
}

/// Send the caller's iovecs. Streams are moved piece by piece and a blocking caller
/// waits until everything is queued; other types send one message, whole or not at all.
fn send_iov(
    f: &OpenFile,
    iov: &[IoVec],
    to: Option<&SockAddr>,
    flags: u32,
    ancillary: SendAncillary,
) -> KResult<usize> {
    let s = sock(f);
    let total = total_len(iov);
    let waiting = Waiting::new(f, flags, Want::Write);
    // Families see `MSG_DONTWAIT` whenever the caller will not wait (some answer
    // differently: a datagram socket shut for reading says EAGAIN instead of 0).
    let nonblock_flag = if waiting.nonblocking { MSG_DONTWAIT } else { 0 };
    let result = if s.kind().1 != SOCK_STREAM {
        if total > MAX_DATAGRAM {
            return Err(Errno::EMSGSIZE);
        }
        let data = gather(iov, 0, total)?;
        waiting.retry(f, Want::Write, || {
            s.send(
                &data,
                to,
                flags | nonblock_flag,
                clone_ancillary(&ancillary),
            )
        })
    } else {
        let mut sent = 0;
        loop {
            let want = (total - sent).min(STREAM_CHUNK);
            let data = match gather(iov, sent, want) {
                Ok(d) => d,
                Err(e) if sent == 0 => break Err(e),
                Err(_) => break Ok(sent),
            };
            // Descriptors and credentials travel with the first byte.
            let extra = if sent == 0 {
                clone_ancillary(&ancillary)
            } else {
                SendAncillary::default()
            };
            let since = crate::wait::io_generation();
            match s.send(&data, to, flags | nonblock_flag, extra) {
                Ok(n) => {
                    sent += n;
                    changed();
                    if sent >= total {
                        break Ok(sent);
                    }
                }
                Err(Errno::EAGAIN) if !waiting.nonblocking => {
                    if let Err(e) = waiting.wait(f, Want::Write, since) {
                        break if sent > 0 { Ok(sent) } else { Err(e) };
                    }
                }
                Err(e) => break if sent > 0 { Ok(sent) } else { Err(e) },
            }
        }
    };
    changed();
    // Linux raises SIGPIPE for connection-oriented sockets only.
    let connected_kind = matches!(s.kind().1, SOCK_STREAM | SOCK_SEQPACKET);
    if result == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 && connected_kind {
        crate::sys_signal::raise_sigpipe();
    }
    result
}

/// Receive into the caller's iovecs. Returns the call's result (the datagram's full
/// length with `MSG_TRUNC` on datagram sockets) and what the family reported.
fn recv_iov(f: &OpenFile, iov: &[IoVec], flags: u32) -> KResult<(usize, Received)> {
    if flags & MSG_ERRQUEUE != 0 {
        // Skiff queues no errors (no ICMP error reporting, no timestamping).
        return Err(Errno::EAGAIN);
    }
    let s = sock(f);
    let stream = s.kind().1 == SOCK_STREAM;
    let total = total_len(iov);
    let cap = total.min(if stream { STREAM_CHUNK } else { MAX_DATAGRAM });
    let mut buf = Vec::new();
    buf.try_reserve_exact(cap).map_err(|_| Errno::ENOMEM)?;
    buf.resize(cap, 0);
    let waiting = Waiting::new(f, flags, Want::Read);
    let flags = if waiting.nonblocking {
        flags | MSG_DONTWAIT
    } else {
        flags
    };
    let mut first = waiting.retry(f, Want::Read, || s.recv(&mut buf, flags))?;
    changed();
    // MSG_TRUNC on a stream discards what it receives instead of copying it.
    let discard = stream && flags & MSG_TRUNC != 0;
    if !discard {
        scatter(iov, 0, &buf[..first.len])?;
    }
    let mut got = first.len;
    // MSG_WAITALL: a blocking stream receive goes on until the buffer is full, end of
    // file, an error or a signal; what arrived so far is the result in every case.
    let wait_all = stream && flags & (MSG_WAITALL | MSG_PEEK) == MSG_WAITALL;
    while wait_all && got < total && first.len > 0 && !waiting.nonblocking {
        let want = (total - got).min(STREAM_CHUNK);
        let r = match waiting.retry(f, Want::Read, || s.recv(&mut buf[..want], flags)) {
            Ok(r) if r.len > 0 => r,
            _ => break,
        };
        changed();
        if !discard {
            scatter(iov, got, &buf[..r.len])?;
        }
        got += r.len;
    }
    first.len = got;
    let result = if !stream && flags & MSG_TRUNC != 0 {
        first.full_len
    } else {
        got
    };
    Ok((result, first))
}

pub fn sendto(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let to = if a.ptr(4).is_null() {
        None
    } else {
        Some(read_addr(family_of(&f), a.ptr(4), a.u32(5))?)
    };
    let iov = [IoVec {
        base: a.ptr(1).addr(),
        len: a.usize(2) as u64,
    }];
    a.ptr(1).check(a.usize(2))?;
    Ok(send_iov(&f, &iov, to.as_ref(), a.u32(3), SendAncillary::default())? as u64)
}

pub fn recvfrom(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let (addr_ptr, len_ptr) = (a.ptr(4), a.ptr(5));
    check_addr_len(addr_ptr, len_ptr)?;
    a.ptr(1).check(a.usize(2))?;
    let iov = [IoVec {
        base: a.ptr(1).addr(),
        len: a.usize(2) as u64,
    }];
    let (n, r) = recv_iov(&f, &iov, a.u32(3))?;
    write_addr(addr_ptr, len_ptr, r.from.as_ref())?;
    Ok(n as u64)
}

/// Read and check a `msghdr`'s iovecs.
fn msg_iovecs(msg: &MsgHdr) -> KResult<Vec<IoVec>> {
    let iov = read_iovecs(UserPtr(msg.iov), msg.iovlen as usize)?;
    for v in &iov {
        UserPtr(v.base).check(v.len as usize)?;
    }
    Ok(iov)
}

fn read_msghdr(ptr: UserPtr) -> KResult<MsgHdr> {
    let mut raw = [0u8; MSGHDR_SIZE];
    ptr.read_into(&mut raw)?;
    Ok(MsgHdr::from_bytes(&raw))
}

/// `sendmsg` for one `msghdr` at `ptr`.
fn send_one(f: &OpenFile, ptr: UserPtr, flags: u32) -> KResult<usize> {
    let msg = read_msghdr(ptr)?;
    let to = if msg.name == 0 || msg.namelen == 0 {
        None
    } else {
        Some(read_addr(family_of(f), UserPtr(msg.name), msg.namelen)?)
    };
    let iov = msg_iovecs(&msg)?;
    let mut ancillary = SendAncillary::default();
    if msg.controllen > 0 {
        if msg.controllen as usize > MAX_CONTROL {
            return Err(Errno::ENOBUFS);
        }
        let control = UserPtr(msg.control).read_bytes(msg.controllen as usize)?;
        for m in sockmsg::parse_control(&control)? {
            match m {
                ControlMessage::Rights(fds) => {
                    let p = current();
                    let table = p.fs.fds.lock();
                    for fd in fds {
                        ancillary.rights.push(table.get(fd)?);
                    }
                }
                ControlMessage::Credentials(c) => ancillary.credentials = Some(c),
            }
        }
    }
    send_iov(f, &iov, to.as_ref(), flags, ancillary)
}

/// `recvmsg` for one `msghdr` at `ptr`; fills in its name, control and flags.
fn recv_one(f: &OpenFile, ptr: UserPtr, flags: u32) -> KResult<usize> {
    let msg = read_msghdr(ptr)?;
    if (msg.namelen as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let iov = msg_iovecs(&msg)?;
    let (n, r) = recv_iov(f, &iov, flags)?;
    // The sender's address, cut to the caller's room; its full length (0: none).
    let name = r.from.as_ref().map(SockAddr::encode).unwrap_or_default();
    if msg.name != 0 {
        let k = name.len().min(msg.namelen as usize);
        UserPtr(msg.name).write_bytes(&name[..k])?;
    }
    ptr.offset(MSG_NAMELEN_OFFSET)
        .write(&(if msg.name != 0 { name.len() as u32 } else { 0 }))?;
    let mut control = ControlWriter::new(if msg.control == 0 {
        0
    } else {
        msg.controllen as usize
    });
    if let Some(c) = r.credentials {
        control.push(SOL_SOCKET, SCM_CREDENTIALS, &c.to_bytes());
    }
    if !r.rights.is_empty() {
        // Install as many descriptors as fit; the rest are closed, as on Linux.
        let fit = (control.data_room() / 4).min(r.rights.len());
        if fit < r.rights.len() {
            control.truncated = true;
        }
        let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
        let mut fds = Vec::with_capacity(fit);
        for file in r.rights.into_iter().take(fit) {
            match install(file, cloexec) {
                Ok(fd) => fds.push(fd),
                Err(_) => {
                    control.truncated = true;
                    break;
                }
            }
        }
        if !fds.is_empty() {
            let bytes: Vec<u8> = fds.iter().flat_map(|fd| fd.to_ne_bytes()).collect();
            control.push(SOL_SOCKET, SCM_RIGHTS, &bytes);
        }
    }
    if !control.bytes.is_empty() {
        UserPtr(msg.control).write_bytes(&control.bytes)?;
    }
    ptr.offset(MSG_CONTROLLEN_OFFSET)
        .write(&(control.bytes.len() as u64))?;
    let mut out_flags = r.flags;
    if control.truncated {
        out_flags |= MSG_CTRUNC;
    }
    ptr.offset(MSG_FLAGS_OFFSET).write(&(out_flags as i32))?;
    Ok(n)
}

pub fn sendmsg(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    Ok(send_one(&f, a.ptr(1), a.u32(2))? as u64)
}

pub fn recvmsg(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    Ok(recv_one(&f, a.ptr(1), a.u32(2))? as u64)
}

pub fn sendmmsg(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let vec = a.ptr(1);
    let count = a.usize(2).min(MAX_MMSG);
    let flags = a.u32(3);
    let mut done = 0;
    while done < count {
        let entry = vec.offset((done * MMSGHDR_SIZE) as u64);
        match send_one(&f, entry, flags) {
            Ok(n) => entry.offset(MMSG_LEN_OFFSET).write(&(n as u32))?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
    }
    Ok(done as u64)
}

pub fn recvmmsg(a: &Args) -> KResult<u64> {
    const NSEC: i64 = 1_000_000_000;
    let f = socket_file(a.fd(0)?)?;
    let vec = a.ptr(1);
    let count = a.usize(2).min(MAX_MMSG);
    let mut flags = a.u32(3);
    let timeout_ptr = a.ptr(4);
    let deadline = if timeout_ptr.is_null() {
        None
    } else {
        let ts: [i64; 2] = timeout_ptr.read()?;
        if ts[0] < 0 || !(0..NSEC).contains(&ts[1]) {
            return Err(Errno::EINVAL);
        }
        let ns = ts[0].saturating_mul(NSEC).saturating_add(ts[1]) as u64;
        Some(time::monotonic_ns().saturating_add(ns))
    };
    let mut done = 0;
    while done < count {
        let entry = vec.offset((done * MMSGHDR_SIZE) as u64);
        match recv_one(&f, entry, flags) {
            Ok(n) => entry.offset(MMSG_LEN_OFFSET).write(&(n as u32))?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
        if flags & MSG_WAITFORONE != 0 {
            flags |= MSG_DONTWAIT;
        }
        // As on Linux, the timeout is only looked at between messages.
        if deadline.is_some_and(|d| time::monotonic_ns() >= d) {
            break;
        }
    }
    if let (Some(d), false) = (deadline, timeout_ptr.is_null()) {
        let left = d.saturating_sub(time::monotonic_ns()) as i64;
        timeout_ptr.write(&[left / NSEC, left % NSEC])?;
    }
    Ok(done as u64)
}

/// `read`/`readv` on a socket: a receive without flags.
pub fn read_socket(f: &OpenFile, iov: &[IoVec]) -> KResult<u64> {
    for v in iov {
        UserPtr(v.base).check(v.len as usize)?;
    }
    Ok(recv_iov(f, iov, 0)?.0 as u64)
}

/// `write`/`writev` on a socket: a send without flags (so `EPIPE` raises `SIGPIPE`).
pub fn write_socket(f: &OpenFile, iov: &[IoVec]) -> KResult<u64> {
    for v in iov {
        UserPtr(v.base).check(v.len as usize)?;
    }
    Ok(send_iov(f, iov, None, 0, SendAncillary::default())? as u64)
}

// ---- options ----

fn int_value(value: &[u8]) -> KResult<i32> {
    let bytes: [u8; 4] = value
        .get(..4)
        .ok_or(Errno::EINVAL)?
        .try_into()
        .expect("4 bytes");
    Ok(i32::from_ne_bytes(bytes))
}

/// `struct timeval` to nanoseconds for `SO_RCVTIMEO`/`SO_SNDTIMEO` (0: no timeout).
fn timeout_value(value: &[u8]) -> KResult<u64> {
    if value.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_ne_bytes(value[0..8].try_into().expect("8 bytes"));
    let usec = i64::from_ne_bytes(value[8..16].try_into().expect("8 bytes"));
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 {
        // Linux turns a negative timeout into "do not wait at all".
        return Ok(1);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(usec as u64 * 1000))
}

fn timeval_bytes(ns: u64) -> Vec<u8> {
    let mut v = ((ns / 1_000_000_000) as i64).to_ne_bytes().to_vec();
    v.extend_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_ne_bytes());
    v
}

/// Record a generic `SOL_SOCKET` option; `None` if `name` is not one of them.
///
/// `SO_PRIORITY` and `SO_RCVLOWAT` are recorded and reported back but change nothing:
/// Skiff has no queueing disciplines to prioritise, and receives wake up as soon as
/// any data is there.
fn set_generic(options: &SocketOptions, name: i32, value: &[u8]) -> Option<KResult<()>> {
    let flag = |set: fn(&mut OptionValues, bool)| -> KResult<()> {
        let on = int_value(value)? != 0;
        options.update(|o| set(o, on));
        Ok(())
    };
    Some(match name {
        SO_RCVTIMEO | SO_SNDTIMEO => timeout_value(value).map(|ns| {
            options.update(|o| {
                if name == SO_RCVTIMEO {
                    o.rcvtimeo_ns = ns
                } else {
                    o.sndtimeo_ns = ns
                }
            })
        }),
        SO_REUSEADDR => flag(|o, on| o.reuseaddr = on),
        SO_REUSEPORT => flag(|o, on| o.reuseport = on),
        SO_KEEPALIVE => flag(|o, on| o.keepalive = on),
        SO_BROADCAST => flag(|o, on| o.broadcast = on),
        SO_OOBINLINE => flag(|o, on| o.oobinline = on),
        SO_PASSCRED => flag(|o, on| o.passcred = on),
        SO_PRIORITY => int_value(value).map(|v| options.update(|o| o.priority = v)),
        SO_RCVLOWAT => int_value(value).map(|v| options.update(|o| o.rcvlowat = v.max(1))),
        SO_LINGER => {
            if value.len() < 8 {
                Err(Errno::EINVAL)
            } else {
                let on = int_value(&value[0..4]).expect("4 bytes");
                let secs = int_value(&value[4..8]).expect("4 bytes");
                options.update(|o| o.linger = (i32::from(on != 0), secs));
                Ok(())
            }
        }
        _ => return None,
    })
}

/// A generic option's value; `None` if `name` is not one of them.
fn get_generic(s: &dyn Socket, name: i32) -> Option<Vec<u8>> {
    let o = s.options().get();
    let (family, ty, protocol) = s.kind();
    let int = |v: i32| Some(v.to_ne_bytes().to_vec());
    match name {
        SO_RCVTIMEO => Some(timeval_bytes(o.rcvtimeo_ns)),
        SO_SNDTIMEO => Some(timeval_bytes(o.sndtimeo_ns)),
        SO_REUSEADDR => int(o.reuseaddr.into()),
        SO_REUSEPORT => int(o.reuseport.into()),
        SO_KEEPALIVE => int(o.keepalive.into()),
        SO_BROADCAST => int(o.broadcast.into()),
        SO_OOBINLINE => int(o.oobinline.into()),
        SO_PASSCRED => int(o.passcred.into()),
        SO_PRIORITY => int(o.priority),
        SO_RCVLOWAT => int(o.rcvlowat),
        SO_SNDLOWAT => int(1),
        SO_LINGER => {
            let mut v = o.linger.0.to_ne_bytes().to_vec();
            v.extend_from_slice(&o.linger.1.to_ne_bytes());
            Some(v)
        }
        SO_TYPE => int(ty as i32),
        SO_DOMAIN => int(family as i32),
        SO_PROTOCOL => int(protocol),
        _ => None,
    }
}

pub fn setsockopt(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let (level, name) = (a.int(1), a.int(2));
    let len = a.int(4);
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let value = a.ptr(3).read_bytes((len as usize).min(MAX_OPTION))?;
    let s = sock(&f);
    if level == SOL_SOCKET {
        if let Some(recorded) = set_generic(s.options(), name, &value) {
            recorded?;
            // The family may act on it too (keep-alive, lingering close, port reuse).
            return match s.setsockopt(level, name, &value) {
                Ok(()) | Err(Errno::ENOPROTOOPT) => Ok(0),
                Err(e) => Err(e),
            };
        }
    }
    s.setsockopt(level, name, &value)?;
    changed();
    Ok(0)
}

pub fn getsockopt(a: &Args) -> KResult<u64> {
    let f = socket_file(a.fd(0)?)?;
    let (level, name) = (a.int(1), a.int(2));
    let (out, len_ptr) = (a.ptr(3), a.ptr(4));
    let room: i32 = len_ptr.read()?;
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let s = sock(&f);
    let value = match s.getsockopt(level, name) {
        Ok(v) => v,
        Err(Errno::ENOPROTOOPT) if level == SOL_SOCKET => {
            get_generic(s, name).ok_or(Errno::ENOPROTOOPT)?
        }
        Err(e) => return Err(e),
    };
    let n = value.len().min(room as usize);
    out.write_bytes(&value[..n])?;
    len_ptr.write(&(n as u32))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_type_flags_split_and_unknown_bits_are_einval() {
        assert_eq!(
            split_type(SOCK_STREAM | SOCK_NONBLOCK),
            Ok((SOCK_STREAM, SOCK_NONBLOCK))
        );
        assert_eq!(
            split_type(SOCK_DGRAM | SOCK_CLOEXEC),
            Ok((SOCK_DGRAM, SOCK_CLOEXEC))
        );
        assert_eq!(split_type(SOCK_STREAM | 0x100), Err(Errno::EINVAL));
    }

    #[test]
    fn inet_sockets_judge_foreign_addresses_by_their_own_length() {
        let six = |len: usize| {
            let mut a = vec![0u8; len];
            a[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            a
        };
        assert_eq!(foreign_to_inet(&six(16)), Some(Errno::EAFNOSUPPORT));
        assert_eq!(foreign_to_inet(&six(28)), Some(Errno::EAFNOSUPPORT));
        assert_eq!(foreign_to_inet(&six(8)), Some(Errno::EINVAL));
        let mut inet = vec![0u8; 16];
        inet[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        assert_eq!(foreign_to_inet(&inet), None);
        assert_eq!(foreign_to_inet(&[0, 0]), None, "AF_UNSPEC");
        assert_eq!(foreign_to_inet(&[2]), None);
    }

    #[test]
    fn timeouts_decode_like_linux() {
        let tv = |s: i64, us: i64| {
            let mut v = s.to_ne_bytes().to_vec();
            v.extend_from_slice(&us.to_ne_bytes());
            v
        };
        assert_eq!(timeout_value(&tv(0, 0)), Ok(0));
        assert_eq!(timeout_value(&tv(1, 500_000)), Ok(1_500_000_000));
        assert_eq!(timeout_value(&tv(0, 1_000_000)), Err(Errno::EDOM));
        assert_eq!(timeout_value(&tv(-5, 0)), Ok(1));
        assert_eq!(timeout_value(&[0; 8]), Err(Errno::EINVAL));
        assert_eq!(timeval_bytes(1_500_000_000), tv(1, 500_000));
    }

    #[test]
    fn generic_options_are_recorded() {
        let o = SocketOptions::new();
        assert!(set_generic(&o, SO_REUSEADDR, &1i32.to_ne_bytes())
            .unwrap()
            .is_ok());
        assert!(o.get().reuseaddr);
        assert_eq!(
            set_generic(&o, SO_KEEPALIVE, &[1, 0]),
            Some(Err(Errno::EINVAL)),
            "int options need four bytes"
        );
        let mut linger = 1i32.to_ne_bytes().to_vec();
        linger.extend_from_slice(&0i32.to_ne_bytes());
        assert!(set_generic(&o, SO_LINGER, &linger).unwrap().is_ok());
        assert_eq!(o.get().linger, (1, 0));
        assert!(set_generic(&o, SO_SNDBUF, &[0; 4]).is_none());
    }
}
