//! AF_UNIX semantics, each checked against what Linux 6.x does natively: names,
//! connections and backlog, stream and message boundaries, shutdown and close,
//! `SCM_RIGHTS`/`SCM_CREDENTIALS`, options and poll masks.

mod common;

use common::{env, Env};
use skiff_errno::Errno;
use skiff_fs::epoll::{
    EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLRDNORM, EPOLLWRBAND, EPOLLWRNORM,
};
use skiff_fs::socket::*;
use skiff_fs::unix::{self, PROCESS_CREDENTIALS};
use skiff_fs::{pipe, OpenFile, OpenFlags, S_IFMT, S_IFSOCK};
use std::sync::Arc;

const IN: u32 = EPOLLIN | EPOLLRDNORM;
const OUT: u32 = EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;

fn path(p: &str) -> SockAddr {
    SockAddr::Unix(UnixAddr::Path(p.as_bytes().to_vec()))
}

fn abstract_name(n: &str) -> SockAddr {
    SockAddr::Unix(UnixAddr::Abstract(n.as_bytes().to_vec()))
}

fn sock(e: &Env, ty: u32) -> Arc<OpenFile> {
    unix::socket(&e.ctx, ty, 0, SOCK_NONBLOCK).unwrap()
}

fn s(f: &OpenFile) -> &dyn Socket {
    f.socket().expect("a socket")
}

fn send(f: &OpenFile, data: &[u8]) -> Result<usize, Errno> {
    s(f).send(data, None, 0, SendAncillary::default())
}

fn send_to(f: &OpenFile, data: &[u8], to: &SockAddr) -> Result<usize, Errno> {
    s(f).send(data, Some(to), 0, SendAncillary::default())
}

fn recv(f: &OpenFile, len: usize) -> Result<Vec<u8>, Errno> {
    recv_flags(f, len, MSG_DONTWAIT).map(|(d, _)| d)
}

fn recv_flags(f: &OpenFile, len: usize, flags: u32) -> Result<(Vec<u8>, Received), Errno> {
    let mut buf = vec![0u8; len];
    let r = s(f).recv(&mut buf, flags | MSG_DONTWAIT)?;
    buf.truncate(r.len);
    Ok((buf, r))
}

fn pair(ty: u32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    unix::socketpair(ty, 0, SOCK_NONBLOCK).unwrap()
}

/// A listener bound to `p` (stream unless `ty` says otherwise).
fn listener(e: &Env, ty: u32, p: &str, backlog: i32) -> Arc<OpenFile> {
    let l = sock(e, ty);
    s(&l).bind(&path(p)).unwrap();
    s(&l).listen(backlog).unwrap();
    l
}

fn connected(e: &Env, ty: u32, p: &str) -> (Arc<OpenFile>, Arc<OpenFile>, Arc<OpenFile>) {
    let l = listener(e, ty, p, 5);
    let c = sock(e, ty);
    s(&c).connect(&path(p)).unwrap();
    let (a, _) = s(&l).accept(SOCK_NONBLOCK).unwrap();
    (l, c, a)
}

#[test]
fn creation_checks_protocol_then_type_and_raw_is_datagram() {
    let e = env();
    assert!(
        unix::socket(&e.ctx, SOCK_STREAM, 1, 0).is_ok(),
        "PF_UNIX is fine"
    );
    assert_eq!(
        unix::socket(&e.ctx, SOCK_STREAM, 2, 0).err(),
        Some(Errno::EPROTONOSUPPORT)
    );
    assert_eq!(
        unix::socket(&e.ctx, 4, 2, 0).err(),
        Some(Errno::EPROTONOSUPPORT)
    );
    for ty in [4, 10] {
        assert_eq!(
            unix::socket(&e.ctx, ty, 0, 0).err(),
            Some(Errno::ESOCKTNOSUPPORT)
        );
    }
    assert_eq!(
        unix::socket(&e.ctx, SOCK_STREAM, 0, 1).err(),
        Some(Errno::EINVAL)
    );
    let raw = unix::socket(&e.ctx, SOCK_RAW, 0, 0).unwrap();
    assert_eq!(s(&raw).kind(), (AF_UNIX, SOCK_DGRAM, 0));
    let st = raw.stat().unwrap();
    assert_eq!(st.mode, S_IFSOCK | 0o777);
    assert_eq!(raw.path(), format!("socket:[{}]", st.ino).into_bytes());
    assert_eq!(raw.status_flags(), OpenFlags::O_RDWR);
    assert_eq!(raw.seek(0, 0), Err(Errno::ESPIPE));
}

#[test]
fn fresh_sockets_poll_like_linux() {
    let e = env();
    assert_eq!(sock(&e, SOCK_STREAM).poll_mask(), OUT | EPOLLHUP);
    assert_eq!(sock(&e, SOCK_SEQPACKET).poll_mask(), OUT | EPOLLHUP);
    assert_eq!(sock(&e, SOCK_DGRAM).poll_mask(), OUT);
    let (a, _b) = pair(SOCK_STREAM);
    assert_eq!(a.poll_mask(), OUT);
}

