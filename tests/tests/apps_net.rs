//! The network servers of apps/ in the guest, driven from the host by their own tools:
//! redis (apps/redis) answers `redis-benchmark` and `redis-cli`, and nginx (apps/nginx)
//! serves its static site to `curl` and `wrk` without an error, and its memory use is
//! the same after a second round of load as after the first.
//!
//! Each test builds the app's image with `skiff build` (the app's static binary comes
//! from its build.sh, which scripts/test.sh runs first), boots it with its port
//! published on a free host port, waits for the CLI's ready line, runs the load, and
//! stops the VM. The loads are short versions of what `scripts/bench-net.sh` measures;
//! these tests check correctness (no errors, the bytes served), never speed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use skiff_tests::background::{Background, Stream};
use skiff_tests::net::PublishedPort;
use skiff_tests::{build_app, guest, repo_root, Guest, Run, ScratchDir};

/// A guest boot under TCG plus the server's start-up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The guest's `--timeout`: well beyond what the loads need.
const GUEST_TIMEOUT_SECS: u64 = 600;
/// The host-side tools' limit (coreutils `timeout`), so a stalled server fails the test
/// with a message instead of hanging it.
const TOOL_TIMEOUT_SECS: u64 = 300;

/// Build apps/<app> (its binary, then its image into `scratch`) and return the image.
fn build_image(guest: &Guest, app: &str, scratch: &ScratchDir) -> PathBuf {
    build_app(app);
    let dir = repo_root().join("apps").join(app);
    let image = scratch.path().join(format!("{app}.skiff"));
    let out = Command::new(&guest.skiff)
        .arg("build")
        .arg(&dir)
        .arg("-o")
        .arg(&image)
        .output()
        .expect("run skiff build");
    assert!(
        out.status.success(),
        "skiff build apps/{app} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// Boot `image` with `guest_port` published on a free host port and wait until the CLI
/// says it is ready. `cli_args` go to `skiff run`.
fn boot(
    guest: &Guest,
    image: &Path,
    guest_port: u16,
    cli_args: &[&str],
) -> (Background, PublishedPort) {
    let port = PublishedPort::tcp(guest_port);
    let mut run = Run::new(image).guest_timeout_secs(GUEST_TIMEOUT_SECS);
    for arg in cli_args {
        run = run.cli_arg(arg);
    }
    let mut vm = run.publish(&port).spawn_guest(guest);
    vm.wait_until_published(&port, READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("the app never became ready: {e}"));
    (vm, port)
}

/// Stop the VM and fail if the guest's kernel reported a panic on the way.
fn stop_without_panic(vm: Background) {
    let outcome = vm.stop();
    assert!(
        !outcome.stderr_text().contains("panic"),
        "the guest reported a panic:\n{}",
        outcome.stderr_text()
    );
}

/// How much the guest's memory may grow between two equal rounds of load.
const LEAK_ALLOWANCE_MIB: f64 = 1.0;

/// One `skiff: memory: ...` line of `--mem-report`, in MiB.
#[derive(Debug)]
struct MemoryReading {
    in_use_mib: f64,
    heap_allocated_mib: f64,
}

/// Parses "skiff: memory: 11.4 MiB in use of 251.6 MiB (kernel heap 9.1 MiB allocated of
/// 10.0 MiB)".
fn parse_memory_line(line: &str) -> Option<MemoryReading> {
    let rest = line.strip_prefix("skiff: memory: ")?;
    let (in_use, rest) = rest.split_once(" MiB in use of ")?;
    let (_, heap) = rest.split_once("(kernel heap ")?;
    let (allocated, _) = heap.split_once(" MiB allocated of ")?;
    Some(MemoryReading {
        in_use_mib: in_use.parse().ok()?,
        heap_allocated_mib: allocated.parse().ok()?,
    })
}

/// Five seconds of `wrk` on 1k.txt, which must see no error, then the guest's memory
/// once it has ended: the newest report after two more seconds (reports come every
/// second, and closed connections need a moment to go).
fn wrk_round(vm: &mut Background, base: &str) -> MemoryReading {
    let wrk = tool(
        Path::new("wrk"),
        &["-t", "2", "-c", "20", "-d", "5s", &format!("{base}/1k.txt")],
    );
    let report = text(&wrk.stdout);
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    // wrk prints these lines only when something went wrong.
    let failed = report.contains("Non-2xx") || report.contains("Socket errors");
    assert!(
        wrk.status.success() && requests > 0 && !failed,
        "{}",
        vm.report(&format!(
            "wrk: {:?}, {requests} requests\n{report}{}",
            wrk.status,
            text(&wrk.stderr)
        ))
    );
    std::thread::sleep(Duration::from_secs(2));
    let lines = vm.take_pending_lines(Stream::Stderr);
    let newest = lines.iter().rev().find_map(|l| parse_memory_line(l));
    newest.unwrap_or_else(|| {
        panic!(
            "{}",
            vm.report("no `skiff: memory:` line from --mem-report 1 in the last two seconds")
        )
    })
}

/// Run a host tool under `timeout`.
fn tool(program: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(TOOL_TIMEOUT_SECS.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn redis_answers_redis_cli_and_redis_benchmark() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("apps-redis");
    let image = build_image(&guest, "redis", &scratch);
    let (vm, port) = boot(&guest, &image, 6379, &[]);
    let build = repo_root().join("apps/redis/build");
    let host_port = port.host_addr().port().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-h", "127.0.0.1", "-p", &host_port];
        all.extend_from_slice(args);
        let out = tool(&build.join("redis-cli"), &all);
        assert!(
            out.status.success(),
            "{}",
            vm.report(&format!("redis-cli {args:?} failed: {}", text(&out.stderr)))
        );
        text(&out.stdout)
    };
    assert_eq!(cli(&["SET", "skiff:key", "the value"]), "OK\n");
    assert_eq!(cli(&["GET", "skiff:key"]), "the value\n");
    assert_eq!(cli(&["DEL", "skiff:key"]), "1\n");

    let bench = tool(
        &build.join("redis-benchmark"),
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &host_port,
            "-q",
            "-n",
            "20000",
            "-c",
            "50",
            "-t",
            "ping,set,get,incr,lpush,lpop",
        ],
    );
    // -q prints progress with carriage returns; the final figure of each test ends
    // its line.
    let output = text(&bench.stdout).replace('\r', "\n");
    let finished: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("requests per second"))
        .collect();
    let errors = text(&bench.stderr);
    let problems: Vec<&str> = output
        .lines()
        .chain(errors.lines())
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .collect();
    assert!(
        bench.status.success() && finished.len() == 7 && problems.is_empty(),
        "{}",
        vm.report(&format!(
            "redis-benchmark: {:?}, {} tests finished (7 expected), errors: {problems:?}\n{}",
            bench.status,
            finished.len(),
            finished.join("\n")
        ))
    );
    stop_without_panic(vm);
}

