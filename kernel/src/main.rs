//! The bootable Skiff image: brings the machine up in order and hands the application
//! to the syscall layer. Everything here is sequencing; the work lives in the crates.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod memreport;
mod net;
mod trap;

use skiff_arch::boot::BootHandoff;
use skiff_arch::layout::{virt_to_phys, PAGE_SIZE};
use skiff_arch::{cpu, gdt, idt, ioapic, lapic, percpu, pvh, rtc, time};
use skiff_bootproto::{cmdline, ExitReport};
use skiff_console as console;
use skiff_mm::frames::{self, Range};

skiff_arch::pvh_entry!();
skiff_arch::kernel_main!(kmain);
skiff_arch::freestanding_runtime!();

#[global_allocator]
static HEAP: skiff_mm::heap::KernelHeap = skiff_mm::heap::new_heap();

extern "C" {
    static __kernel_end: u8;
}

fn kmain(h: BootHandoff) -> ! {
    let (stack_lo, stack_top) = skiff_arch::boot::boot_stack_bounds();
    percpu::init_bsp(stack_lo, stack_top);
    gdt::init();
    idt::init();
    skiff_arch::entry::set_handlers(skiff_arch::entry::Handlers {
        syscall: skiff_syscall::dispatch,
        trap: trap::handle,
        thread_start: skiff_sched::finish_switch,
    });
    skiff_arch::entry::init_syscall();
    skiff_arch::fpu::init();

    let info = match pvh::StartInfo::parse(h.start_info_phys) {
        Ok(i) => i,
        Err(e) => {
            console::init(false);
            console::error!("boot: unusable PVH start info: {:?}", e);
            console::exit(ExitReport::KernelFailure);
        }
    };
    let cmd = info.cmdline();
    console::init(cmdline::flag(cmd, cmdline::VERBOSE));
    console::debug!("boot: command line {:?}", cmd);

    // Physical memory: everything the VMM calls RAM, less low memory, the kernel image
    // and the initrd.
    let mut ram = [Range { start: 0, end: 0 }; 64];
    let mut n = 0;
    let mut top = 0;
    for r in info.memory_map().iter().filter(|r| r.kind == pvh::E820_RAM) {
        if n < ram.len() {
            ram[n] = Range {
                start: r.addr,
                end: r.addr + r.size,
            };
            n += 1;
            top = top.max(r.addr + r.size);
        }
    }
    let kernel_end = virt_to_phys(&raw const __kernel_end as u64).next_multiple_of(PAGE_SIZE);
    let mut reserved = [
        Range {
            start: 0,
            end: 0x10_0000,
        },
        Range {
            start: 0x20_0000,
            end: kernel_end,
        },
        Range { start: 0, end: 0 },
    ];
    if let Some(m) = info.initrd {
        reserved[2] = Range {
            start: m.paddr & !(PAGE_SIZE - 1),
            end: (m.paddr + m.size).next_multiple_of(PAGE_SIZE),
        };
    }
    if !frames::init(&ram[..n], &reserved) {
        console::error!("boot: no usable memory in the VMM's memory map");
        console::exit(ExitReport::KernelFailure);
    }
    if top > skiff_arch::layout::BOOT_DIRECT_MAP {
        if let Err(e) = skiff_mm::paging::extend_direct_map(top) {
            console::error!("boot: cannot map memory above 4 GiB: {}", e);
            console::exit(ExitReport::KernelFailure);
        }
    }

    // The lower half is the application's from here on.
    skiff_mm::paging::drop_identity_map();

    // Clocks and interrupts.
    lapic::init();
    ioapic::mask_legacy_pic();
    ioapic::route(
        skiff_arch::serial::IRQ,
        (idt::vectors::IRQ_BASE + skiff_arch::serial::IRQ as u64) as u8,
        lapic::id(),
    );
    // 2 ms of PIT time measure both the TSC and the APIC timer (the PIT ticks every
    // 838 ns, so the quantization error stays under 0.05%).
    let tsc_hz = match skiff_arch::pit::measure_tsc_hz(2) {
        Some(hz) => hz,
        None => {
            console::warn!("boot: no PIT to calibrate the TSC against; assuming 2 GHz");
            lapic::calibrate(2_000_000_000);
            2_000_000_000
        }
    };
    time::init(h.tsc_at_entry, tsc_hz);
    match rtc::read_unix_time() {
        Some(secs) => {
            time::set_realtime_now(secs * 1_000_000_000, false);
            // Its updates put the wall clock on the second's edge and refine the TSC's
            // rate; the interrupt handler feeds them to `time`.
            ioapic::route(
                rtc::IRQ,
                (idt::vectors::IRQ_BASE + rtc::IRQ as u64) as u8,
                lapic::id(),
            );
            rtc::enable_update_interrupt();
        }
        None => console::warn!("boot: no RTC; the wall clock starts at 1970"),
    }
    console::debug!("boot: clocks ready at {} us", time::monotonic_ns() / 1000);
    console::debug!(
        "boot: TSC {} MHz, APIC timer {} MHz, {} MiB usable",
        tsc_hz / 1_000_000,
        lapic::timer_hz() / 1_000_000,
        (frames::stats().total_frames * PAGE_SIZE) >> 20
    );
    // The boot code becomes the idle thread once the application's threads exist.
    skiff_sched::init(stack_lo, stack_top, skiff_syscall::interrupt_pending);
    skiff_sched::set_root_switch(skiff_mm::paging::activate);
    // Disks: found and initialised by polling, their interrupts routed once they are
    // registered, so the first interrupt finds its driver.
    skiff_drivers::probe(cmd);
    cpu::enable_interrupts();
    net::start(cmd);
    memreport::start(cmd);

    // The root filesystem and the application.
    let initrd: &[u8] = match info.initrd {
        Some(m) => skiff_mm::paging::physical_slice(m.paddr, m.size),
        None => &[],
    };
    let boot = skiff_syscall::BootParams {
        initrd,
        cmdline: cmd,
        timing: cmdline::flag(cmd, cmdline::TIMING),
        disks: skiff_drivers::block_devices(),
    };
    skiff_syscall::start(boot)
}

/// The kernel heap's (size, allocated bytes).
fn heap_usage() -> (u64, u64) {
    let heap = HEAP.lock();
    (
        heap.stats_total_bytes() as u64,
        heap.stats_alloc_actual() as u64,
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    cpu::disable_interrupts();
    console::error!("kernel panic: {}", info);
    console::exit(ExitReport::KernelFailure)
}
