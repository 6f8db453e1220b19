//! `skiff run`: check the program (or open the image), prepare the volumes, find the
//! kernel and QEMU, pick the accelerator, pack the initrd into a temporary file when one
//! is needed, and hand over to [`crate::session::Session`]. Every failure here is one
//! `skiff: ` line on stderr and an exit status (127 no such program, 126 cannot execute,
//! 125 anything else).
//!
//! Two kinds of target:
//! * an ELF (the quick path): the initrd is packed from the program and the options;
//! * an image directory from `skiff build`: its kernel, initrd and `run.toml` are used.
//!   `-m`, `--machine`, `--timeout`, `--accel`, `--verbose`, `--timing`, `--mem-report`
//!   and `--kernel` override or add to the image's settings; program arguments after the
//!   image replace the image's arguments (argv[1..]); `-e` entries override the image's
//!   environment key by key; `--file`s are added; `--volume`s are attached after the
//!   image's own; the network options apply over the image's ([`NetSettings::overlay`]). When any of
//!   these changes the guest's files, a modified copy of the initrd is written to a
//!   temporary file; the image itself is never changed.
//!
//! Published host ports are checked to be free just before QEMU starts.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use skiff_bootproto::{RunConfig, Transport};

use crate::accel;
use crate::forward;
use crate::image::{self, Image, VolumeSpec};
use crate::initrd::{self, ImageSpec, InitrdTree};
use crate::locate;
use crate::manifest::same_file;
use crate::net::{self, NetMode, NetSettings, Network, Source};
use crate::options;
use crate::qemu::{self, Machine, VmConfig};
use crate::session::{say, EventChannel, Session};
use crate::status::{STATUS_CANNOT_EXECUTE, STATUS_NOT_FOUND, STATUS_SKIFF_FAILED};
use crate::tempfiles::{self, TempPath};
use crate::volume;
use crate::RunArgs;

/// A failed step: the exit status and the message to print.
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub fn skiff(message: impl Into<String>) -> Failure {
        Failure {
            status: STATUS_SKIFF_FAILED,
            message: message.into(),
        }
    }
}

/// The program's bytes after the host-side check.
pub struct Program {
    pub bytes: Vec<u8>,
}

/// Run `skiff run` and return the exit status.
pub fn run(args: RunArgs) -> u8 {
    match prepare_and_run(args) {
        Ok(status) => status,
        Err(failure) => {
            say(&failure.message);
            failure.status
        }
    }
}

/// Where the initrd QEMU boots comes from.
enum Initrd {
    /// A file that stays (an image's own initrd).
    Image(PathBuf),
    /// A temporary file, removed when dropped (after QEMU has been stopped and reaped).
    Temporary(TempPath),
}

impl Initrd {
    fn path(&self) -> &Path {
        match self {
            Initrd::Image(path) => path,
            Initrd::Temporary(file) => file.path(),
        }
    }
}

/// What to boot, whichever kind of target it came from.
struct Plan {
    kernel: PathBuf,
    initrd: Initrd,
    /// Entries in the initrd (for --verbose).
    entries: usize,
    memory: u64,
    machine: Machine,
    volumes: Vec<PathBuf>,
    network: Network,
}

fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// The kernel image: `--kernel`, else `$SKIFF_KERNEL`, else beside the executable.
pub fn find_kernel(flag: Option<&Path>) -> Result<PathBuf, String> {
    locate::find_kernel(
        flag,
        std::env::var_os(locate::KERNEL_ENV),
        exe_dir().as_deref(),
        |p| p.is_file(),
    )
}

fn mtime() -> Result<u32, Failure> {
    initrd::source_date_epoch(std::env::var_os(initrd::SOURCE_DATE_EPOCH)).map_err(Failure::skiff)
}

