//! PCI configuration-space logic, over any [`ConfigSpace`] (the port mechanism in the
//! kernel through `virtio-drivers`' [`ConfigurationAccess`], a fake in the tests):
//! enumerating functions behind bridges, walking capability lists, and decoding the
//! MSI-X and virtio vendor capabilities.

use alloc::vec::Vec;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

/// Vendor id of virtio devices.
pub const VIRTIO_VENDOR: u16 = 0x1af4;
/// Modern (virtio 1.x) virtio-blk: 0x1040 + device type 2.
pub const VIRTIO_BLK_MODERN: u16 = 0x1042;
/// Transitional virtio-blk.
pub const VIRTIO_BLK_TRANSITIONAL: u16 = 0x1001;
/// Modern virtio-net: 0x1040 + device type 1.
pub const VIRTIO_NET_MODERN: u16 = 0x1041;
/// Transitional virtio-net.
pub const VIRTIO_NET_TRANSITIONAL: u16 = 0x1000;

pub const CAP_ID_MSIX: u8 = 0x11;
pub const CAP_ID_VENDOR: u8 = 0x09;
/// `cfg_type` of the virtio common configuration structure.
pub const VIRTIO_CAP_COMMON: u8 = 1;

const REG_COMMAND: u8 = 0x04;
const REG_HEADER: u8 = 0x0C;
const REG_BUS_NUMBERS: u8 = 0x18;
const REG_CAPABILITIES: u8 = 0x34;
const STATUS_CAP_LIST: u32 = 1 << (16 + 4);

pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

const MSIX_ENABLE: u32 = 1 << 15;
const MSIX_FUNCTION_MASK: u32 = 1 << 14;

/// 32-bit access to configuration space.
pub trait ConfigSpace {
    fn read32(&self, f: DeviceFunction, offset: u8) -> u32;
    fn write32(&mut self, f: DeviceFunction, offset: u8, value: u32);
}

impl<C: ConfigurationAccess> ConfigSpace for C {
    fn read32(&self, f: DeviceFunction, offset: u8) -> u32 {
        self.read_word(f, offset)
    }

    fn write32(&mut self, f: DeviceFunction, offset: u8, value: u32) {
        self.write_word(f, offset, value)
    }
}

/// A function found by [`enumerate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub df: DeviceFunction,
    pub vendor: u16,
    pub device: u16,
}

impl Function {
    /// Whether this is a virtio block device (modern or transitional id).
    pub fn is_virtio_blk(&self) -> bool {
        self.vendor == VIRTIO_VENDOR
            && (self.device == VIRTIO_BLK_MODERN || self.device == VIRTIO_BLK_TRANSITIONAL)
    }

    /// Whether this is a virtio network card (modern or transitional id).
    pub fn is_virtio_net(&self) -> bool {
        self.vendor == VIRTIO_VENDOR
            && (self.device == VIRTIO_NET_MODERN || self.device == VIRTIO_NET_TRANSITIONAL)
    }
}

fn df(bus: u8, device: u8, function: u8) -> DeviceFunction {
    DeviceFunction {
        bus,
        device,
        function,
    }
}

fn present(id: u32) -> bool {
    let vendor = id as u16;
    vendor != 0xffff && vendor != 0
}

/// Whether there is a PCI host at all: something answers at 00:00.0.
pub fn host_present(cam: &impl ConfigSpace) -> bool {
    present(cam.read32(df(0, 0, 0), 0))
}

/// Every function on bus 0 and on the buses behind PCI-to-PCI bridges (bridges are
/// followed, not listed).
pub fn enumerate(cam: &impl ConfigSpace) -> Vec<Function> {
    let mut out = Vec::new();
    let mut visited = [false; 256];
    scan_bus(cam, 0, &mut visited, &mut out);
    out
}

