//! TCP over loopback and over the wire.

use super::*;

#[test]
fn loopback_connect_accept_echo() {
    let s = lo_stack();
    let l = listener(&s, addr(LO, 8080), 16);
    assert_eq!(mask(&l), 0);
    assert_eq!(get_int(&l, SOL_SOCKET, SO_ACCEPTCONN), Ok(1));
    let c = tcp(&s);
    // Over loopback the handshake completes inside connect, which still answers
    // EINPROGRESS first, as Linux's does; the next connect reports the success once.
    assert_eq!(sock(&c).connect(&addr(LO, 8080)), Err(Errno::EINPROGRESS));
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM);
    assert_eq!(sock(&c).connect(&addr(LO, 8080)), Ok(()));
    assert_eq!(sock(&c).connect(&addr(LO, 8080)), Err(Errno::EISCONN));
    assert_eq!(mask(&l), EPOLLIN | EPOLLRDNORM);
    let (srv, peer) = sock(&l).accept(SOCK_NONBLOCK).unwrap();
    assert_eq!(sock(&l).accept(0).err(), Some(Errno::EAGAIN));
    let SockAddr::Inet { addr: pa, port: pp } = peer else {
        panic!("not inet")
    };
    assert_eq!(pa, LO);
    assert_eq!(sock(&c).local_addr().unwrap(), addr(LO, pp));
    assert_eq!(sock(&c).peer_addr().unwrap(), addr(LO, 8080));
    assert_eq!(sock(&srv).local_addr().unwrap(), addr(LO, 8080));
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM);
    assert_eq!(send(&c, b"ping"), Ok(4));
    // The data is there before send returned.
    assert_eq!(mask(&srv), EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM);
    assert_eq!(recv(&srv, 100).unwrap(), b"ping");
    assert_eq!(recv(&srv, 100), Err(Errno::EAGAIN));
    assert_eq!(send(&srv, b"pong"), Ok(4));
    assert_eq!(recv(&c, 100).unwrap(), b"pong");
    // read/write through the file interface too.
    assert_eq!(srv.write(b"via write"), Ok(9));
    let mut buf = [0u8; 32];
    assert_eq!(c.read(&mut buf), Ok(9));
    assert_eq!(&buf[..9], b"via write");
}

#[test]
fn wire_connect_is_nonblocking_linux_style() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 80), 16);
    let c = tcp(&net.a);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EINPROGRESS));
    assert_eq!(mask(&c), 0, "SYN-SENT reports nothing");
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EALREADY));
    assert_eq!(send(&c, b"x"), Err(Errno::EAGAIN));
    assert_eq!(recv(&c, 1), Err(Errno::EAGAIN));
    assert_eq!(sock(&c).peer_addr(), Err(Errno::ENOTCONN));
    net.settle();
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Ok(()));
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EISCONN));
    let (srv, peer) = sock(&l).accept(0).unwrap();
    assert_eq!(sock(&c).local_addr().unwrap(), peer);
    assert_eq!(sock(&srv).local_addr().unwrap(), addr(B, 80));
    assert_eq!(sock(&c).local_addr().unwrap(), {
        let SockAddr::Inet { port, .. } = peer else {
            panic!()
        };
        addr(A, port)
    });
    // A megabyte each way, taking what fits.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    let mut rounds = 0;
    while got.len() < data.len() {
        if sent < data.len() {
            match send(&c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => {}
                Err(e) => panic!("send: {e:?}"),
            }
        }
        net.settle();
        got.extend(drain(&srv));
        advance_ms(1);
        rounds += 1;
        assert!(rounds < 100_000, "transfer stalled at {}", got.len());
    }
    assert_eq!(got, data);
}

#[test]
fn refused_ports_report_econnrefused() {
    // Loopback: refused before connect returns, yet connect says EINPROGRESS and
    // leaves the error to poll, SO_ERROR and the next connect, as Linux does.
    let s = lo_stack();
    let c = tcp(&s);
    assert_eq!(sock(&c).connect(&addr(LO, 9)), Err(Errno::EINPROGRESS));
    assert_eq!(
        mask(&c),
        EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(sock(&c).connect(&addr(LO, 9)), Err(Errno::ECONNREFUSED));
    // The socket is usable again.
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM | EPOLLHUP);
    let _l = listener(&s, addr(LO, 9), 1);
    assert_eq!(connect_now(&c, addr(LO, 9)), Ok(()));

    // Over the wire: in progress, then an error through poll and connect.
    let net = Net::new();
    let c = tcp(&net.a);
    assert_eq!(sock(&c).connect(&addr(B, 9)), Err(Errno::EINPROGRESS));
    net.settle();
    assert_eq!(
        mask(&c),
        EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(sock(&c).connect(&addr(B, 9)), Err(Errno::ECONNREFUSED));
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM | EPOLLHUP);
    // SO_ERROR takes the error instead; connect then says ECONNABORTED.
    let c = tcp(&net.a);
    assert_eq!(sock(&c).connect(&addr(B, 9)), Err(Errno::EINPROGRESS));
    net.settle();
    assert_eq!(get_int(&c, SOL_SOCKET, SO_ERROR), Ok(111));
    assert_eq!(get_int(&c, SOL_SOCKET, SO_ERROR), Ok(0));
    assert_eq!(sock(&c).connect(&addr(B, 9)), Err(Errno::ECONNABORTED));
    assert_eq!(sock(&c).connect(&addr(B, 9)), Err(Errno::EINPROGRESS));
}

