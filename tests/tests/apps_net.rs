//! The network servers of apps/ in the guest, driven from the host by their own tools:
//! redis (apps/redis) answers `redis-benchmark` and `redis-cli`, and nginx (apps/nginx)
//! serves its static site to `curl` and `wrk` without an error.
//!
//! Each test builds the app's image with `skiff build` (the app's static binary comes
//! from its build.sh, which scripts/test.sh runs first), boots it with its port
//! published on a free host port, waits for the CLI's ready line, runs the load, and
//! stops the VM. The loads are short versions of what `scripts/bench-net.sh` measures;
//! these tests check correctness (no errors, the bytes served), never speed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use skiff_tests::background::Background;
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
/// says it is ready.
fn boot(guest: &Guest, image: &Path, guest_port: u16) -> (Background, PublishedPort) {
    let port = PublishedPort::tcp(guest_port);
    let mut vm = Run::new(image)
        .guest_timeout_secs(GUEST_TIMEOUT_SECS)
        .publish(&port)
        .spawn_guest(guest);
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
    let (vm, port) = boot(&guest, &image, 6379);
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
    let (vm, port) = boot(&guest, &image, 8080);
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
    stop_without_panic(vm);
}
