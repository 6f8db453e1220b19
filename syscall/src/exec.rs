//! Starting the application: unpack the initrd into the root filesystem, read the run
//! configuration the CLI left there, load the ELF into the address space with Linux's
//! layout, build the initial stack, open the console descriptors, and start the main
//! thread.

use crate::env::{EntropyHandle, KernelClock, KernelProcessInfo, SerialConsole};
use crate::process::{self, Process};
use crate::thread::Task;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_arch::layout::{PAGE_SIZE, USER_END};
use skiff_arch::{cpu, time, TrapFrame};
use skiff_block::BlockDevice;
use skiff_bootproto::{BootTiming, ExitReport, GuestTag, RunConfig, RUN_CONFIG_PATH};
use skiff_console as console;
use skiff_errno::{Errno, KResult};
use skiff_fs::Entropy;
use skiff_fs::{FsContext, OpenFile, OpenFlags, StdStream, Vfs};
use skiff_loader::{stack, ExecKind, Executable};
use skiff_mm::paging::UserPageTable;
use skiff_mm::usercopy;
use skiff_vm::{AddressSpace, Backing, Layout, MapSource, PageOps, Prot, VmaKind};

/// What the kernel image hands over.
pub struct BootParams<'a> {
    pub initrd: &'a [u8],
    pub cmdline: &'a str,
    pub timing: bool,
    /// The disks the drivers found; the run configuration says which to mount where.
    pub disks: Vec<Arc<dyn BlockDevice>>,
}

/// Pages of block cache each volume gets (4 KiB each): enough for a working set of
/// metadata and hot data without taking much of a small guest's memory.
const VOLUME_CACHE_PAGES: usize = 2048;

/// Linux's `STACK_TOP` without randomization.
const STACK_TOP: u64 = USER_END;
/// The initial stack mapping (it grows down on faults up to `RLIMIT_STACK`).
const INITIAL_STACK: u64 = 132 * 1024;
/// Linux's minimum gap between the stack and the mmap area (128 MiB) plus the guard gap.
const MMAP_GAP: u64 = (128 << 20) + skiff_vm::STACK_GUARD_GAP;
/// Most the initial stack's strings and vectors may take (Linux: a quarter of the
/// 8 MiB stack limit).
pub(crate) const MAX_ARG_BYTES: usize = 2 << 20;
/// Bytes of `MINSIGSTKSZ` reported in the auxiliary vector (fxsave frame + siginfo).
const MIN_SIGSTACK: u64 = 2048;

fn fail(report: ExitReport, args: core::fmt::Arguments<'_>) -> ! {
    console::log(skiff_bootproto::LogLevel::Error, args);
    console::exit(report)
}

/// The executable's file, as a source for its image pages.
pub(crate) struct ExeSource {
    file: Arc<OpenFile>,
    dev: u64,
    ino: u64,
    path: Vec<u8>,
}

impl ExeSource {
    /// The source for `file`, opened at guest path `path`.
    pub(crate) fn for_file(file: &Arc<OpenFile>, path: &[u8]) -> Arc<dyn MapSource> {
        let stat = file.stat().ok();
        Arc::new(ExeSource {
            file: file.clone(),
            dev: stat.as_ref().map_or(0, |s| s.dev),
            ino: stat.as_ref().map_or(0, |s| s.ino),
            path: path.to_vec(),
        })
    }
}

impl MapSource for ExeSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        self.file.pread(buf, offset as i64)
    }

    fn describe(&self) -> (u64, u64, Vec<u8>) {
        (self.dev, self.ino, self.path.clone())
    }
}

/// Where threads wait for a [`skiff_block::lock::SleepLock`] to be released.
static SLEEP_LOCK_RELEASED: skiff_sched::WaitQueue = skiff_sched::WaitQueue::new();