#[test]
fn reset_reports_econnreset_once_then_eof_and_epipe() {
    let s = lo_stack();
    let (c, srv) = lo_pair(&s, 7000);
    sock(&srv)
        .setsockopt(SOL_SOCKET, SO_LINGER, &[1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    drop(srv);
    assert_eq!(
        mask(&c),
        EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(recv(&c, 10), Err(Errno::ECONNRESET));
    assert_eq!(recv(&c, 10), Ok(vec![]));
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
    assert_eq!(
        mask(&c),
        EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(sock(&c).peer_addr(), Err(Errno::ENOTCONN));

    // Sending first gets the reset, then EPIPE.
    let (c, srv) = lo_pair(&s, 7001);
    sock(&srv)
        .setsockopt(SOL_SOCKET, SO_LINGER, &[1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    drop(srv);
    assert_eq!(send(&c, b"x"), Err(Errno::ECONNRESET));
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
    assert_eq!(recv(&c, 10), Ok(vec![]));
}

#[test]
fn a_reset_after_the_peers_fin_reports_epipe() {
    // Linux's tcp_reset: in CLOSE-WAIT the error is EPIPE, not ECONNRESET.
    let s = lo_stack();
    let (c, srv) = lo_pair(&s, 7003);
    drop(srv);
    assert_eq!(recv(&c, 10), Ok(vec![]));
    assert_eq!(send(&c, b"x"), Ok(1), "the first write is accepted");
    assert_ne!(mask(&c) & EPOLLERR, 0, "the closed peer answered with RST");
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
    assert_eq!(mask(&c) & EPOLLERR, 0);
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
}

#[test]
fn closing_with_unread_data_resets_the_peer() {
    let s = lo_stack();
    let (c, srv) = lo_pair(&s, 7002);
    send(&c, b"never read").unwrap();
    drop(srv);
    assert_eq!(recv(&c, 10), Err(Errno::ECONNRESET));
}

#[test]
fn half_close_gives_eof_while_the_other_way_stays_open() {
    let net = Net::new();
    let l = listener(&net.b, addr(B, 5000), 4);
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 5000));
    net.settle();
    let (srv, _) = sock(&l).accept(SOCK_NONBLOCK).unwrap();
    send(&c, b"request").unwrap();
    sock(&c).shutdown(SHUT_WR).unwrap();
    assert_eq!(send(&c, b"more"), Err(Errno::EPIPE));
    net.settle();
    assert_eq!(
        mask(&srv),
        EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(recv(&srv, 100).unwrap(), b"request");
    assert_eq!(recv(&srv, 100), Ok(vec![]), "EOF after the data");
    assert_eq!(recv(&srv, 100), Ok(vec![]), "and it stays EOF");
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM);
    send(&srv, b"response").unwrap();
    net.settle();
    assert_eq!(mask(&c), EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM);
    sock(&srv).shutdown(SHUT_WR).unwrap();
    // In CLOSE-WAIT the FIN follows the acknowledgement of "response", which the peer
    // delays (see `tcp.rs`).
    net.run_ms(50);
    assert_eq!(
        mask(&srv),
        EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(
        mask(&c),
        EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    assert_eq!(recv(&c, 100).unwrap(), b"response");
    assert_eq!(recv(&c, 100), Ok(vec![]));
    // SHUT_RD: reads end at once, data that arrives later is still delivered (Linux).
    let c2 = tcp(&net.a);
    let _ = sock(&c2).connect(&addr(B, 5000));
    net.settle();
    let (srv2, _) = sock(&l).accept(0).unwrap();
    sock(&c2).shutdown(SHUT_RD).unwrap();
    assert_eq!(recv(&c2, 10), Ok(vec![]));
    send(&srv2, b"zz").unwrap();
    net.settle();
    assert_eq!(recv(&c2, 10).unwrap(), b"zz");
}

#[test]
fn full_backlog_drops_syns_until_an_accept_makes_room() {
    let net = Net::new();
    // Backlog 1: Linux queues backlog + 1 = 2 connections.
    let l = listener(&net.b, addr(ANY, 81), 1);
    let clients: Vec<_> = (0..4).map(|_| tcp(&net.a)).collect();
    for c in &clients {
        assert_eq!(sock(c).connect(&addr(B, 81)), Err(Errno::EINPROGRESS));
    }
    net.run_ms(200);
    let connected = |cs: &[Arc<OpenFile>]| cs.iter().filter(|c| mask(c) & EPOLLOUT != 0).count();
    assert_eq!(connected(&clients), 2);
    // The others are still trying: no RST came back.
    for c in clients.iter().filter(|c| mask(c) & EPOLLOUT == 0) {
        assert_eq!(mask(c), 0);
        assert_eq!(sock(c).connect(&addr(B, 81)), Err(Errno::EALREADY));
    }
    let (_a1, _) = sock(&l).accept(0).unwrap();
    // The retransmitted SYN (after ~1 s) now finds room.
    net.run_ms(1500);
    assert_eq!(connected(&clients), 3);
    let (_a2, _) = sock(&l).accept(0).unwrap();
    let (_a3, _) = sock(&l).accept(0).unwrap();
    assert_eq!(sock(&l).accept(0).err(), Some(Errno::EAGAIN));
    net.run_ms(3000);
    assert_eq!(connected(&clients), 4);
}

#[test]
fn loopback_backlog_full_leaves_connect_in_progress() {
    let s = lo_stack();
    let l = listener(&s, addr(LO, 82), 0);
    let c1 = tcp(&s);
    assert_eq!(connect_now(&c1, addr(LO, 82)), Ok(()));
    let c2 = tcp(&s);
    assert_eq!(sock(&c2).connect(&addr(LO, 82)), Err(Errno::EINPROGRESS));
    let _ = sock(&l).accept(0).unwrap();
    run_lo(&s, 1500);
    assert_eq!(sock(&c2).connect(&addr(LO, 82)), Ok(()));
}

#[test]
fn listener_close_resets_queued_connections() {
    let s = lo_stack();
    let l = listener(&s, addr(LO, 83), 8);
    let c = tcp(&s);
    connect_now(&c, addr(LO, 83)).unwrap();
    drop(l);
    assert_eq!(recv(&c, 10), Err(Errno::ECONNRESET));
    // The port is free again.
    let _l = listener(&s, addr(LO, 83), 8);
}

#[test]
fn graceful_close_delivers_queued_data_and_frees_everything() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 84), 4);
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 84));
    net.settle();
    let (srv, _) = sock(&l).accept(0).unwrap();
    let data = vec![7u8; 20_000];
    assert_eq!(send(&srv, &data), Ok(20_000));
    drop(srv);
    let mut got = Vec::new();
    for _ in 0..100 {
        net.run_ms(20);
        got.extend(drain(&c));
    }
    assert_eq!(got.len(), 20_000);
    assert_eq!(recv(&c, 10), Ok(vec![]));
    drop(c);
    drop(l);
    net.run_ms(20_000);
    for s in [&net.a, &net.b] {
        s.inspect(|i| {
            assert!(i.conns.is_empty(), "connections left: {}", i.conns.len());
            assert!(i.conn_index.is_empty());
        });
    }
}

#[test]
fn nonblocking_connect_times_out_after_linux_syn_retries() {
    let net = Net::new();
    *net.nic_a.cut.lock().unwrap() = true;
    let c = tcp(&net.a);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EINPROGRESS));
    net.run_ms(126_000);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EALREADY));
    net.run_ms(2_000);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::ETIMEDOUT));
    // TCP_SYNCNT shortens it.
    let c = tcp(&net.a);
    set_int(&c, SOL_TCP, TCP_SYNCNT, 1).unwrap();
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EINPROGRESS));
    net.run_ms(3_100);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::ETIMEDOUT));
}

