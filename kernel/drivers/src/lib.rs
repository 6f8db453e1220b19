//! Skiff's device drivers: virtio-blk disks, interrupt-driven, over the two transports
//! the supported VMMs offer.
//!
//! - **virtio-mmio** (QEMU microvm, Firecracker): transports announced on the command
//!   line as `virtio_mmio.device=<size>@<base>:<irq>` ([`cmdline`]); without such
//!   entries and without PCI, QEMU microvm's fixed slots at `0xfeb00000 + slot * 0x200`
//!   are scanned (24 slots on GSI 24 + slot behind the second I/O APIC when ACPI is on,
//!   8 slots on IRQ 5 + slot otherwise). Interrupts go through the I/O APIC.
//! - **virtio-pci** (QEMU q35, Cloud Hypervisor): functions on bus 0 and behind bridges
//!   ([`pci`]), configuration space through ports 0xCF8/0xCFC, BARs as the firmware
//!   assigned them. Interrupts are MSI-X (table entry 0 for the request queue, no
//!   configuration-change vector); a function without usable MSI-X is skipped.
//!
//! [`probe`] finds and initialises the disks once at boot; [`block_devices`] hands them
//! to the filesystem layer; the trap handler calls [`on_interrupt`] for device vectors.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod blk;
pub mod cmdline;
pub mod pci;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use blk::VirtioBlock;
use core::sync::atomic::{AtomicBool, Ordering};
use skiff_arch::idt::alloc_device_vector;
use skiff_arch::ioapic::{self, Trigger};
use skiff_arch::lapic;
use skiff_arch::pci::{write_msix_entry, MmioWindow, PortCam, MSIX_ENTRY_SIZE};
use skiff_block::{BlockDevice, SECTOR_SIZE};
use skiff_console as console;
use skiff_mm::dma::{self, DmaHal, VirtioBlk};
use skiff_sched::irq::IrqMutex;
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;

/// Every disk found by [`probe`]. Only ever grows, so the interrupt handler never drops
/// the last reference to a device.
static DEVICES: IrqMutex<Vec<Arc<VirtioBlock>>> = IrqMutex::new(Vec::new());
static PROBED: AtomicBool = AtomicBool::new(false);

/// virtio-mmio magic ("virt") and the block device id.
const MMIO_MAGIC: u32 = 0x7472_6976;
const VIRTIO_ID_BLOCK: u32 = 2;
/// QEMU microvm's virtio-mmio transports.
const MICROVM_MMIO_BASE: u64 = 0xfeb0_0000;
const MICROVM_MMIO_SLOT: u64 = 0x200;

/// Registers of the virtio PCI common configuration (virtio 1.2, 4.1.4.3).
const COMMON_MSIX_CONFIG: u64 = 0x10;
const COMMON_QUEUE_SELECT: u64 = 0x16;
const COMMON_QUEUE_MSIX_VECTOR: u64 = 0x1a;
const VIRTIO_NO_VECTOR: u16 = 0xffff;

/// Find and initialise every virtio-blk disk. Call once, after the scheduler is
/// initialised (requests made at boot poll; later ones sleep), before the disks are
/// used; the devices' interrupts are routed when this returns.
pub fn probe(cmdline: &str) {
    if PROBED.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut entries = Vec::new();
    for e in cmdline::mmio_entries(cmdline) {
        match e {
            Ok(e) => entries.push(e),
            Err(text) => {
                console::warn!("virtio-mmio: ignoring malformed virtio_mmio.device={text}")
            }
        }
    }
    for e in &entries {
        probe_mmio(e.base, e.size, e.irq);
    }
    let mut cam = PortCam::new();
    let has_pci = pci::host_present(&cam);
    if has_pci {
        for f in pci::enumerate(&cam).iter().filter(|f| f.is_virtio_blk()) {
            probe_pci(&mut cam, *f);
        }
    }
    if entries.is_empty() && !has_pci {
        // QEMU microvm announces its transports only in ACPI tables (or, with
        // `acpi=off`, on the command line, handled above): scan its slots.
        let (slots, first_gsi) = if ioapic::has_gsi(24) {
            (24, 24)
        } else {
            (8, 5)
        };
        for slot in 0..slots {
            let base = MICROVM_MMIO_BASE + slot as u64 * MICROVM_MMIO_SLOT;
            probe_mmio(base, MICROVM_MMIO_SLOT, first_gsi + slot);
        }
    }
}

