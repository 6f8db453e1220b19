//! Persistent volumes: FAT on virtio-blk, as users meet them through `skiff run
//! --volume` and `skiff volume`. Each test formats its own volume with the CLI, boots
//! real programs against it, and then reads the result back from the host (with the
//! CLI and with `fsck.fat`) or from a second boot.
//!
//! Where FAT cannot express something (symlinks, hard links, case-sensitive names) the
//! guest's answers must differ from Linux's own file system exactly on the lines listed
//! in [`FAT_DIFFERENCES`]; everything else is compared byte for byte with a native run.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use skiff_tests::{first_difference, guest, programs, Guest, Outcome, Run, ScratchDir};

/// The lines of `file_semantics` where a FAT volume answers differently from Linux's
/// own file system, with the FAT answer.
const FAT_DIFFERENCES: &[(&str, &str)] = &[
    ("symlink", "EPERM"),
    ("o_nofollow_symlink", "n/a"),
    ("readlink", "n/a"),
    ("symlink_follow", "n/a"),
    ("link", "EPERM"),
    ("link_nlink", "n/a"),
    ("link_same_content", "n/a"),
    ("case_insensitive", "yes"),
];

/// `skiff` with `args`; panics with both streams unless it exits 0.
fn skiff_ok(guest: &Guest, args: &[&str]) -> String {
    let out = Command::new(&guest.skiff)
        .args(args)
        .output()
        .expect("run skiff");
    assert!(
        out.status.success(),
        "skiff {} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait until no VM holds `image` (the volume commands take QEMU's lock), so that a
/// killed VM's QEMU cannot still be writing when the next one starts. A QEMU that
/// outlives its CLI for long is a bug of its own: fail with a distinct message.
fn wait_until_volume_released(guest: &Guest, image: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(&guest.skiff)
            .args(["volume", "ls", image.to_str().unwrap()])
            .output()
            .expect("run skiff volume ls");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "skiff volume ls {} failed: {err}",
            image.display()
        );
        // A reader of a volume in use gets a warning, not a refusal.
        if !err.contains("in use") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "QEMU still holds {} 20 s after its CLI was killed: the parent-death signal did not stop it",
            image.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh FAT volume of `size` in `dir`.
fn new_volume(guest: &Guest, dir: &ScratchDir, name: &str, size: &str) -> PathBuf {
    let image = dir.path().join(name);
    skiff_ok(
        guest,
        &["volume", "create", "--size", size, image.to_str().unwrap()],
    );
    image
}

fn volume_arg(image: &Path, mount: &str) -> String {
    format!("{}:{mount}", image.display())
}

/// Runs `program args` in the guest with `image` on /data (and extra CLI args).
fn run_on_volume(
    guest: &Guest,
    program: impl Into<PathBuf>,
    args: &[&str],
    image: &Path,
    cli: &[&str],
) -> (Run, Outcome) {
    let mut run = Run::new(program)
        .args(args)
        .cli_arg("--volume")
        .cli_arg(volume_arg(image, "/data"));
    for arg in cli {
        run = run.cli_arg(arg);
    }
    let outcome = run.guest(guest);
    run.expect_finished(&outcome)
        .unwrap_or_else(|report| panic!("{report}"));
    (run, outcome)
}

/// `fsck.fat -n` (installed by scripts/setup.sh) must find nothing to repair.
fn assert_fsck_clean(image: &Path) {
    let out = Command::new("fsck.fat")
        .arg("-n")
        .arg(image)
        .output()
        .expect("fsck.fat not found: scripts/setup.sh installs dosfstools");
    assert!(
        out.status.success(),
        "fsck.fat -n {} reported problems ({:?}):\n{}{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Native output of `file_semantics` with FAT's documented answers substituted.
fn expected_on_fat(native: &str) -> String {
    native
        .lines()
        .map(|line| {
            let key = line.split(':').next().unwrap_or("");
            match FAT_DIFFERENCES.iter().find(|(k, _)| *k == key) {
                Some((k, v)) => format!("{k}: {v}\n"),
                None => format!("{line}\n"),
            }
        })
        .collect()
}

fn native_file_semantics() -> String {
    let scratch = ScratchDir::new("file-semantics-native");
    let program = programs().any_static("file_semantics");
    let native = Run::new(&program)
        .arg(scratch.path())
        .native_cwd(scratch.path())
        .native();
    assert_eq!(
        native.status_code(),
        Some(0),
        "native file_semantics failed:\n{}",
        native.stdout_text()
    );
    native.stdout_text()
}

fn file_semantics_on_fat(machine: &str) {
    let native = native_file_semantics();
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("file-semantics-fat");
    let image = new_volume(&guest, &scratch, "vol.img", "32M");
    let program = programs().any_static("file_semantics");
    let (run, outcome) = run_on_volume(
        &guest,
        &program,
        &["/data"],
        &image,
        &["--machine", machine],
    );
    let expected = expected_on_fat(&native);
    if let Some(diff) = first_difference(expected.as_bytes(), &outcome.stdout) {
        panic!(
            "{}",
            run.failure(
                "guest",
                &format!("FAT answers differ from the documented ones: {diff}"),
                &outcome
            )
        );
    }
    assert_eq!(outcome.status_code(), Some(0));
    assert_fsck_clean(&image);
}

#[test]
fn file_semantics_on_a_fat_volume_match_linux_where_fat_can_express_them() {
    file_semantics_on_fat("microvm");
}

#[test]
fn file_semantics_on_a_fat_volume_over_pci_on_q35() {
    file_semantics_on_fat("q35");
}

#[test]
fn file_semantics_on_the_memory_root_match_linux() {
    let native = native_file_semantics();
    let Some(guest) = guest() else { return };
    let run = Run::new(programs().any_static("file_semantics")).arg("/tmp");
    let outcome = run.guest(&guest);
    run.expect_finished(&outcome)
        .unwrap_or_else(|report| panic!("{report}"));
    if let Some(diff) = first_difference(native.as_bytes(), &outcome.stdout) {
        panic!("{}", run.failure("guest", &diff, &outcome));
    }
}

/// `file_locks`: flock, OFD and POSIX record locks between descriptions, threads
/// blocking on them and being interrupted, natively and in the guest, on the memory
/// root and on a FAT volume, every C build variant on the root.
#[test]
fn file_locks_match_linux_on_tmpfs_and_on_a_volume() {
    let scratch = ScratchDir::new("file-locks-native");
    let native = Run::new(programs().any_static("file_locks")).arg(scratch.path());
    let expected = native.native();
    assert_eq!(
        expected.status_code(),
        Some(0),
        "native file_locks failed:\n{}",
        expected.stdout_text()
    );
    assert!(expected.stdout_text().ends_with("file_locks: done\n"));
    let Some(guest) = guest() else { return };
    let volumes = ScratchDir::new("file-locks-fat");
    let image = new_volume(&guest, &volumes, "vol.img", "8M");
    let mut runs: Vec<(PathBuf, &str)> = programs()
        .variants
        .iter()
        .map(|v| (programs().c(v, "file_locks"), "/tmp"))
        .collect();
    runs.push((programs().any_static("file_locks"), "/data"));
    for (program, dir) in runs {
        let (run, outcome) = run_on_volume(&guest, &program, &[dir], &image, &[]);
        if let Some(diff) = first_difference(&expected.stdout, &outcome.stdout) {
            panic!(
                "{}",
                run.failure("guest", &format!("in {dir}: {diff}"), &outcome)
            );
        }
        assert_eq!(outcome.status_code(), Some(0), "in {dir}");
    }
    assert_fsck_clean(&image);
}

/// `mmap_file`: private and shared file mappings, write-back, and coherence between a
/// shared mapping and read/write/ftruncate on the same file, exactly as on Linux.
#[test]
fn shared_file_mappings_are_written_back_on_tmpfs_and_on_a_volume() {
    let scratch = ScratchDir::new("mmap-native");
    let program = programs().any_static("mmap_file");
    let native = Run::new(&program).arg(scratch.path()).native();
    assert_eq!(native.status_code(), Some(0), "{}", native.stdout_text());
    let expected = native.stdout_text();
    let Some(guest) = guest() else { return };
    let volumes = ScratchDir::new("mmap-fat");
    let image = new_volume(&guest, &volumes, "vol.img", "16M");
    for dir in ["/tmp", "/data"] {
        let (run, outcome) = run_on_volume(&guest, &program, &[dir], &image, &[]);
        if let Some(diff) = first_difference(expected.as_bytes(), &outcome.stdout) {
            panic!(
                "{}",
                run.failure("guest", &format!("in {dir}: {diff}"), &outcome)
            );
        }
        assert_eq!(outcome.status_code(), Some(0), "in {dir}");
    }
    assert_fsck_clean(&image);
}

/// The guest writes and fsyncs records; as soon as the host has seen `synced K` the
/// whole VM (QEMU and the CLI) is killed with SIGKILL. The next boot must read back at
/// least K + 1 intact records. On `machine`: virtio-blk over MMIO (microvm) or PCI (q35).
fn fsynced_records_survive_the_vm_being_killed(machine: &str) {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new(&format!("fsync-kill-{machine}"));
    let image = new_volume(&guest, &scratch, "vol.img", "16M");
    let program = programs().any_static("fsync_records");
    const KILL_AFTER: u32 = 20;

    let mut child = Command::new(&guest.skiff)
        .arg("run")
        .arg("--timeout")
        .arg("120")
        .args(["--machine", machine])
        .arg("--volume")
        .arg(volume_arg(&image, "/data"))
        .arg(&program)
        .args(["write", "/data", "100000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start skiff");
    let group = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut last_synced = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(90)) {
        if let Some(n) = line.strip_prefix("synced ") {
            let n: u32 = n.trim().parse().expect("synced N");
            last_synced = Some(n);
            if n >= KILL_AFTER {
                break;
            }
        }
    }
    // SIGKILL the CLI's group: nothing gets to flush. QEMU runs in a process group of
    // its own and dies through its parent-death signal an instant later; the next
    // boot must not start before it is gone, or the two would share the volume.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status();
    let _ = child.wait();
    wait_until_volume_released(&guest, &image);
    let last = last_synced.unwrap_or_else(|| {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("the guest never reported a synced record; stderr:\n{err}")
    });
    assert!(last >= KILL_AFTER, "the guest stopped early at {last}");

    let min = (last + 1).to_string();
    let (run, outcome) = run_on_volume(
        &guest,
        &program,
        &["verify", "/data", min.as_str()],
        &image,
        &["--machine", machine],
    );
    assert!(
        outcome.status_code() == Some(0) && outcome.stdout_text().contains("\nok\n"),
        "{}",
        run.failure(
            "guest",
            &format!("on {machine}: records fsynced before the kill are missing (needed {min})"),
            &outcome
        )
    );
}

#[test]
fn fsynced_records_survive_the_vm_being_killed_on_microvm() {
    fsynced_records_survive_the_vm_being_killed("microvm");
}

#[test]
fn fsynced_records_survive_the_vm_being_killed_on_q35() {
    fsynced_records_survive_the_vm_being_killed("q35");
}

/// What a guest shell leaves on a volume is visible to the host tools, and the volume
/// is clean after the guest exits.
#[test]
fn host_tools_read_what_the_guest_wrote_and_fsck_finds_it_clean() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("volume-host-tools");
    let image = new_volume(&guest, &scratch, "vol.img", "16M");
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "scripts/setup.sh installs busybox-static"
    );
    // Shell built-ins, then an applet in its own boot.
    let script = "echo 'first line' > /data/notes.txt; \
                  echo 'second line' >> /data/notes.txt; \
                  printf 'x%.0s' 1 2 3 > '/data/A Long File Name.data'";
    run_on_volume(&guest, busybox, &["sh", "-c", script], &image, &[]);
    run_on_volume(
        &guest,
        busybox,
        &["mkdir", "-p", "/data/deep/er/est"],
        &image,
        &[],
    );
    let img = image.to_str().unwrap();
    let listing = skiff_ok(&guest, &["volume", "ls", img, "/"]);
    for name in ["notes.txt", "A Long File Name.data", "deep"] {
        assert!(listing.contains(name), "volume ls lacks {name}:\n{listing}");
    }
    assert!(skiff_ok(&guest, &["volume", "ls", img, "/deep/er"]).contains("est"));
    assert_eq!(
        skiff_ok(&guest, &["volume", "cat", img, "/notes.txt"]),
        "first line\nsecond line\n"
    );
    assert_eq!(
        skiff_ok(&guest, &["volume", "cat", img, "/A Long File Name.data"]),
        "xxx"
    );
    assert_fsck_clean(&image);

    // And the other way: a file the host copies in is read by the guest.
    let host_file = scratch.write("from-host.txt", "made on the host\n");
    skiff_ok(
        &guest,
        &[
            "volume",
            "cp",
            host_file.to_str().unwrap(),
            &format!("{img}:/from-host.txt"),
        ],
    );
    let (_, outcome) = run_on_volume(
        &guest,
        busybox,
        &["cat", "/data/from-host.txt"],
        &image,
        &[],
    );
    assert_eq!(outcome.stdout_text(), "made on the host\n");
}

/// Names beyond ASCII travel both ways: what a guest program names `été.txt` the host
/// tools list and copy out under that name, and what the host tools copy in under
/// `日本/Äpfel.txt` the guest opens and lists by its name.
#[test]
fn non_ascii_names_round_trip_between_guest_and_host_tools() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("volume-names");
    let image = new_volume(&guest, &scratch, "vol.img", "8M");
    let busybox = Path::new("/bin/busybox");
    let script = "echo 'made in the guest' > '/data/été.txt'";
    run_on_volume(&guest, busybox, &["sh", "-c", script], &image, &[]);
    run_on_volume(&guest, busybox, &["mkdir", "/data/Ünïcode"], &image, &[]);
    let img = image.to_str().unwrap();
    let listing = skiff_ok(&guest, &["volume", "ls", img]);
    for name in [" été.txt\n", " Ünïcode/\n"] {
        assert!(
            listing.contains(name),
            "volume ls lacks {name:?}:\n{listing}"
        );
    }
    let out = scratch.path().join("out.txt");
    skiff_ok(
        &guest,
        &[
            "volume",
            "cp",
            &format!("{img}:/été.txt"),
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "made in the guest\n"
    );

    let host_file = scratch.write("Äpfel.txt", "made on the host\n");
    skiff_ok(
        &guest,
        &[
            "volume",
            "cp",
            host_file.to_str().unwrap(),
            &format!("{img}:/日本/Äpfel.txt"),
        ],
    );
    let (_, outcome) = run_on_volume(
        &guest,
        busybox,
        &["cat", "/data/日本/Äpfel.txt"],
        &image,
        &[],
    );
    assert_eq!(outcome.stdout_text(), "made on the host\n");
    // The shell's glob lists the directories through getdents64 (busybox's ls would
    // show bytes beyond ASCII as '?').
    let script = "for f in /data/* /data/日本/*; do echo \"$f\"; done";
    let (_, outcome) = run_on_volume(&guest, busybox, &["sh", "-c", script], &image, &[]);
    assert_eq!(
        outcome.stdout_text(),
        "/data/Ünïcode\n/data/été.txt\n/data/日本\n/data/日本/Äpfel.txt\n"
    );
    assert_fsck_clean(&image);
}

/// The disk sector holding byte `offset` of the file whose 8.3 directory entry in the
/// root of the FAT16 volume `image` is `short_name` (11 bytes, space-padded), found by
/// following the file's cluster chain as any FAT reader does.
fn fat16_sector_of(image: &Path, short_name: &[u8; 11], offset: u64) -> u64 {
    let img = std::fs::read(image).expect("read the volume image");
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([img[at], img[at + 1]]));
    let (bps, spc) = (u16_at(11), u64::from(img[13]));
    let (reserved, fats, root_entries, fat_sectors) =
        (u16_at(14), u64::from(img[16]), u16_at(17), u16_at(22));
    assert!(
        fat_sectors > 0 && root_entries > 0,
        "{} is not FAT16",
        image.display()
    );
    let root = reserved + fats * fat_sectors;
    let data = root + (root_entries * 32).div_ceil(bps);
    let entry = (0..root_entries)
        .map(|i| (root * bps + i * 32) as usize)
        .find(|&at| &img[at..at + 11] == short_name)
        .unwrap_or_else(|| panic!("no {:?} in the root directory", short_name));
    let mut cluster = u16_at(entry + 26);
    for _ in 0..offset / (bps * spc) {
        cluster = u16_at((reserved * bps + cluster * 2) as usize);
        assert!((2..0xfff0).contains(&cluster), "the chain ends early");
    }
    data + (cluster - 2) * spc + offset % (bps * spc) / bps
}

/// A disk that fails under the guest: QEMU's blkdebug driver (put between the volume
/// image and virtio-blk by a wrapper given to `skiff run --qemu`) fails reads of one
/// sector of a file and every write. The program must get EIO from read and from
/// fsync, and the kernel must carry on to a normal exit without panicking.
#[test]
fn disk_errors_reach_the_program_as_eio_and_never_panic_the_kernel() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("volume-io-errors");
    let image = new_volume(&guest, &scratch, "vol.img", "16M");
    let content: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let big = scratch.write("big.bin", &content);
    let img = image.to_str().unwrap();
    skiff_ok(
        &guest,
        &[
            "volume",
            "cp",
            big.to_str().unwrap(),
            &format!("{img}:/big.bin"),
        ],
    );
    let bad_sector = fat16_sector_of(&image, b"BIG     BIN", 512 * 1024);
    let config = scratch.write(
        "blkdebug.conf",
        format!(
            "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{bad_sector}\"\n\n\
             [inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\n"
        ),
    );
    let qemu = std::env::var_os("SKIFF_QEMU")
        .map(PathBuf::from)
        .or_else(|| skiff_tests::find_on_path("qemu-system-x86_64"))
        .expect("qemu-system-x86_64 (scripts/setup.sh installs it)");
    // The first volume's -drive file=IMAGE,... becomes file=blkdebug:CONFIG:IMAGE,...
    let wrapper = scratch.write(
        "qemu-blkdebug",
        format!(
            "#!/bin/bash\nargs=()\nfor a in \"$@\"; do\n  case \"$a\" in\n    \
             id=vol0,file=*) a=\"id=vol0,file=blkdebug:{}:${{a#id=vol0,file=}}\" ;;\n  \
             esac\n  args+=(\"$a\")\ndone\nexec '{}' \"${{args[@]}}\"\n",
            config.display(),
            qemu.display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let program = programs().any_static("io_errors");
    let (run, outcome) = run_on_volume(
        &guest,
        &program,
        &["/data/big.bin", "/data/new.bin"],
        &image,
        &["--qemu", wrapper.to_str().unwrap()],
    );
    let expected = "read: EIO\nbytes before the error intact: yes\nread there again: EIO\n\
                    write to the cache: ok\nfsync: EIO\nio_errors: done\n";
    assert!(
        outcome.status_code() == Some(0) && outcome.stdout_text() == expected,
        "{}",
        run.failure("guest", "the program did not see EIO as expected", &outcome)
    );
    let stderr = outcome.stderr_text();
    assert!(
        !stderr.to_lowercase().contains("panic"),
        "{}",
        run.failure("guest", "the kernel panicked", &outcome)
    );
    // The exit-time flush failed too, and the CLI says so.
    assert!(
        stderr.contains("could not be flushed"),
        "{}",
        run.failure(
            "guest",
            "the failed flush at exit was not reported",
            &outcome
        )
    );
}

/// Filling a volume gives ENOSPC; what was written stays readable and the volume stays
/// consistent.
#[test]
fn a_full_volume_gives_enospc_and_keeps_what_was_written() {
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("volume-full");
    let image = new_volume(&guest, &scratch, "small.img", "2M");
    let busybox = Path::new("/bin/busybox");
    let (run, outcome) = run_on_volume(
        &guest,
        busybox,
        &["dd", "if=/dev/zero", "of=/data/fill", "bs=4096"],
        &image,
        &[],
    );
    assert_eq!(
        outcome.status_code(),
        Some(1),
        "{}",
        run.failure("guest", "dd should fail when the volume is full", &outcome)
    );
    assert!(
        outcome.stderr_text().contains("No space left on device"),
        "{}",
        run.failure("guest", "dd should report ENOSPC", &outcome)
    );
    assert_fsck_clean(&image);
    let img = image.to_str().unwrap();
    let content = Command::new(&guest.skiff)
        .args(["volume", "cat", img, "/fill"])
        .output()
        .expect("skiff volume cat");
    assert!(content.status.success());
    assert!(
        content.stdout.len() > 1 << 20,
        "only {} bytes survived",
        content.stdout.len()
    );
    assert!(content.stdout.iter().all(|&b| b == 0));
    // A second boot reads the same size through the guest's own FAT code.
    let (_, outcome) = run_on_volume(&guest, busybox, &["wc", "-c", "/data/fill"], &image, &[]);
    assert_eq!(
        outcome.stdout_text().split_whitespace().next(),
        Some(content.stdout.len().to_string().as_str())
    );
}

/// The SQLite shell from apps/ (Debian's sources, built static with musl) fills a
/// table with 10,000 rows on a volume; a second boot reads the same checksum back.
#[test]
fn sqlite_rows_survive_a_reboot() {
    let root = skiff_tests::repo_root();
    skiff_tests::build_app("sqlite");
    let Some(guest) = guest() else { return };
    let scratch = ScratchDir::new("sqlite");
    let image = new_volume(&guest, &scratch, "db.img", "32M");
    let sqlite = root.join("apps/sqlite/build/sqlite3");
    let fill = root.join("apps/sqlite/fill.sql");
    let check = root.join("apps/sqlite/check.sql");
    let first = Run::new(&sqlite)
        .args(["/data/test.db", ".read /app/fill.sql"])
        .file(&fill, "/app/fill.sql")
        .cli_arg("--volume")
        .cli_arg(volume_arg(&image, "/data"));
    let one = first.guest(&guest);
    first
        .expect_finished(&one)
        .unwrap_or_else(|report| panic!("{report}"));
    let text = one.stdout_text();
    assert!(
        text.contains("rows 10000\n"),
        "{}",
        first.failure("guest", "fill", &one)
    );
    assert!(text.contains("boots 1\n"), "{text}");
    let checksum = text
        .lines()
        .find(|l| l.starts_with("sha3 "))
        .unwrap_or_else(|| panic!("no checksum in {text}"))
        .to_string();

    let second = Run::new(&sqlite)
        .args(["/data/test.db", ".read /app/check.sql"])
        .file(&check, "/app/check.sql")
        .cli_arg("--volume")
        .cli_arg(volume_arg(&image, "/data"));
    let two = second.guest(&guest);
    second
        .expect_finished(&two)
        .unwrap_or_else(|report| panic!("{report}"));
    let text = two.stdout_text();
    assert!(
        text.contains("integrity ok"),
        "{}",
        second.failure("guest", "check", &two)
    );
    assert!(text.contains("rows 10000\n"), "{text}");
    assert!(text.contains(&checksum), "checksum changed: {text}");
    assert_fsck_clean(&image);
}

/// The busybox app from apps/: `skiff build` makes an image, `skiff run <image>` boots
/// it twice and the volume remembers the first boot. The app is built from a scratch
/// copy of its directory, so its volume (a path relative to the manifest) is made
/// there and the source tree is left alone.
#[test]
fn the_busybox_app_image_keeps_its_volume_across_boots() {
    let Some(guest) = guest() else { return };
    let source = skiff_tests::repo_root().join("apps/busybox");
    let scratch = ScratchDir::new("busybox-app");
    let app = scratch.path().join("busybox");
    std::fs::create_dir(&app).unwrap();
    for name in ["skiff.toml", "run.sh"] {
        std::fs::copy(source.join(name), app.join(name))
            .unwrap_or_else(|e| panic!("copy apps/busybox/{name}: {e}"));
    }
    let volume = app.join("data.img");
    let image = scratch.path().join("image");
    skiff_ok(
        &guest,
        &[
            "build",
            app.to_str().unwrap(),
            "-o",
            image.to_str().unwrap(),
        ],
    );
    assert!(skiff_ok(&guest, &["inspect", image.to_str().unwrap()]).contains("/app/run.sh"));
    for boot in 1..=2 {
        let out = Command::new(&guest.skiff)
            .args(["run", "--timeout", "60"])
            .arg(&image)
            .stdin(Stdio::null())
            .output()
            .expect("skiff run <image>");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&format!("visits: {boot}\n")),
            "boot {boot}: {:?}\nstdout:\n{text}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("copy identical: yes"), "{text}");
        // The applets of full mode run as forked and re-executed children.
        for line in [
            "d36287e0dbb50b163064418df5c88bb9  dst/numbers.txt",
            "wc -l numbers: 1100",
            "done (full)",
        ] {
            assert!(text.contains(line), "boot {boot} lacks {line:?}:\n{text}");
        }
    }
    assert_fsck_clean(&volume);
}
