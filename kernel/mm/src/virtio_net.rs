//! The receive and transmit queues of a virtio-net device, with the buffers they own.
//!
//! Every buffer is a heap allocation the driver made at initialisation, one descriptor
//! each (header and frame together, which `VIRTIO_F_VERSION_1` or the legacy
//! `VIRTIO_F_ANY_LAYOUT` permits). A buffer the device may read or write sits in the
//! queue's slot table, indexed by its descriptor's token, until the device hands it back
//! through the used ring; only then can it leave this module, as an [`RxBuffer`] or a
//! [`TxBuffer`]. Dropping [`NetQueues`] resets the device before any buffer is freed.
//! The virtio-net protocol itself (which features, the header's size and contents) is
//! the caller's (`skiff-drivers`): this module moves buffers and never looks inside.
//!
//! Why not `virtio_drivers::device::net::VirtIONetRaw`: it negotiates features the
//! driver does not implement (indirect descriptors, event index, the status field),
//! declares the driver ready before interrupt vectors can be chosen, and does not reset
//! the device when dropped; driving the same `VirtQueue` directly keeps the ownership
//! rules of [`crate::dma::VirtioBlk`].

use crate::dma::DmaHal;
use alloc::boxed::Box;
use alloc::vec::Vec;
use skiff_arch::layout::PAGE_SIZE;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, SomeTransport, Transport};
use virtio_drivers::Error;

/// Receive buffers kept posted. Enough to absorb a burst while the network thread waits
/// for the CPU under emulation; 128 × 1.5 KiB stays small.
pub const RX_QUEUE_SIZE: usize = 128;
/// Transmit buffers: frames queued for the device before `transmit` says `EAGAIN`.
pub const TX_QUEUE_SIZE: usize = 64;

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;

/// `VIRTIO_F_VERSION_1`: whether the device follows virtio 1.x (FEATURES_OK must stick).
const F_VERSION_1: u64 = 1 << 32;

/// Why a device could not be brought up.
#[derive(Debug)]
pub enum NetInitError {
    /// The device offers no set of features the caller can work with.
    Unsupported { offered: u64 },
    /// The device did not accept the features the driver chose.
    FeaturesRejected { accepted: u64 },
    /// No memory for the buffers.
    NoMemory,
    /// A queue could not be set up (for example the device's queues are too short).
    Virtio(Error),
}

/// The device broke the queue protocol (returned a buffer it was never given). Its
/// queues are unusable from then on; the device keeps whatever it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceFailed;

/// Why [`NetQueues::submit_tx`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// The length was 0 or longer than the buffer (the buffer went back to the free
    /// list).
    BadLength,
    /// See [`DeviceFailed`].
    DeviceFailed,
}

/// A received buffer, out of the device's hands: `data()` is what the device wrote
/// (header and frame). Give it back with [`NetQueues::repost_rx`].
pub struct RxBuffer {
    buf: Box<[u8]>,
    len: usize,
}

impl RxBuffer {
    /// The bytes the device wrote.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A free transmit buffer: fill it and hand it to [`NetQueues::submit_tx`], or give it
/// back unused with [`NetQueues::return_tx`].
pub struct TxBuffer {
    buf: Box<[u8]>,
}

impl TxBuffer {
    /// The whole buffer (header room included).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

/// A transmit buffer the device owns, with the length it was given (`pop_used` needs
/// the very slice `add` got).
struct Sent {
    buf: Box<[u8]>,
    len: usize,
}

/// The queues of one virtio-net device (receive queue 0, transmit queue 1) and every
/// buffer the driver owns. Safe to use: see the module documentation.
pub struct NetQueues {
    transport: SomeTransport<'static>,
    // Boxed: a queue carries a shadow of its descriptor table (4 KiB for the receive
    // queue), too much to move around by value on a 64 KiB boot stack.
    rx: Box<VirtQueue<DmaHal, RX_QUEUE_SIZE>>,
    tx: Box<VirtQueue<DmaHal, TX_QUEUE_SIZE>>,
    features: u64,
    /// Receive buffers the device owns, by token.
    rx_posted: Vec<Option<Box<[u8]>>>,
    /// Receive buffers that could not be posted again (a refused `add`); retried.
    rx_spare: Vec<Box<[u8]>>,
    /// Transmit buffers the device owns, by token.
    tx_posted: Vec<Option<Sent>>,
    /// Transmit buffers the driver may fill. Room for all of them is reserved.
    tx_free: Vec<Box<[u8]>>,
    failed: bool,
}

// SAFETY: the transport holds pointers to device registers and the queues point to DMA
// frames this value owns; none is tied to a thread, and only `&mut self` methods touch
// them (callers put the queues behind a lock).
unsafe impl Send for NetQueues {}

fn buffer(len: usize) -> Result<Box<[u8]>, NetInitError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| NetInitError::NoMemory)?;
    v.resize(len, 0);
    Ok(v.into_boxed_slice())
}

