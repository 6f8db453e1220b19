//! End-to-end tests of `skiff run` with the real binary and a FAKE QEMU: small Perl
//! scripts that speak the guest side of the console protocol (noise, the preamble, then
//! frames) so the CLI's I/O plumbing, exit statuses and diagnostics are tested without a
//! kernel. The kernel file is any file: the fakes ignore it.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{minimal_static_elf, with_relay_ports};

use common::SKIFF;

/// Perl helpers every fake starts with: unbuffered binary stdout, `frame(tag, payload)`,
/// the preamble, and `read_exact(n)` for stdin.
const PERL_PRELUDE: &str = r#"#!/usr/bin/perl
use strict; use warnings;
binmode STDIN; binmode STDOUT; $| = 1;
sub frame { my ($tag, $payload) = @_; print pack("Cv", $tag, length $payload) . $payload; }
sub preamble { print "\xffSKIFF\x01\n"; }
sub read_exact {
    my ($n) = @_; my $buf = '';
    while (length($buf) < $n) {
        my $got = sysread(STDIN, $buf, $n - length($buf), length($buf));
        exit 3 unless $got;
    }
    return $buf;
}
if (my $copy = $ENV{FAKE_QEMU_COPY_INITRD}) {
    for my $i (0 .. $#ARGV - 1) {
        if ($ARGV[$i] eq '-initrd') {
            open(my $in, '<:raw', $ARGV[$i + 1]) or die "open initrd: $!";
            open(my $out, '>:raw', $copy) or die;
            local $/; print $out scalar(<$in>);
            open(my $path, '>', "$copy.path") or die; print $path $ARGV[$i + 1];
        }
    }
}
"#;

/// A temporary directory with a fake kernel, a valid static ELF and fake QEMUs.
struct Fixture {
    dir: common::TestDir,
}

impl Fixture {
    fn new() -> Fixture {
        let fixture = Fixture {
            dir: common::test_dir(),
        };
        fs::write(fixture.path("kernel"), b"not really a kernel").unwrap();
        let elf = minimal_static_elf();
        skiff_loader::parse(&elf).expect("the test ELF must satisfy the loader");
        fs::write(fixture.path("prog"), elf).unwrap();
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a fake QEMU whose body (after the prelude) is `body`.
    fn qemu(&self, body: &str) -> PathBuf {
        let path = self.path("fake-qemu");
        fs::write(&path, format!("{PERL_PRELUDE}{body}")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `skiff run --kernel K --qemu Q <extra> prog <args>`.
    fn command(&self, qemu: &Path, extra: &[&str], args: &[&str]) -> Command {
        let mut command = Command::new(SKIFF);
        command
            .arg("run")
            .arg("--kernel")
            .arg(self.path("kernel"))
            .arg("--qemu")
            .arg(qemu)
            .args(extra)
            .arg(self.path("prog"))
            .args(args)
            .env_remove("SKIFF_KERNEL")
            .env_remove("SKIFF_QEMU")
            .stdin(Stdio::null());
        command
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn frames_are_routed_and_exit_status_passed_through() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
print STDERR "qemu chatter that stays hidden\n";
print "SeaBIOS (version 1.16)\r\nBooting from ROM...\r\n";
preamble();
frame(1, "hello\0\xff\n");
frame(2, "app stderr\n");
frame(3, "\x03kernel error line");
frame(3, "\x01kernel info line");
frame(1, "bye\n");
frame(4, "\x00\x07");
exit 33;
"#,
    );
    let copy = fixture.path("initrd-copy");
    let output = fixture
        .command(&qemu, &[], &["--flag", "arg two"])
        .env("FAKE_QEMU_COPY_INITRD", &copy)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(7),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.stdout, b"hello\0\xff\nbye\n");
    assert_eq!(
        stderr_of(&output),
        "app stderr\nskiff: kernel: kernel error line\n"
    );

    // The initrd QEMU was given is a newc cpio with the program and its run config, and
    // it is removed once skiff is done.
    let initrd = fs::read(&copy).unwrap();
    assert!(initrd.starts_with(b"070701"));
    let contains = |needle: &[u8]| initrd.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"bin/prog\0"));
    assert!(contains(b".skiff/run\0"));
    assert!(contains(b"arg=/bin/prog\0arg=--flag\0arg=arg two\0"));
    assert!(contains(b"TRAILER!!!\0"));
    let used_path = fs::read_to_string(format!("{}.path", copy.display())).unwrap();
    assert!(
        !Path::new(&used_path).exists(),
        "temporary initrd {used_path} was left behind"
    );
}

