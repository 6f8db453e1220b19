//! The host side of published TCP ports: skiff listens on each published host port
//! itself and relays every connection to QEMU's user-network forward on a private
//! loopback port.
//!
//! Why not let QEMU listen on the published port: libslirp listens with a backlog of
//! one and accepts one connection per main-loop turn, so a burst of clients overflows
//! its accept queue. The host kernel then drops SYNs (clients stall in one-, three-,
//! seven-second retransmissions) and, worse, drops the final ACK of handshakes it has
//! already answered, so clients that believe they are connected get reset a minute
//! later. Measured here: 100 clients at once connect, 300 time out, 1,000 see hundreds
//! of resets. The relay listens with a deep backlog, starts accepting only once the
//! guest listens (so early clients wait instead of being reset), and opens the
//! connections to QEMU one at a time, retrying quickly when QEMU's queue is full.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use skiff_bootproto::Transport;

use crate::net::{host_port_error, PortMapping};

/// The accept queue of each published port (Linux caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;
/// How long one connection attempt to QEMU may take before it is retried. On loopback a
/// handshake with room in the queue completes in microseconds; a dropped SYN would
/// otherwise wait for the kernel's one-second retransmission.
const ATTEMPT: Duration = Duration::from_millis(50);
/// How long a client waits for QEMU's forward before the relay gives up on it.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);
/// The relay threads copy through small buffers and need little stack.
const RELAY_STACK: usize = 64 * 1024;
const COPY_BUFFER: usize = 64 * 1024;

/// A published TCP port's host socket, bound before the VM boots.
pub struct Relay {
    published: PortMapping,
    listener: TcpListener,
    /// QEMU's forward for this port, on the host's loopback.
    qemu_port: u16,
    /// Opened when the guest listens on the port.
    gate: Arc<(Mutex<bool>, Condvar)>,
}

/// Every relayed port of one VM.
#[derive(Default)]
pub struct Relays {
    relays: Vec<Relay>,
}

/// Bind the host side of every published TCP port and choose a private loopback port
/// for QEMU's forward of each. Returns the relays and the mappings QEMU must use (the
/// published ones with each TCP mapping moved to its private port). A port that cannot
/// be bound is an error naming it.
pub fn bind(published: &[PortMapping]) -> Result<(Relays, Vec<PortMapping>), String> {
    let mut relays = Relays::default();
    let mut for_qemu = Vec::new();
    for port in published {
        if port.transport != Transport::Tcp {
            // UDP has no accept queue to overflow: QEMU forwards it directly.
            for_qemu.push(*port);
            continue;
        }
        let address = SocketAddrV4::new(port.host_ip, port.host_port);
        let listener = TcpListener::bind(address).map_err(|e| host_port_error(port, &e))?;
        deepen_backlog(&listener).map_err(|e| host_port_error(port, &e))?;
        let qemu_port = free_loopback_port()
            .map_err(|e| format!("cannot find a free loopback port for QEMU's forward: {e}"))?;
        for_qemu.push(PortMapping {
            host_ip: Ipv4Addr::LOCALHOST,
            host_port: qemu_port,
            ..*port
        });
        relays.relays.push(Relay {
            published: *port,
            listener,
            qemu_port,
            gate: Arc::default(),
        });
    }
    Ok((relays, for_qemu))
}

/// `listen` again with a deeper queue: Linux applies the new backlog to a socket that
/// already listens (std's `bind` chose its own).
fn deepen_backlog(listener: &TcpListener) -> io::Result<()> {
    // SAFETY: listen(2) on a socket this process owns; no memory is passed.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A loopback port nobody uses right now. QEMU binds it a moment later; in between
/// another program could take it, which QEMU then reports as a clear error.
fn free_loopback_port() -> io::Result<u16> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(probe.local_addr()?.port())
}

impl Relays {
    /// Start a thread per relayed port; each waits for [`Relays::open`] before it
    /// accepts.
    pub fn start(&self) -> Result<(), String> {
        for relay in &self.relays {
            let listener = relay
                .listener
                .try_clone()
                .map_err(|e| format!("cannot relay {}: {e}", relay.published.describe()))?;
            let gate = relay.gate.clone();
            let qemu = SocketAddr::from((Ipv4Addr::LOCALHOST, relay.qemu_port));
            thread::Builder::new()
                .name("skiff-relay".into())
                .stack_size(RELAY_STACK)
                .spawn(move || accept_loop(listener, gate, qemu))
                .map_err(|e| format!("cannot relay {}: {e}", relay.published.describe()))?;
        }
        Ok(())
    }

