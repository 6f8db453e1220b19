//! Rough host-side numbers for the FAT layer (a benchmark, not a test: ignored by
//! default, prints timings and never asserts on them). Run with
//! `cargo test --release -p skiff-fat --test bench -- --ignored --nocapture`.

mod common;

use common::*;
use std::time::Instant;

#[test]
#[ignore]
fn bench() {
    let disk = disk(64, Some(skiff_fat::FatType::Fat32));
    let env = Env::with_cache(&disk, 1024);
    env.mkdir("/mnt/d");
    for n in [100, 1000] {
        let t = Instant::now();
        for i in 0..n {
            env.write_file(&format!("/mnt/d/file-number-{i}"), b"x");
        }
        println!("create {n} files in one directory: {:?}", t.elapsed());
        let t = Instant::now();
        for i in 0..n {
            env.stat(&format!("/mnt/d/file-number-{i}")).unwrap();
        }
        println!("stat {n}: {:?}", t.elapsed());
        let t = Instant::now();
        let listed = env.ls("/mnt/d").len();
        println!("getdents of {listed} entries: {:?}", t.elapsed());
        let t = Instant::now();
        for i in 0..n {
            env.unlink(&format!("/mnt/d/file-number-{i}")).unwrap();
        }
        println!("unlink {n}: {:?}", t.elapsed());
    }
    let size = 32usize << 20;
    let data = pattern(size, 1);
    let t = Instant::now();
    let f = env.create("/mnt/big");
    for c in data.chunks(1 << 20) {
        f.write(c).unwrap();
    }
    f.sync(false).unwrap();
    let dt = t.elapsed();
    println!(
        "sequential write+fsync 32 MiB: {dt:?} ({:.0} MiB/s)",
        32.0 / dt.as_secs_f64()
    );
    drop(f);
    env.vol.cache().reset_stats();
    let t = Instant::now();
    let got = env.read_file("/mnt/big").unwrap();
    let dt = t.elapsed();
    println!(
        "sequential read 32 MiB: {dt:?} ({:.0} MiB/s), cache {:?}",
        32.0 / dt.as_secs_f64(),
        env.vol.cache_stats()
    );
    assert_eq!(got.len(), size);
    let f = env.open("/mnt/big", skiff_fs::OpenFlags::O_RDWR).unwrap();
    env.vol.cache().reset_stats();
    disk.reset_stats();
    let mut x = 12345u64;
    let block = pattern(4096, 2);
    let t = Instant::now();
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x % (size as u64 / 4096)) * 4096;
        f.pwrite(&block, off as i64).unwrap();
    }
    f.sync(false).unwrap();
    println!(
        "2000 random 4 KiB writes + fsync: {:?}, device {:?}",
        t.elapsed(),
        disk.stats()
    );
    drop(f);
    env.unmount();
}
