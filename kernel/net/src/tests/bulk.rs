//! Bulk transfers over several loopback connections at once, interleaved the way
//! threads and an event loop interleave them in a guest: nothing may be lost, and
//! nothing may wait for a timer (loopback loses no packets, so every byte can move as
//! soon as there is room for it).

use super::*;

/// A small deterministic generator for the interleaving.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What each connection's bytes are: position `i` of connection `c`.
fn pattern(c: usize, i: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(c * 7 + i / 65_521)) as u8
}

struct Client {
    sock: Arc<OpenFile>,
    sent: usize,
    shut: bool,
    got: Vec<u8>,
    eof: bool,
}

/// The echo server's side of one connection: what it read and has yet to write back.
struct Echo {
    sock: Option<Arc<OpenFile>>,
    pending: Vec<u8>,
    eof: bool,
}

/// One echo workload.
struct Load {
    clients: usize,
    /// What each client sends and expects back.
    bytes: usize,
    /// The largest write a client makes.
    chunk: usize,
    /// Writes are exactly `chunk` bytes (else between 1 and `chunk`, at random).
    exact: bool,
    /// Clients also read while still writing (a reader thread besides the writer).
    duplex: bool,
}

/// `load.clients` connections each send `load.bytes`, shut down writing, and read the
/// echo until EOF; the server echoes with a 64 KiB user buffer, reading only when
/// everything read before was written back (as an edge-triggered echo loop does), and
/// closes after EOF once all is echoed. Whoever acts next (a client, the server for one
/// connection, or the network thread's poll) is chosen at random, with `seed`. Panics
/// if a byte is lost or changed, or if progress ever needs a timer.
fn echo_run(load: &Load, seed: u64) {
    let Load { clients, bytes, .. } = *load;
    let s = lo_stack();
    let port = 9500 + (seed % 400) as u16;
    let l = listener(&s, addr(LO, port), 16);
    let mut cs: Vec<Client> = (0..clients)
        .map(|_| {
            let c = tcp(&s);
            connect_now(&c, addr(LO, port)).unwrap();
            Client {
                sock: c,
                sent: 0,
                shut: false,
                got: Vec::new(),
                eof: false,
            }
        })
        .collect();
    let mut echoes: Vec<Echo> = (0..clients)
        .map(|_| Echo {
            sock: Some(sock(&l).accept(SOCK_NONBLOCK).unwrap().0),
            pending: Vec::new(),
            eof: false,
        })
        .collect();
    let mut rng = Rng(seed | 1);
    let mut idle_steps = 0;
    let mut steps = 0u64;
    while cs.iter().any(|c| !c.eof) {
        steps += 1;
        let who = rng.below(2 * clients + 1);
        let progress = if who < clients {
            client_step(&mut cs[who], who, load, &mut rng)
        } else if who < 2 * clients {
            echo_step(&mut echoes[who - clients])
        } else {
            // The network thread runs what is due; it never makes progress by itself
            // on loopback, where nothing waits for a timer.
            s.poll();
            false
        };
        idle_steps = if progress { 0 } else { idle_steps + 1 };
        if idle_steps > 50 * clients {
            let state: Vec<String> = cs
                .iter()
                .zip(&echoes)
                .map(|(c, e)| {
                    format!(
                        "sent {} shut {} got {} eof {} | echo pending {} eof {} open {}",
                        c.sent,
                        c.shut,
                        c.got.len(),
                        c.eof,
                        e.pending.len(),
                        e.eof,
                        e.sock.is_some()
                    )
                })
                .collect();
            panic!(
                "seed {seed}: no connection can move without a timer after {steps} steps:\n{}",
                state.join("\n")
            );
        }
    }
    for (i, c) in cs.iter().enumerate() {
        assert_eq!(
            c.got.len(),
            bytes,
            "seed {seed}: connection {i} echo length"
        );
        if let Some(at) = (0..bytes).find(|&k| c.got[k] != pattern(i, k)) {
            panic!("seed {seed}: connection {i} differs at byte {at}");
        }
    }
}

fn client_step(c: &mut Client, i: usize, load: &Load, rng: &mut Rng) -> bool {
    let bytes = load.bytes;
    // Like a blocking client thread: write everything, shut down, then read; `duplex`:
    // like a client with a reader thread too, which reads while writing.
    if c.sent < bytes && !(load.duplex && rng.below(2) == 0) {
        let n = if load.exact {
            load.chunk
        } else {
            1 + rng.below(load.chunk)
        };
        let n = n.min(bytes - c.sent);
        let data: Vec<u8> = (c.sent..c.sent + n).map(|k| pattern(i, k)).collect();
        return match send(&c.sock, &data) {
            Ok(n) => {
                c.sent += n;
                true
            }
            Err(Errno::EAGAIN) => false,
            Err(e) => panic!("client {i}: send: {e:?}"),
        };
    }
    if !c.shut && c.sent == bytes {
        sock(&c.sock).shutdown(SHUT_WR).unwrap();
        c.shut = true;
        return true;
    }
    if c.eof {
        return false;
    }
    match recv(&c.sock, 1 + rng.below(65536)) {
        Ok(d) if d.is_empty() => {
            c.eof = true;
            true
        }
        Ok(d) => {
            c.got.extend(d);
            true
        }
        Err(Errno::EAGAIN) => false,
        Err(e) => panic!("client {i}: recv: {e:?}"),
    }
}

fn echo_step(e: &mut Echo) -> bool {
    let Some(srv) = e.sock.as_ref() else {
        return false;
    };
    if !e.pending.is_empty() {
        return match send(srv, &e.pending) {
            Ok(n) => {
                e.pending.drain(..n);
                true
            }
            Err(Errno::EAGAIN) => false,
            Err(err) => panic!("echo: send: {err:?}"),
        };
    }
    if e.eof {
        e.sock = None;
        return true;
    }
    match recv(srv, 65536) {
        Ok(d) if d.is_empty() => {
            e.eof = true;
            true
        }
        Ok(d) => {
            e.pending = d;
            true
        }
        Err(Errno::EAGAIN) => false,
        Err(err) => panic!("echo: recv: {err:?}"),
    }
}

#[test]
fn six_loopback_echoes_of_256_kib_lose_nothing_and_never_stall() {
    // net_readiness's edge-triggered server: 16 KiB writes, then a half-close.
    let load = Load {
        clients: 6,
        bytes: 256 * 1024,
        chunk: 16 * 1024,
        exact: true,
        duplex: false,
    };
    for seed in 1..=40 {
        echo_run(&load, seed);
    }
}

#[test]
fn random_sized_writes_and_reads_keep_every_byte() {
    // Odd sizes make the receive window odd-sized at every step.
    let load = Load {
        clients: 3,
        bytes: 200_003,
        chunk: 20_000,
        exact: false,
        duplex: false,
    };
    for seed in 100..=140 {
        echo_run(&load, seed);
    }
}

#[test]
fn four_loopback_echoes_of_one_mib_read_while_writing() {
    // skiff-rust-net's TCP echo: a writer and a reader per client.
    let load = Load {
        clients: 4,
        bytes: 1 << 20,
        chunk: 64 * 1024,
        exact: false,
        duplex: true,
    };
    for seed in 40..=47 {
        echo_run(&load, seed);
    }
}
