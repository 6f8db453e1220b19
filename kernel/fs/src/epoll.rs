//! epoll instances: the interest list of an epoll descriptor and the scan that turns
//! the readiness of the files on it into `epoll_wait` events, level- or
//! edge-triggered.
//!
//! An [`Epoll`] is a [`CharDevice`] so that it sits in the descriptor table like any
//! file (reads and writes are `EINVAL`, as on Linux) and can itself be polled or
//! watched by another epoll. Each registration is keyed, as on Linux, by the pair
//! (descriptor number, open file) and holds the file weakly: once the file is closed
//! everywhere the registration is gone.
//!
//! Linux keeps a ready list: a file's wakeup appends the registrations that listen
//! for it, and `epoll_wait` reports from the head. Skiff's devices do not call back,
//! so a scan asks each file for its readiness ([`OpenFile::poll_mask`]) and for when
//! it last had each kind of event ([`OpenFile::generation`], stamps from one clock),
//! and queues a registration when it finds a wakeup Linux would have delivered to it:
//! a stamp it listens to moved, or a readiness bit appeared that the previous scan did
//! not see (for devices that keep no stamps, like the console). The queue is ordered
//! by those stamps, so events come out in the order the files became ready, as on
//! Linux. A registration is also queued when it is added or modified while its file is
//! ready.
//!
//! A queued registration whose file is not ready when its turn comes is dropped from
//! the queue. A level-triggered one that is reported goes back to the tail (so a
//! small `maxevents` reaches every ready file in turn); an edge-triggered one leaves
//! the queue until its next wakeup. With `EPOLLONESHOT` a report disarms the
//! registration, which then ignores wakeups until `EPOLL_CTL_MOD`.
//!
//! Waiting belongs to the syscall layer, which repeats [`Epoll::collect`] on each I/O
//! event until something is reported, the timeout passes or a signal arrives.

use crate::device::{event_stamp, CharDevice, Generation};
use crate::eventfd::anon_inode_stat;
use crate::file::OpenFile;
use crate::types::OpenFlags;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use skiff_errno::{Errno, KResult};
use spin::Mutex;

pub const EPOLLIN: u32 = 0x001;
pub const EPOLLPRI: u32 = 0x002;
pub const EPOLLOUT: u32 = 0x004;
pub const EPOLLERR: u32 = 0x008;
pub const EPOLLHUP: u32 = 0x010;
pub const EPOLLNVAL: u32 = 0x020;
pub const EPOLLRDNORM: u32 = 0x040;
pub const EPOLLRDBAND: u32 = 0x080;
pub const EPOLLWRNORM: u32 = 0x100;
pub const EPOLLWRBAND: u32 = 0x200;
pub const EPOLLMSG: u32 = 0x400;
pub const EPOLLRDHUP: u32 = 0x2000;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;

pub const EPOLL_CTL_ADD: i32 = 1;
pub const EPOLL_CTL_DEL: i32 = 2;
pub const EPOLL_CTL_MOD: i32 = 3;
/// `epoll_create1` flag: `O_CLOEXEC` (the caller applies it to the descriptor).
pub const EPOLL_CLOEXEC: u32 = OpenFlags::O_CLOEXEC;

/// Flags about the registration itself rather than events to report.
const PRIVATE_BITS: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/// What `EPOLLEXCLUSIVE` may be combined with (Linux's `EPOLLEXCLUSIVE_OK_BITS`).
const EXCLUSIVE_OK_BITS: u32 =
    EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;
/// Wakeup keys: Linux wakes input waiters with `EPOLLIN | EPOLLRDNORM` and output
/// waiters with `EPOLLOUT | EPOLLWRNORM`; a registration hears a wakeup whose key
/// shares a bit with its events.
const INPUT_KEY: u32 = EPOLLIN | EPOLLRDNORM;
const OUTPUT_KEY: u32 = EPOLLOUT | EPOLLWRNORM;
/// Linux's `EP_MAX_NESTS`: how deep epoll instances may watch each other.
pub const MAX_NESTS: usize = 4;

/// `struct epoll_event`: packed on x86_64, 12 bytes (`u32 events`, `u64 data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

