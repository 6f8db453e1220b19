//! Host tests of ELF validation, on ELF files assembled byte by byte here so every
//! header field can be bent, plus real binaries from the host when it has them.

use crate::{parse, ExecKind, LoadError, Segment, USER_ADDR_END};
use skiff_errno::Errno;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    p_flags: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    p_align: u64,
}

impl Phdr {
    fn new(p_type: u32, p_flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
        Phdr {
            p_type,
            p_flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 0x1000,
        }
    }
}

/// Builds ELF64 files by hand. Every field is public so a test can break exactly one.
#[derive(Clone, Debug)]
struct ElfBuilder {
    class: u8,
    data: u8,
    e_type: u16,
    machine: u16,
    entry: u64,
    phoff: u64,
    phentsize: u16,
    /// `None` writes `phdrs.len()`.
    phnum: Option<u16>,
    phdrs: Vec<Phdr>,
    file_len: usize,
    /// Bytes written at file offsets after the headers.
    patches: Vec<(usize, Vec<u8>)>,
}

const STATIC_BASE: u64 = 0x40_0000;
const INTERP_OFFSET: usize = 0x2800;
const INTERP_PATH: &[u8] = b"/lib64/ld-linux-x86-64.so.2\0";

impl ElfBuilder {
    /// The shape `gcc -static` produces with `-z separate-code`: a read-only segment
    /// holding the headers (with PT_PHDR describing them), text, data + bss, TLS,
    /// non-executable stack.
    fn static_exe() -> ElfBuilder {
        ElfBuilder::with_base(2, STATIC_BASE)
    }

    /// The shape `gcc -static-pie` produces: same layout linked at 0, `ET_DYN`.
    fn static_pie() -> ElfBuilder {
        ElfBuilder::with_base(3, 0)
    }

    fn with_base(e_type: u16, base: u64) -> ElfBuilder {
        let phdrs = vec![
            Phdr::new(PT_PHDR, PF_R, 64, base + 64, 6 * 56, 6 * 56),
            Phdr::new(PT_LOAD, PF_R, 0, base, 0x400, 0x400),
            Phdr::new(PT_LOAD, PF_R | PF_X, 0x1000, base + 0x1000, 0x1000, 0x1000),
            Phdr::new(PT_LOAD, PF_R | PF_W, 0x2100, base + 0x3100, 0x200, 0x2000),
            Phdr::new(PT_TLS, PF_R, 0x2100, base + 0x3100, 0x10, 0x30),
            Phdr::new(PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0),
        ];
        ElfBuilder {
            class: 2,
            data: 1,
            e_type,
            machine: 62,
            entry: base + 0x1040,
            phoff: 64,
            phentsize: 56,
            phnum: None,
            phdrs,
            file_len: 0x3000,
            patches: Vec::new(),
        }
    }

    /// Adds PT_INTERP naming glibc's dynamic loader, as `gcc` without `-static` does.
    fn dynamic(mut self) -> ElfBuilder {
        let len = INTERP_PATH.len() as u64;
        let interp = Phdr::new(PT_INTERP, PF_R, INTERP_OFFSET as u64, 0, len, len);
        self.phdrs.insert(1, interp);
        self.phdrs[0].p_filesz += 56;
        self.phdrs[0].p_memsz += 56;
        self.patches.push((INTERP_OFFSET, INTERP_PATH.to_vec()));
        self
    }

    fn index_of(&self, p_type: u32, nth: usize) -> usize {
        self.phdrs
            .iter()
            .enumerate()
            .filter(|(_, ph)| ph.p_type == p_type)
            .nth(nth)
            .map(|(index, _)| index)
            .expect("builder has such a program header")
    }

