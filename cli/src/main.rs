//! `skiff`: package an unmodified static Linux program with the Skiff kernel and run it
//! in a VM, as if it were a local command.
//!
//! This file owns the command-line interface (clap definitions and help text); the work
//! is in the modules: [`run`] orchestrates `skiff run`, [`initrd`]/[`cpio`] build the
//! guest's root filesystem, [`qemu`] builds QEMU's command line, [`accel`] picks the
//! accelerator, [`session`] and [`console`] connect the running guest to the terminal,
//! and [`status`] maps how the program ended to skiff's exit status. [`manifest`] reads
//! `skiff.toml`, [`image`] writes, opens and describes image directories, [`volume`]
//! makes and edits FAT volumes on the host, and [`verbs`] runs `build`, `inspect` and
//! `volume`.
#![deny(unsafe_code)]

mod accel;
mod console;
mod cpio;
mod forward;
mod image;
mod initrd;
mod locate;
mod manifest;
mod net;
mod options;
mod qemu;
mod run;
mod session;
mod status;
mod tempfiles;
mod verbs;
mod volume;

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use accel::AccelChoice;
use net::{Ipv4Cidr, NetMode, NetSettings, PortMapping};
use options::{EnvArg, FileMapping, VolumeArg};
use qemu::Machine;

const ABOUT: &str = "Run unmodified static Linux programs as Skiff unikernels";

const LONG_ABOUT: &str = "\
Run unmodified static Linux x86_64 programs as Skiff unikernels.

Skiff packs one program into a tiny root filesystem, boots it on a small Rust kernel
under QEMU, and connects it to your terminal: its output is your output, your input is
its input, and its exit status is skiff's exit status. `skiff build` makes a reusable
image from a skiff.toml manifest, and FAT volumes keep data between runs.";

const EXAMPLES: &str = "\
Examples:
  skiff run ./hello
  skiff run -e GREETING=hi -m 1G ./server -- --port 8080
  skiff run --file ./config:/etc/app ./app
  echo 'data' | skiff run ./filter > out.txt
  skiff volume create --size 64M data.img
  skiff run --volume data.img:/data ./app
  skiff run -p 8080:80 ./httpd
  skiff build && skiff run ./app.skiff
  skiff inspect ./app.skiff";

