//! The initial process stack Linux hands to a new program, built as plain bytes.
//!
//! The layout follows Linux's `fs/exec.c` (strings) and `create_elf_tables` in
//! `fs/binfmt_elf.c` (vectors), from the top of the stack down:
//!
//! ```text
//! stack_top ->  8 zero bytes                       (end marker)
//!               execfn string                      (AT_EXECFN)
//!               envp strings, envp[0] lowest
//!               argv strings, argv[0] lowest
//!               padding to 16 bytes
//!               platform string                    (AT_PLATFORM)
//!               16 random bytes                    (AT_RANDOM)
//!               padding so that rsp is 16-byte aligned
//! rsp       ->  argc, argv[0..argc], NULL, envp[0..envc], NULL, auxv pairs, AT_NULL
//! ```
//!
//! Linux also shifts the stack by a random amount (`arch_align_stack`); Skiff does not,
//! which programs cannot tell apart from a particular random draw.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use skiff_errno::Errno;

use crate::elf::{Executable, PAGE_SIZE};

/// End of the auxiliary vector.
pub const AT_NULL: u64 = 0;
/// Entry to be ignored.
pub const AT_IGNORE: u64 = 1;
/// File descriptor of the program (binfmt_misc).
pub const AT_EXECFD: u64 = 2;
/// Address of the program headers in memory.
pub const AT_PHDR: u64 = 3;
/// Size of one program header entry.
pub const AT_PHENT: u64 = 4;
/// Number of program headers.
pub const AT_PHNUM: u64 = 5;
/// System page size.
pub const AT_PAGESZ: u64 = 6;
/// Load address of the interpreter (0 when there is none).
pub const AT_BASE: u64 = 7;
/// Flags (always 0 here).
pub const AT_FLAGS: u64 = 8;
/// Program entry point.
pub const AT_ENTRY: u64 = 9;
/// Program is not ELF.
pub const AT_NOTELF: u64 = 10;
/// Real user id.
pub const AT_UID: u64 = 11;
/// Effective user id.
pub const AT_EUID: u64 = 12;
/// Real group id.
pub const AT_GID: u64 = 13;
/// Effective group id.
pub const AT_EGID: u64 = 14;
/// Address of the platform string ("x86_64").
pub const AT_PLATFORM: u64 = 15;
/// CPU capability bits (CPUID.1:EDX on x86).
pub const AT_HWCAP: u64 = 16;
/// Frequency of `times()` ticks.
pub const AT_CLKTCK: u64 = 17;
/// Secure mode (setuid-like) boolean.
pub const AT_SECURE: u64 = 23;
/// Address of the base platform string.
pub const AT_BASE_PLATFORM: u64 = 24;
/// Address of 16 random bytes.
pub const AT_RANDOM: u64 = 25;
/// More CPU capability bits.
pub const AT_HWCAP2: u64 = 26;
/// Size of the rseq area the kernel supports.
pub const AT_RSEQ_FEATURE_SIZE: u64 = 27;
/// Alignment the rseq area needs.
pub const AT_RSEQ_ALIGN: u64 = 28;
/// Address of the executable's file name string.
pub const AT_EXECFN: u64 = 31;
/// Address of the vDSO's ELF header.
pub const AT_SYSINFO_EHDR: u64 = 33;
/// Minimal stack size a signal handler needs.
pub const AT_MINSIGSTKSZ: u64 = 51;

/// `CLOCKS_PER_SEC` as Linux reports it in `AT_CLKTCK` (USER_HZ).
pub const LINUX_CLOCK_TICKS: u64 = 100;

const WORD: u64 = 8;
const STACK_ALIGN: u64 = 16;
const RANDOM_BYTES: u64 = 16;

/// Values of the auxiliary vector entries that are not addresses inside the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuxValues {
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    pub pagesz: u64,
    pub entry: u64,
    pub base: u64,
    pub hwcap: u64,
    pub hwcap2: u64,
    pub clktck: u64,
    pub secure: bool,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// Emitted as `AT_SYSINFO_EHDR` only when a vDSO is mapped.
    pub sysinfo_ehdr: Option<u64>,
    /// Emitted as `AT_MINSIGSTKSZ` only when known.
    pub minsigstksz: Option<u64>,
}

