#![allow(dead_code)]

use skiff_block::{BlockDevice, RamDisk};
use skiff_fat::{FatType, FatVolume, FormatVolumeOptions};
use skiff_fs::{Clock, FileSystem, Location, OpenFile, OpenFlags, Timespec, Vfs};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A clock the test sets.
pub struct TestClock(pub AtomicI64);

impl TestClock {
    pub fn new(sec: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(sec)))
    }
    pub fn set(&self, sec: i64) {
        self.0.store(sec, Ordering::Relaxed);
    }
}

impl Clock for TestClock {
    fn realtime(&self) -> Timespec {
        Timespec::new(self.0.load(Ordering::Relaxed), 0)
    }
}

/// 2024-03-01 12:00:00 UTC.
pub const T0: i64 = 1_709_294_400;

pub fn format(disk: &Arc<RamDisk>, fat: Option<FatType>) {
    let mut opts = FormatVolumeOptions::new();
    if let Some(t) = fat {
        opts = opts.fat_type(t);
    }
    skiff_fat::format(disk.clone(), opts).expect("format");
}

/// A freshly formatted RAM disk of `mib` MiB.
pub fn disk(mib: u64, fat: Option<FatType>) -> Arc<RamDisk> {
    let d = Arc::new(RamDisk::new(mib * 2048));
    format(&d, fat);
    d
}

pub fn mount(disk: &Arc<RamDisk>) -> Arc<FatVolume> {
    let dev: Arc<dyn BlockDevice> = disk.clone();
    skiff_fat::mount(dev, TestClock::new(T0), 64).expect("mount")
}

/// A VFS with the volume mounted on /mnt.
pub struct Env {
    pub vfs: Arc<Vfs>,
    pub vol: Arc<FatVolume>,
    pub clock: Arc<TestClock>,
}

impl Env {
    pub fn new(disk: &Arc<RamDisk>) -> Env {
        Self::with_cache(disk, 64)
    }

    pub fn with_cache(disk: &Arc<RamDisk>, pages: usize) -> Env {
        let clock = TestClock::new(T0);
        let vfs = Vfs::new(clock.clone());
        let dev: Arc<dyn BlockDevice> = disk.clone();
        let vol = skiff_fat::mount(dev, clock.clone(), pages).expect("mount");
        let root = vfs.root();
        let mnt = vfs.mkdir(&root, b"/mnt", 0o755).unwrap();
        vfs.mount(&mnt, vol.clone()).unwrap();
        Env { vfs, vol, clock }
    }

    pub fn root(&self) -> Location {
        self.vfs.root()
    }

    pub fn open(&self, path: &str, flags: u32) -> skiff_errno::KResult<Arc<OpenFile>> {
        self.vfs
            .open(&self.root(), path.as_bytes(), OpenFlags(flags), 0o644)
    }

    pub fn create(&self, path: &str) -> Arc<OpenFile> {
        self.open(path, OpenFlags::O_CREAT | OpenFlags::O_RDWR)
            .unwrap_or_else(|e| panic!("create {path}: {e:?}"))
    }

    pub fn write_file(&self, path: &str, data: &[u8]) {
        let f = self
            .open(
                path,
                OpenFlags::O_CREAT | OpenFlags::O_RDWR | OpenFlags::O_TRUNC,
            )
            .unwrap_or_else(|e| panic!("open {path}: {e:?}"));
        let mut done = 0;
        while done < data.len() {
            done += f.write(&data[done..]).unwrap();
        }
    }

    pub fn read_file(&self, path: &str) -> skiff_errno::KResult<Vec<u8>> {
        let f = self.open(path, OpenFlags::O_RDONLY)?;
        read_all(&f)
    }

    pub fn mkdir(&self, path: &str) {
        self.vfs
            .mkdir(&self.root(), path.as_bytes(), 0o755)
            .unwrap_or_else(|e| panic!("mkdir {path}: {e:?}"));
    }

    pub fn unlink(&self, path: &str) -> skiff_errno::KResult<()> {
        self.vfs.unlink(&self.root(), path.as_bytes(), false)
    }

