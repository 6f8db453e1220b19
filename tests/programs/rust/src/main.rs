//! skiff-rust-probe: a Rust std program for Skiff's differential tests.
//!
//! Exercises what Rust services use at start-up and in ordinary work: args and env, file
//! I/O and directory listing under /tmp, `std::time` (Instant and SystemTime), and
//! `thread::sleep` on the main thread (no extra threads). Every printed line is
//! deterministic: no paths with random parts, no addresses, no timings.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn yes_no(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "no"
    }
}

fn check(label: &str, ok: bool) {
    println!("{label}: {}", yes_no(ok));
}

fn args_and_env() {
    let args: Vec<String> = std::env::args().collect();
    println!("argc: {}", args.len());
    for (i, arg) in args.iter().enumerate() {
        println!("arg[{i}]: [{arg}]");
    }
    for name in ["SKIFF_RUST", "SKIFF_UNSET"] {
        match std::env::var(name) {
            Ok(value) => println!("env {name}=[{value}]"),
            Err(_) => println!("env {name} is unset"),
        }
    }
    match std::env::current_dir() {
        Ok(dir) => println!("current_dir: {}", dir.display()),
        Err(err) => println!("current_dir failed: {:?}", err.kind()),
    }
}

/// Creates a fresh directory under /tmp whose name is unique per process; never printed.
fn fresh_work_dir() -> std::io::Result<std::path::PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..1000u32 {
        let candidate = base.join(format!("skiff-rust-{}-{attempt}", std::process::id()));
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(std::io::Error::other("no free work directory name"))
}

fn file_io(work: &Path) -> std::io::Result<()> {
    let path = work.join("notes.txt");
    fs::write(&path, "first line\nsecond line\n")?;
    let text = fs::read_to_string(&path)?;
    println!("read back {} bytes, {} lines", text.len(), text.lines().count());

    let mut file = fs::OpenOptions::new().read(true).write(true).open(&path)?;
    file.seek(SeekFrom::End(0))?;
    file.write_all(b"third line\n")?;
    file.seek(SeekFrom::Start(6))?;
    let mut word = [0u8; 4];
    file.read_exact(&mut word)?;
    println!("word at offset 6: {}", String::from_utf8_lossy(&word));
    let len = file.metadata()?.len();
    println!("length after append: {len}");
    file.set_len(5)?;
    drop(file);
    println!("after set_len(5): [{}]", fs::read_to_string(&path)?);

    let renamed = work.join("renamed.txt");
    fs::rename(&path, &renamed)?;
    check("old name gone", !path.exists());
    check("new name present", renamed.is_file());
    match fs::read(work.join("missing")) {
        Ok(_) => println!("reading a missing file succeeded"),
        Err(err) => println!("reading a missing file: {:?}", err.kind()),
    }

    let mut big = Vec::with_capacity(1 << 20);
    for i in 0..(1u32 << 20) {
        big.push((i.wrapping_mul(2654435761) >> 24) as u8);
    }
    fs::write(work.join("big.bin"), &big)?;
    let back = fs::read(work.join("big.bin"))?;
    check("1 MiB file round-trips", back == big);
    Ok(())
}

fn directory_listing(work: &Path) -> std::io::Result<()> {
    fs::create_dir(work.join("sub"))?;
    fs::create_dir_all(work.join("sub/deeper/deepest"))?;
    fs::write(work.join("sub/z.txt"), "z")?;
    fs::write(work.join("sub/a.txt"), "a")?;
    let mut names: Vec<String> = fs::read_dir(work.join("sub"))?
        .map(|entry| {
            let entry = entry?;
            let kind = if entry.file_type()?.is_dir() { "dir" } else { "file" };
            Ok(format!("{} ({kind})", entry.file_name().to_string_lossy()))
        })
        .collect::<std::io::Result<_>>()?;
    names.sort();
    println!("sub holds: {}", names.join(", "));
    match fs::remove_dir(work.join("sub")) {
        Ok(()) => println!("removing a non-empty dir succeeded"),
        Err(err) => println!("removing a non-empty dir: {:?}", err.kind()),
    }
    fs::remove_dir_all(work.join("sub"))?;
    check("sub removed recursively", !work.join("sub").exists());
    Ok(())
}

fn time_and_sleep() {
    let start = Instant::now();
    let mut previous = start;
    let mut monotonic = true;
    for _ in 0..1000 {
        let now = Instant::now();
        if now < previous {
            monotonic = false;
        }
        previous = now;
    }
    check("Instant never decreases", monotonic);

    let before = Instant::now();
    std::thread::sleep(Duration::from_millis(30));
    let slept = before.elapsed();
    check("sleep(30ms) took at least 30ms", slept >= Duration::from_millis(30));
    check("sleep(30ms) took under 5s", slept < Duration::from_secs(5));

    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    // 2020-01-01T00:00:00Z.
    check("SystemTime after 2020", since_epoch.as_secs() > 1_577_836_800);
}

fn main() {
    println!("hello from Rust std");
    args_and_env();
    let work = match fresh_work_dir() {
        Ok(work) => work,
        Err(err) => {
            println!("FATAL creating a work dir under /tmp: {:?}", err.kind());
            std::process::exit(99);
        }
    };
    if let Err(err) = file_io(&work) {
        println!("file I/O failed: {:?}", err.kind());
    }
    if let Err(err) = directory_listing(&work) {
        println!("directory listing failed: {:?}", err.kind());
    }
    time_and_sleep();
    match fs::remove_dir_all(&work) {
        Ok(()) => println!("work dir removed"),
        Err(err) => println!("removing the work dir failed: {:?}", err.kind()),
    }
    let code = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    std::process::exit(code);
}
