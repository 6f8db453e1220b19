//! FAT volumes on the host: `skiff volume create|ls|cp|cat|mkdir|rm|info`, and the
//! checks `skiff run` makes before it gives a volume to QEMU.
//!
//! A volume is a raw disk image holding one FAT filesystem (no partition table), which
//! the guest mounts from a virtio-blk disk. The host side runs the guest's own FAT code
//! (`skiff-fat`, which formats through `starry-fatfs`) over the image file
//! ([`HostDisk`], a [`BlockDevice`]) with the host's clock ([`HostClock`], UTC like the
//! guest's RTC), so names, short-name generation and the on-disk result are the same
//! whichever side writes. (starry-fatfs's own directory code cannot be used here: it
//! panics on names whose first character is not ASCII, slicing the name at byte 1 to
//! look for an extension.)
//!
//! QEMU locks an image for as long as a VM uses it (OFD locks on bytes 100..300, see
//! [`QEMU_LOCK_START`]). Commands that change a volume take an exclusive lock on those
//! bytes, so they refuse a volume a VM is using and a VM cannot start on a volume being
//! changed; commands that only read warn instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use skiff_block::{BlockDevice, IoError, SECTOR_SIZE};
use skiff_errno::Errno;
use skiff_fat::{FatKind, FatVolume, FormatVolumeOptions};
use skiff_fs::{FileSystem, FileType, Inode, NewNode, NewOwner, Timespec};

pub use skiff_fat::FatType;

use crate::initrd::describe_io;
use crate::options::format_size;

/// A volume image file as the block device skiff-fat runs on. Host I/O errors reach
/// skiff-fat as [`IoError::Device`] (it only knows `EIO`); the last one is kept so the
/// message can say what really went wrong.
pub struct HostDisk {
    file: File,
    sectors: u64,
    read_only: bool,
    last_error: Mutex<Option<io::Error>>,
}

impl HostDisk {
    fn new(file: File, read_only: bool) -> io::Result<HostDisk> {
        let sectors = file.metadata()?.len() / SECTOR_SIZE as u64;
        Ok(HostDisk {
            file,
            sectors,
            read_only,
            last_error: Mutex::new(None),
        })
    }

    fn failed(&self, e: io::Error) -> IoError {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        IoError::Device
    }

    /// The host error behind the last [`IoError::Device`], if any.
    fn take_error(&self) -> Option<io::Error> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl BlockDevice for HostDisk {
    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_sectors(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        skiff_block::check_request(self.sectors, sector, buf.len())?;
        self.file
            .read_exact_at(buf, sector * SECTOR_SIZE as u64)
            .map_err(|e| self.failed(e))
    }

    fn write_sectors(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        if self.read_only {
            return Err(IoError::ReadOnly);
        }
        skiff_block::check_request(self.sectors, sector, buf.len())?;
        self.file
            .write_all_at(buf, sector * SECTOR_SIZE as u64)
            .map_err(|e| self.failed(e))
    }

    fn flush(&self) -> Result<(), IoError> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.failed(e))
    }

    fn serial(&self) -> &[u8] {
        b"skiff-host"
    }
}

/// The host's clock for FAT timestamps, in UTC (QEMU's RTC, and so the guest's clock, is
/// UTC too).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostClock;

impl skiff_fs::Clock for HostClock {
    fn realtime(&self) -> Timespec {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timespec::new(now.as_secs() as i64, i64::from(now.subsec_nanos()))
    }
}

/// Year, month, day of a day number counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u16, u16) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u16;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u16;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Unix time (UTC) as `YYYY-MM-DD HH:MM`, for listings.
pub fn show_date_time(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        secs / 60 % 60
    )
}

/// QEMU's image locks (`block/file-posix.c`): one byte per block permission from offset
/// 100 ("this process holds it") and from 200 ("this process does not share it"), taken
/// with OFD locks. Any lock in this range means a VM (or a skiff command) holds the file.
pub const QEMU_LOCK_START: i64 = 100;
/// Length of the locked range.
pub const QEMU_LOCK_LEN: i64 = 200;

fn fcntl_lock(file: &File, command: libc::c_int, kind: libc::c_int) -> io::Result<libc::c_short> {
    // SAFETY: `flock` is a plain C struct of integers, for which all zeroes is valid.
    #[allow(unsafe_code)]
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = QEMU_LOCK_START;
    lock.l_len = QEMU_LOCK_LEN;
    // SAFETY: the descriptor is open for the lifetime of `file`, and `lock` is a valid,
    // exclusively borrowed `flock` that fcntl reads and (for F_OFD_GETLK) writes.
    #[allow(unsafe_code)]
    let result = unsafe { libc::fcntl(file.as_raw_fd(), command, &mut lock) };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(lock.l_type)
    }
}

/// Whether some process holds a lock on the file's QEMU lock bytes (a running VM).
pub fn in_use(file: &File) -> io::Result<bool> {
    let kind = fcntl_lock(file, libc::F_OFD_GETLK, libc::F_WRLCK)?;
    Ok(kind != libc::F_UNLCK as libc::c_short)
}

