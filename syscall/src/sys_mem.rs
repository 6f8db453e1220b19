//! Memory system calls: thin wrappers over `skiff-vm` applied to the real page tables.

use crate::args::Args;
use crate::process::{self, current, Process};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};
use skiff_fs::coherence::{HeldMappings, SharedMappings};
use skiff_fs::{FileType, Inode, OpenFile};
use skiff_mm::paging::UserPageTable;
use skiff_vm::abi::{MAP_ANONYMOUS, MAP_SHARED, MAP_TYPE, PAGE_SIZE, PROT_WRITE};
use skiff_vm::{Backing, MapSource};

/// An open file as the source of a file mapping's pages. Reads and write-backs go
/// straight to the inode: they run with the address space locked, and the descriptor
/// paths would take it again (see [`SharedFileMappings`]).
struct FileSource {
    file: Arc<OpenFile>,
    dev: u64,
    ino: u64,
    path: Vec<u8>,
    /// `MAP_SHARED`: counted in [`SHARED_FILES`] while the source lives.
    shared: bool,
}

impl FileSource {
    fn new(file: Arc<OpenFile>, dev: u64, ino: u64, path: Vec<u8>, shared: bool) -> FileSource {
        let source = FileSource {
            file,
            dev,
            ino,
            path,
            shared,
        };
        if let (true, Some(key)) = (shared, source.key()) {
            skiff_fs::coherence::install(&SharedFileMappings);
            *SHARED_FILES.lock().entry(key).or_insert(0) += 1;
        }
        source
    }

    fn inode(&self) -> KResult<&Arc<dyn Inode>> {
        self.file.inode().ok_or(Errno::EBADF)
    }

    fn key(&self) -> Option<usize> {
        self.file.inode().map(skiff_fs::coherence::inode_key)
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        if let (true, Some(key)) = (self.shared, self.key()) {
            let mut files = SHARED_FILES.lock();
            if let Some(count) = files.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    files.remove(&key);
                }
            }
        }
    }
}