#[test]
fn unroutable_and_foreign_addresses() {
    let net = Net::new();
    let c = tcp(&net.a);
    // No gateway: off-subnet destinations are unreachable.
    assert_eq!(
        sock(&c).connect(&addr([8, 8, 8, 8], 53)),
        Err(Errno::ENETUNREACH)
    );
    assert_eq!(
        sock(&c).bind(&addr([1, 2, 3, 4], 0)),
        Err(Errno::EADDRNOTAVAIL)
    );
    let s = lo_stack();
    let c = tcp(&s);
    assert_eq!(
        sock(&c).connect(&addr([10, 0, 2, 2], 53)),
        Err(Errno::ENETUNREACH)
    );
    // Connecting to INADDR_ANY reaches this host, as on Linux.
    let _l = listener(&s, addr(ANY, 85), 1);
    assert_eq!(connect_now(&c, addr(ANY, 85)), Ok(()));
    assert_eq!(sock(&c).peer_addr().unwrap(), addr(LO, 85));
}

#[test]
fn own_address_stays_on_loopback() {
    let net = Net::new();
    let l = listener(&net.a, addr(ANY, 86), 4);
    let c = tcp(&net.a);
    let before = net.nic_a.sent.lock().unwrap().len();
    assert_eq!(connect_now(&c, addr(A, 86)), Ok(()));
    let (srv, _) = sock(&l).accept(0).unwrap();
    send(&c, b"hi").unwrap();
    assert_eq!(recv(&srv, 10).unwrap(), b"hi");
    assert_eq!(
        net.nic_a.sent.lock().unwrap().len(),
        before,
        "nothing went to the card"
    );
    assert_eq!(sock(&srv).local_addr().unwrap(), addr(A, 86));
}

#[test]
fn bind_rules() {
    let s = lo_stack();
    let a = tcp(&s);
    sock(&a).bind(&addr(LO, 6000)).unwrap();
    assert_eq!(sock(&a).bind(&addr(LO, 6001)), Err(Errno::EINVAL));
    let b = tcp(&s);
    assert_eq!(sock(&b).bind(&addr(ANY, 6000)), Err(Errno::EADDRINUSE));
    // UDP has its own ports.
    let u = udp(&s);
    assert_eq!(sock(&u).bind(&addr(LO, 6000)), Ok(()));
    // Port 0 picks an ephemeral port.
    let e = tcp(&s);
    sock(&e).bind(&addr(LO, 0)).unwrap();
    let SockAddr::Inet { port, .. } = sock(&e).local_addr().unwrap() else {
        panic!()
    };
    assert!((32768..=60999).contains(&port));
    // listen and connect bind implicitly.
    let l = tcp(&s);
    sock(&l).listen(1).unwrap();
    let SockAddr::Inet { addr: la, port: lp } = sock(&l).local_addr().unwrap() else {
        panic!()
    };
    assert_eq!(la, ANY);
    assert!((32768..=60999).contains(&lp));
    // Both SO_REUSEADDR: bind is fine, the second listen is not.
    let r1 = tcp(&s);
    let r2 = tcp(&s);
    for r in [&r1, &r2] {
        set_int(r, SOL_SOCKET, SO_REUSEADDR, 1).unwrap();
        sock(r).bind(&addr(ANY, 6100)).unwrap();
    }
    sock(&r1).listen(1).unwrap();
    assert_eq!(sock(&r2).listen(1), Err(Errno::EADDRINUSE));
    // Address in use until the socket goes.
    drop(a);
    assert_eq!(sock(&b).bind(&addr(ANY, 6000)), Ok(()));
}