/// Take the QEMU lock bytes exclusively (the file must be open for writing); `false` if
/// someone else holds a lock there. Released when the file is closed.
pub fn lock_exclusive(file: &File) -> io::Result<bool> {
    match fcntl_lock(file, libc::F_OFD_SETLK, libc::F_WRLCK) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn in_use_message(path: &Path) -> String {
    format!(
        "{} is in use by a running VM (or another skiff command); stop it first",
        path.display()
    )
}

fn approx(bytes: u64) -> String {
    format!(
        "{} ({bytes} bytes)",
        crate::options::format_size_approx(bytes)
    )
}

/// The reason for a failed operation in words; `host` is the host I/O error behind an
/// `EIO`, when there is one.
fn errno_reason(e: Errno, host: Option<io::Error>) -> String {
    match e {
        Errno::ENOENT => "no such file or directory".into(),
        Errno::EEXIST => "already exists".into(),
        Errno::ENOTDIR => "not a directory".into(),
        Errno::EISDIR => "is a directory".into(),
        Errno::ENOTEMPTY => "directory not empty".into(),
        Errno::ENOSPC => "no space left on the volume".into(),
        Errno::EFBIG => "FAT files must be smaller than 4 GiB".into(),
        Errno::ENAMETOOLONG => "the name is longer than FAT allows (255 UTF-16 units)".into(),
        Errno::EINVAL => "the name is empty or has a character FAT does not allow \
                          (a control character or one of \" * / : < > ? \\ |)"
            .into(),
        Errno::EPERM => "FAT does not allow this (the name is reserved)".into(),
        Errno::EROFS => "the volume is open read-only".into(),
        Errno::EIO => match host {
            Some(e) => e.to_string(),
            None => {
                "I/O error (the FAT filesystem may be corrupted; check it with fsck.fat)".into()
            }
        },
        other => format!("{other:?}"),
    }
}

/// What a path on a volume is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64 },
}

/// One entry of a volume directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub name: String,
    pub kind: Kind,
    /// Modification time, seconds since the Unix epoch (UTC).
    pub modified: i64,
}

/// An open FAT volume. Dropping it unmounts it (writing back what is cached); use
/// [`Volume::close`] to see whether that worked.
pub struct Volume {
    fs: Arc<FatVolume>,
    disk: Arc<HostDisk>,
    /// The image file as the user named it (for messages).
    path: PathBuf,
}

/// Open `path` as a volume image file: read-only, or read-write with the QEMU lock
/// bytes held exclusively.
fn open_image_file(path: &Path, writable: bool) -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!(
                "{}: no such file (make a volume with: skiff volume create --size 64M {})",
                path.display(),
                path.display()
            ),
            _ => describe_io(path, &e),
        })?;
    let metadata = file.metadata().map_err(|e| describe_io(path, &e))?;
    if metadata.is_dir() {
        return Err(format!(
            "{} is a directory, not a volume image",
            path.display()
        ));
    }
    if writable {
        if !lock_exclusive(&file).map_err(|e| describe_io(path, &e))? {
            return Err(in_use_message(path));
        }
    } else if in_use(&file).unwrap_or(false) {
        crate::session::say(&format!(
            "warning: {} is in use by a running VM; what you read may be out of date",
            path.display()
        ));
    }
    Ok(file)
}

/// Pages of the block cache a host-side mount keeps (4 MiB).
const CACHE_PAGES: usize = 1024;

/// Mount the FAT filesystem in `file` (read-only unless `writable`).
fn mount(
    path: &Path,
    file: File,
    writable: bool,
) -> Result<(Arc<FatVolume>, Arc<HostDisk>), String> {
    let disk = Arc::new(HostDisk::new(file, !writable).map_err(|e| describe_io(path, &e))?);
    let device: Arc<dyn BlockDevice> = disk.clone();
    match skiff_fat::mount(device, Arc::new(HostClock), CACHE_PAGES) {
        Ok(fs) => Ok((fs, disk)),
        Err(Errno::EINVAL) => Err(format!(
            "{} is not a FAT volume image (make one with: skiff volume create --size 64M FILE)",
            path.display()
        )),
        Err(e) => Err(format!(
            "{}: {}",
            path.display(),
            errno_reason(e, disk.take_error())
        )),
    }
}

/// How long a run waits for another VM's lock on a volume to go away. A VM whose CLI
/// was just killed is still being torn down (QEMU gets SIGKILL through its parent-death
/// signal, and exiting a large guest takes a moment): `kill -9` followed at once by a
/// new run should not fail for that.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether someone still holds the QEMU lock on `file` after [`LOCK_GRACE`].
fn held_after_grace(file: &File) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    while in_use(file)? {
        if std::time::Instant::now() >= deadline {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(false)
}

/// Check that `path` is a plausible volume for a VM: an existing, writable regular file
/// with a FAT filesystem that no running VM holds. Nothing is written.
pub fn check_for_vm(path: &Path) -> Result<(), String> {
    let metadata = fs::metadata(path).map_err(|e| describe_io(path, &e))?;
    if !metadata.is_file() {
        return Err(format!(
            "{} is not a regular file, so it cannot be a volume image",
            path.display()
        ));
    }
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => format!(
                "{}: permission denied (the VM writes to its volumes)",
                path.display()
            ),
            _ => describe_io(path, &e),
        })?;
    if held_after_grace(&writable).map_err(|e| describe_io(path, &e))? {
        return Err(format!(
            "{} is in use by another VM (QEMU holds a lock on it); stop that run or use another volume",
            path.display()
        ));
    }
    drop(writable);
    let file = File::open(path).map_err(|e| describe_io(path, &e))?;
    mount(path, file, false)?;
    Ok(())
}

/// The name FAT stores for a file type, for messages.
pub fn fat_type_name(fat_type: FatType) -> &'static str {
    match fat_type {
        FatType::Fat12 => "FAT12",
        FatType::Fat16 => "FAT16",
        FatType::Fat32 => "FAT32",
    }
}

fn fat_type_of(kind: FatKind) -> FatType {
    match kind {
        FatKind::Fat12 => FatType::Fat12,
        FatKind::Fat16 => FatType::Fat16,
        FatKind::Fat32 => FatType::Fat32,
    }
}

