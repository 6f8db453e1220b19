//! ELF validation: turns the bytes of a program file into an [`Executable`], the checked
//! description the kernel maps and the CLI pre-flights.
//!
//! goblin decodes the ELF header and program header table, but only after this module
//! has checked every size and offset it will touch: goblin is a decoder, not a validator,
//! and the kernel must never trust it with attacker-sized input. Everything goblin does not
//! check (segment ranges, alignment, overlap, address-space limits, the entry point) is
//! checked here, and every rejection carries the reason a user needs to fix the program.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use goblin::container::Endian;
use goblin::elf::header::{
    self as ehdr, EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFMAG,
    EM_X86_64, ET_CORE, ET_DYN, ET_EXEC, ET_REL, SELFMAG, SIZEOF_IDENT,
};
use goblin::elf::program_header::{
    PF_R, PF_W, PF_X, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_PHDR, PT_TLS,
};
use goblin::elf64::header::{Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{ProgramHeader, SIZEOF_PHDR};
use skiff_errno::Errno;

/// Size of the pages segments are mapped with; file offsets and addresses of a segment
/// must agree modulo this.
pub const PAGE_SIZE: u64 = 4096;

/// First address past the application's half of the address space. Linux's x86_64
/// `TASK_SIZE_MAX` (`(1 << 47) - PAGE_SIZE`): the last page below the canonical hole stays
/// unmapped so no user range can run into non-canonical addresses.
pub const USER_ADDR_END: u64 = 0x0000_7fff_ffff_f000;

/// Lowest address a non-PIE executable may map; Linux's default `vm.mmap_min_addr`.
/// Keeping the first 64 KiB unmapped is what turns NULL dereferences into faults.
pub const MIN_MAP_ADDR: u64 = 0x1_0000;

/// Linux refuses program header tables larger than 64 KiB (`load_elf_phdrs`).
const MAX_PHDR_TABLE_BYTES: usize = 65536;

/// Linux reads at most `PATH_MAX` bytes of a PT_INTERP path; we only print it.
const MAX_INTERPRETER_PATH: usize = 4096;

/// How the executable must be placed in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// `ET_EXEC`: loads at its link addresses.
    Static,
    /// `ET_DYN` without `PT_INTERP`: position independent, loads at a chosen bias and
    /// relocates itself.
    StaticPie,
}

/// One memory region described by a program header (addresses unbiased).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First byte in memory (`p_vaddr`); not necessarily page aligned.
    pub vaddr: u64,
    /// Bytes in memory (`p_memsz`); the part past `filesz` is zero-filled.
    pub memsz: u64,
    /// Where the initialized bytes start in the file (`p_offset`).
    pub file_offset: u64,
    /// Initialized bytes taken from the file (`p_filesz`), never more than `memsz`.
    pub filesz: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
}

impl Segment {
    fn from_program_header(ph: &ProgramHeader) -> Segment {
        Segment {
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
            file_offset: ph.p_offset,
            filesz: ph.p_filesz,
            readable: ph.p_flags & PF_R != 0,
            writable: ph.p_flags & PF_W != 0,
            executable: ph.p_flags & PF_X != 0,
        }
    }

    /// One past the last byte in memory. Validated segments never overflow.
    pub fn vaddr_end(&self) -> u64 {
        self.vaddr.saturating_add(self.memsz)
    }

    /// The segment's initialized bytes within `image`, the file it was parsed from.
    /// Empty for segments without file contents, whose `file_offset` is not checked
    /// (Linux ignores it too) and may lie past the end of the file.
    pub fn file_bytes<'a>(&self, image: &'a [u8]) -> &'a [u8] {
        if self.filesz == 0 {
            return &[];
        }
        file_range(image, self.file_offset, self.filesz).unwrap_or(&[])
    }

    /// Whether `addr` lies in `[vaddr, vaddr + memsz)`.
    pub fn contains(&self, addr: u64) -> bool {
        self.vaddr <= addr && addr < self.vaddr_end()
    }
}