    fn load(&mut self, nth: usize) -> &mut Phdr {
        let index = self.index_of(PT_LOAD, nth);
        &mut self.phdrs[index]
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.file_len];
        let mut put = |offset: Option<usize>, data: &[u8]| {
            // Headers placed (deliberately) outside the file are simply not written.
            if let Some(offset) = offset.filter(|&offset| offset < out.len()) {
                let end = (offset + data.len()).min(out.len());
                out[offset..end].copy_from_slice(&data[..end - offset]);
            }
        };
        let mut header = Vec::with_capacity(EHDR_SIZE);
        header.extend_from_slice(b"\x7fELF");
        header.extend_from_slice(&[self.class, self.data, 1, 0]);
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&self.e_type.to_le_bytes());
        header.extend_from_slice(&self.machine.to_le_bytes());
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(&self.entry.to_le_bytes());
        header.extend_from_slice(&self.phoff.to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no section headers
        header.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        header.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        header.extend_from_slice(&self.phentsize.to_le_bytes());
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        header.extend_from_slice(&phnum.to_le_bytes());
        header.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        header.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        header.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        assert_eq!(header.len(), EHDR_SIZE);
        put(Some(0), &header);

        for (index, ph) in self.phdrs.iter().enumerate() {
            let mut entry = Vec::with_capacity(PHDR_SIZE);
            entry.extend_from_slice(&ph.p_type.to_le_bytes());
            entry.extend_from_slice(&ph.p_flags.to_le_bytes());
            entry.extend_from_slice(&ph.p_offset.to_le_bytes());
            entry.extend_from_slice(&ph.p_vaddr.to_le_bytes());
            entry.extend_from_slice(&ph.p_vaddr.to_le_bytes()); // p_paddr
            entry.extend_from_slice(&ph.p_filesz.to_le_bytes());
            entry.extend_from_slice(&ph.p_memsz.to_le_bytes());
            entry.extend_from_slice(&ph.p_align.to_le_bytes());
            assert_eq!(entry.len(), PHDR_SIZE);
            let offset = usize::try_from(self.phoff)
                .ok()
                .and_then(|phoff| phoff.checked_add(index * PHDR_SIZE));
            put(offset, &entry);
        }
        for (offset, data) in &self.patches {
            put(Some(*offset), data);
        }
        out
    }

    fn parse(&self) -> Result<crate::Executable, LoadError> {
        parse(&self.bytes())
    }
}

fn expect_error(builder: &ElfBuilder) -> LoadError {
    let error = builder.parse().expect_err("parse must reject this ELF");
    assert_eq!(error.errno(), Errno::ENOEXEC);
    let message = error.to_string();
    assert!(!message.contains('\n'), "one-line message: {message:?}");
    error
}

// ---- accepted shapes -------------------------------------------------------------

#[test]
fn accepts_static_executable() {
    let exe = ElfBuilder::static_exe().parse().unwrap();
    assert_eq!(exe.kind, ExecKind::Static);
    assert!(!exe.needs_bias());
    assert_eq!(exe.entry, 0x40_1040);
    assert_eq!(exe.phdr_vaddr, 0x40_0040);
    assert_eq!(exe.phnum, 6);
    assert_eq!(exe.phentsize, 56);
    assert_eq!(
        exe.segments,
        vec![
            Segment {
                vaddr: 0x40_0000,
                memsz: 0x400,
                file_offset: 0,
                filesz: 0x400,
                readable: true,
                writable: false,
                executable: false,
            },
            Segment {
                vaddr: 0x40_1000,
                memsz: 0x1000,
                file_offset: 0x1000,
                filesz: 0x1000,
                readable: true,
                writable: false,
                executable: true,
            },
            Segment {
                vaddr: 0x40_3100,
                memsz: 0x2000,
                file_offset: 0x2100,
                filesz: 0x200,
                readable: true,
                writable: true,
                executable: false,
            },
        ]
    );
    let tls = exe.tls.unwrap();
    assert_eq!((tls.vaddr, tls.filesz, tls.memsz), (0x40_3100, 0x10, 0x30));
    assert!(!exe.stack_executable);
    assert_eq!(exe.min_vaddr, 0x40_0000);
    // The data segment ends at 0x405100; the extent rounds up to the next page.
    assert_eq!(exe.max_vaddr, 0x40_6000);
    assert_eq!(exe.image_span(), 0x6000);
}

