//! The AF_INET socket object behind a descriptor: [`Socket`] and [`CharDevice`] over
//! the stack, and the socket options.
//!
//! The object holds only the socket's id in the stack and its generic options; every
//! call locks the stack, does its work there, and transmits before returning (see
//! [`Stack::with`](crate::stack::Stack)).

use crate::sockopt::*;
use crate::stack::{endpoint_of, sockaddr_of, Id, Inner, Sock, Stack};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};
use skiff_fs::device::{IoctlOut, FIONREAD};
use skiff_fs::epoll::*;
use skiff_fs::socket::*;
use skiff_fs::{CharDevice, Generation, OpenFile};
use smoltcp::wire::{IpAddress, IpEndpoint};

/// `SIOCOUTQ` (the same number as `TIOCOUTQ`); `SIOCINQ` is `FIONREAD`.
pub const SIOCOUTQ: u32 = 0x5411;
/// Linux's `IPPROTO_MAX`: larger protocol numbers are `EINVAL`.
const IPPROTO_MAX: i32 = 263;
/// Linux's `SOCK_MAX`: larger types are `EINVAL`.
const SOCK_MAX: u32 = 11;
/// `SOCK_PACKET`, which Linux hands to AF_PACKET.
const SOCK_PACKET: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Udp,
}

