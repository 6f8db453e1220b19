//! Skiff's device drivers: virtio-blk disks and virtio-net cards, interrupt-driven, over
//! the two transports the supported VMMs offer.
//!
//! - **virtio-mmio** (QEMU microvm, Firecracker): transports announced on the command
//!   line as `virtio_mmio.device=<size>@<base>:<irq>` ([`cmdline`]); without such
//!   entries and without PCI, QEMU microvm's fixed slots at `0xfeb00000 + slot * 0x200`
//!   are scanned (24 slots on GSI 24 + slot behind the second I/O APIC when ACPI is on,
//!   8 slots on IRQ 5 + slot otherwise), from the top slot down: QEMU fills them in that
//!   order, so devices are found in the order of QEMU's `-device` options. Interrupts
//!   go through the I/O APIC.
//! - **virtio-pci** (QEMU q35, Cloud Hypervisor): functions on bus 0 and behind bridges
//!   ([`pci`]), configuration space through ports 0xCF8/0xCFC, BARs as the firmware
//!   assigned them. Interrupts are MSI-X: table entry 0 serves every queue of a device
//!   (a disk's request queue, a card's receive and transmit queues), no
//!   configuration-change vector; a function without usable MSI-X is skipped.
//!
//! [`probe`] finds and initialises the devices once at boot; [`block_devices`] hands the
//! disks to the filesystem layer and [`net_devices`] the cards to the network stack,
//! whose thread sleeps on [`NET_EVENTS`]; the trap handler calls [`on_interrupt`] for
//! device vectors.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod blk;
pub mod cmdline;
pub mod net;
pub mod pci;

pub use net::NET_EVENTS;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use blk::VirtioBlock;
use core::sync::atomic::{AtomicBool, Ordering};
use net::VirtioNet;
use skiff_arch::idt::alloc_device_vector;
use skiff_arch::ioapic::{self, Trigger};
use skiff_arch::lapic;
use skiff_arch::pci::{write_msix_entry, MmioWindow, PortCam, MSIX_ENTRY_SIZE};
use skiff_block::{BlockDevice, SECTOR_SIZE};
use skiff_console as console;
use skiff_mm::dma::{self, DmaHal, VirtioBlk};
use skiff_mm::virtio_net::{NetInitError, NetQueues};
use skiff_net::NetDevice;
use skiff_sched::irq::IrqMutex;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::SomeTransport;

/// Every disk found by [`probe`]. Only ever grows, so the interrupt handler never drops
/// the last reference to a device.
static DEVICES: IrqMutex<Vec<Arc<VirtioBlock>>> = IrqMutex::new(Vec::new());
/// Every network card found by [`probe`]; only ever grows, like [`DEVICES`].
static NET_DEVICES: IrqMutex<Vec<Arc<VirtioNet>>> = IrqMutex::new(Vec::new());
static PROBED: AtomicBool = AtomicBool::new(false);

/// virtio-mmio magic ("virt") and the device ids this crate drives.
const MMIO_MAGIC: u32 = 0x7472_6976;
const VIRTIO_ID_NET: u32 = 1;
const VIRTIO_ID_BLOCK: u32 = 2;
/// QEMU microvm's virtio-mmio transports.
const MICROVM_MMIO_BASE: u64 = 0xfeb0_0000;
const MICROVM_MMIO_SLOT: u64 = 0x200;

/// Registers of the virtio PCI common configuration (virtio 1.2, 4.1.4.3).
const COMMON_MSIX_CONFIG: u64 = 0x10;
const COMMON_QUEUE_SELECT: u64 = 0x16;
const COMMON_QUEUE_MSIX_VECTOR: u64 = 0x1a;
const VIRTIO_NO_VECTOR: u16 = 0xffff;

/// Queues of each device kind, all on MSI-X table entry 0.
const BLK_QUEUES: &[u16] = &[0];
const NET_QUEUES: &[u16] = &[0, 1];

