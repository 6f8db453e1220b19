//! Guest networking seen from the host: published ports, the CLI's ready line, and the
//! host-side clients the network tests drive servers with.
//!
//! * [`PublishedPort`] is one `skiff run -p 127.0.0.1:HOST:GUEST[/udp]`: a free host
//!   port (found by binding port 0; the small race until the CLI binds it is accepted)
//!   and the line the CLI prints on stderr once the guest listens on it,
//!   `skiff: ready: 127.0.0.1:HOST -> guest port GUEST/tcp`.
//!   [`Background::wait_until_published`] waits for that line.
//! * [`run_echo_load`] opens many TCP connections at once (plain threads, no async
//!   runtime), sends each a distinct payload and checks the echo.
//! * [`udp_echo_exchange`] and [`udp_request`] talk to a UDP echo server, resending a
//!   datagram that got no answer (UDP may drop; a resend is not an error).
//! * [`http_get`] is a minimal HTTP/1.1 client; [`curl_fetch`] runs the real `curl`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::background::{Background, Stream};
use crate::{pseudo_random_bytes, Run};

/// The transport of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// The name the CLI uses (`tcp`, `udp`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// A host port on 127.0.0.1 forwarded to a guest port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    pub host: u16,
    pub guest: u16,
    pub transport: Transport,
}

impl PublishedPort {
    /// Forwards a free host port to `guest` over TCP.
    pub fn tcp(guest: u16) -> PublishedPort {
        PublishedPort {
            host: free_host_port(Transport::Tcp),
            guest,
            transport: Transport::Tcp,
        }
    }

    /// Forwards a free host port to `guest` over UDP.
    pub fn udp(guest: u16) -> PublishedPort {
        PublishedPort {
            host: free_host_port(Transport::Udp),
            guest,
            transport: Transport::Udp,
        }
    }

    /// The value of `skiff run -p`: `127.0.0.1:HOST:GUEST`, with `/udp` for UDP.
    pub fn cli_spec(&self) -> String {
        let suffix = match self.transport {
            Transport::Tcp => "",
            Transport::Udp => "/udp",
        };
        format!("127.0.0.1:{}:{}{suffix}", self.host, self.guest)
    }

    /// The line the CLI prints on stderr once the guest listens on the port.
    pub fn ready_line(&self) -> String {
        format!(
            "skiff: ready: 127.0.0.1:{} -> guest port {}/{}",
            self.host,
            self.guest,
            self.transport.name()
        )
    }

    /// Where the host reaches the guest's port.
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.host))
    }
}

/// A port on 127.0.0.1 that was free a moment ago: the kernel's choice for port 0,
/// released again. Another program may take it before the CLI binds it; that race is
/// small and shows as the CLI failing to bind, not as a wrong result.
pub fn free_host_port(transport: Transport) -> u16 {
    let addr = (Ipv4Addr::LOCALHOST, 0);
    let port = match transport {
        Transport::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Transport::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    };
    port.unwrap_or_else(|e| panic!("cannot bind a {} port on 127.0.0.1: {e}", transport.name()))
        .port()
}

impl Run {
    /// Publishes `port` (`-p` for `skiff run`; the native run ignores it).
    pub fn publish(self, port: &PublishedPort) -> Run {
        self.cli_arg("-p").cli_arg(port.cli_spec())
    }
}

impl Background {
    /// Waits for the CLI's ready line for `port` on stderr.
    pub fn wait_until_published(
        &mut self,
        port: &PublishedPort,
        timeout: Duration,
    ) -> Result<(), String> {
        let line = port.ready_line();
        self.wait_for_line(
            Stream::Stderr,
            &format!("the ready line {line:?}"),
            timeout,
            |l| l == line,
        )
        .map(|_| ())
    }

