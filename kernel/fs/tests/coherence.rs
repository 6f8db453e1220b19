//! Descriptor I/O on a file with shared mappings tells the mappings what changed
//! (`skiff_fs::coherence`): reads flush first, writes and size changes are reported
//! with their offsets, and files nobody maps are left alone.

mod common;
use common::*;
use skiff_errno::KResult;
use skiff_fs::coherence::{self, HeldMappings, SharedMappings};
use skiff_fs::*;
use std::sync::{Arc, Mutex};

/// What the fake mappings were told, for the one mapped file.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Flush(u64, u64),
    Written(u64, Vec<u8>),
    Resized(u64, u64),
}

struct FakeMappings {
    mapped: Mutex<Option<usize>>,
    events: Arc<Mutex<Vec<Event>>>,
}

struct Held(Arc<Mutex<Vec<Event>>>);

impl HeldMappings for Held {
    fn flush(&mut self, offset: u64, len: u64) -> KResult<()> {
        self.0.lock().unwrap().push(Event::Flush(offset, len));
        Ok(())
    }
    fn written(&mut self, offset: u64, data: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push(Event::Written(offset, data.to_vec()));
    }
    fn resized(&mut self, old: u64, new: u64) {
        self.0.lock().unwrap().push(Event::Resized(old, new));
    }
}

impl SharedMappings for FakeMappings {
    fn hold(&self, inode: &Arc<dyn Inode>) -> Option<Box<dyn HeldMappings>> {
        let mapped = *self.mapped.lock().unwrap();
        (mapped == Some(coherence::inode_key(inode)))
            .then(|| Box::new(Held(self.events.clone())) as Box<dyn HeldMappings>)
    }
}

#[test]
fn descriptor_io_on_a_mapped_file_reaches_its_mappings() {
    let fake: &'static FakeMappings = Box::leak(Box::new(FakeMappings {
        mapped: Mutex::new(None),
        events: Arc::new(Mutex::new(Vec::new())),
    }));
    coherence::install(fake);
    let take = || std::mem::take(&mut *fake.events.lock().unwrap());
    let e = env();
    let f = e.create("/tmp/mapped", b"0123456789");
    let other = e.create("/tmp/other", b"abc");
    *fake.mapped.lock().unwrap() = Some(coherence::inode_key(f.inode().unwrap()));

    let mut buf = [0u8; 4];
    assert_eq!(f.pread(&mut buf, 2).unwrap(), 4);
    assert_eq!(take(), [Event::Flush(2, 4)]);
    f.seek(8, SEEK_SET).unwrap();
    assert_eq!(f.read(&mut buf).unwrap(), 2);
    assert_eq!(take(), [Event::Flush(8, 4)]);

    f.pwrite(b"xy", 3).unwrap();
    assert_eq!(take(), [Event::Written(3, b"xy".to_vec())]);
    // A write past the end reports the gap it leaves (zeros in the file) first.
    f.pwrite(b"far", 20).unwrap();
    assert_eq!(
        take(),
        [Event::Resized(10, 20), Event::Written(20, b"far".to_vec())]
    );
    let appender = e
        .open("/tmp/mapped", OpenFlags::O_WRONLY | OpenFlags::O_APPEND)
        .unwrap();
    appender.write(b"end").unwrap();
    assert_eq!(take(), [Event::Written(23, b"end".to_vec())]);

    f.truncate(5).unwrap();
    assert_eq!(take(), [Event::Resized(26, 5)]);
    e.vfs.truncate(&e.root(), b"/tmp/mapped", 7).unwrap();
    assert_eq!(take(), [Event::Resized(5, 7)]);
    e.open("/tmp/mapped", OpenFlags::O_WRONLY | OpenFlags::O_TRUNC)
        .unwrap();
    assert_eq!(take(), [Event::Resized(7, 0)]);

    // A file nobody maps is not reported.
    other.pwrite(b"q", 0).unwrap();
    other.pread(&mut buf, 0).unwrap();
    other.truncate(1).unwrap();
    assert_eq!(take(), []);
}
