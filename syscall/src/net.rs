//! The guest's TCP/IP stack as the system calls see it: installed once at boot by the
//! kernel (which owns the network thread that polls it), used by `socket(2)` for the
//! AF_INET family, and the messages that tell the host a port is being listened on.

use alloc::sync::Arc;
use skiff_bootproto::GuestTag;
use skiff_errno::{Errno, KResult};
use skiff_net::Stack;
use spin::Once;

static STACK: Once<Arc<Stack>> = Once::new();

/// Make `stack` the one the socket calls use. Once, at boot.
pub fn install(stack: Arc<Stack>) {
    STACK.call_once(|| stack);
}

/// The stack, or `EAFNOSUPPORT` when the kernel runs without one (no network support
/// was set up, which only happens if boot could not create it).
pub fn stack() -> KResult<&'static Arc<Stack>> {
    STACK.get().ok_or(Errno::EAFNOSUPPORT)
}

/// How long the exit path waits for network output to reach the host.
const EXIT_DRAIN_NS: u64 = 2_000_000_000;
/// How often it looks again meanwhile.
const EXIT_DRAIN_STEP_NS: u64 = 1_000_000;

/// On Linux a process's exit leaves its sockets' queued bytes, FINs and datagrams to
/// the kernel, which delivers them afterwards; here the machine powers off at exit, so
/// a response written just before exit (an HTTP server's last one, a UDP server's
/// goodbye) would be lost. Wait, for at most [`EXIT_DRAIN_NS`], until nothing for the
/// card is left on its way. The network thread keeps running while this thread sleeps.
pub fn drain_before_exit() {
    let Some(stack) = STACK.get() else {
        return;
    };
    let deadline = skiff_arch::time::monotonic_ns() + EXIT_DRAIN_NS;
    while stack.card_output_pending() {
        let now = skiff_arch::time::monotonic_ns();
        if now >= deadline {
            skiff_console::warn!(
                "exit: network output still undelivered after {} s; it is lost",
                EXIT_DRAIN_NS / 1_000_000_000
            );
            return;
        }
        skiff_sched::sleep_until((now + EXIT_DRAIN_STEP_NS).min(deadline), false);
    }
}

/// Tell the host about ports that are now being listened on (the CLI reports a
/// published port as ready only then).
pub fn announce_listening() {
    if let Some(stack) = STACK.get() {
        for port in stack.take_listening() {
            skiff_console::send(GuestTag::Listening, &port.encode());
        }
    }
}
