mod common;
use common::*;
use skiff_fs::*;
use std::sync::Arc;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn shared_types_are_send_and_sync() {
    assert_send_sync::<Vfs>();
    assert_send_sync::<OpenFile>();
    assert_send_sync::<FsContext>();
    assert_send_sync::<Location>();
    assert_send_sync::<TmpFs>();
    assert_send_sync::<ProcFs>();
}

#[test]
fn concurrent_appends_and_namespace_changes() {
    let e = env();
    let log = e
        .open(
            "/tmp/log",
            OpenFlags::O_CREAT | OpenFlags::O_WRONLY | OpenFlags::O_APPEND,
        )
        .unwrap();
    e.mkdir("/tmp/a").unwrap();
    e.mkdir("/tmp/b").unwrap();
    e.mkdir("/tmp/x").unwrap();
    e.mkdir("/tmp/y").unwrap();
    e.create("/tmp/x/in-x", b"");
    let vfs = e.vfs.clone();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            let vfs = vfs.clone();
            std::thread::spawn(move || {
                let root = vfs.root();
                for i in 0..200 {
                    log.write(&[b'a' + t as u8; 10]).unwrap();
                    let name = format!("/tmp/a/t{t}-{i}");
                    let f = vfs
                        .open(
                            &root,
                            name.as_bytes(),
                            OpenFlags(OpenFlags::O_CREAT | OpenFlags::O_RDWR),
                            0o644,
                        )
                        .unwrap();
                    f.write(b"x").unwrap();
                    let moved = format!("/tmp/b/t{t}-{i}");
                    vfs.rename(&root, name.as_bytes(), &root, moved.as_bytes(), 0)
                        .unwrap();
                    if i % 2 == 0 {
                        vfs.unlink(&root, moved.as_bytes(), false).unwrap();
                    }
                    // Meanwhile swap two other directories back and forth.
                    vfs.rename(&root, b"/tmp/x", &root, b"/tmp/y", RENAME_EXCHANGE)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let data = e.read_all("/tmp/log").unwrap();
    assert_eq!(data.len(), 4 * 200 * 10);
    // Every 10-byte record is whole: appends never interleave.
    for chunk in data.chunks(10) {
        assert!(chunk.iter().all(|&b| b == chunk[0]));
    }
    let count = |p: &str| list_dir(&e.open(p, OpenFlags::O_RDONLY).unwrap()).len() - 2;
    assert_eq!(count("/tmp/a"), 0);
    assert_eq!(count("/tmp/b"), 4 * 100);
    // 800 exchanges: an even number, so x is back in place.
    assert!(e.stat("/tmp/x/in-x").is_ok());
    assert_eq!(e.stat("/tmp").unwrap().nlink, 6);
    let _ = Arc::strong_count(&log);
}