impl EpollEvent {
    pub const SIZE: usize = 12;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> EpollEvent {
        let mut events = [0u8; 4];
        let mut data = [0u8; 8];
        events.copy_from_slice(&b[0..4]);
        data.copy_from_slice(&b[4..12]);
        EpollEvent {
            events: u32::from_le_bytes(events),
            data: u64::from_le_bytes(data),
        }
    }

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.events.to_le_bytes());
        b[4..12].copy_from_slice(&self.data.to_le_bytes());
        b
    }
}

/// `epoll_wait`'s limit on `maxevents` (Linux's `EP_MAX_EVENTS`).
pub const MAX_EVENTS: usize = i32::MAX as usize / EpollEvent::SIZE;

/// A registration's identity: descriptor number and open file, as on Linux (the
/// same file under two descriptors can be registered twice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    fd: i32,
    /// The open file's address; stable while the `Weak` in the entry lives.
    file: usize,
}

struct Entry {
    file: Weak<OpenFile>,
    /// Requested events, always with `EPOLLHUP | EPOLLERR`, plus the private flags.
    /// A fired `EPOLLONESHOT` registration keeps only the private flags.
    events: u32,
    data: u64,
    /// The file's event stamps when last scanned.
    seen: Generation,
    /// The reportable readiness the last scan saw: a bit that appears since is a
    /// wakeup even for devices that keep no stamps.
    last: u32,
    /// Its place in the ready list (the stamp of the wakeup that queued it), or
    /// `None` when it is not queued.
    queued: Option<u64>,
}

impl Entry {
    /// The events to report; 0 when disarmed.
    fn interest(&self) -> u32 {
        self.events & !PRIVATE_BITS
    }

    fn edge_triggered(&self) -> bool {
        self.events & EPOLLET != 0
    }

    /// The stamp of the earliest wakeup Linux would have delivered to this
    /// registration since the last scan, given the file's stamps now and its
    /// reportable readiness; `None` if there was none.
    fn wakeup(&self, now: Generation, ready: u32) -> Option<u64> {
        let interest = self.interest();
        [
            (interest & INPUT_KEY != 0, now.input, self.seen.input),
            (interest & OUTPUT_KEY != 0, now.output, self.seen.output),
            (true, now.hangup, self.seen.hangup),
        ]
        .into_iter()
        .filter(|&(listens, now, seen)| listens && now != seen)
        .map(|(_, now, _)| now)
        .min()
        .or_else(|| (ready & !self.last != 0).then(event_stamp))
    }
}

#[derive(Default)]
struct Interest {
    entries: BTreeMap<Key, Entry>,
    /// Stamp of the last `epoll_ctl`, part of what this instance reports about
    /// itself when nested.
    changed: u64,
}

/// Serializes additions of one epoll instance to another, so that two concurrent
/// additions cannot each pass the loop check and together make a cycle (Linux's
/// `epnested_mutex`).
static NESTING: Mutex<()> = Mutex::new(());

/// An epoll instance.
#[derive(Default)]
pub struct Epoll {
    interest: Mutex<Interest>,
    /// The epoll files this instance is registered in (once per registration), for
    /// the nesting limit, which counts levels above as well as below.
    parents: Mutex<Vec<Weak<OpenFile>>>,
}

/// A file's event stamps and readiness, read in that order: a change between the two
/// reads then shows as a new readiness bit or as a stamp that moves again later,
/// never as a stamp already seen with readiness not yet seen. `depth` bounds the
/// recursion through nested epoll instances.
fn file_state(file: &OpenFile, depth: usize) -> (Generation, u32) {
    match file.device::<Epoll>() {
        Some(inner) => {
            if depth > MAX_NESTS {
                return (Generation::default(), 0);
            }
            let (ready, stamp) = inner.state(depth + 1);
            let generation = Generation {
                input: stamp,
                ..Generation::default()
            };
            (generation, if ready { EPOLLIN | EPOLLRDNORM } else { 0 })
        }
        None => {
            let generation = file.generation();
            (generation, file.poll_mask())
        }
    }
}

impl Epoll {
    /// A new epoll instance as an open file (`O_RDWR`, like Linux's).
    pub fn new_file() -> Arc<OpenFile> {
        OpenFile::detached_device(
            Arc::new(Epoll::default()),
            OpenFlags(OpenFlags::O_RDWR),
            anon_inode_stat(),
        )
    }