/// Every disk [`probe`] found, in discovery order.
pub fn block_devices() -> Vec<Arc<dyn BlockDevice>> {
    DEVICES
        .lock()
        .iter()
        .map(|d| d.clone() as Arc<dyn BlockDevice>)
        .collect()
}

/// Every disk [`probe`] found, with its driver's details (location, vector, interrupt
/// count).
pub fn virtio_disks() -> Vec<Arc<VirtioBlock>> {
    DEVICES.lock().clone()
}

/// The disk whose virtio-blk serial is `serial`.
pub fn block_device_by_serial(serial: &[u8]) -> Option<Arc<dyn BlockDevice>> {
    DEVICES
        .lock()
        .iter()
        .find(|d| d.serial() == serial)
        .map(|d| d.clone() as Arc<dyn BlockDevice>)
}

/// A device interrupt on `vector`: acknowledge the device and wake its waiter. `false`
/// if no driver owns the vector. Interrupt context: never allocates or frees.
pub fn on_interrupt(vector: u8) -> bool {
    let devices = DEVICES.lock();
    let mut handled = false;
    for d in devices.iter().filter(|d| d.vector() == vector) {
        d.on_interrupt();
        handled = true;
    }
    handled
}

fn register(dev: VirtioBlock) -> Arc<VirtioBlock> {
    let dev = Arc::new(dev);
    DEVICES.lock().push(dev.clone());
    console::debug!(
        "virtio-blk: disk {:?}, {} sectors ({} MiB){}, {}",
        String::from_utf8_lossy(dev.serial()),
        dev.sector_count(),
        (dev.sector_count() * SECTOR_SIZE as u64) >> 20,
        if dev.read_only() { ", read-only" } else { "" },
        dev.location()
    );
    dev
}

/// A virtio-mmio transport at `base`: initialise it if it is a block device.
fn probe_mmio(base: u64, size: u64, gsi: u32) {
    let Some(window) = MmioWindow::virtio_mmio(base, size) else {
        console::warn!(
            "virtio-mmio: ignoring a transport at {base:#x}+{size:#x}: not in the MMIO hole"
        );
        return;
    };
    if window.read32(0) != MMIO_MAGIC || window.read32(8) != VIRTIO_ID_BLOCK {
        return; // an empty slot or another kind of device
    }
    let what = format!("virtio-mmio@{base:#x}");
    if !ioapic::has_gsi(gsi) {
        console::warn!("virtio-blk {what}: skipped, no I/O APIC serves its GSI {gsi}");
        return;
    }
    let transport = match dma::mmio_transport(window) {
        Ok(t) => t,
        Err(e) => {
            console::warn!("virtio-blk {what}: skipped, bad transport: {e}");
            return;
        }
    };
    let Some(vector) = alloc_device_vector() else {
        console::warn!("virtio-blk {what}: skipped, no free interrupt vector");
        return;
    };
    let queue = match VirtioBlk::new(transport, || {}) {
        Ok(q) => q,
        Err(e) => {
            console::warn!("virtio-blk {what}: skipped, cannot initialise it: {e:?}");
            return;
        }
    };
    // ISA-range lines are edge-triggered (Firecracker pulses them); the GSIs of QEMU's
    // second I/O APIC are level-triggered, held until the device is acknowledged.
    let trigger = if gsi < 16 {
        Trigger::Edge
    } else {
        Trigger::Level
    };
    let location = format!("{what} gsi {gsi} ({trigger:?}) vector {vector:#x}");
    register(VirtioBlock::new(queue, vector, location));
    ioapic::route_gsi(gsi, vector, lapic::id(), trigger);
}

