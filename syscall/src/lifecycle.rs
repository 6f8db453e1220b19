//! How the one process ends: whatever the reason (the last thread's `exit`,
//! `exit_group`, a fatal signal), modified shared mappings are written back, every
//! volume is synced and left clean on its disk, and TCP output still on its way to
//! the host is given a moment to arrive, before the exit report powers the machine
//! off. A kernel bug skips this (its state cannot be trusted) and stops at once.

use crate::process;
use skiff_bootproto::ExitReport;
use skiff_console as console;
use skiff_mm::paging::UserPageTable;

/// Ends the application with `report` after making its files durable.
pub fn shutdown(report: ExitReport) -> ! {
    if let Some(p) = process::try_current() {
        // A thread that faulted while holding the address space (a kernel bug path
        // would not come here) cannot be waited for: skip its mappings rather than hang.
        if let Some(mut aspace) = p.aspace.try_lock() {
            if let Err(e) = aspace.sync_all(&mut UserPageTable::current()) {
                console::warn!("exit: writing back shared file mappings failed: {}", e);
            }
        }
        if let Err(e) = p.fs.vfs().unmount_all() {
            console::error!(
                "exit: a volume could not be flushed ({}); data written since the last fsync may be lost",
                e
            );
        }
    }
    crate::net::drain_before_exit();
    console::exit(report)
}