    /// Waits for a server's own "listening on port P" line on stdout; returns P.
    pub fn wait_until_listening(&mut self, timeout: Duration) -> Result<u16, String> {
        let line = self.wait_for_line(
            Stream::Stdout,
            "the line \"listening on port P\"",
            timeout,
            |l| l.starts_with("listening on port "),
        )?;
        line["listening on port ".len()..]
            .trim()
            .parse()
            .map_err(|e| self.report(&format!("bad port in {line:?}: {e}")))
    }
}

/// The soft limit on open files of this process (`/proc/self/limits`), if readable.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

// ---------------------------------------------------------------------------------------
// TCP echo load
// ---------------------------------------------------------------------------------------

/// How [`run_echo_load`] loads an echo server.
#[derive(Clone, Copy, Debug)]
pub struct EchoLoad {
    /// Connections, all open at the same time.
    pub connections: usize,
    /// Client threads sharing them.
    pub threads: usize,
    /// Limit for each connect, write and read.
    pub io_timeout: Duration,
}

/// What [`run_echo_load`] saw.
#[derive(Clone, Debug, Default)]
pub struct EchoReport {
    /// Connections that were open at once (when every thread had finished connecting).
    pub open_at_once: usize,
    /// Connections whose echo came back intact and then saw the server's EOF.
    pub echoed: usize,
    /// Payload bytes sent (and, for the intact ones, received back).
    pub bytes_sent: u64,
    /// One line per problem, naming the connection.
    pub errors: Vec<String>,
}

/// The distinct payload of connection `index`: a header naming it, then pseudo-random
/// bytes of a length between 1 and 3000 that varies with the index.
pub fn echo_payload(index: usize) -> Vec<u8> {
    let mut payload = format!("connection {index}: ").into_bytes();
    let len = 1 + (index * 7919) % 3000;
    payload.extend(pseudo_random_bytes(len, index as u64 + 1));
    payload
}

/// Opens `load.connections` connections to `addr`, all at once, sends each its
/// [`echo_payload`], reads the echo back, then half-closes and expects the server to
/// close too. Connections are spread over `load.threads` threads; a barrier makes every
/// thread finish connecting before any sends, so all connections are open together.
pub fn run_echo_load(addr: SocketAddr, load: &EchoLoad) -> EchoReport {
    let threads = load.threads.clamp(1, load.connections.max(1));
    let connected = Arc::new(Barrier::new(threads));
    let echoed_all = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let connected = Arc::clone(&connected);
            let echoed_all = Arc::clone(&echoed_all);
            let load = *load;
            thread::spawn(move || {
                let indices = (t..load.connections).step_by(threads);
                echo_load_thread(addr, indices, &load, &connected, &echoed_all)
            })
        })
        .collect();
    let mut report = EchoReport::default();
    for handle in handles {
        let part = handle.join().unwrap_or_else(|_| EchoReport {
            errors: vec!["a client thread panicked".to_string()],
            ..EchoReport::default()
        });
        report.open_at_once += part.open_at_once;
        report.echoed += part.echoed;
        report.bytes_sent += part.bytes_sent;
        report.errors.extend(part.errors);
    }
    report
}