#[test]
fn reuseaddr_lets_a_server_restart_while_connections_linger() {
    let s = lo_stack();
    let l = tcp(&s);
    set_int(&l, SOL_SOCKET, SO_REUSEADDR, 1).unwrap();
    sock(&l).bind(&addr(LO, 6200)).unwrap();
    sock(&l).listen(4).unwrap();
    let c = tcp(&s);
    connect_now(&c, addr(LO, 6200)).unwrap();
    let (srv, _) = sock(&l).accept(0).unwrap();
    // The server closes first: its side lingers in TIME-WAIT.
    drop(srv);
    drop(c);
    drop(l);
    s.inspect(|i| assert!(!i.conns.is_empty(), "the server side lingers"));
    let plain = tcp(&s);
    assert_eq!(sock(&plain).bind(&addr(LO, 6200)), Err(Errno::EADDRINUSE));
    let again = tcp(&s);
    set_int(&again, SOL_SOCKET, SO_REUSEADDR, 1).unwrap();
    assert_eq!(sock(&again).bind(&addr(LO, 6200)), Ok(()));
    sock(&again).listen(4).unwrap();
    // Once TIME-WAIT is over, the port is free for anyone.
    drop(again);
    run_lo(&s, 61_000);
    s.inspect(|i| assert!(i.conns.is_empty()));
    assert_eq!(sock(&plain).bind(&addr(LO, 6200)), Ok(()));
}

#[test]
fn reuseport_spreads_connections_over_listeners() {
    let net = Net::new();
    let ls: Vec<_> = (0..2)
        .map(|_| {
            let l = tcp(&net.b);
            set_int(&l, SOL_SOCKET, SO_REUSEPORT, 1).unwrap();
            sock(&l).bind(&addr(ANY, 6300)).unwrap();
            sock(&l).listen(64).unwrap();
            l
        })
        .collect();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let c = tcp(&net.a);
            let _ = sock(&c).connect(&addr(B, 6300));
            c
        })
        .collect();
    net.settle();
    let counts: Vec<usize> = ls
        .iter()
        .map(|l| std::iter::from_fn(|| sock(l).accept(0).ok()).count())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 20);
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    drop(clients);
}

#[test]
fn poll_masks_follow_tcp_poll() {
    let s = lo_stack();
    let fresh = tcp(&s);
    assert_eq!(mask(&fresh), EPOLLOUT | EPOLLWRNORM | EPOLLHUP);
    sock(&fresh).bind(&addr(LO, 6400)).unwrap();
    assert_eq!(mask(&fresh), EPOLLOUT | EPOLLWRNORM | EPOLLHUP);
    sock(&fresh).listen(4).unwrap();
    assert_eq!(mask(&fresh), 0);
    let c = tcp(&s);
    connect_now(&c, addr(LO, 6400)).unwrap();
    assert_eq!(mask(&fresh), EPOLLIN | EPOLLRDNORM);
    let (srv, _) = sock(&fresh).accept(0).unwrap();
    assert_eq!(mask(&fresh), 0);
    assert_eq!(mask(&srv), EPOLLOUT | EPOLLWRNORM);
    // A full send buffer takes EPOLLOUT away, and draining gives it back.
    let mut sent = 0;
    while let Ok(n) = send(&c, &[1u8; 8192]) {
        sent += n;
    }
    assert!(sent > 0);
    assert_eq!(mask(&c) & EPOLLOUT, 0);
    drain(&srv);
    assert_ne!(mask(&c) & EPOLLOUT, 0);
    // Shutting down a listener with SHUT_RD stops it.
    sock(&fresh).shutdown(SHUT_RDWR).unwrap();
    assert_eq!(mask(&fresh), EPOLLOUT | EPOLLWRNORM | EPOLLHUP);
    assert_eq!(sock(&fresh).accept(0).err(), Some(Errno::EINVAL));
}

#[test]
fn unconnected_operations_fail_as_linux() {
    let s = lo_stack();
    let t = tcp(&s);
    assert_eq!(recv(&t, 1), Err(Errno::ENOTCONN));
    assert_eq!(send(&t, b"x"), Err(Errno::EPIPE));
    assert_eq!(sock(&t).accept(0).err(), Some(Errno::EINVAL));
    assert_eq!(sock(&t).peer_addr(), Err(Errno::ENOTCONN));
    assert_eq!(sock(&t).local_addr(), Ok(addr(ANY, 0)));
    assert_eq!(sock(&t).shutdown(SHUT_WR), Err(Errno::ENOTCONN));
    let l = listener(&s, addr(LO, 6500), 1);
    assert_eq!(recv(&l, 1), Err(Errno::ENOTCONN));
    assert_eq!(send(&l, b"x"), Err(Errno::EPIPE));
    assert_eq!(sock(&l).connect(&addr(LO, 6500)), Err(Errno::EISCONN));
    assert_eq!(sock(&l).listen(8), Ok(()));
    let (c, _srv) = lo_pair(&s, 6501);
    assert_eq!(sock(&c).listen(1), Err(Errno::EINVAL));
    assert_eq!(sock(&c).bind(&addr(LO, 0)), Err(Errno::EINVAL));
    let mut buf = [0u8; 4];
    assert_eq!(
        sock(&c).recv(&mut buf, MSG_OOB).err(),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        sock(&c).send(b"x", None, MSG_OOB, SendAncillary::default()),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        sock(&c).bind(&SockAddr::Inet6 {
            addr: [0; 16],
            port: 1,
            flowinfo: 0,
            scope_id: 0
        }),
        Err(Errno::EAFNOSUPPORT)
    );
}