fn prepare_and_run(args: RunArgs) -> Result<u8, Failure> {
    let events = EventChannel::with_signal_watch().map_err(Failure::skiff)?;
    let target = args.elf().to_path_buf();
    let app = target.display().to_string();
    let plan = if image::is_image(&target) {
        plan_image(&args, &target)?
    } else {
        plan_elf(&args, &target)?
    };
    let (qemu_program, qemu_named) =
        locate::find_qemu(args.qemu.as_deref(), std::env::var_os(locate::QEMU_ENV));

    let decision = accel::decide(args.accel, &accel::probe_host());
    if let Some(warning) = &decision.warning {
        say(&format!("warning: {warning}"));
    }
    if args.verbose {
        say(&format!(
            "accelerator: {} ({})",
            decision.accel.qemu_name(),
            decision.reason
        ));
        say(&format!("kernel image: {}", plan.kernel.display()));
        let size = fs::metadata(plan.initrd.path()).map_or(0, |m| m.len());
        say(&format!(
            "initrd: {} ({} entries, {} bytes)",
            plan.initrd.path().display(),
            plan.entries,
            size
        ));
        say(&format!("network: {}", plan.network.describe()));
        for port in &plan.network.ports {
            say(&format!("publishing {}", port.describe()));
        }
    }
    // Published TCP ports are relayed by skiff itself (see forward.rs), which binds them
    // here for good; QEMU forwards them from private loopback ports. UDP ports QEMU
    // binds itself, so they are only checked to be free.
    let (relays, qemu_ports) = forward::bind(&plan.network.ports).map_err(Failure::skiff)?;
    let udp_ports: Vec<_> = plan
        .network
        .ports
        .iter()
        .filter(|p| p.transport == Transport::Udp)
        .copied()
        .collect();
    net::check_host_ports(&udp_ports).map_err(Failure::skiff)?;
    let mut qemu_network = plan.network.clone();
    qemu_network.ports = qemu_ports;
    if let NetMode::Tap(name) = &plan.network.mode {
        net::check_tap_device(name, Path::new(net::SYS_CLASS_NET)).map_err(Failure::skiff)?;
    }

    let vm = VmConfig {
        machine: plan.machine,
        accel: decision.accel,
        memory_mib: options::memory_mib(plan.memory),
        kernel: plan.kernel.clone(),
        initrd: plan.initrd.path().to_path_buf(),
        verbose: args.verbose,
        timing: args.timing,
        mem_report_secs: args.mem_report,
        volumes: plan.volumes.clone(),
        network: qemu_network,
    };
    let qemu_args = qemu::qemu_args(&vm);
    if args.verbose {
        let words = std::iter::once(qemu_program.as_os_str())
            .chain(qemu_args.iter().map(|a| a.as_os_str()));
        say(&format!("running: {}", qemu::shell_words(words)));
    }

    let session = Session {
        qemu: qemu_program,
        qemu_named,
        qemu_args,
        app,
        verbose: args.verbose,
        timing: args.timing,
        timeout: args.timeout.filter(|t| !t.is_zero()),
        published: plan.network.ports.clone(),
        relays,
        events,
    };
    let status = session.run();
    drop(plan);
    Ok(status)
}

/// The quick path: pack the program and the options into a temporary initrd.
fn plan_elf(args: &RunArgs, elf: &Path) -> Result<Plan, Failure> {
    let program = read_program(elf)?;
    let kernel = find_kernel(args.kernel.as_deref()).map_err(Failure::skiff)?;
    let volume_specs: Vec<VolumeSpec> = args.volumes.iter().map(volume_spec).collect();
    let mounts: Vec<Vec<u8>> = volume_specs.iter().map(|v| v.mount.clone()).collect();
    let env = options::build_environment(&args.env, |key| std::env::var_os(key));
    let network = args
        .net_settings()
        .resolve(Source::CommandLine)
        .map_err(Failure::skiff)?;
    let spec = ImageSpec {
        network: &network,
        program: &program.bytes,
        exe: initrd::default_exe_path(elf).map_err(Failure::skiff)?,
        args: args.program_args(),
        env,
        cwd: b"/".to_vec(),
        files: &args.files,
        volumes: &mounts,
        mtime: mtime()?,
    };
    let (tree, _config) = initrd::skiff_image(&spec).map_err(Failure::skiff)?;
    let volumes = prepare_volumes(&volume_specs, args.verbose)?;
    Ok(Plan {
        kernel,
        entries: tree.entry_count(),
        initrd: Initrd::Temporary(write_temporary(&tree)?),
        memory: args.memory.unwrap_or(default_memory()),
        machine: args.machine.unwrap_or(Machine::Microvm),
        volumes,
        network,
    })
}