impl MapSource for FileSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let inode = self.inode()?;
        let mut done = 0;
        while done < buf.len() {
            let n = inode.read_at(offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    fn describe(&self) -> (u64, u64, Vec<u8>) {
        (self.dev, self.ino, self.path.clone())
    }

    fn writable(&self) -> bool {
        self.file.is_writable()
    }

    fn write_back(&self, offset: u64, data: &[u8]) -> KResult<()> {
        // At the page's own offset even when the descriptor was opened with O_APPEND
        // (pwrite would append it).
        let inode = self.inode()?;
        let size = inode.stat()?.size;
        let len = size.saturating_sub(offset).min(data.len() as u64) as usize;
        let mut done = 0;
        while done < len {
            let n = inode.write_at(offset + done as u64, &data[done..len])?;
            if n == 0 {
                return Err(Errno::EIO);
            }
            done += n;
        }
        Ok(())
    }

    fn sync(&self) -> KResult<()> {
        self.file.sync(false)
    }

    fn file_key(&self) -> Option<usize> {
        self.key()
    }
}

/// Files with shared mappings: inode key → live shared [`FileSource`]s, so that reads
/// and writes of other files need not lock the address space.
static SHARED_FILES: spin::Mutex<BTreeMap<usize, usize>> = spin::Mutex::new(BTreeMap::new());

/// Keeps shared file mappings coherent with descriptor I/O (see `skiff_fs::coherence`):
/// before a read of a shared-mapped file its dirty mapped pages are written back, and
/// after a write or size change the mapped pages are updated. Each step runs with the
/// calling process's address space locked; the I/O between them does not hold it (a
/// guard cannot outlive the borrow of a process that may end), so a fault racing with
/// a write that sleeps on the disk may see the old bytes until the update lands. Lock
/// order: a descriptor's offset lock, then the address space, then the filesystem.
/// Mappings of the file in *other* processes are not updated (after `fork` they share
/// frames with the caller's, which are).
struct SharedFileMappings;

impl SharedMappings for SharedFileMappings {
    fn hold(&self, inode: &Arc<dyn Inode>) -> Option<Box<dyn HeldMappings>> {
        let key = skiff_fs::coherence::inode_key(inode);
        if !SHARED_FILES.lock().contains_key(&key) {
            return None;
        }
        Some(Box::new(HeldFile {
            key,
            process: process::current(),
        }))
    }
}

struct HeldFile {
    key: usize,
    process: Arc<Process>,
}

impl HeldFile {
    fn pages(&self) -> UserPageTable {
        UserPageTable::of_root(self.process.page_root)
    }
}

impl HeldMappings for HeldFile {
    fn flush(&mut self, offset: u64, len: u64) -> KResult<()> {
        let mut pages = self.pages();
        self.process
            .aspace
            .lock()
            .flush_file_range(&mut pages, self.key, offset, len)
    }

    fn written(&mut self, offset: u64, data: &[u8]) {
        let mut pages = self.pages();
        self.process.aspace.lock().update_file_range(
            &mut pages,
            self.key,
            offset,
            data.len() as u64,
            Some(data),
        );
    }

    fn resized(&mut self, old: u64, new: u64) {
        let from = old.min(new);
        let mut pages = self.pages();
        self.process.aspace.lock().update_file_range(
            &mut pages,
            self.key,
            from,
            u64::MAX - from,
            None,
        );
    }
}

pub fn brk(a: &Args) -> KResult<u64> {
    let p = current();
    let mut aspace = p.aspace.lock();
    Ok(aspace.brk(&mut UserPageTable::current(), a.raw(0)))
}

pub fn mmap(a: &Args) -> KResult<u64> {
    let (addr, len, prot, flags, offset) = (a.raw(0), a.raw(1), a.raw(2), a.raw(3), a.raw(5));
    if offset % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    let backing = if flags & MAP_ANONYMOUS != 0 {
        Backing::Anonymous
    } else {
        let f = current().fs.fds.lock().get(a.fd(4)?)?;
        let st = f.stat()?;
        match st.file_type() {
            Some(FileType::Regular) => {}
            // /dev/zero maps as anonymous memory, as on Linux.
            Some(FileType::CharDevice) if st.rdev == skiff_fs::device::DEV_ZERO => {
                return map(addr, len, prot, flags | MAP_ANONYMOUS, Backing::Anonymous)
            }
            _ => return Err(Errno::ENODEV),
        }
        if !f.is_readable() {
            return Err(Errno::EACCES);
        }
        if flags & MAP_TYPE == MAP_SHARED && prot & PROT_WRITE != 0 && !f.is_writable() {
            return Err(Errno::EACCES);
        }
        let path = f.path();
        let shared = flags & MAP_TYPE == MAP_SHARED;
        Backing::File {
            source: Arc::new(FileSource::new(f, st.dev, st.ino, path, shared)),
            offset,
            file_size_limit: u64::MAX,
        }
    };
    map(addr, len, prot, flags, backing)
}

fn map(addr: u64, len: u64, prot: u64, flags: u64, backing: Backing) -> KResult<u64> {
    let p = current();
    let mut aspace = p.aspace.lock();
    aspace.mmap(
        &mut UserPageTable::current(),
        addr,
        len,
        prot,
        flags,
        backing,
    )
}

pub fn munmap(a: &Args) -> KResult<u64> {
    let p = current();
    let mut aspace = p.aspace.lock();
    aspace.munmap(&mut UserPageTable::current(), a.raw(0), a.raw(1))?;
    Ok(0)
}

pub fn mprotect(a: &Args) -> KResult<u64> {
    let p = current();
    let mut aspace = p.aspace.lock();
    aspace.mprotect(&mut UserPageTable::current(), a.raw(0), a.raw(1), a.raw(2))?;
    Ok(0)
}

pub fn mremap(a: &Args) -> KResult<u64> {
    let p = current();
    let mut aspace = p.aspace.lock();
    aspace.mremap(
        &mut UserPageTable::current(),
        a.raw(0),
        a.raw(1),
        a.raw(2),
        a.raw(3),
        a.raw(4),
    )
}

pub fn madvise(a: &Args) -> KResult<u64> {
    let p = current();
    let mut aspace = p.aspace.lock();
    aspace.madvise(&mut UserPageTable::current(), a.raw(0), a.raw(1), a.raw(2))?;
    Ok(0)
}

pub fn msync(a: &Args) -> KResult<u64> {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    let (addr, len) = (a.raw(0), a.raw(1));
    let flags = a.flags(2, MS_ASYNC | MS_INVALIDATE | MS_SYNC)?;
    if addr % PAGE_SIZE != 0 || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0) {
        return Err(Errno::EINVAL);
    }
    let p = current();
    let mut aspace = p.aspace.lock();
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    let mut at = addr;
    while at < end {
        match aspace.vma_at(at) {
            Some(v) => at = v.end(),
            None => return Err(Errno::ENOMEM),
        }
    }
    // MS_ASYNC writes back now too: there is no background flusher to defer it to.
    if flags & MS_INVALIDATE == 0 || flags & (MS_SYNC | MS_ASYNC) != 0 {
        aspace.sync_range(&mut UserPageTable::current(), addr, end)?;
    }
    if flags & MS_SYNC != 0 {
        sync_mapped_files(&aspace, addr, end)?;
    }
    Ok(0)
}

/// `MS_SYNC`: the files behind shared mappings in the range reach stable storage.
fn sync_mapped_files(aspace: &skiff_vm::AddressSpace, start: u64, end: u64) -> KResult<()> {
    let mut at = start;
    while at < end {
        let Some(vma) = aspace.vma_at(at) else {
            break;
        };
        if let (true, Backing::File { source, .. }) = (vma.is_shared(), vma.backing()) {
            source.sync()?;
        }
        at = vma.end();
    }
    Ok(())
}

pub fn mincore(_a: &Args) -> KResult<u64> {
    Err(Errno::ENOSYS)
}

pub fn mlock(a: &Args) -> KResult<u64> {
    use crate::nr::{MLOCK, MLOCKALL};
    // Memory is never swapped out, so mlock only has to make the range present, as
    // Linux's does. mlockall leaves pages to fault in on first touch: populating every
    // reserved mapping (runtimes reserve gigabytes) would exhaust memory, and nothing
    // can be paged out later anyway.
    let p = current();
    let mut aspace = p.aspace.lock();
    match a.nr {
        MLOCK => {
            let (addr, len) = (
                a.raw(0) & !(PAGE_SIZE - 1),
                a.raw(1) + (a.raw(0) % PAGE_SIZE),
            );
            aspace
                .check_range(addr, len, skiff_vm::Access::Read)
                .map_err(|_| Errno::ENOMEM)?;
            aspace.populate_range(&mut UserPageTable::current(), addr, len)?;
        }
        MLOCKALL if a.raw(0) == 0 || a.raw(0) & !7 != 0 => return Err(Errno::EINVAL),
        _ => {}
    }
    Ok(0)
}
