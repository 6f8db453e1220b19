//! Device register access for drivers: PCI configuration space through the legacy port
//! pair 0xCF8/0xCFC ([`PortCam`], which plugs into `virtio-drivers`' PCI code), windows
//! of device registers in the physical MMIO space ([`MmioWindow`]: a PCI memory BAR or a
//! virtio-mmio transport the VMM announced), and the x86 MSI message format
//! ([`write_msix_entry`]).
//!
//! The driver logic (which capability says what, which register means what) lives in
//! `skiff-drivers`; this module only makes the accesses, bounds-checked, so that crate
//! needs no `unsafe`.

use crate::cpu;
use crate::layout::{phys_to_virt, BOOT_DIRECT_MAP};
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use virtio_drivers::transport::pci::bus::{BarInfo, ConfigurationAccess, DeviceFunction, PciRoot};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Serialises the address/data port pair (a configuration access is two port accesses).
static CONFIG_LOCK: Mutex<()> = Mutex::new(());

fn outl(port: u16, value: u32) {
    // SAFETY: the PCI configuration ports have no effect on Rust-visible memory; callers
    // in this module only select and write configuration registers.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `outl`; reading the data port has no side effect on memory.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

fn config_address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | (df.bus as u32) << 16
        | ((df.device as u32) & 0x1f) << 11
        | ((df.function as u32) & 0x7) << 8
        | (offset as u32 & 0xfc)
}

/// PCI configuration access mechanism #1 (ports 0xCF8/0xCFC): 256 bytes of configuration
/// space per function on every bus. Present on q35, pc and Cloud Hypervisor.
#[derive(Debug, Default)]
pub struct PortCam;

impl PortCam {
    pub const fn new() -> PortCam {
        PortCam
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        cpu::without_interrupts(|| {
            let _g = CONFIG_LOCK.lock();
            outl(CONFIG_ADDRESS, config_address(df, offset));
            inl(CONFIG_DATA)
        })
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        cpu::without_interrupts(|| {
            let _g = CONFIG_LOCK.lock();
            outl(CONFIG_ADDRESS, config_address(df, offset));
            outl(CONFIG_DATA, data);
        })
    }

    // SAFETY: every access takes CONFIG_LOCK with interrupts off, so clones sharing the
    // one port pair can never interleave an address write and its data access.
    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// How far the direct map reaches for device registers: the boot tables map 4 GiB;
/// `skiff_mm::dma::map_device_registers` extends it for BARs placed above.
static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(BOOT_DIRECT_MAP);

/// The end of the physical range the direct map covers for device registers.
pub fn direct_map_end() -> u64 {
    DIRECT_MAP_END.load(Ordering::Acquire)
}

/// Record that the direct map now covers physical memory up to `end` (called by the
/// memory manager once it has mapped that far).
pub fn note_direct_map_end(end: u64) {
    DIRECT_MAP_END.fetch_max(end, Ordering::AcqRel);
}

/// Where virtio-mmio transports may sit: the 32-bit MMIO hole below the I/O APIC, which
/// no supported VMM fills with RAM (QEMU microvm uses 0xfeb00000, Firecracker 3 GiB up).
const VIRTIO_MMIO_HOLE: core::ops::Range<u64> = 0xC000_0000..0xFEC0_0000;

/// A window of device registers in physical MMIO space, reached through the direct map
/// (the first 4 GiB, and BARs above that once mapped). Every access is bounds- and
/// alignment-checked.
#[derive(Debug)]
pub struct MmioWindow {
    phys: u64,
    len: u64,
}

impl MmioWindow {
    /// The registers of a virtio-mmio transport at `phys` (from the command line or a
    /// known slot), or `None` outside the MMIO hole where such transports live.
    pub fn virtio_mmio(phys: u64, len: u64) -> Option<MmioWindow> {
        let end = phys.checked_add(len)?;
        let ok = VIRTIO_MMIO_HOLE.start <= phys
            && end <= VIRTIO_MMIO_HOLE.end
            && (0x100..=0x1_0000).contains(&len)
            && phys.is_multiple_of(4);
        ok.then_some(MmioWindow { phys, len })
    }