/// A volume label as FAT stores it: up to 11 characters, upper-case ASCII, space-padded.
pub fn parse_label(label: &str) -> Result<[u8; 11], String> {
    if label.is_empty() || label.len() > 11 {
        return Err(format!("volume label '{label}' must be 1 to 11 characters"));
    }
    let mut out = [b' '; 11];
    for (slot, c) in out.iter_mut().zip(label.chars()) {
        if !(c.is_ascii_alphanumeric() || " _-!#$%&'()@^`{}~".contains(c)) {
            return Err(format!(
                "volume label '{label}' may hold only letters, digits, spaces and _-!#$%&'()@^`{{}}~"
            ));
        }
        *slot = c.to_ascii_uppercase() as u8;
    }
    Ok(out)
}

/// Parse `--fat`: 12, 16 or 32.
pub fn parse_fat_type(text: &str) -> Result<FatType, String> {
    match text.trim().to_ascii_lowercase().trim_start_matches("fat") {
        "12" => Ok(FatType::Fat12),
        "16" => Ok(FatType::Fat16),
        "32" => Ok(FatType::Fat32),
        _ => Err(format!("'{text}' is not a FAT type; use 12, 16 or 32")),
    }
}

/// How `skiff volume create` formats a volume.
#[derive(Clone, Copy, Debug, Default)]
pub struct CreateOptions {
    /// Replace an existing file.
    pub force: bool,
    pub label: Option<[u8; 11]>,
    /// The FAT type; by default fatfs chooses by size (FAT12 below about 4M, FAT16 below
    /// 512M, FAT32 from 512M), as mkfs.fat does.
    pub fat_type: Option<FatType>,
}

/// A fresh volume ID (the serial number FAT stores in the boot sector, which Linux shows
/// as the filesystem's UUID): random, as mkfs.fat makes them, so two volumes can be told
/// apart. Falls back to the time when the host has no random source.
fn new_volume_id() -> u32 {
    let mut bytes = [0u8; 4];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u32::from_le_bytes(bytes);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() as u32) ^ now.subsec_nanos().rotate_left(16) ^ std::process::id()
}

/// Create `path` as a `size`-byte volume with a fresh FAT filesystem. An existing file is
/// an error unless `options.force` (then it is replaced). Returns the FAT type.
pub fn create(path: &Path, size: u64, options: CreateOptions) -> Result<FatType, String> {
    let CreateOptions {
        force,
        label,
        fat_type,
    } = options;
    let mut open = OpenOptions::new();
    open.read(true).write(true);
    if force {
        open.create(true);
    } else {
        open.create_new(true);
    }
    let existed = path.exists();
    if existed && fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{} is a directory", path.display()));
    }
    let file = open.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => format!(
            "{} already exists; use --force to replace it (everything on it is lost)",
            path.display()
        ),
        _ => describe_io(path, &e),
    })?;
    let cleanup = |message: String| {
        if !existed {
            let _ = fs::remove_file(path);
        }
        message
    };
    if existed && !lock_exclusive(&file).map_err(|e| describe_io(path, &e))? {
        return Err(in_use_message(path));
    }
    // A fresh sparse file: nothing of an old image survives, and unused space costs no
    // disk until the guest writes it.
    file.set_len(0)
        .and_then(|()| file.set_len(size))
        .map_err(|e| cleanup(describe_io(path, &e)))?;
    let mut format = FormatVolumeOptions::new().volume_id(new_volume_id());
    if let Some(label) = label {
        format = format.volume_label(label);
    }
    if let Some(fat_type) = fat_type {
        format = format.fat_type(fat_type);
    }
    let disk = Arc::new(HostDisk::new(file, false).map_err(|e| cleanup(describe_io(path, &e)))?);
    let device: Arc<dyn BlockDevice> = disk.clone();
    skiff_fat::format(device, format).map_err(|e| {
        cleanup(match e {
            Errno::EINVAL => format!(
                "{}: a {} filesystem cannot be {}; choose another size{}",
                path.display(),
                fat_type.map_or("FAT", fat_type_name),
                format_size(size),
                if fat_type.is_some() {
                    " or FAT type"
                } else {
                    ""
                }
            ),
            e => format!("{}: {}", path.display(), errno_reason(e, disk.take_error())),
        })
    })?;
    // Keep the lock (held through `disk`) until the new filesystem has been checked.
    let check = File::open(path).map_err(|e| cleanup(describe_io(path, &e)))?;
    let (fs, _) = mount(path, check, false).map_err(cleanup)?;
    drop(disk);
    Ok(fat_type_of(fs.kind()))
}

/// Split a volume path into its names: `/a//b/` → `a`, `b`. `..` is refused; `.` is
/// dropped.
pub fn path_components(path: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("{path}: '..' is not allowed in volume paths")),
            name => out.push(name.to_string()),
        }
    }
    Ok(out)
}

fn shown_path(components: &[String]) -> String {
    format!("/{}", components.join("/"))
}

/// Owner of new files and directories (FAT records none; the guest shows root).
const NEW_OWNER: NewOwner = NewOwner {
    perm: 0o755,
    uid: 0,
    gid: 0,
};

/// The label and dirty flag of a FAT boot sector.
fn boot_sector_facts(boot: &[u8; 512]) -> Option<(String, bool, u32)> {
    let geometry = skiff_fat::table::Geometry::parse(boot)?;
    // The extended BPB (signature 0x29) sits at 36 on FAT12/16 and at 64 on FAT32.
    let ext = if geometry.kind == FatKind::Fat32 {
        64
    } else {
        36
    };
    let label = if boot[ext + 2] == 0x29 {
        String::from_utf8_lossy(&boot[ext + 7..ext + 18])
            .trim_end()
            .to_string()
    } else {
        String::new()
    };
    let dirty = boot[geometry.status_offset as usize] & 1 != 0;
    Some((label, dirty, geometry.volume_id))
}