#[test]
fn peek_trunc_and_queue_sizes() {
    let s = lo_stack();
    let (c, srv) = lo_pair(&s, 6600);
    send(&c, b"hello world").unwrap();
    assert_eq!(sock(&srv).queued(), (11, 0));
    let (d, r) = recv_flags(&srv, 5, MSG_PEEK).unwrap();
    assert_eq!((d.as_slice(), r.len), (&b"hello"[..], 5));
    let (_, r) = recv_flags(&srv, 6, MSG_TRUNC).unwrap();
    assert_eq!(r.len, 6, "MSG_TRUNC on a stream discards");
    assert_eq!(recv(&srv, 100).unwrap(), b"world");
    let io = srv.ioctl(skiff_fs::device::FIONREAD, &[]).unwrap();
    assert_eq!(io, skiff_fs::IoctlOut::CopyOut(0i32.to_ne_bytes().to_vec()));
    assert_eq!(
        sock(&c).queued().1,
        0,
        "loopback data is acknowledged at once"
    );
}

#[test]
fn generation_stamps_every_arrival() {
    let s = lo_stack();
    let (c, srv) = lo_pair(&s, 6700);
    let g0 = srv.generation();
    send(&c, b"a").unwrap();
    let g1 = srv.generation();
    assert!(g1.input > g0.input);
    // Still readable, a second arrival is a new edge.
    send(&c, b"b").unwrap();
    let g2 = srv.generation();
    assert!(g2.input > g1.input);
    sock(&c).shutdown(SHUT_WR).unwrap();
    assert!(srv.generation().hangup > g2.hangup);
}