impl AuxValues {
    /// The image-dependent entries for `exe` loaded at `load_bias` (0 for non-PIE),
    /// with the others at what Linux reports for root without a vDSO: 4 KiB pages,
    /// 100 Hz clock ticks, ids 0, not secure, no interpreter. `hwcap`/`hwcap2` start at
    /// 0 (claiming no optional features is always safe); the kernel fills them from
    /// CPUID when it knows them.
    pub fn for_executable(exe: &Executable, load_bias: u64) -> AuxValues {
        AuxValues {
            phdr: exe.phdr_vaddr.wrapping_add(load_bias),
            phent: u64::from(exe.phentsize),
            phnum: u64::from(exe.phnum),
            pagesz: PAGE_SIZE,
            entry: exe.entry.wrapping_add(load_bias),
            base: 0,
            hwcap: 0,
            hwcap2: 0,
            clktck: LINUX_CLOCK_TICKS,
            secure: false,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            sysinfo_ehdr: None,
            minsigstksz: None,
        }
    }
}

/// Everything the initial stack is built from.
#[derive(Debug, Clone, Copy)]
pub struct StackSpec<'a> {
    /// Argument strings, without their terminating NUL.
    pub argv: &'a [&'a [u8]],
    /// `NAME=value` strings, without their terminating NUL.
    pub envp: &'a [&'a [u8]],
    /// The path the program was executed as (`AT_EXECFN`).
    pub execfn: &'a [u8],
    /// `AT_PLATFORM` string, "x86_64" on Linux; empty means no `AT_PLATFORM` entry,
    /// as on Linux when the architecture defines no platform.
    pub platform: &'a [u8],
    /// The bytes `AT_RANDOM` points at (libc seeds stack protector and pointer guard).
    pub random: [u8; 16],
    pub aux: AuxValues,
}

/// A built stack: copy `bytes` to `[base, base + bytes.len())`, which ends at the
/// `stack_top` it was built for, and start the program with `rsp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialStack {
    pub bytes: Vec<u8>,
    /// Lowest address of the built stack; equal to `rsp`, since nothing sits below it.
    pub base: u64,
    /// Initial stack pointer, 16-byte aligned, pointing at `argc`.
    pub rsp: u64,
}

/// Which string of a [`StackSpec`] an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackString {
    Argv(usize),
    Envp(usize),
    Execfn,
    Platform,
}

impl fmt::Display for StackString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackString::Argv(index) => write!(f, "argv[{index}]"),
            StackString::Envp(index) => write!(f, "envp[{index}]"),
            StackString::Execfn => write!(f, "the executable path"),
            StackString::Platform => write!(f, "the platform string"),
        }
    }
}

/// Why an initial stack cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// The stack would need `needed` bytes but only `max` are allowed (`E2BIG`, as
    /// `execve` reports for oversized argument lists).
    TooBig { needed: u64, max: usize },
    /// A string contains a NUL byte, which C strings cannot carry (`EINVAL`).
    NulInString(StackString),
    /// `stack_top` is not 16-byte aligned (`EINVAL`).
    MisalignedTop(u64),
    /// The stack would extend below address 0 (`EINVAL`).
    TopTooLow(u64),
}

impl StackError {
    pub fn errno(&self) -> Errno {
        match self {
            StackError::TooBig { .. } => Errno::E2BIG,
            StackError::NulInString(_)
            | StackError::MisalignedTop(_)
            | StackError::TopTooLow(_) => Errno::EINVAL,
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::TooBig { needed, max } => write!(
                f,
                "argument list too long: the initial stack needs {needed} bytes, the limit is {max}"
            ),
            StackError::NulInString(which) => write!(f, "{which} contains a NUL byte"),
            StackError::MisalignedTop(top) => {
                write!(f, "stack top {top:#x} is not 16-byte aligned")
            }
            StackError::TopTooLow(top) => {
                write!(f, "stack top {top:#x} is too low for the initial stack")
            }
        }
    }
}

