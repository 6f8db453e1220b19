//! Directory entries on disk: decoding a directory's raw 32-byte slots (long-name
//! assembly and checksums, short-name case flags, which slots are skipped: the same
//! rules as fatfs, Linux and Windows), building the slots of a new entry (long name and
//! a unique short name), and the rules for names an application may create.
//!
//! Each entry's position is its identity and its `getdents` cookie.

use alloc::string::String;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};

pub const ENTRY_SIZE: usize = 32;
pub const ATTR_READ_ONLY: u8 = 0x01;
pub const ATTR_HIDDEN: u8 = 0x02;
pub const ATTR_VOLUME: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_LFN: u8 = 0x0f;
const LFN_PART: usize = 13;
const LFN_MAX_ENTRIES: usize = 20;

/// One visible entry of a directory ("." and ".." and volume labels excluded).
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// Index of the short entry in the directory (the `getdents` cookie, less 2).
    pub index: u32,
    /// Index of the first slot that belongs to the entry (its long-name slots, and any
    /// stray long-name slots right before them, as fatfs counts them).
    pub first_slot: u32,
    /// Byte offset of the short entry on the volume.
    pub pos: u64,
    /// The name shown to applications: the long name, else the short name with its
    /// case flags applied.
    pub name: String,
    /// The valid long name, for matching.
    lfn: Option<String>,
    /// The short name as stored (upper case, "NAME.EXT"), for matching.
    sfn: String,
    pub attr: u8,
}

impl RawEntry {
    pub fn is_dir(&self) -> bool {
        self.attr & ATTR_DIRECTORY != 0
    }

    /// The keys a lookup finds this entry by (see [`name_key`]).
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.lfn
            .iter()
            .chain(core::iter::once(&self.sfn))
            .map(|n| name_key(n))
    }

    /// Whether a lookup of `name` finds this entry: its long or its short name, ignoring
    /// case (fatfs's rule, and Linux vfat's).
    pub fn matches(&self, name: &str) -> bool {
        self.lfn.as_deref().is_some_and(|l| eq_ignore_case(l, name))
            || eq_ignore_case(&self.sfn, name)
    }
}

/// The key under which a name is found: its Unicode upper case (fatfs's comparison).
pub fn name_key(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// Case-insensitive comparison by Unicode upper case, as fatfs compares names.
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}

/// A short name as fatfs decodes it: padding removed, "." before a non-empty extension,
/// a leading 0x05 read as 0xE5, non-ASCII bytes as U+FFFD; `lower` applies the
/// basename and extension lower-case flags.
fn short_name(raw: &[u8], flags: u8, lower: bool) -> String {
    let base_len = raw[..8]
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |p| p + 1);
    let ext_len = raw[8..11]
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |p| p + 1);
    let mut out = String::new();
    let mut push = |b: u8, lower_it: bool| {
        let c = if b <= 0x7f { b as char } else { '\u{fffd}' };
        out.push(if lower_it { c.to_ascii_lowercase() } else { c });
    };
    for (i, &b) in raw[..base_len].iter().enumerate() {
        let b = if i == 0 && b == 0x05 { 0xe5 } else { b };
        push(b, lower && flags & 0x08 != 0);
    }
    if ext_len > 0 {
        push(b'.', false);
        for &b in &raw[8..8 + ext_len] {
            push(b, lower && flags & 0x10 != 0);
        }
    }
    out
}

fn lfn_checksum(sfn: &[u8]) -> u8 {
    sfn[..11].iter().fold(0u8, |sum, &b| {
        (sum >> 1).wrapping_add(sum << 7).wrapping_add(b)
    })
}

/// Long-name pieces collected before a short entry (fatfs's `LongNameBuilder`).
#[derive(Default)]
struct LongName {
    units: Vec<u16>,
    /// Order number of the piece seen last; 0 when nothing is collected.
    index: u8,
    checksum: u8,
}

impl LongName {
    fn clear(&mut self) {
        self.units.clear();
        self.index = 0;
    }

    fn process(&mut self, e: &[u8]) {
        let order = e[0];
        let index = order & 0x1f;
        if index == 0 || index as usize > LFN_MAX_ENTRIES {
            self.clear();
            return;
        }
        if order & 0x40 != 0 {
            self.index = index;
            self.checksum = e[13];
            self.units.clear();
            self.units.resize(index as usize * LFN_PART, 0);
        } else if self.index == 0 || index != self.index - 1 || e[13] != self.checksum {
            self.clear();
            return;
        } else {
            self.index -= 1;
        }
        let at = LFN_PART * (index as usize - 1);
        let mut part = [0u16; LFN_PART];
        for (i, slot) in part.iter_mut().enumerate() {
            let off = match i {
                0..=4 => 1 + 2 * i,
                5..=10 => 14 + 2 * (i - 5),
                _ => 28 + 2 * (i - 11),
            };
            *slot = u16::from_le_bytes([e[off], e[off + 1]]);
        }
        self.units[at..at + LFN_PART].copy_from_slice(&part);
    }