#[test]
fn options_with_effect_and_hints() {
    let s = lo_stack();
    let t = tcp(&s);
    assert_eq!(get_int(&t, SOL_SOCKET, SO_RCVBUF), Ok(2 * 64 * 1024));
    set_int(&t, SOL_SOCKET, SO_RCVBUF, 100_000).unwrap();
    assert_eq!(get_int(&t, SOL_SOCKET, SO_RCVBUF), Ok(200_000));
    set_int(&t, SOL_SOCKET, SO_SNDBUF, 1).unwrap();
    assert_eq!(get_int(&t, SOL_SOCKET, SO_SNDBUF), Ok(4608));
    assert_eq!(get_int(&t, SOL_TCP, TCP_KEEPIDLE), Ok(7200));
    assert_eq!(get_int(&t, SOL_TCP, TCP_KEEPINTVL), Ok(75));
    assert_eq!(get_int(&t, SOL_TCP, TCP_KEEPCNT), Ok(9));
    assert_eq!(set_int(&t, SOL_TCP, TCP_KEEPIDLE, 0), Err(Errno::EINVAL));
    assert_eq!(set_int(&t, SOL_TCP, TCP_KEEPCNT, 128), Err(Errno::EINVAL));
    assert_eq!(
        set_int(&t, SOL_TCP, TCP_USER_TIMEOUT, -1),
        Err(Errno::EINVAL)
    );
    set_int(&t, SOL_TCP, TCP_NODELAY, 5).unwrap();
    assert_eq!(get_int(&t, SOL_TCP, TCP_NODELAY), Ok(1));
    set_int(&t, SOL_TCP, TCP_DEFER_ACCEPT, 5).unwrap();
    assert_eq!(get_int(&t, SOL_TCP, TCP_DEFER_ACCEPT), Ok(7));
    assert_eq!(get_int(&t, SOL_TCP, TCP_MAXSEG), Ok(536));
    assert_eq!(set_int(&t, SOL_TCP, TCP_MAXSEG, 50), Err(Errno::EINVAL));
    assert_eq!(get_int(&t, SOL_TCP, TCP_QUICKACK), Ok(1));
    assert_eq!(get_int(&t, SOL_TCP, TCP_LINGER2), Ok(60));
    assert_eq!(get_int(&t, SOL_TCP, TCP_INFO), Err(Errno::ENOPROTOOPT));
    assert_eq!(get_int(&t, SOL_TCP, 99), Err(Errno::ENOPROTOOPT));
    assert_eq!(set_int(&t, SOL_TCP, 99, 1), Err(Errno::ENOPROTOOPT));
    assert_eq!(
        sock(&t).setsockopt(SOL_TCP, TCP_NODELAY, &[1, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(get_int(&t, SOL_IP, IP_TTL), Ok(64));
    assert_eq!(set_int(&t, SOL_IP, IP_TTL, 0), Err(Errno::EINVAL));
    assert_eq!(set_int(&t, SOL_IP, IP_TTL, 256), Err(Errno::EINVAL));
    set_int(&t, SOL_IP, IP_TTL, 5).unwrap();
    assert_eq!(get_int(&t, SOL_IP, IP_TTL), Ok(5));
    set_int(&t, SOL_IP, IP_TTL, -1).unwrap();
    assert_eq!(get_int(&t, SOL_IP, IP_TTL), Ok(64));
    set_int(&t, SOL_IP, IP_TOS, 0xff).unwrap();
    assert_eq!(get_int(&t, SOL_IP, IP_TOS), Ok(0xfc));
    assert_eq!(get_int(&t, SOL_IP, IP_MTU_DISCOVER), Ok(1));
    assert_eq!(get_int(&t, SOL_SOCKET, SO_ACCEPTCONN), Ok(0));
    let u = udp(&s);
    assert_eq!(get_int(&u, SOL_SOCKET, SO_RCVBUF), Ok(212_992));
    // Levels a socket does not have: Linux's ip_getsockopt and ip_setsockopt differ.
    assert_eq!(get_int(&u, SOL_TCP, TCP_NODELAY), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        set_int(&u, SOL_TCP, TCP_NODELAY, 1),
        Err(Errno::ENOPROTOOPT)
    );
    assert_eq!(get_int(&t, 12345, 1), Err(Errno::EOPNOTSUPP));
    assert_eq!(set_int(&t, 12345, 1, 1), Err(Errno::ENOPROTOOPT));
    set_int(&u, SOL_IP, IP_TOS, 0xff).unwrap();
    assert_eq!(get_int(&u, SOL_IP, IP_TOS), Ok(0xff));
}

#[test]
fn ttl_reaches_the_wire() {
    let net = Net::new();
    let _l = listener(&net.b, addr(ANY, 90), 4);
    let c = tcp(&net.a);
    set_int(&c, SOL_IP, IP_TTL, 7).unwrap();
    let _ = sock(&c).connect(&addr(B, 90));
    net.settle();
    let sent = net.nic_a.sent.lock().unwrap().clone();
    let syn = sent
        .iter()
        .find(|f| f[12..14] == [8, 0] && f[14 + 9] == 6)
        .expect("a TCP segment went out");
    assert_eq!(syn[14 + 8], 7, "IPv4 TTL of the SYN");
}

#[test]
fn keepalive_detects_a_dead_peer() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 91), 4);
    let c = tcp(&net.a);
    set_int(&c, SOL_SOCKET, SO_KEEPALIVE, 1).unwrap();
    set_int(&c, SOL_TCP, TCP_KEEPIDLE, 10).unwrap();
    set_int(&c, SOL_TCP, TCP_KEEPINTVL, 2).unwrap();
    set_int(&c, SOL_TCP, TCP_KEEPCNT, 3).unwrap();
    let _ = sock(&c).connect(&addr(B, 91));
    net.settle();
    let _srv = sock(&l).accept(0).unwrap();
    // A live peer answers the probes: still connected long after the idle time.
    net.run_ms(60_000);
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM);
    let probes = net.nic_a.sent.lock().unwrap().len();
    assert!(probes > 5, "probes were sent ({probes} frames)");
    // The peer vanishes: idle 10 s + 3 probes 2 s apart after the last reply.
    *net.nic_b.cut.lock().unwrap() = true;
    net.run_ms(5_000);
    assert_eq!(recv(&c, 1), Err(Errno::EAGAIN));
    net.run_ms(12_000);
    assert_eq!(recv(&c, 1), Err(Errno::ETIMEDOUT));
}

#[test]
fn user_timeout_gives_up_on_unacknowledged_data() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 92), 4);
    let c = tcp(&net.a);
    set_int(&c, SOL_TCP, TCP_USER_TIMEOUT, 5000).unwrap();
    let _ = sock(&c).connect(&addr(B, 92));
    net.settle();
    let _srv = sock(&l).accept(0).unwrap();
    *net.nic_b.cut.lock().unwrap() = true;
    *net.nic_a.cut.lock().unwrap() = true;
    send(&c, b"into the void").unwrap();
    net.run_ms(4_000);
    assert_eq!(mask(&c) & EPOLLERR, 0);
    net.run_ms(2_000);
    assert_ne!(mask(&c) & EPOLLERR, 0);
    assert_eq!(send(&c, b"x"), Err(Errno::ETIMEDOUT));
    assert_eq!(send(&c, b"x"), Err(Errno::EPIPE));
}

#[test]
fn full_transmit_ring_only_delays() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 93), 4);
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 93));
    net.settle();
    let (srv, _) = sock(&l).accept(0).unwrap();
    *net.nic_a.tx_room.lock().unwrap() = 0;
    assert_eq!(send(&c, &[3u8; 5000]), Ok(5000));
    net.run_ms(50);
    assert!(drain(&srv).is_empty());
    // The ring empties (as after a transmit interrupt): the data follows.
    *net.nic_a.tx_room.lock().unwrap() = usize::MAX;
    net.run_ms(2_000);
    assert_eq!(drain(&srv).len(), 5000);
}