#[test]
fn stdin_is_forwarded_as_frames_with_eof() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
preamble();
while (1) {
    my ($tag, $len) = unpack("Cv", read_exact(3));
    my $payload = $len ? read_exact($len) : '';
    if ($tag == 1) {
        die "oversized stdin frame" if $len > 4096;
        frame(1, $payload);
    } elsif ($tag == 2) {
        frame(1, "<EOF>");
        frame(4, "\x00\x00");
        exit 33;
    }
}
"#,
    );
    let input: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut child = fixture
        .command(&qemu, &[], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            stdin.write_all(&input).unwrap();
        })
    };
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    let mut expected = input;
    expected.extend_from_slice(b"<EOF>");
    assert!(
        output.stdout == expected,
        "stdout differs ({} bytes)",
        output.stdout.len()
    );

    // A closed stdin is end of file at once.
    let output = fixture.command(&qemu, &[], &[]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.stdout, b"<EOF>");
}

#[test]
fn guest_dying_without_exit_report_is_125_with_diagnostics() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
preamble();
frame(3, "\x02syscall 999 (unknown) not implemented");
frame(1, "partial output");
print STDERR "qemu: fatal: triple fault\n";
exit 0;
"#,
    );
    let output = fixture.command(&qemu, &[], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(output.stdout, b"partial output");
    let stderr = stderr_of(&output);
    assert!(stderr.contains("without reporting how"), "{stderr}");
    assert!(stderr.contains("triple-faulted"), "{stderr}");
    assert!(
        stderr.contains("skiff: kernel: syscall 999 (unknown) not implemented"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skiff: qemu: qemu: fatal: triple fault"),
        "{stderr}"
    );
    assert!(stderr.lines().all(|l| l.starts_with("skiff: ")), "{stderr}");
}

#[test]
fn qemu_failing_before_the_preamble_shows_its_messages() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
print "garbage from firmware\n";
print STDERR "qemu-system-x86_64: Error loading uncompressed kernel without PVH ELF Note\n";
exit 1;
"#,
    );
    let output = fixture.command(&qemu, &[], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("QEMU itself failed"), "{stderr}");
    assert!(stderr.contains("never started talking"), "{stderr}");
    assert!(
        stderr.contains("skiff: console: garbage from firmware"),
        "{stderr}"
    );
    assert!(stderr.contains("without PVH ELF Note"), "{stderr}");
}

#[test]
fn fatal_signal_maps_to_128_plus_n() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu("preamble(); frame(4, \"\\x01\\x0b\"); exit 33;\n");
    let output = fixture.command(&qemu, &[], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(139));
    let expected = format!(
        "skiff: {} killed by SIGSEGV (signal 11)\n",
        fixture.path("prog").display()
    );
    assert_eq!(stderr_of(&output), expected);
}

#[test]
fn timing_report_is_printed_on_request() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
preamble();
frame(5, pack("Q<Q<", 2_500_000, 400_000));
frame(4, "\x00\x00");
exit 33;
"#,
    );
    let output = fixture.command(&qemu, &["--timing"], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("skiff: timing: entry_to_app_ms=2.500 initrd_ms=0.400 "),
        "{stderr}"
    );
    assert!(stderr.contains("total_ms="), "{stderr}");
}

#[test]
fn verbose_shows_the_plan_and_all_log_lines() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
print STDERR "qemu warning line\n";
preamble();
frame(3, "\x00debug detail");
frame(4, "\x00\x00");
exit 33;
"#,
    );
    let output = fixture
        .command(&qemu, &["-v", "--machine", "q35"], &[])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = stderr_of(&output);
    for expected in [
        "skiff: accelerator: ",
        "skiff: kernel image: ",
        "skiff: initrd: ",
        "skiff: running: ",
        " -M q35 ",
        "skiff: network: user (guest 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3)\n",
        "-append 'skiff.verbose=1 skiff.ip=10.0.2.15/24 skiff.gw=10.0.2.2' ",
        " -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= ",
        "skiff: kernel: debug detail",
        "skiff: qemu: qemu warning line",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
}