    /// The long name belonging to the short entry `sfn`, if complete and matching.
    fn take(&mut self, sfn: &[u8]) -> Option<Vec<u16>> {
        if self.index == 0 {
            return None;
        }
        let ok = self.index == 1 && lfn_checksum(sfn) == self.checksum;
        let mut units = core::mem::take(&mut self.units);
        self.clear();
        if !ok {
            return None;
        }
        let len = units
            .iter()
            .rposition(|&c| c != 0 && c != 0xffff)
            .map_or(0, |p| p + 1);
        units.truncate(len);
        (!units.is_empty()).then_some(units)
    }
}

/// A decoded directory.
pub struct Parsed {
    pub entries: Vec<RawEntry>,
    /// Every short name in use (also ".", ".." and volume labels).
    pub short_names: Vec<[u8; 11]>,
}

/// Decodes a directory's bytes. `pos_of(index)` gives the volume offset of entry
/// `index`.
pub fn parse_dir(bytes: &[u8], pos_of: impl Fn(u32) -> u64) -> Parsed {
    let mut out = Vec::new();
    let mut short_names = Vec::new();
    let mut lfn = LongName::default();
    let mut run_start = 0;
    for (i, e) in bytes.chunks_exact(ENTRY_SIZE).enumerate() {
        if e[0] == 0 {
            break;
        }
        if e[0] == 0xe5 {
            lfn.clear();
            run_start = i + 1;
            continue;
        }
        let attr = e[11] & 0x3f;
        if attr & ATTR_LFN == ATTR_LFN {
            lfn.process(e);
            continue;
        }
        let mut sfn = [0u8; 11];
        sfn.copy_from_slice(&e[..11]);
        short_names.push(sfn);
        let first_slot = run_start as u32;
        run_start = i + 1;
        if attr & ATTR_VOLUME != 0 {
            lfn.clear();
            continue;
        }
        let raw = &e[..11];
        let long = lfn.take(raw);
        if raw == b".          " || raw == b"..         " {
            continue;
        }
        let sfn = short_name(raw, 0, false);
        let (name, valid_lfn) = match long {
            Some(units) => match String::from_utf16(&units) {
                Ok(s) => (s.clone(), Some(s)),
                Err(_) => (String::from_utf16_lossy(&units), None),
            },
            None => (short_name(raw, e[12], true), None),
        };
        out.push(RawEntry {
            index: i as u32,
            first_slot,
            pos: pos_of(i as u32),
            name,
            lfn: valid_lfn,
            sfn,
            attr,
        });
    }
    Parsed {
        entries: out,
        short_names,
    }
}

/// Directory slots of a new entry named `name`: its long-name slots (every new entry
/// gets them, so the name keeps its case) and the short entry.
pub fn slots_for(name: &str) -> u32 {
    (name.encode_utf16().count() as u32).div_ceil(LFN_PART as u32) + 1
}

/// Linux vfat ignores trailing dots and spaces of a name ("foo." is "foo").
pub fn strip_tail(name: &[u8]) -> &[u8] {
    let len = name
        .iter()
        .rposition(|&b| b != b'.' && b != b' ')
        .map_or(0, |p| p + 1);
    &name[..len]
}

/// The name under which a lookup searches, or `None` if no entry can have it.
pub fn lookup_name(name: &[u8]) -> Option<&str> {
    let name = core::str::from_utf8(strip_tail(name)).ok()?;
    (!name.is_empty()).then_some(name)
}

/// Checks a name for a new entry (Linux vfat's rules): valid UTF-8 (`EINVAL`), at most
/// 255 UTF-16 units (`ENAMETOOLONG`), no control characters and none of `"*/:<>?\|`
/// (`EINVAL`). Trailing dots and spaces are dropped first.
pub fn check_new_name(name: &[u8]) -> KResult<&str> {
    let name = core::str::from_utf8(strip_tail(name)).map_err(|_| Errno::EINVAL)?;
    if name.is_empty() {
        return Err(Errno::EINVAL);
    }
    if name.encode_utf16().count() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    let bad =
        |c: char| c < ' ' || matches!(c, '"' | '*' | '/' | ':' | '<' | '>' | '?' | '\\' | '|');
    if name.chars().any(bad) {
        return Err(Errno::EINVAL);
    }
    Ok(name)
}

