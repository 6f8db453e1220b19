//! End-to-end tests of `skiff volume ...` and `skiff run --volume` with the real binary
//! (a fake QEMU stands in for the VM).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{fake_qemu, fake_qemu_args, minimal_static_elf, SKIFF};

struct Dir {
    dir: common::TestDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: common::test_dir(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn skiff(&self, args: &[&str]) -> Output {
        Command::new(SKIFF)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.skiff(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "skiff {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Run `skiff args` expecting 125 and return its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.skiff(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(125), "skiff {args:?}: {stderr}");
        assert!(stderr.starts_with("skiff: "), "{stderr}");
        stderr
    }
}

#[test]
fn create_then_copy_in_list_cat_and_copy_out() {
    let d = Dir::new();
    assert_eq!(
        d.ok(&["volume", "create", "--size", "8M", "data.img"]),
        "data.img: 8M FAT16 volume\n"
    );
    assert_eq!(fs::metadata(d.path("data.img")).unwrap().len(), 8 << 20);
    let e = d.fails(&["volume", "create", "--size", "8M", "data.img"]);
    assert!(e.contains("already exists; use --force"), "{e}");

    fs::write(d.path("hello.txt"), b"hello, volume\n").unwrap();
    fs::create_dir_all(d.path("site/img")).unwrap();
    fs::write(d.path("site/index.html"), b"<p>x</p>").unwrap();
    fs::write(d.path("site/img/logo.bin"), vec![7u8; 100_000]).unwrap();

    d.ok(&["volume", "cp", "hello.txt", "data.img:/"]);
    d.ok(&[
        "volume",
        "cp",
        "hello.txt",
        "data.img:/etc/app/greeting.txt",
    ]);
    d.ok(&["volume", "cp", "-r", "site", "data.img:/www"]);
    d.ok(&["volume", "mkdir", "data.img", "/logs/app", "/tmp"]);

    let listing = d.ok(&["volume", "ls", "data.img"]);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["etc/", "hello.txt", "logs/", "tmp/", "www/"],
        "{listing}"
    );
    let hello = listing.lines().find(|l| l.ends_with(" hello.txt")).unwrap();
    assert!(hello.starts_with("- 14 "), "{listing}");
    assert!(
        listing.lines().next().unwrap().starts_with("d  - "),
        "{listing}"
    );
    let www = d.ok(&["volume", "ls", "data.img", "/www/img"]);
    assert!(www.ends_with(" 100000 ") || www.contains("100000"), "{www}");
    assert!(www.trim_end().ends_with("logo.bin"), "{www}");

    assert_eq!(
        d.ok(&["volume", "cat", "data.img", "/etc/app/greeting.txt"]),
        "hello, volume\n"
    );
    d.ok(&["volume", "cp", "data.img:/hello.txt", "copy.txt"]);
    assert_eq!(fs::read(d.path("copy.txt")).unwrap(), b"hello, volume\n");
    fs::create_dir(d.path("out")).unwrap();
    d.ok(&["volume", "cp", "-r", "data.img:/www", "out"]);
    assert_eq!(
        fs::read(d.path("out/www/img/logo.bin")).unwrap(),
        vec![7u8; 100_000]
    );
    assert_eq!(fs::read(d.path("out/www/index.html")).unwrap(), b"<p>x</p>");

    let info = d.ok(&["volume", "info", "data.img"]);
    assert!(info.contains("type         FAT16\n"), "{info}");
    assert!(info.contains("size         8M\n"), "{info}");

    d.ok(&["volume", "rm", "data.img", "/hello.txt"]);
    let e = d.fails(&["volume", "rm", "data.img", "/www"]);
    assert!(e.contains("use -r"), "{e}");
    d.ok(&["volume", "rm", "-r", "data.img", "/www"]);
    let listing = d.ok(&["volume", "ls", "data.img"]);
    assert!(
        !listing.contains("www") && !listing.contains("hello.txt"),
        "{listing}"
    );

    // --force replaces the volume with an empty one.
    assert_eq!(
        d.ok(&["volume", "create", "--force", "--fat", "32", "--size", "64M", "data.img"]),
        "data.img: 64M FAT32 volume\n"
    );
    assert_eq!(d.ok(&["volume", "ls", "data.img"]), "");
}

/// Names beyond ASCII (a first character included, which starry-fatfs's own directory
/// code cannot handle) are stored as FAT long names and come back unchanged.
#[test]
fn non_ascii_names_round_trip() {
    let d = Dir::new();
    d.ok(&["volume", "create", "--size", "4M", "u.img"]);
    fs::write(d.path("h.txt"), b"summer\n").unwrap();
    d.ok(&["volume", "cp", "h.txt", "u.img:/été.txt"]);
    d.ok(&["volume", "mkdir", "u.img", "/été/Ünïcode", "/日本語"]);
    fs::create_dir(d.path("fruit")).unwrap();
    fs::write(d.path("fruit/Äpfel.txt"), b"apples\n").unwrap();
    fs::write(d.path("fruit/ørken 🍐.txt"), b"pears\n").unwrap();
    d.ok(&["volume", "cp", "-r", "fruit", "u.img:/été/Ünïcode"]);

    let names = |path: &str| -> Vec<String> {
        d.ok(&["volume", "ls", "u.img", path])
            .lines()
            // `TYPE SIZE YYYY-MM-DD HH:MM NAME`: the name follows the time.
            .map(|l| l[l.find(':').unwrap() + 4..].to_string())
            .collect()
    };
    assert_eq!(names("/"), ["été/", "été.txt", "日本語/"]);
    assert_eq!(names("/été/Ünïcode/fruit"), ["Äpfel.txt", "ørken 🍐.txt"]);
    // Lookups ignore case beyond ASCII too, as the guest's do.
    assert_eq!(d.ok(&["volume", "cat", "u.img", "/ÉTÉ.TXT"]), "summer\n");
    fs::create_dir(d.path("out")).unwrap();
    d.ok(&["volume", "cp", "-r", "u.img:/été", "out"]);
    assert_eq!(
        fs::read(d.path("out/été/Ünïcode/fruit/ørken 🍐.txt")).unwrap(),
        b"pears\n"
    );
    d.ok(&["volume", "rm", "-r", "u.img", "/été"]);
    assert_eq!(names("/"), ["été.txt", "日本語/"]);
    // A name FAT cannot hold is one clear error, not a crash.
    let e = d.fails(&["volume", "cp", "h.txt", "u.img:/é:x"]);
    assert!(e.contains("a character FAT does not allow"), "{e}");
}

#[test]
fn volume_errors_are_clear() {
    let d = Dir::new();
    d.ok(&["volume", "create", "--size", "1M", "v.img"]);
    fs::write(d.path("junk.img"), vec![0u8; 4096]).unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["volume", "ls", "missing.img"],
            "missing.img: no such file (make a volume with",
        ),
        (
            &["volume", "ls", "junk.img"],
            "junk.img is not a FAT volume image",
        ),
        (
            &["volume", "ls", "v.img", "/nope"],
            "v.img:/nope: no such file or directory",
        ),
        (&["volume", "cat", "v.img", "/"], "is a directory"),
        (
            &["volume", "cp", "a", "b"],
            "neither SRC nor DEST is on a volume",
        ),
        (
            &["volume", "cp", "v.img:/a", "v.img:/b"],
            "both SRC and DEST are on volumes",
        ),
        (
            &["volume", "cp", "nothing.txt", "v.img:/x"],
            "nothing.txt: no such file or directory",
        ),
        (&["volume", "cp", ".", "v.img:/x"], "is a directory (use -r"),
        (&["volume", "ls", "v.img", "/../x"], "'..' is not allowed"),
    ];
    for (args, message) in cases {
        let e = d.fails(args);
        assert!(e.contains(message), "{args:?}: {e}");
    }
    // A bad size is a usage error (clap's message, status 125).
    let output = d.skiff(&["volume", "create", "--size", "1K", "small.img"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&output.stderr).contains("too small for a volume"));
    let e = d.fails(&["volume", "create", "--size", "1M", "--fat", "32", "f32.img"]);
    assert!(e.contains("a FAT32 filesystem cannot be 1M"), "{e}");
    assert!(!d.path("f32.img").exists());
    // A closed stdout ends `cat` quietly, like other tools in a pipeline.
    fs::write(d.path("huge.txt"), vec![b'y'; 2 << 20]).unwrap();
    let e = d.fails(&["volume", "cp", "huge.txt", "v.img:/huge.txt"]);
    assert!(
        e.contains("v.img:/huge.txt: no space left on the volume"),
        "{e}"
    );
    fs::write(d.path("big.txt"), vec![b'y'; 300_000]).unwrap();
    d.ok(&["volume", "cp", "big.txt", "v.img:/big.txt"]);
    let shell = format!("'{SKIFF}' volume cat v.img /big.txt | head -c 10");
    let output = Command::new("sh")
        .arg("-c")
        .arg(&shell)
        .current_dir(d.dir.path())
        .output()
        .unwrap();
    assert_eq!(output.stdout, b"yyyyyyyyyy");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