/// Builds the initial stack for a program whose stack ends at `stack_top`, using at
/// most `max_size` bytes.
pub fn build(
    spec: &StackSpec,
    stack_top: u64,
    max_size: usize,
) -> Result<InitialStack, StackError> {
    check_strings(spec)?;
    if !stack_top.is_multiple_of(STACK_ALIGN) {
        return Err(StackError::MisalignedTop(stack_top));
    }
    let layout = Layout::compute(spec, stack_top)?;
    let needed = stack_top - layout.rsp;
    if needed > max_size as u64 {
        return Err(StackError::TooBig {
            needed,
            max: max_size,
        });
    }

    // `needed <= max_size`, so it fits a usize.
    let mut image = StackImage {
        bytes: vec![0; needed as usize],
        base: layout.rsp,
    };

    // Strings, laid out in the same order `Layout::compute` reserved them.
    let mut cursor = stack_top - WORD;
    let execfn_addr = image.push_string_below(&mut cursor, spec.execfn);
    let mut envp_addrs = vec![0u64; spec.envp.len()];
    for (slot, string) in envp_addrs.iter_mut().zip(spec.envp).rev() {
        *slot = image.push_string_below(&mut cursor, string);
    }
    let mut argv_addrs = vec![0u64; spec.argv.len()];
    for (slot, string) in argv_addrs.iter_mut().zip(spec.argv).rev() {
        *slot = image.push_string_below(&mut cursor, string);
    }
    debug_assert_eq!(cursor, layout.strings_bottom);
    let platform_addr = if spec.platform.is_empty() {
        None
    } else {
        let mut platform_cursor = layout.platform_top;
        Some(image.push_string_below(&mut platform_cursor, spec.platform))
    };
    image.put_bytes(layout.random_addr, &spec.random);

    // Vectors, upwards from rsp.
    let mut words = Vec::with_capacity(layout.vector_words as usize);
    words.push(spec.argv.len() as u64);
    words.extend_from_slice(&argv_addrs);
    words.push(0);
    words.extend_from_slice(&envp_addrs);
    words.push(0);
    for (key, value) in auxv_entries(spec, layout.random_addr, execfn_addr, platform_addr) {
        words.push(key);
        words.push(value);
    }
    debug_assert_eq!(words.len() as u64, layout.vector_words);
    for (index, word) in words.iter().enumerate() {
        image.put_bytes(layout.rsp + index as u64 * WORD, &word.to_le_bytes());
    }

    Ok(InitialStack {
        bytes: image.bytes,
        base: layout.rsp,
        rsp: layout.rsp,
    })
}

/// The auxiliary vector in the order Linux 6.x emits it, ending with `AT_NULL`.
fn auxv_entries(
    spec: &StackSpec,
    random_addr: u64,
    execfn_addr: u64,
    platform_addr: Option<u64>,
) -> Vec<(u64, u64)> {
    let aux = &spec.aux;
    let mut entries = Vec::with_capacity(MAX_AUXV_ENTRIES);
    // ARCH_DLINFO comes first on x86_64.
    if let Some(vdso) = aux.sysinfo_ehdr {
        entries.push((AT_SYSINFO_EHDR, vdso));
    }
    if let Some(size) = aux.minsigstksz {
        entries.push((AT_MINSIGSTKSZ, size));
    }
    entries.extend_from_slice(&[
        (AT_HWCAP, aux.hwcap),
        (AT_PAGESZ, aux.pagesz),
        (AT_CLKTCK, aux.clktck),
        (AT_PHDR, aux.phdr),
        (AT_PHENT, aux.phent),
        (AT_PHNUM, aux.phnum),
        (AT_BASE, aux.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, aux.entry),
        (AT_UID, u64::from(aux.uid)),
        (AT_EUID, u64::from(aux.euid)),
        (AT_GID, u64::from(aux.gid)),
        (AT_EGID, u64::from(aux.egid)),
        (AT_SECURE, u64::from(aux.secure)),
        (AT_RANDOM, random_addr),
        (AT_HWCAP2, aux.hwcap2),
        (AT_EXECFN, execfn_addr),
    ]);
    if let Some(platform) = platform_addr {
        entries.push((AT_PLATFORM, platform));
    }
    entries.push((AT_NULL, 0));
    entries
}

