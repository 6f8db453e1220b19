//! Advisory file locks: `flock(2)` locks, open file description (OFD) record locks and
//! POSIX record locks (`fcntl` `F_SETLK`), with Linux's rules for who conflicts with
//! whom. Everything is non-blocking here: a request that conflicts fails with `EAGAIN`
//! and the syscall layer waits (interruptibly) until [`flock_free`] or
//! [`record_lock_free`] says a retry may succeed.
//!
//! # Owners
//!
//! * `flock` locks and OFD locks belong to an open file description ([`OpenFile`]):
//!   `dup`ed descriptors share them, two `open`s of one file conflict even in one
//!   process, and they go away when the description is dropped (its last descriptor
//!   closed, see [`release_description`]).
//! * POSIX record locks belong to the process. Skiff keeps one owner for all processes,
//!   so they never conflict with each other (a forked child's included); they do conflict with OFD locks (Linux compares owners,
//!   and a description is never the process), and closing *any* descriptor of the file
//!   drops all of them ([`release_process_locks`], called by the descriptor table).
//! * `flock` locks and record locks never see each other.
//!
//! Locks are kept per file, keyed by the identity of its inode (or of the device behind
//! a file without one, such as a pipe end); a key never outlives its locks, since every
//! lock goes with the descriptions (and descriptors) that hold the inode alive.
//!
//! Record locks cover inclusive byte ranges `[start, end]`, `end == OFFSET_MAX` meaning
//! "to the end of the file, however far it grows". Setting a lock over part of an
//! owner's existing locks replaces that part (splitting them), unlocking punches holes,
//! and adjacent or overlapping locks of one owner and type are merged, as on Linux.

use crate::file::OpenFile;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};

/// `l_type` values.
pub const F_RDLCK: i16 = 0;
pub const F_WRLCK: i16 = 1;
pub const F_UNLCK: i16 = 2;
/// `flock(2)` operations.
pub const LOCK_SH: u32 = 1;
pub const LOCK_EX: u32 = 2;
pub const LOCK_NB: u32 = 4;
pub const LOCK_UN: u32 = 8;
/// The largest file offset (`loff_t` maximum): the end of a lock "to end of file".
pub const OFFSET_MAX: i64 = i64::MAX;

const SEEK_SET: i16 = 0;
const SEEK_CUR: i16 = 1;
const SEEK_END: i16 = 2;

/// Linux's `struct flock` on x86_64 (32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flock {
    pub l_type: i16,
    pub l_whence: i16,
    pub l_start: i64,
    pub l_len: i64,
    pub l_pid: i32,
}

impl Flock {
    pub const SIZE: usize = 32;

    pub fn from_bytes(b: &[u8; Flock::SIZE]) -> Flock {
        let i64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            i64::from_le_bytes(v)
        };
        Flock {
            l_type: i16::from_le_bytes([b[0], b[1]]),
            l_whence: i16::from_le_bytes([b[2], b[3]]),
            l_start: i64_at(8),
            l_len: i64_at(16),
            l_pid: i32::from_le_bytes([b[24], b[25], b[26], b[27]]),
        }
    }

    pub fn to_bytes(&self) -> [u8; Flock::SIZE] {
        let mut b = [0u8; Flock::SIZE];
        b[0..2].copy_from_slice(&self.l_type.to_le_bytes());
        b[2..4].copy_from_slice(&self.l_whence.to_le_bytes());
        b[8..16].copy_from_slice(&self.l_start.to_le_bytes());
        b[16..24].copy_from_slice(&self.l_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.l_pid.to_le_bytes());
        b
    }
}

/// Who holds a record lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOwner {
    /// The process (POSIX `F_SETLK` locks).
    Process,
    /// An open file description (OFD locks), by its address.
    Description(usize),
}

/// Which `fcntl` lock commands a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFamily {
    /// `F_GETLK`, `F_SETLK`, `F_SETLKW`.
    Posix,
    /// `F_OFD_GETLK`, `F_OFD_SETLK`, `F_OFD_SETLKW`.
    Ofd,
}

