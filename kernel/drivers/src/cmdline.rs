//! `virtio_mmio.device=<size>@<base>:<irq>[:<id>]` entries on the kernel command line,
//! Linux's way for a VMM without ACPI tables (Firecracker, QEMU microvm with `acpi=off`)
//! to announce virtio-mmio transports. Numbers follow Linux's `memparse`: decimal,
//! `0x` hex or leading-`0` octal, with an optional `K`, `M` or `G` suffix on size and
//! base; the IRQ is decimal.

/// One announced transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioEntry {
    /// Physical address of the register window.
    pub base: u64,
    /// Size of the register window in bytes.
    pub size: u64,
    /// The GSI the transport interrupts on.
    pub irq: u32,
}

const KEY: &str = "virtio_mmio.device=";

/// Every well-formed entry of `cmdline`, in order; malformed ones are returned as
/// `Err(text)` so the caller can say which it ignored.
pub fn mmio_entries(cmdline: &str) -> impl Iterator<Item = Result<MmioEntry, &str>> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(KEY))
        .map(|v| parse_entry(v).ok_or(v))
}

/// Parse `<size>@<base>:<irq>[:<id>]`.
pub fn parse_entry(v: &str) -> Option<MmioEntry> {
    let (size, rest) = v.split_once('@')?;
    let (base, rest) = rest.split_once(':')?;
    let irq = rest.split(':').next()?;
    let size = memparse(size)?;
    let base = memparse(base)?;
    let irq: u32 = irq.parse().ok()?;
    (size > 0 && base.checked_add(size).is_some()).then_some(MmioEntry { base, size, irq })
}

/// Linux's `memparse`: a C integer literal with an optional binary-unit suffix.
fn memparse(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_microvm_acpi_off() {
        let cmd = "skiff.verbose=1 virtio_mmio.device=512@0xfeb00e00:12 \
                   virtio_mmio.device=512@0xfeb00c00:11 console=ttyS0";
        let got: Vec<_> = mmio_entries(cmd).collect();
        assert_eq!(
            got,
            vec![
                Ok(MmioEntry {
                    base: 0xfeb0_0e00,
                    size: 512,
                    irq: 12
                }),
                Ok(MmioEntry {
                    base: 0xfeb0_0c00,
                    size: 512,
                    irq: 11
                }),
            ]
        );
    }

    #[test]
    fn firecracker_with_suffix_and_id() {
        assert_eq!(
            parse_entry("4K@0xd0000000:5"),
            Some(MmioEntry {
                base: 0xd000_0000,
                size: 4096,
                irq: 5
            })
        );
        assert_eq!(
            parse_entry("0x1000@3G:7:2"),
            Some(MmioEntry {
                base: 3 << 30,
                size: 4096,
                irq: 7
            })
        );
        assert_eq!(parse_entry("010@8:1").map(|e| e.size), Some(8));
    }

    #[test]
    fn malformed_entries_are_reported() {
        for bad in [
            "",
            "512",
            "512@",
            "512@0xfeb00000",
            "512@0xfeb00000:",
            "512@0xzz:5",
            "x@0x1000:5",
            "0@0x1000:5",
            "512@0x1000:-1",
            "16G@0xffffffffffffffff:5",
        ] {
            assert_eq!(parse_entry(bad), None, "{bad:?}");
        }
        let got: Vec<_> = mmio_entries("virtio_mmio.device=oops virtio_mmio.devicex=1").collect();
        assert_eq!(got, vec![Err("oops")]);
    }

    #[test]
    fn no_entries() {
        assert_eq!(mmio_entries("skiff.verbose=1 acpi=off").count(), 0);
    }
}
