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

/// Tell the host about ports that are now being listened on (the CLI reports a
/// published port as ready only then).
pub fn announce_listening() {
    if let Some(stack) = STACK.get() {
        for port in stack.take_listening() {
            skiff_console::send(GuestTag::Listening, &port.encode());
        }
    }
}