#[test]
fn malformed_frames_never_panic() {
    let net = Net::new();
    let _l = listener(&net.b, addr(ANY, 94), 4);
    let u = udp(&net.b);
    sock(&u).bind(&addr(ANY, 94)).unwrap();
    // Real frames cut short and bit-flipped, and noise.
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 94));
    send_to(&udp(&net.a), b"payload", addr(B, 94)).unwrap();
    let frames = net.nic_a.sent.lock().unwrap().clone();
    let mut seed = 0x9e37_79b9u32;
    let mut rand = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for f in &frames {
        for cut in 0..f.len() {
            net.nic_b.inject(f[..cut].to_vec());
        }
        for _ in 0..200 {
            let mut g = f.clone();
            let at = rand() as usize % g.len();
            g[at] ^= 1 << (rand() % 8);
            net.nic_b.inject(g);
        }
    }
    for _ in 0..500 {
        let len = rand() as usize % 1600;
        net.nic_b.inject((0..len).map(|_| rand() as u8).collect());
    }
    net.settle();
}

#[test]
fn listening_ports_are_reported_once() {
    let net = Net::new();
    let _l = listener(&net.b, addr(ANY, 8000), 1);
    let _m = listener(&net.b, addr(B, 8001), 1);
    let _n = listener(&net.b, addr(LO, 8002), 1);
    let u = udp(&net.b);
    sock(&u).bind(&addr(ANY, 5353)).unwrap();
    let got = net.b.take_listening();
    use skiff_bootproto::{Listening, Transport};
    assert_eq!(
        got,
        vec![
            Listening {
                transport: Transport::Tcp,
                port: 8000
            },
            Listening {
                transport: Transport::Tcp,
                port: 8001
            },
            Listening {
                transport: Transport::Udp,
                port: 5353
            },
        ]
    );
    assert!(net.b.take_listening().is_empty());
}

#[test]
fn a_socket_operation_that_arms_an_earlier_timer_kicks() {
    let net = Net::new();
    let before = kicks();
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 95));
    // The SYN's retransmission timer is earlier than anything poll returned.
    assert!(kicks() > before);
}

#[test]
fn buffer_sizes_bound_what_a_connection_holds() {
    let s = lo_stack();
    let l = tcp(&s);
    // The listener's receive buffer passes to accepted connections.
    set_int(&l, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    sock(&l).bind(&addr(LO, 6800)).unwrap();
    sock(&l).listen(4).unwrap();
    let c = tcp(&s);
    set_int(&c, SOL_SOCKET, SO_SNDBUF, 3000).unwrap();
    connect_now(&c, addr(LO, 6800)).unwrap();
    let (srv, _) = sock(&l).accept(0).unwrap();
    assert_eq!(get_int(&srv, SOL_SOCKET, SO_RCVBUF), Ok(8192));
    let mut taken = 0;
    while let Ok(n) = send(&c, &[5u8; 1000]) {
        taken += n;
    }
    // 3000 bytes of send buffer plus 4096 of the peer's receive buffer.
    assert_eq!(taken, 3000 + 4096);
    // Reading opens the window and the rest follows at once over loopback.
    assert_eq!(drain(&srv).len(), 3000 + 4096);
}

#[test]
fn nodelay_turns_nagle_off() {
    // Count the data segments A puts on the wire for two small writes in a row.
    fn segments_for_two_writes(nodelay: bool) -> usize {
        let net = Net::new();
        let l = listener(&net.b, addr(ANY, 96), 4);
        let c = tcp(&net.a);
        set_int(&c, SOL_TCP, TCP_NODELAY, nodelay as i32).unwrap();
        let _ = sock(&c).connect(&addr(B, 96));
        net.settle();
        let _srv = sock(&l).accept(0).unwrap();
        net.run_ms(100);
        let before = net.nic_a.sent.lock().unwrap().len();
        send(&c, b"a").unwrap();
        send(&c, b"b").unwrap();
        let sent = net.nic_a.sent.lock().unwrap()[before..].to_vec();
        sent.iter()
            .filter(|f| f[12..14] == [8, 0] && f[14 + 9] == 6)
            .filter(|f| {
                let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
                let tcp_off = usize::from(f[14 + 20 + 12] >> 4) * 4;
                ip_len > 20 + tcp_off
            })
            .count()
    }
    assert_eq!(
        segments_for_two_writes(false),
        1,
        "Nagle holds the second byte"
    );
    assert_eq!(segments_for_two_writes(true), 2);
}

#[test]
fn sockets_stat_as_sockets_with_their_own_inodes() {
    let s = lo_stack();
    let (a, b) = (tcp(&s), udp(&s));
    let (sa, sb) = (a.stat().unwrap(), b.stat().unwrap());
    assert_eq!(sa.mode & skiff_fs::S_IFMT, skiff_fs::S_IFSOCK);
    assert_ne!(sa.ino, sb.ino);
}

#[test]
fn a_queued_connection_reset_before_accept_is_still_accepted() {
    let s = lo_stack();
    let l = listener(&s, addr(LO, 6900), 4);
    let c = tcp(&s);
    connect_now(&c, addr(LO, 6900)).unwrap();
    sock(&c)
        .setsockopt(SOL_SOCKET, SO_LINGER, &[1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    drop(c);
    assert_eq!(mask(&l), EPOLLIN | EPOLLRDNORM);
    let (srv, _) = sock(&l).accept(0).unwrap();
    assert_eq!(recv(&srv, 10), Err(Errno::ECONNRESET));
    assert_eq!(
        mask(&srv),
        EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDHUP
    );
    drop(srv);
    drop(l);
    s.inspect(|i| assert!(i.conns.is_empty()));
}

#[test]
fn shutdown_of_a_connect_in_progress_abandons_it() {
    let net = Net::new();
    *net.nic_a.cut.lock().unwrap() = true;
    let c = tcp(&net.a);
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EINPROGRESS));
    assert_eq!(sock(&c).shutdown(SHUT_WR), Ok(()));
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM | EPOLLHUP | EPOLLERR);
    assert_eq!(get_int(&c, SOL_SOCKET, SO_ERROR), Ok(104));
    assert_eq!(sock(&c).connect(&addr(B, 80)), Err(Errno::EINPROGRESS));
}