#[test]
fn unconnected_operations_fail_as_on_linux() {
    let e = env();
    let st = sock(&e, SOCK_STREAM);
    assert_eq!(recv(&st, 10), Err(Errno::EINVAL));
    assert_eq!(send(&st, b"x"), Err(Errno::ENOTCONN));
    assert_eq!(send_to(&st, b"x", &path("/tmp/a")), Err(Errno::EOPNOTSUPP));
    assert_eq!(s(&st).listen(5), Err(Errno::EINVAL), "unbound");
    assert_eq!(s(&st).accept(0).err(), Some(Errno::EINVAL));
    assert_eq!(s(&st).peer_addr(), Err(Errno::ENOTCONN));
    assert_eq!(s(&st).local_addr(), Ok(SockAddr::Unix(UnixAddr::Unnamed)));
    // Shutting down an unconnected stream works and shows in poll.
    s(&st).shutdown(SHUT_RD).unwrap();
    assert_eq!(st.poll_mask(), OUT | EPOLLHUP | IN | EPOLLRDHUP);
    assert_eq!(s(&st).shutdown(3), Err(Errno::EINVAL));

    let dg = sock(&e, SOCK_DGRAM);
    assert_eq!(s(&dg).listen(5), Err(Errno::EOPNOTSUPP));
    assert_eq!(s(&dg).accept(0).err(), Some(Errno::EOPNOTSUPP));
    assert_eq!(recv(&dg, 1), Err(Errno::EAGAIN));
    assert_eq!(send(&dg, b"x"), Err(Errno::ENOTCONN));

    let sq = sock(&e, SOCK_SEQPACKET);
    assert_eq!(recv(&sq, 1), Err(Errno::ENOTCONN));
    assert_eq!(send(&sq, b"x"), Err(Errno::ENOTCONN));
}

#[test]
fn binding_paths_creates_socket_nodes_with_the_umask() {
    let e = env();
    e.ctx.set_umask(0o027);
    e.ctx.chdir(b"/tmp").unwrap();
    let a = sock(&e, SOCK_STREAM);
    s(&a).bind(&path("rel")).unwrap();
    let st = e.stat("/tmp/rel").unwrap();
    assert_eq!(st.mode, S_IFSOCK | 0o750);
    assert_eq!(st.mode & S_IFMT, S_IFSOCK);
    // getsockname reports the path as given, relative or not.
    assert_eq!(s(&a).local_addr(), Ok(path("rel")));
    assert_eq!(s(&a).bind(&path("rel")), Err(Errno::EADDRINUSE));
    assert_eq!(
        s(&a).bind(&path("other")),
        Err(Errno::EINVAL),
        "already bound"
    );
    assert!(e.stat("/tmp/other").is_err(), "nothing left behind");
    let b = sock(&e, SOCK_STREAM);
    assert_eq!(s(&b).bind(&path("/tmp/rel")), Err(Errno::EADDRINUSE));
    e.create("/tmp/file", b"");
    assert_eq!(s(&b).bind(&path("/tmp/file")), Err(Errno::EADDRINUSE));
    assert_eq!(s(&b).bind(&path("/nonexistent/x")), Err(Errno::ENOENT));
    // Anything but an AF_UNIX address is EINVAL.
    for bad in [
        SockAddr::Unspec,
        SockAddr::Inet {
            addr: [0; 4],
            port: 1,
        },
    ] {
        assert_eq!(s(&b).bind(&bad), Err(Errno::EINVAL));
    }
}

#[test]
fn socketpairs_bind_paths_only_with_a_file_system_context() {
    let e = env();
    let (a, _b) = pair(SOCK_STREAM);
    assert_eq!(s(&a).bind(&path("/tmp/pairpath")), Err(Errno::EOPNOTSUPP));
    s(&a).bind(&abstract_name("pair-abstract")).unwrap();
    let (c, _d) = unix::socketpair_in(&e.ctx, SOCK_STREAM, 0, 0).unwrap();
    s(&c).bind(&path("/tmp/pairpath")).unwrap();
}

#[test]
fn abstract_names_and_autobind() {
    let e = env();
    let a = sock(&e, SOCK_DGRAM);
    s(&a).bind(&abstract_name("unix-test-abstract")).unwrap();
    let b = sock(&e, SOCK_DGRAM);
    assert_eq!(
        s(&b).bind(&abstract_name("unix-test-abstract")),
        Err(Errno::EADDRINUSE)
    );
    assert_eq!(
        s(&a).bind(&abstract_name("unix-test-abstract-2")),
        Err(Errno::EINVAL)
    );
    assert_eq!(s(&a).local_addr(), Ok(abstract_name("unix-test-abstract")));
    drop(a);
    s(&b).bind(&abstract_name("unix-test-abstract")).unwrap();

    let c = sock(&e, SOCK_DGRAM);
    s(&c).bind(&SockAddr::Unix(UnixAddr::Unnamed)).unwrap();
    let SockAddr::Unix(UnixAddr::Abstract(name)) = s(&c).local_addr().unwrap() else {
        panic!("autobind gives an abstract name");
    };
    assert_eq!(name.len(), 5);
    assert!(name.iter().all(u8::is_ascii_hexdigit));
    assert_eq!(s(&c).local_addr().unwrap().encode().len(), 8);
    // An empty bind of a bound socket keeps its name.
    s(&c).bind(&SockAddr::Unix(UnixAddr::Unnamed)).unwrap();
    assert_eq!(
        s(&c).local_addr().unwrap(),
        SockAddr::Unix(UnixAddr::Abstract(name))
    );
}

#[test]
fn connect_errors_name_what_is_wrong() {
    let e = env();
    let c = sock(&e, SOCK_STREAM);
    assert_eq!(s(&c).connect(&path("/tmp/none")), Err(Errno::ENOENT));
    e.create("/tmp/plain", b"");
    assert_eq!(s(&c).connect(&path("/tmp/plain")), Err(Errno::ECONNREFUSED));
    let bound = sock(&e, SOCK_STREAM);
    s(&bound).bind(&path("/tmp/bound")).unwrap();
    assert_eq!(s(&c).connect(&path("/tmp/bound")), Err(Errno::ECONNREFUSED));
    assert_eq!(
        s(&c).connect(&abstract_name("unix-test-nobody")),
        Err(Errno::ECONNREFUSED)
    );
    assert_eq!(
        s(&c).connect(&SockAddr::Unix(UnixAddr::Unnamed)),
        Err(Errno::EINVAL)
    );
    assert_eq!(s(&c).connect(&SockAddr::Unspec), Err(Errno::EINVAL));
    let _l = listener(&e, SOCK_STREAM, "/tmp/stream-l", 5);
    let dg = sock(&e, SOCK_DGRAM);
    assert_eq!(
        s(&dg).connect(&path("/tmp/stream-l")),
        Err(Errno::EPROTOTYPE)
    );
    assert_eq!(
        send_to(&dg, b"x", &path("/tmp/stream-l")),
        Err(Errno::EPROTOTYPE)
    );
    let sq = sock(&e, SOCK_SEQPACKET);
    assert_eq!(
        s(&sq).connect(&path("/tmp/stream-l")),
        Err(Errno::EPROTOTYPE)
    );
    // A closed listener's node remains; nobody answers there.
    let l2 = listener(&e, SOCK_STREAM, "/tmp/closed-l", 5);
    drop(l2);
    assert_eq!(
        s(&c).connect(&path("/tmp/closed-l")),
        Err(Errno::ECONNREFUSED)
    );
}

