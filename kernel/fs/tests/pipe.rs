//! Pipe semantics: ordering, capacity, EOF, EPIPE, readiness.

use skiff_errno::Errno;
use skiff_fs::pipe::{PIPE_BUF, PIPE_CAPACITY};
use skiff_fs::{pipe, OpenFlags, S_IFIFO, S_IFMT};

#[test]
fn bytes_flow_in_order_and_eof_follows_the_last_writer() {
    let (r, w) = pipe(0);
    assert_eq!(w.write(b"hello ").unwrap(), 6);
    assert_eq!(w.write(b"world").unwrap(), 5);
    let mut buf = [0u8; 4];
    assert_eq!(r.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"hell");
    let mut rest = [0u8; 32];
    assert_eq!(r.read(&mut rest).unwrap(), 7);
    assert_eq!(&rest[..7], b"o world");
    assert_eq!(
        r.read(&mut rest).err(),
        Some(Errno::EAGAIN),
        "empty with a writer: would block"
    );
    assert!(!r.poll_ready().0);
    drop(w);
    assert_eq!(r.read(&mut rest).unwrap(), 0, "no writer left: end of file");
    assert!(r.poll_ready().0);
}

#[test]
fn writing_without_readers_is_epipe_and_ends_are_one_way() {
    let (r, w) = pipe(0);
    assert_eq!(r.write(b"x").err(), Some(Errno::EBADF));
    assert_eq!(w.read(&mut [0u8; 1]).err(), Some(Errno::EBADF));
    drop(r);
    assert_eq!(w.write(b"x").err(), Some(Errno::EPIPE));
}

#[test]
fn capacity_partial_writes_and_pipe_buf_atomicity() {
    let (r, w) = pipe(OpenFlags::O_NONBLOCK);
    assert_ne!(r.status_flags() & OpenFlags::O_NONBLOCK, 0);
    let big = vec![7u8; PIPE_CAPACITY + 100];
    assert_eq!(w.write(&big).unwrap(), PIPE_CAPACITY);
    assert_eq!(w.write(b"x").err(), Some(Errno::EAGAIN));
    assert!(!w.poll_ready().1);
    assert_eq!(r.buffered(), Some(PIPE_CAPACITY));
    let mut buf = vec![0u8; 10];
    r.read(&mut buf).unwrap();
    // 10 bytes free: a small write that does not fit whole must not be split.
    assert_eq!(w.write(&[1u8; PIPE_BUF]).err(), Some(Errno::EAGAIN));
    assert_eq!(w.write(&[1u8; 10]).unwrap(), 10);
    assert_eq!(r.stat().unwrap().mode & S_IFMT, S_IFIFO);
    assert_eq!(r.seek(0, 0).err(), Some(Errno::ESPIPE));
}
