//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// The smallest ELF the loader accepts: one R+X PT_LOAD at 0x400000 covering the headers
/// and `exit(0)` code. (Never executed here; the fake QEMU does not run it.)
pub fn minimal_static_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    let code: &[u8] = &[
        0xb8, 0x3c, 0, 0, 0, // mov eax, 60 (exit)
        0x31, 0xff, // xor edi, edi
        0x0f, 0x05, // syscall
    ];
    let entry_offset = 64 + 56;
    let total = (entry_offset + code.len()) as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF");
    elf.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV ABI
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + entry_offset as u64).to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    assert_eq!(elf.len(), entry_offset);
    elf.extend_from_slice(code);
    elf
}

/// The program under test.
pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// Write a fake QEMU (a shell script) to `path`: it records its arguments, one per line,
/// in `<path>.args`, copies the `-initrd` file to `<path>.initrd`, then speaks just
/// enough of the console protocol to report that the program exited with status 0.
pub fn fake_qemu(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = r#"#!/bin/sh
out="$0"
: > "$out.args"
prev=
for arg in "$@"; do
    printf '%s\n' "$arg" >> "$out.args"
    if [ "$prev" = "-initrd" ]; then cp "$arg" "$out.initrd"; fi
    prev="$arg"
done
printf '\377SKIFF\001\n\004\002\000\000\000'
exit 33
"#;
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The arguments the fake QEMU at `path` was last run with.
pub fn fake_qemu_args(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}.args", path.display())).unwrap();
    text.lines().map(String::from).collect()
}

/// One entry of a `newc` archive: name, mode, data.
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub mtime: u32,
    pub data: Vec<u8>,
}

/// Parse a `newc` archive (panics on malformed input: this is a test).
pub fn read_newc(bytes: &[u8]) -> Vec<Entry> {
    let align = |n: usize| n.div_ceil(4) * 4;
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
        let field = |i: usize| {
            let text = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
            u32::from_str_radix(text, 16).unwrap()
        };
        let name_size = field(11) as usize;
        let name_start = at + 110;
        let name =
            String::from_utf8(bytes[name_start..name_start + name_size - 1].to_vec()).unwrap();
        let data_start = align(name_start + name_size);
        let size = field(6) as usize;
        let entry = Entry {
            name,
            mode: field(1),
            mtime: field(5),
            data: bytes[data_start..data_start + size].to_vec(),
        };
        at = align(data_start + size);
        if entry.name == "TRAILER!!!" {
            return entries;
        }
        entries.push(entry);
    }
}

/// A scratch directory, removed when dropped (std only: see `src/tempfiles.rs` for why
/// the CLI does not use the `tempfile` crate).
pub struct TestDir {
    path: std::path::PathBuf,
}

impl TestDir {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A fresh scratch directory under the system's temporary directory.
pub fn test_dir() -> TestDir {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "skiff-itest-{}-{nanos:08x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&path) {
            Ok(()) => return TestDir { path },
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", path.display()),
        }
    }
}

/// QEMU's `-netdev` value with each TCP forward's host port replaced by `RELAY`: skiff
/// listens on a published TCP port itself and points QEMU's forward at a private
/// loopback port, which must not be any of the `published` host ports.
#[allow(dead_code)]
pub fn with_relay_ports(netdev: Option<String>, published: &[u16]) -> Option<String> {
    let netdev = netdev?;
    let parts: Vec<String> = netdev
        .split(',')
        .map(|part| match part.strip_prefix("hostfwd=tcp:127.0.0.1:") {
            Some(rest) => {
                let (port, guest) = rest.split_once('-').expect("hostfwd has a guest part");
                let port: u16 = port.parse().expect("hostfwd's host port is a number");
                assert!(
                    !published.contains(&port),
                    "QEMU forwards the published port {port} itself: {netdev}"
                );
                format!("hostfwd=tcp:127.0.0.1:RELAY-{guest}")
            }
            None => part.to_string(),
        })
        .collect();
    Some(parts.join(","))
}