/// Upper bound of [`auxv_entries`]' length: 17 fixed, 3 optional, AT_NULL.
const MAX_AUXV_ENTRIES: usize = 21;

fn auxv_entry_count(spec: &StackSpec) -> u64 {
    17 + u64::from(spec.aux.sysinfo_ehdr.is_some())
        + u64::from(spec.aux.minsigstksz.is_some())
        + u64::from(!spec.platform.is_empty())
        + 1
}

fn check_strings(spec: &StackSpec) -> Result<(), StackError> {
    let has_nul = |string: &[u8]| string.contains(&0);
    if let Some(index) = spec.argv.iter().position(|s| has_nul(s)) {
        return Err(StackError::NulInString(StackString::Argv(index)));
    }
    if let Some(index) = spec.envp.iter().position(|s| has_nul(s)) {
        return Err(StackError::NulInString(StackString::Envp(index)));
    }
    if has_nul(spec.execfn) {
        return Err(StackError::NulInString(StackString::Execfn));
    }
    if has_nul(spec.platform) {
        return Err(StackError::NulInString(StackString::Platform));
    }
    Ok(())
}

/// Addresses of the stack's parts, computed before anything is allocated so that an
/// oversized request fails without allocating.
struct Layout {
    /// Lowest byte of the argv/env/execfn strings.
    strings_bottom: u64,
    /// One past the platform string (16-byte aligned, below the strings).
    platform_top: u64,
    random_addr: u64,
    /// Number of 8-byte words from argc to the AT_NULL pair inclusive.
    vector_words: u64,
    rsp: u64,
}

impl Layout {
    fn compute(spec: &StackSpec, stack_top: u64) -> Result<Layout, StackError> {
        let too_low = StackError::TopTooLow(stack_top);
        // All sizes are sums of slice lengths, so they fit u64; subtractions from the
        // top are what can fail.
        let string_bytes =
            |strings: &[&[u8]]| -> u64 { strings.iter().map(|s| s.len() as u64 + 1).sum::<u64>() };
        let strings_len =
            spec.execfn.len() as u64 + 1 + string_bytes(spec.envp) + string_bytes(spec.argv);
        let strings_bottom = stack_top
            .checked_sub(WORD)
            .and_then(|end_marker| end_marker.checked_sub(strings_len))
            .ok_or(too_low)?;
        let platform_top = align_down(strings_bottom, STACK_ALIGN);
        let platform_len = if spec.platform.is_empty() {
            0
        } else {
            spec.platform.len() as u64 + 1
        };
        let random_addr = platform_top
            .checked_sub(platform_len + RANDOM_BYTES)
            .ok_or(too_low)?;
        let vector_words = 1
            + (spec.argv.len() as u64 + 1)
            + (spec.envp.len() as u64 + 1)
            + 2 * auxv_entry_count(spec);
        let rsp = random_addr
            .checked_sub(vector_words * WORD)
            .map(|rsp| align_down(rsp, STACK_ALIGN))
            .ok_or(too_low)?;
        Ok(Layout {
            strings_bottom,
            platform_top,
            random_addr,
            vector_words,
            rsp,
        })
    }
}

/// The stack's bytes, addressed by the user addresses they will occupy.
struct StackImage {
    bytes: Vec<u8>,
    base: u64,
}

impl StackImage {
    fn put_bytes(&mut self, addr: u64, data: &[u8]) {
        let start = (addr - self.base) as usize;
        self.bytes[start..start + data.len()].copy_from_slice(data);
    }

    /// Places `string` and its NUL terminator just below `*cursor`, moves the cursor
    /// down to it, and returns its address.
    fn push_string_below(&mut self, cursor: &mut u64, string: &[u8]) -> u64 {
        *cursor -= string.len() as u64 + 1;
        let addr = *cursor;
        self.put_bytes(addr, string);
        // The terminator is already zero: the buffer starts zeroed.
        addr
    }
}

fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: u64 = 0x7fff_ffff_e000;
    const MAX: usize = 128 * 1024;

    fn aux() -> AuxValues {
        AuxValues {
            phdr: 0x40_0040,
            phent: 56,
            phnum: 10,
            pagesz: 4096,
            entry: 0x40_1040,
            base: 0,
            hwcap: 0x178b_fbff,
            hwcap2: 2,
            clktck: 100,
            secure: false,
            uid: 1000,
            euid: 1001,
            gid: 100,
            egid: 101,
            sysinfo_ehdr: Some(0x7fff_f7ff_d000),
            minsigstksz: Some(3376),
        }
    }

    fn spec<'a>(argv: &'a [&'a [u8]], envp: &'a [&'a [u8]]) -> StackSpec<'a> {
        StackSpec {
            argv,
            envp,
            execfn: b"/bin/prog",
            platform: b"x86_64",
            random: core::array::from_fn(|i| i as u8 + 1),
            aux: aux(),
        }
    }

    /// Reads the built stack the way a program would, by user address.
    struct Reader<'a> {
        stack: &'a InitialStack,
        top: u64,
    }

    impl Reader<'_> {
        fn offset(&self, addr: u64) -> usize {
            assert!(
                addr >= self.stack.base && addr < self.top,
                "{addr:#x} outside the stack [{:#x}, {:#x})",
                self.stack.base,
                self.top
            );
            (addr - self.stack.base) as usize
        }

        fn word(&self, addr: u64) -> u64 {
            let start = self.offset(addr);
            u64::from_le_bytes(self.stack.bytes[start..start + 8].try_into().unwrap())
        }

        fn c_string(&self, addr: u64) -> &[u8] {
            let start = self.offset(addr);
            let len = self.stack.bytes[start..]
                .iter()
                .position(|&b| b == 0)
                .expect("string is NUL-terminated inside the stack");
            &self.stack.bytes[start..start + len]
        }
    }

    /// Decodes argc/argv/envp/auxv from rsp, as libc's `_start` does.
    struct Decoded<'a> {
        argv: Vec<&'a [u8]>,
        envp: Vec<&'a [u8]>,
        auxv: Vec<(u64, u64)>,
    }

    fn decode<'a>(reader: &'a Reader<'a>) -> Decoded<'a> {
        let mut addr = reader.stack.rsp;
        let argc = reader.word(addr);
        addr += 8;
        let mut argv = Vec::new();
        for _ in 0..argc {
            argv.push(reader.c_string(reader.word(addr)));
            addr += 8;
        }
        assert_eq!(reader.word(addr), 0, "argv ends with NULL");
        addr += 8;
        let mut envp = Vec::new();
        loop {
            let pointer = reader.word(addr);
            addr += 8;
            if pointer == 0 {
                break;
            }
            envp.push(reader.c_string(pointer));
        }
        let mut auxv = Vec::new();
        loop {
            let (key, value) = (reader.word(addr), reader.word(addr + 8));
            addr += 16;
            auxv.push((key, value));
            if key == AT_NULL {
                break;
            }
        }
        Decoded { argv, envp, auxv }
    }

    fn aux_value(auxv: &[(u64, u64)], key: u64) -> Option<u64> {
        auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    #[test]
    fn builds_linux_layout() {
        let argv: [&[u8]; 3] = [b"prog", b"hello world", b""];
        let envp: [&[u8]; 2] = [b"HOME=/", b"PATH=/bin:/usr/bin"];
        let spec = spec(&argv, &envp);
        let stack = build(&spec, TOP, MAX).unwrap();
        assert_eq!(stack.rsp % 16, 0);
        assert_eq!(stack.base, stack.rsp);
        assert_eq!(stack.base + stack.bytes.len() as u64, TOP);

        let reader = Reader {
            stack: &stack,
            top: TOP,
        };
        let decoded = decode(&reader);
        assert_eq!(decoded.argv, argv);
        assert_eq!(decoded.envp, envp);

        let random = aux_value(&decoded.auxv, AT_RANDOM).unwrap();
        let at = reader.offset(random);
        assert_eq!(stack.bytes[at..at + 16], spec.random);
        let execfn = aux_value(&decoded.auxv, AT_EXECFN).unwrap();
        assert_eq!(reader.c_string(execfn), b"/bin/prog");
        // The exec path sits right under the 8-byte end marker at the very top.
        assert_eq!(execfn + b"/bin/prog\0".len() as u64, TOP - 8);
        assert_eq!(reader.word(TOP - 8), 0);
        let platform = aux_value(&decoded.auxv, AT_PLATFORM).unwrap();
        assert_eq!(reader.c_string(platform), b"x86_64");

        // Strings lie above the vectors, argv[0] lowest, then argv, env, execfn.
        let argv0 = reader.word(stack.rsp + 8);
        let vectors_end = stack.rsp + 8 * (1 + 4 + 3) + 16 * decoded.auxv.len() as u64;
        assert!(random >= vectors_end);
        assert!(platform > random && argv0 > platform && execfn > argv0);
    }

    #[test]
    fn auxv_has_linux_order_and_values() {
        let argv: [&[u8]; 1] = [b"prog"];
        let stack = build(&spec(&argv, &[]), TOP, MAX).unwrap();
        let reader = Reader {
            stack: &stack,
            top: TOP,
        };
        let auxv = decode(&reader).auxv;
        let keys: Vec<u64> = auxv.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            vec![
                AT_SYSINFO_EHDR,
                AT_MINSIGSTKSZ,
                AT_HWCAP,
                AT_PAGESZ,
                AT_CLKTCK,
                AT_PHDR,
                AT_PHENT,
                AT_PHNUM,
                AT_BASE,
                AT_FLAGS,
                AT_ENTRY,
                AT_UID,
                AT_EUID,
                AT_GID,
                AT_EGID,
                AT_SECURE,
                AT_RANDOM,
                AT_HWCAP2,
                AT_EXECFN,
                AT_PLATFORM,
                AT_NULL,
            ]
        );
        let expect = [
            (AT_SYSINFO_EHDR, 0x7fff_f7ff_d000),
            (AT_MINSIGSTKSZ, 3376),
            (AT_HWCAP, 0x178b_fbff),
            (AT_PAGESZ, 4096),
            (AT_CLKTCK, 100),
            (AT_PHDR, 0x40_0040),
            (AT_PHENT, 56),
            (AT_PHNUM, 10),
            (AT_BASE, 0),
            (AT_FLAGS, 0),
            (AT_ENTRY, 0x40_1040),
            (AT_UID, 1000),
            (AT_EUID, 1001),
            (AT_GID, 100),
            (AT_EGID, 101),
            (AT_SECURE, 0),
            (AT_HWCAP2, 2),
            (AT_NULL, 0),
        ];
        for (key, value) in expect {
            assert_eq!(aux_value(&auxv, key), Some(value), "key {key}");
        }
    }

    #[test]
    fn optional_aux_entries_are_omitted() {
        let mut spec = spec(&[], &[]);
        spec.aux.sysinfo_ehdr = None;
        spec.aux.minsigstksz = None;
        spec.aux.secure = true;
        spec.platform = b"";
        let stack = build(&spec, TOP, MAX).unwrap();
        let reader = Reader {
            stack: &stack,
            top: TOP,
        };
        let decoded = decode(&reader);
        assert!(decoded.argv.is_empty() && decoded.envp.is_empty());
        for key in [AT_SYSINFO_EHDR, AT_MINSIGSTKSZ, AT_PLATFORM] {
            assert_eq!(aux_value(&decoded.auxv, key), None, "key {key}");
        }
        assert_eq!(aux_value(&decoded.auxv, AT_SECURE), Some(1));
        assert_eq!(decoded.auxv.len(), 18);
        assert_eq!(decoded.auxv[0].0, AT_HWCAP);
    }

    #[test]
    fn rsp_is_aligned_for_every_shape() {
        let strings: Vec<Vec<u8>> = (0..23).map(|len| vec![b'a'; len]).collect();
        for argc in 0..5 {
            for envc in 0..4 {
                for len in 0..strings.len() {
                    let argv: Vec<&[u8]> = (0..argc).map(|_| &strings[len][..]).collect();
                    let envp: Vec<&[u8]> =
                        (0..envc).map(|i| &strings[(len + i) % 23][..]).collect();
                    let stack = build(&spec(&argv, &envp), TOP, MAX).unwrap();
                    assert_eq!(stack.rsp % 16, 0);
                    let reader = Reader {
                        stack: &stack,
                        top: TOP,
                    };
                    let decoded = decode(&reader);
                    assert_eq!(decoded.argv, argv);
                    assert_eq!(decoded.envp, envp);
                }
            }
        }
    }

    #[test]
    fn strings_may_hold_any_byte_but_nul() {
        let odd: &[u8] = &[0xff, 0x80, b'\n', 0x01, 0x7f];
        let argv = [odd];
        let stack = build(&spec(&argv, &[]), TOP, MAX).unwrap();
        let reader = Reader {
            stack: &stack,
            top: TOP,
        };
        assert_eq!(decode(&reader).argv, vec![odd]);
    }

    #[test]
    fn rejects_nul_in_strings() {
        let bad: &[u8] = b"a\0b";
        let good: &[u8] = b"ok";
        let (argv_with_nul, argv_clean, envp_with_nul) = ([good, bad], [good], [bad]);
        let cases = [
            (spec(&argv_with_nul, &[]), StackString::Argv(1)),
            (spec(&argv_clean, &envp_with_nul), StackString::Envp(0)),
        ];
        for (spec, which) in cases {
            let error = build(&spec, TOP, MAX).unwrap_err();
            assert_eq!(error, StackError::NulInString(which));
            assert_eq!(error.errno(), Errno::EINVAL);
        }
        let mut with_bad_execfn = spec(&[], &[]);
        with_bad_execfn.execfn = bad;
        assert_eq!(
            build(&with_bad_execfn, TOP, MAX),
            Err(StackError::NulInString(StackString::Execfn))
        );
        let mut with_bad_platform = spec(&[], &[]);
        with_bad_platform.platform = bad;
        assert_eq!(
            build(&with_bad_platform, TOP, MAX),
            Err(StackError::NulInString(StackString::Platform))
        );
    }

    #[test]
    fn too_big_is_e2big_at_the_exact_limit() {
        let long = vec![b'x'; 5000];
        let argv: [&[u8]; 2] = [b"prog", &long];
        let spec = spec(&argv, &[]);
        let needed = build(&spec, TOP, MAX).unwrap().bytes.len();
        assert!(build(&spec, TOP, needed).is_ok());
        let error = build(&spec, TOP, needed - 1).unwrap_err();
        assert_eq!(
            error,
            StackError::TooBig {
                needed: needed as u64,
                max: needed - 1
            }
        );
        assert_eq!(error.errno(), Errno::E2BIG);
        assert!(!error.to_string().contains('\n'));
    }

    #[test]
    fn huge_argument_lists_fail_without_allocating_them() {
        // 1 Mi empty arguments need 9 MiB of stack; the check runs before allocation.
        let empties: Vec<&[u8]> = vec![b""; 1 << 20];
        let error = build(&spec(&empties, &[]), TOP, MAX).unwrap_err();
        assert!(matches!(error, StackError::TooBig { .. }));
    }

    #[test]
    fn rejects_bad_stack_tops() {
        let spec = spec(&[], &[]);
        assert_eq!(
            build(&spec, TOP + 8, MAX),
            Err(StackError::MisalignedTop(TOP + 8))
        );
        assert_eq!(build(&spec, 64, MAX), Err(StackError::TopTooLow(64)));
        assert_eq!(StackError::TopTooLow(64).errno(), Errno::EINVAL);
    }

    #[test]
    fn aux_values_for_executable_apply_the_bias() {
        let exe = Executable {
            kind: crate::ExecKind::StaticPie,
            entry: 0x1040,
            segments: Vec::new(),
            phdr_vaddr: 0x40,
            phnum: 9,
            phentsize: 56,
            tls: None,
            stack_executable: false,
            min_vaddr: 0,
            max_vaddr: 0x6000,
        };
        let aux = AuxValues::for_executable(&exe, 0x5555_5555_4000);
        assert_eq!(aux.phdr, 0x5555_5555_4040);
        assert_eq!(aux.entry, 0x5555_5555_5040);
        assert_eq!((aux.phent, aux.phnum, aux.pagesz), (56, 9, 4096));
        assert_eq!((aux.base, aux.clktck), (0, 100));
    }
}