#[test]
fn accepts_static_pie() {
    let exe = ElfBuilder::static_pie().parse().unwrap();
    assert_eq!(exe.kind, ExecKind::StaticPie);
    assert!(exe.needs_bias());
    assert_eq!(exe.entry, 0x1040);
    assert_eq!(exe.phdr_vaddr, 0x40);
    assert_eq!(exe.min_vaddr, 0);
    assert_eq!(exe.max_vaddr, 0x6000);
    assert_eq!(exe.segments.len(), 3);
}

#[test]
fn segments_are_sorted_by_address() {
    let mut builder = ElfBuilder::static_exe();
    // Put the data PT_LOAD before the text PT_LOAD in the table.
    let text = builder.index_of(PT_LOAD, 1);
    let data = builder.index_of(PT_LOAD, 2);
    builder.phdrs.swap(text, data);
    let exe = builder.parse().unwrap();
    let addresses: Vec<u64> = exe.segments.iter().map(|s| s.vaddr).collect();
    assert_eq!(addresses, vec![0x40_0000, 0x40_1000, 0x40_3100]);
}

#[test]
fn phdr_address_comes_from_load_segment_without_pt_phdr() {
    // Like Debian's busybox-static: no PT_PHDR, the first PT_LOAD maps file offset 0.
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.remove(builder.index_of(PT_PHDR, 0));
    let exe = builder.parse().unwrap();
    assert_eq!(exe.phdr_vaddr, 0x40_0040);
    assert_eq!(exe.phnum, 5);

    // Same for a PIE whose headers sit at a non-zero offset inside a segment.
    let mut pie = ElfBuilder::static_pie();
    pie.phdrs.remove(pie.index_of(PT_PHDR, 0));
    pie.phoff = 0x100;
    assert_eq!(pie.parse().unwrap().phdr_vaddr, 0x100);
}

#[test]
fn missing_gnu_stack_means_executable_stack() {
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.remove(builder.index_of(PT_GNU_STACK, 0));
    assert!(builder.parse().unwrap().stack_executable);

    let mut builder = ElfBuilder::static_exe();
    let stack = builder.index_of(PT_GNU_STACK, 0);
    builder.phdrs[stack].p_flags = PF_R | PF_W | PF_X;
    assert!(builder.parse().unwrap().stack_executable);
}

#[test]
fn empty_load_segments_are_dropped_and_unknown_headers_ignored() {
    let mut builder = ElfBuilder::static_exe();
    // An empty PT_LOAD whose offset is even past the end of the file maps nothing.
    builder
        .phdrs
        .push(Phdr::new(PT_LOAD, PF_R, 0x9_9000, 0x40_0000, 0, 0));
    builder
        .phdrs
        .push(Phdr::new(PT_NOTE, PF_R, 0x200, 0x40_0200, 0x20, 0x20));
    builder.phdrs.push(Phdr::new(0x6474_e553, PF_R, 0, 0, 0, 0));
    let exe = builder.parse().unwrap();
    assert_eq!(exe.segments.len(), 3);
    assert_eq!(exe.phnum, 9);
}

#[test]
fn bss_only_segment_needs_no_file_bytes() {
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.push(Phdr::new(
        PT_LOAD,
        PF_R | PF_W,
        0x10_0000, // far past the end of the file, but nothing is read from it
        0x50_0000,
        0,
        0x8000,
    ));
    let exe = builder.parse().unwrap();
    let bss = exe.segments.last().unwrap();
    assert_eq!(bss.vaddr, 0x50_0000);
    assert!(bss.file_bytes(&builder.bytes()).is_empty());
    assert_eq!(exe.max_vaddr, 0x50_8000);
}

#[test]
fn segments_may_share_a_page_without_overlapping() {
    // Binaries linked without -z separate-code put data right after text in the same page.
    let mut builder = ElfBuilder::static_exe();
    builder.load(2).p_vaddr = 0x40_2000 + 0x100;
    builder.load(2).p_offset = 0x2100;
    builder.load(1).p_memsz = 0x1100;
    builder.load(1).p_filesz = 0x1100;
    let tls = builder.index_of(PT_TLS, 0);
    builder.phdrs[tls].p_vaddr = 0x40_2100;
    assert!(builder.parse().is_ok());
}

