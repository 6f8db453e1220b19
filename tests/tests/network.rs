//! Guest servers driven from the host through the CLI's port publishing
//! (`skiff run -p 127.0.0.1:HOST:GUEST[/udp]`).
//!
//! Each guest test starts a server program in the background with published ports,
//! waits for the CLI's `skiff: ready: ...` line, talks to the server from the host, and
//! then requires the guest to exit on its own with status 0 and a summary that agrees
//! with what the host did. Every wait has its own deadline and failure message, the
//! guest has `--timeout`, and a guest still running when a test fails is killed.
//!
//! The same servers and host-side clients also run against the native build of each
//! server (the `native_*` tests, which need no guest), so a guest failure points at
//! Skiff, not at the server or the harness.

use std::path::PathBuf;
use std::time::Duration;

use skiff_tests::background::Background;
use skiff_tests::net::{
    curl_fetch, http_get, open_file_limit, run_echo_load, udp_echo_exchange, udp_request, EchoLoad,
    PublishedPort,
};
use skiff_tests::{guest, programs, pseudo_random_bytes, Outcome, Run, ScratchDir};

/// How long a server may take to become ready: a guest boot under TCG plus start-up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The guest's `--timeout` for the server runs.
const GUEST_TIMEOUT_SECS: u64 = 600;

/// How long a server may take to exit once the host is done with it.
const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Connections the echo load keeps open at once.
const CONNECTIONS: usize = 1000;

/// Per-operation limit for the host-side clients.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// UDP datagrams exchanged with the echo server.
const DATAGRAMS: usize = 200;

fn server(name: &str) -> PathBuf {
    programs().any_static(name)
}

/// Fails unless `outcome` is a clean exit whose stdout has the line `summary`.
fn expect_clean_exit(server: &str, outcome: &Outcome, summary: &str) {
    let text = outcome.stdout_text();
    assert!(
        outcome.status_code() == Some(0) && text.lines().any(|l| l == summary),
        "{server} did not finish cleanly with {summary:?}: termination {:?} after {:.1?}\n\
         --- stdout ---\n{text}\n--- stderr ---\n{}\n--- end ---",
        outcome.termination,
        outcome.elapsed,
        outcome.stderr_text()
    );
}

/// Starts `run` in a guest with `ports` published and waits until the CLI reports the
/// first of them ready.
fn start_guest(run: &Run, ports: &[PublishedPort]) -> Option<Background> {
    let guest = guest()?;
    let mut run = run.clone().guest_timeout_secs(GUEST_TIMEOUT_SECS);
    for port in ports {
        run = run.publish(port);
    }
    let mut vm = run.spawn_guest(&guest);
    vm.wait_until_published(&ports[0], READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("the guest server never became ready: {e}"));
    Some(vm)
}

/// Runs the echo load against `addr` and fails with the first problems if any
/// connection went wrong. Returns the payload bytes sent.
fn echo_load(server: &Background, addr: std::net::SocketAddr) -> u64 {
    if let Some(limit) = open_file_limit() {
        assert!(
            limit >= CONNECTIONS as u64 + 64,
            "this test opens {CONNECTIONS} sockets at once but the open-file limit is \
             {limit}; raise it (ulimit -n 4096)"
        );
    }
    let report = run_echo_load(
        addr,
        &EchoLoad {
            connections: CONNECTIONS,
            threads: 25,
            io_timeout: IO_TIMEOUT,
        },
    );
    assert!(
        report.errors.is_empty() && report.echoed == CONNECTIONS,
        "{}",
        server.report(&format!(
            "the echo load saw {} errors ({} connections open at once, {} echoed intact); \
             the first ones:\n  {}",
            report.errors.len(),
            report.open_at_once,
            report.echoed,
            report
                .errors
                .iter()
                .take(15)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        ))
    );
    assert_eq!(report.open_at_once, CONNECTIONS);
    report.bytes_sent
}

fn echo_summary(connections: usize, bytes: u64, datagrams: usize) -> String {
    format!("served {connections} connections, {bytes} bytes, {datagrams} datagrams")
}