fn scan_bus(cam: &impl ConfigSpace, bus: u8, visited: &mut [bool; 256], out: &mut Vec<Function>) {
    if core::mem::replace(&mut visited[bus as usize], true) {
        return;
    }
    for device in 0..32 {
        if !present(cam.read32(df(bus, device, 0), 0)) {
            continue;
        }
        let multi = (cam.read32(df(bus, device, 0), REG_HEADER) >> 16) & 0x80 != 0;
        for function in 0..if multi { 8 } else { 1 } {
            let f = df(bus, device, function);
            let id = cam.read32(f, 0);
            if !present(id) {
                continue;
            }
            let header_type = (cam.read32(f, REG_HEADER) >> 16) & 0x7f;
            if header_type == 1 {
                let secondary = (cam.read32(f, REG_BUS_NUMBERS) >> 8) as u8;
                if secondary != 0 {
                    scan_bus(cam, secondary, visited, out);
                }
                continue;
            }
            out.push(Function {
                df: f,
                vendor: id as u16,
                device: (id >> 16) as u16,
            });
        }
    }
}

/// The capability list of `f`: (offset, id) pairs, at most 48 (a list that loops or
/// points outside the header-free area ends early).
pub fn capabilities(
    cam: &impl ConfigSpace,
    f: DeviceFunction,
) -> impl Iterator<Item = (u8, u8)> + '_ {
    let mut next = if cam.read32(f, REG_COMMAND) & STATUS_CAP_LIST != 0 {
        (cam.read32(f, REG_CAPABILITIES) & 0xfc) as u8
    } else {
        0
    };
    let mut left = 48;
    core::iter::from_fn(move || {
        if next < 0x40 || left == 0 {
            return None;
        }
        left -= 1;
        let offset = next;
        let header = cam.read32(f, offset);
        next = ((header >> 8) & 0xfc) as u8;
        Some((offset, header as u8))
    })
}

/// Where a function's MSI-X table lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixCap {
    /// Offset of the capability in configuration space.
    pub offset: u8,
    /// Number of table entries.
    pub table_size: u16,
    /// The BAR holding the table, and the table's offset in it.
    pub table_bar: u8,
    pub table_offset: u32,
}

/// The MSI-X capability of `f`, if it has one.
pub fn find_msix(cam: &impl ConfigSpace, f: DeviceFunction) -> Option<MsixCap> {
    let (offset, _) = capabilities(cam, f).find(|&(_, id)| id == CAP_ID_MSIX)?;
    let control = cam.read32(f, offset) >> 16;
    let table = cam.read32(f, offset + 4);
    Some(MsixCap {
        offset,
        table_size: (control & 0x7ff) as u16 + 1,
        table_bar: (table & 0x7) as u8,
        table_offset: table & !0x7,
    })
}

/// Set MSI-X enable and function mask in `cap`'s message control (entries cannot fire
/// while the function is masked).
pub fn msix_enable_masked(cam: &mut impl ConfigSpace, f: DeviceFunction, cap: MsixCap) {
    let v = cam.read32(f, cap.offset);
    cam.write32(f, cap.offset, v | (MSIX_ENABLE | MSIX_FUNCTION_MASK) << 16);
}

/// Clear the function mask: programmed, unmasked entries may fire.
pub fn msix_unmask_function(cam: &mut impl ConfigSpace, f: DeviceFunction, cap: MsixCap) {
    let v = cam.read32(f, cap.offset);
    cam.write32(f, cap.offset, v & !(MSIX_FUNCTION_MASK << 16));
}

/// Turn MSI-X off again (the function falls back to INTx).
pub fn msix_disable(cam: &mut impl ConfigSpace, f: DeviceFunction, cap: MsixCap) {
    let v = cam.read32(f, cap.offset);
    cam.write32(
        f,
        cap.offset,
        v & !((MSIX_ENABLE | MSIX_FUNCTION_MASK) << 16),
    );
}

/// Set and clear bits of the command register (leaving the status register alone: its
/// bits are write-one-to-clear).
pub fn update_command(cam: &mut impl ConfigSpace, f: DeviceFunction, set: u16, clear: u16) {
    let v = cam.read32(f, REG_COMMAND) as u16;
    cam.write32(f, REG_COMMAND, ((v | set) & !clear) as u32);
}