impl Volume {
    /// Open the volume image `path`; `writable` volumes are locked against VMs until
    /// they are closed.
    pub fn open(path: &Path, writable: bool) -> Result<Volume, String> {
        let file = open_image_file(path, writable)?;
        let (fs, disk) = mount(path, file, writable)?;
        Ok(Volume {
            fs,
            disk,
            path: path.to_path_buf(),
        })
    }

    /// Write everything back (the FS information sector, the clean flag) and release the
    /// file and its lock.
    pub fn close(self) -> Result<(), String> {
        self.fs.unmount().map_err(|e| self.error(&[], e))
    }

    /// `VOLUME:/path`, for messages.
    fn what(&self, components: &[String]) -> String {
        format!("{}:{}", self.path.display(), shown_path(components))
    }

    fn error(&self, components: &[String], error: Errno) -> String {
        format!(
            "{}: {}",
            self.what(components),
            errno_reason(error, self.disk.take_error())
        )
    }

    /// The FAT type, cluster size, total and free bytes, label, volume ID, and whether
    /// the volume was not unmounted cleanly.
    pub fn info(&self) -> Result<Vec<(&'static str, String)>, String> {
        let mut boot = [0u8; 512];
        self.disk
            .file
            .read_exact_at(&mut boot, 0)
            .map_err(|e| describe_io(&self.path, &e))?;
        let (label, dirty, id) = boot_sector_facts(&boot)
            .ok_or_else(|| format!("{}: the boot sector changed", self.path.display()))?;
        let stats = self.fs.statfs();
        let mut lines = vec![
            (
                "type",
                fat_type_name(fat_type_of(self.fs.kind())).to_string(),
            ),
            ("cluster size", format_size(stats.block_size)),
            ("capacity", approx(stats.block_size * stats.blocks)),
            ("free", approx(stats.block_size * stats.blocks_free)),
            ("label", label),
            ("volume id", format!("{:04X}-{:04X}", id >> 16, id & 0xffff)),
        ];
        if dirty {
            lines.push(("state", "not cleanly unmounted".to_string()));
        }
        Ok(lines)
    }

    /// `name` in `dir`, if it exists.
    fn lookup(
        &self,
        dir: &Arc<dyn Inode>,
        name: &str,
        components: &[String],
    ) -> Result<Option<Arc<dyn Inode>>, String> {
        match dir.lookup(name.as_bytes()) {
            Ok(inode) => Ok(Some(inode)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.error(components, e)),
        }
    }

    /// The directory at `components` (which must exist).
    fn dir(&self, components: &[String]) -> Result<Arc<dyn Inode>, String> {
        let mut dir = self.fs.root();
        for (i, name) in components.iter().enumerate() {
            let here = &components[..=i];
            match self.lookup(&dir, name, here)? {
                Some(entry) if entry.file_type() == FileType::Directory => dir = entry,
                Some(_) => return Err(format!("{}: not a directory", self.what(here))),
                None => return Err(format!("{}: no such file or directory", self.what(here))),
            }
        }
        Ok(dir)
    }

    /// The directory at `components`, created with its parents where missing (like
    /// `mkdir -p`).
    pub fn make_dirs(&self, components: &[String]) -> Result<Arc<dyn Inode>, String> {
        let mut dir = self.fs.root();
        for (i, name) in components.iter().enumerate() {
            let here = &components[..=i];
            dir = match self.lookup(&dir, name, here)? {
                Some(entry) if entry.file_type() == FileType::Directory => entry,
                Some(_) => return Err(format!("{}: not a directory", self.what(here))),
                None => dir
                    .create(name.as_bytes(), NewNode::Directory, NEW_OWNER)
                    .map_err(|e| self.error(here, e))?,
            };
        }
        Ok(dir)
    }

    fn kind_of(&self, inode: &Arc<dyn Inode>, components: &[String]) -> Result<Kind, String> {
        if inode.file_type() == FileType::Directory {
            return Ok(Kind::Dir);
        }
        let stat = inode.stat().map_err(|e| self.error(components, e))?;
        Ok(Kind::File { size: stat.size })
    }

    /// What `components` is, if it exists.
    pub fn kind(&self, components: &[String]) -> Result<Option<Kind>, String> {
        let Some((name, parent)) = components.split_last() else {
            return Ok(Some(Kind::Dir));
        };
        let dir = match self.dir(parent) {
            Ok(dir) => dir,
            Err(_) => return Ok(None),
        };
        match self.lookup(&dir, name, components)? {
            Some(inode) => Ok(Some(self.kind_of(&inode, components)?)),
            None => Ok(None),
        }
    }

    fn entry_of(
        &self,
        name: String,
        inode: &Arc<dyn Inode>,
        components: &[String],
    ) -> Result<ListEntry, String> {
        let stat = inode.stat().map_err(|e| self.error(components, e))?;
        Ok(ListEntry {
            name,
            kind: self.kind_of(inode, components)?,
            modified: stat.mtime.sec,
        })
    }