fn echo_load_thread(
    addr: SocketAddr,
    indices: impl Iterator<Item = usize>,
    load: &EchoLoad,
    connected: &Barrier,
    echoed_all: &Barrier,
) -> EchoReport {
    let mut report = EchoReport::default();
    let mut streams = Vec::new();
    for index in indices {
        let opened = TcpStream::connect_timeout(&addr, load.io_timeout).and_then(|s| {
            s.set_read_timeout(Some(load.io_timeout))?;
            s.set_write_timeout(Some(load.io_timeout))?;
            Ok(s)
        });
        match opened {
            Ok(stream) => streams.push((index, stream)),
            Err(e) => report
                .errors
                .push(format!("connection {index}: connect: {e}")),
        }
    }
    report.open_at_once = streams.len();
    // Every thread waits here, failures or not, so nobody deadlocks.
    connected.wait();
    streams.retain_mut(|(index, stream)| {
        let payload = echo_payload(*index);
        match stream.write_all(&payload) {
            Ok(()) => {
                report.bytes_sent += payload.len() as u64;
                true
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("connection {index}: write: {e}"));
                false
            }
        }
    });
    streams.retain_mut(|(index, stream)| {
        let payload = echo_payload(*index);
        let mut back = vec![0u8; payload.len()];
        match stream.read_exact(&mut back) {
            Ok(()) if back == payload => true,
            Ok(()) => {
                let at = back.iter().zip(&payload).position(|(a, b)| a != b);
                report.errors.push(format!(
                    "connection {index}: the echo differs from the payload at byte {at:?}"
                ));
                false
            }
            Err(e) => {
                report.errors.push(format!(
                    "connection {index}: reading the {}-byte echo: {e}",
                    payload.len()
                ));
                false
            }
        }
    });
    // Keep everything open until every echo is back, then close politely.
    echoed_all.wait();
    for (index, mut stream) in streams {
        let mut rest = Vec::new();
        let closed = stream
            .shutdown(Shutdown::Write)
            .and_then(|()| stream.read_to_end(&mut rest));
        match closed {
            Ok(0) => report.echoed += 1,
            Ok(n) => report.errors.push(format!(
                "connection {index}: {n} unexpected bytes after the echo"
            )),
            Err(e) => report.errors.push(format!(
                "connection {index}: waiting for the server's EOF: {e}"
            )),
        }
    }
    report
}

// ---------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------

/// The distinct payload of datagram `index`: between 1 and 1400 bytes (below any
/// Ethernet MTU, so no fragmentation is involved).
pub fn udp_payload(index: usize) -> Vec<u8> {
    let mut payload = format!("datagram {index}: ").into_bytes();
    let len = (index * 131) % 1380;
    payload.extend(pseudo_random_bytes(len, 0xd06 + index as u64));
    payload
}

/// Sends `message` to `addr` from `socket` until the datagram `reply` comes back or
/// `timeout` passes; returns how many times it was sent. Other datagrams (late echoes of
/// earlier resends) are skipped.
fn exchange(
    socket: &UdpSocket,
    addr: SocketAddr,
    message: &[u8],
    reply: &[u8],
    timeout: Duration,
) -> Result<usize, String> {
    const RESEND_AFTER: Duration = Duration::from_millis(500);
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        socket
            .send_to(message, addr)
            .map_err(|e| format!("send_to {addr}: {e}"))?;
        sent += 1;
        let resend_at = Instant::now() + RESEND_AFTER;
        while Instant::now() < resend_at {
            socket
                .set_read_timeout(Some(
                    resend_at
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ))
                .map_err(|e| format!("set_read_timeout: {e}"))?;
            match socket.recv_from(&mut buf) {
                Ok((n, _)) if &buf[..n] == reply => return Ok(sent),
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break
                }
                // A refused earlier send (ICMP) shows up here; the next send may work.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(format!("recv_from: {e}")),
            }
        }
    }
    Err(format!(
        "no answer from {addr} after {sent} sends in {timeout:?}"
    ))
}

/// Sends `count` distinct datagrams ([`udp_payload`]) to the echo server at `addr`, one
/// at a time, each until its echo comes back. Returns the number of datagrams sent,
/// resends included (the server's count may be that high).
pub fn udp_echo_exchange(
    addr: SocketAddr,
    count: usize,
    timeout: Duration,
) -> Result<usize, String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    let mut sent = 0;
    for index in 0..count {
        let payload = udp_payload(index);
        sent += exchange(&socket, addr, &payload, &payload, timeout)
            .map_err(|e| format!("datagram {index} ({} bytes): {e}", payload.len()))?;
    }
    Ok(sent)
}