/// A validated static or static-pie x86_64 executable. All addresses are as linked
/// (unbiased); for [`ExecKind::StaticPie`] the loader adds its chosen load bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    pub kind: ExecKind,
    /// Entry point, inside an executable PT_LOAD segment.
    pub entry: u64,
    /// The PT_LOAD segments with a non-zero memory size, sorted by `vaddr`, pairwise
    /// non-overlapping as byte ranges (two segments may still share a page, as in
    /// binaries linked without `-z separate-code`; the mapper must merge permissions).
    pub segments: Vec<Segment>,
    /// Where the program header table is in memory (PT_PHDR, else derived from the
    /// PT_LOAD that covers `e_phoff`); becomes `AT_PHDR`.
    pub phdr_vaddr: u64,
    pub phnum: u16,
    pub phentsize: u16,
    /// The PT_TLS template, for information (the program sets up its own TLS).
    pub tls: Option<Segment>,
    /// Whether PT_GNU_STACK asks for an executable stack (no PT_GNU_STACK means yes,
    /// as on Linux x86_64).
    pub stack_executable: bool,
    /// Page-aligned start of the lowest PT_LOAD.
    pub min_vaddr: u64,
    /// Page-aligned end of the highest PT_LOAD.
    pub max_vaddr: u64,
}

impl Executable {
    /// Whether the image is position independent and must be loaded at a bias.
    pub fn needs_bias(&self) -> bool {
        self.kind == ExecKind::StaticPie
    }

    /// Bytes of address space the PT_LOAD segments span, page aligned.
    pub fn image_span(&self) -> u64 {
        self.max_vaddr - self.min_vaddr
    }
}

/// Why a file cannot be run. Every variant maps to `ENOEXEC`; `Display` is one line
/// meant for the user who tried to run the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not start with `\x7fELF`.
    NotElf,
    /// The file ends inside the 64-byte ELF header.
    TruncatedElfHeader,
    /// A 32-bit ELF (`ELFCLASS32`).
    Elf32,
    /// `EI_CLASS` is neither 32- nor 64-bit.
    InvalidClass(u8),
    /// `ELFDATA2MSB`.
    BigEndian,
    /// `EI_DATA` is neither little- nor big-endian.
    InvalidDataEncoding(u8),
    /// `e_machine` is not `EM_X86_64`.
    WrongMachine(u16),
    /// `e_type` is not `ET_EXEC` or `ET_DYN`.
    NotExecutable(u16),
    /// `e_phentsize` is not the size of an `Elf64_Phdr` (56).
    BadProgramHeaderSize(u16),
    /// `e_phnum` is zero or the table would exceed 64 KiB.
    BadProgramHeaderCount(u16),
    /// `e_phoff + e_phnum * e_phentsize` runs past the end of the file.
    TruncatedProgramHeaders,
    /// goblin rejected a header this module had already bounds-checked.
    Malformed(&'static str),
    /// A `PT_INTERP` program header names a dynamic loader.
    DynamicallyLinked { interpreter: String },
    /// A segment's `[p_offset, p_offset + p_filesz)` is not inside the file.
    SegmentOutsideFile { index: usize },
    /// A segment's `p_filesz` exceeds its `p_memsz`.
    FileSizeExceedsMemSize { index: usize },
    /// A segment's `p_vaddr + p_memsz` overflows 64 bits.
    AddressOverflow { index: usize },
    /// A segment ends above the application's half of the address space.
    BeyondUserSpace { index: usize, end: u64 },
    /// A non-PIE segment starts below [`MIN_MAP_ADDR`].
    BelowMinimumAddress { index: usize, vaddr: u64 },
    /// `p_offset` and `p_vaddr` differ modulo the page size, so it cannot be mapped.
    MisalignedSegment {
        index: usize,
        offset: u64,
        vaddr: u64,
    },
    /// Two PT_LOAD segments claim the same bytes of memory.
    OverlappingSegments { first_vaddr: u64, second_vaddr: u64 },
    /// No PT_LOAD segment (or only empty ones).
    NoLoadSegments,
    /// `e_entry` is not inside an executable PT_LOAD segment.
    EntryNotExecutable { entry: u64 },
    /// Neither PT_PHDR nor any PT_LOAD places the program headers in memory.
    ProgramHeadersNotLoaded,
}

