//! End-to-end tests of `skiff build`, `skiff inspect` and `skiff run <image>` with the
//! real binary. No kernel or QEMU is needed: the kernel image is any file, and runs use
//! a fake QEMU that records its arguments and initrd.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{fake_qemu, fake_qemu_args, minimal_static_elf, read_newc, with_relay_ports, SKIFF};

/// A project directory: a program, a script, a site directory, a kernel and a manifest.
struct Project {
    dir: common::TestDir,
}

const MANIFEST: &str = r#"
[program]
path = "prog"
args = ["serve", "--port", "8080"]
env = ["GREETING=hi"]
workdir = "/app"

[[files]]
host = "run.sh"
guest = "/app/run.sh"

[[files]]
host = "site"
guest = "/srv/site"

[[volumes]]
file = "data.img"
mount = "/data"
size = "1M"

[vm]
memory = "256M"
cpus = 1
machine = "q35"
"#;

impl Project {
    fn new() -> Project {
        let project = Project {
            dir: common::test_dir(),
        };
        fs::write(project.path("prog"), minimal_static_elf()).unwrap();
        fs::set_permissions(project.path("prog"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(project.path("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::create_dir_all(project.path("site/css")).unwrap();
        fs::write(project.path("site/index.html"), b"<h1>hi</h1>\n").unwrap();
        fs::write(project.path("site/css/main.css"), b"body {}\n").unwrap();
        fs::write(project.path("kernel"), b"not really a kernel").unwrap();
        fs::write(project.path("skiff.toml"), MANIFEST).unwrap();
        project
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `skiff <args>` in the project directory with the fake kernel.
    fn skiff(&self, args: &[&str]) -> Command {
        let mut command = Command::new(SKIFF);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("SKIFF_KERNEL", self.path("kernel"))
            .env_remove("SKIFF_QEMU")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null());
        command
    }

    fn build(&self, args: &[&str]) -> Output {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        self.skiff(&all).output().unwrap()
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_ok(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout_of(output),
        stderr_of(output)
    );
}

fn touch(path: &Path, seconds: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
}

#[test]
fn build_writes_an_image_directory() {
    let project = Project::new();
    let output = project.build(&[]);
    assert_ok(&output);
    let image = project.path("prog.skiff");
    assert!(
        stderr_of(&output).starts_with(&format!("skiff: built {}", image.display())),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(
        fs::read(image.join("kernel")).unwrap(),
        b"not really a kernel"
    );
    let run = fs::read_to_string(image.join("run.toml")).unwrap();
    for expected in [
        "format = 1",
        "memory = \"256M\"",
        "cpus = 1",
        "machine = \"q35\"",
        "[[volumes]]",
        &format!("file = \"{}\"", project.path("data.img").display()),
        "mount = \"/data\"",
        "size = \"1M\"",
    ] {
        assert!(run.contains(expected), "missing {expected:?} in {run}");
    }

    let entries = read_newc(&fs::read(image.join("initrd.cpio")).unwrap());
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {entries:?}"))
    };
    assert_eq!(find("bin/prog").data, minimal_static_elf());
    assert_eq!(find("bin/prog").mode, 0o100755);
    assert_eq!(find("app/run.sh").data, b"#!/bin/sh\necho hi\n");
    assert_eq!(find("app/run.sh").mode, 0o100644);
    assert_eq!(find("srv/site/css/main.css").data, b"body {}\n");
    assert_eq!(find("etc/hostname").data, b"skiff\n");
    let config = &find(".skiff/run").data;
    let contains = |needle: &[u8]| config.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"exe=/bin/prog\0"));
    assert!(contains(b"cwd=/app\0"));
    assert!(contains(
        b"arg=/bin/prog\0arg=serve\0arg=--port\0arg=8080\0"
    ));
    assert!(contains(b"env=TERM=linux\0env=GREETING=hi\0"));
    assert!(contains(b"volume=skiff-vol0:/data\0"));
    assert!(entries.iter().all(|e| e.mtime == 0));
    let mut names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
    let unsorted = names.clone();
    names.sort();
    assert_eq!(names, unsorted);
}

#[test]
fn builds_are_reproducible() {
    let project = Project::new();
    assert_ok(&project.build(&["-o", "first.skiff"]));
    // Touch every source, change permissions as another umask would, and build again.
    for name in ["prog", "run.sh", "site/index.html", "site/css/main.css"] {
        touch(&project.path(name), 1_700_000_000);
    }
    fs::set_permissions(project.path("run.sh"), fs::Permissions::from_mode(0o664)).unwrap();
    fs::set_permissions(project.path("site/css"), fs::Permissions::from_mode(0o775)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_ok(&project.build(&["-o", "second.skiff"]));
    let first = fs::read(project.path("first.skiff/initrd.cpio")).unwrap();
    let second = fs::read(project.path("second.skiff/initrd.cpio")).unwrap();
    assert!(
        first == second,
        "the initrd changed between identical builds"
    );
    assert_eq!(
        fs::read(project.path("first.skiff/run.toml")).unwrap(),
        fs::read(project.path("second.skiff/run.toml")).unwrap()
    );

    // SOURCE_DATE_EPOCH sets every time (and so changes the bytes, reproducibly).
    let epoch = |out: &str| {
        let output = project
            .skiff(&["build", "-o", out])
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .output()
            .unwrap();
        assert_ok(&output);
        fs::read(project.path(&format!("{out}/initrd.cpio"))).unwrap()
    };
    let third = epoch("third.skiff");
    assert!(third != first);
    assert!(read_newc(&third).iter().all(|e| e.mtime == 1_234_567_890));
    assert!(epoch("fourth.skiff") == third);

    let output = project
        .skiff(&["build", "-o", "bad.skiff"])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("SOURCE_DATE_EPOCH='yesterday'"));
}

#[test]
fn build_replaces_its_own_output_only() {
    let project = Project::new();
    assert_ok(&project.build(&[]));
    fs::write(project.path("prog.skiff/stale"), b"x").unwrap();
    assert_ok(&project.build(&[]));
    assert!(!project.path("prog.skiff/stale").exists());

    fs::create_dir(project.path("precious")).unwrap();
    fs::write(project.path("precious/file"), b"keep me").unwrap();
    let output = project.build(&["-o", "precious"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr_of(&output).contains("exists and is not a skiff image"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(fs::read(project.path("precious/file")).unwrap(), b"keep me");

    // A manifest named by directory or by file, with its paths relative to itself.
    let elsewhere = common::test_dir();
    let output = Command::new(SKIFF)
        .arg("build")
        .arg(project.dir.path())
        .arg("-o")
        .arg(elsewhere.path().join("x.skiff"))
        .env("SKIFF_KERNEL", project.path("kernel"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_ok(&output);
    assert!(elsewhere.path().join("x.skiff/initrd.cpio").is_file());
}

#[test]
fn build_errors_are_clear() {
    let project = Project::new();
    let write = |text: &str| fs::write(project.path("skiff.toml"), text).unwrap();

    write("[program]\npath = \"prog\"\nargz = []\n");
    let output = project.build(&[]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("skiff: skiff.toml:3: unknown key `argz` in [program]"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    write("[program]\npath = \"prog\"\n[vm]\ncpus = 4\n");
    let stderr = stderr_of(&project.build(&[]));
    assert!(stderr.contains("skiff.toml:4: vm.cpus = 4"), "{stderr}");

    write("[program]\npath = \"run.sh\"\n");
    let output = project.build(&[]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr_of(&output).contains("[program] path: ")
            && stderr_of(&output).contains("cannot execute"),
        "{}",
        stderr_of(&output)
    );

    write("[program]\npath = \"missing\"\n");
    assert!(stderr_of(&project.build(&[])).contains("no such file"));

    fs::remove_file(project.path("skiff.toml")).unwrap();
    let output = project.build(&[]);
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("no skiff.toml in the current directory"));
    let output = project.build(&["nowhere.toml"]);
    assert!(stderr_of(&output).contains("nowhere.toml: no such file or directory"));

    write("[program]\npath = \"prog\"\n");
    let output = project
        .skiff(&["build", "--kernel", "/nonexistent/kernel"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("/nonexistent/kernel (from --kernel) not found"));
}

#[test]
fn inspect_lists_the_image() {
    let project = Project::new();
    assert_ok(&project.build(&[]));
    let output = project.skiff(&["inspect", "prog.skiff"]).output().unwrap();
    assert_ok(&output);
    let text = stdout_of(&output);
    for expected in [
        "image     prog.skiff\n",
        "format    1\n",
        "program   /bin/prog\n",
        "argv      /bin/prog serve --port 8080\n",
        "env       PATH=/bin:/usr/bin:/sbin:/usr/sbin\n",
        "          GREETING=hi\n",
        "workdir   /app\n",
        "machine   q35\n",
        "memory    256M\n",
        "cpus      1\n",
        " -> /data (missing; skiff run creates it with 1M)\n",
        "network   user (default)\n",
        "ports     (none)\n",
        "kernel    19 bytes (19 B)\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Entry lines: mode, size (right-aligned), guest path.
    let entry = |path: &str| -> Vec<&str> {
        text.lines()
            .rev()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("no entry {path} in\n{text}"))
            .split_whitespace()
            .collect()
    };
    let elf_size = minimal_static_elf().len().to_string();
    assert_eq!(entry("/bin/prog"), ["-rwxr-xr-x", &elf_size, "/bin/prog"]);
    assert_eq!(entry("/srv/site/css"), ["drwxr-xr-x", "0", "/srv/site/css"]);
    assert_eq!(
        entry("/srv/site/css/main.css"),
        ["-rw-r--r--", "8", "/srv/site/css/main.css"]
    );
    assert_eq!(entry("/tmp"), ["drwxrwxrwt", "0", "/tmp"]);

    for (target, message) in [
        ("nowhere", "nowhere: no such file or directory"),
        ("site", "site is not a skiff image (it has no run.toml"),
        ("run.sh", "run.sh is not a skiff image"),
    ] {
        let output = project.skiff(&["inspect", target]).output().unwrap();
        assert_eq!(output.status.code(), Some(125), "{target}");
        assert!(
            stderr_of(&output).contains(message),
            "{}",
            stderr_of(&output)
        );
    }
    fs::remove_file(project.path("prog.skiff/kernel")).unwrap();
    let output = project.skiff(&["inspect", "prog.skiff"]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("is incomplete: it has no kernel"));
}

#[test]
fn an_image_runs_with_its_configuration_and_overrides() {
    let project = Project::new();
    assert_ok(&project.build(&[]));
    let qemu = project.path("fake-qemu");
    fake_qemu(&qemu);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--qemu", qemu.to_str().unwrap()];
        all.extend_from_slice(args);
        project.skiff(&all).output().unwrap()
    };

    // As built: the image's kernel and initrd as they are, its memory, machine and
    // volume (created, since the manifest gives a size).
    let output = run(&["prog.skiff"]);
    assert_ok(&output);
    let args = fake_qemu_args(&qemu);
    let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(after("-m"), "256M");
    assert_eq!(after("-M"), "q35");
    assert_eq!(after("-kernel"), "prog.skiff/kernel");
    assert_eq!(after("-initrd"), "prog.skiff/initrd.cpio");
    assert_eq!(
        after("-drive"),
        format!(
            "id=vol0,file={},format=raw,if=none,cache=writeback",
            project.path("data.img").display()
        )
    );
    assert!(args.contains(&"virtio-blk-pci,drive=vol0,serial=skiff-vol0".to_string()));
    assert_eq!(
        fs::metadata(project.path("data.img")).unwrap().len(),
        1 << 20
    );

    // Overrides: memory, machine, arguments, environment, files and another volume.
    let output = run(&[
        "-m",
        "1G",
        "--machine",
        "microvm",
        "-e",
        "GREETING=yo",
        "--file",
        "run.sh:/extra.sh",
        "--volume",
        "more.img:/more:1M",
        "prog.skiff",
        "--",
        "check",
        "-x",
    ]);
    assert_ok(&output);
    let args = fake_qemu_args(&qemu);
    let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(after("-m"), "1024M");
    assert!(after("-M").starts_with("microvm"));
    assert_ne!(after("-initrd"), "prog.skiff/initrd.cpio");
    assert!(args.contains(&"virtio-blk-device,drive=vol1,serial=skiff-vol1".to_string()));
    let entries = read_newc(&fs::read(format!("{}.initrd", qemu.display())).unwrap());
    let config = &entries
        .iter()
        .find(|e| e.name == ".skiff/run")
        .unwrap()
        .data;
    let contains = |needle: &[u8]| config.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"arg=/bin/prog\0arg=check\0arg=-x\0env="));
    assert!(contains(b"env=GREETING=yo\0"));
    assert!(!contains(b"GREETING=hi"));
    assert!(contains(
        b"volume=skiff-vol0:/data\0volume=skiff-vol1:/more\0"
    ));
    assert!(entries.iter().any(|e| e.name == "extra.sh"));
    assert!(entries.iter().any(|e| e.name == "bin/prog"));
    // The image itself is unchanged.
    let image = read_newc(&fs::read(project.path("prog.skiff/initrd.cpio")).unwrap());
    assert!(!image.iter().any(|e| e.name == "extra.sh"));

    // A volume the image's own volume file is given twice.
    let output = run(&["--volume", "data.img:/again", "prog.skiff"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr_of(&output).contains("each volume needs its own file"));
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

#[test]
fn an_image_carries_its_network() {
    let project = Project::new();
    let (web, dns) = (free_port(), free_port());
    fs::write(
        project.path("skiff.toml"),
        format!("[program]\npath = \"prog\"\n\n[vm]\nports = [\"{web}:80\", \"{dns}:53/udp\"]\n"),
    )
    .unwrap();
    assert_ok(&project.build(&[]));
    let run_toml = fs::read_to_string(project.path("prog.skiff/run.toml")).unwrap();
    for expected in [
        format!("\"127.0.0.1:{web}:80/tcp\""),
        format!("\"127.0.0.1:{dns}:53/udp\""),
    ] {
        assert!(run_toml.contains(&expected), "{expected} in {run_toml}");
    }
    assert!(!run_toml.contains("net ="), "{run_toml}");

    let output = project.skiff(&["inspect", "prog.skiff"]).output().unwrap();
    assert_ok(&output);
    let text = stdout_of(&output);
    for expected in [
        "network   user\n".to_string(),
        "address   10.0.2.15/24 via 10.0.2.2\n".into(),
        "dns       10.0.2.3\n".into(),
        format!("ports     127.0.0.1:{web} -> guest port 80/tcp\n"),
        format!("          127.0.0.1:{dns} -> guest port 53/udp\n"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }

    let qemu = project.path("fake-qemu");
    fake_qemu(&qemu);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--qemu", qemu.to_str().unwrap()];
        all.extend_from_slice(args);
        all.push("prog.skiff");
        let output = project.skiff(&all).output().unwrap();
        let args = fake_qemu_args(&qemu);
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].clone())
        };
        let initrd = read_newc(&fs::read(format!("{}.initrd", qemu.display())).unwrap());
        let resolv = initrd
            .iter()
            .find(|e| e.name == "etc/resolv.conf")
            .map(|e| String::from_utf8(e.data.clone()).unwrap());
        (output, after("-netdev"), after("-initrd").unwrap(), resolv)
    };

    // As built: both ports forwarded, the image's own initrd.
    let (output, netdev, initrd, resolv) = run(&[]);
    assert_ok(&output);
    assert_eq!(
        with_relay_ports(netdev, &[web]),
        Some(format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:RELAY-:80,hostfwd=udp:127.0.0.1:{dns}-:53"
        ))
    );
    assert_eq!(initrd, "prog.skiff/initrd.cpio");
    assert!(resolv.unwrap().ends_with("nameserver 10.0.2.3\n"));

    // -p publishes guest port 80 elsewhere instead, and adds another port; the guest's
    // files do not change.
    let (moved, extra) = (free_port(), free_port());
    let (output, netdev, initrd, _) =
        run(&["-p", &format!("{moved}:80"), "-p", &format!("{extra}:8443")]);
    assert_ok(&output);
    assert_eq!(
        with_relay_ports(netdev, &[web, moved, extra]),
        Some(format!(
            "user,id=n0,hostfwd=udp:127.0.0.1:{dns}-:53,hostfwd=tcp:127.0.0.1:RELAY-:80,\
             hostfwd=tcp:127.0.0.1:RELAY-:8443"
        ))
    );
    assert_eq!(initrd, "prog.skiff/initrd.cpio");

    // --dns rewrites resolv.conf in a copy of the initrd.
    let (output, _, initrd, resolv) = run(&["--dns", "9.9.9.9"]);
    assert_ok(&output);
    assert_ne!(initrd, "prog.skiff/initrd.cpio");
    assert!(resolv.unwrap().ends_with("\nnameserver 9.9.9.9\n"));

    // --net none drops the image's ports and its generated resolv.conf.
    let (output, netdev, initrd, resolv) = run(&["--net", "none"]);
    assert_ok(&output);
    assert_eq!(netdev, None);
    assert_ne!(initrd, "prog.skiff/initrd.cpio");
    assert_eq!(resolv, None);

    // An image without a network refuses -p with the way out.
    fs::write(
        project.path("skiff.toml"),
        "[program]\npath = \"prog\"\n\n[vm]\nnet = \"none\"\n",
    )
    .unwrap();
    assert_ok(&project.build(&[]));
    let output = project.skiff(&["inspect", "prog.skiff"]).output().unwrap();
    assert!(stdout_of(&output).contains("network   none\nports     (none)\n"));
    let (output, ..) = run(&["-p", &format!("{web}:80")]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr_of(&output)
            .contains("needs a network, but --net none gives the VM none: use --net user"),
        "{}",
        stderr_of(&output)
    );
    let (output, netdev, ..) = run(&["--net", "user", "-p", &format!("{web}:80")]);
    assert_ok(&output);
    assert_eq!(
        with_relay_ports(netdev, &[web]),
        Some("user,id=n0,hostfwd=tcp:127.0.0.1:RELAY-:80".to_string())
    );
}
