//! Memory that devices read and write: the `virtio-drivers` HAL ([`DmaHal`]: rings in
//! contiguous frames, buffers translated through the direct map) and a virtio-blk request
//! queue ([`VirtioBlk`]) whose requests own their buffers, so the device can never
//! write into memory that was freed or handed to someone else while a request is in
//! flight. `skiff-drivers` builds the interrupt-driven block device on top; everything
//! here that the `virtio-drivers` API marks `unsafe` happens in this module.
//!
//! Why not `virtio_drivers::device::blk::VirtIOBlk`: its flush (and get-ID) requests only
//! exist as blocking calls that spin until the device answers, while every request here
//! must be submittable without waiting so that the caller can sleep until the device's
//! interrupt. [`VirtioBlk`] therefore drives the same transport and `VirtQueue` itself,
//! with the request layout of the virtio spec (5.2.6).

use crate::frames;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use skiff_arch::layout::{is_user, phys_to_virt, virt_to_phys, PAGE_SIZE};
use skiff_arch::pci::MmioWindow;
use skiff_errno::{Errno, KResult};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, SomeTransport, Transport};
use virtio_drivers::{BufferDirection, Error, Hal, PhysAddr};

/// The `virtio-drivers` HAL: DMA memory is whole frames from the frame allocator, and
/// every kernel address the drivers hand to a device is translated through the direct
/// map (heap and frames) or the kernel image mapping; no bounce buffers, no IOMMU.
pub struct DmaHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, physically contiguous frames that
// nothing else owns until `dma_dealloc` returns them; `mmio_phys_to_virt` returns
// direct-map addresses after checking the direct map covers the region (the first
// 4 GiB, plus what `map_device_registers` added); `share` translates addresses of kernel
// memory, which is mapped linearly.
unsafe impl Hal for DmaHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(phys) = frames::alloc_contiguous(pages as u64, PAGE_SIZE) else {
            // `Dma::new` reports a zero address as `Error::DmaError`.
            return (0, NonNull::dangling());
        };
        let virt = phys_to_virt(phys) as *mut u8;
        // SAFETY: the frames were just allocated, so nothing else references them, and
        // the direct map covers all RAM.
        unsafe { core::ptr::write_bytes(virt, 0, pages * PAGE_SIZE as usize) };
        (
            phys,
            NonNull::new(virt).expect("direct-map addresses are not null"),
        )
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        for i in 0..pages as u64 {
            frames::free_frame(paddr + i * PAGE_SIZE);
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        assert!(
            paddr
                .checked_add(size as u64)
                .is_some_and(|e| e <= skiff_arch::pci::direct_map_end()),
            "device registers at {paddr:#x} lie outside the direct map"
        );
        NonNull::new(phys_to_virt(paddr) as *mut u8).expect("direct-map addresses are not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        assert!(!is_user(va), "DMA to an application address {va:#x}");
        virt_to_phys(va)
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Highest physical address device registers may reach: the firmware puts 64-bit BARs
/// just above RAM or in a window a few tens of GiB up, and each GiB mapped costs a page
/// of page tables.
const MAX_DEVICE_END: u64 = 1 << 40;

/// Make device registers at `[phys, phys + len)` reachable through the direct map (for
/// PCI BARs the firmware placed above 4 GiB; a no-op below). Maps with 2 MiB pages.
pub fn map_device_registers(phys: u64, len: u64) -> KResult<()> {
    let end = phys.checked_add(len).ok_or(Errno::EINVAL)?;
    if end <= skiff_arch::pci::direct_map_end() {
        return Ok(());
    }
    if end > MAX_DEVICE_END {
        return Err(Errno::ENOMEM);
    }
    let end = end.next_multiple_of(2 << 20);
    crate::paging::extend_direct_map(end)?;
    skiff_arch::pci::note_direct_map_end(end);
    Ok(())
}

/// The virtio-mmio transport behind `window` (a window from
/// [`MmioWindow::virtio_mmio`]); fails if no virtio device answers there.
pub fn mmio_transport(window: MmioWindow) -> Result<SomeTransport<'static>, MmioError> {
    let header = NonNull::new(window.virt() as *mut VirtIOHeader)
        .expect("direct-map addresses are not null");
    // SAFETY: `window` covers device registers in the MMIO hole (never RAM), mapped by the
    // direct map for the kernel's whole life; it is consumed here, so the transport is
    // the only user of those registers.
    let t = unsafe { MmioTransport::new(header, window.len() as usize) }?;
    Ok(SomeTransport::Mmio(t))
}

/// Entries in the one request queue. Only one request is in flight at a time, so a
/// small ring suffices.
const QUEUE_SIZE: usize = 16;
const QUEUE: u16 = 0;

/// Feature bits (virtio 1.2, 5.2.3 and 6).
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_VERSION_1: u64 = 1 << 32;

/// Request types (5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;

/// Status bytes (5.2.6).
pub const STATUS_OK: u8 = 0;
pub const STATUS_IOERR: u8 = 1;
pub const STATUS_UNSUPP: u8 = 2;

/// Length of the device-ID string (`VIRTIO_BLK_ID_BYTES`).
pub const ID_BYTES: usize = 20;

/// What the device offers, as negotiated.
#[derive(Clone, Copy, Debug)]
pub struct BlkInfo {
    /// Capacity in 512-byte sectors.
    pub capacity: u64,
    pub read_only: bool,
    /// Whether FLUSH requests exist (otherwise the device has no volatile cache).
    pub flush: bool,
    /// Whether the transport is virtio 1.x (not legacy).
    pub modern: bool,
}

/// Why a device could not be brought up.
#[derive(Debug)]
pub enum InitError {
    /// The device refused the features we accept.
    Features,
    /// The configuration space or the queue could not be set up.
    Virtio(Error),
}

/// One request for [`VirtioBlk::submit`].
#[derive(Debug)]
pub enum Request {
    /// Read `sectors` sectors starting at `sector`.
    Read { sector: u64, sectors: usize },
    /// Write `data` (whole sectors) starting at `sector`.
    Write { sector: u64, data: Vec<u8> },
    /// Make completed writes durable.
    Flush,
    /// Fetch the device's ID string (serial).
    GetId,
}

/// A finished request: the device's status byte and the data buffer (what was read, the
/// ID string, or the data that was written).
#[derive(Debug)]
pub struct Completion {
    pub status: u8,
    pub data: Vec<u8>,
}

/// Why a request could not be submitted.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// A request is still in flight.
    Busy,
    /// No memory for the request's buffers.
    NoMemory,
    /// The queue refused the request.
    Virtio(Error),
}

/// The buffers of the request in flight, owned here until the device gives them back.
/// Boxed and vector storage stays put when this struct moves.
struct InFlight {
    token: u16,
    kind: u32,
    header: Box<[u8; 16]>,
    data: Vec<u8>,
    status: Box<[u8; 1]>,
}

impl InFlight {
    /// Hand the request's buffers, in queue order, to `f`: device-readable ones as
    /// `inputs`, device-writable ones as `outputs`. The same slices every time, which is
    /// what `VirtQueue::add` and `pop_used` require.
    fn buffers<R>(
        &mut self,
        f: impl for<'a> FnOnce(&'a [&'a [u8]], &'a mut [&'a mut [u8]]) -> R,
    ) -> R {
        let header: &[u8] = &self.header[..];
        let status: &mut [u8] = &mut self.status[..];
        match self.kind {
            T_OUT => f(&[header, &self.data], &mut [status]),
            T_FLUSH => f(&[header], &mut [status]),
            _ => f(&[header], &mut [&mut self.data, status]),
        }
    }
}

/// A virtio-blk device's request queue with at most one request in flight. Safe to use:
/// the buffers of a submitted request belong to this queue until [`take_completion`]
/// returns them, and dropping the queue resets the device before any buffer is freed.
///
/// [`take_completion`]: VirtioBlk::take_completion
pub struct VirtioBlk {
    transport: SomeTransport<'static>,
    queue: VirtQueue<DmaHal, QUEUE_SIZE>,
    info: BlkInfo,
    in_flight: Option<InFlight>,
}

// SAFETY: the transports are MMIO pointers to device registers and the queue points to
// DMA frames this value owns; neither is tied to a thread, and `&mut self` methods are
// the only way to touch them (callers put the queue behind a lock).
unsafe impl Send for VirtioBlk {}

impl VirtioBlk {
    /// Reset the device, negotiate features, and set up its queue; `before_ready` runs
    /// just before the driver declares itself ready (the place to choose interrupt
    /// vectors). Interrupts stay enabled in the queue: every completion interrupts.
    pub fn new(
        mut transport: SomeTransport<'static>,
        before_ready: impl FnOnce(),
    ) -> Result<VirtioBlk, InitError> {
        let t = &mut transport;
        t.set_status(DeviceStatus::empty());
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let offered = t.read_device_features();
        let features = offered & (F_RO | F_FLUSH | F_VERSION_1);
        t.write_driver_features(features);
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
        let modern = features & F_VERSION_1 != 0;
        if modern && !t.get_status().contains(DeviceStatus::FEATURES_OK) {
            t.set_status(DeviceStatus::FAILED);
            return Err(InitError::Features);
        }
        t.set_guest_page_size(PAGE_SIZE as u32);
        let capacity = t
            .read_consistent(|| {
                let lo: u32 = t.read_config_space(0)?;
                let hi: u32 = t.read_config_space(4)?;
                Ok((hi as u64) << 32 | lo as u64)
            })
            .map_err(InitError::Virtio);
        let capacity = match capacity {
            Ok(c) => c,
            Err(e) => {
                t.set_status(DeviceStatus::FAILED);
                return Err(e);
            }
        };
        let queue = match VirtQueue::new(t, QUEUE, false, false) {
            Ok(q) => q,
            Err(e) => {
                t.set_status(DeviceStatus::FAILED);
                return Err(InitError::Virtio(e));
            }
        };
        before_ready();
        t.finish_init();
        Ok(VirtioBlk {
            transport,
            queue,
            info: BlkInfo {
                capacity,
                read_only: features & F_RO != 0,
                flush: features & F_FLUSH != 0,
                modern,
            },
            in_flight: None,
        })
    }

    pub fn info(&self) -> BlkInfo {
        self.info
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Hand `req` to the device. Returns at once; the device interrupts when it is done.
    pub fn submit(&mut self, req: Request) -> Result<(), SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        let (kind, sector, data) = match req {
            Request::Read { sector, sectors } => (T_IN, sector, zeroed(sectors * 512)?),
            Request::Write { sector, data } => (T_OUT, sector, data),
            Request::Flush => (T_FLUSH, 0, Vec::new()),
            Request::GetId => (T_GET_ID, 0, zeroed(ID_BYTES)?),
        };
        if kind != T_FLUSH && data.is_empty() {
            // The queue refuses empty buffers; a request for nothing has nothing to do.
            return Err(SubmitError::Virtio(Error::InvalidParam));
        }
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&kind.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        let mut req = InFlight {
            token: 0,
            kind,
            header: Box::new(header),
            data,
            status: Box::new([0xff]),
        };
        let queue = &mut self.queue;
        // SAFETY: the buffers belong to `req`, which moves into `self.in_flight` (heap
        // storage does not move with it) and is neither read nor written nor dropped
        // until `take_completion` has popped the same token with the same buffers, or the
        // device has been reset (`Drop`).
        let token = req
            .buffers(|inputs, outputs| unsafe { queue.add(inputs, outputs) })
            .map_err(SubmitError::Virtio)?;
        req.token = token;
        self.in_flight = Some(req);
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        Ok(())
    }

    /// Whether the request in flight has completed.
    pub fn done(&self) -> bool {
        self.in_flight.is_some() && self.queue.can_pop()
    }

    /// The completed request, if the request in flight has completed.
    pub fn take_completion(&mut self) -> Option<Result<Completion, Error>> {
        if !self.done() {
            return None;
        }
        let mut req = self.in_flight.take()?;
        let queue = &mut self.queue;
        let token = req.token;
        // SAFETY: the same token and buffers that `submit` added; the device has put the
        // chain in the used ring, so it no longer touches them.
        let popped =
            req.buffers(|inputs, outputs| unsafe { queue.pop_used(token, inputs, outputs) });
        match popped {
            Ok(_) => Some(Ok(Completion {
                status: req.status[0],
                data: req.data,
            })),
            Err(e) => {
                // Not our chain: the device misbehaves. Keep the buffers (the device may
                // still own them) and report the error.
                self.in_flight = Some(req);
                Some(Err(e))
            }
        }
    }

    /// Acknowledge the device's interrupt (deasserts an INTx or virtio-mmio line; a
    /// harmless read with MSI-X). Safe in interrupt context: no allocation, no drops.
    pub fn ack_interrupt(&mut self) -> bool {
        !self.transport.ack_interrupt().is_empty()
    }
}

fn zeroed(len: usize) -> Result<Vec<u8>, SubmitError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| SubmitError::NoMemory)?;
    v.resize(len, 0);
    Ok(v)
}

impl Drop for VirtioBlk {
    fn drop(&mut self) {
        // Stop the device before the queue and any in-flight buffers are freed.
        self.transport.set_status(DeviceStatus::empty());
    }
}
