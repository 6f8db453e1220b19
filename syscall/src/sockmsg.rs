//! Linux's message structures for `sendmsg`/`recvmsg`: `struct msghdr`,
//! `struct mmsghdr` and control messages (`struct cmsghdr`, `SCM_RIGHTS`,
//! `SCM_CREDENTIALS`), decoded from and encoded to their x86_64 byte layouts.
//!
//! Pure byte work, so host tests can check the layouts; the socket system calls do the
//! user-memory copies and the descriptor-table changes.

use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};
use skiff_fs::socket::{Ucred, SCM_CREDENTIALS, SCM_RIGHTS, SOL_SOCKET};

/// `sizeof(struct msghdr)`.
pub const MSGHDR_SIZE: usize = 56;
/// `sizeof(struct mmsghdr)`: a `msghdr`, the `msg_len` result and padding.
pub const MMSGHDR_SIZE: usize = 64;
/// Offsets of the `msghdr` fields the kernel writes back.
pub const MSG_NAMELEN_OFFSET: u64 = 8;
pub const MSG_CONTROLLEN_OFFSET: u64 = 40;
pub const MSG_FLAGS_OFFSET: u64 = 48;
/// Offset of `msg_len` in `struct mmsghdr`.
pub const MMSG_LEN_OFFSET: u64 = 56;
/// `sizeof(struct cmsghdr)`.
pub const CMSG_HEADER: usize = 16;
/// Linux's `SCM_MAX_FD`: most descriptors one `SCM_RIGHTS` message may carry.
pub const SCM_MAX_FD: usize = 253;

/// A decoded `struct msghdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgHdr {
    pub name: u64,
    pub namelen: u32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
    pub flags: i32,
}

impl MsgHdr {
    pub fn from_bytes(b: &[u8; MSGHDR_SIZE]) -> MsgHdr {
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        MsgHdr {
            name: u64_at(0),
            namelen: u32::from_ne_bytes(b[8..12].try_into().expect("4 bytes")),
            iov: u64_at(16),
            iovlen: u64_at(24),
            control: u64_at(32),
            controllen: u64_at(40),
            flags: i32::from_ne_bytes(b[48..52].try_into().expect("4 bytes")),
        }
    }
}

/// A control message a sender attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlMessage {
    /// `SCM_RIGHTS`: descriptor numbers in the sender's table.
    Rights(Vec<i32>),
    /// `SCM_CREDENTIALS`.
    Credentials(Ucred),
}

fn align(len: usize) -> usize {
    len.next_multiple_of(8)
}

/// `CMSG_SPACE(len)`.
pub fn cmsg_space(len: usize) -> usize {
    CMSG_HEADER + align(len)
}

