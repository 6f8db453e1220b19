//! Building QEMU's command line. [`qemu_args`] is a pure function of [`VmConfig`] so the
//! exact argv is pinned by tests and can be printed with `--verbose`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use skiff_bootproto::{cmdline, DEBUG_EXIT_PORT};

use crate::accel::Accel;
use crate::net::Network;

/// The QEMU binary used when neither `--qemu` nor `$SKIFF_QEMU` names one.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// The virtual machine type.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    /// Minimal machine without PCI or firmware: boots in tens of milliseconds.
    Microvm,
    /// A modern PC (SeaBIOS firmware, PCI): slower to boot, closer to a cloud VM.
    Q35,
}

/// Everything that decides QEMU's argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    pub machine: Machine,
    pub accel: Accel,
    pub memory_mib: u64,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Send the kernel's Debug/Info log lines too.
    pub verbose: bool,
    /// Ask the kernel for a boot timing report.
    pub timing: bool,
    /// Ask the kernel for a memory report every this many seconds.
    pub mem_report_secs: Option<u64>,
    /// Volume image files, in order: volume `i` is the virtio-blk disk with serial
    /// [`skiff_bootproto::volume_serial`]`(i)`.
    pub volumes: Vec<PathBuf>,
    /// The network card (if any), its backend and the guest's address.
    pub network: Network,
}

impl Machine {
    /// The name used on the command line and in image configurations.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }
}

