//! UDP over loopback and over the wire.

use super::*;

fn bound_udp(stack: &Arc<Stack>, at: SockAddr) -> Arc<OpenFile> {
    let u = udp(stack);
    sock(&u).bind(&at).unwrap();
    u
}

fn port_of(f: &OpenFile) -> u16 {
    let SockAddr::Inet { port, .. } = sock(f).local_addr().unwrap() else {
        panic!("not inet")
    };
    port
}

#[test]
fn echo_over_loopback_and_wire() {
    let net = Net::new();
    let server = bound_udp(&net.b, addr(ANY, 7));
    assert_eq!(mask(&server), EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
    let client = udp(&net.a);
    assert_eq!(send_to(&client, b"over the wire", addr(B, 7)), Ok(13));
    net.settle();
    assert_eq!(
        mask(&server),
        EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND
    );
    let (d, r) = recv_flags(&server, 100, 0).unwrap();
    assert_eq!(d, b"over the wire");
    let from = r.from.unwrap();
    assert_eq!(from, addr(A, port_of(&client)));
    send_to(&server, b"back", from).unwrap();
    net.settle();
    let (d, r) = recv_flags(&client, 100, 0).unwrap();
    assert_eq!((d.as_slice(), r.from), (&b"back"[..], Some(addr(B, 7))));
    // The same wildcard socket hears loopback senders on B too.
    let local = udp(&net.b);
    send_to(&local, b"local", addr(LO, 7)).unwrap();
    let (d, r) = recv_flags(&server, 100, 0).unwrap();
    assert_eq!(
        (d.as_slice(), r.from),
        (&b"local"[..], Some(addr(LO, port_of(&local))))
    );
    // Order of arrival is kept across links.
    send_to(&client, b"1", addr(B, 7)).unwrap();
    net.settle();
    send_to(&local, b"2", addr(B, 7)).unwrap();
    assert_eq!(recv(&server, 10).unwrap(), b"1");
    assert_eq!(recv(&server, 10).unwrap(), b"2");
    assert_eq!(recv(&server, 10), Err(Errno::EAGAIN));
}

#[test]
fn truncation_peek_and_zero_length() {
    let s = lo_stack();
    let rx = bound_udp(&s, addr(LO, 0));
    let to = sock(&rx).local_addr().unwrap();
    let tx = udp(&s);
    assert_eq!(send_to(&tx, &[9u8; 65507], to.clone()), Ok(65507));
    assert_eq!(
        send_to(&tx, &[9u8; 65508], to.clone()),
        Err(Errno::EMSGSIZE)
    );
    assert_eq!(send_to(&tx, b"", to.clone()), Ok(0));
    assert_eq!(send_to(&tx, b"hello", to.clone()), Ok(5));
    assert_eq!(sock(&rx).queued().0, 65507);
    let (d, r) = recv_flags(&rx, 10, 0).unwrap();
    assert_eq!(
        (d.len(), r.len, r.full_len, r.flags),
        (10, 10, 65507, MSG_TRUNC)
    );
    assert_eq!(sock(&rx).queued().0, 0);
    let (_, r) = recv_flags(&rx, 10, 0).unwrap();
    assert_eq!((r.len, r.full_len), (0, 0), "a zero-length datagram");
    let (d, r) = recv_flags(&rx, 2, MSG_PEEK).unwrap();
    assert_eq!(
        (d.as_slice(), r.full_len, r.flags),
        (&b"he"[..], 5, MSG_TRUNC)
    );
    let (d, r) = recv_flags(&rx, 10, 0).unwrap();
    assert_eq!((d.as_slice(), r.flags), (&b"hello"[..], 0));
    assert_eq!(recv(&rx, 10), Err(Errno::EAGAIN));
}

#[test]
fn connect_sets_the_default_peer_and_filters() {
    let s = lo_stack();
    let a = bound_udp(&s, addr(ANY, 0));
    let b = bound_udp(&s, addr(LO, 5100));
    let other = udp(&s);
    let (pa, pb) = (port_of(&a), port_of(&b));
    assert_eq!(send(&b, b"x"), Err(Errno::EDESTADDRREQ));
    sock(&b).connect(&addr(LO, pa)).unwrap();
    assert_eq!(sock(&b).peer_addr().unwrap(), addr(LO, pa));
    send_to(&other, b"stranger", addr(LO, pb)).unwrap();
    send_to(&a, b"friend", addr(LO, pb)).unwrap();
    assert_eq!(recv(&b, 20).unwrap(), b"friend");
    assert_eq!(recv(&b, 20), Err(Errno::EAGAIN));
    assert_eq!(send(&b, b"reply"), Ok(5));
    assert_eq!(recv(&a, 20).unwrap(), b"reply");
    // sendto another address still works while connected.
    send_to(&b, b"aside", sock(&other).local_addr().unwrap()).unwrap();
    assert_eq!(recv(&other, 20).unwrap(), b"aside");
    // AF_UNSPEC dissolves the association.
    sock(&b).connect(&SockAddr::Unspec).unwrap();
    assert_eq!(sock(&b).peer_addr(), Err(Errno::ENOTCONN));
    assert_eq!(send(&b, b"x"), Err(Errno::EDESTADDRREQ));
    send_to(&other, b"now welcome", addr(LO, pb)).unwrap();
    assert_eq!(recv(&b, 20).unwrap(), b"now welcome");
    // A wildcard socket connected over loopback is narrowed to 127.0.0.1; dissolving
    // an implicit bind forgets the port too (Linux).
    let c = udp(&s);
    sock(&c).connect(&addr(LO, pa)).unwrap();
    let SockAddr::Inet { addr: ca, port: cp } = sock(&c).local_addr().unwrap() else {
        panic!()
    };
    assert_eq!(ca, LO);
    assert_ne!(cp, 0);
    sock(&c).connect(&SockAddr::Unspec).unwrap();
    assert_eq!(sock(&c).local_addr().unwrap(), addr(ANY, 0));
    // So does one bound to port 0, keeping its address (Linux's bind locks).
    let d = bound_udp(&s, addr(LO, 0));
    sock(&d).connect(&addr(LO, pa)).unwrap();
    sock(&d).connect(&SockAddr::Unspec).unwrap();
    assert_eq!(sock(&d).local_addr().unwrap(), addr(LO, 0));
}

#[test]
fn port_unreachable_reaches_connected_sockets_only() {
    let s = lo_stack();
    let c = udp(&s);
    sock(&c).connect(&addr(LO, 9)).unwrap();
    assert_eq!(send(&c, b"x"), Ok(1));
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND | EPOLLERR);
    assert_eq!(get_int(&c, SOL_SOCKET, SO_ERROR), Ok(111));
    assert_eq!(mask(&c), EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
    assert_eq!(send(&c, b"x"), Ok(1));
    assert_eq!(recv(&c, 10), Err(Errno::ECONNREFUSED));
    assert_eq!(recv(&c, 10), Err(Errno::EAGAIN));
    let u = udp(&s);
    assert_eq!(send_to(&u, b"x", addr(LO, 9)), Ok(1));
    assert_eq!(recv(&u, 10), Err(Errno::EAGAIN));
    assert_eq!(mask(&u) & EPOLLERR, 0);
}

#[test]
fn broadcast_needs_so_broadcast() {
    let net = Net::new();
    let rx = bound_udp(&net.b, addr(ANY, 67));
    let rx2 = bound_udp(&net.b, addr(ANY, 68));
    let tx = udp(&net.a);
    assert_eq!(
        send_to(&tx, b"all", addr([255, 255, 255, 255], 67)),
        Err(Errno::EACCES)
    );
    assert_eq!(
        send_to(&tx, b"all", addr([10, 0, 0, 255], 67)),
        Err(Errno::EACCES)
    );
    // Linux binds before it checks.
    assert_ne!(port_of(&tx), 0);
    set_int(&tx, SOL_SOCKET, SO_BROADCAST, 1).unwrap();
    assert_eq!(send_to(&tx, b"all", addr([255, 255, 255, 255], 67)), Ok(3));
    assert_eq!(send_to(&tx, b"subnet", addr([10, 0, 0, 255], 68)), Ok(6));
    net.settle();
    assert_eq!(recv(&rx, 10).unwrap(), b"all");
    assert_eq!(recv(&rx2, 10).unwrap(), b"subnet");
}

#[test]
fn datagram_limits_and_errors() {
    let net = Net::new();
    let u = udp(&net.a);
    // No IP fragmentation: a datagram must fit the card's MTU.
    assert_eq!(send_to(&u, &[0u8; 1472], addr(B, 9)), Ok(1472));
    assert_eq!(send_to(&u, &[0u8; 1473], addr(B, 9)), Err(Errno::EMSGSIZE));
    assert_eq!(send_to(&u, b"x", addr(B, 0)), Err(Errno::EINVAL));
    assert_eq!(
        send_to(&u, b"x", addr([8, 8, 8, 8], 53)),
        Err(Errno::ENETUNREACH)
    );
    assert_eq!(sock(&u).listen(1), Err(Errno::EOPNOTSUPP));
    assert_eq!(sock(&u).accept(0).err(), Some(Errno::EOPNOTSUPP));
    assert_eq!(
        sock(&u).send(b"x", Some(&addr(B, 9)), MSG_OOB, SendAncillary::default()),
        Err(Errno::EOPNOTSUPP)
    );
    // Bound to loopback, a socket cannot reach the wire.
    let l = bound_udp(&net.a, addr(LO, 0));
    assert_eq!(send_to(&l, b"x", addr(B, 9)), Err(Errno::EINVAL));
}

#[test]
fn shutdown_quirks_match_linux() {
    let s = lo_stack();
    let u = udp(&s);
    // Unconnected: ENOTCONN, yet the shutdown is recorded.
    assert_eq!(sock(&u).shutdown(SHUT_WR), Err(Errno::ENOTCONN));
    assert_eq!(send_to(&u, b"x", addr(LO, 9)), Err(Errno::EPIPE));
    // The destination is checked first.
    assert_eq!(send_to(&u, b"x", addr(LO, 0)), Err(Errno::EINVAL));
    assert_eq!(send(&u, b"x"), Err(Errno::EDESTADDRREQ));
    let c = bound_udp(&s, addr(LO, 0));
    sock(&c).connect(&addr(LO, 9)).unwrap();
    sock(&c).shutdown(SHUT_RDWR).unwrap();
    assert_eq!(
        mask(&c),
        EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM | EPOLLWRBAND | EPOLLRDHUP
    );
    assert_eq!(recv(&c, 10), Ok(vec![]));
}

#[test]
fn bind_conflicts_and_reuse() {
    let s = lo_stack();
    let a = bound_udp(&s, addr(ANY, 5000));
    let b = udp(&s);
    assert_eq!(sock(&b).bind(&addr(LO, 5000)), Err(Errno::EADDRINUSE));
    assert_eq!(sock(&a).bind(&addr(ANY, 5001)), Err(Errno::EINVAL));
    // Both SO_REUSEADDR: the latest bound gets unicast datagrams.
    let r1 = udp(&s);
    let r2 = udp(&s);
    for r in [&r1, &r2] {
        set_int(r, SOL_SOCKET, SO_REUSEADDR, 1).unwrap();
        sock(r).bind(&addr(LO, 5002)).unwrap();
    }
    send_to(&udp(&s), b"x", addr(LO, 5002)).unwrap();
    assert_eq!(recv(&r2, 10).unwrap(), b"x");
    assert_eq!(recv(&r1, 10), Err(Errno::EAGAIN));
    // A specific address beats the wildcard.
    let w = bound_udp(&s, addr(ANY, 5003));
    let sp = udp(&s);
    set_int(&sp, SOL_SOCKET, SO_REUSEADDR, 1).unwrap();
    set_int(&w, SOL_SOCKET, SO_REUSEADDR, 1).unwrap();
    // (w was bound without reuse: the second bind fails, as on Linux.)
    assert_eq!(sock(&sp).bind(&addr(LO, 5003)), Err(Errno::EADDRINUSE));
}

#[test]
fn receive_buffer_limits_the_queue() {
    let s = lo_stack();
    let rx = bound_udp(&s, addr(LO, 0));
    set_int(&rx, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    let to = sock(&rx).local_addr().unwrap();
    let tx = udp(&s);
    for _ in 0..100 {
        send_to(&tx, &[1u8; 1000], to.clone()).unwrap();
    }
    let mut n = 0;
    while recv(&rx, 2000).is_ok() {
        n += 1;
    }
    // 8192 bytes of budget at ~1768 bytes per datagram.
    assert!((4..=6).contains(&n), "{n} datagrams queued");
}

#[test]
fn datagrams_sent_before_close_still_go_out() {
    let net = Net::new();
    let rx = bound_udp(&net.b, addr(ANY, 4000));
    let tx = udp(&net.a);
    // The first datagram to a new neighbour waits for ARP; closing must not lose it.
    send_to(&tx, b"last words", addr(B, 4000)).unwrap();
    drop(tx);
    net.settle();
    assert_eq!(recv(&rx, 100).unwrap(), b"last words");
    net.a.inspect(|i| assert!(i.socks.is_empty()));
    // A neighbour that never answers: the socket is dropped after a while.
    let tx = udp(&net.a);
    send_to(&tx, b"lost", addr([10, 0, 0, 77], 4000)).unwrap();
    drop(tx);
    net.run_ms(5000);
    net.a.inspect(|i| {
        assert!(i.socks.is_empty());
        assert_eq!(i.ports.len(), 0);
    });
}

#[test]
fn reuseport_spreads_datagrams_by_sender() {
    let s = lo_stack();
    let rx: Vec<_> = (0..2)
        .map(|_| {
            let u = udp(&s);
            set_int(&u, SOL_SOCKET, SO_REUSEPORT, 1).unwrap();
            sock(&u).bind(&addr(LO, 5300)).unwrap();
            u
        })
        .collect();
    let senders: Vec<_> = (0..20).map(|_| udp(&s)).collect();
    for tx in &senders {
        send_to(tx, b"hi", addr(LO, 5300)).unwrap();
    }
    let counts: Vec<usize> = rx
        .iter()
        .map(|u| std::iter::from_fn(|| recv(u, 10).ok()).count())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 20);
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    // One sender always reaches the same socket.
    let one = &senders[0];
    for _ in 0..5 {
        send_to(one, b"again", addr(LO, 5300)).unwrap();
    }
    let counts: Vec<usize> = rx
        .iter()
        .map(|u| std::iter::from_fn(|| recv(u, 10).ok()).count())
        .collect();
    assert!(counts.contains(&5) && counts.contains(&0), "{counts:?}");
}