/// Parse a `sendmsg` control buffer. Linux's rules: every header must be complete and
/// its `cmsg_len` must cover the header and stay inside the buffer (`EINVAL`);
/// `SCM_RIGHTS` carries whole `int`s, at most [`SCM_MAX_FD`]; `SCM_CREDENTIALS` is one
/// `struct ucred`. Other `SOL_SOCKET` types and other levels are `EINVAL`: none of
/// Skiff's families implements them, and ignoring them would hide that.
pub fn parse_control(buf: &[u8]) -> KResult<Vec<ControlMessage>> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() - at >= CMSG_HEADER {
        let header = &buf[at..at + CMSG_HEADER];
        let len = u64::from_ne_bytes(header[0..8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_ne_bytes(header[8..12].try_into().expect("4 bytes"));
        let kind = i32::from_ne_bytes(header[12..16].try_into().expect("4 bytes"));
        if len < CMSG_HEADER || len > buf.len() - at {
            return Err(Errno::EINVAL);
        }
        let data = &buf[at + CMSG_HEADER..at + len];
        match (level, kind) {
            (SOL_SOCKET, SCM_RIGHTS) => {
                if !data.len().is_multiple_of(4) || data.is_empty() || data.len() / 4 > SCM_MAX_FD {
                    return Err(Errno::EINVAL);
                }
                let fds = data
                    .chunks_exact(4)
                    .map(|c| i32::from_ne_bytes(c.try_into().expect("4 bytes")))
                    .collect();
                out.push(ControlMessage::Rights(fds));
            }
            (SOL_SOCKET, SCM_CREDENTIALS) => {
                if data.len() != Ucred::SIZE {
                    return Err(Errno::EINVAL);
                }
                let word = |o: usize| data[o..o + 4].try_into().expect("4 bytes");
                out.push(ControlMessage::Credentials(Ucred {
                    pid: i32::from_ne_bytes(word(0)),
                    uid: u32::from_ne_bytes(word(4)),
                    gid: u32::from_ne_bytes(word(8)),
                }));
            }
            _ => return Err(Errno::EINVAL),
        }
        at += align(len).min(buf.len() - at);
    }
    Ok(out)
}

/// A `recvmsg` control buffer being filled, at most `room` bytes (the caller's
/// `msg_controllen`). What does not fit sets `MSG_CTRUNC`, as Linux's `put_cmsg` does:
/// a message is cut short if at least its header fits, dropped otherwise.
pub struct ControlWriter {
    room: usize,
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

impl ControlWriter {
    pub fn new(room: usize) -> ControlWriter {
        ControlWriter {
            room,
            bytes: Vec::new(),
            truncated: false,
        }
    }

    /// Room left for a message's data after its header (0 if not even a header fits).
    pub fn data_room(&self) -> usize {
        self.room
            .saturating_sub(self.bytes.len())
            .saturating_sub(CMSG_HEADER)
    }

    /// Append one message.
    pub fn push(&mut self, level: i32, kind: i32, data: &[u8]) {
        let left = self.room.saturating_sub(self.bytes.len());
        if left < CMSG_HEADER {
            self.truncated = true;
            return;
        }
        let mut len = CMSG_HEADER + data.len();
        if len > left {
            self.truncated = true;
            len = left;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&(len as u64).to_ne_bytes());
        self.bytes.extend_from_slice(&level.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&data[..len - CMSG_HEADER]);
        // Pad to the next message's alignment, within the room.
        let padded = (start + cmsg_space(len - CMSG_HEADER)).min(self.room);
        self.bytes.resize(padded, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut v = ((CMSG_HEADER + data.len()) as u64).to_ne_bytes().to_vec();
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        v.resize(cmsg_space(data.len()), 0);
        v
    }

    #[test]
    fn msghdr_fields_sit_at_linux_offsets() {
        let mut b = [0u8; MSGHDR_SIZE];
        b[0..8].copy_from_slice(&0x1000u64.to_ne_bytes());
        b[8..12].copy_from_slice(&16u32.to_ne_bytes());
        b[16..24].copy_from_slice(&0x2000u64.to_ne_bytes());
        b[24..32].copy_from_slice(&3u64.to_ne_bytes());
        b[32..40].copy_from_slice(&0x3000u64.to_ne_bytes());
        b[40..48].copy_from_slice(&64u64.to_ne_bytes());
        b[48..52].copy_from_slice(&7i32.to_ne_bytes());
        assert_eq!(
            MsgHdr::from_bytes(&b),
            MsgHdr {
                name: 0x1000,
                namelen: 16,
                iov: 0x2000,
                iovlen: 3,
                control: 0x3000,
                controllen: 64,
                flags: 7
            }
        );
        assert_eq!(MSG_CONTROLLEN_OFFSET, 40);
        assert_eq!(MMSG_LEN_OFFSET as usize, MSGHDR_SIZE);
    }

    #[test]
    fn rights_and_credentials_parse() {
        let mut buf = cmsg(
            SOL_SOCKET,
            SCM_RIGHTS,
            &[3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0],
        );
        let cred = Ucred {
            pid: 1,
            uid: 0,
            gid: 0,
        };
        buf.extend_from_slice(&cmsg(SOL_SOCKET, SCM_CREDENTIALS, &cred.to_bytes()));
        assert_eq!(
            parse_control(&buf).unwrap(),
            [
                ControlMessage::Rights(alloc::vec![3, 4, 5]),
                ControlMessage::Credentials(cred)
            ]
        );
    }

    #[test]
    fn malformed_control_messages_are_einval() {
        let good = cmsg(SOL_SOCKET, SCM_RIGHTS, &[3, 0, 0, 0]);
        let mut short = good.clone();
        short[0..8].copy_from_slice(&8u64.to_ne_bytes());
        assert_eq!(parse_control(&short), Err(Errno::EINVAL));
        let mut long = good.clone();
        long[0..8].copy_from_slice(&100u64.to_ne_bytes());
        assert_eq!(parse_control(&long), Err(Errno::EINVAL));
        assert_eq!(
            parse_control(&cmsg(SOL_SOCKET, SCM_RIGHTS, &[1, 2, 3])),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            parse_control(&cmsg(0, 1, &[0; 4])),
            Err(Errno::EINVAL),
            "IP-level messages are not implemented"
        );
        // A trailing fragment shorter than a header is ignored, as on Linux.
        let mut tail = good.clone();
        tail.extend_from_slice(&[0; 8]);
        assert_eq!(parse_control(&tail).unwrap().len(), 1);
    }

    #[test]
    fn the_writer_truncates_like_put_cmsg() {
        let mut w = ControlWriter::new(cmsg_space(8));
        w.push(SOL_SOCKET, SCM_RIGHTS, &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert!(!w.truncated);
        assert_eq!(
            w.bytes,
            cmsg(SOL_SOCKET, SCM_RIGHTS, &[1, 0, 0, 0, 2, 0, 0, 0])
        );
        w.push(SOL_SOCKET, SCM_RIGHTS, &[3, 0, 0, 0]);
        assert!(w.truncated, "no room for a second header");

        let mut w = ControlWriter::new(CMSG_HEADER + 4);
        assert_eq!(w.data_room(), 4);
        w.push(SOL_SOCKET, SCM_CREDENTIALS, &[9; 12]);
        assert!(w.truncated);
        assert_eq!(w.bytes.len(), CMSG_HEADER + 4);
        assert_eq!(&w.bytes[0..8], &20u64.to_ne_bytes());
    }
}
