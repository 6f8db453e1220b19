//! Skiff's TCP/IP networking: smoltcp under AF_INET sockets with Linux's semantics.
//!
//! # Links and routing
//!
//! Two smoltcp interfaces: the network card (`Medium::Ethernet` over a [`NetDevice`],
//! when there is one) and loopback (`Medium::Ip` over an in-memory queue). One
//! interface with a default route would send 127.x or the guest's own address out of
//! the card, so each socket talks through exactly one link, chosen by its destination:
//! 127.0.0.0/8 and the card's own address go to loopback (which therefore carries the
//! card's address too), everything else to the card (which needs an address, and the
//! destination on its subnet or a gateway; else `ENETUNREACH`). A listener on
//! INADDR_ANY accepts on both links; a UDP socket bound to INADDR_ANY receives on both.
//!
//! # One socket set per socket
//!
//! smoltcp offers each received packet to every socket of the set it is given and
//! visits every socket of a set to transmit, which costs O(sockets) per packet. Here
//! every smoltcp socket lives in a set of its own (`stack::Cell`): received frames
//! are classified first (module `flow`) and go to the one set they are for (a connection
//! by 4-tuple, a new connection for a listener's SYN, the UDP socket(s) for a
//! datagram, else the link's control set, where smoltcp answers ARP and ping and sends
//! RST or port-unreachable); transmitting visits only sets that something touched or
//! whose timer expired (a `BTreeSet` of deadlines). Per-packet work is therefore
//! independent of how many connections exist.
//!
//! # Listening
//!
//! smoltcp accepts one connection per listening socket. Instead of a pool, a listener
//! here owns no smoltcp socket at all: each SYN that finds room (at most
//! `backlog + 1` connections queued or half-open, Linux's count, with `backlog` clamped
//! to `somaxconn` 4096) gets a fresh smoltcp socket put into LISTEN just for it, which
//! then becomes that connection. A SYN for a full queue is dropped before smoltcp sees
//! it, as Linux drops it, so the client retransmits; a SYN for a port nobody listens on
//! reaches the control set and is answered with RST.
//!
//! # Readiness and time
//!
//! Readiness (`poll_mask`) is computed from state as Linux's `tcp_poll` and
//! `datagram_poll` do; readiness *events* are stamped ([`skiff_fs::Generation`]) when
//! data arrives, room appears or state changes, for edge-triggered epoll. Socket calls
//! transmit before returning, and on loopback the peer has processed the packets
//! before the call returns (a loopback handshake completes inside `connect`, which
//! still answers `EINPROGRESS` first, as Linux's does). The kernel
//! runs [`Stack::poll`] on card interrupts, kicks and at the deadline it returns.
//!
//! # Not done (differs from Linux)
//!
//! No IP fragmentation or reassembly: a UDP datagram larger than the card's MTU is
//! `EMSGSIZE`, received fragments are dropped. No urgent data (`MSG_OOB` is
//! `EOPNOTSUPP`). No IPv6 yet (`EAFNOSUPPORT`). No raw or ping sockets (`EPERM` /
//! `EACCES`, as Linux without the privilege). No multicast groups (`IP_ADD_MEMBERSHIP`
//! is `ENOPROTOOPT`), and a broadcast the guest sends is not looped back to its own
//! sockets. TIME-WAIT lasts smoltcp's 10 s, not
//! 60 s. `SO_LINGER` with a non-zero timeout closes in the background instead of
//! blocking `close`. Buffer sizes set on a connected socket apply to its next
//! connection only; a UDP socket's `SO_SNDBUF` is recorded only. At most 256
//! handshakes per listener wait for their final ACK at once (each holds its buffers);
//! Linux falls back to SYN cookies where this drops the SYN, which the client then
//! retransmits. TCP itself is smoltcp's: no timestamps and no congestion control.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod config;
pub mod device;
mod flow;
mod phy;
mod ports;
mod socket;
mod sockopt;
mod stack;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

pub use config::NetConfig;
pub use device::NetDevice;
pub use socket::SIOCOUTQ;
pub use stack::Stack;