#[test]
fn timeout_stops_the_vm_with_124() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu("preamble(); frame(1, \"started\\n\"); sleep 60; exit 33;\n");
    let started = Instant::now();
    let output = fixture
        .command(&qemu, &["--timeout", "0.5"], &[])
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(124));
    assert_eq!(output.stdout, b"started\n");
    assert_eq!(
        stderr_of(&output),
        "skiff: timed out after 0.500s; stopped the VM\n"
    );
}

#[test]
fn closed_stdout_pipe_exits_141_quietly() {
    let fixture = Fixture::new();
    let qemu = fixture.qemu(
        r#"
preamble();
while (1) { frame(1, "y\n" x 512); select(undef, undef, undef, 0.01); }
"#,
    );
    let mut child = fixture
        .command(&qemu, &[], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(141));
    assert_eq!(stderr_of(&output), "");
}

#[test]
fn sigterm_and_sigint_stop_the_vm_with_128_plus_n() {
    let fixture = Fixture::new();
    let pid_file = fixture.path("qemu.pid");
    let qemu = fixture.qemu(&format!(
        "open(my $f, '>', '{}'); print $f $$; close $f;\n\
         preamble(); frame(1, \"ready\\n\"); sleep 60; exit 33;\n",
        pid_file.display()
    ));
    for (signal, status) in [("TERM", 143), ("INT", 130)] {
        let mut child = fixture
            .command(&qemu, &[], &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut ready)
            .unwrap();
        assert_eq!(&ready, b"ready\n");
        let started = Instant::now();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let output = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(
            output.status.code(),
            Some(status),
            "{signal}: {:?}",
            output.status.signal()
        );
        let qemu_pid = fs::read_to_string(&pid_file).unwrap();
        assert!(
            !process_alive(&qemu_pid),
            "QEMU {qemu_pid} survived SIG{signal}"
        );
    }
}

