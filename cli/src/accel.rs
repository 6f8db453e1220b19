//! Choosing QEMU's accelerator.
//!
//! `/dev/kvm` existing is not enough: some hosts (this project's build machines among
//! them) expose `kvm_pvm`, a nested "pagetable-based" KVM that emulates unmodified guests
//! instruction by instruction and fails at the first SSE instruction. So `auto` picks KVM
//! only when `/dev/kvm` opens read-write AND a hardware-backed KVM module (`kvm_intel` or
//! `kvm_amd`) is loaded AND `kvm_pvm` is not. The probing ([`probe_host`]) is separate from
//! the decision ([`decide`]) so the decision can be tested with any set of facts.

use std::fs::OpenOptions;
use std::path::Path;

/// What the user asked for with `--accel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM where it really runs guests, TCG otherwise.
    Auto,
    /// QEMU's software emulator: slower, works everywhere.
    Tcg,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
}

/// The accelerator QEMU will use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    /// The value for QEMU's `-accel`.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Facts about the host's KVM, as probed from `/dev` and `/sys/module`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmFacts {
    /// `/dev/kvm` can be opened for reading and writing by this user.
    pub dev_kvm_usable: bool,
    /// `/sys/module/kvm_intel` exists.
    pub kvm_intel_loaded: bool,
    /// `/sys/module/kvm_amd` exists.
    pub kvm_amd_loaded: bool,
    /// `/sys/module/kvm_pvm` exists (software KVM that cannot run Skiff).
    pub kvm_pvm_loaded: bool,
}

impl KvmFacts {
    /// Whether KVM would really run a guest, and if not, why not (for `--verbose`).
    fn hardware_kvm(&self) -> Result<&'static str, &'static str> {
        if !self.dev_kvm_usable {
            Err("/dev/kvm is missing or cannot be opened read-write")
        } else if self.kvm_pvm_loaded {
            Err("the host's KVM is kvm_pvm (software, cannot run the guest's SSE code)")
        } else if self.kvm_intel_loaded {
            Ok("/dev/kvm is usable and backed by kvm_intel")
        } else if self.kvm_amd_loaded {
            Ok("/dev/kvm is usable and backed by kvm_amd")
        } else {
            Err("/dev/kvm is not backed by hardware virtualization (no kvm_intel or kvm_amd)")
        }
    }
}

/// Probe the real host.
pub fn probe_host() -> KvmFacts {
    let module = |name: &str| Path::new("/sys/module").join(name).exists();
    KvmFacts {
        dev_kvm_usable: OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok(),
        kvm_intel_loaded: module("kvm_intel"),
        kvm_amd_loaded: module("kvm_amd"),
        kvm_pvm_loaded: module("kvm_pvm"),
    }
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelDecision {
    pub accel: Accel,
    /// Why, in a few words (shown with `--verbose`).
    pub reason: String,
    /// Shown even without `--verbose`: the user forced KVM where it looks unusable.
    pub warning: Option<String>,
}

/// Pick the accelerator for `choice` on a host with `facts`.
pub fn decide(choice: AccelChoice, facts: &KvmFacts) -> AccelDecision {
    match (choice, facts.hardware_kvm()) {
        (AccelChoice::Tcg, _) => AccelDecision {
            accel: Accel::Tcg,
            reason: "--accel tcg was given".into(),
            warning: None,
        },
        (AccelChoice::Kvm, Ok(why)) => AccelDecision {
            accel: Accel::Kvm,
            reason: format!("--accel kvm was given; {why}"),
            warning: None,
        },
        (AccelChoice::Kvm, Err(why)) => AccelDecision {
            accel: Accel::Kvm,
            reason: "--accel kvm was given".into(),
            warning: Some(format!("KVM may not work here: {why}; trying anyway")),
        },
        (AccelChoice::Auto, Ok(why)) => AccelDecision {
            accel: Accel::Kvm,
            reason: why.into(),
            warning: None,
        },
        (AccelChoice::Auto, Err(why)) => AccelDecision {
            accel: Accel::Tcg,
            reason: format!("{why}; using TCG (software emulation)"),
            warning: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARDWARE_INTEL: KvmFacts = KvmFacts {
        dev_kvm_usable: true,
        kvm_intel_loaded: true,
        kvm_amd_loaded: false,
        kvm_pvm_loaded: false,
    };

    #[test]
    fn auto_uses_hardware_kvm() {
        assert_eq!(decide(AccelChoice::Auto, &HARDWARE_INTEL).accel, Accel::Kvm);
        let amd = KvmFacts {
            kvm_intel_loaded: false,
            kvm_amd_loaded: true,
            ..HARDWARE_INTEL
        };
        let decision = decide(AccelChoice::Auto, &amd);
        assert_eq!(decision.accel, Accel::Kvm);
        assert!(decision.reason.contains("kvm_amd"));
        assert_eq!(decision.warning, None);
    }

    #[test]
    fn auto_falls_back_to_tcg() {
        // This project's machines: /dev/kvm opens, but it is kvm_pvm.
        let pvm = KvmFacts {
            kvm_pvm_loaded: true,
            ..HARDWARE_INTEL
        };
        let decision = decide(AccelChoice::Auto, &pvm);
        assert_eq!(decision.accel, Accel::Tcg);
        assert!(decision.reason.contains("kvm_pvm"), "{}", decision.reason);

        let no_dev = KvmFacts {
            dev_kvm_usable: false,
            ..HARDWARE_INTEL
        };
        assert_eq!(decide(AccelChoice::Auto, &no_dev).accel, Accel::Tcg);

        let no_module = KvmFacts {
            kvm_intel_loaded: false,
            ..HARDWARE_INTEL
        };
        assert_eq!(decide(AccelChoice::Auto, &no_module).accel, Accel::Tcg);

        assert_eq!(
            decide(AccelChoice::Auto, &KvmFacts::default()).accel,
            Accel::Tcg
        );
    }

    #[test]
    fn forced_choices() {
        assert_eq!(decide(AccelChoice::Tcg, &HARDWARE_INTEL).accel, Accel::Tcg);
        let ok = decide(AccelChoice::Kvm, &HARDWARE_INTEL);
        assert_eq!((ok.accel, ok.warning), (Accel::Kvm, None));
        let forced = decide(AccelChoice::Kvm, &KvmFacts::default());
        assert_eq!(forced.accel, Accel::Kvm);
        assert!(forced.warning.unwrap().contains("trying anyway"));
    }
}
