//! The interrupt-driven virtio-net device: Ethernet frames in and out through driver
//! owned buffers ([`NetQueues`]), never blocking, never spinning on the device.
//!
//! **Protocol.** The driver accepts `VIRTIO_NET_F_MAC` (the MAC address in the
//! configuration space), `VIRTIO_F_VERSION_1` when offered, and on legacy devices
//! `VIRTIO_F_ANY_LAYOUT` (header and frame share one descriptor); nothing else: no
//! checksum or segmentation offloads, no mergeable receive buffers, no control queue.
//! Every frame is preceded by a `virtio_net_hdr` of 12 bytes (virtio 1.x) or 10 (legacy,
//! no `num_buffers`); the driver sends it all zero (no offload asked for) and skips it
//! on receipt (without offloads there is nothing in it to act on).
//!
//! **Receive.** Every receive buffer stays posted; [`NetDevice::receive`] lends the
//! oldest frame to the callback, without the queue lock held, then posts its buffer
//! again. **Transmit.** [`NetDevice::transmit`] copies the frame into a free transmit
//! buffer and notifies the device; finished buffers are reclaimed on the next transmit,
//! without waiting. Transmit interrupts stay suppressed until the ring is full (then
//! `EAGAIN`, and the interrupt that announces free room is armed).
//!
//! **Interrupts.** [`VirtioNet::on_interrupt`] acknowledges the device and wakes
//! [`NET_EVENTS`], where the network thread sleeps: no allocation, no last reference
//! dropped. The queue lock is an [`IrqMutex`], held only for ring accesses.

use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};
use skiff_mm::virtio_net::{NetQueues, TxError};
use skiff_net::NetDevice;
use skiff_sched::irq::IrqMutex;
use skiff_sched::WaitQueue;

/// Woken by every virtio-net interrupt (a frame arrived, or transmit room came free
/// after `transmit` said `EAGAIN` or `can_transmit` said no). The network thread
/// sleeps here with its readiness check as the condition, for example
/// `NET_EVENTS.wait_until(deadline, false, || dev.rx_pending() || ...)`: the check runs
/// after registering, so an interrupt between the check and the sleep is not lost.
pub static NET_EVENTS: WaitQueue = WaitQueue::new();

/// Feature bits (virtio 1.2, 5.1.3 and 6).
pub const F_MAC: u64 = 1 << 5;
pub const F_MRG_RXBUF: u64 = 1 << 15;
pub const F_ANY_LAYOUT: u64 = 1 << 27;
pub const F_VERSION_1: u64 = 1 << 32;

/// The largest Ethernet frame (no FCS) for the standard 1500-byte MTU; without
/// `VIRTIO_NET_F_MTU` the device assumes that MTU too.
pub const MAX_FRAME: usize = 1514;
/// `virtio_net_hdr` with `num_buffers` (virtio 1.x, or mergeable buffers).
pub const HEADER_LEN: usize = 12;
/// The legacy header without `num_buffers`.
pub const LEGACY_HEADER_LEN: usize = 10;
/// Every buffer holds the longest header and the largest frame (the 1526 bytes the
/// spec asks for without offloads).
pub const BUFFER_LEN: usize = HEADER_LEN + MAX_FRAME;
const _: () = assert!(BUFFER_LEN >= LEGACY_HEADER_LEN + MAX_FRAME && BUFFER_LEN >= 1526);

/// The features to accept from `offered`, or `None` when the device needs something
/// this driver does not implement: a legacy device without `VIRTIO_F_ANY_LAYOUT` wants
/// the header in a descriptor of its own.
pub fn accept_features(offered: u64) -> Option<u64> {
    if offered & F_VERSION_1 != 0 {
        Some(offered & (F_MAC | F_VERSION_1))
    } else if offered & F_ANY_LAYOUT != 0 {
        Some(offered & (F_MAC | F_ANY_LAYOUT))
    } else {
        None
    }
}

/// Length of the `virtio_net_hdr` before every frame with `features` negotiated.
pub fn header_len(features: u64) -> usize {
    if features & (F_VERSION_1 | F_MRG_RXBUF) != 0 {
        HEADER_LEN
    } else {
        LEGACY_HEADER_LEN
    }
}

