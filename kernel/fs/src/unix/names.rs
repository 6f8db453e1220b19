//! The AF_UNIX namespaces: which socket a name reaches.
//!
//! A socket bound to a path is found through the socket inode `bind` created, as
//! Linux's `unix_find_socket_byinode` does: the table is keyed by the inode object
//! itself (its address, which stays unique because the bound socket holds the inode
//! until it closes). Unlinking the path therefore leaves existing connections alone, a
//! new socket bound to a new node at the same path is a different entry, and a hard
//! link to the node reaches the same socket. Abstract names (a leading NUL) live in
//! their own table; autobind picks a free five-hex-digit abstract name.
//!
//! Entries hold their sockets weakly and are removed when the socket closes. Lookups
//! copy the weak reference out and upgrade it after the table lock is released, so a
//! socket is never dropped under a table lock.

use super::Endpoint;
use crate::inode::Inode;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use skiff_errno::{Errno, KResult};
use spin::Mutex;

static ABSTRACT: Mutex<BTreeMap<Vec<u8>, Weak<Endpoint>>> = Mutex::new(BTreeMap::new());
static BY_NODE: Mutex<BTreeMap<usize, Weak<Endpoint>>> = Mutex::new(BTreeMap::new());

/// Autobind names are `%05x` of a counter, as Linux's, so 2^20 of them exist.
const AUTOBIND_NAMES: u32 = 1 << 20;
static NEXT_AUTOBIND: AtomicU32 = AtomicU32::new(0);

fn node_key(inode: &Arc<dyn Inode>) -> usize {
    Arc::as_ptr(inode) as *const () as usize
}

/// Whether `entry` still names a socket that is open.
fn live(entry: Option<&Weak<Endpoint>>) -> bool {
    entry.is_some_and(|w| w.strong_count() > 0)
}

/// Claims the abstract `name` for `socket`: `EADDRINUSE` if an open socket has it.
pub fn claim_abstract(name: &[u8], socket: &Arc<Endpoint>) -> KResult<()> {
    let mut table = ABSTRACT.lock();
    if live(table.get(name)) {
        return Err(Errno::EADDRINUSE);
    }
    table.insert(name.to_vec(), Arc::downgrade(socket));
    Ok(())
}

/// Claims a free autobind name for `socket` and returns it (`ENOSPC` when all 2^20
/// are taken, as Linux).
pub fn claim_autobind(socket: &Arc<Endpoint>) -> KResult<Vec<u8>> {
    for _ in 0..AUTOBIND_NAMES {
        let n = NEXT_AUTOBIND.fetch_add(1, Ordering::Relaxed) % AUTOBIND_NAMES;
        let name = format!("{n:05x}").into_bytes();
        if claim_abstract(&name, socket).is_ok() {
            return Ok(name);
        }
    }
    Err(Errno::ENOSPC)
}

/// Records that `socket` is bound to the socket inode `node`.
pub fn claim_node(node: &Arc<dyn Inode>, socket: &Arc<Endpoint>) {
    BY_NODE
        .lock()
        .insert(node_key(node), Arc::downgrade(socket));
}

/// Forgets the abstract `name` if it still belongs to `socket`.
pub fn release_abstract(name: &[u8], socket: &Endpoint) {
    let stale = {
        let mut table = ABSTRACT.lock();
        match table.get(name) {
            Some(w) if core::ptr::eq(w.as_ptr(), socket) => table.remove(name),
            _ => None,
        }
    };
    drop(stale);
}

/// Forgets the binding of `node` if it still belongs to `socket`.
pub fn release_node(node: &Arc<dyn Inode>, socket: &Endpoint) {
    let key = node_key(node);
    let stale = {
        let mut table = BY_NODE.lock();
        match table.get(&key) {
            Some(w) if core::ptr::eq(w.as_ptr(), socket) => table.remove(&key),
            _ => None,
        }
    };
    drop(stale);
}

/// The open socket bound to the abstract `name`.
pub fn find_abstract(name: &[u8]) -> Option<Arc<Endpoint>> {
    let weak = ABSTRACT.lock().get(name).cloned();
    weak?.upgrade()
}

/// The open socket bound to the socket inode `node`.
pub fn find_node(node: &Arc<dyn Inode>) -> Option<Arc<Endpoint>> {
    let weak = BY_NODE.lock().get(&node_key(node)).cloned();
    weak?.upgrade()
}