    /// The guest listens on `guest_port`/TCP: start passing connections through.
    pub fn open(&self, guest_port: u16) {
        for relay in &self.relays {
            if relay.published.guest_port == guest_port {
                let (open, wake) = &*relay.gate;
                *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
                wake.notify_all();
            }
        }
    }
}

fn accept_loop(listener: TcpListener, gate: Arc<(Mutex<bool>, Condvar)>, qemu: SocketAddr) {
    {
        let (open, wake) = &*gate;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = wake.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
    // One connection attempt to QEMU at a time: QEMU's queue holds two.
    let connecting = Arc::new(Mutex::new(()));
    loop {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            // Out of descriptors or memory, or the client gave up already: keep serving.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let connecting = connecting.clone();
        let spawned = thread::Builder::new()
            .name("skiff-relay".into())
            .stack_size(RELAY_STACK)
            .spawn(move || relay_connection(client, qemu, &connecting));
        // No thread for it: the client is closed (dropped with the closure).
        drop(spawned);
    }
}

/// Connect to QEMU's forward, retrying quickly while its accept queue is full.
fn connect_to_qemu(qemu: SocketAddr, connecting: &Mutex<()>) -> Option<TcpStream> {
    let started = Instant::now();
    let _turn = connecting.lock().unwrap_or_else(|e| e.into_inner());
    while started.elapsed() < CONNECT_PATIENCE {
        match TcpStream::connect_timeout(&qemu, ATTEMPT) {
            Ok(stream) => return Some(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
            // Refused: QEMU is gone (the VM stopped).
            Err(_) => return None,
        }
    }
    None
}

fn relay_connection(client: TcpStream, qemu: SocketAddr, connecting: &Mutex<()>) {
    let Some(upstream) = connect_to_qemu(qemu, connecting) else {
        return;
    };
    // The relay must not add Nagle delays of its own: each leg passes on what it reads.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_back), Ok(upstream_back)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let reverse = thread::Builder::new()
        .name("skiff-relay".into())
        .stack_size(RELAY_STACK)
        .spawn(move || pump(upstream_back, client_back));
    if reverse.is_err() {
        return;
    }
    pump(client, upstream);
    if let Ok(reverse) = reverse {
        let _ = reverse.join();
    }
}

/// Copy `from` to `to` until `from` ends, then pass the end on as a half-close. A
/// reset on either side is passed on as a reset of the other and ends both directions.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                reset_on_close(&to);
                break;
            }
        };
        if to.write_all(&buffer[..n]).is_err() {
            reset_on_close(&from);
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Make the last close of `stream` send a reset (SO_LINGER with a zero timeout), as the
/// peer on the other leg did.
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this process owns, with a pointer to a live
    // `linger` and its exact size.
    #[allow(unsafe_code)]
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for QEMU's forward: echoes each connection, then closes its side.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                thread::spawn(move || {
                    let mut back = stream.try_clone().unwrap();
                    let _ = io::copy(&mut stream, &mut back);
                });
            }
        });
        port
    }

    #[test]
    fn relays_bytes_and_half_closes_once_the_guest_listens() {
        let qemu_side = echo_server();
        let published = PortMapping {
            host_ip: Ipv4Addr::LOCALHOST,
            host_port: free_loopback_port().unwrap(),
            guest_port: 80,
            transport: Transport::Tcp,
        };
        let (mut relays, for_qemu) = bind(&[published]).unwrap();
        assert_eq!(for_qemu.len(), 1);
        assert_ne!(for_qemu[0].host_port, published.host_port);
        assert_eq!(for_qemu[0].guest_port, 80);
        // Point the relay at the stand-in instead of the port QEMU would have taken.
        relays.relays[0].qemu_port = qemu_side;
        relays.start().unwrap();

        // Before the guest listens the connection waits in the queue, unanswered.
        let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, published.host_port)).unwrap();
        client.write_all(b"early bytes").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buffer = [0u8; 64];
        assert!(
            client.read(&mut buffer).is_err(),
            "answered before the guest listened"
        );

        relays.open(81);
        assert!(
            client.read(&mut buffer).is_err(),
            "another port's listener opened it"
        );
        relays.open(80);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut echoed = Vec::new();
        client.read_to_end(&mut echoed).unwrap();
        assert_eq!(echoed, b"early bytes");
    }

    #[test]
    fn udp_ports_stay_with_qemu() {
        let published = PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 5353,
            guest_port: 53,
            transport: Transport::Udp,
        };
        let (relays, for_qemu) = bind(&[published]).unwrap();
        assert!(relays.relays.is_empty());
        assert_eq!(for_qemu, vec![published]);
    }
}