/// A locally administered unicast MAC from `seed`, for a device that offers none (the
/// spec asks the driver to make one up).
pub fn generated_mac(seed: u64) -> [u8; 6] {
    // A 64-bit mix so that nearby seeds (clock readings) give unrelated addresses.
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let b = x.to_le_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// The payload of a received buffer: the frame after the header, or `None` for a
/// buffer too short to hold a header and an Ethernet header.
pub fn received_frame(data: &[u8], header_len: usize) -> Option<&[u8]> {
    const ETHERNET_HEADER: usize = 14;
    data.get(header_len..)
        .filter(|frame| frame.len() >= ETHERNET_HEADER)
}

/// One virtio-net card.
pub struct VirtioNet {
    queues: IrqMutex<NetQueues>,
    mac: [u8; 6],
    header_len: usize,
    vector: u8,
    /// How the card is attached, for messages.
    location: String,
    /// Whether transmit interrupts are armed (the ring was found full).
    tx_irq_armed: AtomicBool,
    /// The device broke the queue protocol and was reported.
    reported_failure: AtomicBool,
    interrupts: AtomicU64,
    rx_frames: AtomicU64,
    tx_frames: AtomicU64,
    /// Buffers too short to be a frame, dropped.
    rx_runts: AtomicU64,
}

impl VirtioNet {
    /// Wrap initialised queues; `mac` is the card's address (from the configuration
    /// space, or made up).
    pub(crate) fn new(queues: NetQueues, mac: [u8; 6], vector: u8, location: String) -> Self {
        let header_len = header_len(queues.features());
        VirtioNet {
            queues: IrqMutex::new(queues),
            mac,
            header_len,
            vector,
            location,
            tx_irq_armed: AtomicBool::new(false),
            reported_failure: AtomicBool::new(false),
            interrupts: AtomicU64::new(0),
            rx_frames: AtomicU64::new(0),
            tx_frames: AtomicU64::new(0),
            rx_runts: AtomicU64::new(0),
        }
    }

    /// The interrupt vector the card raises.
    pub fn vector(&self) -> u8 {
        self.vector
    }

    /// How the card is attached (transport, address, interrupt).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The `virtio_net_hdr` length in use (10 or 12).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Interrupts taken, frames received and sent, runts dropped.
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.interrupts.load(Ordering::Relaxed),
            self.rx_frames.load(Ordering::Relaxed),
            self.tx_frames.load(Ordering::Relaxed),
            self.rx_runts.load(Ordering::Relaxed),
        )
    }

    /// The card's interrupt: acknowledge it and wake the network thread. Interrupt
    /// context: never allocates or frees.
    pub fn on_interrupt(&self) {
        self.queues.lock().ack_interrupt();
        self.interrupts.fetch_add(1, Ordering::Relaxed);
        NET_EVENTS.wake_all();
    }

    fn report_failure(&self) {
        if !self.reported_failure.swap(true, Ordering::Relaxed) {
            skiff_console::warn!(
                "virtio-net {}: the device returned a buffer it was never given; the card is out of service",
                self.location
            );
        }
    }

    /// Whether a transmit buffer is free; if not, arm the transmit interrupt and look
    /// again (the device may have finished in between). With the lock held.
    fn tx_room(&self, q: &mut NetQueues) -> bool {
        if q.tx_ready() {
            return true;
        }
        if !self.tx_irq_armed.swap(true, Ordering::Relaxed) {
            q.set_tx_interrupts(true);
        }
        q.tx_ready()
    }
}

impl NetDevice for VirtioNet {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn max_frame(&self) -> usize {
        MAX_FRAME
    }

    fn rx_pending(&self) -> bool {
        self.queues.lock().rx_ready()
    }

    fn receive(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        loop {
            let taken = self.queues.lock().take_rx();
            let buf = match taken {
                Ok(Some(buf)) => buf,
                Ok(None) => return false,
                Err(_) => {
                    self.report_failure();
                    return false;
                }
            };
            // The callback runs without the lock: the buffer is the driver's now.
            let delivered = match received_frame(buf.data(), self.header_len) {
                Some(frame) => {
                    f(frame);
                    self.rx_frames.fetch_add(1, Ordering::Relaxed);
                    true
                }
                None => {
                    self.rx_runts.fetch_add(1, Ordering::Relaxed);
                    false
                }
            };
            self.queues.lock().repost_rx(buf);
            if delivered {
                return true;
            }
        }
    }