/// The short (8.3) name for a new entry `name` whose directory already uses
/// `taken`: the name itself when it is a valid 8.3 name (upper-cased), else
/// `BASE~N` (N 1-4), else `BAxxxx~N` with a hash of the name, as Windows forms them.
pub fn make_short_name(name: &str, taken: impl Fn(&[u8; 11]) -> bool) -> [u8; 11] {
    fn part(dst: &mut [u8], src: &str) -> (usize, bool, bool) {
        let mut len = 0;
        let mut lossy = false;
        for c in src.chars() {
            if len == dst.len() {
                return (len, false, lossy);
            }
            let fixed = match c {
                ' ' | '.' => {
                    lossy = true;
                    continue;
                }
                'A'..='Z'
                | 'a'..='z'
                | '0'..='9'
                | '!'
                | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '-'
                | '@'
                | '^'
                | '_'
                | '`'
                | '{'
                | '}'
                | '~' => c,
                _ => '_',
            };
            lossy |= fixed != c;
            dst[len] = fixed.to_ascii_uppercase() as u8;
            len += 1;
        }
        (len, true, lossy)
    }
    let mut base = [b' '; 11];
    // The extension follows the last dot that is not the first character.
    let dot = name
        .char_indices()
        .skip(1)
        .filter(|&(_, c)| c == '.')
        .last()
        .map(|(i, _)| i);
    let (stem, ext) = match dot {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let (mut base_len, mut fits, mut lossy) = part(&mut base[..8], stem);
    if let Some(ext) = ext {
        let (_, f, l) = part(&mut base[8..], ext);
        fits &= f;
        lossy |= l;
    }
    if base_len == 0 {
        base[0] = b'_';
        base_len = 1;
        lossy = true;
    }
    if fits && !lossy && !taken(&base) {
        return base;
    }
    let with_tail = |prefix: &[u8], n: u32| {
        let mut s = [b' '; 11];
        s[..prefix.len()].copy_from_slice(prefix);
        s[prefix.len()] = b'~';
        s[prefix.len() + 1] = b'0' + n as u8;
        s[8..].copy_from_slice(&base[8..]);
        s
    };
    for n in 1..=4 {
        let s = with_tail(&base[..base_len.min(6)], n);
        if !taken(&s) {
            return s;
        }
    }
    let mut sum = name
        .chars()
        .fold(0u16, |sum, c| sum.rotate_right(1).wrapping_add(c as u16));
    let hex = b"0123456789ABCDEF";
    loop {
        let mut prefix = [0u8; 6];
        let p = base_len.min(2);
        prefix[..p].copy_from_slice(&base[..p]);
        for (k, d) in prefix[p..p + 4].iter_mut().enumerate() {
            *d = hex[(sum >> (12 - 4 * k) & 0xf) as usize];
        }
        for n in 1..=9 {
            let s = with_tail(&prefix[..p + 4], n);
            if !taken(&s) {
                return s;
            }
        }
        sum = sum.wrapping_add(1);
    }
}

/// The directory slots for entry `name` with short name `sfn` and short-entry fields
/// `fields` (bytes 11 to 31: attributes, times, first cluster, size): its long-name
/// slots, last part first, then the short entry.
pub fn entry_slots(name: &str, sfn: &[u8; 11], fields: &[u8; 21]) -> Vec<[u8; ENTRY_SIZE]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let parts = units.len().div_ceil(LFN_PART);
    let sum = lfn_checksum(sfn);
    let mut out = Vec::with_capacity(parts + 1);
    for k in (0..parts).rev() {
        let mut e = [0u8; ENTRY_SIZE];
        e[0] = (k + 1) as u8 | if k + 1 == parts { 0x40 } else { 0 };
        e[11] = ATTR_LFN;
        e[13] = sum;
        for j in 0..LFN_PART {
            let i = k * LFN_PART + j;
            let unit = match i.cmp(&units.len()) {
                core::cmp::Ordering::Less => units[i],
                core::cmp::Ordering::Equal => 0,
                core::cmp::Ordering::Greater => 0xffff,
            };
            let off = match j {
                0..=4 => 1 + 2 * j,
                5..=10 => 14 + 2 * (j - 5),
                _ => 28 + 2 * (j - 11),
            };
            e[off..off + 2].copy_from_slice(&unit.to_le_bytes());
        }
        out.push(e);
    }
    let mut e = [0u8; ENTRY_SIZE];
    e[..11].copy_from_slice(sfn);
    e[11..].copy_from_slice(fields);
    out.push(e);
    out
}