    /// The entries of the directory at `components` sorted by name (without `.` and
    /// `..`), or the one entry if it names a file.
    pub fn list(&self, components: &[String]) -> Result<Vec<ListEntry>, String> {
        if let Some((name, parent)) = components.split_last() {
            let dir = self.dir(parent)?;
            match self.lookup(&dir, name, components)? {
                Some(inode) if inode.file_type() != FileType::Directory => {
                    return Ok(vec![self.entry_of(name.clone(), &inode, components)?]);
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "{}: no such file or directory",
                        self.what(components)
                    ))
                }
            }
        }
        let dir = self.dir(components)?;
        let mut entries = Vec::new();
        let mut cookie = 0;
        while let Some(entry) = dir
            .read_dir(cookie)
            .map_err(|e| self.error(components, e))?
        {
            cookie = entry.cookie + 1;
            let name = String::from_utf8_lossy(&entry.name).into_owned();
            let mut path = components.to_vec();
            path.push(name.clone());
            let inode = dir.lookup(&entry.name).map_err(|e| self.error(&path, e))?;
            entries.push(self.entry_of(name, &inode, &path)?);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The regular file at `components`.
    fn file(&self, components: &[String]) -> Result<Arc<dyn Inode>, String> {
        let Some((name, parent)) = components.split_last() else {
            return Err(format!("{}: is a directory", self.what(components)));
        };
        let dir = self.dir(parent)?;
        match self.lookup(&dir, name, components)? {
            Some(inode) if inode.file_type() == FileType::Directory => {
                Err(format!("{}: is a directory", self.what(components)))
            }
            Some(inode) => Ok(inode),
            None => Err(format!(
                "{}: no such file or directory",
                self.what(components)
            )),
        }
    }

    /// Copy the file at `components` to `out`; returns the bytes copied.
    pub fn read_file(&self, components: &[String], out: &mut dyn Write) -> Result<u64, String> {
        let file = self.file(components)?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = file
                .read_at(total, &mut buffer)
                .map_err(|e| self.error(components, e))?;
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buffer[..n])
                .map_err(|e| format!("writing the output: {e}"))?;
            total += n as u64;
        }
    }

    /// Create or replace the file at `components` with the bytes of `input` (missing
    /// parent directories are created); returns the bytes written.
    pub fn write_file(&self, components: &[String], input: &mut dyn Read) -> Result<u64, String> {
        let Some((name, parent)) = components.split_last() else {
            return Err(format!("{}: is a directory", self.what(components)));
        };
        let dir = self.make_dirs(parent)?;
        let file = match self.lookup(&dir, name, components)? {
            Some(inode) if inode.file_type() == FileType::Directory => {
                return Err(format!("{}: is a directory", self.what(components)))
            }
            Some(inode) => inode,
            None => dir
                .create(name.as_bytes(), NewNode::Regular, NEW_OWNER)
                .map_err(|e| self.error(components, e))?,
        };
        let copied = (|| {
            file.set_size(0).map_err(|e| self.error(components, e))?;
            let mut buffer = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = match input.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading the source: {e}")),
                };
                let mut done = 0;
                while done < n {
                    let written = file
                        .write_at(total + done as u64, &buffer[done..n])
                        .map_err(|e| self.error(components, e))?;
                    if written == 0 {
                        return Err(self.error(components, Errno::ENOSPC));
                    }
                    done += written;
                }
                total += n as u64;
            }
            Ok(total)
        })();
        drop(file);
        if copied.is_err() {
            // Do not leave a partial file (or the space it took) behind.
            let _ = dir.unlink(name.as_bytes(), false);
        }
        copied
    }

    /// Remove the file or directory at `components` (a non-empty directory only if
    /// `recursive`).
    pub fn remove(&self, components: &[String], recursive: bool) -> Result<(), String> {
        let Some((name, parent)) = components.split_last() else {
            return Err(format!(
                "{}: the root directory cannot be removed",
                self.what(components)
            ));
        };
        let dir = self.dir(parent)?;
        let Some(inode) = self.lookup(&dir, name, components)? else {
            return Err(format!(
                "{}: no such file or directory",
                self.what(components)
            ));
        };
        let is_dir = inode.file_type() == FileType::Directory;
        drop(inode);
        if is_dir {
            let children: Vec<String> =
                self.list(components)?.into_iter().map(|e| e.name).collect();
            if !children.is_empty() && !recursive {
                return Err(format!(
                    "{}: is a directory with contents (use -r to remove it all)",
                    self.what(components)
                ));
            }
            for child in children {
                let mut path = components.to_vec();
                path.push(child);
                self.remove(&path, true)?;
            }
        }
        dir.unlink(name.as_bytes(), is_dir)
            .map_err(|e| self.error(components, e))
    }
}

impl Drop for Volume {
    /// A volume dropped on an error path still gets what was written so far onto the
    /// disk, consistently (unmounting twice is harmless).
    fn drop(&mut self) {
        let _ = self.fs.unmount();
    }
}

/// One side of `skiff volume cp`: a host path or `VOLUME:/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Host(PathBuf),
    Volume { image: PathBuf, path: String },
}

/// `VOLUME:/path` (the first `:` followed by `/`, after a non-empty image name) is a
/// volume path; anything else is a host path.
pub fn parse_endpoint(arg: &std::ffi::OsStr) -> Endpoint {
    use std::os::unix::ffi::OsStrExt;
    let bytes = arg.as_bytes();
    if let Some(colon) = bytes.windows(2).position(|w| w == b":/") {
        if colon > 0 {
            let image = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..colon]));
            let path = String::from_utf8_lossy(&bytes[colon + 1..]).into_owned();
            return Endpoint::Volume { image, path };
        }
    }
    Endpoint::Host(PathBuf::from(arg))
}

/// What a copy did, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

fn host_name(path: &Path) -> Result<String, String> {
    let name = match path.file_name() {
        Some(name) => name.to_os_string(),
        None => fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string()))
            .ok_or_else(|| {
                format!(
                    "{}: cannot tell what to call it on the volume; name the destination",
                    path.display()
                )
            })?,
    };
    name.into_string()
        .map_err(|n| format!("{}: FAT names must be UTF-8", n.to_string_lossy()))
}