    fn transmit_in_flight(&self) -> bool {
        self.queues.lock().tx_in_flight()
    }

    fn can_transmit(&self) -> bool {
        let mut q = self.queues.lock();
        !q.failed() && self.tx_room(&mut q)
    }

    fn transmit(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> KResult<()> {
        if len == 0 || len > MAX_FRAME {
            return Err(Errno::EINVAL);
        }
        let mut buf = {
            let mut q = self.queues.lock();
            let taken = if self.tx_room(&mut q) {
                q.take_tx()
            } else {
                Ok(None)
            };
            match taken {
                Ok(Some(buf)) => {
                    if self.tx_irq_armed.swap(false, Ordering::Relaxed) {
                        q.set_tx_interrupts(false);
                    }
                    buf
                }
                Ok(None) => return Err(Errno::EAGAIN),
                Err(_) => {
                    drop(q);
                    self.report_failure();
                    return Err(Errno::EIO);
                }
            }
        };
        // Fill it without the lock: the buffer is the driver's until submitted.
        let total = self.header_len + len;
        let bytes = buf.bytes_mut();
        bytes[..self.header_len].fill(0);
        f(&mut bytes[self.header_len..total]);
        let submitted = self.queues.lock().submit_tx(buf, total);
        match submitted {
            Ok(()) => {
                self.tx_frames.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TxError::BadLength) => Err(Errno::EINVAL),
            Err(TxError::DeviceFailed) => {
                self.report_failure();
                Err(Errno::EIO)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU 7.2's virtio-net offers with a user-mode (slirp) backend: over legacy
    /// virtio-mmio (microvm) and over virtio-pci or modern virtio-mmio (q35,
    /// `force-legacy=false`). Read from the devices.
    const QEMU_LEGACY: u64 = 0x39bf_8064;
    const QEMU_MODERN: u64 = 0x101_30bf_8024;

    #[test]
    fn accepts_only_what_the_driver_implements() {
        let legacy = accept_features(QEMU_LEGACY).unwrap();
        assert_eq!(legacy, F_MAC | F_ANY_LAYOUT);
        assert_eq!(header_len(legacy), LEGACY_HEADER_LEN);
        let modern = accept_features(QEMU_MODERN).unwrap();
        assert_eq!(modern, F_MAC | F_VERSION_1);
        assert_eq!(header_len(modern), HEADER_LEN);
    }

    #[test]
    fn version_1_takes_precedence_over_any_layout() {
        let f = accept_features(F_VERSION_1 | F_ANY_LAYOUT | F_MAC).unwrap();
        assert_eq!(f, F_VERSION_1 | F_MAC);
    }

    #[test]
    fn refuses_a_legacy_device_that_needs_a_separate_header_descriptor() {
        assert_eq!(accept_features(F_MAC | F_MRG_RXBUF), None);
        assert_eq!(accept_features(0), None);
    }

    #[test]
    fn works_without_a_mac_feature() {
        assert_eq!(accept_features(F_VERSION_1), Some(F_VERSION_1));
        assert_eq!(accept_features(F_ANY_LAYOUT), Some(F_ANY_LAYOUT));
    }

    #[test]
    fn mergeable_buffers_would_mean_the_long_header() {
        assert_eq!(header_len(F_MRG_RXBUF), HEADER_LEN);
        assert_eq!(header_len(0), LEGACY_HEADER_LEN);
    }

    #[test]
    fn received_frame_skips_the_header_and_drops_runts() {
        let mut data = [0u8; 12 + 60];
        data[12] = 0xff;
        let frame = received_frame(&data, 12).unwrap();
        assert_eq!(frame.len(), 60);
        assert_eq!(frame[0], 0xff);
        assert_eq!(received_frame(&data, 10).unwrap().len(), 62);
        assert_eq!(received_frame(&data[..12 + 13], 12), None);
        assert_eq!(
            received_frame(&data[..12 + 14], 12).map(|f| f.len()),
            Some(14)
        );
        assert_eq!(received_frame(&data[..5], 12), None);
    }

    #[test]
    fn generated_macs_are_local_unicast_and_differ() {
        for seed in 0..64 {
            let mac = generated_mac(seed);
            assert_eq!(mac[0] & 0x03, 0x02, "{mac:02x?}");
        }
        assert_ne!(generated_mac(1), generated_mac(2));
    }
}
