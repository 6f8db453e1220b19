//! File locks through real open files: which descriptions conflict, and what closing a
//! descriptor or dropping a description releases.

mod common;
use common::*;
use skiff_errno::Errno;
use skiff_fs::lock::{
    self, Flock, RecordFamily, F_RDLCK, F_UNLCK, F_WRLCK, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN,
};
use skiff_fs::*;

const RW: u32 = OpenFlags::O_RDWR;

fn range(l_type: i16, start: i64, len: i64) -> Flock {
    Flock {
        l_type,
        l_whence: 0,
        l_start: start,
        l_len: len,
        l_pid: 0,
    }
}

#[test]
fn flock_belongs_to_the_description() {
    let e = env();
    e.create("/tmp/f", b"data");
    let a = e.open("/tmp/f", RW).unwrap();
    let b = e.open("/tmp/f", OpenFlags::O_RDONLY).unwrap();
    assert_eq!(lock::flock(&a, LOCK_EX | LOCK_NB), Ok(()));
    assert_eq!(lock::flock(&b, LOCK_SH | LOCK_NB), Err(Errno::EAGAIN));
    assert!(!lock::flock_free(&b, LOCK_SH));
    // Another file is not affected.
    let other = e.create("/tmp/g", b"");
    assert_eq!(lock::flock(&other, LOCK_EX), Ok(()));
    // The description going away releases its lock.
    drop(a);
    assert!(lock::flock_free(&b, LOCK_EX));
    assert_eq!(lock::flock(&b, LOCK_EX), Ok(()));
    assert_eq!(lock::flock(&b, LOCK_UN), Ok(()));
    assert_eq!(lock::flock(&b, 0), Err(Errno::EINVAL));
    assert_eq!(lock::flock(&b, LOCK_SH | LOCK_EX), Err(Errno::EINVAL));
    let path = e.open("/tmp/f", OpenFlags::O_PATH).unwrap();
    assert_eq!(lock::flock(&path, LOCK_EX), Err(Errno::EBADF));
}

#[test]
fn ofd_locks_conflict_between_descriptions_and_report_the_holder() {
    let e = env();
    e.create("/tmp/f", &[b'x'; 100]);
    let a = e.open("/tmp/f", RW).unwrap();
    let b = e.open("/tmp/f", RW).unwrap();
    let ofd = RecordFamily::Ofd;
    lock::set_record_lock(&a, ofd, &range(F_WRLCK, 0, 10)).unwrap();
    assert_eq!(
        lock::set_record_lock(&b, ofd, &range(F_RDLCK, 5, 10)),
        Err(Errno::EAGAIN)
    );
    let mut query = range(F_RDLCK, 0, 0);
    lock::get_record_lock(&b, ofd, &mut query, 42).unwrap();
    assert_eq!(
        query,
        Flock {
            l_type: F_WRLCK,
            l_whence: 0,
            l_start: 0,
            l_len: 10,
            l_pid: -1
        }
    );
    // Its own lock does not conflict.
    let mut query = range(F_WRLCK, 0, 10);
    lock::get_record_lock(&a, ofd, &mut query, 42).unwrap();
    assert_eq!(query.l_type, F_UNLCK);
    assert_eq!(
        lock::set_record_lock(
            &b,
            ofd,
            &Flock {
                l_pid: 1,
                ..range(F_RDLCK, 20, 1)
            }
        ),
        Err(Errno::EINVAL)
    );
    let ro = e.open("/tmp/f", OpenFlags::O_RDONLY).unwrap();
    assert_eq!(
        lock::set_record_lock(&ro, ofd, &range(F_WRLCK, 50, 1)),
        Err(Errno::EBADF)
    );
    drop(a);
    assert!(lock::record_lock_free(&b, ofd, &range(F_WRLCK, 0, 0)));
    lock::set_record_lock(&b, ofd, &range(F_WRLCK, 0, 0)).unwrap();
}

#[test]
fn posix_locks_belong_to_the_process_and_go_at_any_close() {
    let e = env();
    e.create("/tmp/f", &[b'x'; 100]);
    let fds = &e.ctx.fds;
    let fd_a = fds
        .lock()
        .insert(e.open("/tmp/f", RW).unwrap(), false)
        .unwrap();
    let a = fds.lock().get(fd_a).unwrap();
    let b = e.open("/tmp/f", RW).unwrap();
    let posix = RecordFamily::Posix;
    lock::set_record_lock(&a, posix, &range(F_WRLCK, 0, 10)).unwrap();
    // The same process never conflicts with itself...
    lock::set_record_lock(&b, posix, &range(F_WRLCK, 0, 10)).unwrap();
    let mut query = range(F_WRLCK, 0, 10);
    lock::get_record_lock(&b, posix, &mut query, 42).unwrap();
    assert_eq!(query.l_type, F_UNLCK);
    // ...but an OFD lock does, and sees the process's pid.
    let mut query = range(F_WRLCK, 3, 1);
    lock::get_record_lock(&b, RecordFamily::Ofd, &mut query, 42).unwrap();
    assert_eq!((query.l_type, query.l_pid), (F_WRLCK, 42));
    let mut unlock = range(F_UNLCK, 0, 1);
    assert_eq!(
        lock::get_record_lock(&b, posix, &mut unlock, 42),
        Err(Errno::EINVAL)
    );
    // Closing another descriptor of the file drops the process's locks.
    let fd_c = fds
        .lock()
        .insert(e.open("/tmp/f", RW).unwrap(), false)
        .unwrap();
    drop(fds.lock().close(fd_c).unwrap());
    assert!(lock::record_lock_free(
        &b,
        RecordFamily::Ofd,
        &range(F_WRLCK, 0, 0)
    ));
    drop(a);
    drop(fds.lock().close(fd_a).unwrap());
}
