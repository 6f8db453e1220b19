//! `skiff run`: check the program on the host, find the kernel and QEMU, pick the
//! accelerator, pack the initrd into a temporary file, and hand over to
//! [`crate::session::Session`]. Every failure here is one `skiff: ` line on stderr and an
//! exit status (127 no such program, 126 cannot execute, 125 anything else).

use std::fs;
use std::io::{self, BufWriter};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::accel;
use crate::initrd::{self, ImageSpec};
use crate::locate;
use crate::options;
use crate::qemu::{self, VmConfig};
use crate::session::{say, EventChannel, Session};
use crate::status::{STATUS_CANNOT_EXECUTE, STATUS_NOT_FOUND, STATUS_SKIFF_FAILED};
use crate::RunArgs;

/// A failed step: the exit status and the message to print.
struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    fn skiff(message: impl Into<String>) -> Failure {
        Failure {
            status: STATUS_SKIFF_FAILED,
            message: message.into(),
        }
    }
}

/// The program's bytes after the host-side check.
struct Program {
    bytes: Vec<u8>,
    mtime: u32,
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

fn prepare_and_run(args: RunArgs) -> Result<u8, Failure> {
    let events = EventChannel::with_signal_watch().map_err(Failure::skiff)?;
    let elf = args.elf().to_path_buf();
    let app = elf.display().to_string();
    let program = read_program(&elf)?;

    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let kernel = locate::find_kernel(
        args.kernel.as_deref(),
        std::env::var_os(locate::KERNEL_ENV),
        exe_dir.as_deref(),
        |p| p.is_file(),
    )
    .map_err(Failure::skiff)?;
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
        say(&format!("kernel image: {}", kernel.display()));
    }

    let env = options::build_environment(&args.env, |key| std::env::var_os(key));
    let spec = ImageSpec {
        program: &program.bytes,
        program_path: &elf,
        program_mtime: program.mtime,
        args: args.program_args(),
        env,
        files: &args.files,
    };
    let (tree, _config) = initrd::skiff_image(&spec).map_err(Failure::skiff)?;
    // Removed when dropped, which happens after QEMU has been stopped and reaped.
    let initrd_file = tempfile::Builder::new()
        .prefix("skiff-initrd-")
        .suffix(".cpio")
        .tempfile()
        .map_err(|e| {
            Failure::skiff(format!(
                "cannot create a temporary file for the initrd: {e}"
            ))
        })?;
    let written = tree
        .write_to(BufWriter::new(initrd_file.as_file()))
        .map_err(Failure::skiff)?
        .into_inner()
        .map_err(|e| Failure::skiff(format!("writing the initrd: {}", e.error())))?;
    let initrd_size = written.metadata().map(|m| m.len()).unwrap_or(0);
    if args.verbose {
        say(&format!(
            "initrd: {} ({} entries, {} bytes)",
            initrd_file.path().display(),
            tree.entry_count(),
            initrd_size
        ));
    }

    let vm = VmConfig {
        machine: args.machine,
        accel: decision.accel,
        memory_mib: options::memory_mib(args.memory),
        kernel,
        initrd: initrd_file.path().to_path_buf(),
        verbose: args.verbose,
        timing: args.timing,
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
        events,
    };
    let status = session.run();
    drop(initrd_file);
    Ok(status)
}

/// Read the program and check that the Skiff loader accepts it, so that a program that
/// cannot run is refused before a VM is booted.
fn read_program(path: &Path) -> Result<Program, Failure> {
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
    let mtime = metadata.mtime().clamp(0, i64::from(u32::MAX)) as u32;
    Ok(Program { bytes, mtime })
}