    pub fn rmdir(&self, path: &str) -> skiff_errno::KResult<()> {
        self.vfs.unlink(&self.root(), path.as_bytes(), true)
    }

    pub fn rename(&self, from: &str, to: &str, flags: u32) -> skiff_errno::KResult<()> {
        let root = self.root();
        self.vfs
            .rename(&root, from.as_bytes(), &root, to.as_bytes(), flags)
    }

    pub fn stat(&self, path: &str) -> skiff_errno::KResult<skiff_fs::Stat> {
        self.vfs.stat(&self.root(), path.as_bytes(), true)
    }

    pub fn ls(&self, path: &str) -> Vec<String> {
        let d = self
            .open(path, OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
            .unwrap();
        let mut names: Vec<String> = list_dir(&d)
            .into_iter()
            .map(|(n, _, _)| n)
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        names
    }

    pub fn unmount(&self) {
        self.vol.sync().unwrap();
        self.vol.unmount().unwrap();
    }
}

pub fn read_all(f: &OpenFile) -> skiff_errno::KResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// getdents64 until the end: (name, ino, d_off).
pub fn list_dir(d: &OpenFile) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    loop {
        let mut buf = vec![0u8; 600];
        let n = d.getdents64(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend(parse_dirents(&buf[..n]));
    }
}

pub fn parse_dirents(buf: &[u8]) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let ino = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let off = i64::from_le_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let reclen = u16::from_le_bytes(buf[at + 16..at + 18].try_into().unwrap()) as usize;
        let name = &buf[at + 19..at + reclen];
        let end = name.iter().position(|&b| b == 0).unwrap();
        out.push((String::from_utf8(name[..end].to_vec()).unwrap(), ino, off));
        at += reclen;
    }
    out
}

pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A read-only view of an image through fatfs directly (an independent reader).
pub fn fatfs_read(image: Vec<u8>, path: &str) -> Option<Vec<u8>> {
    let disk = Arc::new(RamDisk::from_image(image));
    let cache = Arc::new(skiff_block::BlockCache::new(disk, 64));
    let fs =
        fatfs::FileSystem::new(skiff_fat::io::CacheIo::new(cache), fatfs::FsOptions::new()).ok()?;
    let mut f = fs.root_dir().open_file(path).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = fatfs::Read::read(&mut f, &mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Some(out)
}

/// The dirty flag of an image, as fatfs reads it.
pub fn image_dirty(image: Vec<u8>) -> bool {
    let disk = Arc::new(RamDisk::from_image(image));
    let cache = Arc::new(skiff_block::BlockCache::new(disk, 64));
    let fs = fatfs::FileSystem::new(skiff_fat::io::CacheIo::new(cache), fatfs::FsOptions::new())
        .expect("valid FAT image");
    fs.read_status_flags().unwrap().dirty()
}

/// Like [`fsck`], but for the image of a crash: the dirty bit is expected and is the
/// only complaint allowed.
pub fn fsck_crashed(image: &[u8], tag: &str) -> (bool, String) {
    let (ok, out) = fsck(image, tag);
    let others: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("fsck.fat ") && !l.contains("Dirty bit is set"))
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains("files,")
                && !l.contains("Leaving filesystem unchanged")
                && !l.contains("removing dirty bit")
        })
        .collect();
    (ok || others.is_empty(), out)
}

/// Runs `fsck.fat -n` on an image: whether it found nothing to fix, and what it said.
/// Panics when fsck.fat is missing: a check skipped in silence would pass for nothing.
pub fn fsck(image: &[u8], tag: &str) -> (bool, String) {
    let fsck = ["/usr/sbin/fsck.fat", "/sbin/fsck.fat", "/usr/bin/fsck.fat"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "fsck.fat is not installed, so this check cannot run: \
                 scripts/setup.sh installs it (Debian package dosfstools)"
            )
        });
    let path = std::env::temp_dir().join(format!("skiff-fat-{}-{}.img", tag, std::process::id()));
    std::fs::write(&path, image).unwrap();
    let out = std::process::Command::new(fsck)
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
