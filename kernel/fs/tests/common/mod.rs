//! Fakes for the injected environment and a helper that builds a standard VFS.
#![allow(dead_code)]

use skiff_errno::{Errno, KResult};
use skiff_fs::*;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

pub struct FakeClock(pub AtomicI64);
impl FakeClock {
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
impl Clock for FakeClock {
    fn realtime(&self) -> Timespec {
        Timespec::new(self.0.load(Ordering::SeqCst), 0)
    }
}

pub struct FakeEntropy;
impl Entropy for FakeEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
    }
}

#[derive(Default)]
pub struct FakeConsole {
    pub stdout: Mutex<Vec<u8>>,
    pub stderr: Mutex<Vec<u8>>,
    pub input: Mutex<Vec<u8>>,
    pub eof: Mutex<bool>,
}
impl Console for FakeConsole {
    fn write(&self, stream: ConsoleStream, data: &[u8]) -> KResult<usize> {
        match stream {
            ConsoleStream::Stdout => self.stdout.lock().unwrap().extend_from_slice(data),
            ConsoleStream::Stderr => self.stderr.lock().unwrap().extend_from_slice(data),
        }
        Ok(data.len())
    }
    fn read(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        let mut input = self.input.lock().unwrap();
        if input.is_empty() {
            if *self.eof.lock().unwrap() {
                return Ok(0);
            }
            assert!(nonblock, "test would block");
            return Err(Errno::EAGAIN);
        }
        let n = buf.len().min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        input.drain(..n);
        Ok(n)
    }
    fn window_size(&self) -> (u16, u16) {
        (24, 80)
    }
    fn read_ready(&self) -> bool {
        !self.input.lock().unwrap().is_empty() || *self.eof.lock().unwrap()
    }
}

pub struct FakeProc;
impl ProcessInfo for FakeProc {
    fn pid(&self) -> u32 {
        7
    }
    fn exe_path(&self) -> Vec<u8> {
        b"/bin/app".to_vec()
    }
    fn cmdline(&self) -> Vec<u8> {
        b"app\0--flag\0".to_vec()
    }
    fn environ(&self) -> Vec<u8> {
        b"HOME=/\0".to_vec()
    }
    fn maps(&self) -> String {
        "00400000-00401000 r-xp 00000000 00:00 0 /bin/app\n".into()
    }
    fn meminfo(&self) -> String {
        "MemTotal: 1024 kB\n".into()
    }
    fn cpuinfo(&self) -> String {
        "processor\t: 0\n".into()
    }
    fn uptime(&self) -> (Timespec, Timespec) {
        (Timespec::new(12, 340_000_000), Timespec::new(10, 0))
    }
    fn status(&self) -> String {
        "Name:\tapp\nPid:\t7\n".into()
    }
}

pub struct Env {
    pub clock: Arc<FakeClock>,
    pub console: Arc<FakeConsole>,
    pub vfs: Arc<Vfs>,
    pub ctx: Arc<FsContext>,
}

impl Env {
    pub fn root(&self) -> Location {
        self.vfs.root()
    }
    pub fn open(&self, path: &str, flags: u32) -> KResult<Arc<OpenFile>> {
        self.vfs
            .open(&self.root(), path.as_bytes(), OpenFlags(flags), 0o644)
    }
    pub fn create(&self, path: &str, content: &[u8]) -> Arc<OpenFile> {
        let f = self
            .open(
                path,
                OpenFlags::O_CREAT | OpenFlags::O_RDWR | OpenFlags::O_TRUNC,
            )
            .unwrap();
        assert_eq!(f.write(content).unwrap(), content.len());
        f
    }
    pub fn read_all(&self, path: &str) -> KResult<Vec<u8>> {
        let f = self.open(path, OpenFlags::O_RDONLY)?;
        read_to_end(&f)
    }
    pub fn stat(&self, path: &str) -> KResult<Stat> {
        self.vfs.stat(&self.root(), path.as_bytes(), true)
    }
    pub fn lstat(&self, path: &str) -> KResult<Stat> {
        self.vfs.stat(&self.root(), path.as_bytes(), false)
    }
    pub fn mkdir(&self, path: &str) -> KResult<()> {
        self.vfs
            .mkdir(&self.root(), path.as_bytes(), 0o755)
            .map(|_| ())
    }
    pub fn symlink(&self, target: &str, path: &str) -> KResult<()> {
        self.vfs
            .symlink(target.as_bytes(), &self.root(), path.as_bytes())
    }
    pub fn unlink(&self, path: &str) -> KResult<()> {
        self.vfs.unlink(&self.root(), path.as_bytes(), false)
    }
    pub fn rmdir(&self, path: &str) -> KResult<()> {
        self.vfs.unlink(&self.root(), path.as_bytes(), true)
    }
    pub fn rename(&self, old: &str, new: &str, flags: u32) -> KResult<()> {
        self.vfs.rename(
            &self.root(),
            old.as_bytes(),
            &self.root(),
            new.as_bytes(),
            flags,
        )
    }
    pub fn resolve(&self, path: &str, follow: bool) -> KResult<Location> {
        self.vfs.resolve(&self.root(), path.as_bytes(), follow)
    }
}

pub fn read_to_end(f: &OpenFile) -> KResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A VFS with an empty root, no standard mounts.
pub fn bare() -> (Arc<FakeClock>, Arc<Vfs>) {
    let clock = Arc::new(FakeClock(AtomicI64::new(1_000_000)));
    let vfs = Vfs::new(clock.clone());
    (clock, vfs)
}

/// A VFS with /dev, /proc, /tmp and a process context.
pub fn env_with_tty(console_is_tty: bool) -> Env {
    let (clock, vfs) = bare();
    let console = Arc::new(FakeConsole::default());
    vfs.mount_standard(
        console.clone(),
        console_is_tty,
        Arc::new(FakeEntropy),
        Arc::new(FakeProc),
    )
    .unwrap();
    let ctx = FsContext::new(&vfs);
    Env {
        clock,
        console,
        vfs,
        ctx,
    }
}

pub fn env() -> Env {
    env_with_tty(true)
}

/// Parses `linux_dirent64` records into (ino, d_off, type, name).
pub fn parse_dirents(buf: &[u8]) -> Vec<(u64, i64, u8, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let ino = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let off = i64::from_le_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let reclen = u16::from_le_bytes(buf[at + 16..at + 18].try_into().unwrap()) as usize;
        assert_eq!(reclen % 8, 0, "records are 8-byte aligned");
        let ty = buf[at + 18];
        let name_bytes = &buf[at + 19..at + reclen];
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .expect("NUL-terminated name");
        out.push((
            ino,
            off,
            ty,
            String::from_utf8(name_bytes[..end].to_vec()).unwrap(),
        ));
        at += reclen;
    }
    out
}

pub fn list_dir(f: &OpenFile) -> Vec<String> {
    let mut names = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = f.getdents64(&mut buf).unwrap();
        if n == 0 {
            return names;
        }
        names.extend(parse_dirents(&buf[..n]).into_iter().map(|e| e.3));
    }
}
