//! The console: the one serial line between the guest and the `skiff` CLI.
//!
//! Everything the guest says to the host goes through here as `skiff_bootproto` frames:
//! application stdout/stderr, kernel log lines, the boot timing report, and finally the
//! exit report followed by an orderly power-off. Host stdin arrives the other way as
//! frames, is decoded by `feed_input` (called by readers with interrupts masked; the
//! serial interrupt only wakes them), and is buffered for [`read_stdin`].
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use skiff_arch::serial;
use skiff_bootproto::{frame_header, ExitReport, FrameDecoder, GuestTag, HostTag, LogLevel, MAGIC};
use spin::Mutex;

/// Serializes whole frames on the line.
static LINE: Mutex<()> = Mutex::new(());
static VERBOSE: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);
/// Lowest level sent to the host.
static THRESHOLD: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);

struct Input {
    decoder: Option<FrameDecoder>,
    data: VecDeque<u8>,
    eof: bool,
}

static INPUT: Mutex<Input> = Mutex::new(Input {
    decoder: None,
    data: VecDeque::new(),
    eof: false,
});

/// Start the console: program the UART and send the preamble the host syncs on.
pub fn init(verbose: bool) {
    serial::init();
    set_verbose(verbose);
    let _g = LINE.lock();
    serial::write(MAGIC);
    STARTED.store(true, Ordering::Release);
}

/// Turn Debug/Info log lines on or off.
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    THRESHOLD.store(
        if verbose {
            LogLevel::Debug as u8
        } else {
            LogLevel::Warn as u8
        },
        Ordering::Relaxed,
    );
}

/// Send one frame (split if longer than a frame may be).
pub fn send(tag: GuestTag, payload: &[u8]) {
    skiff_arch::cpu::without_interrupts(|| {
        let _g = LINE.lock();
        if payload.is_empty() {
            serial::write(&frame_header(tag as u8, 0));
        }
        for chunk in payload.chunks(skiff_bootproto::MAX_PAYLOAD) {
            serial::write(&frame_header(tag as u8, chunk.len() as u16));
            serial::write(chunk);
        }
    });
}

/// Application output on stdout.
pub fn write_stdout(data: &[u8]) {
    send(GuestTag::Stdout, data);
}

/// Application output on stderr.
pub fn write_stderr(data: &[u8]) {
    send(GuestTag::Stderr, data);
}

/// Send a log line at `level` (formatted without allocating, truncated at 1 KiB).
pub fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    if (level as u8) < THRESHOLD.load(Ordering::Relaxed) || !STARTED.load(Ordering::Acquire) {
        return;
    }
    let mut buf = [0u8; 1024];
    buf[0] = level as u8;
    let mut w = skiff_arch::serial::FixedWriter {
        buf: &mut buf,
        len: 1,
    };
    let _ = w.write_fmt(args);
    let len = w.len;
    send(GuestTag::Log, &buf[..len]);
}

#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log(skiff_bootproto::LogLevel::Debug, format_args!($($t)*)) } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log(skiff_bootproto::LogLevel::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log(skiff_bootproto::LogLevel::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log(skiff_bootproto::LogLevel::Error, format_args!($($t)*)) } }

/// Report how the application ended and power off. Never returns.
pub fn exit(report: ExitReport) -> ! {
    send(GuestTag::Exit, &report.encode());
    skiff_arch::cpu::outb(
        skiff_bootproto::DEBUG_EXIT_PORT,
        skiff_bootproto::DEBUG_EXIT_ORDERLY,
    );
    skiff_arch::cpu::halt_forever()
}

/// The serial interrupt: it only masks itself; the caller wakes waiting readers. Decoding happens in the
/// reader's context, because interrupt handlers must not allocate (the interrupted
/// code may hold the heap lock).
pub fn on_receive_interrupt() {
    serial::set_receive_interrupt(false);
}

/// Drain the UART into the input buffer. Call with interrupts masked.
fn feed_input() {
    let mut input = INPUT.lock();
    let input = &mut *input;
    let decoder = input.decoder.get_or_insert_with(FrameDecoder::new);
    let mut got = false;
    while let Some(b) = serial::try_read() {
        decoder.push(&[b]);
        got = true;
    }
    if !got {
        return;
    }

    while let Some(frame) = decoder.next_frame() {
        match HostTag::from_u8(frame.tag) {
            Some(HostTag::Stdin) => input.data.extend(frame.payload.iter().copied()),
            Some(HostTag::StdinEof) => input.eof = true,
            None => {}
        }
    }
}

/// Outcome of a non-blocking stdin read.
pub enum StdinRead {
    /// This many bytes were copied.
    Data(usize),
    /// The host's stdin is at end of file.
    Eof,
    /// Nothing buffered yet.
    Empty,
}

/// Take buffered stdin bytes without blocking.
pub fn try_read_stdin(buf: &mut [u8]) -> StdinRead {
    // The serial interrupt takes INPUT too: hold it only with interrupts masked.
    skiff_arch::cpu::without_interrupts(|| try_read_stdin_locked(buf))
}

fn try_read_stdin_locked(buf: &mut [u8]) -> StdinRead {
    feed_input();
    let mut input = INPUT.lock();
    if input.data.is_empty() {
        return if input.eof {
            StdinRead::Eof
        } else {
            StdinRead::Empty
        };
    }
    let n = buf.len().min(input.data.len());
    for (dst, src) in buf.iter_mut().zip(input.data.drain(..n)) {
        *dst = src;
    }
    StdinRead::Data(n)
}

/// Bytes of stdin buffered now (FIONREAD).
pub fn stdin_buffered() -> usize {
    skiff_arch::cpu::without_interrupts(|| {
        feed_input();
        INPUT.lock().data.len()
    })
}

/// Whether a stdin read would return at once (data buffered or end of file).
pub fn stdin_ready() -> bool {
    skiff_arch::cpu::without_interrupts(|| {
        feed_input();
        let input = INPUT.lock();
        !input.data.is_empty() || input.eof
    })
}

/// Ask for the serial receive interrupt, so that a waiter for input is woken when it
/// arrives (the interrupt handler masks it again; see [`on_receive_interrupt`]).
pub fn arm_input_interrupt() {
    skiff_arch::cpu::without_interrupts(|| {
        if !input_waiting() {
            serial::set_receive_interrupt(true);
        }
    })
}

/// Whether input is buffered, at end of file, or waiting in the UART.
fn input_waiting() -> bool {
    let input = INPUT.lock();
    !input.data.is_empty() || input.eof || skiff_arch::serial::has_input()
}