fn buffers(count: usize, len: usize) -> Result<Vec<Box<[u8]>>, NetInitError> {
    let mut v = Vec::new();
    v.try_reserve_exact(count)
        .map_err(|_| NetInitError::NoMemory)?;
    for _ in 0..count {
        v.push(buffer(len)?);
    }
    Ok(v)
}

impl NetQueues {
    /// Reset the device, let `accept` choose from the offered features (`None`: refuse
    /// the device), set up both queues with buffers of `buffer_len` bytes, run
    /// `before_ready` just before the driver declares itself ready (the place to choose
    /// interrupt vectors), then post every receive buffer. Interrupts stay enabled on
    /// the receive queue and suppressed on the transmit queue (see
    /// [`NetQueues::set_tx_interrupts`]).
    pub fn new(
        mut transport: SomeTransport<'static>,
        buffer_len: usize,
        accept: impl FnOnce(u64) -> Option<u64>,
        before_ready: impl FnOnce(),
    ) -> Result<NetQueues, NetInitError> {
        // Buffers first: running out of memory then leaves the device untouched.
        let rx_buffers = buffers(RX_QUEUE_SIZE, buffer_len)?;
        let tx_free = buffers(TX_QUEUE_SIZE, buffer_len)?;
        let mut rx_posted = Vec::new();
        let mut tx_posted = Vec::new();
        let mut rx_spare = Vec::new();
        let reserved = rx_posted
            .try_reserve_exact(RX_QUEUE_SIZE)
            .and_then(|_| tx_posted.try_reserve_exact(TX_QUEUE_SIZE))
            .and_then(|_| rx_spare.try_reserve_exact(RX_QUEUE_SIZE));
        reserved.map_err(|_| NetInitError::NoMemory)?;
        rx_posted.resize_with(RX_QUEUE_SIZE, || None);
        tx_posted.resize_with(TX_QUEUE_SIZE, || None);

        let t = &mut transport;
        t.set_status(DeviceStatus::empty());
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let offered = t.read_device_features();
        let Some(features) = accept(offered) else {
            t.set_status(DeviceStatus::FAILED);
            return Err(NetInitError::Unsupported { offered });
        };
        t.write_driver_features(features);
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
        if features & F_VERSION_1 != 0 && !t.get_status().contains(DeviceStatus::FEATURES_OK) {
            t.set_status(DeviceStatus::FAILED);
            return Err(NetInitError::FeaturesRejected { accepted: features });
        }
        t.set_guest_page_size(PAGE_SIZE as u32);
        let rx = match VirtQueue::new(t, RX_QUEUE, false, false) {
            Ok(q) => Box::new(q),
            Err(e) => {
                t.set_status(DeviceStatus::FAILED);
                return Err(NetInitError::Virtio(e));
            }
        };
        let mut tx = match VirtQueue::new(t, TX_QUEUE, false, false) {
            Ok(q) => Box::new(q),
            Err(e) => {
                // Reset (the device forgets the receive queue) before its rings are freed.
                t.set_status(DeviceStatus::empty());
                drop(rx);
                return Err(NetInitError::Virtio(e));
            }
        };
        // Transmit completions only matter when the driver runs out of buffers.
        tx.set_dev_notify(false);
        before_ready();
        t.finish_init();
        let mut q = NetQueues {
            transport,
            rx,
            tx,
            features,
            rx_posted,
            rx_spare,
            tx_posted,
            tx_free,
            failed: false,
        };
        for buf in rx_buffers {
            q.post_rx(buf);
        }
        q.notify_rx();
        Ok(q)
    }