/// Sends `message` to `addr` until `reply` comes back (for commands such as "quit").
pub fn udp_request(
    addr: SocketAddr,
    message: &[u8],
    reply: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    exchange(&socket, addr, message, reply, timeout).map(|_| ())
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// An HTTP response as [`http_get`] read it.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `METHOD path HTTP/1.1` with `Connection: close` and reads the response to the
/// end of the connection. A body shorter than its Content-Length is an error.
pub fn http_get(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("timeouts: {e}"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: skiff-tests\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading the response ({} bytes so far): {e}", raw.len()))?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let response = HttpResponse {
        status,
        headers,
        body,
    };
    if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        let expected = if head_only { 0 } else { length };
        if response.body.len() != expected {
            return Err(format!(
                "body is {} bytes, Content-Length says {length}",
                response.body.len()
            ));
        }
    }
    Ok(response)
}

/// Fetches `url` with `curl` into `output`; returns the HTTP status. `None` when curl is
/// not installed (the caller falls back to [`http_get`] and says so).
pub fn curl_fetch(url: &str, output: &Path, timeout: Duration) -> Option<Result<u16, String>> {
    let curl = crate::find_on_path("curl")?;
    let result = Command::new(curl)
        .args(["--silent", "--show-error", "--max-time"])
        .arg(timeout.as_secs().max(1).to_string())
        .arg("--output")
        .arg(output)
        .args(["--write-out", "%{http_code}"])
        .arg(url)
        .output();
    Some(match result {
        Err(e) => Err(format!("cannot run curl: {e}")),
        Ok(out) if !out.status.success() => Err(format!(
            "curl {url} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                format!(
                    "curl printed no status: {:?}",
                    String::from_utf8_lossy(&out.stdout)
                )
            }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_follow_the_cli_contract() {
        let tcp = PublishedPort {
            host: 40001,
            guest: 80,
            transport: Transport::Tcp,
        };
        assert_eq!(tcp.cli_spec(), "127.0.0.1:40001:80");
        assert_eq!(
            tcp.ready_line(),
            "skiff: ready: 127.0.0.1:40001 -> guest port 80/tcp"
        );
        let udp = PublishedPort {
            transport: Transport::Udp,
            ..tcp
        };
        assert_eq!(udp.cli_spec(), "127.0.0.1:40001:80/udp");
        assert_eq!(
            udp.ready_line(),
            "skiff: ready: 127.0.0.1:40001 -> guest port 80/udp"
        );
        let args: Vec<String> = Run::new("/x")
            .publish(&tcp)
            .extra_cli_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["-p", "127.0.0.1:40001:80"]);
    }

    #[test]
    fn free_ports_are_nonzero_and_bindable() {
        for transport in [Transport::Tcp, Transport::Udp] {
            let port = free_host_port(transport);
            assert_ne!(port, 0);
        }
        let port = free_host_port(Transport::Tcp);
        // Usually still free a moment later; this only guards against nonsense ports.
        assert!(port >= 1024, "{port}");
    }

    #[test]
    fn payloads_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            assert!(seen.insert(echo_payload(i)), "payload {i} repeats");
        }
        assert!(echo_payload(0).starts_with(b"connection 0: "));
        assert!(udp_payload(5).len() <= 1400);
        assert!((0..2000).all(|i| udp_payload(i).len() <= 1400));
    }

    #[test]
    fn responses_parse_and_short_bodies_are_caught() {
        let ok = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc",
            false,
        )
        .unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("X-a"), Some("b"));
        assert_eq!(ok.body, b"abc");
        let short = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", false);
        assert!(short.unwrap_err().contains("Content-Length"));
        let head = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert!(head.body.is_empty());
        assert!(parse_response(b"garbage", false).is_err());
    }

    #[test]
    fn the_echo_load_finds_a_server_that_garbles() {
        // A server that answers every connection with the wrong bytes must be caught.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            for _ in 0..4 {
                let (mut s, _) = listener.accept().unwrap();
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        buf[..n].reverse();
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let report = run_echo_load(
            addr,
            &EchoLoad {
                connections: 4,
                threads: 2,
                io_timeout: Duration::from_secs(10),
            },
        );
        server.join().unwrap();
        assert_eq!(report.open_at_once, 4);
        assert_eq!(report.echoed, 0);
        assert_eq!(report.errors.len(), 4, "{:?}", report.errors);
    }
}