    /// The memory BAR `bar` of a PCI function, as the firmware assigned it. `None` if the
    /// BAR is an I/O BAR, unassigned, or beyond the direct map (see [`direct_map_end`]).
    pub fn pci_bar<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        df: DeviceFunction,
        bar: u8,
    ) -> Option<MmioWindow> {
        match root.bar_info(df, bar).ok()?? {
            BarInfo::Memory { address, size, .. } => {
                let end = address.checked_add(size)?;
                (address != 0 && size != 0 && end <= direct_map_end()).then_some(MmioWindow {
                    phys: address,
                    len: size,
                })
            }
            BarInfo::IO { .. } => None,
        }
    }

    /// The sub-window `[offset, offset + len)`.
    pub fn sub(&self, offset: u64, len: u64) -> Option<MmioWindow> {
        let end = offset.checked_add(len)?;
        (end <= self.len && len > 0).then_some(MmioWindow {
            phys: self.phys + offset,
            len,
        })
    }

    pub fn phys(&self) -> u64 {
        self.phys
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The direct-map address of the window's first register.
    pub fn virt(&self) -> u64 {
        phys_to_virt(self.phys)
    }

    fn reg(&self, offset: u64, size: u64) -> u64 {
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.len,
            "register {:#x}+{} outside the {:#x}-byte window at {:#x}",
            offset,
            size,
            self.len,
            self.phys
        );
        self.virt() + offset
    }

    pub fn read8(&self, offset: u64) -> u8 {
        let p = self.reg(offset, 1) as *const u8;
        // SAFETY: `p` lies inside a device register window (constructors admit only the
        // MMIO hole or firmware-assigned BARs, never RAM), inside the part of the direct
        // map that is mapped; a volatile read of a device register touches no Rust memory.
        unsafe { core::ptr::read_volatile(p) }
    }

    pub fn read16(&self, offset: u64) -> u16 {
        let p = self.reg(offset, 2) as *const u16;
        // SAFETY: as for `read8`; `reg` checked the alignment.
        unsafe { core::ptr::read_volatile(p) }
    }

    pub fn read32(&self, offset: u64) -> u32 {
        let p = self.reg(offset, 4) as *const u32;
        // SAFETY: as for `read16`.
        unsafe { core::ptr::read_volatile(p) }
    }

    pub fn write16(&self, offset: u64, v: u16) {
        let p = self.reg(offset, 2) as *mut u16;
        // SAFETY: as for `read16`; device registers are not Rust memory.
        unsafe { core::ptr::write_volatile(p, v) }
    }

    pub fn write32(&self, offset: u64, v: u32) {
        let p = self.reg(offset, 4) as *mut u32;
        // SAFETY: as for `write16`.
        unsafe { core::ptr::write_volatile(p, v) }
    }
}

/// The x86 MSI message for `vector` on the CPU whose local APIC id is `apic_id`: fixed
/// delivery, physical destination, edge-triggered.
pub const fn msi_message(apic_id: u32, vector: u8) -> (u64, u32) {
    (0xFEE0_0000 | ((apic_id as u64 & 0xff) << 12), vector as u32)
}

/// Size of one MSI-X table entry.
pub const MSIX_ENTRY_SIZE: u64 = 16;

/// Program entry `entry` of the MSI-X table at `table_offset` in `table` (the BAR the
/// capability names) to deliver `vector` to APIC `apic_id`, and unmask it.
pub fn write_msix_entry(
    table: &MmioWindow,
    table_offset: u64,
    entry: u16,
    vector: u8,
    apic_id: u32,
) {
    let base = table_offset + entry as u64 * MSIX_ENTRY_SIZE;
    let (addr, data) = msi_message(apic_id, vector);
    table.write32(base + 12, 1); // masked while it changes
    table.write32(base, addr as u32);
    table.write32(base + 4, (addr >> 32) as u32);
    table.write32(base + 8, data);
    table.write32(base + 12, 0);
}