#[test]
fn segment_may_end_exactly_at_user_limit() {
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.push(Phdr::new(
        PT_LOAD,
        PF_R | PF_W,
        0,
        USER_ADDR_END - 0x1000,
        0,
        0x1000,
    ));
    let exe = builder.parse().unwrap();
    assert_eq!(exe.max_vaddr, USER_ADDR_END);
}

// ---- rejections --------------------------------------------------------------------

#[test]
fn rejects_non_elf() {
    for bytes in [
        &b""[..],
        b"\x7fEL",
        b"#!/bin/sh\necho hi\n",
        b"MZ\x90\x00",
        &[0u8; 128],
    ] {
        assert_eq!(parse(bytes), Err(LoadError::NotElf), "{bytes:?}");
    }
    assert_eq!(LoadError::NotElf.to_string(), "not an ELF file");
}

#[test]
fn rejects_truncated_elf_header() {
    let bytes = ElfBuilder::static_exe().bytes();
    for len in [4, 10, 16, 40, 63] {
        assert_eq!(
            parse(&bytes[..len]),
            Err(LoadError::TruncatedElfHeader),
            "len {len}"
        );
    }
}

#[test]
fn rejects_32_bit() {
    let mut builder = ElfBuilder::static_exe();
    builder.class = 1;
    assert_eq!(expect_error(&builder), LoadError::Elf32);
    assert_eq!(
        LoadError::Elf32.to_string(),
        "32-bit ELF (ELFCLASS32); Skiff runs x86_64 programs"
    );
    // The class is recognised even when the file is too short for a 64-bit header.
    assert_eq!(
        parse(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0"),
        Err(LoadError::Elf32)
    );

    builder.class = 7;
    assert_eq!(expect_error(&builder), LoadError::InvalidClass(7));
}

#[test]
fn rejects_big_endian() {
    let mut builder = ElfBuilder::static_exe();
    builder.data = 2;
    assert_eq!(expect_error(&builder), LoadError::BigEndian);
    assert!(LoadError::BigEndian.to_string().contains("big-endian"));
    builder.data = 0;
    assert_eq!(expect_error(&builder), LoadError::InvalidDataEncoding(0));
}

#[test]
fn rejects_wrong_machine_and_names_it() {
    let mut builder = ElfBuilder::static_exe();
    builder.machine = 183;
    assert_eq!(expect_error(&builder), LoadError::WrongMachine(183));
    let message = LoadError::WrongMachine(183).to_string();
    assert!(message.contains("aarch64"), "{message}");
    assert!(message.contains("x86_64"), "{message}");

    builder.machine = 243;
    assert!(expect_error(&builder).to_string().contains("RISC-V"));
    builder.machine = 3;
    assert!(expect_error(&builder).to_string().contains("i386"));
    builder.machine = 0xbeef;
    assert!(expect_error(&builder)
        .to_string()
        .contains("unknown machine"));
}

#[test]
fn rejects_non_executables() {
    let mut builder = ElfBuilder::static_exe();
    builder.e_type = 1;
    let error = expect_error(&builder);
    assert_eq!(error, LoadError::NotExecutable(1));
    assert!(error.to_string().contains("relocatable object"));

    builder.e_type = 4;
    let error = expect_error(&builder);
    assert_eq!(error, LoadError::NotExecutable(4));
    assert!(error.to_string().contains("core dump"));

    builder.e_type = 0;
    assert_eq!(expect_error(&builder), LoadError::NotExecutable(0));
}

#[test]
fn rejects_dynamically_linked_and_reports_interpreter() {
    for builder in [
        ElfBuilder::static_exe().dynamic(),
        ElfBuilder::static_pie().dynamic(),
    ] {
        let error = expect_error(&builder);
        assert_eq!(
            error,
            LoadError::DynamicallyLinked {
                interpreter: "/lib64/ld-linux-x86-64.so.2".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2); Skiff runs static \
             executables only — rebuild with -static or -static-pie"
        );
    }
}

#[test]
fn dynamic_is_reported_before_segment_problems() {
    let mut builder = ElfBuilder::static_exe().dynamic();
    builder.load(1).p_filesz = 0x10_0000;
    assert!(matches!(
        expect_error(&builder),
        LoadError::DynamicallyLinked { .. }
    ));
}

#[test]
fn interpreter_outside_file_is_truncation() {
    let mut builder = ElfBuilder::static_exe().dynamic();
    let interp = builder.index_of(PT_INTERP, 0);
    builder.phdrs[interp].p_offset = 0x10_0000;
    assert_eq!(
        expect_error(&builder),
        LoadError::SegmentOutsideFile { index: interp }
    );
}

#[test]
fn rejects_bad_phentsize() {
    let mut builder = ElfBuilder::static_exe();
    builder.phentsize = 32;
    assert_eq!(expect_error(&builder), LoadError::BadProgramHeaderSize(32));
}

#[test]
fn rejects_bad_phnum() {
    let mut builder = ElfBuilder::static_exe();
    builder.phnum = Some(0);
    assert_eq!(expect_error(&builder), LoadError::BadProgramHeaderCount(0));
    builder.phnum = Some(0xffff);
    assert_eq!(
        expect_error(&builder),
        LoadError::BadProgramHeaderCount(0xffff)
    );
}

#[test]
fn rejects_program_headers_past_end_of_file() {
    let mut builder = ElfBuilder::static_exe();
    builder.phoff = 0x3000 - 100;
    let error = expect_error(&builder);
    assert_eq!(error, LoadError::TruncatedProgramHeaders);
    assert_eq!(
        error.to_string(),
        "truncated ELF: program headers extend past the end of the file"
    );

    let mut builder = ElfBuilder::static_exe();
    builder.phoff = u64::MAX - 8;
    assert_eq!(expect_error(&builder), LoadError::TruncatedProgramHeaders);

    let mut builder = ElfBuilder::static_exe();
    builder.phnum = Some(300); // 300 * 56 bytes is more than the 12 KiB file
    assert_eq!(expect_error(&builder), LoadError::TruncatedProgramHeaders);
}

#[test]
fn rejects_segment_outside_file() {
    let mut builder = ElfBuilder::static_exe();
    builder.load(1).p_filesz = 0x2001;
    builder.load(1).p_memsz = 0x2001;
    let index = builder.index_of(PT_LOAD, 1);
    assert_eq!(
        expect_error(&builder),
        LoadError::SegmentOutsideFile { index }
    );

    // An offset so large that offset + filesz overflows.
    let mut builder = ElfBuilder::static_exe();
    builder.load(1).p_offset = u64::MAX - 0xfff;
    builder.load(1).p_vaddr = 0x40_1000;
    assert_eq!(
        expect_error(&builder),
        LoadError::SegmentOutsideFile { index }
    );

    // The TLS template is read from the file too.
    let mut builder = ElfBuilder::static_exe();
    let tls = builder.index_of(PT_TLS, 0);
    builder.phdrs[tls].p_offset = 0x2ff8;
    assert_eq!(
        expect_error(&builder),
        LoadError::SegmentOutsideFile { index: tls }
    );
}

#[test]
fn rejects_filesz_greater_than_memsz() {
    let mut builder = ElfBuilder::static_exe();
    builder.load(2).p_memsz = 0x100;
    let index = builder.index_of(PT_LOAD, 2);
    assert_eq!(
        expect_error(&builder),
        LoadError::FileSizeExceedsMemSize { index }
    );
}

#[test]
fn rejects_address_overflow() {
    let mut builder = ElfBuilder::static_exe();
    builder.load(2).p_memsz = u64::MAX - 0x1000;
    let index = builder.index_of(PT_LOAD, 2);
    assert_eq!(expect_error(&builder), LoadError::AddressOverflow { index });
}

#[test]
fn rejects_segment_beyond_user_space() {
    let mut builder = ElfBuilder::static_exe();
    builder.load(2).p_vaddr = USER_ADDR_END - 0x1000 + 0x100;
    let index = builder.index_of(PT_LOAD, 2);
    assert_eq!(
        expect_error(&builder),
        LoadError::BeyondUserSpace {
            index,
            end: USER_ADDR_END + 0x1100
        }
    );

    // A kernel-half address.
    let mut builder = ElfBuilder::static_exe();
    builder.load(2).p_vaddr = 0xffff_8000_0000_0100;
    assert!(matches!(
        expect_error(&builder),
        LoadError::BeyondUserSpace { .. }
    ));
}

#[test]
fn rejects_non_pie_segment_in_null_page_region() {
    let mut builder = ElfBuilder::static_exe();
    builder
        .phdrs
        .push(Phdr::new(PT_LOAD, PF_R, 0, 0, 0x100, 0x100));
    let index = builder.phdrs.len() - 1;
    assert_eq!(
        expect_error(&builder),
        LoadError::BelowMinimumAddress { index, vaddr: 0 }
    );
}

#[test]
fn rejects_offset_vaddr_not_congruent() {
    let mut builder = ElfBuilder::static_exe();
    builder.load(2).p_vaddr = 0x40_3200;
    let index = builder.index_of(PT_LOAD, 2);
    assert_eq!(
        expect_error(&builder),
        LoadError::MisalignedSegment {
            index,
            offset: 0x2100,
            vaddr: 0x40_3200
        }
    );
}

#[test]
fn rejects_overlapping_load_segments() {
    let mut builder = ElfBuilder::static_exe();
    // Text now runs into the data segment's first byte.
    builder.load(1).p_memsz = 0x2101;
    assert_eq!(
        expect_error(&builder),
        LoadError::OverlappingSegments {
            first_vaddr: 0x40_1000,
            second_vaddr: 0x40_3100
        }
    );

    // Identical ranges overlap as well.
    let mut builder = ElfBuilder::static_exe();
    let text = *builder.load(1);
    builder.phdrs.push(text);
    assert!(matches!(
        expect_error(&builder),
        LoadError::OverlappingSegments { .. }
    ));
}

#[test]
fn rejects_no_load_segments() {
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.retain(|ph| ph.p_type != PT_LOAD);
    assert_eq!(expect_error(&builder), LoadError::NoLoadSegments);

    // Only empty ones.
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.retain(|ph| ph.p_type != PT_LOAD);
    builder
        .phdrs
        .push(Phdr::new(PT_LOAD, PF_R | PF_X, 0, 0x40_0000, 0, 0));
    assert_eq!(expect_error(&builder), LoadError::NoLoadSegments);
}

#[test]
fn rejects_entry_outside_executable_segment() {
    for entry in [
        0x40_0100,     // read-only headers segment
        0x40_3200,     // data
        0x40_2000,     // one past the end of text
        0x1000,        // nowhere
        0x40_0fff_u64, // the gap between headers and text
    ] {
        let mut builder = ElfBuilder::static_exe();
        builder.entry = entry;
        assert_eq!(
            expect_error(&builder),
            LoadError::EntryNotExecutable { entry },
            "entry {entry:#x}"
        );
    }
    // The last byte of text is fine.
    let mut builder = ElfBuilder::static_exe();
    builder.entry = 0x40_1fff;
    assert!(builder.parse().is_ok());
}

#[test]
fn rejects_program_headers_not_in_memory() {
    // No PT_PHDR and no PT_LOAD covering e_phoff in the file.
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs.remove(builder.index_of(PT_PHDR, 0));
    builder.load(0).p_filesz = 0x40; // ends right where the headers begin
    builder.load(0).p_memsz = 0x40;
    assert_eq!(expect_error(&builder), LoadError::ProgramHeadersNotLoaded);

    // PT_PHDR pointing at an address no PT_LOAD maps.
    let mut builder = ElfBuilder::static_exe();
    builder.phdrs[0].p_vaddr = 0x80_0000;
    assert_eq!(expect_error(&builder), LoadError::ProgramHeadersNotLoaded);
}

#[test]
fn every_error_has_a_one_line_message() {
    let errors = [
        LoadError::NotElf,
        LoadError::TruncatedElfHeader,
        LoadError::Elf32,
        LoadError::InvalidClass(9),
        LoadError::BigEndian,
        LoadError::InvalidDataEncoding(9),
        LoadError::WrongMachine(183),
        LoadError::NotExecutable(1),
        LoadError::BadProgramHeaderSize(3),
        LoadError::BadProgramHeaderCount(0),
        LoadError::BadProgramHeaderCount(2000),
        LoadError::TruncatedProgramHeaders,
        LoadError::Malformed("x"),
        LoadError::DynamicallyLinked {
            interpreter: "/lib/ld-musl-x86_64.so.1".into(),
        },
        LoadError::SegmentOutsideFile { index: 1 },
        LoadError::FileSizeExceedsMemSize { index: 1 },
        LoadError::AddressOverflow { index: 1 },
        LoadError::BeyondUserSpace { index: 1, end: 1 },
        LoadError::BelowMinimumAddress { index: 1, vaddr: 0 },
        LoadError::MisalignedSegment {
            index: 1,
            offset: 1,
            vaddr: 2,
        },
        LoadError::OverlappingSegments {
            first_vaddr: 1,
            second_vaddr: 2,
        },
        LoadError::NoLoadSegments,
        LoadError::EntryNotExecutable { entry: 5 },
        LoadError::ProgramHeadersNotLoaded,
    ];
    for error in errors {
        let message = error.to_string();
        assert!(!message.is_empty());
        assert!(!message.contains('\n'), "{message:?}");
        assert_eq!(error.errno(), Errno::ENOEXEC);
    }
}

// ---- robustness ----------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure reproduces.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[test]
fn parse_survives_every_truncation() {
    for builder in [
        ElfBuilder::static_exe(),
        ElfBuilder::static_pie(),
        ElfBuilder::static_exe().dynamic(),
    ] {
        let bytes = builder.bytes();
        let full = parse(&bytes);
        for len in 0..bytes.len() {
            let result = parse(&bytes[..len]);
            // The file bytes the headers reference end at 0x2300 (data and TLS); any
            // shorter prefix must be refused, any longer one parses like the whole file.
            if len < 0x2300 {
                assert!(result.is_err(), "truncated to {len} bytes still parsed");
            } else if full.is_ok() {
                assert_eq!(result, full, "truncated to {len} bytes");
            }
        }
    }
}

#[test]
fn parse_survives_random_byte_flips() {
    let mut rng = Prng(0x5eed_cafe_f00d_d00d);
    let builders = [
        ElfBuilder::static_exe(),
        ElfBuilder::static_pie(),
        ElfBuilder::static_exe().dynamic(),
    ];
    for round in 0..20_000 {
        let mut bytes = builders[round % builders.len()].bytes();
        // Concentrate damage on the headers, where parsing decisions are made.
        let header_area = EHDR_SIZE + 8 * PHDR_SIZE;
        for _ in 0..1 + rng.below(6) {
            let position = if rng.below(8) == 0 {
                rng.below(bytes.len())
            } else {
                rng.below(header_area)
            };
            bytes[position] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => rng.next() as u8,
            };
        }
        if rng.below(4) == 0 {
            let len = rng.below(bytes.len());
            bytes.truncate(len);
        }
        if let Ok(exe) = parse(&bytes) {
            // Whatever is accepted must satisfy the invariants the kernel relies on.
            for pair in exe.segments.windows(2) {
                assert!(pair[0].vaddr_end() <= pair[1].vaddr);
            }
            for segment in &exe.segments {
                assert!(segment.filesz <= segment.memsz);
                assert!(segment.vaddr_end() <= USER_ADDR_END);
                assert_eq!(
                    segment.file_bytes(&bytes).len() as u64,
                    segment.filesz,
                    "file contents must lie inside the file"
                );
                assert_eq!(segment.file_offset % 4096, segment.vaddr % 4096);
            }
            assert!(exe
                .segments
                .iter()
                .any(|s| s.executable && s.contains(exe.entry)));
            assert!(exe.min_vaddr <= exe.max_vaddr && exe.max_vaddr <= USER_ADDR_END);
        }
    }
}