fn default_memory() -> u64 {
    options::parse_memory_size(options::DEFAULT_MEMORY).unwrap_or(512 << 20)
}

fn volume_spec(arg: &options::VolumeArg) -> VolumeSpec {
    VolumeSpec {
        file: arg.file.clone(),
        mount: arg.mount.clone(),
        size: arg.size,
    }
}

/// An image: its own kernel, initrd and settings, with the command line's overrides.
fn plan_image(args: &RunArgs, dir: &Path) -> Result<Plan, Failure> {
    let image = Image::open(dir).map_err(Failure::skiff)?;
    let kernel = match &args.kernel {
        Some(_) => find_kernel(args.kernel.as_deref()).map_err(Failure::skiff)?,
        None => image.kernel(),
    };
    let network = network_for_image(args, &image.network)?;
    let (entries, config) = image.read_initrd().map_err(Failure::skiff)?;
    let mut volume_specs = image.volumes.clone();
    volume_specs.extend(args.volumes.iter().map(volume_spec));
    let mounts: Vec<Vec<u8>> = volume_specs.iter().map(|v| v.mount.clone()).collect();
    let wanted = image_run_config(&config, args, &mounts);

    let original = InitrdTree::from_entries(entries).map_err(Failure::skiff)?;
    let mut tree = original.clone();
    tree.set_mtime(mtime()?);
    // Files go under the program, as in `skiff run <ELF>`: none may replace it.
    let program = tree.remove(&wanted.exe);
    for mapping in &args.files {
        tree.add_host_path(&mapping.host, &mapping.guest)
            .map_err(|e| Failure::skiff(format!("--file {}: {e}", mapping.host.display())))?;
    }
    if let Some(program) = program {
        tree.insert(&wanted.exe, program).map_err(Failure::skiff)?;
    }
    initrd::settle_etc(&mut tree, &network).map_err(Failure::skiff)?;
    initrd::check_mount_points(&tree, &wanted.exe, &mounts).map_err(Failure::skiff)?;
    if wanted != config {
        initrd::insert_run_config(&mut tree, &wanted).map_err(Failure::skiff)?;
    }
    let entry_count = tree.entry_count();
    // Nothing above changed the guest's files (the common case): boot the image's own
    // initrd rather than a copy.
    let initrd = if tree.same_entries(&original) {
        Initrd::Image(image.initrd())
    } else {
        Initrd::Temporary(write_temporary(&tree)?)
    };
    let volumes = prepare_volumes(&volume_specs, args.verbose)?;
    Ok(Plan {
        kernel,
        initrd,
        entries: entry_count,
        memory: args.memory.unwrap_or(image.memory),
        machine: args.machine.unwrap_or(image.run.machine),
        volumes,
        network,
    })
}

/// The network of an image run: the command line's options over the image's settings.
fn network_for_image(args: &RunArgs, image: &NetSettings) -> Result<Network, Failure> {
    let merged = args.net_settings().overlay(image);
    if args.verbose {
        for port in image.ports.iter().filter(|p| !merged.ports.contains(p)) {
            say(&format!(
                "not publishing the image's {} (the command line replaces it)",
                port.describe()
            ));
        }
    }
    merged.resolve(Source::CommandLine).map_err(Failure::skiff)
}

/// The image's run configuration with the command line's arguments, environment and
/// volumes applied.
fn image_run_config(config: &RunConfig, args: &RunArgs, mounts: &[Vec<u8>]) -> RunConfig {
    use std::os::unix::ffi::OsStrExt;
    let mut wanted = config.clone();
    let program_args: &[OsString] = args.program_args();
    if !program_args.is_empty() {
        wanted.argv.truncate(1);
        wanted
            .argv
            .extend(program_args.iter().map(|a| a.as_bytes().to_vec()));
    }
    options::override_environment(&mut wanted.envp, &args.env, |key| std::env::var_os(key));
    wanted.volumes = mounts
        .iter()
        .enumerate()
        .map(|(i, mount)| skiff_bootproto::VolumeMount {
            serial: skiff_bootproto::volume_serial(i).into_bytes(),
            mount_point: mount.clone(),
        })
        .collect();
    wanted
}

