//! `skiff`: package an unmodified static Linux program with the Skiff kernel and run it
//! in a VM, as if it were a local command.
//!
//! This file owns the command-line interface (clap definitions and help text); the work
//! is in the modules: [`run`] orchestrates `skiff run`, [`initrd`]/[`cpio`] build the
//! guest's root filesystem, [`qemu`] builds QEMU's command line, [`accel`] picks the
//! accelerator, [`session`] and [`console`] connect the running guest to the terminal,
//! and [`status`] maps how the program ended to skiff's exit status.
#![deny(unsafe_code)]

mod accel;
mod console;
mod cpio;
mod initrd;
mod locate;
mod options;
mod qemu;
mod run;
mod session;
mod status;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use accel::AccelChoice;
use options::{EnvArg, FileMapping};
use qemu::Machine;

const ABOUT: &str = "Run unmodified static Linux programs as Skiff unikernels";

const LONG_ABOUT: &str = "\
Run unmodified static Linux x86_64 programs as Skiff unikernels.

Skiff packs one program into a tiny root filesystem, boots it on a small Rust kernel
under QEMU, and connects it to your terminal: its output is your output, your input is
its input, and its exit status is skiff's exit status.";

const EXAMPLES: &str = "\
Examples:
  skiff run ./hello
  skiff run -e GREETING=hi -m 1G ./server -- --port 8080
  skiff run --file ./config:/etc/app ./app
  echo 'data' | skiff run ./filter > out.txt";

const RUN_AFTER_HELP: &str = "\
Examples:
  skiff run ./hello
  skiff run ./busybox -- sh -c 'echo hello from $(uname -s)'
  skiff run -e GREETING=hi -e HOME --memory 1G ./server -- --port 8080
  skiff run --file ./site:/srv/www --file ca.pem:/etc/ssl/ca.pem ./httpd
  skiff run --timeout 10 ./job < input.txt > output.txt

The program runs as root with the working directory /, and sees /bin/<name> (itself),
/etc (passwd, group, hosts, hostname, resolv.conf), /root and /tmp, plus any --file.
Default environment: PATH=/bin:/usr/bin:/sbin:/usr/sbin, HOME=/root, and TERM (the
host's, else linux); -e entries replace these.

Exit status:
  the program's own exit status when it exits
  128+N    the program was killed by signal N (139 for SIGSEGV)
  124      --timeout expired
  125      skiff or QEMU failed (missing kernel image or QEMU, guest crash)
  126      the program cannot be executed (not a static x86_64 Linux ELF)
  127      the program does not exist
  130/143  skiff was interrupted (Ctrl-C) or terminated

Environment:
  SKIFF_KERNEL  the kernel image (default: skiff-kernel beside the skiff executable,
                then ../lib/skiff/skiff-kernel relative to it)
  SKIFF_QEMU    the QEMU binary (default: qemu-system-x86_64 from PATH)";

#[derive(Parser, Debug)]
#[command(name = "skiff", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Subcommand, Debug)]
enum CliCommand {
    /// Run a static Linux program in a fresh Skiff VM, like a local command
    #[command(
        override_usage = "skiff run [OPTIONS] <ELF> [-- ARGS...]",
        after_long_help = RUN_AFTER_HELP
    )]
    Run(RunArgs),
}

/// The options of `skiff run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Set a guest environment variable (repeatable)
    ///
    /// `-e KEY=VALUE` sets it; `-e KEY` copies the host's value (and leaves KEY unset if
    /// the host has none). Later entries win; these replace the defaults.
    #[arg(
        short = 'e',
        long = "env",
        value_name = "KEY[=VALUE]",
        value_parser = OsStringValueParser::new().try_map(|arg| options::parse_env_arg(&arg))
    )]
    pub env: Vec<EnvArg>,

    /// Guest memory, e.g. 512M or 1G (at least 32M)
    ///
    /// Bytes, or a number with K, M, G or T (binary units; KiB/MB spellings work too).
    #[arg(
        short = 'm',
        long,
        value_name = "SIZE",
        default_value = options::DEFAULT_MEMORY,
        value_parser = options::parse_memory_size
    )]
    pub memory: u64,

    /// Copy a host file or directory into the guest (repeatable)
    ///
    /// Directories are copied recursively (symlinks inside stay symlinks). Without GUEST
    /// an absolute HOST keeps its path and a relative one lands under / (`--file
    /// conf/app.toml` → /conf/app.toml). Files override the default /etc files.
    #[arg(
        long = "file",
        value_name = "HOST[:GUEST]",
        value_parser = OsStringValueParser::new().try_map(|arg| options::parse_file_mapping(&arg))
    )]
    pub files: Vec<FileMapping>,

    /// Accelerator
    ///
    /// `auto` uses KVM only when /dev/kvm is usable and backed by kvm_intel or kvm_amd
    /// (not kvm_pvm); otherwise TCG.
    #[arg(long, value_enum, value_name = "ACCEL", default_value = "auto")]
    pub accel: AccelChoice,

    /// Virtual machine type
    #[arg(long, value_enum, value_name = "MACHINE", default_value = "microvm")]
    pub machine: Machine,

    /// Stop the VM after this long and exit with status 124
    ///
    /// Seconds, or a number with s, m, h or d (e.g. 30, 1.5, 2m), as for timeout(1); 0
    /// means no timeout.
    #[arg(long, value_name = "SECONDS", value_parser = options::parse_timeout)]
    pub timeout: Option<Duration>,

    /// Print boot timings on stderr (for benchmarks)
    ///
    /// One line of key=value pairs in milliseconds: the guest's entry-to-app and initrd
    /// times, QEMU start to first console frame, and the total.
    #[arg(long)]
    pub timing: bool,

    /// Show what skiff does and all kernel log lines
    ///
    /// Prints the accelerator choice, kernel image, initrd and QEMU command line, QEMU's
    /// own messages, and every kernel log line (not only errors).
    #[arg(short, long)]
    pub verbose: bool,

    /// Kernel image to boot [env: SKIFF_KERNEL]
    ///
    /// Default: skiff-kernel beside the skiff executable, then
    /// ../lib/skiff/skiff-kernel relative to it.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// QEMU binary [env: SKIFF_QEMU] [default: qemu-system-x86_64 from PATH]
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,

    /// The program (a static Linux x86_64 ELF) and its arguments
    ///
    /// The program is a static or static-pie Linux x86_64 executable. Everything after it
    /// goes to the program, options included (`skiff run ./grep -v x`); a `--` right after
    /// the program is dropped.
    #[arg(
        value_names = ["ELF", "ARGS"],
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