// ---- real binaries -------------------------------------------------------------------

#[test]
fn parses_host_busybox_static_when_present() {
    let Some(bytes) = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find_map(|path| std::fs::read(path).ok())
    else {
        eprintln!("no busybox on this host; the hand-built no-PT_PHDR test covers the shape");
        return;
    };
    match parse(&bytes) {
        Ok(exe) => {
            assert!(exe
                .segments
                .iter()
                .any(|s| s.executable && s.contains(exe.entry)));
            // Debian's busybox-static has no PT_PHDR; its headers follow the ELF header
            // in the first PT_LOAD.
            let first = exe.segments[0];
            assert!(first.contains(exe.phdr_vaddr));
            assert_eq!(exe.phentsize, 56);
        }
        // A dynamically linked busybox (not busybox-static) must say so.
        Err(error) => assert!(
            matches!(error, LoadError::DynamicallyLinked { .. }),
            "{error}"
        ),
    }
}

/// Compiles a tiny C program with the host's `cc` using `flags`; `None` when there is
/// no working compiler (or no static libc) on this host.
fn compile_c(compiler: &str, name: &str, flags: &[&str]) -> Option<Vec<u8>> {
    let binary = compile_c_inner(compiler, name, flags);
    if binary.is_none() {
        eprintln!(
            "skipped: `{compiler} {}` does not work on this host",
            flags.join(" ")
        );
    }
    binary
}

