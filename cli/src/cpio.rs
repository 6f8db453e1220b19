//! A writer for cpio archives in the `newc` format (the format of Linux initramfs and of
//! the Skiff initrd).
//!
//! Each entry is a 110-byte ASCII header (`070701` then thirteen 8-digit hex fields), the
//! NUL-terminated name padded to a multiple of 4, then the data padded to a multiple of
//! 4. The archive ends with an entry named `TRAILER!!!`. The writer is deliberately
//! simple and deterministic: the caller decides names, order, inode numbers and times.

use std::io::{self, Write};

/// Magic of a `newc` header (no checksum).
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Bytes of a `newc` header.
pub const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER_NAME: &[u8] = b"TRAILER!!!";

/// File type bits of `st_mode`.
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

/// The header fields of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Path inside the archive, without a leading `/` (as cpio stores names).
    pub name: Vec<u8>,
    pub ino: u32,
    /// File type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    /// Seconds since the epoch.
    pub mtime: u32,
    /// Bytes of data that follow (for a symlink: its target).
    pub file_size: u32,
}

/// Streams entries into `W`, keeping track of the alignment padding.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter { out, written: 0 }
    }

    /// Write one entry's header and name; the caller then writes exactly
    /// `header.file_size` bytes with [`CpioWriter::write_data`] and calls
    /// [`CpioWriter::finish_data`].
    pub fn write_header(&mut self, header: &EntryHeader) -> io::Result<()> {
        if header.name.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cpio name contains NUL",
            ));
        }
        let name_size = u32::try_from(header.name.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio name too long"))?;
        let fields = [
            header.ino,
            header.mode,
            header.uid,
            header.gid,
            header.nlink,
            header.mtime,
            header.file_size,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            name_size,
            0, // check (unused by newc)
        ];
        let mut text = Vec::with_capacity(HEADER_LEN + header.name.len() + 4);
        text.extend_from_slice(NEWC_MAGIC);
        for field in fields {
            text.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        text.extend_from_slice(&header.name);
        text.push(0);
        self.emit(&text)?;
        self.pad()
    }

    /// Write (part of) the current entry's data.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.emit(data)
    }

    /// Pad after the current entry's data.
    pub fn finish_data(&mut self) -> io::Result<()> {
        self.pad()
    }

    /// Write a whole entry whose data is in memory; `file_size` is taken from `data`.
    pub fn write_entry(&mut self, header: &EntryHeader, data: &[u8]) -> io::Result<()> {
        let file_size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio entry over 4 GiB"))?;
        self.write_header(&EntryHeader {
            file_size,
            ..header.clone()
        })?;
        self.write_data(data)?;
        self.finish_data()
    }

    /// Write the trailer and return the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        let trailer = EntryHeader {
            name: TRAILER_NAME.to_vec(),
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            file_size: 0,
        };
        self.write_entry(&trailer, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.emit(&[0u8; 3][..padding])
    }
}

/// Reading archives back: `skiff inspect` lists an image's initrd and `skiff run <image>`
/// rewrites its run configuration. Malformed input is an error with the offset, never a
/// panic.
pub mod reader {
    use super::*;

