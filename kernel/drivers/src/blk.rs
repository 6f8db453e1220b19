//! The interrupt-driven virtio-blk device: one request in flight, the submitting thread
//! asleep until the device interrupts.
//!
//! **Locks.** The request queue ([`VirtioBlk`]) sits behind an [`IrqMutex`], held only
//! for the few register and ring accesses of a submit, a completion check or an
//! interrupt acknowledgement, never across a sleep; with interrupts masked while it is
//! held, the interrupt handler can always take it on this CPU. Threads take turns on the
//! device with the `busy` flag and the `turn` wait queue, where they sleep rather than
//! spin (the holder of the device may be asleep itself, waiting for the device).
//!
//! **Interrupt context.** [`VirtioBlock::on_interrupt`] acknowledges the device and wakes
//! the waiting thread: no allocation, no drop of a last reference (the wait queue's
//! waiters are kept alive by the threads waiting on them).
//!
//! **Boot context.** Before application threads exist the boot thread (the scheduler's
//! idle thread, which cannot sleep) polls the used ring instead.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use skiff_arch::time;
use skiff_block::{check_request, BlockDevice, IoError, SECTOR_SIZE};
use skiff_mm::dma::{
    BlkInfo, Completion, Request, SubmitError, VirtioBlk, STATUS_OK, STATUS_UNSUPP,
};
use skiff_sched::irq::IrqMutex;
use skiff_sched::WaitQueue;

/// Largest request sent to the device; longer transfers are split (it bounds the size
/// of the buffer a request owns).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How long a request may take before the device is considered dead. Generous: under
/// emulation a host `fsync` of a large image can take seconds.
const REQUEST_TIMEOUT_NS: u64 = 30_000_000_000;

/// One virtio-blk disk.
pub struct VirtioBlock {
    queue: IrqMutex<VirtioBlk>,
    info: BlkInfo,
    serial: Vec<u8>,
    vector: u8,
    /// How the device is attached, for messages ("virtio-mmio@0xfeb00e00 gsi 12").
    location: String,
    /// A thread owns the device (has a request in flight or is about to).
    busy: AtomicBool,
    /// Threads waiting for their turn.
    turn: WaitQueue,
    /// The owner waiting for its request to complete.
    done: WaitQueue,
    interrupts: AtomicU64,
}

impl VirtioBlock {
    /// Wrap an initialised queue. Reads the device's serial by polling (callers run at
    /// boot, before the device's interrupt is routed).
    pub(crate) fn new(mut queue: VirtioBlk, vector: u8, location: String) -> VirtioBlock {
        let info = queue.info();
        let serial = read_serial_polling(&mut queue);
        VirtioBlock {
            queue: IrqMutex::new(queue),
            info,
            serial,
            vector,
            location,
            busy: AtomicBool::new(false),
            turn: WaitQueue::new(),
            done: WaitQueue::new(),
            interrupts: AtomicU64::new(0),
        }
    }

    /// The interrupt vector the device raises.
    pub fn vector(&self) -> u8 {
        self.vector
    }

    /// How the device is attached (transport, address, interrupt).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Interrupts taken so far.
    pub fn interrupt_count(&self) -> u64 {
        self.interrupts.load(Ordering::Relaxed)
    }

    /// The device's interrupt: acknowledge it and wake the thread waiting for the
    /// request. Interrupt context: never allocates or frees.
    pub fn on_interrupt(&self) {
        self.queue.lock().ack_interrupt();
        self.interrupts.fetch_add(1, Ordering::Relaxed);
        self.done.wake_all();
    }

    /// Run one request to completion.
    fn request(&self, req: Request) -> Result<Completion, IoError> {
        let boot = in_boot_context();
        if boot {
            // The idle thread cannot sleep; let the owner run until it is done.
            while self.busy.swap(true, Ordering::AcqRel) {
                skiff_sched::yield_now();
                core::hint::spin_loop();
            }
        } else {
            // Cannot fail: no deadline, not interruptible.
            let _ = self
                .turn
                .wait_until(None, false, || !self.busy.swap(true, Ordering::AcqRel));
        }
        let result = self.run(req, boot);
        self.busy.store(false, Ordering::Release);
        self.turn.wake_all();
        result
    }