fn run_with_volumes(d: &Dir, qemu: &Path, volumes: &[&str]) -> Output {
    let mut command = Command::new(SKIFF);
    command
        .args(["run", "--kernel"])
        .arg(d.path("kernel"))
        .arg("--qemu")
        .arg(qemu)
        .current_dir(d.dir.path())
        .stdin(Stdio::null());
    for volume in volumes {
        command.args(["--volume", volume]);
    }
    command.arg(d.path("prog")).output().unwrap()
}

#[test]
fn run_checks_and_attaches_volumes() {
    let d = Dir::new();
    fs::write(d.path("kernel"), b"kernel").unwrap();
    fs::write(d.path("prog"), minimal_static_elf()).unwrap();
    let qemu = d.path("fake-qemu");
    fake_qemu(&qemu);
    d.ok(&["volume", "create", "--size", "1M", "a.img"]);

    let output = run_with_volumes(&d, &qemu, &["a.img:/data", "b.img:/cache:2M"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let args = fake_qemu_args(&qemu).join(" ");
    let expected = format!(
        "-drive id=vol0,file={},format=raw,if=none,cache=writeback \
         -device virtio-blk-device,drive=vol0,serial=skiff-vol0 \
         -drive id=vol1,file={},format=raw,if=none,cache=writeback \
         -device virtio-blk-device,drive=vol1,serial=skiff-vol1",
        d.path("a.img").display(),
        d.path("b.img").display()
    );
    assert!(args.contains(&expected), "{args}");
    assert_eq!(fs::metadata(d.path("b.img")).unwrap().len(), 2 << 20);
    let initrd = fs::read(format!("{}.initrd", qemu.display())).unwrap();
    let needle = b"volume=skiff-vol0:/data\0volume=skiff-vol1:/cache\0";
    assert!(initrd.windows(needle.len()).any(|w| w == needle));

    let failures: [(&[&str], &str); 5] = [
        (
            &["missing.img:/data"],
            "volume missing.img (for /data) does not exist; create it with: skiff volume create",
        ),
        (&["prog:/data"], "volume for /data: "),
        (
            &["a.img:/data", "./a.img:/other"],
            "is given for two volumes (/data and /other)",
        ),
        (&["a.img:/bin"], "would hide the program /bin/prog"),
        (&["a.img:/x", "b.img:/x"], "two volumes are mounted at /x"),
    ];
    for (volumes, message) in failures {
        let output = run_with_volumes(&d, &qemu, volumes);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{volumes:?}: {stderr}");
        assert!(stderr.contains(message), "{volumes:?}: {stderr}");
    }
    let output = run_with_volumes(&d, &qemu, &["prog:/data"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a FAT volume image"));
}