    /// One entry read back: header and data.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ReadEntry {
        pub header: EntryHeader,
        pub data: Vec<u8>,
    }

    fn align4(n: usize) -> usize {
        n.div_ceil(4) * 4
    }

    fn slice(bytes: &[u8], start: usize, len: usize) -> Result<&[u8], String> {
        start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end))
            .ok_or_else(|| format!("truncated at offset {start}"))
    }

    /// Parse a whole `newc` archive up to (excluding) the trailer.
    pub fn read_archive(bytes: &[u8]) -> Result<Vec<ReadEntry>, String> {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            let header = slice(bytes, at, HEADER_LEN)?;
            if &header[..6] != NEWC_MAGIC {
                return Err(format!("not a newc cpio header at offset {at}"));
            }
            let mut fields = [0u32; 13];
            for (i, field) in fields.iter_mut().enumerate() {
                let text = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).ok();
                *field = text
                    .and_then(|t| u32::from_str_radix(t, 16).ok())
                    .ok_or_else(|| format!("bad header field at offset {}", at + 6 + 8 * i))?;
            }
            let name_size = fields[11] as usize;
            if name_size == 0 {
                return Err(format!("empty name at offset {at}"));
            }
            let name_start = at + HEADER_LEN;
            let name_field = slice(bytes, name_start, name_size)?;
            let (name, nul) = name_field.split_at(name_size - 1);
            if nul != [0] {
                return Err(format!("name not NUL-terminated at offset {name_start}"));
            }
            let data_start = align4(name_start + name_size);
            let file_size = fields[6] as usize;
            let data = slice(bytes, data_start, file_size)?.to_vec();
            at = align4(data_start + file_size);
            if name == TRAILER_NAME {
                return Ok(entries);
            }
            entries.push(ReadEntry {
                header: EntryHeader {
                    name: name.to_vec(),
                    ino: fields[0],
                    mode: fields[1],
                    uid: fields[2],
                    gid: fields[3],
                    nlink: fields[4],
                    mtime: fields[5],
                    file_size: fields[6],
                },
                data,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reader::read_archive;
    use super::*;

    fn header(name: &str, ino: u32, mode: u32) -> EntryHeader {
        EntryHeader {
            name: name.as_bytes().to_vec(),
            ino,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 1_700_000_000,
            file_size: 0,
        }
    }

    #[test]
    fn entries_round_trip_with_padding() {
        let mut writer = CpioWriter::new(Vec::new());
        writer
            .write_entry(&header("bin", 1, S_IFDIR | 0o755), &[])
            .unwrap();
        // Names and data of every length mod 4 exercise the padding.
        for (i, len) in (0..8).enumerate() {
            let name = format!("bin/f{}", "x".repeat(i));
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            writer
                .write_entry(&header(&name, 2 + i as u32, S_IFREG | 0o644), &data)
                .unwrap();
        }
        writer
            .write_entry(&header("bin/sh", 10, S_IFLNK | 0o777), b"busybox")
            .unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let entries = read_archive(&bytes).unwrap();
        assert_eq!(entries.len(), 10);
        assert_eq!(entries[0].header.name, b"bin");
        assert_eq!(entries[0].header.mode, S_IFDIR | 0o755);
        for (i, entry) in entries[1..9].iter().enumerate() {
            assert_eq!(
                entry.header.name,
                format!("bin/f{}", "x".repeat(i)).as_bytes()
            );
            assert_eq!(entry.data.len(), i);
            assert_eq!(entry.header.ino, 2 + i as u32);
            assert_eq!(entry.header.mtime, 1_700_000_000);
        }
        assert_eq!(entries[9].data, b"busybox");
    }

    #[test]
    fn header_layout_is_exact() {
        let mut writer = CpioWriter::new(Vec::new());
        writer
            .write_entry(&header("a", 1, S_IFREG | 0o755), b"hi")
            .unwrap();
        let bytes = writer.finish().unwrap();
        let expected_header = "070701\
            00000001000081ed0000000000000000000000016553f100\
            00000002000000000000000000000000000000000000000200000000";
        assert_eq!(&bytes[..HEADER_LEN], expected_header.as_bytes());
        // Name "a\0" ends at 112, already aligned; data "hi" then 2 bytes of padding.
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 2], b"a\0");
        assert_eq!(&bytes[112..116], b"hi\0\0");
        assert_eq!(&bytes[116..122], NEWC_MAGIC);
    }

    #[test]
    fn streamed_data_matches_write_entry() {
        let mut streamed = CpioWriter::new(Vec::new());
        let h = EntryHeader {
            file_size: 5,
            ..header("x", 1, S_IFREG | 0o600)
        };
        streamed.write_header(&h).unwrap();
        streamed.write_data(b"he").unwrap();
        streamed.write_data(b"llo").unwrap();
        streamed.finish_data().unwrap();
        let mut whole = CpioWriter::new(Vec::new());
        whole.write_entry(&h, b"hello").unwrap();
        assert_eq!(streamed.finish().unwrap(), whole.finish().unwrap());
    }

    #[test]
    fn malformed_archives_are_errors() {
        let mut writer = CpioWriter::new(Vec::new());
        writer
            .write_entry(&header("a", 1, S_IFREG | 0o644), b"data")
            .unwrap();
        let bytes = writer.finish().unwrap();
        for cut in [0, 50, 111, 116, bytes.len() - 4] {
            let error = read_archive(&bytes[..cut]).unwrap_err();
            assert!(error.contains("truncated"), "{cut}: {error}");
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(read_archive(&bad).unwrap_err().contains("not a newc"));
        let mut bad = bytes.clone();
        bad[20] = b'g';
        assert!(read_archive(&bad).unwrap_err().contains("bad header field"));
    }

    #[test]
    fn names_with_nul_are_rejected() {
        let mut writer = CpioWriter::new(Vec::new());
        assert!(writer
            .write_entry(&header("a\0b", 1, S_IFREG), &[])
            .is_err());
    }
}
