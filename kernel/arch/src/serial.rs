//! The 16550 UART on COM1, the kernel's only console.
//!
//! Output is polled (wait for the transmit FIFO to drain, then write up to 16 bytes);
//! input is interrupt-driven by the kernel, which drains [`Serial::try_read`] from the
//! IRQ 4 handler. The byte format on the line is `skiff_bootproto`'s framing, built by the
//! kernel's console module; this module only moves bytes.

use crate::cpu::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_DATA_READY: u8 = 1;
const LSR_THR_EMPTY: u8 = 1 << 5;
const FIFO_DEPTH: usize = 16;

/// The UART's IRQ line.
pub const IRQ: u8 = 4;

/// Programs COM1: 115200 8N1, FIFOs on, receive interrupt enabled.
pub fn init() {
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, 0x80);
    outb(COM1 + DATA, 1);
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, 0x03);
    outb(COM1 + FCR, 0xC7);
    outb(COM1 + MCR, 0x0B); // DTR, RTS, OUT2 (OUT2 gates the IRQ line)
    outb(COM1 + IER, 0); // the receive interrupt is enabled only while a reader waits
}

/// Turn the data-available interrupt on or off. A reader enables it just before it
/// halts; the interrupt handler disables it, so input nobody is waiting for causes no
/// interrupt storm. Enabling it while data is waiting raises the interrupt at once.
pub fn set_receive_interrupt(on: bool) {
    outb(COM1 + IER, if on { 0x01 } else { 0 });
}

/// Write bytes, waiting for room in the transmit FIFO.
pub fn write(bytes: &[u8]) {
    for chunk in bytes.chunks(FIFO_DEPTH) {
        while inb(COM1 + LSR) & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        for &b in chunk {
            outb(COM1 + DATA, b);
        }
    }
}

/// One received byte, if any is waiting.
pub fn try_read() -> Option<u8> {
    if inb(COM1 + LSR) & LSR_DATA_READY != 0 {
        Some(inb(COM1 + DATA))
    } else {
        None
    }
}

/// Last-resort report for a trap that arrives before the kernel installed its handlers:
/// a raw log frame, then an orderly QEMU exit with the kernel-failure report.
pub fn early_panic_trap(frame: &crate::entry::TrapFrame) -> ! {
    let mut buf = [0u8; 160];
    let mut w = FixedWriter {
        buf: &mut buf,
        len: 0,
    };
    let _ = core::fmt::write(
        &mut w,
        format_args!(
            "early trap: vector {} ({}) at rip {:#x}, error {:#x}, cr2 {:#x}",
            frame.vector,
            crate::idt::exception_name(frame.vector),
            frame.rip,
            frame.error_code,
            crate::cpu::read_cr2()
        ),
    );
    let len = w.len;
    write(b"\xffSKIFF\x01\n");
    write(&[3, (len + 1) as u8, 0, 3]);
    write(&buf[..len]);
    write(&[4, 2, 0, 4, 0]);
    crate::cpu::outb(0xf4, 0x10);
    crate::cpu::halt_forever()
}

/// A `fmt::Write` into a fixed buffer that truncates silently (for reports that must
/// not allocate).
pub struct FixedWriter<'a> {
    pub buf: &'a mut [u8],
    pub len: usize,
}

impl core::fmt::Write for FixedWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Whether a received byte is waiting in the UART.
pub fn has_input() -> bool {
    inb(COM1 + LSR) & LSR_DATA_READY != 0
}
