//! skiff-rust-net: Rust std's networking over 127.0.0.1 for Skiff's differential tests.
//!
//! TcpListener and TcpStream with threads (an echo of several clients at once),
//! addresses, refused connections, read timeouts, shutdown in each direction, peek,
//! set_nonblocking with WouldBlock on read and accept, socket options read back,
//! broken pipes and resets; UdpSocket with send_to/recv_from, connect, peek, timeouts
//! and non-blocking receives. Ports the kernel picks are never printed. A watchdog
//! thread turns a hang into "FATAL watchdog: <phase> did not finish" and exit status
//! 98; the exit status is 1 if any check failed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

static FAILED: AtomicUsize = AtomicUsize::new(0);

fn check(label: &str, ok: bool) {
    println!("{label}: {}", if ok { "yes" } else { "no" });
    if !ok {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Prints "label: ok" or "label: <ErrorKind>" and counts a failure unless the outcome is
/// `expected` (`None` = success).
fn expect<T>(label: &str, result: std::io::Result<T>, expected: Option<ErrorKind>) -> Option<T> {
    let (text, kind, value) = match result {
        Ok(v) => ("ok".to_string(), None, Some(v)),
        Err(e) => (format!("{:?}", e.kind()), Some(e.kind()), None),
    };
    println!("{label}: {text}");
    if kind != expected {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
    value
}

/// The current phase and its deadline, polled by the watchdog thread.
static PHASE: Mutex<Option<(&'static str, Instant)>> = Mutex::new(None);

fn phase(name: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = Some((name, deadline));
}

fn start_watchdog() {
    let spawned = thread::Builder::new()
        .name("watchdog".into())
        .stack_size(64 * 1024)
        .spawn(|| loop {
            thread::sleep(Duration::from_millis(100));
            let current = *PHASE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((name, deadline)) = current {
                if Instant::now() > deadline {
                    println!("FATAL watchdog: {name} did not finish");
                    std::process::exit(98);
                }
            }
        });
    if spawned.is_err() {
        println!("FATAL cannot start the watchdog thread");
        std::process::exit(99);
    }
}

/// Unwraps a setup step; its failure makes the rest meaningless.
fn need<T>(label: &str, result: std::io::Result<T>) -> T {
    result.unwrap_or_else(|e| {
        println!("FATAL {label}: {:?}", e.kind());
        std::process::exit(99);
    })
}

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// How long a step waits for the peer before it counts as lost.
const PEER_WAIT: Duration = Duration::from_secs(10);

fn listener() -> TcpListener {
    need("bind", TcpListener::bind((LOOPBACK, 0)))
}

fn pattern(seed: u32, offset: usize) -> u8 {
    ((offset * 7 + seed as usize * 13 + offset / 251) % 251) as u8
}

/// A connected pair over a fresh listener.
fn pair() -> (TcpStream, TcpStream) {
    let l = listener();
    let client = need(
        "connect",
        TcpStream::connect(need("local_addr", l.local_addr())),
    );
    let (server, _) = need("accept", l.accept());
    (client, server)
}

fn tcp_echo() {
    println!("== TCP echo with threads");
    phase("TCP echo");
    const CLIENTS: u32 = 4;
    const BYTES: usize = 1 << 20;
    let l = listener();
    let addr = need("local_addr", l.local_addr());
    check("listener on 127.0.0.1", addr.ip() == LOOPBACK);
    check("listener port is nonzero", addr.port() != 0);
    let server = thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..CLIENTS {
            let (mut conn, peer) = need("accept", l.accept());
            let peer_matches = conn.peer_addr().ok() == Some(peer);
            handlers.push(thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                let mut echoed = 0usize;
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            echoed += n;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                (echoed, peer_matches)
            }));
        }
        handlers
            .into_iter()
            .map(|h| h.join().unwrap_or((0, false)))
            .collect::<Vec<_>>()
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|seed| {
            thread::spawn(move || {
                let stream = need("connect", TcpStream::connect(addr));
                let local = stream.local_addr().ok();
                let peer = stream.peer_addr().ok();
                let mut writer = need("try_clone", stream.try_clone());
                let sender = thread::spawn(move || {
                    let data: Vec<u8> = (0..BYTES).map(|i| pattern(seed, i)).collect();
                    for chunk in data.chunks(40_000) {
                        if writer.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = writer.shutdown(Shutdown::Write);
                });
                let mut back = Vec::new();
                let mut reader = stream;
                let read = reader.read_to_end(&mut back);
                let _ = sender.join();
                let intact = back.len() == BYTES
                    && back.iter().enumerate().all(|(i, &b)| b == pattern(seed, i));
                let addresses_ok = local.is_some_and(|a| a.ip() == LOOPBACK && a.port() >= 1024)
                    && peer == Some(addr);
                (read.is_ok(), back.len(), intact, addresses_ok)
            })
        })
        .collect();
    let mut total = 0;
    let mut all_intact = true;
    let mut all_addresses = true;
    for c in clients {
        let (ok, len, intact, addresses_ok) = c.join().unwrap_or((false, 0, false, false));
        total += len;
        all_intact &= ok && intact;
        all_addresses &= addresses_ok;
    }
    let served = server.join().unwrap_or_default();
    println!("{CLIENTS} clients got back {total} bytes");
    check("every echo is intact", all_intact);
    check(
        "client addresses are loopback with unprivileged ports",
        all_addresses,
    );
    check(
        "the server echoed every byte",
        served.iter().map(|s| s.0).sum::<usize>() == total,
    );
    check(
        "accept's address is the peer address",
        served.len() == CLIENTS as usize && served.iter().all(|s| s.1),
    );
}

fn tcp_errors_and_options() {
    println!("== TCP errors and options");
    phase("TCP errors and options");
    // A port that was just freed; retried in the rare case another program took it.
    let mut refused = None;
    for _ in 0..5 {
        let port = need("local_addr", listener().local_addr()).port();
        match TcpStream::connect((LOOPBACK, port)) {
            Ok(_) => continue,
            Err(e) => {
                refused = Some(e.kind());
                break;
            }
        }
    }
    println!("connect to a closed port: {refused:?}");
    check(
        "it was refused",
        refused == Some(ErrorKind::ConnectionRefused),
    );

    let l = listener();
    let addr = need("local_addr", l.local_addr());
    expect(
        "bind to a port in use",
        TcpListener::bind(addr),
        Some(ErrorKind::AddrInUse),
    );
    expect(
        "connect_timeout",
        TcpStream::connect_timeout(&addr, PEER_WAIT),
        None,
    );
    let (conn, _) = need("accept", l.accept());

    println!("nodelay default: {:?}", conn.nodelay().ok());
    expect("set_nodelay(true)", conn.set_nodelay(true), None);
    println!("nodelay read back: {:?}", conn.nodelay().ok());
    println!("ttl default: {:?}", conn.ttl().ok());
    expect("set_ttl(42)", conn.set_ttl(42), None);
    println!("ttl read back: {:?}", conn.ttl().ok());
    println!(
        "take_error: {:?}",
        conn.take_error().map(|e| e.map(|e| e.kind())).ok()
    );
    println!("read_timeout default: {:?}", conn.read_timeout().ok());
    expect(
        "set_read_timeout(0)",
        conn.set_read_timeout(Some(Duration::ZERO)),
        Some(ErrorKind::InvalidInput),
    );
}

fn tcp_timeouts_and_shutdown() {
    println!("== TCP timeouts and shutdown");
    phase("TCP timeouts and shutdown");
    let (mut client, mut server) = pair();
    expect(
        "set_read_timeout(200 ms)",
        client.set_read_timeout(Some(Duration::from_millis(200))),
        None,
    );
    println!("read_timeout read back: {:?}", client.read_timeout().ok());
    let start = Instant::now();
    let mut buf = [0u8; 64];
    expect(
        "read with nothing to read",
        client.read(&mut buf),
        Some(ErrorKind::WouldBlock),
    );
    // A lower bound only: the kernel must not give up early.
    check(
        "it waited at least 150 ms",
        start.elapsed() >= Duration::from_millis(150),
    );
    need("set_read_timeout", client.set_read_timeout(Some(PEER_WAIT)));

    need("write", server.write_all(b"peekaboo"));
    let n = expect("peek", client.peek(&mut buf), None).unwrap_or(0);
    println!("peeked: {:?}", String::from_utf8_lossy(&buf[..n]));
    let mut got = [0u8; 8];
    expect("read_exact after peek", client.read_exact(&mut got), None);
    println!("read: {:?}", String::from_utf8_lossy(&got));

    need("write", client.write_all(b"request"));
    expect("shutdown(Write)", client.shutdown(Shutdown::Write), None);
    let mut request = Vec::new();
    need("set_read_timeout", server.set_read_timeout(Some(PEER_WAIT)));
    expect("server read_to_end", server.read_to_end(&mut request), None);
    println!("server got: {:?}", String::from_utf8_lossy(&request));
    need("write", server.write_all(b"reply"));
    drop(server);
    let mut reply = Vec::new();
    expect("client read_to_end", client.read_to_end(&mut reply), None);
    println!("client got: {:?}", String::from_utf8_lossy(&reply));
    expect(
        "write after shutdown(Write)",
        client.write(b"x"),
        Some(ErrorKind::BrokenPipe),
    );

    let (mut client, _server) = pair();
    expect("shutdown(Read)", client.shutdown(Shutdown::Read), None);
    println!(
        "read after shutdown(Read): {:?}",
        client.read(&mut buf).ok()
    );
}

fn tcp_peer_gone() {
    println!("== TCP peer gone");
    phase("TCP peer gone");
    // The peer closes: our first write is answered with RST, a later one fails.
    let (mut client, server) = pair();
    drop(server);
    need("set_read_timeout", client.set_read_timeout(Some(PEER_WAIT)));
    let mut buf = [0u8; 8];
    println!(
        "read after the peer closed: {:?}",
        client.read(&mut buf).ok()
    );
    let mut first_error = None;
    let deadline = Instant::now() + PEER_WAIT;
    while Instant::now() < deadline {
        if let Err(e) = client.write(b"x") {
            first_error = Some(e.kind());
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    println!("writing to the closed peer ends with: {first_error:?}");

    // The peer closes with unread data: RST, and a reset on our side.
    let (mut client, server) = pair();
    need("write", client.write_all(b"unread"));
    need("set_read_timeout", server.set_read_timeout(Some(PEER_WAIT)));
    need("peek", server.peek(&mut buf));
    drop(server);
    need("set_read_timeout", client.set_read_timeout(Some(PEER_WAIT)));
    expect(
        "read after a close with unread data",
        client.read(&mut buf),
        Some(ErrorKind::ConnectionReset),
    );
}

fn tcp_nonblocking() {
    println!("== TCP non-blocking");
    phase("TCP non-blocking");
    let l = listener();
    let addr = need("local_addr", l.local_addr());
    expect("listener set_nonblocking", l.set_nonblocking(true), None);
    expect(
        "accept with nothing pending",
        l.accept(),
        Some(ErrorKind::WouldBlock),
    );
    let mut client = need("connect", TcpStream::connect(addr));
    let deadline = Instant::now() + PEER_WAIT;
    let mut server = loop {
        match l.accept() {
            Ok((s, _)) => break Some(s),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => {
                println!("accept: {:?}", e.kind());
                break None;
            }
        }
    };
    check(
        "accept succeeded once the client connected",
        server.is_some(),
    );
    let Some(server) = server.as_mut() else {
        return;
    };
    expect("stream set_nonblocking", server.set_nonblocking(true), None);
    let mut buf = [0u8; 16];
    expect(
        "read with nothing to read",
        server.read(&mut buf),
        Some(ErrorKind::WouldBlock),
    );
    need("write", client.write_all(b"nonblocking"));
    let mut got = Vec::new();
    while got.len() < 11 && Instant::now() < deadline {
        match server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                println!("read: {:?}", e.kind());
                break;
            }
        }
    }
    println!(
        "read once data arrived: {:?}",
        String::from_utf8_lossy(&got)
    );
    // Fill the connection until the kernel refuses more.
    let chunk = vec![7u8; 64 * 1024];
    let mut queued = 0usize;
    let refused = loop {
        match server.write(&chunk) {
            Ok(n) => queued += n,
            Err(e) => break e.kind(),
        }
        if queued > 64 << 20 {
            break ErrorKind::Other;
        }
    };
    println!("writing until full ends with: {refused:?}");
    check("some data was queued first", queued > 0);
}

fn udp() {
    println!("== UDP");
    phase("UDP");
    let a = need("bind", UdpSocket::bind((LOOPBACK, 0)));
    let b = need("bind", UdpSocket::bind((LOOPBACK, 0)));
    let a_addr = need("local_addr", a.local_addr());
    let b_addr = need("local_addr", b.local_addr());
    check("bound to a nonzero port", a_addr.port() != 0);
    need("set_read_timeout", b.set_read_timeout(Some(PEER_WAIT)));
    need("set_read_timeout", a.set_read_timeout(Some(PEER_WAIT)));
    expect("send_to", a.send_to(b"datagram", b_addr), None);
    let mut buf = [0u8; 64];
    let mut peek = [0u8; 4];
    if let Some((n, from)) = expect("peek_from into 4 bytes", b.peek_from(&mut peek), None) {
        println!(
            "peeked {n}: {:?}, from the sender: {}",
            String::from_utf8_lossy(&peek[..n]),
            from == a_addr
        );
    }
    if let Some((n, from)) = expect("recv_from", b.recv_from(&mut buf), None) {
        println!(
            "received {n}: {:?}, from the sender: {}",
            String::from_utf8_lossy(&buf[..n]),
            from == a_addr
        );
    }
    expect("send_to of 0 bytes", a.send_to(b"", b_addr), None);
    if let Some((n, _)) = expect("recv_from", b.recv_from(&mut buf), None) {
        println!("an empty datagram: {n} bytes");
    }
    // Truncation: a short buffer gets the start of the datagram; the rest is gone.
    need("send_to", a.send_to(b"0123456789", b_addr));
    need("send_to", a.send_to(b"next", b_addr));
    let mut short = [0u8; 4];
    if let Some(n) = expect("recv into 4 bytes", b.recv(&mut short), None) {
        println!("got {n}: {:?}", String::from_utf8_lossy(&short[..n]));
    }
    if let Some(n) = expect("recv", b.recv(&mut buf), None) {
        println!("then: {:?}", String::from_utf8_lossy(&buf[..n]));
    }

    expect("connect", a.connect(b_addr), None);
    println!("peer_addr is b: {}", a.peer_addr().ok() == Some(b_addr));
    expect("send", a.send(b"connected"), None);
    if let Some(n) = expect("recv", b.recv(&mut buf), None) {
        println!("b got: {:?}", String::from_utf8_lossy(&buf[..n]));
    }
    // Another sender is filtered out; b's datagram gets through.
    let c = need("bind", UdpSocket::bind((LOOPBACK, 0)));
    need("send_to", c.send_to(b"from c", a_addr));
    need("send_to", b.send_to(b"from b", a_addr));
    if let Some(n) = expect("recv", a.recv(&mut buf), None) {
        println!("a got: {:?}", String::from_utf8_lossy(&buf[..n]));
    }

    let start = Instant::now();
    need(
        "set_read_timeout",
        a.set_read_timeout(Some(Duration::from_millis(150))),
    );
    expect(
        "recv with a timeout and nothing queued",
        a.recv(&mut buf),
        Some(ErrorKind::WouldBlock),
    );
    check(
        "it waited at least 100 ms",
        start.elapsed() >= Duration::from_millis(100),
    );
    expect("set_nonblocking", a.set_nonblocking(true), None);
    expect(
        "non-blocking recv with nothing queued",
        a.recv(&mut buf),
        Some(ErrorKind::WouldBlock),
    );
    let unconnected = need("bind", UdpSocket::bind((LOOPBACK, 0)));
    // EDESTADDRREQ has no ErrorKind of its own; compare the errno (89 on x86_64 Linux).
    let sent = unconnected.send(b"x");
    check(
        "send on an unconnected socket fails with EDESTADDRREQ",
        sent.as_ref().err().and_then(|e| e.raw_os_error()) == Some(89),
    );
    let in_use: SocketAddr = b_addr;
    expect(
        "bind to a port in use",
        UdpSocket::bind(in_use),
        Some(ErrorKind::AddrInUse),
    );
    println!("broadcast default: {:?}", b.broadcast().ok());
}

fn main() {
    start_watchdog();
    tcp_echo();
    tcp_errors_and_options();
    tcp_timeouts_and_shutdown();
    tcp_peer_gone();
    tcp_nonblocking();
    udp();
    let failed = FAILED.load(Ordering::SeqCst);
    println!(
        "rust net: {}",
        if failed == 0 {
            "done"
        } else {
            "some checks did not pass"
        }
    );
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