#[test]
fn nginx_serves_its_site_to_curl_and_wrk_without_errors() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("apps-nginx");
    let image = build_image(&guest, "nginx", &scratch);
    let (mut vm, port) = boot(&guest, &image, 8080, &["--mem-report", "1"]);
    let site = repo_root().join("apps/nginx/site");
    let base = format!("http://127.0.0.1:{}", port.host_addr().port());

    for file in ["index.html", "64k.txt", "1m.txt"] {
        let fetched = scratch.path().join(file);
        let out = tool(
            Path::new("curl"),
            &[
                "-sS",
                "--fail",
                "-o",
                fetched.to_str().unwrap(),
                &format!("{base}/{file}"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            vm.report(&format!("curl {file}: {}", text(&out.stderr)))
        );
        let want = std::fs::read(site.join(file)).unwrap();
        let got = std::fs::read(&fetched).unwrap();
        assert!(
            got == want,
            "{file}: served {} bytes that differ from the site's {}",
            got.len(),
            want.len()
        );
    }

    // The same load twice; memory once each has ended. Connections, buffers and
    // nginx's pools come and go with the load, so the second reading must equal the
    // first give or take LEAK_ALLOWANCE_MIB; a leak of 100 bytes a request (about
    // 10,000 requests a round here) would exceed it.
    let after_first = wrk_round(&mut vm, &base);
    let after_second = wrk_round(&mut vm, &base);
    for (what, first, second) in [
        (
            "pages in use",
            after_first.in_use_mib,
            after_second.in_use_mib,
        ),
        (
            "kernel heap allocated",
            after_first.heap_allocated_mib,
            after_second.heap_allocated_mib,
        ),
    ] {
        assert!(
            second - first <= LEAK_ALLOWANCE_MIB,
            "{}",
            vm.report(&format!(
                "memory grew from one round of wrk to the next: {what} {first:.1} MiB \
                 after the first, {second:.1} MiB after the second"
            ))
        );
    }
    eprintln!(
        "nginx guest memory after each round of wrk: {:.1} / {:.1} MiB in use, \
         kernel heap {:.1} / {:.1} MiB allocated",
        after_first.in_use_mib,
        after_second.in_use_mib,
        after_first.heap_allocated_mib,
        after_second.heap_allocated_mib
    );
    stop_without_panic(vm);
}

#[test]
fn memory_lines_parse() {
    let m = parse_memory_line(
        "skiff: memory: 11.4 MiB in use of 251.6 MiB (kernel heap 9.1 MiB allocated of 10.0 MiB)",
    )
    .unwrap();
    assert_eq!((m.in_use_mib, m.heap_allocated_mib), (11.4, 9.1));
    assert!(parse_memory_line("skiff: ready: 127.0.0.1:1 -> guest port 2/tcp").is_none());
}