    /// The features the driver accepted.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Read bytes `[offset, offset + N)` of the device-specific configuration space
    /// consistently (retrying while the device changes it).
    pub fn config_bytes<const N: usize>(&self, offset: usize) -> Result<[u8; N], Error> {
        self.transport.read_consistent(|| {
            let mut out = [0u8; N];
            for (i, b) in out.iter_mut().enumerate() {
                *b = self.transport.read_config_space(offset + i)?;
            }
            Ok(out)
        })
    }

    /// Whether the device broke the queue protocol earlier.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether a received buffer is waiting.
    pub fn rx_ready(&self) -> bool {
        !self.failed && self.rx.can_pop()
    }

    /// Take the oldest received buffer out of the queue.
    pub fn take_rx(&mut self) -> Result<Option<RxBuffer>, DeviceFailed> {
        self.retry_spare_rx();
        if self.failed {
            return Err(DeviceFailed);
        }
        let Some(token) = self.rx.peek_used() else {
            return Ok(None);
        };
        let Some(mut buf) = self
            .rx_posted
            .get_mut(token as usize)
            .and_then(|slot| slot.take())
        else {
            self.failed = true;
            return Err(DeviceFailed);
        };
        // SAFETY: `buf` is the buffer `post_rx` added under this token (the slot table
        // holds exactly the buffers in flight, by token), whole, as it was added.
        let used = unsafe { self.rx.pop_used(token, &[], &mut [&mut buf[..]]) };
        match used {
            Ok(len) => {
                let len = (len as usize).min(buf.len());
                Ok(Some(RxBuffer { buf, len }))
            }
            Err(_) => {
                // Cannot happen after a successful peek; keep the device's buffer.
                self.rx_posted[token as usize] = Some(buf);
                self.failed = true;
                Err(DeviceFailed)
            }
        }
    }

    /// Give a received buffer back to the device.
    pub fn repost_rx(&mut self, buf: RxBuffer) {
        if self.failed {
            return; // The device is unusable; the buffer is simply freed.
        }
        self.post_rx(buf.buf);
        self.notify_rx();
    }

    fn post_rx(&mut self, mut buf: Box<[u8]>) {
        // SAFETY: the buffer moves into the slot table right below (its heap storage does
        // not move) and leaves it only in `take_rx`, after `pop_used` returned it, or
        // when the device has been reset (`Drop`).
        let added = unsafe { self.rx.add(&[], &mut [&mut buf[..]]) };
        match added {
            Ok(token) => self.park(token, buf),
            // Only a full queue refuses a one-buffer chain, and the table has no more
            // buffers than the queue has descriptors; keep it for later all the same.
            Err(_) => self.rx_spare.push(buf),
        }
    }

    fn park(&mut self, token: u16, buf: Box<[u8]>) {
        match self.rx_posted.get_mut(token as usize) {
            Some(slot @ None) => *slot = Some(buf),
            _ => {
                // A token that is out of range or already in flight: the queue's
                // bookkeeping is broken. The device may own this buffer now, so it must
                // never be freed.
                core::mem::forget(buf);
                self.failed = true;
            }
        }
    }

    fn retry_spare_rx(&mut self) {
        if self.rx_spare.is_empty() || self.failed {
            return;
        }
        while self.rx.available_desc() > 0 {
            let Some(buf) = self.rx_spare.pop() else {
                break;
            };
            self.post_rx(buf);
        }
        self.notify_rx();
    }

    fn notify_rx(&mut self) {
        if self.rx.should_notify() {
            self.transport.notify(RX_QUEUE);
        }
    }

    /// Whether a transmit buffer is free or can be reclaimed now.
    pub fn tx_ready(&self) -> bool {
        !self.failed && (!self.tx_free.is_empty() || self.tx.can_pop())
    }

