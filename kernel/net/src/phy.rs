//! The two links smoltcp sends through: the network card (Ethernet frames through a
//! [`NetDevice`]) and loopback (IP packets in a queue).
//!
//! smoltcp pulls received frames from its `Device`, but the stack classifies every frame
//! before smoltcp sees it (to pick the socket set that should process it, and to drop
//! SYNs for a full accept queue), so receiving goes through one *staged* frame: the
//! stack takes a frame from the card or the loopback queue, looks at it, stages it here,
//! and lets smoltcp process exactly that one. Transmitting goes straight to the card or
//! to the back of the loopback queue.
//!
//! smoltcp's own `Loopback` device keeps its queue private, which would hide packets from
//! the classification, hence this one (same behaviour: FIFO, 64 KiB MTU, no checksums).

use crate::device::NetDevice;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use skiff_errno::Errno;
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The loopback link's MTU, as Linux's `lo` (65536 there; smoltcp's IPv4 length field
/// tops out at 65535).
pub(crate) const LOOPBACK_MTU: usize = 65535;
/// Ethernet header length (no VLAN tag).
pub(crate) const ETHERNET_HEADER: usize = 14;

/// Where a link's frames go.
pub(crate) enum Wire {
    Nic(Arc<dyn NetDevice>),
    Loopback(VecDeque<Vec<u8>>),
}

/// A smoltcp `Device` over the card or the loopback queue.
pub(crate) struct LinkPhy {
    pub(crate) medium: Wire,
    /// The frame smoltcp may receive next (see the module docs).
    staged: Option<Vec<u8>>,
    /// The largest frame (Ethernet) or packet (loopback) the link carries.
    mtu: usize,
    /// The card refused a frame since this was last cleared (its transmit ring is full).
    pub(crate) tx_exhausted: bool,
}

impl LinkPhy {
    pub(crate) fn nic(device: Arc<dyn NetDevice>) -> LinkPhy {
        let mtu = device.max_frame();
        LinkPhy {
            medium: Wire::Nic(device),
            staged: None,
            mtu,
            tx_exhausted: false,
        }
    }

    pub(crate) fn loopback() -> LinkPhy {
        LinkPhy {
            medium: Wire::Loopback(VecDeque::new()),
            staged: None,
            mtu: LOOPBACK_MTU,
            tx_exhausted: false,
        }
    }

    /// Offer `frame` to smoltcp's next receive.
    pub(crate) fn stage(&mut self, frame: Vec<u8>) {
        self.staged = Some(frame);
    }

    /// Drop a frame smoltcp did not take (it never does, but a stale frame must not be
    /// processed twice).
    pub(crate) fn unstage(&mut self) {
        self.staged = None;
    }

    /// The next packet looped back, if any.
    pub(crate) fn pop_loopback(&mut self) -> Option<Vec<u8>> {
        match &mut self.medium {
            Wire::Loopback(q) => q.pop_front(),
            Wire::Nic(_) => None,
        }
    }

    /// The largest IP packet the link carries.
    pub(crate) fn ip_mtu(&self) -> usize {
        match self.medium {
            Wire::Nic(_) => self.mtu - ETHERNET_HEADER,
            Wire::Loopback(_) => self.mtu,
        }
    }
}

pub(crate) struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

pub(crate) enum TxToken<'a> {
    Nic {
        device: &'a dyn NetDevice,
        exhausted: &'a mut bool,
    },
    Loopback(&'a mut VecDeque<Vec<u8>>),
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self {
            TxToken::Nic { device, exhausted } => {
                let mut f = Some(f);
                let mut result = None;
                let sent = device.transmit(len, &mut |buf| {
                    if let Some(f) = f.take() {
                        result = Some(f(buf));
                    }
                });
                if sent == Err(Errno::EAGAIN) {
                    *exhausted = true;
                }
                match (result, f.take()) {
                    (Some(r), _) => r,
                    // The card refused the frame before filling it (its ring filled up,
                    // or it failed): smoltcp still needs its closure run; the frame is
                    // lost and TCP's retransmission recovers it.
                    (None, Some(f)) => f(&mut vec![0; len]),
                    (None, None) => unreachable!("the closure ran but produced nothing"),
                }
            }
            TxToken::Loopback(queue) => {
                let mut packet = vec![0; len];
                let r = f(&mut packet);
                queue.push_back(packet);
                r
            }
        }
    }
}

impl phy::Device for LinkPhy {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.staged.take()?;
        let tx = match &mut self.medium {
            Wire::Nic(device) => TxToken::Nic {
                device: &**device,
                exhausted: &mut self.tx_exhausted,
            },
            Wire::Loopback(q) => TxToken::Loopback(q),
        };
        Some((RxToken(frame), tx))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        match &mut self.medium {
            Wire::Nic(device) => {
                if !device.can_transmit() {
                    self.tx_exhausted = true;
                    return None;
                }
                Some(TxToken::Nic {
                    device: &**device,
                    exhausted: &mut self.tx_exhausted,
                })
            }
            Wire::Loopback(q) => Some(TxToken::Loopback(q)),
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = self.mtu;
        match self.medium {
            Wire::Nic(_) => caps.medium = Medium::Ethernet,
            Wire::Loopback(_) => {
                caps.medium = Medium::Ip;
                // Packets never leave memory: like Linux's `lo`, skip checksums.
                caps.checksum = ChecksumCapabilities::ignored();
            }
        }
        caps
    }
}