impl LoadError {
    /// The errno `execve` reports for this error: every format problem is `ENOEXEC`.
    pub fn errno(&self) -> Errno {
        Errno::ENOEXEC
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotElf => write!(f, "not an ELF file"),
            LoadError::TruncatedElfHeader => {
                write!(f, "truncated ELF: the file ends inside the ELF header")
            }
            LoadError::Elf32 => write!(f, "32-bit ELF (ELFCLASS32); Skiff runs x86_64 programs"),
            LoadError::InvalidClass(class) => {
                write!(f, "corrupt ELF: invalid class {class} in the ELF identification")
            }
            LoadError::BigEndian => write!(
                f,
                "big-endian ELF (ELFDATA2MSB); Skiff runs little-endian x86_64 programs"
            ),
            LoadError::InvalidDataEncoding(data) => write!(
                f,
                "corrupt ELF: invalid data encoding {data} in the ELF identification"
            ),
            LoadError::WrongMachine(machine) => write!(
                f,
                "ELF for {} (e_machine {machine}); Skiff runs x86_64 programs",
                machine_name(*machine)
            ),
            LoadError::NotExecutable(e_type) => match *e_type {
                ET_REL => write!(
                    f,
                    "relocatable object file (ET_REL), not an executable; link it into a program first"
                ),
                ET_CORE => write!(f, "core dump (ET_CORE), not an executable"),
                other => write!(f, "not an executable (ELF type {other:#x})"),
            },
            LoadError::BadProgramHeaderSize(size) => write!(
                f,
                "corrupt ELF: program header entry size is {size}, expected {SIZEOF_PHDR}"
            ),
            LoadError::BadProgramHeaderCount(0) => {
                write!(f, "corrupt ELF: no program headers, nothing to load")
            }
            LoadError::BadProgramHeaderCount(count) => write!(
                f,
                "corrupt ELF: {count} program headers exceed the 64 KiB limit"
            ),
            LoadError::TruncatedProgramHeaders => {
                write!(f, "truncated ELF: program headers extend past the end of the file")
            }
            LoadError::Malformed(what) => write!(f, "corrupt ELF: {what}"),
            LoadError::DynamicallyLinked { interpreter } => write!(
                f,
                "dynamically linked (interpreter {interpreter}); Skiff runs static executables only \
                 — rebuild with -static or -static-pie"
            ),
            LoadError::SegmentOutsideFile { index } => write!(
                f,
                "truncated ELF: program header {index} refers to data past the end of the file"
            ),
            LoadError::FileSizeExceedsMemSize { index } => write!(
                f,
                "corrupt ELF: program header {index} has more file bytes than memory bytes"
            ),
            LoadError::AddressOverflow { index } => write!(
                f,
                "corrupt ELF: program header {index} wraps around the end of the address space"
            ),
            LoadError::BeyondUserSpace { index, end } => write!(
                f,
                "ELF segment {index} ends at {end:#x}, above the user address limit {USER_ADDR_END:#x}"
            ),
            LoadError::BelowMinimumAddress { index, vaddr } => write!(
                f,
                "ELF segment {index} starts at {vaddr:#x}, below the lowest mappable address {MIN_MAP_ADDR:#x}"
            ),
            LoadError::MisalignedSegment {
                index,
                offset,
                vaddr,
            } => write!(
                f,
                "corrupt ELF: segment {index} file offset {offset:#x} and address {vaddr:#x} \
                 differ modulo the 4096-byte page size, so it cannot be mapped"
            ),
            LoadError::OverlappingSegments {
                first_vaddr,
                second_vaddr,
            } => write!(
                f,
                "corrupt ELF: loadable segments at {first_vaddr:#x} and {second_vaddr:#x} overlap"
            ),
            LoadError::NoLoadSegments => write!(f, "ELF has no loadable segments, nothing to run"),
            LoadError::EntryNotExecutable { entry } => write!(
                f,
                "corrupt ELF: entry point {entry:#x} is not inside an executable segment"
            ),
            LoadError::ProgramHeadersNotLoaded => write!(
                f,
                "unsupported ELF: the program headers are not part of any loaded segment"
            ),
        }
    }
}