#[test]
fn backlog_admits_one_more_than_asked_then_eagain() {
    let e = env();
    let l = listener(&e, SOCK_STREAM, "/tmp/backlog", 1);
    assert_eq!(l.poll_mask(), 0, "a listener is not writable");
    assert_eq!(
        s(&l).getsockopt(SOL_SOCKET, SO_ACCEPTCONN),
        Ok(vec![1, 0, 0, 0])
    );
    let clients: Vec<_> = (0..3).map(|_| sock(&e, SOCK_STREAM)).collect();
    s(&clients[0]).connect(&path("/tmp/backlog")).unwrap();
    s(&clients[1]).connect(&path("/tmp/backlog")).unwrap();
    assert_eq!(
        s(&clients[2]).connect(&path("/tmp/backlog")),
        Err(Errno::EAGAIN)
    );
    assert_eq!(clients[2].poll_mask(), OUT | EPOLLHUP, "still unconnected");
    assert_eq!(clients[0].poll_mask(), OUT);
    assert_eq!(l.poll_mask(), IN);
    // Linux checks the backlog before the caller's own state.
    assert_eq!(
        s(&clients[0]).connect(&path("/tmp/backlog")),
        Err(Errno::EAGAIN)
    );
    assert_eq!(s(&clients[0]).listen(5), Err(Errno::EINVAL));
    let (a, peer) = s(&l).accept(0).unwrap();
    assert_eq!(peer, SockAddr::Unix(UnixAddr::Unnamed));
    assert_eq!(peer.encode().len(), 2);
    assert_eq!(
        s(&clients[0]).connect(&path("/tmp/backlog")),
        Err(Errno::EISCONN)
    );
    assert_eq!(s(&l).connect(&path("/tmp/backlog")), Err(Errno::EINVAL));
    // Names: the accepted socket has the listener's; the client sees it as its peer.
    assert_eq!(s(&a).local_addr(), Ok(path("/tmp/backlog")));
    assert_eq!(s(&a).peer_addr(), Ok(SockAddr::Unix(UnixAddr::Unnamed)));
    assert_eq!(s(&clients[0]).peer_addr(), Ok(path("/tmp/backlog")));
    assert_eq!(s(&a).listen(1), Err(Errno::EINVAL));
    assert_eq!(s(&a).accept(0).err(), Some(Errno::EINVAL));
    let (_b, _) = s(&l).accept(0).unwrap();
    assert_eq!(s(&l).accept(0).err(), Some(Errno::EAGAIN));
}

#[test]
fn accept_reports_a_bound_client_and_flags() {
    let e = env();
    let l = listener(&e, SOCK_STREAM, "/tmp/acc", 5);
    let c = sock(&e, SOCK_STREAM);
    s(&c).bind(&abstract_name("unix-test-client")).unwrap();
    s(&c).connect(&path("/tmp/acc")).unwrap();
    let (a, peer) = s(&l).accept(0).unwrap();
    assert_eq!(peer, abstract_name("unix-test-client"));
    assert_eq!(a.status_flags() & OpenFlags::O_NONBLOCK, 0);
    let c2 = sock(&e, SOCK_STREAM);
    s(&c2).connect(&path("/tmp/acc")).unwrap();
    let (a2, _) = s(&l).accept(SOCK_NONBLOCK).unwrap();
    assert_ne!(a2.status_flags() & OpenFlags::O_NONBLOCK, 0);
}

#[test]
fn stream_data_flows_with_peek_eof_and_shutdown() {
    let e = env();
    let (_l, c, a) = connected(&e, SOCK_STREAM, "/tmp/flow");
    // Data written before accept waits in the accepted socket.
    assert_eq!(send(&c, b"hello").unwrap(), 5);
    assert_eq!(a.poll_mask(), IN | OUT);
    let (d, r) = recv_flags(&a, 2, 0).unwrap();
    assert_eq!(d, b"he");
    assert_eq!(r.from, None, "an unnamed writer reports no address");
    assert_eq!(recv_flags(&a, 10, MSG_PEEK).unwrap().0, b"llo");
    assert_eq!(recv(&a, 10).unwrap(), b"llo");
    assert_eq!(recv(&a, 10), Err(Errno::EAGAIN));
    // The client's reads report the listener's name as the writer's.
    send(&a, b"back").unwrap();
    let (d, r) = recv_flags(&c, 10, 0).unwrap();
    assert_eq!(
        (d.as_slice(), r.from),
        (&b"back"[..], Some(path("/tmp/flow")))
    );
    // Writes glue together on a stream.
    send(&c, b"ab").unwrap();
    send(&c, b"cd").unwrap();
    assert_eq!(recv(&a, 10).unwrap(), b"abcd");

    s(&c).shutdown(SHUT_WR).unwrap();
    assert_eq!(a.poll_mask(), IN | EPOLLRDHUP | OUT);
    assert_eq!(c.poll_mask(), OUT);
    assert_eq!(recv(&a, 10).unwrap(), b"", "end of file");
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
    send(&a, b"still").unwrap();
    assert_eq!(recv(&c, 10).unwrap(), b"still");
    s(&a).shutdown(SHUT_RD).unwrap();
    assert_eq!(
        send(&c, b"y"),
        Err(Errno::EPIPE),
        "the peer stopped reading"
    );
}