/// Whether a process exists (and is not a zombie) by `/proc`.
fn process_alive(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn qemu_dies_with_a_killed_skiff() {
    let fixture = Fixture::new();
    let pid_file = fixture.path("qemu.pid");
    let qemu = fixture.qemu(&format!(
        "open(my $f, '>', '{}'); print $f $$; close $f;\n\
         preamble(); frame(1, \"ready\\n\"); sleep 60; exit 33;\n",
        pid_file.display()
    ));
    let copy = fixture.path("initrd-copy");
    let mut child = fixture
        .command(&qemu, &[], &[])
        .env("FAKE_QEMU_COPY_INITRD", &copy)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    child.kill().unwrap(); // SIGKILL: skiff gets no chance to clean up
    child.wait().unwrap();
    let qemu_pid = fs::read_to_string(&pid_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(&qemu_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A SIGKILLed skiff cannot remove its temporary initrd; the test does.
    let leftover = fs::read_to_string(format!("{}.path", copy.display())).unwrap();
    let _ = fs::remove_file(leftover);
    assert!(!process_alive(&qemu_pid), "QEMU {qemu_pid} outlived skiff");
}

#[test]
fn non_elf_is_126_before_booting() {
    let fixture = Fixture::new();
    let marker = fixture.path("qemu-ran");
    let qemu = fixture.qemu(&format!(
        "open(my $f, '>', '{}'); exit 1;\n",
        marker.display()
    ));
    fs::write(fixture.path("prog"), b"#!/bin/sh\necho not an ELF\n").unwrap();
    let output = fixture.command(&qemu, &[], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(126));
    let stderr = stderr_of(&output);
    let prefix = format!(
        "skiff: {}: cannot execute: ",
        fixture.path("prog").display()
    );
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !marker.exists(),
        "QEMU was started for a file that cannot run"
    );

    let output = Command::new(SKIFF)
        .args(["run", "--kernel"])
        .arg(fixture.path("kernel"))
        .arg(fixture.dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(126));
    assert!(stderr_of(&output).ends_with(": cannot execute: is a directory\n"));
}

#[test]
fn missing_program_is_127() {
    let fixture = Fixture::new();
    let missing = fixture.path("does-not-exist");
    let output = Command::new(SKIFF)
        .arg("run")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert_eq!(
        stderr_of(&output),
        format!("skiff: {}: no such file\n", missing.display())
    );
}

#[test]
fn missing_qemu_and_kernel_are_125() {
    let fixture = Fixture::new();
    let empty_path = fixture.path("empty-bin");
    fs::create_dir(&empty_path).unwrap();
    let output = Command::new(SKIFF)
        .arg("run")
        .arg("--kernel")
        .arg(fixture.path("kernel"))
        .arg(fixture.path("prog"))
        .env("PATH", &empty_path)
        .env_remove("SKIFF_QEMU")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        stderr_of(&output),
        "skiff: qemu-system-x86_64 not found; install it with: apt-get install qemu-system-x86\n"
    );

    let output = Command::new(SKIFF)
        .args(["run", "--kernel", "/nonexistent/skiff-kernel"])
        .arg(fixture.path("prog"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("/nonexistent/skiff-kernel (from --kernel) not found"));
}

#[test]
fn usage_errors_are_125_and_help_is_0() {
    let output = Command::new(SKIFF)
        .args(["run", "-m", "16M", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("at least 32M"));
    let help = Command::new(SKIFF)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(
        text.contains("Usage: skiff run [OPTIONS] <ELF|IMAGE> [-- ARGS...]"),
        "{text}"
    );
    assert!(text.contains("Exit status:"));
    let version = Command::new(SKIFF).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("skiff {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

#[test]
fn ready_line_appears_once_the_guest_listens_on_a_published_port() {
    let fixture = Fixture::new();
    let go_on = fixture.path("go-on");
    // The guest reports listening on the wrong protocol, then on an unpublished port,
    // then twice on the published one; it then waits for the test to have seen the
    // ready line, so the line must be printed while the VM runs, not at its end.
    let qemu = fixture.qemu(&format!(
        r#"
preamble();
frame(2, "starting\n");
frame(6, pack("Cv", 17, 80));
frame(6, pack("Cv", 6, 81));
frame(6, pack("Cv", 6, 80));
frame(6, pack("Cv", 6, 80));
for (1 .. 2000) {{ last if -e '{}'; select(undef, undef, undef, 0.01); }}
frame(2, "serving\n");
frame(4, "\x00\x00");
exit 33;
"#,
        go_on.display()
    ));
    let port = free_port();
    let mut child = fixture
        .command(&qemu, &["-p", &format!("{port}:80")], &[])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no ready line in {seen:?}"
        );
        seen.push(line.clone());
        if line.starts_with("skiff: ready: ") {
            break;
        }
    }
    fs::write(&go_on, b"").unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen:?} {rest}");
    assert_eq!(
        seen,
        [
            "starting\n".to_string(),
            format!("skiff: ready: 127.0.0.1:{port} -> guest port 80/tcp\n")
        ]
    );
    assert_eq!(rest, "serving\n");
}

#[test]
fn a_published_port_in_use_is_refused_before_booting() {
    let fixture = Fixture::new();
    let marker = fixture.path("qemu-ran");
    let qemu = fixture.qemu(&format!(
        "open(my $f, '>', '{}'); exit 1;\n",
        marker.display()
    ));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = fixture
        .command(&qemu, &["-p", &format!("{port}:80")], &[])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        stderr_of(&output),
        format!("skiff: port {port} is already in use on 127.0.0.1\n")
    );
    assert!(
        !marker.exists(),
        "QEMU was started although its port is taken"
    );
}

#[test]
fn network_usage_errors_are_125_before_booting() {
    let fixture = Fixture::new();
    let marker = fixture.path("qemu-ran");
    let qemu = fixture.qemu(&format!(
        "open(my $f, '>', '{}'); exit 1;\n",
        marker.display()
    ));
    let port = free_port();
    let cases: &[(&[&str], &str)] = &[
        (&["-p", "80"], "'80' needs both ports: HOST_PORT:GUEST_PORT"),
        (&["-p", "70000:80"], "the host port 70000 is out of range; ports are 1 to 65535"),
        (&["--publish", "8080:80/sctp"], "unknown protocol 'sctp'; use /tcp or /udp"),
        (
            &["-p", "8080:80", "-p", "8080:81"],
            "skiff: host port 8080/tcp is published twice",
        ),
        (&["-p", "8080:80", "-p", "8080:80"], "is published twice"),
        (
            &["--net", "tap:tap0", "--dhcp", "-p", "8080:80"],
            "skiff: ports cannot be published with --net tap:tap0: the guest has its own address",
        ),
        (
            &["--net", "none", "-p", &format!("{port}:80")],
            "skiff: publishing ports (-p) needs a network, but --net none gives the VM none: use --net user",
        ),
        (&["--net", "none", "--dns", "1.1.1.1"], "DNS servers (--dns) need a network"),
        (&["--net", "tap:tap0"], "skiff: --net tap:tap0 needs the guest's address: --ip A.B.C.D/N"),
        (&["--ip", "10.0.0.2/24"], "skiff: --ip and --gateway are for --net tap:IFNAME"),
        (&["--net", "bridge"], "unknown network 'bridge'; use user, none or tap:IFNAME"),
        (&["--net", "tap:tap0", "--ip", "10.0.0.0/24"], "the network's own address"),
        (&["--dns", "dns.google"], "invalid value 'dns.google' for '--dns <IP>'"),
        (
            &["--dns", "1.1.1.1", "--dns", "1.0.0.1", "--dns", "8.8.8.8", "--dns", "8.8.4.4"],
            "skiff: 4 DNS servers given; programs read at most 3",
        ),
    ];
    for (args, needle) in cases {
        let output = fixture.command(&qemu, args, &[]).output().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(125), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!marker.exists(), "{args:?} started QEMU");
    }
}