/// Write the archive to a temporary file. Initrds that killed runs left behind are
/// removed on the way.
fn write_temporary(tree: &InitrdTree) -> Result<TempPath, Failure> {
    const PREFIX: &str = "skiff-initrd-";
    const SUFFIX: &str = ".cpio";
    let dir = std::env::temp_dir();
    let (file, path) = tempfiles::temp_file(&dir, PREFIX, SUFFIX).map_err(|e| {
        Failure::skiff(format!(
            "cannot create a temporary file for the initrd: {e}"
        ))
    })?;
    if let Ok(metadata) = file.metadata() {
        use std::os::unix::fs::MetadataExt;
        tempfiles::remove_stale(&dir, PREFIX, SUFFIX, metadata.uid());
    }
    tree.write_to(BufWriter::new(&file))
        .map_err(Failure::skiff)?
        .into_inner()
        .map_err(|e| Failure::skiff(format!("writing the initrd: {}", e.error())))?;
    Ok(path)
}

/// Check the volumes (creating the missing ones that have a size) and return their
/// absolute paths, in order. Two volumes may not share a file, and a volume another VM
/// is using is refused before QEMU would fail on its lock.
fn prepare_volumes(specs: &[VolumeSpec], verbose: bool) -> Result<Vec<PathBuf>, Failure> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let file = std::path::absolute(&spec.file)
            .map_err(|e| Failure::skiff(initrd::describe_io(&spec.file, &e)))?;
        let mount = String::from_utf8_lossy(&spec.mount);
        if let Some(j) = paths.iter().position(|p| same_file(p, &file)) {
            return Err(Failure::skiff(format!(
                "{} is given for two volumes ({} and {}); each volume needs its own file",
                spec.file.display(),
                String::from_utf8_lossy(&specs[j].mount),
                mount
            )));
        }
        if !file.exists() {
            let Some(size) = spec.size else {
                return Err(Failure::skiff(format!(
                    "volume {} (for {mount}) does not exist; create it with: skiff volume create --size 64M {}",
                    spec.file.display(),
                    spec.file.display()
                )));
            };
            let fat = volume::create(&file, size, volume::CreateOptions::default())
                .map_err(|e| Failure::skiff(format!("creating volume {i}: {e}")))?;
            if verbose {
                say(&format!(
                    "created volume {} ({}, {})",
                    file.display(),
                    options::format_size(size),
                    volume::fat_type_name(fat)
                ));
            }
        }
        volume::check_for_vm(&file)
            .map_err(|e| Failure::skiff(format!("volume for {mount}: {e}")))?;
        paths.push(file);
    }
    Ok(paths)
}

/// Read the program and check that the Skiff loader accepts it, so that a program that
/// cannot run is refused before a VM is booted.
pub fn read_program(path: &Path) -> Result<Program, Failure> {
    let shown = path.display();
    let cannot_execute = |reason: &dyn std::fmt::Display| Failure {
        status: STATUS_CANNOT_EXECUTE,
        message: format!("{shown}: cannot execute: {reason}"),
    };
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Failure {
                status: STATUS_NOT_FOUND,
                message: format!("{shown}: no such file"),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(cannot_execute(&"permission denied"))
        }
        Err(e) => return Err(cannot_execute(&e)),
    };
    if metadata.is_dir() {
        return Err(cannot_execute(&"is a directory"));
    }
    if !metadata.is_file() {
        return Err(cannot_execute(&"not a regular file"));
    }
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => cannot_execute(&"permission denied"),
        _ => cannot_execute(&e),
    })?;
    skiff_loader::parse(&bytes).map_err(|e| cannot_execute(&e))?;
    Ok(Program { bytes })
}
