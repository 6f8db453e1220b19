//! The PVH `hvm_start_info` handed over by the VMM: memory map, command line, modules
//! (the initrd), and the ACPI RSDP. Copied out at once, because on q35/pc it sits in low
//! memory that the frame allocator will reuse.

use crate::layout::phys_to_virt;

pub const START_INFO_MAGIC: u32 = 0x336e_c578;
pub const E820_RAM: u32 = 1;
const MAX_MEMMAP: usize = 64;
const MAX_CMDLINE: usize = 4096;

#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
}

/// What the kernel keeps of the start info.
pub struct StartInfo {
    pub memmap: [MemoryRegion; MAX_MEMMAP],
    pub memmap_len: usize,
    pub cmdline: [u8; MAX_CMDLINE],
    pub cmdline_len: usize,
    pub initrd: Option<Module>,
    pub rsdp: u64,
}

/// Why the start info could not be used.
#[derive(Debug)]
pub enum StartInfoError {
    BadMagic(u32),
    NoMemoryMap,
}

fn read<T: Copy>(phys: u64) -> T {
    // SAFETY: the VMM placed the start info and its tables in RAM below 4 GiB, which the
    // boot page tables map at the direct map; `T` is plain data of the ABI's layout.
    unsafe { core::ptr::read_unaligned(phys_to_virt(phys) as *const T) }
}

impl StartInfo {
    /// Copy the start info at `phys`.
    pub fn parse(phys: u64) -> Result<StartInfo, StartInfoError> {
        let magic: u32 = read(phys);
        if magic != START_INFO_MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let version: u32 = read(phys + 4);
        let nr_modules: u32 = read(phys + 12);
        let modlist: u64 = read(phys + 16);
        let cmdline_paddr: u64 = read(phys + 24);
        let rsdp: u64 = read(phys + 32);
        let mut info = StartInfo {
            memmap: [MemoryRegion::default(); MAX_MEMMAP],
            memmap_len: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            initrd: None,
            rsdp,
        };
        if version >= 1 {
            let memmap: u64 = read(phys + 40);
            let entries: u32 = read(phys + 48);
            for i in 0..(entries as usize).min(MAX_MEMMAP) {
                let e = memmap + i as u64 * 24;
                let region = MemoryRegion {
                    addr: read(e),
                    size: read(e + 8),
                    kind: read(e + 16),
                };
                // QEMU's microvm may end the map with an all-zero entry (DESIGN.md §4).
                if region.size == 0 {
                    continue;
                }
                info.memmap[info.memmap_len] = region;
                info.memmap_len += 1;
            }
        }
        if info.memmap_len == 0 {
            return Err(StartInfoError::NoMemoryMap);
        }
        if cmdline_paddr != 0 {
            while info.cmdline_len < MAX_CMDLINE - 1 {
                let b: u8 = read(cmdline_paddr + info.cmdline_len as u64);
                if b == 0 {
                    break;
                }
                info.cmdline[info.cmdline_len] = b;
                info.cmdline_len += 1;
            }
        }
        if nr_modules > 0 && modlist != 0 {
            info.initrd = Some(Module {
                paddr: read(modlist),
                size: read(modlist + 8),
            });
        }
        Ok(info)
    }

    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memmap[..self.memmap_len]
    }

    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
}