#[test]
fn keepalive_does_not_spin_while_data_waits_for_a_dead_peer() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 97), 4);
    let c = tcp(&net.a);
    set_int(&c, SOL_SOCKET, SO_KEEPALIVE, 1).unwrap();
    set_int(&c, SOL_TCP, TCP_KEEPIDLE, 1).unwrap();
    let _ = sock(&c).connect(&addr(B, 97));
    net.settle();
    let _srv = sock(&l).accept(0).unwrap();
    *net.nic_b.cut.lock().unwrap() = true;
    *net.nic_a.cut.lock().unwrap() = true;
    send(&c, b"pending").unwrap();
    // Every deadline poll returns lies in the future: time moves on without spinning.
    let mut polls = 0;
    let end = now() + 30_000_000_000;
    while now() < end {
        let next = net.a.poll().expect("retransmission keeps a timer");
        assert!(next > now() || polls < 3, "poll asked to run again at once");
        set_now(next.max(now() + 1));
        polls += 1;
        assert!(polls < 10_000, "{polls} polls in 30 s");
    }
}

#[test]
fn acknowledged_data_stamps_an_output_edge() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 98), 4);
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 98));
    net.settle();
    let (srv, _) = sock(&l).accept(0).unwrap();
    while send(&c, &[0u8; 4096]).is_ok() {}
    let g = c.generation();
    assert_eq!(mask(&c) & EPOLLOUT, 0);
    drain(&srv);
    net.run_ms(50);
    assert_ne!(mask(&c) & EPOLLOUT, 0);
    assert!(c.generation().output > g.output);
}

#[test]
fn orphans_in_fin_wait_2_give_up_after_linger2() {
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 99), 4);
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 99));
    net.settle();
    // The server never closes its end.
    let _srv = sock(&l).accept(0).unwrap();
    drop(c);
    net.run_ms(1_000);
    net.a
        .inspect(|i| assert_eq!(i.conns.len(), 1, "FIN-WAIT-2 in the background"));
    net.run_ms(60_000);
    net.a.inspect(|i| assert!(i.conns.is_empty()));
}

/// A copy of `template` (a data segment A sent to B) carrying `data` and FIN at the
/// sequence number after the template's data, with fresh lengths and checksums.
fn data_and_fin_after(template: &[u8], data: &[u8]) -> Vec<u8> {
    use smoltcp::wire::{IpAddress as Ip, Ipv4Packet, TcpPacket};
    let ip = Ipv4Packet::new_checked(&template[14..]).unwrap();
    let (src, dst) = (Ip::Ipv4(ip.src_addr()), Ip::Ipv4(ip.dst_addr()));
    let ihl = usize::from(ip.header_len());
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    let thl = usize::from(tcp.header_len());
    let next = tcp.seq_number() + tcp.payload().len();
    let mut f = template[..14 + ihl + thl].to_vec();
    f.extend_from_slice(data);
    let mut i = Ipv4Packet::new_unchecked(&mut f[14..]);
    i.set_total_len((ihl + thl + data.len()) as u16);
    i.fill_checksum();
    let mut t = TcpPacket::new_unchecked(&mut f[14 + ihl..]);
    t.set_seq_number(next);
    t.set_fin(true);
    t.fill_checksum(&src, &dst);
    f
}

#[test]
fn a_fin_behind_data_cut_off_by_the_window_is_not_taken() {
    // A peer may send into a window the receiver has since shrunk (smoltcp rounds a
    // scaled window down): the receiver keeps what fits, and must not take the FIN
    // behind the bytes it dropped for end of file.
    let net = Net::new();
    let l = tcp(&net.b);
    set_int(&l, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    sock(&l).bind(&addr(B, 5100)).unwrap();
    sock(&l).listen(4).unwrap();
    let c = tcp(&net.a);
    let _ = sock(&c).connect(&addr(B, 5100));
    net.settle();
    let (srv, _) = sock(&l).accept(SOCK_NONBLOCK).unwrap();
    let window = 4096;
    assert_eq!(send(&c, &[b'a'; 4000]), Ok(4000));
    net.settle();
    let template = net
        .nic_a
        .sent
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|f| f.len() > 14 + 40 + 100)
        .cloned()
        .expect("A sent the data");
    // 200 bytes where 96 fit, then FIN; B's answers go nowhere.
    *net.nic_b.cut.lock().unwrap() = true;
    net.nic_b
        .inject(data_and_fin_after(&template, &[b'z'; 200]));
    net.b.poll();
    let got = drain(&srv);
    assert_eq!(got.len(), window, "what fitted the window is delivered");
    assert!(got[4000..].iter().all(|&b| b == b'z'));
    assert_eq!(
        recv(&srv, 100),
        Err(Errno::EAGAIN),
        "no end of file while bytes before the FIN are missing"
    );
    assert_eq!(mask(&srv) & EPOLLRDHUP, 0);
}