/// Where Windows, Linux and fatfs put `needed` new slots: the first run of
/// deleted slots that long, else the deleted slots just before the end marker and on.
/// Returns (first slot, slots missing past the directory's end).
pub fn free_slots(bytes: &[u8], needed: u32) -> (u32, u32) {
    let total = (bytes.len() / ENTRY_SIZE) as u32;
    let mut run = 0;
    let mut first_free = 0;
    for (i, e) in bytes.chunks_exact(ENTRY_SIZE).enumerate() {
        let i = i as u32;
        if e[0] == 0 {
            let start = if run == 0 { i } else { first_free };
            return (start, needed.saturating_sub(total - start));
        }
        if e[0] == 0xe5 {
            if run == 0 {
                first_free = i;
            }
            run += 1;
            if run == needed {
                return (first_free, 0);
            }
        } else {
            run = 0;
        }
    }
    let start = if run == 0 { total } else { first_free };
    (start, needed.saturating_sub(total - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sfn_entry(name: &[u8; 11], attr: u8, flags: u8) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[12] = flags;
        e
    }

    fn lfn_entries(name: &str, sfn: &[u8; 11]) -> Vec<[u8; 32]> {
        let mut units: Vec<u16> = name.encode_utf16().collect();
        if !units.len().is_multiple_of(13) {
            units.push(0);
        }
        while !units.len().is_multiple_of(13) {
            units.push(0xffff);
        }
        let n = units.len() / 13;
        let sum = lfn_checksum(sfn);
        (0..n)
            .rev()
            .map(|i| {
                let mut e = [0u8; 32];
                e[0] = (i + 1) as u8 | if i == n - 1 { 0x40 } else { 0 };
                e[11] = 0x0f;
                e[13] = sum;
                for j in 0..13 {
                    let off = match j {
                        0..=4 => 1 + 2 * j,
                        5..=10 => 14 + 2 * (j - 5),
                        _ => 28 + 2 * (j - 11),
                    };
                    e[off..off + 2].copy_from_slice(&units[i * 13 + j].to_le_bytes());
                }
                e
            })
            .collect()
    }

    #[test]
    fn parses_long_short_and_skips() {
        let mut dir = Vec::new();
        dir.extend_from_slice(&sfn_entry(b".          ", 0x10, 0));
        dir.extend_from_slice(&sfn_entry(b"..         ", 0x10, 0));
        dir.extend_from_slice(&sfn_entry(b"LABEL      ", 0x08, 0));
        for e in lfn_entries("A long file name.txt", b"ALONGF~1TXT") {
            dir.extend_from_slice(&e);
        }
        dir.extend_from_slice(&sfn_entry(b"ALONGF~1TXT", 0x20, 0));
        let mut deleted = sfn_entry(b"GONE    TXT", 0x20, 0);
        deleted[0] = 0xe5;
        dir.extend_from_slice(&deleted);
        dir.extend_from_slice(&sfn_entry(b"README  MD ", 0x20, 0x08 | 0x10));
        dir.extend_from_slice(&sfn_entry(b"SUB        ", 0x10, 0));
        // A long name whose checksum does not match is ignored.
        for e in lfn_entries("orphaned long name", b"OTHER   TXT") {
            dir.extend_from_slice(&e);
        }
        dir.extend_from_slice(&sfn_entry(b"PLAIN   TXT", 0x20, 0));
        dir.extend_from_slice(&[0u8; 32]);
        dir.extend_from_slice(&sfn_entry(b"AFTEREND   ", 0x20, 0));
        let list = parse_dir(&dir, |i| 1000 + i as u64 * 32).entries;
        let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["A long file name.txt", "readme.md", "SUB", "PLAIN.TXT"]
        );
        assert_eq!(list[0].index, 5);
        assert_eq!(list[0].pos, 1000 + 5 * 32);
        assert!(list[0].matches("a LONG file NAME.TXT"));
        assert!(list[0].matches("alongf~1.txt"));
        assert!(!list[0].matches("a long file name"));
        assert!(list[1].matches("README.MD"));
        assert!(list[2].is_dir());
        assert_eq!(list[3].index, 11);
    }

    #[test]
    fn free_slot_search() {
        let used = sfn_entry(b"USED       ", 0x20, 0);
        let mut gone = used;
        gone[0] = 0xe5;
        let dir = |entries: &[[u8; 32]], total: usize| {
            let mut v: Vec<u8> = entries.iter().flatten().copied().collect();
            v.resize(total * 32, 0);
            v
        };
        // Room after the end marker.
        assert_eq!(free_slots(&dir(&[used, used], 8), 3).1, 0);
        assert_eq!(free_slots(&dir(&[used, used], 8), 7).1, 1);
        // A long enough run of deleted slots in the middle.
        assert_eq!(
            free_slots(&dir(&[used, gone, gone, used, used, used], 6), 2).1,
            0
        );
        // A deleted run just before the end counts with the space after it.
        assert_eq!(free_slots(&dir(&[used, used, gone, gone], 5), 4).1, 1);
        // Completely full.
        assert_eq!(free_slots(&dir(&[used; 4], 4), 2), (4, 2));
        assert_eq!(free_slots(&dir(&[used, gone, gone, used], 4), 2), (1, 0));
        assert_eq!(slots_for("a"), 2);
        assert_eq!(slots_for("exactly13char"), 2);
        assert_eq!(slots_for("fourteen chars"), 3);
    }

    #[test]
    fn name_rules() {
        assert_eq!(check_new_name(b"hello world.txt"), Ok("hello world.txt"));
        assert_eq!(check_new_name(b"trailing. . "), Ok("trailing"));
        assert_eq!(check_new_name("été".as_bytes()), Ok("été"));
        assert_eq!(check_new_name("a😀".as_bytes()), Ok("a😀"));
        for bad in [
            &b"a:b"[..],
            b"a*",
            b"q?",
            b"x\"",
            b"<",
            b"a|b",
            b"a\\b",
            b"\x01",
            b"...",
            b"\xff",
        ] {
            assert_eq!(check_new_name(bad), Err(Errno::EINVAL), "{bad:?}");
        }
        assert_eq!(
            check_new_name("é".repeat(200).as_bytes()),
            Ok(&*"é".repeat(200))
        );
        assert_eq!(
            check_new_name("😀".repeat(128).as_bytes()),
            Err(Errno::ENAMETOOLONG),
            "128 surrogate pairs are 256 UTF-16 units"
        );
        assert_eq!(lookup_name(b"foo.."), Some("foo"));
        assert_eq!(lookup_name(b".."), None);
        assert!(eq_ignore_case("Straße", "STRASSE"));
    }

    #[test]
    fn short_names() {
        let none = |_: &[u8; 11]| false;
        assert_eq!(&make_short_name("readme.txt", none), b"README  TXT");
        assert_eq!(&make_short_name("Makefile", none), b"MAKEFILE   ");
        assert_eq!(
            &make_short_name("long file name.text", none),
            b"LONGFI~1TEX"
        );
        assert_eq!(&make_short_name(".bashrc", none), b"BASHRC~1   ");
        assert_eq!(&make_short_name("été.txt", none), b"_T_~1   TXT");
        assert_eq!(&make_short_name("a.b.c", none), b"AB~1    C  ");
        // Collisions walk the tails, then hashed prefixes, never repeating.
        let mut taken = std::collections::HashSet::new();
        for i in 0..500 {
            let s = make_short_name(&format!("IMG_{i:04} copy.jpg"), |s| taken.contains(s));
            assert!(taken.insert(s), "{i}: {s:?} twice");
            assert_eq!(&s[8..], b"JPG");
        }
        assert!(taken.contains(b"IMG_00~1JPG"));
    }

    #[test]
    fn built_slots_parse_back() {
        let mut fields = [0u8; 21];
        fields[0] = 0x20;
        for name in [
            "x",
            "exactly13char",
            "fourteen chars",
            "é😀 mixed",
            &"n".repeat(255),
        ] {
            let sfn = make_short_name(name, |_| false);
            let slots = entry_slots(name, &sfn, &fields);
            assert_eq!(slots.len() as u32, slots_for(name));
            let bytes: Vec<u8> = slots.iter().flatten().copied().collect();
            let parsed = parse_dir(&bytes, |i| i as u64);
            assert_eq!(parsed.entries.len(), 1);
            let e = &parsed.entries[0];
            assert_eq!(e.name, name);
            assert_eq!(e.first_slot, 0);
            assert_eq!(e.index as usize, slots.len() - 1);
            assert!(e.matches(&name.to_uppercase()));
            assert_eq!(parsed.short_names, vec![sfn]);
        }
    }
}