/// A user-facing name for an ELF machine: the common ones by the name people use,
/// the rest by goblin's table.
pub fn machine_name(machine: u16) -> &'static str {
    match machine {
        ehdr::EM_386 => "i386",
        ehdr::EM_AARCH64 => "aarch64",
        ehdr::EM_ARM => "32-bit ARM",
        ehdr::EM_RISCV => "RISC-V",
        ehdr::EM_PPC64 => "ppc64",
        ehdr::EM_PPC => "ppc",
        ehdr::EM_S390 => "s390x",
        ehdr::EM_MIPS => "MIPS",
        ehdr::EM_SPARCV9 => "sparc64",
        ehdr::EM_IA_64 => "ia64",
        ehdr::EM_LOONGARCH => "loongarch",
        EM_X86_64 => "x86_64",
        other => match ehdr::machine_to_str(other) {
            "EM_UNKNOWN" => "an unknown machine",
            name => name,
        },
    }
}

/// Validates `bytes` as a static or static-pie x86_64 Linux executable.
///
/// Checks run in the order a user benefits from: what the file is (ELF, class,
/// endianness, machine, type), whether Skiff can run it at all (dynamic linking), then
/// whether its headers are internally consistent.
pub fn parse(bytes: &[u8]) -> Result<Executable, LoadError> {
    let header = parse_elf_header(bytes)?;
    let kind = match header.e_type {
        ET_EXEC => ExecKind::Static,
        ET_DYN => ExecKind::StaticPie,
        other => return Err(LoadError::NotExecutable(other)),
    };
    let program_headers = parse_program_headers(bytes, &header)?;

    if let Some(interpreter) = find_interpreter(bytes, &program_headers)? {
        return Err(LoadError::DynamicallyLinked { interpreter });
    }

    let mut segments = Vec::new();
    let mut tls = None;
    let mut phdr_segment_vaddr = None;
    let mut stack_executable = true;
    for (index, ph) in program_headers.iter().enumerate() {
        match ph.p_type {
            PT_LOAD => {
                check_segment_ranges(bytes, index, ph)?;
                if ph.p_offset % PAGE_SIZE != ph.p_vaddr % PAGE_SIZE {
                    return Err(LoadError::MisalignedSegment {
                        index,
                        offset: ph.p_offset,
                        vaddr: ph.p_vaddr,
                    });
                }
                if kind == ExecKind::Static && ph.p_memsz != 0 && ph.p_vaddr < MIN_MAP_ADDR {
                    return Err(LoadError::BelowMinimumAddress {
                        index,
                        vaddr: ph.p_vaddr,
                    });
                }
                // An empty PT_LOAD maps nothing (Linux's elf_map returns early for it);
                // keeping it would only confuse overlap and extent computations.
                if ph.p_memsz != 0 {
                    segments.push(Segment::from_program_header(ph));
                }
            }
            PT_TLS => {
                check_segment_ranges(bytes, index, ph)?;
                tls = Some(Segment::from_program_header(ph));
            }
            PT_PHDR => phdr_segment_vaddr = Some(ph.p_vaddr),
            PT_GNU_STACK => stack_executable = ph.p_flags & PF_X != 0,
            // Notes, dynamic sections of static-pie, EH frames, RELRO, properties: the
            // program (or nobody) handles them; they need no mapping of their own.
            _ => {}
        }
    }

    if segments.is_empty() {
        return Err(LoadError::NoLoadSegments);
    }
    segments.sort_by_key(|segment| segment.vaddr);
    for pair in segments.windows(2) {
        if pair[0].vaddr_end() > pair[1].vaddr {
            return Err(LoadError::OverlappingSegments {
                first_vaddr: pair[0].vaddr,
                second_vaddr: pair[1].vaddr,
            });
        }
    }

    let entry = header.e_entry;
    if !segments
        .iter()
        .any(|segment| segment.executable && segment.contains(entry))
    {
        return Err(LoadError::EntryNotExecutable { entry });
    }

    let phdr_table_len = u64::from(header.e_phnum) * SIZEOF_PHDR as u64;
    let phdr_vaddr = match phdr_segment_vaddr {
        Some(vaddr) => vaddr,
        None => phdr_vaddr_from_load_segments(&segments, header.e_phoff, phdr_table_len)?,
    };
    // libc finds PT_TLS and friends through AT_PHDR at start-up; a table that is not
    // mapped would crash it before main with no explanation, so reject it here.
    let phdr_mapped = phdr_vaddr.checked_add(phdr_table_len).is_some_and(|end| {
        segments
            .iter()
            .any(|segment| segment.vaddr <= phdr_vaddr && end <= segment.vaddr_end())
    });
    if !phdr_mapped {
        return Err(LoadError::ProgramHeadersNotLoaded);
    }

    let min_vaddr = page_align_down(segments[0].vaddr);
    let highest_end = segments
        .iter()
        .map(Segment::vaddr_end)
        .max()
        .unwrap_or(min_vaddr);
    // Ends are at most USER_ADDR_END, which is page aligned, so rounding up cannot overflow.
    let max_vaddr = page_align_up(highest_end);

    Ok(Executable {
        kind,
        entry,
        segments,
        phdr_vaddr,
        phnum: header.e_phnum,
        phentsize: header.e_phentsize,
        tls,
        stack_executable,
        min_vaddr,
        max_vaddr,
    })
}