const RUN_AFTER_HELP: &str = "\
Examples:
  skiff run ./hello
  skiff run ./busybox -- sh -c 'echo hello from $(uname -s)'
  skiff run -e GREETING=hi -e HOME --memory 1G ./server -- --port 8080
  skiff run --file ./site:/srv/www --file ca.pem:/etc/ssl/ca.pem ./httpd
  skiff run --timeout 10 ./job < input.txt > output.txt
  skiff run --volume data.img:/data:64M ./app
  skiff run -p 8080:80 -p 5353:53/udp ./server
  skiff run --net none ./job
  skiff run --net tap:tap0 --ip 192.168.100.2/24 --gateway 192.168.100.1 ./server
  skiff run ./app.skiff                       (an image made by skiff build)
  skiff run -m 1G ./app.skiff -- --verbose    (arguments replace the image's)

The program runs as root with the working directory /, and sees /bin/<name> (itself),
/etc (passwd, group, hosts, hostname, and resolv.conf when the network has a DNS
server), /root and /tmp, plus any --file.
Default environment: PATH=/bin:/usr/bin:/sbin:/usr/sbin, HOME=/root, and TERM (the
host's, else linux); -e entries replace these.

An image directory (from skiff build) boots with its own kernel, initrd and settings.
-m, --machine, --accel, --timeout, --kernel, --verbose, --timing and --mem-report
override them; arguments after the image replace its arguments; -e overrides its
environment key by key; --file adds files; --volume adds volumes after the image's
own. Each -p is added to the image's ports, replacing one with the same guest port and
protocol or the same host port; --net replaces the image's network (another kind of network drops the
image's ports, address and DNS servers); --ip/--gateway/--dhcp and --dns replace the
image's.

Networking: by default the guest has QEMU user networking (10.0.2.15/24, gateway
10.0.2.2, DNS 10.0.2.3) and can connect out; -p publishes its ports on the host.
Published ports are bound before booting. skiff itself listens on each TCP one and
relays connections to the guest, so a client that connects before the program listens
waits until it does; the line `skiff: ready: 127.0.0.1:8080 -> guest port 80/tcp` on
stderr says when. UDP ports are forwarded by QEMU: datagrams sent before the program
binds are lost.

Volumes (--volume FILE:/MOUNT[:SIZE]) are FAT images on virtio-blk disks, mounted at
MOUNT before the program starts; with SIZE a missing FILE is created first. A volume
can be used by one VM at a time.

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

const BUILD_AFTER_HELP: &str = "\
The manifest (skiff.toml; host paths are relative to its directory):

  [program]
  path = \"busybox\"              # the static ELF to run (required)
  args = [\"sh\", \"/app/run.sh\"]  # argv[1..]; argv[0] is the guest path
  env = [\"GREETING=hi\"]         # KEY=VALUE over the defaults PATH, HOME, TERM=linux
  workdir = \"/\"                 # initial working directory
  guest_path = \"/bin/busybox\"   # where the program goes (default /bin/<name>)

  [[files]]                     # files or whole directories (repeatable)
  host = \"run.sh\"
  guest = \"/app/run.sh\"         # default: / + host, as with --file

  [[volumes]]                   # FAT volumes (repeatable)
  file = \"data.img\"
  mount = \"/data\"
  size = \"64M\"                  # optional: skiff run creates a missing volume

  [vm]
  memory = \"256M\"               # default 512M
  cpus = 1                      # only 1 today
  machine = \"microvm\"           # or q35
  net = \"user\"                  # or none or tap:IFNAME (as --net)
  ports = [\"8080:80\"]           # published ports (as -p)
  dns = [\"10.0.2.3\"]            # as --dns; and ip, gateway, dhcp as --ip, --gateway, --dhcp

The image directory holds kernel (a copy of the kernel image), initrd.cpio and run.toml
(memory, cpus, machine, the manifest's network settings, and volumes with absolute host
paths). The initrd is reproducible: the same inputs give the same bytes (sorted
entries, owner root, every time $SOURCE_DATE_EPOCH or 0, permissions 0755/0644).

Examples:
  skiff build                        (./skiff.toml → ./<program>.skiff)
  skiff build apps/web -o web.skiff
  skiff run web.skiff";

const INSPECT_AFTER_HELP: &str = "\
Prints the program, its arguments and environment, the VM settings, the volumes, the
network and published ports, the sizes of the kernel and initrd, and every initrd entry
(mode, size, guest path).";

const VOLUME_AFTER_HELP: &str = "\
A volume is a raw disk image with one FAT filesystem, mounted in the guest with
--volume FILE:/MOUNT or a manifest's [[volumes]]. Paths on a volume are written
VOLUME:/path and are case-insensitive, as FAT is; times are UTC. Commands that change a
volume refuse one a running VM is using.

Examples:
  skiff volume create --size 64M data.img
  skiff volume cp config.json data.img:/etc/config.json
  skiff volume cp -r ./site data.img:/www
  skiff volume ls data.img /www
  skiff volume cat data.img /log/app.log
  skiff volume cp -r data.img:/log ./logs";

#[derive(Subcommand, Debug)]
enum CliCommand {
    /// Run a static Linux program (or an image) in a fresh Skiff VM, like a local command
    #[command(
        override_usage = "skiff run [OPTIONS] <ELF|IMAGE> [-- ARGS...]",
        after_long_help = RUN_AFTER_HELP
    )]
    Run(Box<RunArgs>),
    /// Build an image directory from a skiff.toml manifest
    #[command(after_long_help = BUILD_AFTER_HELP)]
    Build(BuildArgs),
    /// Show what an image directory holds
    #[command(after_long_help = INSPECT_AFTER_HELP)]
    Inspect(InspectArgs),
    /// Create FAT volumes and copy files in and out of them
    #[command(subcommand, after_long_help = VOLUME_AFTER_HELP)]
    Volume(VolumeCommand),
}

/// The options of `skiff build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The manifest, or a directory holding skiff.toml [default: ./skiff.toml]
    #[arg(value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// The image directory to write [default: <manifest dir>/<program name>.skiff]
    ///
    /// An existing image there is replaced (only once the new one is complete); any other
    /// existing file or non-empty directory is an error.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Kernel image to put in the image [env: SKIFF_KERNEL]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
}

/// The options of `skiff inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The image directory (made by skiff build)
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
}

/// `skiff volume` commands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Make a new volume: a file of SIZE bytes with a fresh FAT filesystem
    ///
    /// The FAT type follows the size as with mkfs.fat (FAT12 below about 4M, FAT16 below
    /// 512M, FAT32 from 512M) unless --fat says otherwise. The file is sparse: unused
    /// space takes no disk.
    Create {
        /// Size, e.g. 64M or 1G (64K to 2T)
        #[arg(short, long, value_name = "SIZE", value_parser = options::parse_volume_size)]
        size: u64,
        /// Replace FILE if it exists (everything on it is lost)
        #[arg(short, long)]
        force: bool,
        /// Volume label (up to 11 characters)
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        /// FAT type: 12, 16 or 32 [default: by size]
        #[arg(long, value_name = "BITS", value_parser = volume::parse_fat_type)]
        fat: Option<volume::FatType>,
        /// The volume image file to create
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List a directory on a volume (type, size, modification time, name)
    Ls {
        /// The volume image
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Directory or file on the volume
        #[arg(value_name = "PATH", default_value = "/")]
        path: String,
    },
    /// Copy files between the host and a volume: SRC and DEST are host paths or VOLUME:/path
    ///
    /// Exactly one side is on a volume. Like cp: onto an existing directory the copy goes
    /// inside it, otherwise it takes DEST's name; missing parent directories on the volume
    /// are created. Symlinks on the host are followed.
    Cp {
        /// Copy directories recursively
        #[arg(short = 'r', short_alias = 'R', long)]
        recursive: bool,
        /// A host path or VOLUME:/path
        #[arg(value_name = "SRC")]
        source: OsString,
        /// A host path or VOLUME:/path
        #[arg(value_name = "DEST")]
        dest: OsString,
    },
    /// Print a file on a volume to stdout
    Cat {
        /// The volume image
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The file on the volume
        #[arg(value_name = "PATH")]
        path: String,
    },
    /// Create directories on a volume (with their parents, like mkdir -p)
    Mkdir {
        /// The volume image
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Directories on the volume
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<String>,
    },
    /// Remove files (and with -r, directories) from a volume
    Rm {
        /// Remove directories and their contents
        #[arg(short = 'r', short_alias = 'R', long)]
        recursive: bool,
        /// The volume image
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Files or directories on the volume
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<String>,
    },
    /// Show a volume's FAT type, capacity, free space and label
    Info {
        /// The volume image
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
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

    /// Guest memory, e.g. 512M or 1G (at least 32M) [default: 512M, or the image's]
    ///
    /// Bytes, or a number with K, M, G or T (binary units; KiB/MB spellings work too).
    #[arg(
        short = 'm',
        long,
        value_name = "SIZE",
        value_parser = options::parse_memory_size
    )]
    pub memory: Option<u64>,

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

    /// Mount a FAT volume image at MOUNT in the guest (repeatable)
    ///
    /// FILE must be a FAT volume (make one with `skiff volume create`); with SIZE (e.g.
    /// 64M) a missing FILE is created. Each volume needs its own file, and a VM using a
    /// volume holds it until it stops.
    #[arg(
        long = "volume",
        value_name = "FILE:/MOUNT[:SIZE]",
        value_parser = OsStringValueParser::new().try_map(|arg| options::parse_volume_arg(&arg))
    )]
    pub volumes: Vec<VolumeArg>,

    /// Publish a guest port on the host (repeatable; needs user networking)
    ///
    /// HOST_IP defaults to 127.0.0.1 (this host only; 0.0.0.0 means every address), the
    /// protocol to tcp. Each host port is bound before the VM boots. Once the program
    /// listens on GUEST_PORT, skiff prints one line on stderr:
    /// `skiff: ready: 127.0.0.1:8080 -> guest port 80/tcp`. skiff itself listens on a
    /// published TCP port and relays each connection to the guest, so a client that
    /// connects before that line waits in the queue until the program listens.
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]"
    )]
    pub publish: Vec<PortMapping>,

    /// The VM's network: user, none or tap:IFNAME [default: user, or the image's]
    ///
    /// `user` is QEMU user networking: the guest is 10.0.2.15/24 behind NAT (gateway
    /// 10.0.2.2, DNS 10.0.2.3), can connect out, and is reached through -p. `none`
    /// gives the VM no network card. `tap:IFNAME` attaches it to an existing tap device;
    /// give the guest's address with --ip (and --gateway) or --dhcp.
    #[arg(long = "net", value_name = "MODE")]
    pub net: Option<NetMode>,

    /// The guest's address on a tap network, e.g. 192.168.100.2/24
    #[arg(long, value_name = "A.B.C.D/N")]
    pub ip: Option<Ipv4Cidr>,

    /// The guest's default gateway on a tap network (with --ip)
    #[arg(long, value_name = "A.B.C.D")]
    pub gateway: Option<Ipv4Addr>,

    /// Let the guest configure its address by DHCP (a tap network, or user networking)
    #[arg(long)]
    pub dhcp: bool,

    /// A DNS server for the guest's /etc/resolv.conf (repeatable, up to 3)
    ///
    /// Default: 10.0.2.3 (QEMU's forwarder to the host's resolver) with user
    /// networking, none otherwise. Replaces any /etc/resolv.conf from --file or the
    /// image.
    #[arg(long, value_name = "IP")]
    pub dns: Vec<Ipv4Addr>,

    /// Accelerator
    ///
    /// `auto` uses KVM only when /dev/kvm is usable and backed by kvm_intel or kvm_amd
    /// (not kvm_pvm); otherwise TCG.
    #[arg(long, value_enum, value_name = "ACCEL", default_value = "auto")]
    pub accel: AccelChoice,

    /// Virtual machine type [default: microvm, or the image's]
    #[arg(long, value_enum, value_name = "MACHINE")]
    pub machine: Option<Machine>,

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

    /// Print the guest's memory use on stderr every SECONDS seconds
    ///
    /// One line each time: `skiff: memory: 21.5 MiB in use of 509.0 MiB (kernel heap
    /// 3.0 MiB allocated of 8.0 MiB)`. "In use" counts every page taken from the guest's
    /// RAM (the program's memory, page tables, files in the root filesystem and the
    /// kernel heap, which grows and keeps what it took); watch it to see whether a
    /// long-running service leaks. 1 to 3600.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub mem_report: Option<u64>,

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

    /// The program (a static Linux x86_64 ELF) or an image directory, and its arguments
    ///
    /// The program is a static or static-pie Linux x86_64 executable; an image is a
    /// directory made by `skiff build`. Everything after it goes to the program, options
    /// included (`skiff run ./grep -v x`); a `--` right after the program is dropped.
    #[arg(
        value_names = ["ELF|IMAGE", "ARGS"],
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

    /// The network options as settings (applied over an image's, or resolved alone).
    pub fn net_settings(&self) -> NetSettings {
        NetSettings {
            mode: self.net.clone(),
            ports: self.publish.clone(),
            ip: self.ip,
            gateway: self.gateway,
            dhcp: self.dhcp,
            dns: self.dns.clone(),
        }
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
    ExitCode::from(match cli.command {
        CliCommand::Run(args) => run::run(*args),
        CliCommand::Build(args) => verbs::build(args),
        CliCommand::Inspect(args) => verbs::inspect(args),
        CliCommand::Volume(command) => verbs::volume(command),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let argv = ["skiff", "run"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            CliCommand::Run(run) => *run,
            other => panic!("not run: {other:?}"),
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
        assert_eq!(run.memory, None);
        assert_eq!(run.accel, AccelChoice::Auto);
        assert_eq!(run.machine, None);
        assert!(run.volumes.is_empty());
        assert!(run.program_args().is_empty() && run.env.is_empty() && run.files.is_empty());
        assert_eq!(run.timeout, None);
        assert!(!run.verbose && !run.timing);
        assert_eq!(run.net_settings(), NetSettings::default());
    }

    #[test]
    fn network_options() {
        let run = parse(&[
            "-p",
            "8080:80",
            "--publish",
            "0.0.0.0:5353:53/udp",
            "--net",
            "user",
            "--dns",
            "9.9.9.9",
            "--dns",
            "1.1.1.1",
            "--dhcp",
            "./prog",
            "-p",
            "1:2",
        ])
        .unwrap();
        let settings = run.net_settings();
        let ports: Vec<String> = settings.ports.iter().map(|p| p.to_string()).collect();
        assert_eq!(ports, ["127.0.0.1:8080:80/tcp", "0.0.0.0:5353:53/udp"]);
        assert_eq!(settings.mode, Some(NetMode::User));
        assert_eq!(
            settings.dns,
            [Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)]
        );
        assert!(settings.dhcp);
        // After the program, -p is the program's.
        assert_eq!(run.program_args(), ["-p", "1:2"]);

        let run = parse(&[
            "--net",
            "tap:tap0",
            "--ip",
            "192.168.100.2/24",
            "--gateway",
            "192.168.100.1",
            "./prog",
        ])
        .unwrap();
        let settings = run.net_settings();
        assert_eq!(settings.mode, Some(NetMode::Tap("tap0".into())));
        assert_eq!(settings.ip.unwrap().to_string(), "192.168.100.2/24");
        assert_eq!(settings.gateway, Some(Ipv4Addr::new(192, 168, 100, 1)));
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
            "--volume",
            "d.img:/data",
            "--volume",
            "e.img:/e:1M",
            "./prog",
        ])
        .unwrap();
        assert_eq!(run.env.len(), 2);
        assert_eq!(run.memory, Some(1 << 30));
        assert_eq!(run.volumes.len(), 2);
        assert_eq!(run.volumes[1].size, Some(1 << 20));
        assert_eq!(run.files[0].guest, b"/y");
        assert_eq!(run.files[1].guest, b"/etc/z");
        assert_eq!(
            (run.accel, run.machine),
            (AccelChoice::Tcg, Some(Machine::Q35))
        );
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
        assert!(parse(&["--volume", "d.img", "./p"]).is_err());
        assert!(parse(&[]).is_err());
        for (args, needle) in [
            (&["-p", "80", "./p"][..], "'80' needs both ports"),
            (&["-p", "8080:80/icmp", "./p"], "unknown protocol 'icmp'"),
            (&["--net", "tap", "./p"], "needs the tap device's name"),
            (&["--ip", "10.0.0.2", "./p"], "needs a prefix length"),
            (
                &["--gateway", "10.0.0", "./p"],
                "invalid value '10.0.0' for '--gateway",
            ),
            (&["--dns", "::1", "./p"], "invalid value '::1' for '--dns"),
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    fn parse_any(args: &[&str]) -> Result<CliCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once(&"skiff").chain(args)).map(|cli| cli.command)
    }

    #[test]
    fn other_verbs() {
        match parse_any(&["build"]).unwrap() {
            CliCommand::Build(b) => assert!(b.manifest.is_none() && b.output.is_none()),
            other => panic!("{other:?}"),
        }
        match parse_any(&["build", "apps/web", "-o", "web.skiff"]).unwrap() {
            CliCommand::Build(b) => {
                assert_eq!(b.manifest, Some(PathBuf::from("apps/web")));
                assert_eq!(b.output, Some(PathBuf::from("web.skiff")));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_any(&["inspect"]).is_err());
        match parse_any(&["volume", "create", "--size", "64M", "d.img"]).unwrap() {
            CliCommand::Volume(VolumeCommand::Create { size, force, .. }) => {
                assert_eq!((size, force), (64 << 20, false))
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_any(&["volume", "create", "d.img"]).is_err());
        assert!(parse_any(&["volume", "create", "--size", "1K", "d.img"]).is_err());
        match parse_any(&["volume", "cp", "-R", "a", "d.img:/b"]).unwrap() {
            CliCommand::Volume(VolumeCommand::Cp { recursive, .. }) => assert!(recursive),
            other => panic!("{other:?}"),
        }
        match parse_any(&["volume", "ls", "d.img"]).unwrap() {
            CliCommand::Volume(VolumeCommand::Ls { path, .. }) => assert_eq!(path, "/"),
            other => panic!("{other:?}"),
        }
        assert!(parse_any(&["volume", "rm", "d.img"]).is_err());
    }
}