fn compile_c_inner(compiler: &str, name: &str, flags: &[&str]) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("skiff-loader-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let binary = (|| {
        let source = dir.join("hello.c");
        std::fs::write(
            &source,
            "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
        )
        .ok()?;
        let output = dir.join(name);
        let status = std::process::Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(&output)
            .arg(&source)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        std::fs::read(&output).ok()
    })();
    let _ = std::fs::remove_dir_all(&dir);
    binary
}

#[test]
fn parses_host_compiled_programs_when_a_compiler_exists() {
    if let Some(bytes) = compile_c("cc", "static", &["-static"]) {
        let exe = parse(&bytes).unwrap();
        assert_eq!(exe.kind, ExecKind::Static);
        assert!(exe.tls.is_some());
    }
    if let Some(bytes) = compile_c("cc", "static-pie", &["-static-pie"]) {
        let exe = parse(&bytes).unwrap();
        assert_eq!(exe.kind, ExecKind::StaticPie);
        assert_eq!(exe.min_vaddr, 0);
    }
    if let Some(bytes) = compile_c("cc", "dynamic", &[]) {
        match parse(&bytes) {
            Err(LoadError::DynamicallyLinked { interpreter }) => {
                assert!(interpreter.contains("ld-"), "{interpreter}")
            }
            other => panic!("expected dynamic linking to be refused, got {other:?}"),
        }
    }
    // musl's static binaries are the other common shape (no PT_PHDR in older musl-gcc
    // links, different TLS layout).
    if let Some(bytes) = compile_c("musl-gcc", "musl-static", &["-static"]) {
        assert_eq!(parse(&bytes).unwrap().kind, ExecKind::Static);
    }
    // Debian's musl-gcc specs do not know -static-pie: the result keeps PT_INTERP
    // (/lib/ld-musl-x86_64.so.1) and must be refused as dynamic; a musl toolchain that
    // does support it produces a real static-pie.
    if let Some(bytes) = compile_c("musl-gcc", "musl-static-pie", &["-static-pie"]) {
        match parse(&bytes) {
            Ok(exe) => assert_eq!(exe.kind, ExecKind::StaticPie),
            Err(LoadError::DynamicallyLinked { interpreter }) => {
                assert!(interpreter.contains("ld-musl"), "{interpreter}")
            }
            Err(other) => panic!("unexpected rejection: {other}"),
        }
    }
}