/// Boot the application. Never returns: the application runs, and its exit powers off.
pub fn start(boot: BootParams<'_>) -> ! {
    skiff_block::lock::set_lock_hooks(
        |released| {
            // Uninterruptible and without deadline: a holder always releases.
            let _ = SLEEP_LOCK_RELEASED.wait_until(None, false, released);
        },
        || SLEEP_LOCK_RELEASED.wake_all(),
    );
    let vfs = Vfs::new(Arc::new(KernelClock));
    let t0 = time::monotonic_ns();
    if let Err(e) = skiff_fs::unpack_cpio(&vfs, boot.initrd) {
        fail(
            ExitReport::KernelFailure,
            format_args!("initrd: cannot unpack the image: {}", e),
        );
    }
    let initrd_ns = time::monotonic_ns() - t0;
    let config = read_run_config(&vfs);
    let console_is_tty = skiff_bootproto::cmdline::flag(boot.cmdline, "skiff.tty");
    if let Err(e) = vfs.mount_standard(
        Arc::new(SerialConsole),
        console_is_tty,
        Arc::new(EntropyHandle),
        Arc::new(KernelProcessInfo),
    ) {
        fail(
            ExitReport::KernelFailure,
            format_args!("boot: cannot create /dev, /proc, /tmp: {}", e),
        );
    }
    mount_volumes(&vfs, &config, &boot.disks);
    let fs = FsContext::new(&vfs);
    if let Err(e) = fs.chdir(&config.cwd) {
        fail(
            ExitReport::CannotExecute,
            format_args!(
                "cannot enter working directory {}: {}",
                String::from_utf8_lossy(&config.cwd),
                e
            ),
        );
    }
    let exe_name = String::from_utf8_lossy(&config.exe).into_owned();
    let file = match vfs.open(&fs.cwd(), &config.exe, OpenFlags(OpenFlags::O_RDONLY), 0) {
        Ok(f) => f,
        Err(Errno::ENOENT) => fail(
            ExitReport::NotFound,
            format_args!("{}: no such file in the image", exe_name),
        ),
        Err(e) => fail(
            ExitReport::CannotExecute,
            format_args!("{}: cannot open: {}", exe_name, e),
        ),
    };
    let image = match read_whole(&file) {
        Ok(b) => b,
        Err(e) => fail(
            ExitReport::CannotExecute,
            format_args!("{}: cannot read: {}", exe_name, e),
        ),
    };
    let exe = match skiff_loader::parse(&image) {
        Ok(x) => x,
        Err(e) => fail(
            ExitReport::CannotExecute,
            format_args!("{}: cannot execute: {}", exe_name, e),
        ),
    };
    drop(image);

    {
        let terminal = vfs
            .terminal()
            .expect("mount_standard installs the terminal");
        let mut fds = fs.fds.lock();
        for which in [StdStream::Stdin, StdStream::Stdout, StdStream::Stderr] {
            let _ = fds.insert(OpenFile::console(&terminal, which), false);
        }
    }

    let mut aspace = AddressSpace::new(user_layout());
    let mut pt = UserPageTable::current();
    let source = ExeSource::for_file(&file, &config.exe);
    let entry = match load_image(&mut aspace, &mut pt, &exe, &source, &file) {
        Ok(v) => v,
        Err(e) => fail(
            ExitReport::CannotExecute,
            format_args!("{}: cannot load: {}", exe_name, e),
        ),
    };
    let args = ProgramArgs {
        exe_path: &config.exe,
        argv: &config.argv,
        envp: &config.envp,
    };
    let stack = prepare_stack(&mut aspace, &mut pt, &exe, entry.bias, &args);
    let rsp = match stack.and_then(|st| usercopy::copy_to_user(st.base, &st.bytes).map(|_| st.rsp))
    {
        Ok(v) => v,
        Err(e) => fail(
            ExitReport::CannotExecute,
            format_args!("{}: cannot set up the stack: {}", exe_name, e),
        ),
    };

    let identity =
        process::Identity::init(config.exe.clone(), config.argv.clone(), config.envp.clone());
    let p = process::install(Process::new(
        identity,
        skiff_mm::paging::boot_root(),
        fs,
        aspace,
    ));
    if boot.timing {
        let t = BootTiming {
            entry_to_app_ns: time::monotonic_ns(),
            initrd_ns,
        };
        console::send(GuestTag::Timing, &t.encode());
    }
    console::debug!("exec: {} entry {:#x} rsp {:#x}", exe_name, entry.entry, rsp);
    let frame = TrapFrame {
        rip: entry.entry,
        rsp,
        cs: skiff_arch::gdt::KERNEL_CS as u64,
        ss: skiff_arch::gdt::KERNEL_DS as u64,
        rflags: 0x202,
        ..TrapFrame::default()
    };
    let mut fpu = alloc::vec![0u8; skiff_arch::fpu::format().size];
    skiff_arch::fpu::write_init_state(&mut fpu);
    let tid = process::allocate_tid();
    let task = Task::new(tid, p.clone(), 0);
    {
        let mut threads = p.threads.lock();
        let start = skiff_sched::UserStart {
            frame: &frame,
            fpu: &fpu,
            fs_base: 0,
            page_root: p.page_root,
        };
        match skiff_sched::spawn(tid, start, alloc::boxed::Box::new(task)) {
            Ok(t) => threads.insert(tid, t),
            Err(_) => fail(
                ExitReport::KernelFailure,
                format_args!("{}: no memory for the main thread", exe_name),
            ),
        };
    }
    // The boot code becomes the idle thread; the main thread runs from here.
    skiff_sched::run_idle()
}