#[test]
fn closing_with_unread_data_resets_the_peer() {
    let (a, b) = pair(SOCK_STREAM);
    send(&a, b"abc").unwrap();
    drop(b);
    assert_eq!(a.poll_mask(), IN | OUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    assert_eq!(recv(&a, 10), Err(Errno::ECONNRESET));
    assert_eq!(recv(&a, 10).unwrap(), b"");
    assert_eq!(send(&a, b"x"), Err(Errno::EPIPE));
    assert_eq!(s(&a).peer_addr(), Ok(SockAddr::Unix(UnixAddr::Unnamed)));

    // A survivor with data of its own reads it before the error (streams)...
    let (a, b) = pair(SOCK_STREAM);
    send(&a, b"unread").unwrap();
    send(&b, b"mine").unwrap();
    drop(b);
    assert_eq!(recv(&a, 10).unwrap(), b"mine");
    assert_eq!(recv(&a, 10), Err(Errno::ECONNRESET));
    assert_eq!(recv(&a, 10).unwrap(), b"");

    // ...after it (seqpacket).
    let (a, b) = pair(SOCK_SEQPACKET);
    send(&a, b"unread").unwrap();
    send(&b, b"mine").unwrap();
    drop(b);
    assert_eq!(recv(&a, 10), Err(Errno::ECONNRESET));
    assert_eq!(recv(&a, 10).unwrap(), b"mine");
    assert_eq!(recv(&a, 10).unwrap(), b"");
    assert_eq!(send(&a, b"x"), Err(Errno::EPIPE));

    // SO_ERROR takes the error.
    let (a, b) = pair(SOCK_STREAM);
    send(&a, b"unread").unwrap();
    drop(b);
    assert_eq!(
        s(&a).getsockopt(SOL_SOCKET, SO_ERROR),
        Ok(104i32.to_ne_bytes().to_vec())
    );
    assert_eq!(a.poll_mask() & EPOLLERR, 0);
    assert_eq!(recv(&a, 10).unwrap(), b"");
}

#[test]
fn a_clean_close_is_end_of_file() {
    let (a, b) = pair(SOCK_STREAM);
    send(&b, b"abc").unwrap();
    drop(b);
    assert_eq!(a.poll_mask(), IN | OUT | EPOLLRDHUP | EPOLLHUP);
    assert_eq!(recv(&a, 10).unwrap(), b"abc");
    assert_eq!(recv(&a, 10).unwrap(), b"");
}

#[test]
fn closing_a_listener_resets_its_unaccepted_connections() {
    let e = env();
    let l = listener(&e, SOCK_STREAM, "/tmp/dying", 5);
    let c = sock(&e, SOCK_STREAM);
    s(&c).connect(&path("/tmp/dying")).unwrap();
    send(&c, b"q").unwrap();
    drop(l);
    assert_eq!(c.poll_mask(), IN | OUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    assert_eq!(recv(&c, 10), Err(Errno::ECONNRESET));
    assert_eq!(recv(&c, 10).unwrap(), b"");
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
}

#[test]
fn unlinking_keeps_connections_and_the_path_can_be_reused() {
    let e = env();
    let (l, c, a) = connected(&e, SOCK_STREAM, "/tmp/reuse");
    e.unlink("/tmp/reuse").unwrap();
    send(&c, b"ok").unwrap();
    assert_eq!(recv(&a, 10).unwrap(), b"ok");
    let c2 = sock(&e, SOCK_STREAM);
    assert_eq!(s(&c2).connect(&path("/tmp/reuse")), Err(Errno::ENOENT));
    let l2 = listener(&e, SOCK_STREAM, "/tmp/reuse", 5);
    s(&c2).connect(&path("/tmp/reuse")).unwrap();
    assert!(s(&l2).accept(0).is_ok());
    assert_eq!(s(&l).accept(0).err(), Some(Errno::EAGAIN));
    // A hard link reaches the same socket.
    e.vfs
        .link(
            &e.root(),
            b"/tmp/reuse",
            &e.root(),
            b"/tmp/reuse-link",
            false,
        )
        .unwrap();
    let c3 = sock(&e, SOCK_STREAM);
    s(&c3).connect(&path("/tmp/reuse-link")).unwrap();
    assert!(s(&l2).accept(0).is_ok());
}

#[test]
fn relative_paths_resolve_against_the_working_directory_at_call_time() {
    let e = env();
    e.mkdir("/tmp/d1").unwrap();
    e.mkdir("/tmp/d2").unwrap();
    let l = sock(&e, SOCK_STREAM);
    e.ctx.chdir(b"/tmp/d1").unwrap();
    s(&l).bind(&path("s")).unwrap();
    s(&l).listen(1).unwrap();
    assert!(e.stat("/tmp/d1/s").is_ok());
    let c = sock(&e, SOCK_STREAM);
    e.ctx.chdir(b"/tmp/d2").unwrap();
    assert_eq!(s(&c).connect(&path("s")), Err(Errno::ENOENT));
    assert_eq!(s(&c).connect(&path("../d1/s")), Ok(()));
}

#[test]
fn stream_writes_are_partial_at_the_send_buffer() {
    let (a, b) = pair(SOCK_STREAM);
    let big = vec![7u8; 256 * 1024];
    // Linux takes six 36 544-byte buffers of a 256 KiB write.
    assert_eq!(send(&a, &big), Ok(219_264));
    assert_eq!(send(&a, b"x"), Err(Errno::EAGAIN));
    assert_eq!(a.poll_mask(), 0);
    assert_eq!(b.poll_mask(), IN | OUT);
    assert_eq!(s(&b).queued().0, 219_264);
    assert_eq!(s(&a).queued().1, 6 * 37_120);
    let g = a.generation();
    let mut total = 0;
    while let Ok(d) = recv(&b, 100_000) {
        if d.is_empty() {
            break;
        }
        total += d.len();
    }
    assert_eq!(total, 219_264);
    assert_eq!(a.poll_mask(), OUT);
    assert!(a.generation().output > g.output, "room is an EPOLLOUT edge");

    // 278 one-byte writes fit, as on Linux.
    let (a, _b) = pair(SOCK_STREAM);
    let n = (0..).take_while(|_| send(&a, b"x").is_ok()).count();
    assert_eq!(n, 278);
}

#[test]
fn zero_length_stream_sends_deliver_nothing() {
    let (a, b) = pair(SOCK_STREAM);
    let (r, _w) = pipe(0);
    let sent = s(&a).send(
        b"",
        None,
        0,
        SendAncillary {
            rights: vec![r],
            credentials: None,
        },
    );
    assert_eq!(sent, Ok(0));
    assert_eq!(recv(&b, 10), Err(Errno::EAGAIN));
}

#[test]
fn datagrams_keep_boundaries_truncate_and_name_their_sender() {
    let e = env();
    let a = sock(&e, SOCK_DGRAM);
    s(&a).bind(&path("/tmp/da")).unwrap();
    let b = sock(&e, SOCK_DGRAM);
    s(&b).bind(&path("/tmp/db")).unwrap();
    let anon = sock(&e, SOCK_DGRAM);
    send_to(&anon, b"hello", &path("/tmp/da")).unwrap();
    let (d, r) = recv_flags(&a, 100, 0).unwrap();
    assert_eq!((d.as_slice(), r.from), (&b"hello"[..], None));
    send_to(&b, b"hello", &path("/tmp/da")).unwrap();
    let (d, r) = recv_flags(&a, 3, 0).unwrap();
    assert_eq!(d, b"hel");
    assert_eq!((r.full_len, r.flags), (5, MSG_TRUNC));
    assert_eq!(r.from, Some(path("/tmp/db")));
    assert_eq!(recv(&a, 10), Err(Errno::EAGAIN), "the rest was dropped");
    send_to(&b, b"", &path("/tmp/da")).unwrap();
    assert_eq!(a.poll_mask(), IN | OUT);
    assert_eq!(recv(&a, 10).unwrap(), b"");
    assert_eq!(a.poll_mask(), OUT);
    // Sending to a name that is gone.
    drop(b);
    assert_eq!(
        send_to(&a, b"x", &path("/tmp/db")),
        Err(Errno::ECONNREFUSED)
    );
    assert_eq!(send_to(&a, b"x", &path("/tmp/nope")), Err(Errno::ENOENT));
    assert_eq!(
        send_to(&a, b"x", &SockAddr::Unix(UnixAddr::Unnamed)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_full_datagram_queue_holds_eleven_and_blocks_other_senders() {
    let e = env();
    let a = sock(&e, SOCK_DGRAM);
    s(&a).bind(&path("/tmp/full")).unwrap();
    let c = sock(&e, SOCK_DGRAM);
    let n = (0..)
        .take_while(|_| send_to(&c, b"x", &path("/tmp/full")).is_ok())
        .count();
    assert_eq!(n, 11);
    assert_eq!(send_to(&c, b"x", &path("/tmp/full")), Err(Errno::EAGAIN));
    assert_eq!(c.poll_mask(), OUT, "unconnected senders look writable");
    s(&c).connect(&path("/tmp/full")).unwrap();
    assert_eq!(c.poll_mask(), 0, "a connected sender waits for room");
    let g = c.generation();
    recv(&a, 1).unwrap();
    assert_eq!(c.poll_mask(), OUT);
    assert!(c.generation().output > g.output);
    // A receiver connected back to the sender takes any number.
    let (p, q) = pair(SOCK_DGRAM);
    for _ in 0..50 {
        send(&p, b"x").unwrap();
    }
    assert_eq!(q.poll_mask(), IN | OUT);
}

#[test]
fn datagram_sizes_are_limited_by_the_send_buffer() {
    for ty in [SOCK_DGRAM, SOCK_SEQPACKET] {
        let (a, _b) = pair(ty);
        assert_eq!(send(&a, &vec![0; 212_960]), Ok(212_960));
        assert_eq!(send(&a, &vec![0; 212_961]), Err(Errno::EMSGSIZE));
        let (a, _b) = pair(ty);
        let n = (0..).take_while(|_| send(&a, &[0; 4096]).is_ok()).count();
        assert_eq!(n, 26);
        assert_eq!(a.poll_mask(), 0);
    }
}

#[test]
fn datagram_connect_filters_senders_and_notices_the_peer_closing() {
    let e = env();
    let a = sock(&e, SOCK_DGRAM);
    s(&a).bind(&path("/tmp/fa")).unwrap();
    let b = sock(&e, SOCK_DGRAM);
    s(&b).bind(&path("/tmp/fb")).unwrap();
    let c = sock(&e, SOCK_DGRAM);
    s(&a).connect(&path("/tmp/fb")).unwrap();
    assert_eq!(send_to(&c, b"x", &path("/tmp/fa")), Err(Errno::EPERM));
    assert_eq!(s(&c).connect(&path("/tmp/fa")), Err(Errno::EPERM));
    assert_eq!(send_to(&b, b"x", &path("/tmp/fa")), Ok(1));
    assert_eq!(send(&a, b"to-b"), Ok(4));
    assert_eq!(recv(&b, 10).unwrap(), b"to-b");
    assert_eq!(s(&a).peer_addr(), Ok(path("/tmp/fb")));
    assert_eq!(s(&b).peer_addr(), Err(Errno::ENOTCONN));
    drop(b);
    assert_eq!(send(&a, b"x"), Err(Errno::ECONNREFUSED));
    assert_eq!(send(&a, b"x"), Err(Errno::ENOTCONN));
    assert_eq!(
        recv(&a, 10),
        Err(Errno::EAGAIN),
        "queue dropped on disconnect"
    );
    assert_eq!(s(&a).connect(&path("/tmp/fb")), Err(Errno::ECONNREFUSED));
}

#[test]
fn dissolving_a_datagram_association_resets_a_peer_that_was_connected_back() {
    let (p, q) = pair(SOCK_DGRAM);
    send(&q, b"1").unwrap();
    send(&p, b"2").unwrap();
    s(&p).connect(&SockAddr::Unspec).unwrap();
    assert_eq!(recv(&p, 10), Err(Errno::EAGAIN), "purged");
    assert_eq!(q.poll_mask(), IN | OUT | EPOLLERR);
    assert_eq!(recv(&q, 10), Err(Errno::ECONNRESET));
    assert_eq!(recv(&q, 10).unwrap(), b"2");
    assert_eq!(send(&p, b"x"), Err(Errno::ENOTCONN));
    // q is still connected to p and may send to it.
    assert_eq!(send(&q, b"3"), Ok(1));
    assert_eq!(recv(&p, 10).unwrap(), b"3");
}

#[test]
fn datagram_sockets_may_talk_to_themselves() {
    let e = env();
    let p = sock(&e, SOCK_DGRAM);
    s(&p).bind(&SockAddr::Unix(UnixAddr::Unnamed)).unwrap();
    let me = s(&p).local_addr().unwrap();
    s(&p).connect(&me).unwrap();
    send(&p, b"self").unwrap();
    let (d, r) = recv_flags(&p, 10, 0).unwrap();
    assert_eq!((d.as_slice(), r.from), (&b"self"[..], Some(me)));
}

#[test]
fn datagram_shutdown_and_closed_pairs() {
    let (a, b) = pair(SOCK_DGRAM);
    s(&a).shutdown(SHUT_WR).unwrap();
    assert_eq!(a.poll_mask(), OUT);
    assert_eq!(send(&a, b"x"), Err(Errno::EPIPE));
    send(&b, b"x").unwrap();
    assert_eq!(recv(&a, 1).unwrap(), b"x");
    s(&a).shutdown(SHUT_RD).unwrap();
    assert_eq!(a.poll_mask(), IN | OUT | EPOLLRDHUP | EPOLLHUP);
    assert_eq!(recv(&a, 1), Err(Errno::EAGAIN));
    let mut buf = [0u8; 1];
    assert_eq!(
        s(&a).recv(&mut buf, 0).map(|r| r.len),
        Ok(0),
        "a waiting caller gets 0"
    );
    assert_eq!(send(&b, b"x"), Err(Errno::EPIPE));

    let (a, b) = pair(SOCK_DGRAM);
    drop(b);
    assert_eq!(a.poll_mask(), OUT);
    assert_eq!(recv(&a, 1), Err(Errno::EAGAIN));
    assert_eq!(send(&a, b"x"), Err(Errno::ECONNREFUSED));
    assert_eq!(send(&a, b"x"), Err(Errno::ENOTCONN));
}

#[test]
fn seqpacket_keeps_records_and_ends_with_eof() {
    let e = env();
    let (a, b) = pair(SOCK_SEQPACKET);
    assert_eq!(a.poll_mask(), OUT);
    send(&a, b"abcdef").unwrap();
    send(&a, b"gh").unwrap();
    let (d, r) = recv_flags(&b, 4, 0).unwrap();
    assert_eq!(
        (d.as_slice(), r.flags, r.full_len),
        (&b"abcd"[..], MSG_TRUNC, 6)
    );
    assert_eq!(recv(&b, 10).unwrap(), b"gh");
    send(&a, b"").unwrap();
    assert_eq!(recv(&b, 10).unwrap(), b"");
    assert_eq!(recv(&b, 10), Err(Errno::EAGAIN));
    // An address is ignored.
    assert_eq!(send_to(&a, b"zz", &path("/tmp/anything")), Ok(2));
    assert_eq!(recv_flags(&b, 10, 0).unwrap().1.from, None);
    s(&a).shutdown(SHUT_WR).unwrap();
    assert_eq!(b.poll_mask(), IN | OUT | EPOLLRDHUP);
    assert_eq!(recv(&b, 10).unwrap(), b"");
    assert_eq!(send(&a, b"x"), Err(Errno::EPIPE));
    drop(a);
    assert_eq!(b.poll_mask(), IN | OUT | EPOLLRDHUP | EPOLLHUP);
    assert_eq!(send(&b, b"x"), Err(Errno::EPIPE));

    // Listening seqpacket sockets with a zero backlog take one connection.
    let l = listener(&e, SOCK_SEQPACKET, "/tmp/seq", 0);
    assert_eq!(l.poll_mask(), 0);
    let c = sock(&e, SOCK_SEQPACKET);
    s(&c).connect(&path("/tmp/seq")).unwrap();
    assert_eq!(l.poll_mask(), IN);
    let c2 = sock(&e, SOCK_SEQPACKET);
    assert_eq!(s(&c2).connect(&path("/tmp/seq")), Err(Errno::EAGAIN));
    send(&c, b"pre").unwrap();
    let (srv, _) = s(&l).accept(0).unwrap();
    assert_eq!(recv(&srv, 10).unwrap(), b"pre");
    assert_eq!(s(&c).accept(0).err(), Some(Errno::EINVAL));
}

fn with_rights(files: Vec<Arc<OpenFile>>) -> SendAncillary {
    SendAncillary {
        rights: files,
        credentials: None,
    }
}

#[test]
fn rights_travel_with_stream_data_and_end_a_read() {
    let (a, b) = pair(SOCK_STREAM);
    let (r, w) = pipe(0);
    s(&a)
        .send(b"A", None, 0, with_rights(vec![r.clone()]))
        .unwrap();
    send(&a, b"BC").unwrap();
    s(&a)
        .send(b"D", None, 0, with_rights(vec![w.clone()]))
        .unwrap();
    send(&a, b"EF").unwrap();
    let (d, got) = recv_flags(&b, 10, MSG_PEEK).unwrap();
    assert_eq!((d.as_slice(), got.rights.len()), (&b"A"[..], 1));
    let (d, got) = recv_flags(&b, 10, 0).unwrap();
    assert_eq!(d, b"A");
    assert!(Arc::ptr_eq(&got.rights[0], &r));
    let (d, got) = recv_flags(&b, 10, 0).unwrap();
    assert_eq!(d, b"BCD", "data before descriptors is glued to them");
    assert!(Arc::ptr_eq(&got.rights[0], &w));
    let (d, got) = recv_flags(&b, 10, 0).unwrap();
    assert_eq!((d.as_slice(), got.rights.len()), (&b"EF"[..], 0));
    // The descriptors come with the first byte read of their message.
    s(&a)
        .send(b"IJ", None, 0, with_rights(vec![r.clone()]))
        .unwrap();
    let (d, got) = recv_flags(&b, 1, 0).unwrap();
    assert_eq!((d.as_slice(), got.rights.len()), (&b"I"[..], 1));
    let (d, got) = recv_flags(&b, 1, 0).unwrap();
    assert_eq!((d.as_slice(), got.rights.len()), (&b"J"[..], 0));
    // Too many descriptors.
    let many = vec![r.clone(); 254];
    assert_eq!(
        s(&a).send(b"x", None, 0, with_rights(many)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn files_in_flight_stay_open_and_datagram_peeks_duplicate_them() {
    let (a, b) = pair(SOCK_DGRAM);
    let (r, w) = pipe(0);
    s(&a).send(b"w", None, 0, with_rights(vec![w])).unwrap();
    assert_eq!(r.poll_mask() & EPOLLHUP, 0, "the write end is in flight");
    let (_, peeked) = recv_flags(&b, 10, MSG_PEEK).unwrap();
    assert_eq!(peeked.rights.len(), 1);
    drop(peeked);
    let (_, got) = recv_flags(&b, 10, 0).unwrap();
    let w = got.rights.into_iter().next().unwrap();
    w.write(b"ok").unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(r.read(&mut buf), Ok(2));
    drop(w);
    assert_ne!(
        r.poll_mask() & EPOLLHUP,
        0,
        "closed once received and dropped"
    );
    // Zero-length datagrams carry descriptors; a closed receiver drops them.
    let (r2, w2) = pipe(0);
    s(&a).send(b"", None, 0, with_rights(vec![w2])).unwrap();
    drop(b);
    assert_ne!(r2.poll_mask() & EPOLLHUP, 0);
}

#[test]
fn a_socket_can_travel_over_itself_and_still_close_its_peer() {
    let (a, b) = pair(SOCK_STREAM);
    s(&a)
        .send(b"self", None, 0, with_rights(vec![a.clone()]))
        .unwrap();
    let (_, got) = recv_flags(&b, 10, 0).unwrap();
    assert_eq!(got.rights.len(), 1);
    drop(got);
    drop(a);
    assert_ne!(b.poll_mask() & EPOLLHUP, 0);
}

fn passcred(f: &OpenFile) {
    s(f).options().update(|o| o.passcred = true);
}

#[test]
fn credentials_follow_so_passcred() {
    let (a, b) = pair(SOCK_DGRAM);
    send(&a, b"n").unwrap();
    passcred(&b);
    let (_, r) = recv_flags(&b, 10, 0).unwrap();
    assert_eq!(
        r.credentials,
        Some(Ucred {
            pid: 0,
            uid: 65534,
            gid: 65534
        }),
        "sent before anyone asked"
    );
    send(&a, b"c").unwrap();
    assert_eq!(
        recv_flags(&b, 10, 0).unwrap().1.credentials,
        Some(PROCESS_CREDENTIALS)
    );
    let explicit = Ucred {
        pid: 1,
        uid: 5,
        gid: 0,
    };
    let with = |c| SendAncillary {
        rights: vec![],
        credentials: Some(c),
    };
    s(&a).send(b"e", None, 0, with(explicit)).unwrap();
    assert_eq!(recv_flags(&b, 10, 0).unwrap().1.credentials, Some(explicit));
    assert_eq!(
        s(&a).send(
            b"e",
            None,
            0,
            with(Ucred {
                pid: 99,
                ..explicit
            })
        ),
        Err(Errno::ESRCH)
    );
    // Without SO_PASSCRED on the receiver nothing is reported.
    send(&b, b"x").unwrap();
    assert_eq!(recv_flags(&a, 10, 0).unwrap().1.credentials, None);
}

#[test]
fn passcred_autobinds_senders_and_stops_gluing_different_writers() {
    let e = env();
    let a = sock(&e, SOCK_DGRAM);
    passcred(&a);
    let b = sock(&e, SOCK_DGRAM);
    s(&b).bind(&path("/tmp/pc")).unwrap();
    send_to(&a, b"z", &path("/tmp/pc")).unwrap();
    let name = s(&a).local_addr().unwrap();
    assert_eq!(name.encode().len(), 8);
    assert_eq!(recv_flags(&b, 10, 0).unwrap().1.from, Some(name));

    let (x, y) = pair(SOCK_STREAM);
    passcred(&y);
    send(&x, b"ab").unwrap();
    send(&x, b"cd").unwrap();
    let (d, r) = recv_flags(&y, 10, 0).unwrap();
    assert_eq!(d, b"abcd");
    assert_eq!(r.credentials, Some(PROCESS_CREDENTIALS));
    let odd = SendAncillary {
        rights: vec![],
        credentials: Some(Ucred {
            pid: 1,
            uid: 7,
            gid: 7,
        }),
    };
    send(&x, b"ef").unwrap();
    s(&x).send(b"gh", None, 0, odd).unwrap();
    assert_eq!(recv(&y, 10).unwrap(), b"ef");
    assert_eq!(recv(&y, 10).unwrap(), b"gh");
}

fn int_opt(f: &OpenFile, name: i32) -> i32 {
    let v = s(f).getsockopt(SOL_SOCKET, name).unwrap();
    i32::from_ne_bytes(v[..4].try_into().unwrap())
}

#[test]
fn options_follow_linux() {
    let e = env();
    let (a, _b) = pair(SOCK_STREAM);
    assert_eq!(int_opt(&a, SO_SNDBUF), 212_992);
    assert_eq!(int_opt(&a, SO_RCVBUF), 212_992);
    let set = |name, v: i32| s(&a).setsockopt(SOL_SOCKET, name, &v.to_ne_bytes());
    set(SO_SNDBUF, 65536).unwrap();
    assert_eq!(int_opt(&a, SO_SNDBUF), 131_072);
    set(SO_SNDBUF, 1).unwrap();
    assert_eq!(int_opt(&a, SO_SNDBUF), 4608);
    set(SO_RCVBUF, 1).unwrap();
    assert_eq!(int_opt(&a, SO_RCVBUF), 2304);
    set(SO_SNDBUF, -5).unwrap();
    assert_eq!(int_opt(&a, SO_SNDBUF), 425_984, "capped at wmem_max");
    set(SO_SNDBUFFORCE, 1 << 20).unwrap();
    assert_eq!(int_opt(&a, SO_SNDBUF), 2 << 20);
    assert_eq!(
        s(&a).setsockopt(SOL_SOCKET, SO_SNDBUF, &[1, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(int_opt(&a, SO_TYPE), SOCK_STREAM as i32);
    assert_eq!(int_opt(&a, SO_DOMAIN), 1);
    assert_eq!(int_opt(&a, SO_PROTOCOL), 0);
    assert_eq!(int_opt(&a, SO_ERROR), 0);
    assert_eq!(int_opt(&a, SO_ACCEPTCONN), 0);
    assert_eq!(int_opt(&a, SO_PASSCRED), 0);
    assert_eq!(
        s(&a).getsockopt(SOL_SOCKET, SO_PEERCRED),
        Ok(PROCESS_CREDENTIALS.to_bytes().to_vec())
    );
    let lone = sock(&e, SOCK_STREAM);
    let unset = Ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    assert_eq!(
        s(&lone).getsockopt(SOL_SOCKET, SO_PEERCRED),
        Ok(unset.to_bytes().to_vec())
    );
    assert_eq!(
        s(&a).getsockopt(SOL_SOCKET, SO_PEERSEC),
        Err(Errno::ENOPROTOOPT)
    );
    assert_eq!(s(&a).getsockopt(SOL_SOCKET, 9999), Err(Errno::ENOPROTOOPT));
    assert_eq!(
        s(&a).setsockopt(SOL_SOCKET, 9999, &[0; 4]),
        Err(Errno::ENOPROTOOPT)
    );
    assert_eq!(s(&a).getsockopt(SOL_TCP, 1), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        s(&a).setsockopt(SOL_TCP, 1, &[0; 4]),
        Err(Errno::EOPNOTSUPP)
    );
    // A smaller send buffer holds fewer buffers.
    let (x, _y) = pair(SOCK_DGRAM);
    s(&x)
        .setsockopt(SOL_SOCKET, SO_SNDBUF, &4096i32.to_ne_bytes())
        .unwrap();
    let n = (0..).take_while(|_| send(&x, b"x").is_ok()).count();
    assert_eq!(n, 11, "8192 bytes of 768-byte buffers");
    assert_eq!(send(&x, &[0; 8161]), Err(Errno::EMSGSIZE));
}

#[test]
fn ioctl_reports_queued_bytes() {
    let e = env();
    let (l, c, a) = connected(&e, SOCK_STREAM, "/tmp/ioctl");
    let value = |f: &OpenFile, cmd| match f.ioctl(cmd, &[]).unwrap() {
        skiff_fs::IoctlOut::CopyOut(v) => i32::from_ne_bytes(v[..4].try_into().unwrap()),
        other => panic!("{other:?}"),
    };
    send(&c, b"abc").unwrap();
    send(&c, b"de").unwrap();
    assert_eq!(value(&a, skiff_fs::device::FIONREAD), 5);
    assert_eq!(value(&c, unix::SIOCOUTQ), 1536);
    assert_eq!(l.ioctl(skiff_fs::device::FIONREAD, &[]), Err(Errno::EINVAL));
    let (d, dd) = pair(SOCK_DGRAM);
    send(&d, b"abc").unwrap();
    send(&d, b"de").unwrap();
    assert_eq!(value(&dd, skiff_fs::device::FIONREAD), 3);
    assert_eq!(a.ioctl(0x5401, &[]), Err(Errno::ENOTTY));
}

#[test]
fn read_and_write_are_recv_and_send() {
    let (a, b) = pair(SOCK_STREAM);
    assert_eq!(a.write(b"via write"), Ok(9));
    let mut buf = [0u8; 20];
    assert_eq!(b.read(&mut buf), Ok(9));
    assert_eq!(b.read(&mut buf), Err(Errno::EAGAIN));
    drop(a);
    assert_eq!(b.read(&mut buf), Ok(0));
    assert_eq!(b.write(b"x"), Err(Errno::EPIPE));
}

#[test]
fn edges_stamp_arrivals_and_hangups() {
    let (a, b) = pair(SOCK_STREAM);
    let g0 = b.generation();
    send(&a, b"x").unwrap();
    let g1 = b.generation();
    assert!(g1.input > g0.input);
    send(&a, b"y").unwrap();
    assert!(b.generation().input > g1.input, "every write is an edge");
    s(&a).shutdown(SHUT_WR).unwrap();
    assert!(b.generation().hangup > g1.hangup);
    let e = env();
    let l = listener(&e, SOCK_STREAM, "/tmp/edges", 5);
    let g = l.generation();
    let c = sock(&e, SOCK_STREAM);
    s(&c).connect(&path("/tmp/edges")).unwrap();
    assert!(
        l.generation().input > g.input,
        "a connection is an input edge"
    );
}