/// A virtio-blk PCI function: initialise it with its request queue on MSI-X entry 0.
fn probe_pci(cam: &mut PortCam, f: pci::Function) {
    let df = f.df;
    let what = format!(
        "virtio-pci {:02x}:{:02x}.{}",
        df.bus, df.device, df.function
    );
    pci::update_command(cam, df, pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER, 0);
    let mut root = PciRoot::new(PortCam::new());
    // The BARs holding the virtio structures and the MSI-X table must be reachable
    // before anything touches them (64-bit BARs may sit above 4 GiB).
    let msix = pci::find_msix(cam, df);
    let bars = (1..=4)
        .filter_map(|ty| pci::find_virtio_cap(cam, df, ty).map(|c| c.bar))
        .chain(msix.map(|m| m.table_bar));
    for bar in bars {
        let Some((address, size)) = root
            .bar_info(df, bar)
            .ok()
            .flatten()
            .and_then(|b| b.memory_address_size())
        else {
            console::warn!("virtio-blk {what}: skipped, its BAR {bar} is not a memory BAR");
            return;
        };
        if let Err(e) = dma::map_device_registers(address, size) {
            console::warn!("virtio-blk {what}: skipped, cannot map BAR {bar} at {address:#x}: {e}");
            return;
        }
    }
    let transport = match PciTransport::new::<DmaHal, PortCam>(&mut root, df) {
        Ok(t) => t,
        Err(e) => {
            console::warn!("virtio-blk {what}: skipped, bad transport: {e}");
            return;
        }
    };
    let Some(vector) = alloc_device_vector() else {
        console::warn!("virtio-blk {what}: skipped, no free interrupt vector");
        return;
    };
    // Windows onto the MSI-X table and the common configuration, made before the
    // device is live (sizing a BAR briefly turns its decoding off).
    let table = msix.and_then(|m| {
        MmioWindow::pci_bar(&mut root, df, m.table_bar)?
            .sub(m.table_offset as u64, m.table_size as u64 * MSIX_ENTRY_SIZE)
    });
    let common = pci::find_virtio_cap(cam, df, pci::VIRTIO_CAP_COMMON).and_then(|c| {
        MmioWindow::pci_bar(&mut root, df, c.bar)?.sub(c.offset as u64, c.length as u64)
    });
    let mut msix_ok = false;
    let queue = VirtioBlk::new(transport.into(), || {
        // The queue's vector must be chosen after the reset that starts
        // initialisation (a reset forgets it) and before DRIVER_OK.
        if let (Some(cap), Some(table), Some(common)) = (msix, &table, &common) {
            pci::msix_enable_masked(cam, df, cap);
            write_msix_entry(table, 0, 0, vector, lapic::id());
            pci::msix_unmask_function(cam, df, cap);
            common.write16(COMMON_MSIX_CONFIG, VIRTIO_NO_VECTOR);
            common.write16(COMMON_QUEUE_SELECT, 0);
            common.write16(COMMON_QUEUE_MSIX_VECTOR, 0);
            msix_ok = common.read16(COMMON_QUEUE_MSIX_VECTOR) == 0;
            if !msix_ok {
                pci::msix_disable(cam, df, cap);
            }
        }
    });
    let queue = match queue {
        Ok(q) => q,
        Err(e) => {
            console::warn!("virtio-blk {what}: skipped, cannot initialise it: {e:?}");
            return;
        }
    };
    if !msix_ok {
        // INTx is not supported: on QEMU's q35 a function's INTx line reached only the
        // masked 8259, never an I/O APIC pin, and Cloud Hypervisor has no INTx at all.
        // Dropping the queue resets the device.
        console::warn!("virtio-blk {what}: skipped, it offers no usable MSI-X");
        return;
    }
    pci::update_command(cam, df, pci::COMMAND_INTX_DISABLE, 0);
    let regs = common.as_ref().map_or(0, |c| c.phys());
    let location = format!("{what} (registers at {regs:#x}) MSI-X vector {vector:#x}");
    register(VirtioBlock::new(queue, vector, location));
}
