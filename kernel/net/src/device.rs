//! The contract between the stack and a network card driver: Ethernet frames in and
//! out, never blocking.
//!
//! The driver (virtio-net in `skiff-drivers`) owns the device's buffers; the stack only
//! borrows a frame for the duration of a callback. The driver's interrupt wakes whoever
//! runs the stack's poll loop; nothing here runs in interrupt context.

use skiff_errno::KResult;

/// A network interface card as the stack sees it.
pub trait NetDevice: Send + Sync {
    /// The card's MAC address.
    fn mac(&self) -> [u8; 6];
    /// The largest Ethernet frame (header and payload, no FCS) the card sends and
    /// receives: 1514 for a standard 1500-byte MTU.
    fn max_frame(&self) -> usize;
    /// Whether a received frame is waiting.
    fn rx_pending(&self) -> bool;
    /// Hand the oldest received frame to `f`, then give its buffer back to the card.
    /// `false` (and `f` not called) when no frame is waiting.
    fn receive(&self, f: &mut dyn FnMut(&[u8])) -> bool;
    /// Whether [`NetDevice::transmit`] would accept a frame now.
    fn can_transmit(&self) -> bool;
    /// Let `f` fill a frame of `len` bytes (at most [`NetDevice::max_frame`]) and queue
    /// it for sending. `EAGAIN` when the transmit ring is full, `EINVAL` for a bad
    /// length, `EIO` when the card has failed.
    fn transmit(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> KResult<()>;
    /// Whether frames handed to [`NetDevice::transmit`] are still waiting for the card
    /// to take them (the machine must not stop before it has).
    fn transmit_in_flight(&self) -> bool;
}