    /// `epoll_ctl(2)` on `epfile` for `target`, registered under descriptor `fd`.
    /// `event` is what the caller copied in (`None` for `EPOLL_CTL_DEL`). Errors as
    /// Linux orders them: `EBADF` for `O_PATH` descriptors, `EPERM` for a target that
    /// cannot be polled, `EINVAL` when `epfile` is not an epoll instance or is the
    /// target, for a bad use of `EPOLLEXCLUSIVE` or an unknown `op`, `ELOOP` for an
    /// addition that would close a cycle of epoll instances or nest them too deep,
    /// then `EEXIST` or `ENOENT`.
    pub fn ctl(
        epfile: &Arc<OpenFile>,
        op: i32,
        fd: i32,
        target: &Arc<OpenFile>,
        event: Option<EpollEvent>,
    ) -> KResult<()> {
        if epfile.is_path_only() || target.is_path_only() {
            return Err(Errno::EBADF);
        }
        if !target.pollable() {
            return Err(Errno::EPERM);
        }
        let ep = epfile.device::<Epoll>().ok_or(Errno::EINVAL)?;
        if Arc::ptr_eq(epfile, target) {
            return Err(Errno::EINVAL);
        }
        let event = match (op, event) {
            (EPOLL_CTL_DEL, _) => EpollEvent::default(),
            (EPOLL_CTL_ADD | EPOLL_CTL_MOD, Some(e)) => e,
            _ => return Err(Errno::EINVAL),
        };
        let target_ep = target.device::<Epoll>();
        // EPOLLEXCLUSIVE: only when adding a file that is not an epoll instance, and
        // only with the plain event bits.
        let exclusive = op != EPOLL_CTL_DEL && event.events & EPOLLEXCLUSIVE != 0;
        if exclusive
            && (op == EPOLL_CTL_MOD
                || target_ep.is_some()
                || event.events & !EXCLUSIVE_OK_BITS != 0)
        {
            return Err(Errno::EINVAL);
        }
        let key = Key {
            fd,
            file: Arc::as_ptr(target) as usize,
        };
        // EPOLLWAKEUP (keep the system awake while events are pending) needs no work
        // in a guest that never suspends; the bit is kept like Linux keeps it.
        let events = event.events | EPOLLERR | EPOLLHUP;
        // Changes to which instance watches which happen one at a time.
        let _nesting = target_ep.map(|_| NESTING.lock());
        match op {
            EPOLL_CTL_ADD => {
                if let Some(inner) = target_ep {
                    // Linux: no cycle, and at most MAX_NESTS levels of instances
                    // under the topmost one once the new link is made.
                    let below = inner.depth_below(ep, 0)?;
                    if below + 1 + ep.depth_above(0) > MAX_NESTS {
                        return Err(Errno::ELOOP);
                    }
                }
                let mut interest = ep.interest.lock();
                if interest.entries.contains_key(&key) {
                    return Err(Errno::EEXIST);
                }
                let (seen, mask) = file_state(target, 0);
                let ready = mask & events & !PRIVATE_BITS;
                interest.entries.insert(
                    key,
                    Entry {
                        file: Arc::downgrade(target),
                        events,
                        data: event.data,
                        seen,
                        last: ready,
                        queued: (ready != 0).then(event_stamp),
                    },
                );
                interest.changed = event_stamp();
                drop(interest);
                if let Some(inner) = target_ep {
                    inner.parents.lock().push(Arc::downgrade(epfile));
                }
                Ok(())
            }
            EPOLL_CTL_MOD => {
                let mut interest = ep.interest.lock();
                let entry = interest.entries.get_mut(&key).ok_or(Errno::ENOENT)?;
                if entry.events & EPOLLEXCLUSIVE != 0 {
                    return Err(Errno::EINVAL);
                }
                let (now, mask) = file_state(target, 0);
                if entry.interest() == 0 {
                    // A fired one-shot registration heard nothing since; Linux
                    // ignores wakeups while it is disarmed.
                    entry.seen = now;
                }
                entry.events = events;
                entry.data = event.data;
                let ready = mask & entry.interest();
                if ready != 0 && entry.queued.is_none() {
                    entry.queued = Some(event_stamp());
                }
                entry.last = ready;
                interest.changed = event_stamp();
                Ok(())
            }
            EPOLL_CTL_DEL => {
                let mut interest = ep.interest.lock();
                interest.entries.remove(&key).ok_or(Errno::ENOENT)?;
                interest.changed = event_stamp();
                drop(interest);
                if let Some(inner) = target_ep {
                    let mut parents = inner.parents.lock();
                    let me = Arc::as_ptr(epfile);
                    if let Some(i) = parents.iter().position(|p| p.as_ptr() == me) {
                        parents.swap_remove(i);
                    }
                }
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// How many levels of instances this one has below it (0: it watches none);
    /// `ELOOP` if `target` is among them or they go deeper than [`MAX_NESTS`]. Runs
    /// under [`NESTING`] and takes one instance's lock at a time.
    fn depth_below(&self, target: &Epoll, depth: usize) -> KResult<usize> {
        if core::ptr::eq(self, target) || depth > MAX_NESTS {
            return Err(Errno::ELOOP);
        }
        let nested: Vec<Arc<OpenFile>> = self
            .interest
            .lock()
            .entries
            .values()
            .filter_map(|e| e.file.upgrade())
            .filter(|f| f.device::<Epoll>().is_some())
            .collect();
        let mut below = 0;
        for file in &nested {
            if let Some(inner) = file.device::<Epoll>() {
                below = below.max(1 + inner.depth_below(target, depth + 1)?);
            }
        }
        Ok(below)
    }

    /// How many levels of instances watch this one (0: none). Runs under
    /// [`NESTING`], which keeps the graph acyclic, so the walk ends.
    fn depth_above(&self, depth: usize) -> usize {
        if depth > MAX_NESTS {
            return depth;
        }
        let parents: Vec<Arc<OpenFile>> = {
            let mut list = self.parents.lock();
            list.retain(|p| p.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        parents
            .iter()
            .filter_map(|p| p.device::<Epoll>())
            .map(|p| 1 + p.depth_above(depth + 1))
            .max()
            .unwrap_or(0)
    }

    /// The events to report now, at most `max`, as (revents, data) pairs, in ready
    /// list order; moves the registrations it reports along the list (see the module
    /// documentation) and disarms one-shot ones. Registrations whose file has been
    /// closed everywhere are dropped.
    pub fn collect(&self, max: usize) -> Vec<(u32, u64)> {
        // Files are released after the lock: the last reference to one may be ours.
        let mut held = Vec::new();
        let mut interest = self.interest.lock();
        // Deliver the wakeups that happened since the last scan.
        interest.entries.retain(|_, entry| {
            let Some(file) = entry.file.upgrade() else {
                return false;
            };
            let wanted = entry.interest();
            if wanted != 0 {
                let (now, mask) = file_state(&file, 0);
                let ready = mask & wanted;
                if entry.queued.is_none() {
                    entry.queued = entry.wakeup(now, ready);
                }
                if entry.queued.is_none() && ready != 0 && !entry.edge_triggered() {
                    // Level-triggered and ready: Linux would have it queued.
                    entry.queued = Some(event_stamp());
                }
                entry.seen = now;
                entry.last = ready;
            }
            held.push(file);
            true
        });
        let mut queue: Vec<(u64, Key)> = interest
            .entries
            .iter()
            .filter_map(|(key, entry)| entry.queued.map(|at| (at, *key)))
            .collect();
        queue.sort_unstable();
        let mut out = Vec::new();
        for (_, key) in queue {
            if out.len() >= max {
                // The rest stay at the head of the list.
                break;
            }
            let Some(entry) = interest.entries.get_mut(&key) else {
                continue;
            };
            let ready = entry.last;
            if ready == 0 {
                entry.queued = None;
                continue;
            }
            out.push((ready, entry.data));
            entry.queued = if entry.events & EPOLLONESHOT != 0 {
                entry.events &= PRIVATE_BITS;
                None
            } else if entry.edge_triggered() {
                None
            } else {
                Some(event_stamp())
            };
        }
        drop(interest);
        drop(held);
        out
    }

    /// Whether a scan would report something (without changing anything), and a
    /// stamp that moves whenever a registered file's stamps do or the interest list
    /// changes: what this instance reports about itself when polled or nested.
    fn state(&self, depth: usize) -> (bool, u64) {
        let mut held = Vec::new();
        let interest = self.interest.lock();
        let mut ready_any = false;
        let mut stamp = interest.changed;
        for entry in interest.entries.values() {
            let Some(file) = entry.file.upgrade() else {
                continue;
            };
            let wanted = entry.interest();
            if wanted != 0 {
                let (now, mask) = file_state(&file, depth);
                stamp = stamp.max(now.input).max(now.output).max(now.hangup);
                let ready = mask & wanted;
                let queued = entry.queued.is_some()
                    || !entry.edge_triggered()
                    || entry.wakeup(now, ready).is_some();
                ready_any |= ready != 0 && queued;
            }
            held.push(file);
        }
        drop(interest);
        drop(held);
        (ready_any, stamp)
    }

    /// How many registrations there are (closed files may still be counted until the
    /// next scan notices them).
    pub fn len(&self) -> usize {
        self.interest.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CharDevice for Epoll {
    fn read(&self, _buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn write(&self, _buf: &[u8]) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read_ready(&self) -> bool {
        self.state(0).0
    }

    fn write_ready(&self) -> bool {
        false
    }

    fn poll_mask(&self) -> u32 {
        if self.state(0).0 {
            EPOLLIN | EPOLLRDNORM
        } else {
            0
        }
    }

    fn generation(&self) -> Generation {
        Generation {
            input: self.state(0).1,
            ..Generation::default()
        }
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(b"anon_inode:[eventpoll]".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::NullDevice;
    use crate::eventfd::{eventfd, EFD_NONBLOCK, EFD_SEMAPHORE};
    use crate::pipe::{pipe, PIPE_BUF, PIPE_CAPACITY};
    use alloc::vec;

    fn ev(events: u32, data: u64) -> Option<EpollEvent> {
        Some(EpollEvent { events, data })
    }

    fn add(ep: &Arc<OpenFile>, fd: i32, file: &Arc<OpenFile>, events: u32) -> KResult<()> {
        Epoll::ctl(ep, EPOLL_CTL_ADD, fd, file, ev(events, fd as u64))
    }

    fn wait(ep: &Arc<OpenFile>) -> Vec<(u32, u64)> {
        ep.device::<Epoll>().unwrap().collect(64)
    }

    fn drain(r: &OpenFile) {
        let mut buf = vec![0u8; PIPE_CAPACITY];
        while r.read(&mut buf).is_ok_and(|n| n > 0) {}
    }

    #[test]
    fn epoll_event_is_packed_like_linux() {
        let e = EpollEvent {
            events: EPOLLIN | EPOLLET,
            data: 0x1122_3344_5566_7788,
        };
        let b = e.to_bytes();
        assert_eq!(b.len(), 12);
        assert_eq!(b[0..4], (EPOLLIN | EPOLLET).to_le_bytes());
        assert_eq!(b[4..12], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(EpollEvent::from_bytes(&b), e);
        assert_eq!(MAX_EVENTS, 178_956_970);
    }

    #[test]
    fn level_triggered_reports_while_ready() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        assert_eq!(wait(&ep), vec![]);
        w.write(b"abc").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)], "still ready, reported again");
        r.read(&mut [0u8; 2]).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
        drain(&r);
        assert_eq!(wait(&ep), vec![]);
    }

    #[test]
    fn edge_triggered_reports_each_new_write_once() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN | EPOLLET).unwrap();
        assert_eq!(wait(&ep), vec![]);
        w.write(b"abc").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
        assert_eq!(wait(&ep), vec![], "no new edge");
        r.read(&mut [0u8; 1]).unwrap();
        assert_eq!(
            wait(&ep),
            vec![],
            "a partial read is no edge for the reader"
        );
        w.write(b"d").unwrap();
        assert_eq!(
            wait(&ep),
            vec![(EPOLLIN, 3)],
            "Linux wakes epoll readers on every write, even into a non-empty pipe"
        );
        // An edge seen while the pipe is empty again is used up.
        w.write(b"e").unwrap();
        drain(&r);
        assert_eq!(wait(&ep), vec![]);
        w.write(b"f").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
    }

    #[test]
    fn edge_triggered_already_ready_file_reports_once_after_add() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        w.write(b"x").unwrap();
        add(&ep, 3, &r, EPOLLIN | EPOLLET).unwrap();
        add(&ep, 4, &w, EPOLLOUT | EPOLLET).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3), (EPOLLOUT, 4)]);
        assert_eq!(wait(&ep), vec![]);
        // MOD re-polls: ready now means reported again.
        Epoll::ctl(&ep, EPOLL_CTL_MOD, 4, &w, ev(EPOLLOUT | EPOLLET, 40)).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLOUT, 40)]);
        assert_eq!(wait(&ep), vec![]);
    }

    #[test]
    fn edge_triggered_writer_hears_room_made_in_a_full_pipe() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 4, &w, EPOLLOUT | EPOLLET).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLOUT, 4)]);
        r.read(&mut [0u8; 1]).unwrap_err();
        w.write(&[1u8; 100]).unwrap();
        r.read(&mut [0u8; 10]).unwrap();
        assert_eq!(
            wait(&ep),
            vec![],
            "reads of a pipe with room wake no writer"
        );
        let chunk = vec![7u8; PIPE_BUF];
        while w.write(&chunk).is_ok() {}
        assert!(!w.poll_ready().1);
        assert_eq!(wait(&ep), vec![]);
        r.read(&mut [0u8; 1]).unwrap();
        assert_eq!(wait(&ep), vec![], "still no room for PIPE_BUF bytes");
        r.read(&mut vec![0u8; PIPE_BUF]).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLOUT, 4)]);
    }

    #[test]
    fn oneshot_disarms_until_modified() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN | EPOLLONESHOT).unwrap();
        w.write(b"a").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
        w.write(b"b").unwrap();
        assert_eq!(wait(&ep), vec![]);
        drop(w);
        assert_eq!(
            wait(&ep),
            vec![],
            "a disarmed registration hides even EPOLLHUP"
        );
        Epoll::ctl(&ep, EPOLL_CTL_MOD, 3, &r, ev(EPOLLIN | EPOLLONESHOT, 9)).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN | EPOLLHUP, 9)]);
        assert_eq!(wait(&ep), vec![]);
    }

    #[test]
    fn edge_triggered_oneshot_ignores_events_while_disarmed() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN | EPOLLET | EPOLLONESHOT).unwrap();
        w.write(b"a").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
        drain(&r);
        w.write(b"b").unwrap();
        drain(&r);
        Epoll::ctl(
            &ep,
            EPOLL_CTL_MOD,
            3,
            &r,
            ev(EPOLLIN | EPOLLET | EPOLLONESHOT, 3),
        )
        .unwrap();
        assert_eq!(wait(&ep), vec![]);
        w.write(b"c").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
    }

    #[test]
    fn hangup_and_error_are_always_reported() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN | EPOLLRDHUP).unwrap();
        w.write(b"z").unwrap();
        drop(w);
        assert_eq!(wait(&ep), vec![(EPOLLIN | EPOLLHUP, 3)]);
        drain(&r);
        assert_eq!(
            wait(&ep),
            vec![(EPOLLHUP, 3)],
            "end of file is EPOLLHUP alone"
        );

        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 4, &w, EPOLLET).unwrap();
        assert_eq!(wait(&ep), vec![]);
        drop(r);
        assert_eq!(wait(&ep), vec![(EPOLLERR, 4)], "an edge: the reader left");
        assert_eq!(wait(&ep), vec![]);
        Epoll::ctl(&ep, EPOLL_CTL_MOD, 4, &w, ev(EPOLLOUT, 4)).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLOUT | EPOLLERR, 4)]);
    }

    #[test]
    fn ctl_errors_match_linux() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(0);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        assert_eq!(add(&ep, 3, &r, EPOLLIN), Err(Errno::EEXIST));
        assert_eq!(
            Epoll::ctl(&ep, EPOLL_CTL_MOD, 4, &w, ev(EPOLLOUT, 0)),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            Epoll::ctl(&ep, EPOLL_CTL_DEL, 4, &w, None),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            Epoll::ctl(&ep, 7, 4, &w, ev(EPOLLOUT, 0)),
            Err(Errno::EINVAL)
        );
        assert_eq!(add(&ep, 5, &ep, EPOLLIN), Err(Errno::EINVAL), "itself");
        assert_eq!(add(&r, 4, &w, EPOLLOUT), Err(Errno::EINVAL), "not an epoll");
        let null = OpenFile::detached_device(
            Arc::new(NullDevice),
            OpenFlags(OpenFlags::O_RDWR),
            anon_inode_stat(),
        );
        assert_eq!(add(&ep, 6, &null, EPOLLIN), Err(Errno::EPERM));
        assert_eq!(add(&r, 6, &null, EPOLLIN), Err(Errno::EPERM), "EPERM first");
        Epoll::ctl(&ep, EPOLL_CTL_DEL, 3, &r, None).unwrap();
        assert_eq!(
            Epoll::ctl(&ep, EPOLL_CTL_DEL, 3, &r, None),
            Err(Errno::ENOENT)
        );
        assert!(ep.device::<Epoll>().unwrap().is_empty());
    }

    #[test]
    fn exclusive_only_on_add_and_with_plain_events() {
        let ep = Epoll::new_file();
        let inner = Epoll::new_file();
        let (r, w) = pipe(0);
        assert_eq!(
            add(&ep, 3, &r, EPOLLIN | EPOLLEXCLUSIVE | EPOLLRDHUP),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            add(&ep, 5, &inner, EPOLLIN | EPOLLEXCLUSIVE),
            Err(Errno::EINVAL),
            "not for epoll targets"
        );
        add(&ep, 3, &r, EPOLLIN | EPOLLEXCLUSIVE | EPOLLET | EPOLLWAKEUP).unwrap();
        assert_eq!(
            Epoll::ctl(&ep, EPOLL_CTL_MOD, 3, &r, ev(EPOLLIN, 0)),
            Err(Errno::EINVAL),
            "an exclusive registration cannot be modified"
        );
        add(&ep, 4, &w, EPOLLOUT).unwrap();
        assert_eq!(
            Epoll::ctl(&ep, EPOLL_CTL_MOD, 4, &w, ev(EPOLLOUT | EPOLLEXCLUSIVE, 0)),
            Err(Errno::EINVAL)
        );
        w.write(b"q").unwrap();
        // The write end was ready (queued) before the write queued the read end.
        assert_eq!(wait(&ep), vec![(EPOLLOUT, 4), (EPOLLIN, 3)]);
    }

    #[test]
    fn closed_files_leave_the_interest_list() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(0);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        add(&ep, 4, &w, EPOLLOUT).unwrap();
        drop(r);
        assert_eq!(wait(&ep), vec![(EPOLLOUT | EPOLLERR, 4)]);
        assert_eq!(ep.device::<Epoll>().unwrap().len(), 1);
        // A new file under the same number is a new registration.
        let (r2, _w2) = pipe(0);
        add(&ep, 3, &r2, EPOLLIN).unwrap();
    }

    #[test]
    fn one_file_under_two_descriptors_is_two_registrations() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(0);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        add(&ep, 7, &r, EPOLLIN).unwrap();
        w.write(b"1").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3), (EPOLLIN, 7)]);
    }

    #[test]
    fn small_maxevents_takes_turns() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(0);
        let (r2, w2) = pipe(0);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        add(&ep, 5, &r2, EPOLLIN).unwrap();
        w.write(b"1").unwrap();
        w2.write(b"2").unwrap();
        let e = ep.device::<Epoll>().unwrap();
        assert_eq!(e.collect(1), vec![(EPOLLIN, 3)]);
        assert_eq!(e.collect(1), vec![(EPOLLIN, 5)]);
        assert_eq!(e.collect(1), vec![(EPOLLIN, 3)]);
        assert_eq!(e.collect(8), vec![(EPOLLIN, 5), (EPOLLIN, 3)]);
    }

    #[test]
    fn events_come_in_the_order_files_became_ready() {
        let ep = Epoll::new_file();
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        let (r2, w2) = pipe(OpenFlags::O_NONBLOCK);
        add(&ep, 3, &r, EPOLLIN).unwrap();
        add(&ep, 5, &r2, EPOLLIN | EPOLLET).unwrap();
        w2.write(b"2").unwrap();
        w.write(b"1").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 5), (EPOLLIN, 3)]);
        // Level-triggered 3 went back to the tail; a new edge for 5 queues it after.
        w2.write(b"2").unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3), (EPOLLIN, 5)]);
        // Registrations not reached for lack of room keep their place at the head.
        w2.write(b"2").unwrap();
        let e = ep.device::<Epoll>().unwrap();
        assert_eq!(e.collect(1), vec![(EPOLLIN, 3)]);
        w.write(b"1").unwrap();
        assert_eq!(e.collect(8), vec![(EPOLLIN, 5), (EPOLLIN, 3)]);
    }

    #[test]
    fn nested_instances_and_loops() {
        let outer = Epoll::new_file();
        let inner = Epoll::new_file();
        let (r, w) = pipe(0);
        add(&inner, 3, &r, EPOLLIN).unwrap();
        add(&outer, 4, &inner, EPOLLIN).unwrap();
        assert_eq!(wait(&outer), vec![]);
        assert!(!inner.poll_ready().0);
        w.write(b"n").unwrap();
        assert!(inner.poll_ready().0);
        assert_eq!(inner.poll_mask(), EPOLLIN | EPOLLRDNORM);
        assert_eq!(wait(&outer), vec![(EPOLLIN, 4)]);
        assert_eq!(add(&inner, 5, &outer, EPOLLIN), Err(Errno::ELOOP));
        Epoll::ctl(&outer, EPOLL_CTL_DEL, 4, &inner, None).unwrap();
        add(&inner, 5, &outer, EPOLLIN).unwrap();
    }

    /// Linux refuses the fifth level of nesting whichever way the chain is built.
    #[test]
    fn nesting_depth_is_limited_both_ways() {
        let mut down = vec![Epoll::new_file()];
        let mut up = vec![Epoll::new_file()];
        for level in 1..5 {
            down.push(Epoll::new_file());
            add(&down[level], 3, &down[level - 1], EPOLLIN).unwrap();
            up.push(Epoll::new_file());
            add(&up[level - 1], 3, &up[level], EPOLLIN).unwrap();
        }
        let extra = Epoll::new_file();
        assert_eq!(add(&extra, 3, &down[4], EPOLLIN), Err(Errno::ELOOP));
        assert_eq!(add(&up[4], 3, &extra, EPOLLIN), Err(Errno::ELOOP));
        // Removing a link makes room again.
        Epoll::ctl(&up[0], EPOLL_CTL_DEL, 3, &up[1], None).unwrap();
        add(&up[4], 3, &extra, EPOLLIN).unwrap();
        drop(down.remove(4));
        add(&Epoll::new_file(), 4, &down[3], EPOLLIN).unwrap();
    }

    #[test]
    fn eventfd_semaphore_edge_ignores_reads() {
        let ep = Epoll::new_file();
        let efd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK).unwrap();
        add(&ep, 3, &efd, EPOLLIN | EPOLLET).unwrap();
        assert_eq!(wait(&ep), vec![]);
        efd.write(&3u64.to_ne_bytes()).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN, 3)]);
        efd.read(&mut [0u8; 8]).unwrap();
        assert_eq!(wait(&ep), vec![], "a read wakes only EPOLLOUT waiters");
        efd.write(&0u64.to_ne_bytes()).unwrap();
        assert_eq!(
            wait(&ep),
            vec![(EPOLLIN, 3)],
            "a write of 0 is still a wakeup"
        );
        // Both directions: the read is an edge now, reported with the whole mask.
        Epoll::ctl(
            &ep,
            EPOLL_CTL_MOD,
            3,
            &efd,
            ev(EPOLLIN | EPOLLOUT | EPOLLET, 3),
        )
        .unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN | EPOLLOUT, 3)]);
        efd.read(&mut [0u8; 8]).unwrap();
        assert_eq!(wait(&ep), vec![(EPOLLIN | EPOLLOUT, 3)]);
        assert_eq!(wait(&ep), vec![]);
    }

    #[test]
    fn epoll_files_look_like_linux() {
        let ep = Epoll::new_file();
        assert_eq!(ep.read(&mut [0u8; 8]), Err(Errno::EINVAL));
        assert_eq!(ep.write(&[0u8; 8]), Err(Errno::EINVAL));
        assert_eq!(ep.status_flags(), OpenFlags::O_RDWR);
        assert_eq!(ep.stat().unwrap().mode, 0o600);
        assert_eq!(ep.path(), b"anon_inode:[eventpoll]".to_vec());
        assert_eq!(ep.poll_ready(), (false, false));
    }
}