    fn run(&self, req: Request, boot: bool) -> Result<Completion, IoError> {
        {
            let mut q = self.queue.lock();
            if q.busy() {
                // A request that timed out earlier: reap it if the device has finished.
                let _ = q.take_completion();
                if q.busy() {
                    return Err(IoError::Device);
                }
            }
            match q.submit(req) {
                Ok(()) => {}
                Err(SubmitError::Busy | SubmitError::NoMemory | SubmitError::Virtio(_)) => {
                    return Err(IoError::Device)
                }
            }
        }
        let deadline = time::monotonic_ns().saturating_add(REQUEST_TIMEOUT_NS);
        let finished = if boot {
            loop {
                if self.queue.lock().done() {
                    break true;
                }
                if time::monotonic_ns() >= deadline {
                    break false;
                }
                core::hint::spin_loop();
            }
        } else {
            self.done
                .wait_until(Some(deadline), false, || self.queue.lock().done())
                .is_ok()
        };
        if !finished {
            skiff_console::warn!(
                "virtio-blk {}: no answer from the device in {} s",
                self.location,
                REQUEST_TIMEOUT_NS / 1_000_000_000
            );
            return Err(IoError::Device);
        }
        let completion = self.queue.lock().take_completion();
        match completion {
            Some(Ok(c)) => Ok(c),
            _ => Err(IoError::Device),
        }
    }
}

/// Whether the caller is the boot thread (the scheduler's idle thread, id 0), which
/// must not sleep: it polls.
fn in_boot_context() -> bool {
    skiff_sched::current().tid() == 0
}

fn status(c: &Completion) -> Result<(), IoError> {
    match c.status {
        STATUS_OK => Ok(()),
        STATUS_UNSUPP => Err(IoError::Unsupported),
        _ => Err(IoError::Device),
    }
}

/// The device's ID string, up to its first NUL; empty if it has none.
fn read_serial_polling(q: &mut VirtioBlk) -> Vec<u8> {
    if q.submit(Request::GetId).is_err() {
        return Vec::new();
    }
    let deadline = time::monotonic_ns().saturating_add(REQUEST_TIMEOUT_NS);
    while !q.done() {
        if time::monotonic_ns() >= deadline {
            return Vec::new();
        }
        core::hint::spin_loop();
    }
    match q.take_completion() {
        Some(Ok(c)) if c.status == STATUS_OK => {
            let mut id = c.data;
            let end = id.iter().position(|&b| b == 0).unwrap_or(id.len());
            id.truncate(end);
            id
        }
        _ => Vec::new(),
    }
}

impl BlockDevice for VirtioBlock {
    fn sector_count(&self) -> u64 {
        self.info.capacity
    }

    fn read_only(&self) -> bool {
        self.info.read_only
    }

    fn read_sectors(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        check_request(self.info.capacity, sector, buf.len())?;
        let mut sector = sector;
        for chunk in buf.chunks_mut(MAX_REQUEST_BYTES) {
            let sectors = chunk.len() / SECTOR_SIZE;
            let c = self.request(Request::Read { sector, sectors })?;
            status(&c)?;
            chunk.copy_from_slice(&c.data);
            sector += sectors as u64;
        }
        Ok(())
    }

    fn write_sectors(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        check_request(self.info.capacity, sector, buf.len())?;
        if self.info.read_only {
            return Err(IoError::ReadOnly);
        }
        let mut sector = sector;
        for chunk in buf.chunks(MAX_REQUEST_BYTES) {
            let mut data = Vec::new();
            data.try_reserve_exact(chunk.len())
                .map_err(|_| IoError::Device)?;
            data.extend_from_slice(chunk);
            let c = self.request(Request::Write { sector, data })?;
            status(&c)?;
            sector += (chunk.len() / SECTOR_SIZE) as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), IoError> {
        if !self.info.flush {
            // No FLUSH feature: the device has no volatile write cache.
            return Ok(());
        }
        let c = self.request(Request::Flush)?;
        status(&c)
    }

    fn serial(&self) -> &[u8] {
        &self.serial
    }
}