impl RunArgs {
    /// The program path (the first word of the command; clap guarantees one).
    pub fn elf(&self) -> &Path {
        Path::new(&self.command[0])
    }

    /// The program's arguments: the words after it, without a leading `--` separator.
    pub fn program_args(&self) -> &[OsString] {
        match &self.command[1..] {
            [separator, rest @ ..] if separator == "--" => rest,
            rest => rest,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are not errors; usage errors are skiff's own failure.
            return ExitCode::from(if error.use_stderr() {
                status::STATUS_SKIFF_FAILED
            } else {
                0
            });
        }
    };
    match cli.command {
        CliCommand::Run(args) => ExitCode::from(run::run(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let argv = ["skiff", "run"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            CliCommand::Run(run) => run,
        })
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let run = parse(&["./hello"]).unwrap();
        assert_eq!(run.elf(), Path::new("./hello"));
        assert_eq!(run.memory, 512 << 20);
        assert_eq!(run.accel, AccelChoice::Auto);
        assert_eq!(run.machine, Machine::Microvm);
        assert!(run.program_args().is_empty() && run.env.is_empty() && run.files.is_empty());
        assert_eq!(run.timeout, None);
        assert!(!run.verbose && !run.timing);
    }

    #[test]
    fn program_arguments_with_and_without_separator() {
        let run = parse(&["-v", "./prog", "--", "-x", "--flag", "--"]).unwrap();
        assert_eq!(run.program_args(), ["-x", "--flag", "--"]);
        assert!(run.verbose);
        let run = parse(&["./prog", "a", "-b", "--c"]).unwrap();
        assert_eq!(run.program_args(), ["a", "-b", "--c"]);
        // Options after the program belong to the program, as with `docker run`.
        let run = parse(&["./prog", "-v", "-e", "pattern"]).unwrap();
        assert!(!run.verbose && run.env.is_empty());
        assert_eq!(run.program_args(), ["-v", "-e", "pattern"]);
        // Only the first `--` is a separator.
        let run = parse(&["./prog", "--", "--", "x"]).unwrap();
        assert_eq!(run.program_args(), ["--", "x"]);
        let run = parse(&["--", "./prog", "-v"]).unwrap();
        assert_eq!(
            (run.elf(), run.program_args()),
            (Path::new("./prog"), &["-v".into()][..])
        );
    }

    #[test]
    fn all_options() {
        let run = parse(&[
            "-e",
            "A=1",
            "--env",
            "B",
            "-m",
            "1G",
            "--file",
            "x:/y",
            "--file",
            "/etc/z",
            "--accel",
            "tcg",
            "--machine",
            "q35",
            "--timeout",
            "2.5",
            "--timing",
            "--kernel",
            "/k",
            "--qemu",
            "/q",
            "./prog",
        ])
        .unwrap();
        assert_eq!(run.env.len(), 2);
        assert_eq!(run.memory, 1 << 30);
        assert_eq!(run.files[0].guest, b"/y");
        assert_eq!(run.files[1].guest, b"/etc/z");
        assert_eq!((run.accel, run.machine), (AccelChoice::Tcg, Machine::Q35));
        assert_eq!(run.timeout, Some(Duration::from_millis(2500)));
        assert!(run.timing);
        assert_eq!(run.kernel, Some(PathBuf::from("/k")));
        assert_eq!(run.qemu, Some(PathBuf::from("/q")));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let small = parse(&["-m", "16M", "./p"]).unwrap_err().to_string();
        assert!(small.contains("at least 32M"), "{small}");
        assert!(parse(&["--accel", "xen", "./p"]).is_err());
        assert!(parse(&["--file", "a:rel", "./p"]).is_err());
        assert!(parse(&["-e", "=v", "./p"]).is_err());
        assert!(parse(&["--timeout", "soon", "./p"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