/// A value for QEMU's `key=value,...` option syntax: commas are doubled.
fn option_value(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// The `-drive` and `-device` arguments of volume `index` stored in `file`: a raw image
/// on virtio-blk (MMIO on microvm, PCI on q35) whose serial names the volume for the
/// kernel. QEMU locks the file for the VM's lifetime.
pub fn volume_args(machine: Machine, index: usize, file: &OsStr) -> [OsString; 4] {
    let mut drive = OsString::from(format!("id=vol{index},file="));
    drive.push(option_value(file));
    drive.push(",format=raw,if=none,cache=writeback");
    let device = match machine {
        Machine::Microvm => "virtio-blk-device",
        Machine::Q35 => "virtio-blk-pci",
    };
    let serial = skiff_bootproto::volume_serial(index);
    [
        "-drive".into(),
        drive,
        "-device".into(),
        format!("{device},drive=vol{index},serial={serial}").into(),
    ]
}

/// The kernel command line for `config` (words from [`skiff_bootproto::cmdline`]).
pub fn kernel_cmdline(config: &VmConfig) -> String {
    let mut words = Vec::new();
    if config.verbose {
        words.push(format!("{}=1", cmdline::VERBOSE));
    }
    if config.timing {
        words.push(format!("{}=1", cmdline::TIMING));
    }
    if let Some(secs) = config.mem_report_secs {
        words.push(format!("{}={secs}", cmdline::MEMORY_REPORT));
    }
    words.extend(config.network.cmdline_words());
    words.join(" ")
}

/// QEMU's arguments (without the program name).
///
/// The serial line is QEMU's stdio (which the CLI owns through pipes), there are no
/// default devices, no display and no user config, and `isa-debug-exit` lets the kernel
/// end QEMU with a status. `-no-reboot` turns a guest triple fault into a QEMU exit
/// instead of a silent reboot loop.
pub fn qemu_args(config: &VmConfig) -> Vec<OsString> {
    let machine = match config.machine {
        Machine::Microvm => "microvm,x-option-roms=off,rtc=on,pit=on,pic=off,isa-serial=on",
        Machine::Q35 => "q35",
    };
    let cpu = match config.accel {
        Accel::Tcg => "max",
        Accel::Kvm => "host",
    };
    let debug_exit = format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04");
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |arg: &OsStr| args.push(arg.to_owned());
    for arg in [
        "-M",
        machine,
        "-cpu",
        cpu,
        "-accel",
        config.accel.qemu_name(),
        "-smp",
        "1",
        "-m",
        &format!("{}M", config.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
    ] {
        push(OsStr::new(arg));
    }
    push(OsStr::new("-kernel"));
    push(config.kernel.as_os_str());
    push(OsStr::new("-initrd"));
    push(config.initrd.as_os_str());
    push(OsStr::new("-append"));
    push(OsStr::new(&kernel_cmdline(config)));
    for (index, file) in config.volumes.iter().enumerate() {
        for arg in volume_args(config.machine, index, file.as_os_str()) {
            push(&arg);
        }
    }
    for arg in config.network.qemu_args(config.machine) {
        push(OsStr::new(&arg));
    }
    for arg in ["-device", &debug_exit, "-no-reboot"] {
        push(OsStr::new(arg));
    }
    args
}

/// Render a command for humans (and for pasting into a shell): words that need it are
/// single-quoted.
pub fn shell_words<'a>(words: impl IntoIterator<Item = &'a OsStr>) -> String {
    words
        .into_iter()
        .map(|word| {
            let text = word.to_string_lossy();
            let plain = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
            if plain {
                text.into_owned()
            } else {
                format!("'{}'", text.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{NetMode, NetSettings, Source};

    fn config() -> VmConfig {
        VmConfig {
            machine: Machine::Microvm,
            accel: Accel::Tcg,
            memory_mib: 512,
            kernel: "/k/skiff-kernel".into(),
            initrd: "/tmp/initrd.cpio".into(),
            verbose: false,
            timing: false,
            mem_report_secs: None,
            volumes: Vec::new(),
            network: no_network(),
        }
    }

    fn no_network() -> Network {
        network(NetSettings {
            mode: Some(NetMode::None),
            ..NetSettings::default()
        })
    }

    fn network(settings: NetSettings) -> Network {
        settings.resolve(Source::CommandLine).unwrap()
    }

    fn words(config: &VmConfig) -> Vec<String> {
        qemu_args(config)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn microvm_tcg() {
        let expected = "-M microvm,x-option-roms=off,rtc=on,pit=on,pic=off,isa-serial=on \
            -cpu max -accel tcg -smp 1 -m 512M -nodefaults -no-user-config -display none \
            -serial stdio -kernel /k/skiff-kernel -initrd /tmp/initrd.cpio -append  \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot";
        assert_eq!(words(&config()).join(" "), expected);
    }

    #[test]
    fn q35_kvm_with_flags() {
        let config = VmConfig {
            machine: Machine::Q35,
            accel: Accel::Kvm,
            memory_mib: 1024,
            verbose: true,
            timing: true,
            mem_report_secs: None,
            ..config()
        };
        let w = words(&config);
        let after = |flag: &str| w[w.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(after("-M"), "q35");
        assert_eq!(after("-cpu"), "host");
        assert_eq!(after("-accel"), "kvm");
        assert_eq!(after("-m"), "1024M");
        assert_eq!(after("-serial"), "stdio");
        assert_eq!(after("-append"), "skiff.verbose=1 skiff.timing=1");
        assert_eq!(after("-device"), "isa-debug-exit,iobase=0xf4,iosize=0x04");
        assert!(w.contains(&"-no-reboot".to_string()));
        assert!(!w.iter().any(|x| x.contains("x-option-roms")));
    }

    #[test]
    fn volumes_on_microvm_and_q35() {
        let config = VmConfig {
            volumes: vec!["/v/data.img".into(), "/v/odd,name.img".into()],
            ..config()
        };
        let expected = "-M microvm,x-option-roms=off,rtc=on,pit=on,pic=off,isa-serial=on \
            -cpu max -accel tcg -smp 1 -m 512M -nodefaults -no-user-config -display none \
            -serial stdio -kernel /k/skiff-kernel -initrd /tmp/initrd.cpio -append  \
            -drive id=vol0,file=/v/data.img,format=raw,if=none,cache=writeback \
            -device virtio-blk-device,drive=vol0,serial=skiff-vol0 \
            -drive id=vol1,file=/v/odd,,name.img,format=raw,if=none,cache=writeback \
            -device virtio-blk-device,drive=vol1,serial=skiff-vol1 \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot";
        assert_eq!(words(&config).join(" "), expected);

        let q35 = words(&VmConfig {
            machine: Machine::Q35,
            ..config
        });
        assert!(q35.contains(&"virtio-blk-pci,drive=vol0,serial=skiff-vol0".to_string()));
        assert!(q35.contains(&"virtio-blk-pci,drive=vol1,serial=skiff-vol1".to_string()));
        assert!(!q35.iter().any(|w| w.contains("virtio-blk-device")));
        assert_eq!(skiff_bootproto::volume_serial(1), "skiff-vol1");
    }

    #[test]
    fn published_ports_on_microvm_and_q35() {
        let config = VmConfig {
            network: network(NetSettings {
                ports: vec![
                    "8080:80".parse().unwrap(),
                    "0.0.0.0:5353:53/udp".parse().unwrap(),
                ],
                ..NetSettings::default()
            }),
            volumes: vec!["/v/data.img".into()],
            timing: true,
            mem_report_secs: None,
            ..config()
        };
        let expected = "-M microvm,x-option-roms=off,rtc=on,pit=on,pic=off,isa-serial=on \
            -cpu max -accel tcg -smp 1 -m 512M -nodefaults -no-user-config -display none \
            -serial stdio -kernel /k/skiff-kernel -initrd /tmp/initrd.cpio \
            -append skiff.timing=1 skiff.ip=10.0.2.15/24 skiff.gw=10.0.2.2 \
            -drive id=vol0,file=/v/data.img,format=raw,if=none,cache=writeback \
            -device virtio-blk-device,drive=vol0,serial=skiff-vol0 \
            -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:5353-:53 \
            -device virtio-net-device,netdev=n0 \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot";
        assert_eq!(words(&config).join(" "), expected);

        let q35 = words(&VmConfig {
            machine: Machine::Q35,
            ..config
        });
        let after = |flag: &str| q35[q35.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(
            after("-netdev"),
            "user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:5353-:53"
        );
        assert!(q35.contains(&"virtio-net-pci,netdev=n0,romfile=".to_string()));
        assert!(!q35.iter().any(|w| w.contains("virtio-net-device")));
    }

    #[test]
    fn tap_network_and_its_address() {
        let config = VmConfig {
            network: network(NetSettings {
                mode: Some(NetMode::Tap("tap0".into())),
                ip: Some("192.168.100.2/24".parse().unwrap()),
                gateway: Some("192.168.100.1".parse().unwrap()),
                ..NetSettings::default()
            }),
            machine: Machine::Q35,
            ..config()
        };
        let w = words(&config);
        let after = |flag: &str| w[w.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(
            after("-netdev"),
            "tap,id=n0,ifname=tap0,script=no,downscript=no"
        );
        assert_eq!(
            after("-append"),
            "skiff.ip=192.168.100.2/24 skiff.gw=192.168.100.1"
        );
        assert!(w.contains(&"virtio-net-pci,netdev=n0,romfile=".to_string()));
        // No network: no card, no address (the microvm_tcg test pins the whole line).
        assert!(!words(&self::config()).iter().any(|w| w.contains("net")));
    }

    #[test]
    fn cmdline_words_are_understood_by_the_kernel_side() {
        let line = kernel_cmdline(&VmConfig {
            timing: true,
            mem_report_secs: None,
            ..config()
        });
        assert!(cmdline::flag(&line, cmdline::TIMING));
        assert!(!cmdline::flag(&line, cmdline::VERBOSE));
    }

    #[test]
    fn shell_rendering_quotes_when_needed() {
        let rendered = shell_words(
            ["qemu", "-append", "", "a b", "it's"]
                .iter()
                .map(OsStr::new),
        );
        assert_eq!(rendered, r"qemu -append '' 'a b' 'it'\''s'");
    }
}