/// Checks the identification bytes by hand (goblin accepts any class and machine),
/// then lets goblin decode the fixed-size header once it is known to be present.
fn parse_elf_header(bytes: &[u8]) -> Result<Header, LoadError> {
    if bytes.len() < SELFMAG || &bytes[..SELFMAG] != ELFMAG {
        return Err(LoadError::NotElf);
    }
    if bytes.len() < SIZEOF_IDENT {
        return Err(LoadError::TruncatedElfHeader);
    }
    match bytes[EI_CLASS] {
        ELFCLASS64 => {}
        ELFCLASS32 => return Err(LoadError::Elf32),
        other => return Err(LoadError::InvalidClass(other)),
    }
    match bytes[EI_DATA] {
        ELFDATA2LSB => {}
        ELFDATA2MSB => return Err(LoadError::BigEndian),
        other => return Err(LoadError::InvalidDataEncoding(other)),
    }
    if bytes.len() < SIZEOF_EHDR {
        return Err(LoadError::TruncatedElfHeader);
    }
    let header = Header::parse(&bytes[..SIZEOF_EHDR])
        .map_err(|_| LoadError::Malformed("the ELF header cannot be decoded"))?;
    if header.e_machine != EM_X86_64 {
        return Err(LoadError::WrongMachine(header.e_machine));
    }
    Ok(header)
}