    /// Whether the device still holds transmit buffers it has not finished with (after
    /// taking back those it has).
    pub fn tx_in_flight(&mut self) -> bool {
        let _ = self.reclaim_tx();
        !self.failed && self.tx_posted.iter().any(Option::is_some)
    }

    /// Take back every transmit buffer the device has finished with.
    pub fn reclaim_tx(&mut self) -> Result<(), DeviceFailed> {
        while !self.failed {
            let Some(token) = self.tx.peek_used() else {
                break;
            };
            let Some(sent) = self
                .tx_posted
                .get_mut(token as usize)
                .and_then(|slot| slot.take())
            else {
                self.failed = true;
                break;
            };
            // SAFETY: `sent` is the buffer and length `submit_tx` added under this token.
            let used = unsafe { self.tx.pop_used(token, &[&sent.buf[..sent.len]], &mut []) };
            match used {
                // Room for every transmit buffer was reserved: this push never allocates.
                Ok(_) => self.tx_free.push(sent.buf),
                Err(_) => {
                    self.tx_posted[token as usize] = Some(sent);
                    self.failed = true;
                }
            }
        }
        if self.failed {
            Err(DeviceFailed)
        } else {
            Ok(())
        }
    }

    /// A free transmit buffer (reclaiming finished ones first); `None` while the device
    /// holds them all.
    pub fn take_tx(&mut self) -> Result<Option<TxBuffer>, DeviceFailed> {
        self.reclaim_tx()?;
        Ok(self.tx_free.pop().map(|buf| TxBuffer { buf }))
    }

    /// Give back a transmit buffer that was not sent.
    pub fn return_tx(&mut self, buf: TxBuffer) {
        self.tx_free.push(buf.buf);
    }

    /// Hand the first `len` bytes of `buf` to the device and notify it.
    pub fn submit_tx(&mut self, buf: TxBuffer, len: usize) -> Result<(), TxError> {
        let buf = buf.buf;
        if self.failed {
            return Err(TxError::DeviceFailed);
        }
        if len == 0 || len > buf.len() {
            self.tx_free.push(buf);
            return Err(TxError::BadLength);
        }
        // SAFETY: the buffer moves into the slot table right below and leaves it only in
        // `reclaim_tx`, after `pop_used` returned it, or when the device has been reset.
        let added = unsafe { self.tx.add(&[&buf[..len]], &mut []) };
        match added {
            Ok(token) => match self.tx_posted.get_mut(token as usize) {
                Some(slot @ None) => *slot = Some(Sent { buf, len }),
                _ => {
                    // As in `park`: broken bookkeeping, the device may own the buffer.
                    core::mem::forget(buf);
                    self.failed = true;
                    return Err(TxError::DeviceFailed);
                }
            },
            Err(_) => {
                // Full: cannot happen with no more buffers than descriptors.
                self.tx_free.push(buf);
                self.failed = true;
                return Err(TxError::DeviceFailed);
            }
        }
        if self.tx.should_notify() {
            self.transport.notify(TX_QUEUE);
        }
        Ok(())
    }

    /// Ask for (or stop asking for) an interrupt when the device finishes a transmit
    /// buffer. A hint the device may ignore; after enabling, check [`tx_ready`] again
    /// before sleeping, in case the device finished in between.
    ///
    /// [`tx_ready`]: NetQueues::tx_ready
    pub fn set_tx_interrupts(&mut self, enable: bool) {
        self.tx.set_dev_notify(enable);
    }

    /// Acknowledge the device's interrupt (deasserts a virtio-mmio or INTx line; a
    /// harmless read with MSI-X). Safe in interrupt context: no allocation, no drops.
    pub fn ack_interrupt(&mut self) -> bool {
        !self.transport.ack_interrupt().is_empty()
    }
}

impl Drop for NetQueues {
    fn drop(&mut self) {
        // Stop the device before the queues and the buffers it may own are freed.
        self.transport.set_status(DeviceStatus::empty());
    }
}