/// One record lock: `owner` holds `[start, end]` for reading (shared) or writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLock {
    pub owner: LockOwner,
    pub write: bool,
    pub start: i64,
    pub end: i64,
}

impl RecordLock {
    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.start <= end && start <= self.end
    }

    fn conflicts_with(&self, other: &RecordLock) -> bool {
        self.owner != other.owner
            && (self.write || other.write)
            && self.overlaps(other.start, other.end)
    }
}

/// The locks of one file.
#[derive(Default)]
struct FileLocks {
    /// `flock` holders: description and whether exclusive.
    flocks: Vec<(usize, bool)>,
    /// Record locks, sorted by start.
    records: Vec<RecordLock>,
}

impl FileLocks {
    fn is_empty(&self) -> bool {
        self.flocks.is_empty() && self.records.is_empty()
    }

    fn flock_conflict(&self, description: usize, exclusive: bool) -> bool {
        self.flocks
            .iter()
            .any(|&(d, ex)| d != description && (ex || exclusive))
    }

    fn first_conflict(&self, request: &RecordLock) -> Option<RecordLock> {
        // The lowest conflicting range, as Linux's sorted lock list reports it.
        self.records
            .iter()
            .find(|l| l.conflicts_with(request))
            .copied()
    }

    /// Replaces `owner`'s locks over `[start, end]` by `lock` (or nothing), keeping the
    /// parts of them outside the range, then merges `owner`'s neighbours of one type.
    fn apply(&mut self, owner: LockOwner, start: i64, end: i64, lock: Option<RecordLock>) {
        let mut kept = Vec::with_capacity(self.records.len() + 2);
        for l in self.records.drain(..) {
            if l.owner != owner || !l.overlaps(start, end) {
                kept.push(l);
                continue;
            }
            if l.start < start {
                kept.push(RecordLock {
                    end: start - 1,
                    ..l
                });
            }
            if l.end > end {
                kept.push(RecordLock {
                    start: end + 1,
                    ..l
                });
            }
        }
        kept.extend(lock);
        kept.sort_by_key(|l| (l.start, l.end));
        let mut merged: Vec<RecordLock> = Vec::with_capacity(kept.len());
        for l in kept {
            let joined = merged.iter_mut().rev().find(|m| {
                m.owner == l.owner
                    && m.write == l.write
                    && m.end.checked_add(1).is_none_or(|after| after >= l.start)
            });
            match joined {
                Some(m) => m.end = m.end.max(l.end),
                None => merged.push(l),
            }
        }
        self.records = merged;
    }
}

/// Every file's locks, by file key.
pub struct LockTable {
    files: spin::Mutex<BTreeMap<usize, FileLocks>>,
}

impl Default for LockTable {
    fn default() -> Self {
        LockTable::new()
    }
}