#[test]
fn network_options_reach_qemu_the_kernel_and_etc() {
    let fixture = Fixture::new();
    let qemu = fixture.path("recording-qemu");
    common::fake_qemu(&qemu);
    let run = |extra: &[&str]| {
        let output = fixture.command(&qemu, extra, &[]).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{extra:?}: {}",
            stderr_of(&output)
        );
        assert_eq!(stderr_of(&output), "", "{extra:?}");
        let args = common::fake_qemu_args(&qemu);
        let initrd = common::read_newc(&fs::read(format!("{}.initrd", qemu.display())).unwrap());
        (args, initrd)
    };
    let after = |args: &[String], flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let file = |initrd: &[common::Entry], name: &str| {
        initrd
            .iter()
            .find(|e| e.name == name)
            .map(|e| String::from_utf8(e.data.clone()).unwrap())
    };

    // The default: user networking, outbound only, DNS through QEMU.
    let (args, initrd) = run(&[]);
    assert_eq!(after(&args, "-netdev").as_deref(), Some("user,id=n0"));
    assert!(args.contains(&"virtio-net-device,netdev=n0".to_string()));
    assert_eq!(
        after(&args, "-append").as_deref(),
        Some("skiff.ip=10.0.2.15/24 skiff.gw=10.0.2.2")
    );
    let resolv = file(&initrd, "etc/resolv.conf").unwrap();
    assert!(resolv.ends_with("\nnameserver 10.0.2.3\n"), "{resolv}");
    assert!(file(&initrd, "etc/hosts")
        .unwrap()
        .contains("127.0.0.1 localhost\n"));

    // Published ports on q35, with other name servers and DHCP.
    let (tcp, udp) = (free_port(), free_port());
    let (args, initrd) = run(&[
        "--machine",
        "q35",
        "-p",
        &format!("{tcp}:80"),
        "--publish",
        &format!("0.0.0.0:{udp}:53/udp"),
        "--dns",
        "9.9.9.9",
        "--dhcp",
    ]);
    assert_eq!(
        with_relay_ports(after(&args, "-netdev"), &[tcp]),
        Some(format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:RELAY-:80,hostfwd=udp:0.0.0.0:{udp}-:53"
        ))
    );
    assert!(args.contains(&"virtio-net-pci,netdev=n0,romfile=".to_string()));
    assert_eq!(after(&args, "-append").as_deref(), Some("skiff.dhcp=1"));
    let resolv = file(&initrd, "etc/resolv.conf").unwrap();
    assert!(resolv.ends_with("\nnameserver 9.9.9.9\n"), "{resolv}");

    // No network: no card, no address, no resolv.conf; a user's hosts file gains
    // localhost.
    fs::write(fixture.path("hosts"), "10.1.1.1 db\n").unwrap();
    let hosts_arg = format!("{}:/etc/hosts", fixture.path("hosts").display());
    let (args, initrd) = run(&["--net", "none", "--file", &hosts_arg]);
    assert!(!args.iter().any(|a| a.contains("net")), "{args:?}");
    assert_eq!(after(&args, "-append").as_deref(), Some(""));
    assert_eq!(file(&initrd, "etc/resolv.conf"), None);
    assert_eq!(
        file(&initrd, "etc/hosts").as_deref(),
        Some("10.1.1.1 db\n127.0.0.1 localhost\n")
    );
}