/// Copy the host file or directory `source` to `dest` on `volume`, like `cp [-r]`: onto
/// an existing directory it goes inside it, otherwise it becomes `dest` (missing parent
/// directories are created). Symlinks are followed; other special files are skipped
/// with a warning.
pub fn copy_in(
    volume: &Volume,
    source: &Path,
    dest: &[String],
    recursive: bool,
) -> Result<CopyStats, String> {
    let metadata = fs::metadata(source).map_err(|e| describe_io(source, &e))?;
    if metadata.is_dir() && !recursive {
        return Err(format!(
            "{}: is a directory (use -r to copy directories)",
            source.display()
        ));
    }
    let mut target = dest.to_vec();
    match volume.kind(dest)? {
        Some(Kind::Dir) => target.push(host_name(source)?),
        Some(Kind::File { .. }) if metadata.is_dir() => {
            return Err(format!(
                "cannot copy the directory {} onto the file {}",
                source.display(),
                volume.what(dest)
            ))
        }
        _ => {}
    }
    let mut stats = CopyStats::default();
    copy_in_entry(volume, source, &metadata, &target, &mut stats)?;
    Ok(stats)
}

fn copy_in_entry(
    volume: &Volume,
    source: &Path,
    metadata: &fs::Metadata,
    target: &[String],
    stats: &mut CopyStats,
) -> Result<(), String> {
    if metadata.is_dir() {
        volume.make_dirs(target)?;
        stats.dirs += 1;
        let mut names = Vec::new();
        for child in fs::read_dir(source).map_err(|e| describe_io(source, &e))? {
            names.push(child.map_err(|e| describe_io(source, &e))?.file_name());
        }
        names.sort();
        for name in names {
            let child = source.join(&name);
            let Ok(child_metadata) = fs::metadata(&child) else {
                crate::session::say(&format!(
                    "warning: skipping {} (a dangling symlink)",
                    child.display()
                ));
                continue;
            };
            if !child_metadata.is_dir() && !child_metadata.is_file() {
                crate::session::say(&format!(
                    "warning: skipping {} (not a regular file or directory)",
                    child.display()
                ));
                continue;
            }
            let mut child_target = target.to_vec();
            child_target.push(host_name(&child)?);
            copy_in_entry(volume, &child, &child_metadata, &child_target, stats)?;
        }
        Ok(())
    } else if metadata.is_file() {
        let mut file = File::open(source).map_err(|e| describe_io(source, &e))?;
        stats.bytes += volume.write_file(target, &mut file)?;
        stats.files += 1;
        Ok(())
    } else {
        Err(format!(
            "{}: only regular files and directories can be copied to a volume",
            source.display()
        ))
    }
}

/// Copy the file or directory at `source` on `volume` to the host path `dest`, like
/// `cp [-r]`: into an existing directory, else as `dest` (whose parent must exist). The
/// root directory's contents go into `dest`.
pub fn copy_out(
    volume: &Volume,
    source: &[String],
    dest: &Path,
    recursive: bool,
) -> Result<CopyStats, String> {
    let kind = volume
        .kind(source)?
        .ok_or_else(|| format!("{}: no such file or directory", volume.what(source)))?;
    if kind == Kind::Dir && !recursive {
        return Err(format!(
            "{}: is a directory (use -r to copy directories)",
            volume.what(source)
        ));
    }
    let mut target = dest.to_path_buf();
    if dest.is_dir() {
        if let Some(name) = source.last() {
            target.push(name);
        }
    } else if kind == Kind::Dir && dest.exists() {
        return Err(format!(
            "cannot copy the directory {} onto the file {}",
            volume.what(source),
            dest.display()
        ));
    }
    let mut stats = CopyStats::default();
    copy_out_entry(volume, source, kind, &target, &mut stats)?;
    Ok(stats)
}