/// A virtio structure in a BAR, from a `virtio_pci_cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCap {
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// The first virtio vendor capability of `f` with `cfg_type`.
pub fn find_virtio_cap(
    cam: &impl ConfigSpace,
    f: DeviceFunction,
    cfg_type: u8,
) -> Option<VirtioCap> {
    capabilities(cam, f)
        .filter(|&(_, id)| id == CAP_ID_VENDOR)
        .find_map(|(offset, _)| {
            let header = cam.read32(f, offset);
            let cap_len = (header >> 16) as u8;
            let ty = (header >> 24) as u8;
            (ty == cfg_type && cap_len >= 16).then(|| VirtioCap {
                bar: cam.read32(f, offset + 4) as u8,
                offset: cam.read32(f, offset + 8),
                length: cam.read32(f, offset + 12),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Configuration space of a few functions; absent ones read as all ones.
    #[derive(Default)]
    struct FakeCam {
        space: HashMap<(u8, u8, u8), [u8; 256]>,
    }

    impl FakeCam {
        fn add(&mut self, f: DeviceFunction, vendor: u16, device: u16) -> &mut [u8; 256] {
            let s = self
                .space
                .entry((f.bus, f.device, f.function))
                .or_insert([0; 256]);
            s[0..2].copy_from_slice(&vendor.to_le_bytes());
            s[2..4].copy_from_slice(&device.to_le_bytes());
            s
        }
    }

    fn put32(s: &mut [u8; 256], off: usize, v: u32) {
        s[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    impl ConfigSpace for FakeCam {
        fn read32(&self, f: DeviceFunction, offset: u8) -> u32 {
            match self.space.get(&(f.bus, f.device, f.function)) {
                Some(s) => {
                    let o = offset as usize & !3;
                    u32::from_le_bytes(s[o..o + 4].try_into().unwrap())
                }
                None => u32::MAX,
            }
        }
        fn write32(&mut self, f: DeviceFunction, offset: u8, data: u32) {
            if let Some(s) = self.space.get_mut(&(f.bus, f.device, f.function)) {
                put32(s, offset as usize & !3, data);
            }
        }
    }

    /// A modern virtio-blk function as QEMU builds it: MSI-X first, then the vendor
    /// capabilities (common at BAR 4 + 0, ...).
    fn virtio_blk(cam: &mut FakeCam, f: DeviceFunction) {
        let s = cam.add(f, VIRTIO_VENDOR, VIRTIO_BLK_MODERN);
        put32(s, 0x04, 0x0010_0000); // status: capability list
        s[0x34] = 0x98;
        // MSI-X at 0x98: 2 entries, table in BAR 1 at 0, PBA at 0x800.
        put32(s, 0x98, 0x0001_8411);
        put32(s, 0x9c, 0x0000_0001);
        put32(s, 0xa0, 0x0000_0801);
        // Vendor caps: 0x84 common (BAR 4, 0, 0x1000), 0x70 isr -> 0x84 -> 0x70 -> 0.
        put32(s, 0x84, 0x0110_7009);
        put32(s, 0x88, 4);
        put32(s, 0x8c, 0);
        put32(s, 0x90, 0x1000);
        put32(s, 0x70, 0x0310_0009);
        put32(s, 0x74, 4);
        put32(s, 0x78, 0x1000);
        put32(s, 0x7c, 0x1000);
    }

    #[test]
    fn finds_msix_and_common_config() {
        let mut cam = FakeCam::default();
        let f = df(0, 3, 0);
        virtio_blk(&mut cam, f);
        let caps: Vec<_> = capabilities(&cam, f).collect();
        assert_eq!(caps, vec![(0x98, 0x11), (0x84, 0x09), (0x70, 0x09)]);
        assert_eq!(
            find_msix(&cam, f),
            Some(MsixCap {
                offset: 0x98,
                table_size: 2,
                table_bar: 1,
                table_offset: 0
            })
        );
        assert_eq!(
            find_virtio_cap(&cam, f, VIRTIO_CAP_COMMON),
            Some(VirtioCap {
                bar: 4,
                offset: 0,
                length: 0x1000
            })
        );
        assert_eq!(find_virtio_cap(&cam, f, 3).map(|c| c.offset), Some(0x1000));
        assert_eq!(find_virtio_cap(&cam, f, 2), None);
    }

    #[test]
    fn msix_control_bits() {
        let mut cam = FakeCam::default();
        let f = df(0, 3, 0);
        virtio_blk(&mut cam, f);
        let cap = find_msix(&cam, f).unwrap();
        msix_enable_masked(&mut cam, f, cap);
        assert_eq!(cam.read32(f, 0x98) >> 16, 0xc001);
        msix_unmask_function(&mut cam, f, cap);
        assert_eq!(cam.read32(f, 0x98) >> 16, 0x8001);
        msix_disable(&mut cam, f, cap);
        assert_eq!(cam.read32(f, 0x98), 0x0001_8411);
        update_command(&mut cam, f, COMMAND_BUS_MASTER | COMMAND_MEMORY, 0);
        assert_eq!(cam.read32(f, 0x04) & 0xffff, 0x6);
    }

    #[test]
    fn no_capability_list() {
        let mut cam = FakeCam::default();
        let f = df(0, 1, 0);
        cam.add(f, 0x8086, 0x1234);
        assert_eq!(capabilities(&cam, f).count(), 0);
        assert_eq!(find_msix(&cam, f), None);
    }

    #[test]
    fn looping_capability_list_ends() {
        let mut cam = FakeCam::default();
        let f = df(0, 1, 0);
        let s = cam.add(f, 0x8086, 0x1234);
        put32(s, 0x04, 0x0010_0000);
        s[0x34] = 0x40;
        put32(s, 0x40, 0x0000_4005); // points at itself
        assert_eq!(capabilities(&cam, f).count(), 48);
    }

    #[test]
    fn enumerates_behind_bridges_and_multifunction() {
        let mut cam = FakeCam::default();
        cam.add(df(0, 0, 0), 0x8086, 0x29c0);
        // A bridge at 00:1c.0 to bus 1; a multi-function device at 00:1f.
        let b = cam.add(df(0, 0x1c, 0), 0x1b36, 0x000c);
        put32(b, 0x0c, 0x0001_0000);
        put32(b, 0x18, 0x0000_0100);
        let m = cam.add(df(0, 0x1f, 0), 0x8086, 0x2918);
        put32(m, 0x0c, 0x0080_0000);
        cam.add(df(0, 0x1f, 2), 0x8086, 0x2922);
        virtio_blk(&mut cam, df(1, 0, 0));
        let found = enumerate(&cam);
        let ids: Vec<_> = found
            .iter()
            .map(|f| (f.df.bus, f.df.device, f.df.function, f.device))
            .collect();
        assert_eq!(
            ids,
            vec![
                (0, 0, 0, 0x29c0),
                (1, 0, 0, VIRTIO_BLK_MODERN),
                (0, 0x1f, 0, 0x2918),
                (0, 0x1f, 2, 0x2922),
            ]
        );
        assert!(found[1].is_virtio_blk());
        assert!(!found[0].is_virtio_blk());
        assert!(host_present(&cam));
        assert!(!host_present(&FakeCam::default()));
    }

    #[test]
    fn transitional_id_counts() {
        let f = Function {
            df: df(0, 4, 0),
            vendor: VIRTIO_VENDOR,
            device: VIRTIO_BLK_TRANSITIONAL,
        };
        assert!(f.is_virtio_blk());
        let net = Function {
            device: 0x1041,
            ..f
        };
        assert!(!net.is_virtio_blk());
    }

    #[test]
    fn network_cards_by_id() {
        let f = |vendor, device| Function {
            df: df(0, 2, 0),
            vendor,
            device,
        };
        assert!(f(VIRTIO_VENDOR, VIRTIO_NET_MODERN).is_virtio_net());
        assert!(f(VIRTIO_VENDOR, VIRTIO_NET_TRANSITIONAL).is_virtio_net());
        assert!(!f(VIRTIO_VENDOR, VIRTIO_NET_MODERN).is_virtio_blk());
        assert!(!f(VIRTIO_VENDOR, VIRTIO_BLK_MODERN).is_virtio_net());
        // An Intel e1000 is not ours.
        assert!(!f(0x8086, 0x100e).is_virtio_net());
    }
}
