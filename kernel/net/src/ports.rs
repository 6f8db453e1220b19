//! Who holds which port: Linux's bind rules and ephemeral port choice.
//!
//! Every bound socket, every connection that came from a listener (it shares the
//! listener's port, as Linux's children share the bind bucket) and every connection
//! closing in the background holds one [`Binding`]. A new binding conflicts with an
//! existing one on the same port when their addresses overlap (equal, or either is the
//! wildcard) unless:
//! - TCP: both have `SO_REUSEADDR` and the existing one is not listening (so a server
//!   can restart while its old connections linger, but two listeners cannot share a
//!   port this way), or both have `SO_REUSEPORT`;
//! - UDP: both have `SO_REUSEADDR`, or both have `SO_REUSEPORT`.
//!
//! Ports for `bind(port 0)` and for implicit binds (connect, listen, first send) come
//! from Linux's default ephemeral range 32768–60999, starting at a pseudo-random point.

use alloc::vec::Vec;
use hashbrown::HashMap;
use skiff_errno::{Errno, KResult};
use smoltcp::wire::IpAddress;

/// Linux's default `net.ipv4.ip_local_port_range`.
pub(crate) const EPHEMERAL_FIRST: u16 = 32768;
pub(crate) const EPHEMERAL_LAST: u16 = 60999;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

/// One holder of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub proto: Proto,
    /// `None`: the wildcard address.
    pub addr: Option<IpAddress>,
    pub port: u16,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub listening: bool,
}

pub(crate) type BindingId = u64;

#[derive(Default)]
pub(crate) struct PortTable {
    bindings: HashMap<BindingId, Binding>,
    by_port: HashMap<(Proto, u16), Vec<BindingId>>,
    next_id: BindingId,
}