#[test]
fn native_echo_server_passes_the_thousand_connection_load() {
    let run = Run::new(server("net_echo_server")).args([
        "0",
        "--bind",
        "127.0.0.1",
        "--connections",
        &CONNECTIONS.to_string(),
    ]);
    let mut native = run.spawn_native();
    let port = native
        .wait_until_listening(READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = echo_load(&native, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let outcome = native.wait(EXIT_TIMEOUT);
    expect_clean_exit(
        "the native echo server",
        &outcome,
        &echo_summary(CONNECTIONS, bytes, 0),
    );
}

#[test]
fn guest_echo_server_serves_a_thousand_concurrent_connections() {
    let port = PublishedPort::tcp(7000);
    let run = Run::new(server("net_echo_server"))
        .args(["7000", "--connections", &CONNECTIONS.to_string()])
        .cli_arg("--memory")
        .cli_arg("1G");
    let Some(vm) = start_guest(&run, &[port]) else {
        return;
    };
    let bytes = echo_load(&vm, port.host_addr());
    let outcome = vm.wait(EXIT_TIMEOUT);
    expect_clean_exit(
        "the guest echo server",
        &outcome,
        &echo_summary(CONNECTIONS, bytes, 0),
    );
}

/// Exchanges [`DATAGRAMS`] datagrams with the UDP echo server at `addr`, then stops it
/// with "quit" and returns how many datagrams were sent (resends included).
fn udp_session(server: &Background, addr: std::net::SocketAddr) -> usize {
    let sent = udp_echo_exchange(addr, DATAGRAMS, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{}", server.report(&format!("UDP echo: {e}"))));
    udp_request(addr, b"quit", b"bye", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{}", server.report(&format!("UDP quit: {e}"))));
    sent
}

/// The server's summary must count every datagram the host sent once, and at most the
/// resends on top.
fn expect_udp_summary(server: &str, outcome: &Outcome, sent: usize) {
    let text = outcome.stdout_text();
    let counted =
        (DATAGRAMS..=sent).find(|&n| text.lines().any(|l| l == echo_summary(0, 0, n).as_str()));
    assert!(
        outcome.status_code() == Some(0) && counted.is_some(),
        "{server} did not finish cleanly having echoed {DATAGRAMS}..={sent} datagrams: \
         termination {:?}\n--- stdout ---\n{text}\n--- stderr ---\n{}\n--- end ---",
        outcome.termination,
        outcome.stderr_text()
    );
}

#[test]
fn native_udp_echo_server_answers_and_quits() {
    let run = Run::new(server("net_echo_server")).args(["0", "--bind", "127.0.0.1", "--udp"]);
    let mut native = run.spawn_native();
    let port = native
        .wait_until_listening(READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let sent = udp_session(&native, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let outcome = native.wait(EXIT_TIMEOUT);
    expect_udp_summary("the native echo server", &outcome, sent);
}

#[test]
fn guest_udp_echo_through_a_published_port() {
    // The server binds UDP before it listens on TCP, so the TCP ready line means both.
    let tcp = PublishedPort::tcp(7001);
    let udp = PublishedPort::udp(7001);
    let run = Run::new(server("net_echo_server")).args(["7001", "--udp"]);
    let Some(vm) = start_guest(&run, &[tcp, udp]) else {
        return;
    };
    let sent = udp_session(&vm, udp.host_addr());
    let outcome = vm.wait(EXIT_TIMEOUT);
    expect_udp_summary("the guest echo server", &outcome, sent);
}

/// The files the HTTP server serves: (path under its root, contents).
fn http_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "index.html",
            b"<!doctype html><title>skiff</title>hello\n".to_vec(),
        ),
        ("empty.txt", Vec::new()),
        (
            "data/big.bin",
            pseudo_random_bytes(3 * 1024 * 1024 + 777, 0x4774),
        ),
    ]
}

/// Requests the HTTP server must answer: three files, a HEAD, a 404, a 400 and a 405.
const HTTP_REQUESTS: usize = 7;

/// Fetches every file of [`http_files`] with curl and checks the bytes. Without curl,
/// fails if `require_curl`, else fetches with the harness's own client.
fn fetch_files(
    server: &Background,
    addr: std::net::SocketAddr,
    scratch: &ScratchDir,
    require_curl: bool,
) {
    let fail = |what: String| -> ! { panic!("{}", server.report(&what)) };
    for (path, contents) in http_files() {
        let url = format!("http://{addr}/{path}");
        let output = scratch.path().join("fetched");
        let body = match curl_fetch(&url, &output, IO_TIMEOUT) {
            Some(Ok(200)) => std::fs::read(&output).unwrap_or_else(|e| fail(format!("{e}"))),
            Some(Ok(status)) => fail(format!("curl {url}: status {status}")),
            Some(Err(e)) => fail(e),
            None if require_curl => {
                fail("curl is not installed (scripts/setup.sh installs it)".into())
            }
            None => {
                eprintln!("note: curl is not installed; fetching {url} with the harness's client");
                let response = http_get(addr, "GET", &format!("/{path}"), IO_TIMEOUT)
                    .unwrap_or_else(|e| fail(format!("GET {url}: {e}")));
                if response.status != 200 {
                    fail(format!("GET {url}: status {}", response.status));
                }
                response.body
            }
        };
        if body != contents {
            fail(format!(
                "{url}: got {} bytes that differ from the {} bytes of the file",
                body.len(),
                contents.len()
            ));
        }
    }
}

/// Fetches every file with curl (or the harness's own client without curl) and checks
/// the bytes, then the error statuses. Uses exactly [`HTTP_REQUESTS`] requests.
fn http_session(server: &Background, addr: std::net::SocketAddr, scratch: &ScratchDir) {
    fetch_files(server, addr, scratch, false);
    let fail = |what: String| -> ! { panic!("{}", server.report(&what)) };
    let head = http_get(addr, "HEAD", "/data/big.bin", IO_TIMEOUT)
        .unwrap_or_else(|e| fail(format!("HEAD: {e}")));
    let big_len = (3 * 1024 * 1024 + 777).to_string();
    if head.status != 200 || head.header("content-length") != Some(big_len.as_str()) {
        fail(format!("HEAD /data/big.bin: {head:?}"));
    }
    for (method, path, status) in [
        ("GET", "/missing.txt", 404),
        ("GET", "/../etc/passwd", 400),
        ("DELETE", "/index.html", 405),
    ] {
        let response = http_get(addr, method, path, IO_TIMEOUT)
            .unwrap_or_else(|e| fail(format!("{method} {path}: {e}")));
        if response.status != status {
            fail(format!(
                "{method} {path}: status {}, expected {status}",
                response.status
            ));
        }
    }
}

fn http_scratch() -> ScratchDir {
    let scratch = ScratchDir::new("http");
    for (path, contents) in http_files() {
        scratch.write(&format!("www/{path}"), contents);
    }
    scratch
}

#[test]
fn native_http_server_serves_files_to_curl() {
    let scratch = http_scratch();
    let root = scratch.path().join("www");
    let run = Run::new(server("net_http_server"))
        .arg("0")
        .arg(&root)
        .args([
            "--bind",
            "127.0.0.1",
            "--requests",
            &HTTP_REQUESTS.to_string(),
        ]);
    let mut native = run.spawn_native();
    let port = native
        .wait_until_listening(READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    http_session(
        &native,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &scratch,
    );
    let outcome = native.wait(EXIT_TIMEOUT);
    expect_clean_exit(
        "the native HTTP server",
        &outcome,
        &format!("served {HTTP_REQUESTS} requests"),
    );
}

#[test]
fn curl_fetches_files_from_a_guest_http_server() {
    curl_fetches_files_from_a_guest_http_server_on("microvm");
}

/// The same over virtio-net on PCI: q35's card is a `virtio-net-pci` device with
/// MSI-X, microvm's a virtio-mmio one on an I/O APIC line.
#[test]
fn curl_fetches_files_from_a_guest_http_server_on_q35() {
    curl_fetches_files_from_a_guest_http_server_on("q35");
}

fn curl_fetches_files_from_a_guest_http_server_on(machine: &str) {
    let scratch = http_scratch();
    let port = PublishedPort::tcp(8080);
    let mut run = Run::new(server("net_http_server"))
        .cli_arg("--machine")
        .cli_arg(machine)
        .args(["8080", "/srv", "--requests", &HTTP_REQUESTS.to_string()]);
    for (path, _) in http_files() {
        run = run.file(
            scratch.path().join("www").join(path),
            &format!("/srv/{path}"),
        );
    }
    let Some(vm) = start_guest(&run, &[port]) else {
        return;
    };
    http_session(&vm, port.host_addr(), &scratch);
    let outcome = vm.wait(EXIT_TIMEOUT);
    expect_clean_exit(
        "the guest HTTP server",
        &outcome,
        &format!("served {HTTP_REQUESTS} requests"),
    );
}

/// Bytes `net_send_and_exit` writes: far more than the peer's window, so that much is
/// still queued in the guest when the program exits.
const SENT_BEFORE_EXIT: usize = 4 * 1024 * 1024;

/// `pattern_byte(1, offset)` of tests/programs/c/net_common.h.
fn pattern_byte(offset: usize) -> u8 {
    ((offset * 7 + 13 + offset / 251) % 251) as u8
}

/// Accepts one connection on `listener` and reads it to the end (within IO_TIMEOUT).
fn receive_one(
    listener: std::net::TcpListener,
) -> std::thread::JoinHandle<Result<Vec<u8>, String>> {
    std::thread::spawn(move || {
        use std::io::Read;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() > deadline {
                        return Err("nobody connected".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .map_err(|e| format!("read after {} bytes: {e}", got.len()))?;
        Ok(got)
    })
}

/// Fails unless `got` is exactly what `net_send_and_exit` wrote.
fn expect_everything_sent(side: &str, got: &[u8], outcome: &Outcome) {
    let first_wrong = got
        .iter()
        .enumerate()
        .find(|&(offset, &byte)| byte != pattern_byte(offset))
        .map(|(offset, _)| offset);
    assert!(
        got.len() == SENT_BEFORE_EXIT && first_wrong.is_none(),
        "{side}: the host received {} of the {SENT_BEFORE_EXIT} bytes the program wrote before \
         exiting (first wrong byte at {first_wrong:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        got.len(),
        outcome.stdout_text(),
        outcome.stderr_text()
    );
}

#[test]
fn native_send_and_exit_delivers_everything() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a host port");
    let port = listener.local_addr().unwrap().port();
    let receiver = receive_one(listener);
    let outcome = Run::new(server("net_send_and_exit"))
        .args([
            "127.0.0.1",
            &port.to_string(),
            &SENT_BEFORE_EXIT.to_string(),
        ])
        .native();
    let got = receiver.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    expect_everything_sent("native", &got, &outcome);
    expect_clean_exit(
        "native net_send_and_exit",
        &outcome,
        &format!("sent {SENT_BEFORE_EXIT}"),
    );
}

/// On Linux the kernel goes on delivering a socket's queued bytes (and its FIN) after
/// the process exits; Skiff powers the machine off at exit, so it must first let them
/// go. Found because the curl test above now and then lost the HTTP server's last
/// answer on a loaded machine. The guest connects out to the host (QEMU's user
/// network maps 10.0.2.2 to the host's loopback) and writes 4 MiB, far more than the
/// peer's window, so most of it is still queued when the program exits.
#[test]
fn guest_send_and_exit_delivers_everything() {
    let Some(guest) = guest() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a host port");
    let port = listener.local_addr().unwrap().port();
    let receiver = receive_one(listener);
    let outcome = Run::new(server("net_send_and_exit"))
        .args(["10.0.2.2", &port.to_string(), &SENT_BEFORE_EXIT.to_string()])
        .guest_timeout_secs(GUEST_TIMEOUT_SECS)
        .guest(&guest);
    let got = receiver.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    expect_everything_sent("guest", &got, &outcome);
    expect_clean_exit(
        "net_send_and_exit in the guest",
        &outcome,
        &format!("sent {SENT_BEFORE_EXIT}"),
    );
}

/// Debian's static busybox, the reference HTTP server.
const BUSYBOX: &str = "/bin/busybox";

/// Requests of the busybox `httpd` round: each connection is served by a forked child.
const HTTPD_ROUNDS: usize = 40;

/// busybox `httpd` accepts in its main process and forks a child for every connection
/// (the child serves it and exits), so this is Skiff's `fork`, `wait`-free reaping with
/// `SIGCHLD` ignored and descriptor sharing under a real server.
#[test]
fn curl_fetches_files_from_busybox_httpd() {
    assert!(
        std::path::Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install busybox-static (scripts/setup.sh)"
    );
    let scratch = http_scratch();
    let port = PublishedPort::tcp(8080);
    let mut run = Run::new(BUSYBOX).args(["httpd", "-f", "-p", "8080", "-h", "/srv"]);
    for (path, _) in http_files() {
        run = run.file(
            scratch.path().join("www").join(path),
            &format!("/srv/{path}"),
        );
    }
    let Some(vm) = start_guest(&run, &[port]) else {
        return;
    };
    let addr = port.host_addr();
    fetch_files(&vm, addr, &scratch, true);
    let fail = |what: String| -> ! { panic!("{}", vm.report(&what)) };
    let missing = http_get(addr, "GET", "/missing.txt", IO_TIMEOUT)
        .unwrap_or_else(|e| fail(format!("GET /missing.txt: {e}")));
    if missing.status != 404 {
        fail(format!("GET /missing.txt: status {}", missing.status));
    }
    // Many connections in a row: a child that is not reaped, a descriptor the parent
    // keeps or a leaked address space shows up as a hang or an error here.
    for round in 0..HTTPD_ROUNDS {
        let response = http_get(addr, "GET", "/index.html", IO_TIMEOUT)
            .unwrap_or_else(|e| fail(format!("round {round}: GET /index.html: {e}")));
        if response.status != 200 || response.body != http_files()[0].1 {
            fail(format!("round {round}: {response:?}"));
        }
    }
    let outcome = vm.stop();
    assert!(
        !outcome.stderr_text().contains("panic"),
        "the guest reported a panic:\n{}",
        outcome.stderr_text()
    );
}