/// Bounds-checks the program header table like Linux's `load_elf_phdrs`, then decodes it.
fn parse_program_headers(bytes: &[u8], header: &Header) -> Result<Vec<ProgramHeader>, LoadError> {
    if usize::from(header.e_phentsize) != SIZEOF_PHDR {
        return Err(LoadError::BadProgramHeaderSize(header.e_phentsize));
    }
    let count = usize::from(header.e_phnum);
    if count == 0 || count > MAX_PHDR_TABLE_BYTES / SIZEOF_PHDR {
        return Err(LoadError::BadProgramHeaderCount(header.e_phnum));
    }
    let table_len = count * SIZEOF_PHDR;
    let table = usize::try_from(header.e_phoff)
        .ok()
        .and_then(|start| Some(start..start.checked_add(table_len)?))
        .and_then(|range| bytes.get(range))
        .ok_or(LoadError::TruncatedProgramHeaders)?;
    ProgramHeader::parse(table, 0, count, Endian::Little)
        .map_err(|_| LoadError::Malformed("the program header table cannot be decoded"))
}

/// The PT_INTERP path, if any. Looked for before anything else about the segments,
/// because "this is dynamically linked" is the message that tells the user what to do.
fn find_interpreter(
    bytes: &[u8],
    program_headers: &[ProgramHeader],
) -> Result<Option<String>, LoadError> {
    let Some((index, ph)) = program_headers
        .iter()
        .enumerate()
        .find(|(_, ph)| ph.p_type == PT_INTERP)
    else {
        return Ok(None);
    };
    let raw = file_range(bytes, ph.p_offset, ph.p_filesz)
        .ok_or(LoadError::SegmentOutsideFile { index })?;
    let raw = &raw[..raw.len().min(MAX_INTERPRETER_PATH)];
    let path = raw.split(|&byte| byte == 0).next().unwrap_or(&[]);
    let interpreter = if path.is_empty() {
        String::from("<empty path>")
    } else {
        String::from_utf8_lossy(path).into_owned()
    };
    Ok(Some(interpreter))
}

/// Checks what every segment with file contents must satisfy: its bytes are in the
/// file, it has no more file bytes than memory bytes, and its memory range fits below
/// [`USER_ADDR_END`].
fn check_segment_ranges(bytes: &[u8], index: usize, ph: &ProgramHeader) -> Result<(), LoadError> {
    // A segment with no file bytes (pure .bss/.tbss) reads nothing, so its offset is
    // irrelevant; Linux does not check it either.
    if ph.p_filesz != 0 && file_range(bytes, ph.p_offset, ph.p_filesz).is_none() {
        return Err(LoadError::SegmentOutsideFile { index });
    }
    if ph.p_filesz > ph.p_memsz {
        return Err(LoadError::FileSizeExceedsMemSize { index });
    }
    let end = ph
        .p_vaddr
        .checked_add(ph.p_memsz)
        .ok_or(LoadError::AddressOverflow { index })?;
    if end > USER_ADDR_END {
        return Err(LoadError::BeyondUserSpace { index, end });
    }
    Ok(())
}

/// Linux's fallback for binaries without PT_PHDR: the table lives wherever the PT_LOAD
/// that contains `e_phoff` in the file puts it in memory.
fn phdr_vaddr_from_load_segments(
    segments: &[Segment],
    phoff: u64,
    table_len: u64,
) -> Result<u64, LoadError> {
    let table_end = phoff
        .checked_add(table_len)
        .ok_or(LoadError::TruncatedProgramHeaders)?;
    segments
        .iter()
        .find(|segment| {
            segment.file_offset <= phoff && table_end <= segment.file_offset + segment.filesz
        })
        .map(|segment| segment.vaddr + (phoff - segment.file_offset))
        .ok_or(LoadError::ProgramHeadersNotLoaded)
}

/// `bytes[offset..offset + len]`, or `None` when any part lies outside the file.
fn file_range(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(len).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

fn page_align_down(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

fn page_align_up(addr: u64) -> u64 {
    page_align_down(addr + (PAGE_SIZE - 1))
}