impl LockTable {
    pub const fn new() -> LockTable {
        LockTable {
            files: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// A `flock` request of `description` on file `key`: `Some(exclusive)` to lock,
    /// `None` to unlock. A description converting its lock gives up the old one first
    /// (so a failed upgrade leaves it unlocked, as on Linux). `EAGAIN` on a conflict.
    pub fn flock(&self, key: usize, description: usize, request: Option<bool>) -> KResult<()> {
        let mut files = self.files.lock();
        let locks = files.entry(key).or_default();
        let held = locks.flocks.iter().position(|&(d, _)| d == description);
        let result = match (held, request) {
            (Some(i), Some(exclusive)) if locks.flocks[i].1 == exclusive => Ok(()),
            (held, request) => {
                if let Some(i) = held {
                    locks.flocks.swap_remove(i);
                }
                match request {
                    Some(exclusive) if locks.flock_conflict(description, exclusive) => {
                        Err(Errno::EAGAIN)
                    }
                    Some(exclusive) => {
                        locks.flocks.push((description, exclusive));
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
        };
        if locks.is_empty() {
            files.remove(&key);
        }
        result
    }

    /// Whether a `flock` request would not conflict now.
    pub fn flock_free(&self, key: usize, description: usize, exclusive: bool) -> bool {
        self.files
            .lock()
            .get(&key)
            .is_none_or(|l| !l.flock_conflict(description, exclusive))
    }

    /// The first lock of another owner that conflicts with `request`.
    pub fn test(&self, key: usize, request: &RecordLock) -> Option<RecordLock> {
        self.files.lock().get(&key)?.first_conflict(request)
    }

    /// Sets (`write` is `Some`) or removes (`None`) `owner`'s record lock over
    /// `[start, end]`. `EAGAIN` when another owner's lock conflicts.
    pub fn set(
        &self,
        key: usize,
        owner: LockOwner,
        write: Option<bool>,
        start: i64,
        end: i64,
    ) -> KResult<()> {
        let mut files = self.files.lock();
        let locks = files.entry(key).or_default();
        let lock = write.map(|write| RecordLock {
            owner,
            write,
            start,
            end,
        });
        let result = match lock {
            Some(l) if locks.first_conflict(&l).is_some() => Err(Errno::EAGAIN),
            _ => {
                locks.apply(owner, start, end, lock);
                Ok(())
            }
        };
        if locks.is_empty() {
            files.remove(&key);
        }
        result
    }

    /// Drops everything `description` holds on file `key` (its `flock` and OFD locks).
    pub fn release_description(&self, key: usize, description: usize) {
        self.release(key, |locks| {
            locks.flocks.retain(|&(d, _)| d != description);
            locks
                .records
                .retain(|l| l.owner != LockOwner::Description(description));
        });
    }

    /// Drops the process's POSIX locks on file `key`.
    pub fn release_process(&self, key: usize) {
        self.release(key, |locks| {
            locks.records.retain(|l| l.owner != LockOwner::Process);
        });
    }

    fn release(&self, key: usize, f: impl FnOnce(&mut FileLocks)) {
        let mut files = self.files.lock();
        if let Some(locks) = files.get_mut(&key) {
            f(locks);
            if locks.is_empty() {
                files.remove(&key);
            }
        }
    }

    /// The record locks on file `key` (for tests and diagnostics).
    pub fn records(&self, key: usize) -> Vec<RecordLock> {
        self.files
            .lock()
            .get(&key)
            .map_or_else(Vec::new, |l| l.records.clone())
    }
}

/// The locks of every file of the running program.
static LOCKS: LockTable = LockTable::new();

/// A description's identity as a lock owner.
fn description_id(file: &OpenFile) -> usize {
    file as *const OpenFile as usize
}

/// `flock(2)` on `file`: `operation` is `LOCK_SH`, `LOCK_EX` or `LOCK_UN`, optionally
/// with `LOCK_NB` (which only the caller's waiting looks at). `EINVAL` for anything
/// else, `EBADF` for an `O_PATH` descriptor, `EAGAIN` (`EWOULDBLOCK`) on a conflict.
pub fn flock(file: &OpenFile, operation: u32) -> KResult<()> {
    let request = flock_request(operation)?;
    let key = file.lock_key().ok_or(Errno::EBADF)?;
    if request.is_some() {
        file.note_locked();
    }
    LOCKS.flock(key, description_id(file), request)
}

/// Whether a `flock(file, operation)` that failed with `EAGAIN` may succeed now.
pub fn flock_free(file: &OpenFile, operation: u32) -> bool {
    match (flock_request(operation), file.lock_key()) {
        (Ok(Some(exclusive)), Some(key)) => LOCKS.flock_free(key, description_id(file), exclusive),
        _ => true,
    }
}

fn flock_request(operation: u32) -> KResult<Option<bool>> {
    match operation & !LOCK_NB {
        LOCK_SH => Ok(Some(false)),
        LOCK_EX => Ok(Some(true)),
        LOCK_UN => Ok(None),
        _ => Err(Errno::EINVAL),
    }
}

/// The inclusive byte range `[start, end]` a `struct flock` names, from its `l_whence`,
/// the file offset `pos` and the file size (Linux's `flock_to_posix_lock`): `EINVAL`
/// for a bad `l_whence` or a range starting before 0, `EOVERFLOW` past `OFFSET_MAX`.
pub fn lock_range(fl: &Flock, pos: u64, size: u64) -> KResult<(i64, i64)> {
    let base = match fl.l_whence {
        SEEK_SET => 0,
        SEEK_CUR => pos,
        SEEK_END => size,
        _ => return Err(Errno::EINVAL),
    };
    let base = i64::try_from(base).map_err(|_| Errno::EOVERFLOW)?;
    let start = base.checked_add(fl.l_start).ok_or(Errno::EOVERFLOW)?;
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    match fl.l_len {
        0 => Ok((start, OFFSET_MAX)),
        len if len > 0 => {
            if len - 1 > OFFSET_MAX - start {
                return Err(Errno::EOVERFLOW);
            }
            Ok((start, start + (len - 1)))
        }
        len => {
            let first = start + len;
            if first < 0 {
                return Err(Errno::EINVAL);
            }
            Ok((first, start - 1))
        }
    }
}

/// The owner a request of `family` on `file` acts for.
fn owner_for(file: &OpenFile, family: RecordFamily) -> LockOwner {
    match family {
        RecordFamily::Posix => LockOwner::Process,
        RecordFamily::Ofd => LockOwner::Description(description_id(file)),
    }
}

/// Checks that is common to setting and testing, and the request as a lock.
fn decode(file: &OpenFile, family: RecordFamily, fl: &Flock) -> KResult<(usize, RecordLock)> {
    let key = file.lock_key().ok_or(Errno::EBADF)?;
    if family == RecordFamily::Ofd && fl.l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let write = match fl.l_type {
        F_RDLCK => false,
        F_WRLCK | F_UNLCK => true,
        _ => return Err(Errno::EINVAL),
    };
    let size = file.stat()?.size;
    let pos = if fl.l_whence == SEEK_CUR {
        file.seek(0, SEEK_CUR as u32)?
    } else {
        0
    };
    let (start, end) = lock_range(fl, pos, size)?;
    Ok((
        key,
        RecordLock {
            owner: owner_for(file, family),
            write,
            start,
            end,
        },
    ))
}

/// `F_SETLK`/`F_OFD_SETLK`: sets or (with `F_UNLCK`) removes a record lock. `EBADF`
/// when the descriptor is not open for reading (a read lock) or writing (a write
/// lock), `EINVAL` for a bad `l_type`, `l_whence` or range, or (OFD) a non-zero
/// `l_pid`; `EAGAIN` on a conflict.
pub fn set_record_lock(file: &OpenFile, family: RecordFamily, fl: &Flock) -> KResult<()> {
    let (key, lock) = decode(file, family, fl)?;
    let write = match fl.l_type {
        F_RDLCK if !file.is_readable() => return Err(Errno::EBADF),
        F_WRLCK if !file.is_writable() => return Err(Errno::EBADF),
        F_UNLCK => None,
        _ => Some(lock.write),
    };
    if write.is_some() {
        if let LockOwner::Description(_) = lock.owner {
            file.note_locked();
        }
    }
    LOCKS.set(key, lock.owner, write, lock.start, lock.end)
}

/// Whether a `set_record_lock` that failed with `EAGAIN` may succeed now.
pub fn record_lock_free(file: &OpenFile, family: RecordFamily, fl: &Flock) -> bool {
    match decode(file, family, fl) {
        Ok((key, lock)) => LOCKS.test(key, &lock).is_none(),
        Err(_) => true,
    }
}

/// `F_GETLK`/`F_OFD_GETLK`: rewrites `fl` to describe the first lock that would
/// conflict with it (`l_whence` `SEEK_SET`, `l_len` 0 for "to end of file", `l_pid`
/// `pid` for the process's POSIX locks and -1 for OFD locks), or only its `l_type` to
/// `F_UNLCK` when there is none. `F_GETLK` of `F_UNLCK` is `EINVAL`; `F_OFD_GETLK` of
/// it reports `F_UNLCK` (both as Linux 6).
pub fn get_record_lock(
    file: &OpenFile,
    family: RecordFamily,
    fl: &mut Flock,
    pid: i32,
) -> KResult<()> {
    if family == RecordFamily::Posix && fl.l_type == F_UNLCK {
        return Err(Errno::EINVAL);
    }
    let (key, lock) = decode(file, family, fl)?;
    let conflict = if fl.l_type == F_UNLCK {
        None
    } else {
        LOCKS.test(key, &lock)
    };
    match conflict {
        None => fl.l_type = F_UNLCK,
        Some(c) => {
            *fl = Flock {
                l_type: if c.write { F_WRLCK } else { F_RDLCK },
                l_whence: SEEK_SET,
                l_start: c.start,
                l_len: if c.end == OFFSET_MAX {
                    0
                } else {
                    c.end - c.start + 1
                },
                l_pid: match c.owner {
                    LockOwner::Process => pid,
                    LockOwner::Description(_) => -1,
                },
            }
        }
    }
    Ok(())
}

/// Drops the `flock` and OFD locks of a description that is going away.
pub(crate) fn release_description(file: &OpenFile) {
    if let Some(key) = file.lock_key() {
        LOCKS.release_description(key, description_id(file));
    }
}

/// A descriptor of `file` was closed: the process's POSIX locks on the file go, as on
/// Linux (whichever descriptor took them).
pub fn release_process_locks(file: &OpenFile) {
    if let Some(key) = file.lock_key() {
        LOCKS.release_process(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LockOwner = LockOwner::Description(1);
    const B: LockOwner = LockOwner::Description(2);
    const P: LockOwner = LockOwner::Process;

    fn lock(owner: LockOwner, write: bool, start: i64, end: i64) -> RecordLock {
        RecordLock {
            owner,
            write,
            start,
            end,
        }
    }

    #[test]
    fn flock_layout_is_linuxs() {
        let fl = Flock {
            l_type: F_WRLCK,
            l_whence: 1,
            l_start: 0x0102_0304_0506_0708,
            l_len: -2,
            l_pid: -1,
        };
        let b = fl.to_bytes();
        assert_eq!(&b[0..4], &[1, 0, 1, 0]);
        assert_eq!(&b[4..8], &[0; 4], "padding");
        assert_eq!(b[8], 0x08);
        assert_eq!(&b[16..24], &(-2i64).to_le_bytes());
        assert_eq!(&b[24..28], &[0xff; 4]);
        assert_eq!(Flock::from_bytes(&b), fl);
    }

    #[test]
    fn flock_descriptions_conflict_and_convert() {
        let t = LockTable::new();
        assert_eq!(t.flock(7, 1, Some(true)), Ok(()));
        assert_eq!(t.flock(7, 2, Some(false)), Err(Errno::EAGAIN));
        assert!(!t.flock_free(7, 2, false));
        // Relocking the same way, and on another file, are fine.
        assert_eq!(t.flock(7, 1, Some(true)), Ok(()));
        assert_eq!(t.flock(8, 2, Some(true)), Ok(()));
        // Downgrade, share, then a failed upgrade drops the old lock.
        assert_eq!(t.flock(7, 1, Some(false)), Ok(()));
        assert_eq!(t.flock(7, 2, Some(false)), Ok(()));
        assert_eq!(t.flock(7, 1, Some(true)), Err(Errno::EAGAIN));
        assert_eq!(t.flock(7, 2, None), Ok(()));
        assert_eq!(t.flock(7, 3, Some(true)), Ok(()));
        t.release_description(7, 3);
        assert!(t.flock_free(7, 1, true));
        assert_eq!(t.flock(7, 4, None), Ok(()));
    }

    #[test]
    fn ranges_split_merge_and_conflict() {
        let t = LockTable::new();
        t.set(1, A, Some(true), 0, 99).unwrap();
        t.set(1, A, None, 40, 59).unwrap();
        t.set(1, A, Some(false), 10, 19).unwrap();
        assert_eq!(
            t.records(1),
            [
                lock(A, true, 0, 9),
                lock(A, false, 10, 19),
                lock(A, true, 20, 39),
                lock(A, true, 60, 99)
            ]
        );
        assert_eq!(t.test(1, &lock(B, false, 10, 19)), None);
        assert_eq!(
            t.test(1, &lock(B, true, 15, 25)),
            Some(lock(A, false, 10, 19))
        );
        assert_eq!(t.set(1, B, Some(false), 15, 25), Err(Errno::EAGAIN));
        assert_eq!(t.set(1, B, Some(false), 40, 59), Ok(()));
        // The owner's own locks never conflict; re-locking merges everything back.
        t.set(1, A, Some(true), 0, 39).unwrap();
        t.set(1, A, Some(true), 60, OFFSET_MAX).unwrap();
        assert_eq!(
            t.records(1),
            [
                lock(A, true, 0, 39),
                lock(B, false, 40, 59),
                lock(A, true, 60, OFFSET_MAX)
            ]
        );
        t.release_description(1, 2);
        t.set(1, A, Some(true), 40, 59).unwrap();
        assert_eq!(t.records(1), [lock(A, true, 0, OFFSET_MAX)]);
        t.set(1, A, None, 0, OFFSET_MAX).unwrap();
        assert!(t.records(1).is_empty());
    }

    #[test]
    fn posix_locks_conflict_only_with_descriptions() {
        let t = LockTable::new();
        t.set(1, P, Some(true), 0, 9).unwrap();
        t.set(1, P, Some(true), 5, 14).unwrap();
        assert_eq!(t.records(1), [lock(P, true, 0, 14)]);
        assert_eq!(t.set(1, A, Some(false), 14, 20), Err(Errno::EAGAIN));
        assert_eq!(t.test(1, &lock(A, false, 3, 3)), Some(lock(P, true, 0, 14)));
        t.set(1, A, Some(true), 20, 29).unwrap();
        assert_eq!(t.set(1, P, Some(false), 25, 25), Err(Errno::EAGAIN));
        t.release_process(1);
        assert_eq!(t.records(1), [lock(A, true, 20, 29)]);
    }

    #[test]
    fn ranges_from_struct_flock() {
        let fl = |whence, start, len| Flock {
            l_type: F_WRLCK,
            l_whence: whence,
            l_start: start,
            l_len: len,
            l_pid: 0,
        };
        assert_eq!(lock_range(&fl(0, 0, 10), 0, 0), Ok((0, 9)));
        assert_eq!(lock_range(&fl(0, 5, 0), 0, 0), Ok((5, OFFSET_MAX)));
        assert_eq!(lock_range(&fl(1, 0, 5), 50, 0), Ok((50, 54)));
        assert_eq!(lock_range(&fl(2, -10, 0), 0, 100), Ok((90, OFFSET_MAX)));
        assert_eq!(lock_range(&fl(0, 30, -10), 0, 0), Ok((20, 29)));
        assert_eq!(lock_range(&fl(0, 5, -6), 0, 0), Err(Errno::EINVAL));
        assert_eq!(lock_range(&fl(0, -1, 1), 0, 0), Err(Errno::EINVAL));
        assert_eq!(lock_range(&fl(7, 0, 1), 0, 0), Err(Errno::EINVAL));
        assert_eq!(lock_range(&fl(0, i64::MAX, 2), 0, 0), Err(Errno::EOVERFLOW));
        assert_eq!(
            lock_range(&fl(0, i64::MAX, 1), 0, 0),
            Ok((i64::MAX, i64::MAX))
        );
        assert_eq!(lock_range(&fl(1, i64::MAX, 1), 1, 0), Err(Errno::EOVERFLOW));
    }
}