/// The kinds of device this crate drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Block,
    Net,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Block => "virtio-blk",
            Kind::Net => "virtio-net",
        }
    }

    fn from_mmio_id(id: u32) -> Option<Kind> {
        match id {
            VIRTIO_ID_BLOCK => Some(Kind::Block),
            VIRTIO_ID_NET => Some(Kind::Net),
            _ => None,
        }
    }

    fn of_pci(f: &pci::Function) -> Option<Kind> {
        if f.is_virtio_blk() {
            Some(Kind::Block)
        } else if f.is_virtio_net() {
            Some(Kind::Net)
        } else {
            None
        }
    }

    fn queues(self) -> &'static [u16] {
        match self {
            Kind::Block => BLK_QUEUES,
            Kind::Net => NET_QUEUES,
        }
    }
}

/// Find and initialise every virtio-blk disk and virtio-net card. Call once, after the
/// scheduler is initialised (disk requests made at boot poll; later ones sleep), before
/// the devices are used; their interrupts are routed when this returns.
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
        for f in pci::enumerate(&cam) {
            if let Some(kind) = Kind::of_pci(&f) {
                probe_pci(&mut cam, f, kind);
            }
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
        for slot in (0..slots).rev() {
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

/// Every network card [`probe`] found, in discovery order (on QEMU, the order of the
/// `-device` options).
pub fn net_devices() -> Vec<Arc<dyn NetDevice>> {
    NET_DEVICES
        .lock()
        .iter()
        .map(|d| d.clone() as Arc<dyn NetDevice>)
        .collect()
}

/// Every network card [`probe`] found, with its driver's details (location, vector,
/// counters).
pub fn virtio_nics() -> Vec<Arc<VirtioNet>> {
    NET_DEVICES.lock().clone()
}

/// A device interrupt on `vector`: acknowledge the device and wake its waiter. `false`
/// if no driver owns the vector. Interrupt context: never allocates or frees.
pub fn on_interrupt(vector: u8) -> bool {
    let mut handled = false;
    for d in DEVICES.lock().iter().filter(|d| d.vector() == vector) {
        d.on_interrupt();
        handled = true;
    }
    for d in NET_DEVICES.lock().iter().filter(|d| d.vector() == vector) {
        d.on_interrupt();
        handled = true;
    }
    handled
}

fn register_blk(dev: VirtioBlock) {
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
}

fn register_net(dev: VirtioNet) {
    let dev = Arc::new(dev);
    NET_DEVICES.lock().push(dev.clone());
    let m = dev.mac();
    console::debug!(
        "virtio-net: card {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {}-byte header, {}",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        dev.header_len(),
        dev.location()
    );
}

/// Bring up a disk on `transport`; `before_ready` chooses its interrupt vector.
/// `false` (the device reset again) if it cannot be used.
fn attach_blk(
    transport: SomeTransport<'static>,
    before_ready: impl FnOnce(),
    usable: impl FnOnce() -> bool,
    what: &str,
    vector: u8,
    location: String,
) -> bool {
    let queue = match VirtioBlk::new(transport, before_ready) {
        Ok(q) => q,
        Err(e) => {
            console::warn!("virtio-blk {what}: skipped, cannot initialise it: {e:?}");
            return false;
        }
    };
    if !usable() {
        return false; // Dropping the queue resets the device.
    }
    register_blk(VirtioBlock::new(queue, vector, location));
    true
}

/// Bring up a network card on `transport`, like [`attach_blk`].
fn attach_net(
    transport: SomeTransport<'static>,
    before_ready: impl FnOnce(),
    usable: impl FnOnce() -> bool,
    what: &str,
    vector: u8,
    location: String,
) -> bool {
    let queues = NetQueues::new(
        transport,
        net::BUFFER_LEN,
        net::accept_features,
        before_ready,
    );
    let queues = match queues {
        Ok(q) => q,
        Err(NetInitError::Unsupported { offered }) => {
            console::warn!(
                "virtio-net {what}: skipped, it needs features this driver lacks (offered {offered:#x})"
            );
            return false;
        }
        Err(e) => {
            console::warn!("virtio-net {what}: skipped, cannot initialise it: {e:?}");
            return false;
        }
    };
    if !usable() {
        return false;
    }
    let mac = if queues.features() & net::F_MAC != 0 {
        queues.config_bytes::<6>(0).ok()
    } else {
        None
    };
    let mac = mac.unwrap_or_else(|| {
        let mac = net::generated_mac(skiff_arch::cpu::rdtsc() ^ vector as u64);
        console::info!("virtio-net {what}: the device has no MAC address; using a generated one");
        mac
    });
    register_net(VirtioNet::new(queues, mac, vector, location));
    true
}

/// A virtio-mmio transport at `base`: initialise it if it is a device this crate drives.
fn probe_mmio(base: u64, size: u64, gsi: u32) {
    let Some(window) = MmioWindow::virtio_mmio(base, size) else {
        console::warn!(
            "virtio-mmio: ignoring a transport at {base:#x}+{size:#x}: not in the MMIO hole"
        );
        return;
    };
    if window.read32(0) != MMIO_MAGIC {
        return; // an empty slot
    }
    let Some(kind) = Kind::from_mmio_id(window.read32(8)) else {
        return; // no device, or a kind this crate does not drive
    };
    let name = kind.name();
    let what = format!("virtio-mmio@{base:#x}");
    if !ioapic::has_gsi(gsi) {
        console::warn!("{name} {what}: skipped, no I/O APIC serves its GSI {gsi}");
        return;
    }
    let transport = match dma::mmio_transport(window) {
        Ok(t) => t,
        Err(e) => {
            console::warn!("{name} {what}: skipped, bad transport: {e}");
            return;
        }
    };
    let Some(vector) = alloc_device_vector() else {
        console::warn!("{name} {what}: skipped, no free interrupt vector");
        return;
    };
    // ISA-range lines are edge-triggered (Firecracker pulses them); the GSIs of QEMU's
    // second I/O APIC are level-triggered, held until the device is acknowledged.
    let trigger = if gsi < 16 {
        Trigger::Edge
    } else {
        Trigger::Level
    };
    let location = format!("{what} gsi {gsi} ({trigger:?}) vector {vector:#x}");
    let attached = match kind {
        Kind::Block => attach_blk(transport, || {}, || true, &what, vector, location),
        Kind::Net => attach_net(transport, || {}, || true, &what, vector, location),
    };
    if attached {
        ioapic::route_gsi(gsi, vector, lapic::id(), trigger);
    }
}

/// Windows onto a virtio PCI function's MSI-X table and common configuration.
struct MsixRouting {
    df: DeviceFunction,
    cap: Option<pci::MsixCap>,
    table: Option<MmioWindow>,
    common: Option<MmioWindow>,
}

impl MsixRouting {
    /// Send every queue in `queues` to MSI-X entry 0, which delivers `vector`; no
    /// configuration-change interrupt. Must run after the reset that starts
    /// initialisation (a reset forgets the queues' vectors) and before DRIVER_OK.
    /// `false` (MSI-X off again) if the device does not take the vectors.
    fn route(&self, cam: &mut PortCam, queues: &[u16], vector: u8) -> bool {
        let (Some(cap), Some(table), Some(common)) = (self.cap, &self.table, &self.common) else {
            return false;
        };
        pci::msix_enable_masked(cam, self.df, cap);
        write_msix_entry(table, 0, 0, vector, lapic::id());
        pci::msix_unmask_function(cam, self.df, cap);
        common.write16(COMMON_MSIX_CONFIG, VIRTIO_NO_VECTOR);
        let mut ok = true;
        for &q in queues {
            common.write16(COMMON_QUEUE_SELECT, q);
            common.write16(COMMON_QUEUE_MSIX_VECTOR, 0);
            ok &= common.read16(COMMON_QUEUE_MSIX_VECTOR) == 0;
        }
        if !ok {
            pci::msix_disable(cam, self.df, cap);
        }
        ok
    }
}

/// A virtio PCI function of `kind`: initialise it with all its queues on MSI-X entry 0.
fn probe_pci(cam: &mut PortCam, f: pci::Function, kind: Kind) {
    let df = f.df;
    let name = kind.name();
    let what = format!(
        "virtio-pci {:02x}:{:02x}.{}",
        df.bus, df.device, df.function
    );
    pci::update_command(cam, df, pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER, 0);
    let mut root = PciRoot::new(PortCam::new());
    // The BARs holding the virtio structures and the MSI-X table must be reachable
    // before anything touches them (64-bit BARs may sit above 4 GiB).
    let msix = pci::find_msix(cam, df);
    let mut bars: Vec<u8> = (1..=4)
        .filter_map(|ty| pci::find_virtio_cap(cam, df, ty).map(|c| c.bar))
        .chain(msix.map(|m| m.table_bar))
        .collect();
    // Several structures usually share a BAR; size each once (under emulation every
    // sizing remaps the BAR twice, which costs about a millisecond).
    bars.sort_unstable();
    bars.dedup();
    for bar in bars {
        let Some((address, size)) = root
            .bar_info(df, bar)
            .ok()
            .flatten()
            .and_then(|b| b.memory_address_size())
        else {
            console::warn!("{name} {what}: skipped, its BAR {bar} is not a memory BAR");
            return;
        };
        if let Err(e) = dma::map_device_registers(address, size) {
            console::warn!("{name} {what}: skipped, cannot map BAR {bar} at {address:#x}: {e}");
            return;
        }
    }
    let transport = match PciTransport::new::<DmaHal, PortCam>(&mut root, df) {
        Ok(t) => t,
        Err(e) => {
            console::warn!("{name} {what}: skipped, bad transport: {e}");
            return;
        }
    };
    let Some(vector) = alloc_device_vector() else {
        console::warn!("{name} {what}: skipped, no free interrupt vector");
        return;
    };
    // Windows onto the MSI-X table and the common configuration, made before the
    // device is live (sizing a BAR briefly turns its decoding off).
    let routing = MsixRouting {
        df,
        cap: msix,
        table: msix.and_then(|m| {
            MmioWindow::pci_bar(&mut root, df, m.table_bar)?
                .sub(m.table_offset as u64, m.table_size as u64 * MSIX_ENTRY_SIZE)
        }),
        common: pci::find_virtio_cap(cam, df, pci::VIRTIO_CAP_COMMON).and_then(|c| {
            MmioWindow::pci_bar(&mut root, df, c.bar)?.sub(c.offset as u64, c.length as u64)
        }),
    };
    let regs = routing.common.as_ref().map_or(0, |c| c.phys());
    let location = format!("{what} (registers at {regs:#x}) MSI-X vector {vector:#x}");
    let msix_ok = core::cell::Cell::new(false);
    let before_ready = || msix_ok.set(routing.route(cam, kind.queues(), vector));
    let usable = || {
        if !msix_ok.get() {
            // INTx is not supported: on QEMU's q35 a function's INTx line reached only
            // the masked 8259, never an I/O APIC pin, and Cloud Hypervisor has no INTx
            // at all.
            console::warn!("{name} {what}: skipped, it offers no usable MSI-X");
        }
        msix_ok.get()
    };
    let transport = SomeTransport::from(transport);
    let attached = match kind {
        Kind::Block => attach_blk(transport, before_ready, usable, &what, vector, location),
        Kind::Net => attach_net(transport, before_ready, usable, &what, vector, location),
    };
    if attached {
        pci::update_command(cam, df, pci::COMMAND_INTX_DISABLE, 0);
    }
}