/// Mounts each configured volume's FAT filesystem, creating its mount point. A missing
/// disk or an unreadable filesystem stops the boot with a message that names both.
fn mount_volumes(vfs: &Arc<Vfs>, config: &RunConfig, disks: &[Arc<dyn BlockDevice>]) {
    for volume in &config.volumes {
        let serial = String::from_utf8_lossy(&volume.serial);
        let mount_point = String::from_utf8_lossy(&volume.mount_point);
        let Some(disk) = disks.iter().find(|d| d.serial() == &volume.serial[..]) else {
            fail(
                ExitReport::KernelFailure,
                format_args!(
                    "volume {} for {}: no such disk (found {} virtio-blk disks)",
                    serial,
                    mount_point,
                    disks.len()
                ),
            );
        };
        let fat = match skiff_fat::mount(disk.clone(), vfs.clock().clone(), VOLUME_CACHE_PAGES) {
            Ok(fs) => fs,
            Err(e) => fail(
                ExitReport::KernelFailure,
                format_args!(
                    "volume {} for {}: cannot mount its FAT filesystem: {}",
                    serial, mount_point, e
                ),
            ),
        };
        let mounted = make_dirs(vfs, &volume.mount_point).and_then(|at| vfs.mount(&at, fat));
        if let Err(e) = mounted {
            fail(
                ExitReport::KernelFailure,
                format_args!(
                    "volume {}: cannot mount it on {}: {}",
                    serial, mount_point, e
                ),
            );
        }
        console::debug!(
            "volume {} ({} sectors) mounted on {}",
            serial,
            disk.sector_count(),
            mount_point
        );
    }
}

/// `mkdir -p`: the directory at absolute `path`, created with its parents if missing.
fn make_dirs(vfs: &Arc<Vfs>, path: &[u8]) -> KResult<skiff_fs::Location> {
    let mut at = vfs.root();
    for name in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        at = match vfs.resolve(&at, name, true) {
            Ok(dir) => dir,
            Err(Errno::ENOENT) => vfs.mkdir(&at, name, 0o755)?,
            Err(e) => return Err(e),
        };
    }
    Ok(at)
}

fn read_run_config(vfs: &Arc<Vfs>) -> RunConfig {
    let root = vfs.root();
    let path = alloc::format!("/{}", RUN_CONFIG_PATH);
    let file = match vfs.open(&root, path.as_bytes(), OpenFlags(OpenFlags::O_RDONLY), 0) {
        Ok(f) => f,
        Err(e) => fail(
            ExitReport::KernelFailure,
            format_args!(
                "initrd: no run configuration at {} ({}); was the image built by skiff?",
                path, e
            ),
        ),
    };
    let bytes = read_whole(&file).unwrap_or_default();
    drop(file);
    // The configuration is the CLI's message to the kernel, not part of the app's world.
    let _ = vfs.unlink(&root, path.as_bytes(), false);
    let _ = vfs.unlink(&root, b"/.skiff", true);
    match RunConfig::decode(&bytes) {
        Ok(c) if !c.exe.is_empty() => c,
        Ok(_) => fail(
            ExitReport::KernelFailure,
            format_args!("initrd: run configuration names no program"),
        ),
        Err(e) => fail(
            ExitReport::KernelFailure,
            format_args!("initrd: bad run configuration: {:?}", e),
        ),
    }
}

/// The application half's layout, as Linux lays out a process without randomization.
pub(crate) fn user_layout() -> Layout {
    Layout {
        mmap_base: STACK_TOP - MMAP_GAP,
        mmap_min: skiff_loader::MIN_MAP_ADDR,
        user_end: USER_END,
    }
}