/// The socket a `socket(family, ty, protocol)` call asks for, or Linux's errno.
pub(crate) fn resolve_kind(family: u16, ty: u32, protocol: i32) -> KResult<Kind> {
    match family {
        AF_INET => {}
        // Not yet: the stack is built for IPv6 (smoltcp addresses throughout) but has no
        // IPv6 interface configuration.
        AF_INET6 => return Err(Errno::EAFNOSUPPORT),
        _ => return Err(Errno::EAFNOSUPPORT),
    }
    if ty >= SOCK_MAX || !(0..IPPROTO_MAX).contains(&protocol) {
        return Err(Errno::EINVAL);
    }
    match ty {
        SOCK_STREAM => match protocol {
            IPPROTO_IP | IPPROTO_TCP => Ok(Kind::Tcp),
            _ => Err(Errno::EPROTONOSUPPORT),
        },
        SOCK_DGRAM => match protocol {
            IPPROTO_IP | IPPROTO_UDP => Ok(Kind::Udp),
            // Ping sockets: Linux refuses them unless the group is in
            // `ping_group_range`, which is empty by default.
            IPPROTO_ICMP => Err(Errno::EACCES),
            _ => Err(Errno::EPROTONOSUPPORT),
        },
        // Raw and packet sockets need CAP_NET_RAW on Linux; Skiff has neither the
        // capability nor raw sockets, so it answers as Linux does without it.
        SOCK_RAW | SOCK_PACKET => Err(Errno::EPERM),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

pub(crate) struct InetSocket {
    stack: Arc<Stack>,
    id: Id,
    kind: Kind,
    ino: u64,
    options: SocketOptions,
}

impl InetSocket {
    /// The open file for the stack's socket `id`, with `inherit`ed generic options (an
    /// accepted connection gets its listener's, as on Linux).
    pub(crate) fn open(
        stack: Arc<Stack>,
        id: Id,
        kind: Kind,
        inherit: Option<OptionValues>,
        flags: u32,
    ) -> Arc<OpenFile> {
        let options = SocketOptions::new();
        if let Some(values) = inherit {
            options.update(|o| *o = values);
        }
        let ino = next_socket_ino();
        let socket = Arc::new(InetSocket {
            stack,
            id,
            kind,
            ino,
            options,
        });
        socket_file(socket, ino, flags)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner, Id) -> R) -> R {
        self.stack.with(|inner| f(inner, self.id))
    }

    /// Look at the stack without transmitting (readiness queries).
    fn peek<R>(&self, f: impl FnOnce(&Inner, Id) -> R) -> R {
        self.stack.inspect(|inner| f(inner, self.id))
    }

    fn reuse(&self) -> (bool, bool) {
        let o = self.options.get();
        (o.reuseaddr, o.reuseport)
    }

    fn tcp_opt(&self, f: impl FnOnce(&mut TcpOpts)) -> KResult<()> {
        self.with(|inner, id| inner.tcp_update_opts(id, f))
    }

    fn tcp_opts(&self) -> KResult<TcpOpts> {
        self.with(|inner, id| inner.tcp(id).map(|s| s.opts))
    }

    fn set_socket_level(&self, name: i32, value: &[u8]) -> KResult<()> {
        match name {
            SO_RCVBUF | SO_RCVBUFFORCE | SO_SNDBUF | SO_SNDBUFFORCE => {
                let force = matches!(name, SO_RCVBUFFORCE | SO_SNDBUFFORCE);
                let v = int_arg(value)?;
                let rcv = matches!(name, SO_RCVBUF | SO_RCVBUFFORCE);
                let stored = if rcv {
                    buffer_value(v, RMEM_MAX, SOCK_MIN_RCVBUF, force)
                } else {
                    buffer_value(v, WMEM_MAX, SOCK_MIN_SNDBUF, force)
                };
                match self.kind {
                    Kind::Tcp => self.tcp_opt(|o| {
                        if rcv {
                            o.rcvbuf = stored
                        } else {
                            o.sndbuf = stored
                        }
                    }),
                    Kind::Udp => self.with(|inner, id| {
                        let s = inner.udp(id)?;
                        if rcv {
                            s.rcvbuf = stored
                        } else {
                            s.sndbuf = stored
                        }
                        Ok(())
                    }),
                }
            }
            SO_KEEPALIVE => {
                let on = int_arg(value)? != 0;
                self.options.update(|o| o.keepalive = on);
                match self.kind {
                    Kind::Tcp => self.tcp_opt(|o| o.keepalive = on),
                    Kind::Udp => Ok(()),
                }
            }
            // Acted on where they matter (bind, send); recorded here too so the family
            // works the same whoever records generic options.
            SO_REUSEADDR | SO_REUSEPORT | SO_BROADCAST => {
                let on = int_arg(value)? != 0;
                self.options.update(|o| match name {
                    SO_REUSEADDR => o.reuseaddr = on,
                    SO_REUSEPORT => o.reuseport = on,
                    _ => o.broadcast = on,
                });
                Ok(())
            }
            SO_LINGER => {
                if value.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                let on = int_arg(&value[0..4])?;
                let secs = int_arg(&value[4..8])?;
                self.options
                    .update(|o| o.linger = (i32::from(on != 0), secs));
                Ok(())
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn set_ip_level(&self, name: i32, value: &[u8]) -> KResult<()> {
        // Linux's `ip_setsockopt` takes an int, or a single byte for short values.
        let v = match value.len() {
            0 => return Err(Errno::EINVAL),
            1..=3 => i32::from(value[0]),
            _ => int_arg(value)?,
        };
        match name {
            IP_TTL => {
                let ttl = match v {
                    -1 => None,
                    1..=255 => Some(v as u8),
                    _ => return Err(Errno::EINVAL),
                };
                match self.kind {
                    Kind::Tcp => self.tcp_opt(|o| o.ttl = ttl),
                    Kind::Udp => self.with(|inner, id| inner.udp_set_ttl(id, ttl)),
                }
            }
            // Recorded only: smoltcp has no per-socket DSCP/ECN (see `getsockopt`).
            IP_TOS => match self.kind {
                // Linux keeps the ECN bits for TCP to itself.
                Kind::Tcp => self.tcp_opt(|o| o.tos = v & !3),
                Kind::Udp => self.with(|inner, id| {
                    inner.udp(id)?.tos = v & 0xff;
                    Ok(())
                }),
            },
            // Recorded only: no error queue (IP_RECVERR), no path-MTU discovery.
            IP_RECVERR => match self.kind {
                Kind::Tcp => self.tcp_opt(|o| o.recverr = v != 0),
                Kind::Udp => self.with(|inner, id| {
                    inner.udp(id)?.recverr = v != 0;
                    Ok(())
                }),
            },
            IP_MTU_DISCOVER => {
                if !(0..=5).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                match self.kind {
                    Kind::Tcp => self.tcp_opt(|o| o.mtu_discover = v),
                    Kind::Udp => self.with(|inner, id| {
                        inner.udp(id)?.mtu_discover = v;
                        Ok(())
                    }),
                }
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn set_tcp_level(&self, name: i32, value: &[u8]) -> KResult<()> {
        let v = int_arg(value)?;
        let range = |lo: i32, hi: i32| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(Errno::EINVAL)
            }
        };
        match name {
            TCP_NODELAY => self.tcp_opt(|o| o.nodelay = v != 0),
            TCP_KEEPIDLE => {
                let v = range(1, 32767)?;
                self.tcp_opt(|o| o.keepidle_s = v)
            }
            TCP_KEEPINTVL => {
                let v = range(1, 32767)?;
                self.tcp_opt(|o| o.keepintvl_s = v)
            }
            TCP_KEEPCNT => {
                let v = range(1, 127)?;
                self.tcp_opt(|o| o.keepcnt = v)
            }
            TCP_USER_TIMEOUT => {
                let v = range(0, i32::MAX)?;
                self.tcp_opt(|o| o.user_timeout_ms = v as u32)
            }
            TCP_SYNCNT => {
                let v = range(1, 127)?;
                self.tcp_opt(|o| o.syncnt = v as u8)
            }
            TCP_LINGER2 => self.tcp_opt(|o| o.linger2_s = v.clamp(0, 120)),
            // Hints, recorded and reported back but not acted on: there is no deferred
            // accept (connections are accepted once established), no TCP Fast Open (the
            // handshake is always the normal one), no quick-ack mode switch, no corking
            // (data goes out as Nagle allows), no MSS clamp and no window clamp.
            TCP_DEFER_ACCEPT => self.tcp_opt(|o| o.defer_accept = secs_to_retrans(v)),
            TCP_FASTOPEN => self.tcp_opt(|o| o.fastopen = v),
            TCP_QUICKACK => self.tcp_opt(|o| o.quickack = v != 0),
            TCP_CORK => self.tcp_opt(|o| o.cork = v != 0),
            TCP_MAXSEG => {
                if v != 0 && !(88..=65535).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                self.tcp_opt(|o| o.maxseg = v)
            }
            TCP_WINDOW_CLAMP => self.tcp_opt(|o| o.window_clamp = v.max(0)),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn get_tcp_level(&self, name: i32) -> KResult<i32> {
        let o = self.tcp_opts()?;
        Ok(match name {
            TCP_NODELAY => o.nodelay.into(),
            TCP_KEEPIDLE => o.keepidle_s,
            TCP_KEEPINTVL => o.keepintvl_s,
            TCP_KEEPCNT => o.keepcnt,
            TCP_USER_TIMEOUT => o.user_timeout_ms as i32,
            TCP_SYNCNT => o.syncnt.into(),
            TCP_LINGER2 => {
                if o.linger2_s > 0 {
                    o.linger2_s
                } else {
                    FIN_TIMEOUT_S
                }
            }
            TCP_DEFER_ACCEPT => retrans_to_secs(o.defer_accept),
            TCP_FASTOPEN => o.fastopen,
            TCP_QUICKACK => o.quickack.into(),
            TCP_CORK => o.cork.into(),
            TCP_MAXSEG => self.with(|inner, id| inner.tcp_maxseg(id))?,
            TCP_WINDOW_CLAMP => o.window_clamp,
            // TCP_INFO, TCP_CONGESTION and the rest are not implemented.
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }

    fn get_ip_level(&self, name: i32) -> KResult<i32> {
        let (ttl, tos, recverr, mtu_discover) = match self.kind {
            Kind::Tcp => {
                let o = self.tcp_opts()?;
                (o.ttl, o.tos, o.recverr, o.mtu_discover)
            }
            Kind::Udp => self.with(|inner, id| {
                let s = inner.udp(id)?;
                Ok::<_, Errno>((s.ttl, s.tos, s.recverr, s.mtu_discover))
            })?,
        };
        Ok(match name {
            IP_TTL => ttl.unwrap_or(DEFAULT_TTL).into(),
            IP_TOS => tos,
            IP_RECVERR => recverr.into(),
            // Linux's default is IP_PMTUDISC_WANT (1).
            IP_MTU_DISCOVER => {
                if mtu_discover == 0 {
                    1
                } else {
                    mtu_discover
                }
            }
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }
}

impl Drop for InetSocket {
    fn drop(&mut self) {
        let (on, secs) = self.options.get().linger;
        let abort = on != 0 && secs == 0;
        let kind = self.kind;
        self.with(|inner, id| match kind {
            Kind::Tcp => inner.tcp_close(id, abort),
            Kind::Udp => inner.udp_close(id),
        });
    }
}

impl Socket for InetSocket {
    fn kind(&self) -> (u16, u32, i32) {
        match self.kind {
            Kind::Tcp => (AF_INET, SOCK_STREAM, IPPROTO_TCP),
            Kind::Udp => (AF_INET, SOCK_DGRAM, IPPROTO_UDP),
        }
    }

    fn bind(&self, addr: &SockAddr) -> KResult<()> {
        let ep = match addr {
            // Linux accepts AF_UNSPEC for INADDR_ANY; the decoded address carries no
            // port, so it binds an ephemeral one.
            SockAddr::Unspec => IpEndpoint::new(IpAddress::v4(0, 0, 0, 0), 0),
            other => endpoint_of(other)?,
        };
        let (reuseaddr, reuseport) = self.reuse();
        match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_bind(id, ep, reuseaddr, reuseport)),
            Kind::Udp => self.with(|inner, id| inner.udp_bind(id, ep, reuseaddr, reuseport)),
        }
    }

    fn listen(&self, backlog: i32) -> KResult<()> {
        let (reuseaddr, reuseport) = self.reuse();
        match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_listen(id, backlog, reuseaddr, reuseport)),
            Kind::Udp => Err(Errno::EOPNOTSUPP),
        }
    }

    fn accept(&self, flags: u32) -> KResult<(Arc<OpenFile>, SockAddr)> {
        if self.kind != Kind::Tcp {
            return Err(Errno::EOPNOTSUPP);
        }
        let (new_id, peer) = self.with(|inner, id| inner.tcp_accept(id))?;
        let inherit = self.options.get();
        let file = InetSocket::open(self.stack.clone(), new_id, Kind::Tcp, Some(inherit), flags);
        Ok((file, sockaddr_of(Some(peer.addr), peer.port)))
    }

    fn connect(&self, addr: &SockAddr) -> KResult<()> {
        let (reuseaddr, reuseport) = self.reuse();
        let broadcast = self.options.get().broadcast;
        match (self.kind, addr) {
            (Kind::Tcp, SockAddr::Unspec) => self.with(|inner, id| inner.tcp_disconnect(id)),
            (Kind::Udp, SockAddr::Unspec) => self.with(|inner, id| inner.udp_disconnect(id)),
            (Kind::Tcp, a) => {
                let ep = endpoint_of(a)?;
                self.with(|inner, id| inner.tcp_connect(id, ep, reuseaddr, reuseport))
            }
            (Kind::Udp, a) => {
                let ep = endpoint_of(a)?;
                self.with(|inner, id| inner.udp_connect(id, ep, broadcast, reuseaddr, reuseport))
            }
        }
    }

    fn send(
        &self,
        data: &[u8],
        to: Option<&SockAddr>,
        flags: u32,
        ancillary: SendAncillary,
    ) -> KResult<usize> {
        // Linux's inet sockets refuse SCM_RIGHTS and SCM_CREDENTIALS.
        if !ancillary.rights.is_empty() || ancillary.credentials.is_some() {
            return Err(Errno::EINVAL);
        }
        match self.kind {
            // A stream ignores a destination, as Linux's TCP does.
            Kind::Tcp => self.with(|inner, id| inner.tcp_send(id, data, flags)),
            Kind::Udp => {
                let to = match to {
                    None | Some(SockAddr::Unspec) => None,
                    Some(a) => Some(endpoint_of(a)?),
                };
                let o = self.options.get();
                self.with(|inner, id| {
                    inner.udp_send(id, data, to, flags, o.broadcast, (o.reuseaddr, o.reuseport))
                })
            }
        }
    }

    fn recv(&self, buf: &mut [u8], flags: u32) -> KResult<Received> {
        match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_recv(id, buf, flags)),
            Kind::Udp => self.with(|inner, id| inner.udp_recv(id, buf, flags)),
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_shutdown(id, how)),
            Kind::Udp => self.with(|inner, id| inner.udp_shutdown(id, how)),
        }
    }

    fn local_addr(&self) -> KResult<SockAddr> {
        let (addr, port) = match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_local_addr(id))?,
            Kind::Udp => self.with(|inner, id| inner.udp_local_addr(id))?,
        };
        Ok(sockaddr_of(addr, port))
    }

    fn peer_addr(&self) -> KResult<SockAddr> {
        let ep = match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_peer_addr(id))?,
            Kind::Udp => self.with(|inner, id| inner.udp_peer_addr(id))?,
        };
        Ok(sockaddr_of(Some(ep.addr), ep.port))
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> KResult<()> {
        match level {
            SOL_SOCKET => self.set_socket_level(name, value),
            SOL_IP => self.set_ip_level(name, value),
            SOL_TCP if self.kind == Kind::Tcp => self.set_tcp_level(name, value),
            // Other levels reach Linux's `ip_setsockopt`, which says ENOPROTOOPT (and
            // `ip_getsockopt`, below, EOPNOTSUPP).
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn getsockopt(&self, level: i32, name: i32) -> KResult<Vec<u8>> {
        let value = match (level, name) {
            (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => {
                let rcv = name == SO_RCVBUF;
                let v = match self.kind {
                    Kind::Tcp => {
                        let o = self.tcp_opts()?;
                        if rcv {
                            o.rcvbuf
                        } else {
                            o.sndbuf
                        }
                    }
                    Kind::Udp => self.with(|inner, id| {
                        let s = inner.udp(id)?;
                        Ok::<_, Errno>(if rcv { s.rcvbuf } else { s.sndbuf })
                    })?,
                };
                v as i32
            }
            (SOL_SOCKET, SO_ERROR) => {
                let e = match self.kind {
                    Kind::Tcp => self.with(|inner, id| inner.tcp_take_error(id))?,
                    Kind::Udp => {
                        self.with(|inner, id| Ok::<_, Errno>(inner.udp(id)?.error.take()))?
                    }
                };
                e.map_or(0, |e| i32::from(e.code()))
            }
            (SOL_SOCKET, SO_ACCEPTCONN) => match self.kind {
                Kind::Tcp => self.with(|inner, id| inner.tcp_is_listening(id))?.into(),
                Kind::Udp => 0,
            },
            (SOL_SOCKET, SO_TYPE) => self.kind().1 as i32,
            (SOL_SOCKET, SO_DOMAIN) => i32::from(self.kind().0),
            (SOL_SOCKET, SO_PROTOCOL) => self.kind().2,
            (SOL_SOCKET, SO_KEEPALIVE) => self.options.get().keepalive.into(),
            (SOL_SOCKET, SO_REUSEADDR) => self.options.get().reuseaddr.into(),
            (SOL_SOCKET, SO_REUSEPORT) => self.options.get().reuseport.into(),
            (SOL_SOCKET, SO_BROADCAST) => self.options.get().broadcast.into(),
            (SOL_SOCKET, SO_LINGER) => {
                let (on, secs) = self.options.get().linger;
                let mut v = int_bytes(on);
                v.extend_from_slice(&secs.to_ne_bytes());
                return Ok(v);
            }
            (SOL_SOCKET, _) => return Err(Errno::ENOPROTOOPT),
            (SOL_IP, _) => self.get_ip_level(name)?,
            (SOL_TCP, _) if self.kind == Kind::Tcp => self.get_tcp_level(name)?,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        Ok(int_bytes(value))
    }

    fn options(&self) -> &SocketOptions {
        &self.options
    }

    fn queued(&self) -> (usize, usize) {
        self.with(|inner, id| match self.kind {
            Kind::Tcp => inner.tcp_queued(id),
            Kind::Udp => inner.udp_queued(id),
        })
        .unwrap_or((0, 0))
    }
}

impl CharDevice for InetSocket {
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        self.recv(buf, 0).map(|r| r.len)
    }

    fn write(&self, buf: &[u8]) -> KResult<usize> {
        self.send(buf, None, 0, SendAncillary::default())
    }

    fn seekable(&self) -> bool {
        false
    }

    fn ioctl(&self, cmd: u32, _arg: &[u8]) -> KResult<IoctlOut> {
        let (inq, outq) = match self.kind {
            Kind::Tcp => self.with(|inner, id| inner.tcp_queued(id))?,
            Kind::Udp => self.with(|inner, id| inner.udp_queued(id))?,
        };
        let n = match cmd {
            FIONREAD => inq,
            SIOCOUTQ => outq,
            _ => return Err(Errno::ENOTTY),
        };
        Ok(IoctlOut::CopyOut(
            int_bytes(n.min(i32::MAX as usize) as i32),
        ))
    }

    fn read_ready(&self) -> bool {
        self.poll_mask() & (EPOLLIN | EPOLLERR | EPOLLHUP) != 0
    }

    fn write_ready(&self) -> bool {
        self.poll_mask() & (EPOLLOUT | EPOLLERR | EPOLLHUP) != 0
    }

    fn buffered(&self) -> Option<usize> {
        Some(self.queued().0)
    }

    fn poll_mask(&self) -> u32 {
        self.peek(|inner, id| match inner.socks.get(&id) {
            Some(Sock::Tcp(_)) => inner.tcp_mask(id),
            Some(Sock::Udp(_)) => inner.udp_mask(id),
            None => EPOLLNVAL,
        })
    }

    fn generation(&self) -> Generation {
        self.peek(|inner, id| match inner.socks.get(&id) {
            Some(Sock::Tcp(_)) => inner.tcp_generation(id),
            Some(Sock::Udp(_)) => inner.udp_generation(id),
            None => Generation::default(),
        })
    }

    fn as_socket(&self) -> Option<&dyn Socket> {
        Some(self)
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(format!("socket:[{}]", self.ino).into_bytes())
    }
}
