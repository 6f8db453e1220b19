//! The network thread: the one place the TCP/IP stack is polled outside system calls.
//!
//! It sleeps until the network card interrupts, the stack asks to be polled (a socket
//! call armed an earlier timer: the stack's `kick`), or the stack's next timer is due
//! (retransmissions, delayed acknowledgements, keep-alives, TIME_WAIT); then it polls
//! the stack, which moves frames between the card, the loopback interface and the
//! sockets, and wakes the threads waiting for I/O. Socket calls flush what they queue
//! themselves, so request latency does not depend on this thread being scheduled.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use skiff_arch::time;
use skiff_console as console;
use skiff_drivers::net::NET_EVENTS;
use skiff_net::{NetConfig, Stack};
use spin::Once;

static STACK: Once<Arc<Stack>> = Once::new();
/// The stack asked for a poll sooner than the deadline the thread sleeps towards.
static KICKED: AtomicBool = AtomicBool::new(false);

/// Create the stack over the first network card (if any) with the configuration on the
/// kernel command line, hand it to the socket calls, and start the network thread.
pub fn start(cmdline: &str) {
    let cards = skiff_drivers::net_devices();
    if cards.len() > 1 {
        console::warn!(
            "network: {} cards found; only the first is used",
            cards.len()
        );
    }
    let config = NetConfig::from_cmdline(cmdline).unwrap_or_else(|e| {
        console::warn!("network: {e}; using the defaults");
        NetConfig::default()
    });
    let stack = Stack::new(
        cards.first().cloned(),
        config,
        time::monotonic_ns,
        skiff_syscall::env::entropy().next(),
        kick,
    );
    stack.set_logger(|line| console::info!("{line}"));
    skiff_syscall::net::install(stack.clone());
    STACK.call_once(|| stack);
    if skiff_sched::spawn_kernel(network_thread, 0).is_err() {
        console::error!("network: no memory for the network thread; networking is down");
    }
}

/// Called by the stack, from thread context, when it wants a poll before the deadline
/// it last returned.
fn kick() {
    KICKED.store(true, Ordering::Release);
    NET_EVENTS.wake_all();
}

/// How many interrupts the cards have taken: a change means frames arrived or
/// transmit slots came free.
fn card_interrupts() -> u64 {
    skiff_drivers::virtio_nics()
        .iter()
        .map(|c| c.counters().0)
        .sum()
}

fn network_thread(_: u64) -> ! {
    let stack = STACK.get().expect("the stack exists before its thread");
    loop {
        KICKED.store(false, Ordering::Release);
        let seen = card_interrupts();
        let deadline = stack.poll();
        skiff_syscall::wait::io_event();
        // Woken early by a card interrupt or a kick; otherwise at the deadline.
        let _ = NET_EVENTS.wait_until(deadline, false, || {
            KICKED.load(Ordering::Acquire) || card_interrupts() != seen
        });
    }
}