pub(crate) fn read_whole(file: &Arc<OpenFile>) -> KResult<Vec<u8>> {
    let size = file.stat()?.size as usize;
    let mut buf = alloc::vec![0u8; size];
    let mut done = 0;
    while done < size {
        let n = file.pread(&mut buf[done..], done as i64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

pub(crate) struct Loaded {
    pub entry: u64,
    pub bias: u64,
}

fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// Map the PT_LOAD segments. Pages are filled from the file on first touch; a page two
/// segments share (possible without `-z separate-code`) is built now with both
/// segments' bytes and the union of their permissions.
pub(crate) fn load_image(
    aspace: &mut AddressSpace,
    pt: &mut UserPageTable,
    exe: &Executable,
    source: &Arc<dyn MapSource>,
    file: &Arc<OpenFile>,
) -> KResult<Loaded> {
    let bias = match exe.kind {
        ExecKind::Static => 0,
        ExecKind::StaticPie => {
            // Like Linux for a PIE without interpreter: wherever mmap would put it.
            let span = page_up(exe.max_vaddr) - page_down(exe.min_vaddr);
            let flags = skiff_vm::abi::MAP_PRIVATE | skiff_vm::abi::MAP_ANONYMOUS;
            let base = aspace.mmap(
                pt,
                0,
                span,
                skiff_vm::abi::PROT_NONE,
                flags,
                Backing::Anonymous,
            )?;
            aspace.munmap(pt, base, span)?;
            base - page_down(exe.min_vaddr)
        }
    };
    let mut shared_pages: Vec<u64> = Vec::new();
    let mut prev_end = 0;
    for seg in &exe.segments {
        let start = page_down(seg.vaddr + bias);
        let end = page_up(seg.vaddr + bias + seg.memsz);
        if start < prev_end {
            shared_pages.push(start);
        }
        prev_end = end;
        let prot = Prot {
            read: seg.readable,
            write: seg.writable,
            exec: seg.executable,
        };
        let backing = if seg.filesz == 0 {
            Backing::Anonymous
        } else {
            Backing::File {
                source: source.clone(),
                offset: page_down(seg.file_offset),
                file_size_limit: seg.file_offset + seg.filesz,
            }
        };
        aspace.map_fixed(pt, start, end - start, prot, VmaKind::Image, backing)?;
    }
    for &page in &shared_pages {
        let mut data = alloc::vec![0u8; PAGE_SIZE as usize];
        let mut prot = Prot::NONE;
        for seg in &exe.segments {
            let (s, e) = (seg.vaddr + bias, seg.vaddr + bias + seg.memsz);
            if e <= page || s >= page + PAGE_SIZE {
                continue;
            }
            prot = Prot {
                read: prot.read || seg.readable,
                write: prot.write || seg.writable,
                exec: prot.exec || seg.executable,
            };
            let fs = s.max(page);
            let fe = (seg.vaddr + bias + seg.filesz).min(page + PAGE_SIZE);
            if fe > fs {
                let off = seg.file_offset + (fs - (seg.vaddr + bias));
                let dst = &mut data[(fs - page) as usize..(fe - page) as usize];
                file.pread(dst, off as i64)?;
            }
        }
        aspace.map_fixed(
            pt,
            page,
            PAGE_SIZE,
            prot,
            VmaKind::Image,
            Backing::Anonymous,
        )?;
        pt.map_page(page, prot, &data)?;
    }
    aspace.set_brk_area(page_up(exe.max_vaddr + bias));
    Ok(Loaded {
        entry: exe.entry + bias,
        bias,
    })
}

/// What a program's initial stack carries.
pub(crate) struct ProgramArgs<'a> {
    pub exe_path: &'a [u8],
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
}

/// Map the initial stack and make its top pages present; the caller copies
/// `bytes` to `base` once it no longer holds the address space.
pub(crate) fn prepare_stack(
    aspace: &mut AddressSpace,
    pt: &mut UserPageTable,
    exe: &Executable,
    bias: u64,
    args: &ProgramArgs<'_>,
) -> KResult<stack::InitialStack> {
    let mut random = [0u8; 16];
    crate::env::entropy().fill(&mut random);
    let mut aux = stack::AuxValues::for_executable(exe, bias);
    aux.hwcap = cpu::features().hwcap as u64;
    aux.minsigstksz = Some(MIN_SIGSTACK);
    let argv: Vec<&[u8]> = args.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = args.envp.iter().map(|a| a.as_slice()).collect();
    let spec = stack::StackSpec {
        argv: &argv,
        envp: &envp,
        execfn: args.exe_path,
        platform: b"x86_64",
        random,
        aux,
    };
    let st = stack::build(&spec, STACK_TOP, MAX_ARG_BYTES).map_err(|e| e.errno())?;
    let stack_len = page_up(STACK_TOP - page_down(st.base)).max(INITIAL_STACK);
    aspace.map_fixed(
        pt,
        STACK_TOP - stack_len,
        stack_len,
        Prot::READ_WRITE,
        VmaKind::Stack,
        Backing::Anonymous,
    )?;
    aspace.populate_range(pt, page_down(st.base), STACK_TOP - page_down(st.base))?;
    Ok(st)
}
