//! The kernel services `skiff-fs` is built against: the wall clock, entropy, the
//! console, and what procfs reports about the process.

use crate::process;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::{cpu, time};
use skiff_errno::{Errno, KResult};
use skiff_fs::{Clock, Console, ConsoleStream, Entropy, ProcessInfo, Timespec};

pub fn ns_to_timespec(ns: i64) -> Timespec {
    Timespec {
        sec: ns.div_euclid(1_000_000_000),
        nsec: ns.rem_euclid(1_000_000_000),
    }
}

pub struct KernelClock;

impl Clock for KernelClock {
    fn realtime(&self) -> Timespec {
        ns_to_timespec(time::realtime_ns())
    }
}

/// Random bytes from RDRAND when the CPU has it; otherwise a SplitMix64 stream seeded
/// from the TSC, which is *not* cryptographically strong (a warning is logged once).
pub struct KernelEntropy {
    rdrand: bool,
    state: AtomicU64,
}

static ENTROPY: spin::Once<KernelEntropy> = spin::Once::new();

/// The kernel's one entropy source (probed once: CPUID, then a test RDRAND).
pub fn entropy() -> &'static KernelEntropy {
    ENTROPY.call_once(KernelEntropy::probe)
}

impl KernelEntropy {
    fn probe() -> KernelEntropy {
        let rdrand = cpu::features().rdrand && cpu::rdrand().is_some();
        if !rdrand {
            skiff_console::warn!(
                "entropy: no RDRAND; /dev/urandom and getrandom are not cryptographically strong"
            );
        }
        KernelEntropy {
            rdrand,
            state: AtomicU64::new(cpu::rdtsc() ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    /// Eight random bytes (seeds for the kernel's own use, such as TCP sequence
    /// numbers and ephemeral ports).
    pub fn next(&self) -> u64 {
        if self.rdrand {
            if let Some(v) = cpu::rdrand() {
                return v;
            }
        }
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            ^ cpu::rdtsc();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Entropy for KernelEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `/dev/urandom`'s view of [`entropy`].
pub struct EntropyHandle;

impl Entropy for EntropyHandle {
    fn fill(&self, buf: &mut [u8]) {
        entropy().fill(buf)
    }
}

/// The application's console: host stdin/stdout/stderr through the framed serial line.
pub struct SerialConsole;

impl Console for SerialConsole {
    fn write(&self, stream: ConsoleStream, data: &[u8]) -> KResult<usize> {
        match stream {
            ConsoleStream::Stdout => skiff_console::write_stdout(data),
            ConsoleStream::Stderr => skiff_console::write_stderr(data),
        }
        Ok(data.len())
    }

    /// Never blocks: with nothing buffered it reports `EAGAIN`, and the syscall layer
    /// parks the thread until input arrives (see `crate::wait`), so other threads run.
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        match skiff_console::try_read_stdin(buf) {
            skiff_console::StdinRead::Data(n) => Ok(n),
            skiff_console::StdinRead::Eof => Ok(0),
            skiff_console::StdinRead::Empty => Err(Errno::EAGAIN),
        }
    }

    fn window_size(&self) -> (u16, u16) {
        (24, 80)
    }

    fn read_ready(&self) -> bool {
        skiff_console::stdin_ready()
    }
}

/// What procfs shows about the process.
pub struct KernelProcessInfo;

fn nul_join(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        out.extend_from_slice(i);
        out.push(0);
    }
    out
}

impl ProcessInfo for KernelProcessInfo {
    fn pid(&self) -> u32 {
        process::try_current().map_or(process::INIT_PID, |p| p.pid)
    }

    fn exe_path(&self) -> Vec<u8> {
        process::try_current()
            .map(|p| p.image().exe_path.clone())
            .unwrap_or_default()
    }

    fn cmdline(&self) -> Vec<u8> {
        process::try_current()
            .map(|p| nul_join(&p.image().argv))
            .unwrap_or_default()
    }

    fn environ(&self) -> Vec<u8> {
        process::try_current()
            .map(|p| nul_join(&p.image().envp))
            .unwrap_or_default()
    }

    fn maps(&self) -> String {
        match process::try_current() {
            Some(p) => p.aspace.lock().maps_text(),
            None => String::new(),
        }
    }

    fn meminfo(&self) -> String {
        let s = skiff_mm::frames::stats();
        let total = s.total_frames * 4;
        let free = s.free_frames * 4;
        format!(
            "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\n\
             Buffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\n\
             SwapTotal:             0 kB\nSwapFree:              0 kB\n"
        )
    }

    fn cpuinfo(&self) -> String {
        cpuinfo()
    }

    fn uptime(&self) -> (Timespec, Timespec) {
        let up = ns_to_timespec(time::monotonic_ns() as i64);
        (up, Timespec::default())
    }

    fn relations(&self) -> (u32, u32, u32) {
        match process::try_current() {
            Some(p) => (p.parent(), p.pgid(), p.sid()),
            None => (0, process::INIT_PID, process::INIT_PID),
        }
    }

    fn files(&self) -> Option<Arc<skiff_fs::FsContext>> {
        process::try_current().map(|p| p.fs.clone())
    }

    fn status(&self) -> String {
        let (pid, ppid) =
            process::try_current().map_or((process::INIT_PID, 0), |p| (p.pid, p.parent()));
        let (vm, name) = match process::try_current() {
            Some(p) => {
                let vm = p.aspace.lock().total_mapped() / 1024;
                let name = p.image().file_name().to_vec();
                (vm, String::from_utf8_lossy(&name).into_owned())
            }
            None => (0, String::new()),
        };
        let mask = crate::sys_signal::blocked_mask();
        let threads = process::try_current().map_or(1, |p| p.thread_count());
        format!(
            "Name:\t{name}\nUmask:\t0022\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\n\
             TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t\n\
             VmSize:\t{vm:>8} kB\nThreads:\t{threads}\nSigBlk:\t{mask:016x}\n\
             Cpus_allowed:\t1\nCpus_allowed_list:\t0\n"
        )
    }
}

/// `/proc/cpuinfo` for the one CPU, with the flags Linux would print for the CPUID bits
/// programs look for.
pub fn cpuinfo() -> String {
    let f = cpu::features();
    let vendor = core::str::from_utf8(&f.vendor).unwrap_or("unknown");
    let brand = core::str::from_utf8(&f.brand)
        .unwrap_or("")
        .trim_end_matches('\0')
        .trim();
    const EDX: &[(u32, &str)] = &[
        (0, "fpu"),
        (4, "tsc"),
        (5, "msr"),
        (6, "pae"),
        (8, "cx8"),
        (9, "apic"),
        (11, "sep"),
        (12, "mtrr"),
        (13, "pge"),
        (15, "cmov"),
        (16, "pat"),
        (19, "clflush"),
        (23, "mmx"),
        (24, "fxsr"),
        (25, "sse"),
        (26, "sse2"),
    ];
    const ECX: &[(u32, &str)] = &[
        (0, "pni"),
        (1, "pclmulqdq"),
        (9, "ssse3"),
        (12, "fma"),
        (13, "cx16"),
        (19, "sse4_1"),
        (20, "sse4_2"),
        (22, "movbe"),
        (23, "popcnt"),
        (25, "aes"),
        (26, "xsave"),
        (28, "avx"),
        (29, "f16c"),
        (30, "rdrand"),
    ];
    let mut flags = String::new();
    for (bit, name) in EDX {
        if f.flags_edx & (1 << bit) != 0 {
            let _ = write!(flags, "{name} ");
        }
    }
    for (bit, name) in ECX {
        if f.flags_ecx & (1 << bit) != 0 {
            let _ = write!(flags, "{name} ");
        }
    }
    let mhz = time::tsc_hz() as f64 / 1e6;
    format!(
        "processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {}\nmodel\t\t: {}\nmodel name\t: {brand}\n\
         stepping\t: {}\ncpu MHz\t\t: {mhz:.3}\nphysical id\t: 0\nsiblings\t: 1\ncore id\t\t: 0\n\
         cpu cores\t: 1\napicid\t\t: 0\nfpu\t\t: yes\nflags\t\t: {}\nclflush size\t: 64\n\
         cache_alignment\t: 64\naddress sizes\t: 48 bits physical, 48 bits virtual\n\n",
        f.family,
        f.model,
        f.stepping,
        flags.trim_end()
    )
}