fn overlap(a: Option<IpAddress>, b: Option<IpAddress>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

impl PortTable {
    pub(crate) fn get(&self, id: BindingId) -> Option<&Binding> {
        self.bindings.get(&id)
    }

    /// Whether `new` may join the holders of its port (`except`: a binding of the same
    /// socket being re-checked).
    fn conflicts(&self, new: &Binding, except: Option<BindingId>) -> bool {
        let Some(ids) = self.by_port.get(&(new.proto, new.port)) else {
            return false;
        };
        ids.iter().filter(|&&id| Some(id) != except).any(|id| {
            let old = &self.bindings[id];
            if !overlap(old.addr, new.addr) {
                return false;
            }
            if new.reuseport && old.reuseport {
                return false;
            }
            match new.proto {
                Proto::Tcp => !(new.reuseaddr && old.reuseaddr && !old.listening),
                Proto::Udp => !(new.reuseaddr && old.reuseaddr),
            }
        })
    }

    fn insert(&mut self, b: Binding) -> BindingId {
        self.next_id += 1;
        let id = self.next_id;
        self.bindings.insert(id, b);
        self.by_port.entry((b.proto, b.port)).or_default().push(id);
        id
    }

    /// Hold `b.port`, or `EADDRINUSE`.
    pub(crate) fn bind(&mut self, b: Binding) -> KResult<BindingId> {
        debug_assert!(b.port != 0);
        if self.conflicts(&b, None) {
            return Err(Errno::EADDRINUSE);
        }
        Ok(self.insert(b))
    }

    /// Hold a port for a connection that already owns its 4-tuple (one accepted from a
    /// listener): it shares the listener's port without checks, as on Linux.
    pub(crate) fn bind_unchecked(&mut self, b: Binding) -> BindingId {
        self.insert(b)
    }

    /// Bind to a free ephemeral port (`b.port` is ignored). `start` picks where the
    /// search begins (callers pass a pseudo-random number). A port is free when nobody
    /// holds it at all, so an implicit bind never shares a port by reuse options.
    /// `None` when the range is exhausted.
    pub(crate) fn bind_ephemeral(&mut self, mut b: Binding, start: u32) -> Option<BindingId> {
        let span = u32::from(EPHEMERAL_LAST - EPHEMERAL_FIRST) + 1;
        (0..span).find_map(|i| {
            let port = EPHEMERAL_FIRST + ((start.wrapping_add(i)) % span) as u16;
            let taken = self
                .by_port
                .get(&(b.proto, port))
                .is_some_and(|ids| !ids.is_empty());
            if taken {
                return None;
            }
            b.port = port;
            Some(self.insert(b))
        })
    }

    /// Turn a binding into a listener's, re-checking the rules as Linux's `listen` does
    /// (two sockets bound with `SO_REUSEADDR` cannot both listen).
    pub(crate) fn listen(&mut self, id: BindingId) -> KResult<()> {
        let mut b = *self.bindings.get(&id).ok_or(Errno::EINVAL)?;
        b.listening = true;
        if self.conflicts(&b, Some(id)) {
            return Err(Errno::EADDRINUSE);
        }
        self.bindings.insert(id, b);
        Ok(())
    }

    /// A listener stopped listening but stays bound.
    pub(crate) fn unlisten(&mut self, id: BindingId) {
        if let Some(b) = self.bindings.get_mut(&id) {
            b.listening = false;
        }
    }

    /// Change the address a binding holds (a UDP `connect` on a wildcard-bound socket
    /// narrows it to the chosen source address, as Linux rehashes it).
    pub(crate) fn set_addr(&mut self, id: BindingId, addr: Option<IpAddress>) {
        if let Some(b) = self.bindings.get_mut(&id) {
            b.addr = addr;
        }
    }

    pub(crate) fn release(&mut self, id: BindingId) {
        if let Some(b) = self.bindings.remove(&id) {
            if let Some(ids) = self.by_port.get_mut(&(b.proto, b.port)) {
                ids.retain(|&x| x != id);
                if ids.is_empty() {
                    self.by_port.remove(&(b.proto, b.port));
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bindings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        proto: Proto,
        addr: Option<[u8; 4]>,
        port: u16,
        reuseaddr: bool,
        reuseport: bool,
    ) -> Binding {
        Binding {
            proto,
            addr: addr.map(|a| IpAddress::v4(a[0], a[1], a[2], a[3])),
            port,
            reuseaddr,
            reuseport,
            listening: false,
        }
    }

    const LO: Option<[u8; 4]> = Some([127, 0, 0, 1]);
    const NIC: Option<[u8; 4]> = Some([10, 0, 2, 15]);

    #[test]
    fn tcp_rules_match_linux() {
        let mut t = PortTable::default();
        let lo = t.bind(b(Proto::Tcp, LO, 80, false, false)).unwrap();
        // Wildcard overlaps a specific address; different specific addresses do not.
        assert_eq!(
            t.bind(b(Proto::Tcp, None, 80, false, false)),
            Err(Errno::EADDRINUSE)
        );
        assert!(t.bind(b(Proto::Tcp, NIC, 80, false, false)).is_ok());
        // Other protocol, other port: independent.
        assert!(t.bind(b(Proto::Udp, LO, 80, false, false)).is_ok());
        t.release(lo);
        // Both SO_REUSEADDR, neither listening: allowed; the second listen is refused.
        let mut t = PortTable::default();
        let first = t.bind(b(Proto::Tcp, None, 81, true, false)).unwrap();
        let second = t.bind(b(Proto::Tcp, None, 81, true, false)).unwrap();
        t.listen(first).unwrap();
        assert_eq!(t.listen(second), Err(Errno::EADDRINUSE));
        // SO_REUSEADDR cannot join a listener.
        assert_eq!(
            t.bind(b(Proto::Tcp, None, 81, true, false)),
            Err(Errno::EADDRINUSE)
        );
        // SO_REUSEPORT shares even a listening port.
        let mut t = PortTable::default();
        let l = t.bind(b(Proto::Tcp, None, 82, false, true)).unwrap();
        t.listen(l).unwrap();
        let l2 = t.bind(b(Proto::Tcp, None, 82, false, true)).unwrap();
        t.listen(l2).unwrap();
        assert_eq!(
            t.bind(b(Proto::Tcp, None, 82, false, false)),
            Err(Errno::EADDRINUSE)
        );
    }

    #[test]
    fn lingering_connections_block_rebinding_without_reuseaddr() {
        let mut t = PortTable::default();
        // A connection accepted by a listener that had SO_REUSEADDR, now closing.
        t.bind_unchecked(b(Proto::Tcp, LO, 8080, true, false));
        assert_eq!(
            t.bind(b(Proto::Tcp, LO, 8080, false, false)),
            Err(Errno::EADDRINUSE)
        );
        let l = t.bind(b(Proto::Tcp, LO, 8080, true, false)).unwrap();
        t.listen(l).unwrap();
        // One whose listener had no SO_REUSEADDR blocks even a reusing bind.
        let mut t = PortTable::default();
        t.bind_unchecked(b(Proto::Tcp, LO, 8081, false, false));
        assert_eq!(
            t.bind(b(Proto::Tcp, LO, 8081, true, false)),
            Err(Errno::EADDRINUSE)
        );
    }

    #[test]
    fn udp_rules_match_linux() {
        let mut t = PortTable::default();
        t.bind(b(Proto::Udp, None, 53, false, false)).unwrap();
        assert_eq!(
            t.bind(b(Proto::Udp, LO, 53, false, false)),
            Err(Errno::EADDRINUSE)
        );
        let mut t = PortTable::default();
        t.bind(b(Proto::Udp, None, 53, true, false)).unwrap();
        t.bind(b(Proto::Udp, None, 53, true, false)).unwrap();
        t.bind(b(Proto::Udp, None, 54, false, true)).unwrap();
        t.bind(b(Proto::Udp, None, 54, false, true)).unwrap();
        assert_eq!(
            t.bind(b(Proto::Udp, None, 54, true, false)),
            Err(Errno::EADDRINUSE)
        );
    }

    #[test]
    fn ephemeral_ports_are_free_and_in_range_until_exhausted() {
        let mut t = PortTable::default();
        let span = usize::from(EPHEMERAL_LAST - EPHEMERAL_FIRST) + 1;
        let mut seen = hashbrown::HashSet::new();
        for i in 0..span {
            let id = t
                .bind_ephemeral(b(Proto::Tcp, None, 0, false, false), 12345 + i as u32 * 7)
                .unwrap();
            let port = t.get(id).unwrap().port;
            assert!((EPHEMERAL_FIRST..=EPHEMERAL_LAST).contains(&port));
            assert!(seen.insert(port), "port {port} handed out twice");
        }
        assert_eq!(
            t.bind_ephemeral(b(Proto::Tcp, None, 0, false, false), 1),
            None
        );
        // UDP has its own space.
        assert!(t
            .bind_ephemeral(b(Proto::Udp, None, 0, false, false), 1)
            .is_some());
        assert_eq!(t.len(), span + 1);
    }
}
