//! Many connections at once: correctness, and timing printed (never asserted).

use super::*;
use std::time::Instant;

#[test]
fn two_thousand_loopback_connections_each_echo() {
    const N: usize = 2000;
    let s = lo_stack();
    let l = listener(&s, addr(LO, 9000), 4096);
    // One echo's cost with a single connection open, to compare with 2,000 open.
    let (bc, bs) = lo_pair(&s, 9001);
    let one_echo = |c: &OpenFile, srv: &OpenFile| {
        let t = Instant::now();
        for _ in 0..200 {
            send(c, b"one more").unwrap();
            assert_eq!(recv(srv, 100).unwrap(), b"one more");
        }
        t.elapsed() / 200
    };
    let alone = one_echo(&bc, &bs);
    let t = Instant::now();
    let mut pairs = Vec::with_capacity(N);
    for _ in 0..N {
        let c = tcp(&s);
        connect_now(&c, addr(LO, 9000)).unwrap();
        let (srv, _) = sock(&l).accept(SOCK_NONBLOCK).unwrap();
        pairs.push((c, srv));
    }
    let connect = t.elapsed();
    s.inspect(|i| assert_eq!(i.conns.len(), 2 * N + 2));

    let t = Instant::now();
    for (i, (c, _)) in pairs.iter().enumerate() {
        let msg = format!("message {i}");
        assert_eq!(send(c, msg.as_bytes()), Ok(msg.len()));
    }
    for (_, srv) in &pairs {
        let got = recv(srv, 100).unwrap();
        assert_eq!(send(srv, &got), Ok(got.len()));
    }
    for (i, (c, _)) in pairs.iter().enumerate() {
        assert_eq!(recv(c, 100).unwrap(), format!("message {i}").as_bytes());
    }
    let echo = t.elapsed();

    // What a poll costs with every connection open and idle.
    let t = Instant::now();
    for _ in 0..1000 {
        s.poll();
    }
    let idle_poll = t.elapsed() / 1000;
    let (c, srv) = &pairs[N / 2];
    let crowded = one_echo(c, srv);

    println!(
        "{N} loopback connections: connect+accept {:?} total ({:?} each), \
         echo round {:?} ({:?} per connection), idle poll {:?}, \
         one send+recv {:?} with {N} open vs {:?} alone ({:.2}x)",
        connect,
        connect / N as u32,
        echo,
        echo / N as u32,
        idle_poll,
        crowded,
        alone,
        crowded.as_secs_f64() / alone.as_secs_f64()
    );

    drop((bc, bs));
    let t = Instant::now();
    drop(pairs);
    let close = t.elapsed();
    run_lo(&s, 70_000);
    s.inspect(|i| {
        assert!(i.conns.is_empty(), "{} connections left", i.conns.len());
        assert!(i.conn_index.is_empty());
    });
    println!("closing {N} connections: {close:?}");
}

#[test]
fn hundreds_of_connections_over_the_wire() {
    const N: usize = 300;
    let net = Net::new();
    let l = listener(&net.b, addr(ANY, 9100), 512);
    let t = Instant::now();
    let clients: Vec<_> = (0..N)
        .map(|_| {
            let c = tcp(&net.a);
            assert_eq!(sock(&c).connect(&addr(B, 9100)), Err(Errno::EINPROGRESS));
            c
        })
        .collect();
    // At most 256 handshakes wait at once per listener; the SYNs beyond that in this
    // burst are dropped and come back a second later.
    net.run_ms(1500);
    let servers: Vec<_> = (0..N).map(|_| sock(&l).accept(0).unwrap().0).collect();
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(sock(c).connect(&addr(B, 9100)), Ok(()));
        send(c, &[i as u8; 3000]).unwrap();
    }
    net.run_ms(100);
    let mut total = 0;
    for srv in &servers {
        let d = drain(srv);
        assert_eq!(d.len(), 3000);
        assert!(d.iter().all(|&b| b == d[0]));
        total += d.len();
    }
    assert_eq!(total, N * 3000);
    println!(
        "{N} connections over the wire, 3000 bytes each: {:?}",
        t.elapsed()
    );
}