fn copy_out_entry(
    volume: &Volume,
    source: &[String],
    kind: Kind,
    target: &Path,
    stats: &mut CopyStats,
) -> Result<(), String> {
    match kind {
        Kind::Dir => {
            match fs::create_dir(target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && target.is_dir() => {}
                Err(e) => return Err(describe_io(target, &e)),
            }
            stats.dirs += 1;
            for entry in volume.list(source)? {
                let mut child = source.to_vec();
                child.push(entry.name.clone());
                copy_out_entry(volume, &child, entry.kind, &target.join(&entry.name), stats)?;
            }
            Ok(())
        }
        Kind::File { .. } => {
            let file = File::create(target).map_err(|e| describe_io(target, &e))?;
            let mut out = io::BufWriter::new(file);
            stats.bytes += volume.read_file(source, &mut out)?;
            out.flush().map_err(|e| describe_io(target, &e))?;
            stats.files += 1;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_volume(dir: &Path, size: u64) -> PathBuf {
        let path = dir.join("vol.img");
        create(&path, size, CreateOptions::default()).unwrap();
        path
    }

    fn comps(path: &str) -> Vec<String> {
        path_components(path).unwrap()
    }

    #[test]
    fn dates_show_in_utc() {
        assert_eq!(show_date_time(0), "1970-01-01 00:00");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(show_date_time(1_709_210_096), "2024-02-29 12:34");
        assert_eq!(show_date_time(-60), "1969-12-31 23:59");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn fat_type_follows_the_size() {
        let dir = crate::tempfiles::test_dir();
        for (size, expected) in [
            (1u64 << 20, FatType::Fat12),
            (64 << 20, FatType::Fat16),
            (512 << 20, FatType::Fat32),
        ] {
            let path = dir.path().join(format!("{size}.img"));
            assert_eq!(
                create(&path, size, CreateOptions::default()).unwrap(),
                expected,
                "{size}"
            );
            assert_eq!(fs::metadata(&path).unwrap().len(), size);
            check_for_vm(&path).unwrap();
        }
    }

    #[test]
    fn every_new_volume_gets_its_own_id() {
        let dir = crate::tempfiles::test_dir();
        let id = |name: &str| {
            let path = dir.path().join(name);
            create(&path, 1 << 20, CreateOptions::default()).unwrap();
            let mut boot = [0u8; 512];
            File::open(&path).unwrap().read_exact(&mut boot).unwrap();
            boot_sector_facts(&boot).unwrap().2
        };
        let ids: Vec<u32> = ["a.img", "b.img", "c.img"].iter().map(|n| id(n)).collect();
        // fatfs's default, which every volume had before.
        assert!(!ids.contains(&0x1234_5678), "{ids:x?}");
        assert!(
            ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
            "{ids:x?}"
        );
        let volume = Volume::open(&dir.path().join("a.img"), false).unwrap();
        let shown = format!("{:04X}-{:04X}", ids[0] >> 16, ids[0] & 0xffff);
        assert!(volume.info().unwrap().contains(&("volume id", shown)));
    }

    #[test]
    fn create_refuses_to_overwrite_without_force() {
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 1 << 20);
        let e = create(&path, 1 << 20, CreateOptions::default()).unwrap_err();
        assert!(e.contains("already exists; use --force"), "{e}");
        {
            let volume = Volume::open(&path, true).unwrap();
            volume.write_file(&comps("/old"), &mut &b"old"[..]).unwrap();
            volume.close().unwrap();
        }
        let options = CreateOptions {
            force: true,
            label: Some(parse_label("data").unwrap()),
            fat_type: None,
        };
        create(&path, 2 << 20, options).unwrap();
        let volume = Volume::open(&path, false).unwrap();
        assert!(volume.list(&[]).unwrap().is_empty());
        assert_eq!(fs::metadata(&path).unwrap().len(), 2 << 20);
        let info = volume.info().unwrap();
        assert!(info.contains(&("label", "DATA".to_string())), "{info:?}");
        // A size fatfs cannot format leaves no file behind.
        let tiny = dir.path().join("tiny.img");
        assert!(create(&tiny, 1024, CreateOptions::default()).is_err());
        assert!(!tiny.exists());
    }

    #[test]
    fn fat_type_can_be_chosen() {
        let dir = crate::tempfiles::test_dir();
        let path = dir.path().join("v.img");
        for size in [64u64 << 10, 1 << 20, 64 << 20, 1 << 30] {
            for fat_type in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
                let options = CreateOptions {
                    force: true,
                    label: None,
                    fat_type: Some(fat_type),
                };
                match create(&path, size, options) {
                    Ok(made) => {
                        assert_eq!(made, fat_type, "{size}");
                        check_for_vm(&path).unwrap();
                    }
                    Err(e) => assert!(e.contains("filesystem cannot be"), "{size}: {e}"),
                }
            }
        }
        let options = CreateOptions {
            fat_type: Some(FatType::Fat32),
            ..CreateOptions::default()
        };
        assert_eq!(
            create(&dir.path().join("32.img"), 64 << 20, options),
            Ok(FatType::Fat32)
        );
        assert!(parse_fat_type("32") == Ok(FatType::Fat32));
        assert!(parse_fat_type("FAT16") == Ok(FatType::Fat16));
        assert!(parse_fat_type("64").is_err());
    }

    #[test]
    fn files_round_trip_through_a_volume() {
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 8 << 20);
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        {
            let volume = Volume::open(&path, true).unwrap();
            assert_eq!(
                volume
                    .write_file(&comps("/a/b/big.bin"), &mut big.as_slice())
                    .unwrap(),
                big.len() as u64
            );
            volume
                .write_file(&comps("/hello.txt"), &mut &b"hello\n"[..])
                .unwrap();
            // Replacing a file truncates it.
            volume
                .write_file(&comps("/hello.txt"), &mut &b"hi\n"[..])
                .unwrap();
            volume.make_dirs(&comps("/empty/dir")).unwrap();
            volume.close().unwrap();
        }
        let volume = Volume::open(&path, false).unwrap();
        let root = volume.list(&[]).unwrap();
        let names: Vec<_> = root.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(
            names,
            [
                ("a", Kind::Dir),
                ("empty", Kind::Dir),
                ("hello.txt", Kind::File { size: 3 })
            ]
        );
        let mut out = Vec::new();
        volume.read_file(&comps("/a/b/big.bin"), &mut out).unwrap();
        assert!(out == big);
        // Names are case-insensitive, as on FAT.
        let mut out = Vec::new();
        volume.read_file(&comps("/HELLO.TXT"), &mut out).unwrap();
        assert_eq!(out, b"hi\n");
        assert_eq!(
            volume.list(&comps("/hello.txt")).unwrap()[0].kind,
            Kind::File { size: 3 }
        );
        let e = volume.list(&comps("/nope")).unwrap_err();
        assert!(
            e.ends_with("vol.img:/nope: no such file or directory"),
            "{e}"
        );
        let e = volume.read_file(&comps("/a"), &mut Vec::new()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        let e = volume
            .read_file(&comps("/hello.txt/x"), &mut Vec::new())
            .unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn directories_copy_in_and_out() {
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 4 << 20);
        let src = dir.path().join("site");
        fs::create_dir_all(src.join("css")).unwrap();
        fs::write(src.join("index.html"), b"<h1>hi</h1>").unwrap();
        fs::write(src.join("css/main.css"), b"body{}").unwrap();
        std::os::unix::fs::symlink("index.html", src.join("link.html")).unwrap();
        {
            let volume = Volume::open(&path, true).unwrap();
            let e = copy_in(&volume, &src, &comps("/"), false).unwrap_err();
            assert!(e.contains("use -r"), "{e}");
            let stats = copy_in(&volume, &src, &comps("/"), true).unwrap();
            assert_eq!((stats.files, stats.dirs), (3, 2));
            // Onto a missing path: the copy takes that name.
            copy_in(&volume, &src.join("index.html"), &comps("/x/y.html"), false).unwrap();
            volume.close().unwrap();
        }
        let volume = Volume::open(&path, false).unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let stats = copy_out(&volume, &comps("/site"), &out, true).unwrap();
        assert_eq!((stats.files, stats.dirs), (3, 2));
        assert_eq!(fs::read(out.join("site/css/main.css")).unwrap(), b"body{}");
        assert_eq!(
            fs::read(out.join("site/link.html")).unwrap(),
            b"<h1>hi</h1>"
        );
        copy_out(&volume, &comps("/x/y.html"), &out.join("y"), false).unwrap();
        assert_eq!(fs::read(out.join("y")).unwrap(), b"<h1>hi</h1>");
        // The root's contents go into the destination.
        let all = dir.path().join("all");
        copy_out(&volume, &[], &all, true).unwrap();
        assert!(all.join("site/index.html").is_file() && all.join("x/y.html").is_file());
        let e = copy_out(&volume, &comps("/site"), &out.join("y"), true).unwrap_err();
        assert!(e.contains("onto the file"), "{e}");
    }

    #[test]
    fn remove_files_and_trees() {
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 2 << 20);
        let volume = Volume::open(&path, true).unwrap();
        volume.write_file(&comps("/d/e/f"), &mut &b"x"[..]).unwrap();
        volume.write_file(&comps("/g"), &mut &b"x"[..]).unwrap();
        let e = volume.remove(&comps("/d"), false).unwrap_err();
        assert!(e.contains("use -r"), "{e}");
        volume.remove(&comps("/d"), true).unwrap();
        volume.remove(&comps("/G"), false).unwrap();
        assert!(volume.list(&[]).unwrap().is_empty());
        assert!(volume.remove(&[], true).unwrap_err().contains("root"));
        volume.close().unwrap();
    }

    #[test]
    fn bad_names_and_paths() {
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 1 << 20);
        let volume = Volume::open(&path, true).unwrap();
        let e = volume
            .write_file(&comps("/a?b"), &mut &b""[..])
            .unwrap_err();
        assert!(e.contains("does not allow"), "{e}");
        assert!(path_components("/a/../b").unwrap_err().contains(".."));
        // A copy that does not fit fails without leaving a partial file behind.
        let big = vec![1u8; 2 << 20];
        let e = volume
            .write_file(&comps("/big"), &mut big.as_slice())
            .unwrap_err();
        assert!(e.contains("no space left on the volume"), "{e}");
        assert!(volume.list(&[]).unwrap().is_empty());
        volume
            .write_file(&comps("/small"), &mut &[1u8; 500_000][..])
            .unwrap();
        assert_eq!(comps("//a/./b/"), ["a", "b"]);
        volume.close().unwrap();
    }

    #[test]
    fn not_a_volume() {
        let dir = crate::tempfiles::test_dir();
        let junk = dir.path().join("junk.img");
        fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
        let e = Volume::open(&junk, false).err().unwrap();
        assert!(e.contains("is not a FAT volume image"), "{e}");
        let e = check_for_vm(&junk).unwrap_err();
        assert!(e.contains("is not a FAT volume image"), "{e}");
        let short = dir.path().join("short.img");
        fs::write(&short, b"hi\n").unwrap();
        let e = check_for_vm(&short).unwrap_err();
        assert!(e.contains("is not a FAT volume image"), "{e}");
        let e = check_for_vm(&dir.path().join("missing.img")).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
        let e = check_for_vm(dir.path()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = Volume::open(&dir.path().join("missing.img"), false)
            .err()
            .unwrap();
        assert!(e.contains("skiff volume create"), "{e}");
    }

    #[test]
    fn writers_lock_out_vms_and_each_other() {
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 1 << 20);
        let volume = Volume::open(&path, true).unwrap();
        let e = Volume::open(&path, true).err().unwrap();
        assert!(e.contains("is in use"), "{e}");
        let e = check_for_vm(&path).unwrap_err();
        assert!(e.contains("in use by another VM"), "{e}");
        volume.close().unwrap();
        check_for_vm(&path).unwrap();
        Volume::open(&path, true).unwrap().close().unwrap();
    }

    #[test]
    fn a_vm_waits_briefly_for_a_lock_that_is_being_released() {
        // A killed VM's QEMU lets go of its volumes a moment after its CLI died.
        let dir = crate::tempfiles::test_dir();
        let path = new_volume(dir.path(), 1 << 20);
        let volume = Volume::open(&path, true).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            volume.close().unwrap();
        });
        check_for_vm(&path).unwrap();
        release.join().unwrap();
    }

    #[test]
    fn endpoints() {
        use std::ffi::OsStr;
        assert_eq!(
            parse_endpoint(OsStr::new("data.img:/a/b")),
            Endpoint::Volume {
                image: "data.img".into(),
                path: "/a/b".into()
            }
        );
        assert_eq!(
            parse_endpoint(OsStr::new("data.img:/")),
            Endpoint::Volume {
                image: "data.img".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            parse_endpoint(OsStr::new("./file")),
            Endpoint::Host("./file".into())
        );
        assert_eq!(
            parse_endpoint(OsStr::new("a:b")),
            Endpoint::Host("a:b".into())
        );
        assert_eq!(
            parse_endpoint(OsStr::new(":/x")),
            Endpoint::Host(":/x".into())
        );
    }

    #[test]
    fn labels() {
        assert_eq!(&parse_label("data").unwrap(), b"DATA       ");
        assert!(parse_label("").is_err());
        assert!(parse_label("twelve chars").is_err());
        assert!(parse_label("a/b").is_err());
    }
}
