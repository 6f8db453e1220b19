//! What sits in an AF_UNIX receive queue, and what it costs its sender.
//!
//! Linux charges every queued `sk_buff` to the socket that sent it (`sk_wmem_alloc`)
//! until the receiver consumes or discards it, and that charge, compared with the
//! sender's `SO_SNDBUF`, is what makes a sender block or see `EAGAIN`. The charge is the
//! buffer's *true size*: the payload rounded up to the allocator's size classes plus the
//! `sk_buff` bookkeeping, which is why a socket holds 278 one-byte messages but only a
//! few large ones. [`stream_chunk`], [`datagram_truesize`] and [`stream_truesize`]
//! reproduce Linux 6.x's arithmetic (measured against native runs: 278 small messages,
//! 219 264 bytes taken by one large non-blocking stream write), so programs that probe
//! how much fits see the numbers they would see on Linux.
//!
//! A [`Charge`] returns its bytes to the sender's [`SendAccount`] when the message is
//! dropped, from whichever socket's queue held it; the account is shared, not the
//! socket, so dropping a message never drops a socket.

use crate::device::event_stamp;
use crate::file::OpenFile;
use crate::socket::{SockAddr, Ucred};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86_64.
const SKB_STRUCT: usize = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86_64.
const SKB_SHARED_INFO: usize = 320;
const PAGE: usize = 4096;
/// `SKB_MAX_HEAD(0)`: the most payload a one-page linear buffer holds.
const SKB_MAX_HEAD: usize = PAGE - SKB_SHARED_INFO;
/// `UNIX_SKB_FRAGS_SZ`: the page fragments one stream buffer may add.
const UNIX_SKB_FRAGS: usize = 32 * 1024;
/// `SKB_MAX_ALLOC`: a datagram larger than this moves its tail to page fragments.
const SKB_MAX_ALLOC: usize = 4 * PAGE - SKB_SHARED_INFO;
/// `MAX_SKB_FRAGS`.
const MAX_SKB_FRAGS: usize = 17;

fn page_align(n: usize) -> usize {
    n.next_multiple_of(PAGE)
}

/// What `kmalloc` really hands out for `n` bytes: its size classes up to 8 KiB, whole
/// power-of-two page runs above.
fn kmalloc_size(n: usize) -> usize {
    const CLASSES: [usize; 13] = [
        8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
    ];
    CLASSES
        .iter()
        .copied()
        .find(|&c| c >= n)
        .unwrap_or_else(|| n.next_power_of_two())
}

/// `skb->truesize` of a buffer with a linear part of `head` bytes and `frags` bytes of
/// page fragments.
fn truesize(head: usize, frags: usize) -> usize {
    SKB_STRUCT + kmalloc_size(head.next_multiple_of(64) + SKB_SHARED_INFO) + frags
}

/// The true size of one datagram of `len` bytes (`unix_dgram_sendmsg`'s split).
pub fn datagram_truesize(len: usize) -> usize {
    let frags = if len > SKB_MAX_ALLOC {
        page_align((len - SKB_MAX_ALLOC).min(MAX_SKB_FRAGS * PAGE))
    } else {
        0
    };
    truesize(len - frags.min(len), frags)
}

/// How many bytes of a stream write of `left` bytes go into the next buffer, given
/// the sender's `sndbuf` (`unix_stream_sendmsg` keeps two buffers in flight).
pub fn stream_chunk(left: usize, sndbuf: usize) -> usize {
    left.min((sndbuf / 2).saturating_sub(64).max(1))
        .min(SKB_MAX_HEAD + UNIX_SKB_FRAGS)
}

/// The true size of one stream buffer of `size` bytes (from [`stream_chunk`]).
pub fn stream_truesize(size: usize) -> usize {
    let frags = page_align(size.saturating_sub(SKB_MAX_HEAD)).min(size);
    truesize(size - frags, frags)
}

/// A socket's send-side accounting, shared with the messages it has queued elsewhere.
pub struct SendAccount {
    /// True size of this socket's messages still queued at a receiver.
    wmem: AtomicUsize,
    /// `SO_SNDBUF` (already doubled, as Linux stores it).
    sndbuf: AtomicUsize,
    /// Stamp of the last release that left the socket writable (Linux's
    /// `unix_write_space` wakes `EPOLLOUT` waiters then).
    room: AtomicU64,
}

impl SendAccount {
    pub fn new(sndbuf: usize) -> SendAccount {
        SendAccount {
            wmem: AtomicUsize::new(0),
            sndbuf: AtomicUsize::new(sndbuf),
            room: AtomicU64::new(0),
        }
    }

    pub fn wmem(&self) -> usize {
        self.wmem.load(Ordering::Acquire)
    }

    pub fn sndbuf(&self) -> usize {
        self.sndbuf.load(Ordering::Acquire)
    }

    pub fn set_sndbuf(&self, bytes: usize) {
        self.sndbuf.store(bytes, Ordering::Release);
        if self.writable() {
            self.room.store(event_stamp(), Ordering::Release);
        }
    }

    /// Whether a new buffer may be allocated now (`sock_alloc_send_pskb`).
    pub fn has_room(&self) -> bool {
        self.wmem() < self.sndbuf()
    }

    /// `unix_writable`: at most a quarter of the send buffer is in flight (Linux counts
    /// one extra unit for the socket's own reference).
    pub fn writable(&self) -> bool {
        (self.wmem() + 1) * 4 <= self.sndbuf()
    }

    pub fn room_stamp(&self) -> u64 {
        self.room.load(Ordering::Acquire)
    }
}

/// Bytes charged to a sender for one queued message; given back on drop.
pub struct Charge {
    account: Arc<SendAccount>,
    bytes: usize,
}

impl Charge {
    pub fn new(account: &Arc<SendAccount>, bytes: usize) -> Charge {
        account.wmem.fetch_add(bytes, Ordering::AcqRel);
        Charge {
            account: account.clone(),
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.wmem.fetch_sub(self.bytes, Ordering::AcqRel);
        if self.account.writable() {
            self.account.room.store(event_stamp(), Ordering::Release);
        }
    }
}

/// One queued message: a datagram, a seqpacket record, or one buffer of a stream.
pub struct Message {
    pub data: Vec<u8>,
    /// Bytes of `data` a stream reader has already taken.
    pub consumed: usize,
    /// The sender's name when it sent this, if it had one.
    pub from: Option<SockAddr>,
    /// `SCM_RIGHTS` files in flight with this message.
    pub rights: Vec<Arc<OpenFile>>,
    /// Credentials recorded at send time (explicit `SCM_CREDENTIALS`, or the sender's
    /// when either end had `SO_PASSCRED`).
    pub creds: Option<Ucred>,
    _charge: Charge,
}

impl Message {
    pub fn new(
        data: Vec<u8>,
        from: Option<SockAddr>,
        rights: Vec<Arc<OpenFile>>,
        creds: Option<Ucred>,
        charge: Charge,
    ) -> Message {
        Message {
            data,
            consumed: 0,
            from,
            rights,
            creds,
            _charge: charge,
        }
    }

    /// Bytes not yet read.
    pub fn unread(&self) -> &[u8] {
        &self.data[self.consumed..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages of `truesize` each that fit before `has_room` turns false.
    fn fit(truesize: usize, sndbuf: usize) -> usize {
        sndbuf.div_ceil(truesize)
    }

    #[test]
    fn datagram_sizes_match_linux_measurements() {
        // Counts of datagrams a default 212 992-byte send buffer takes, measured on
        // Linux 6.x with non-blocking socketpairs.
        for (len, count) in [
            (0, 278),
            (1, 278),
            (64, 278),
            (256, 167),
            (1024, 93),
            (4096, 26),
            (16384, 11),
            (65536, 4),
        ] {
            assert_eq!(fit(datagram_truesize(len), 212_992), count, "len {len}");
        }
    }

    #[test]
    fn stream_sizes_match_linux_measurements() {
        let sndbuf = 212_992;
        assert_eq!(stream_chunk(1 << 20, sndbuf), 36_544);
        assert_eq!(stream_truesize(36_544), 37_120);
        // One 256 KiB non-blocking write takes six buffers: 219 264 bytes.
        assert_eq!(fit(stream_truesize(36_544), sndbuf) * 36_544, 219_264);
        assert_eq!(fit(stream_truesize(32_768), sndbuf), 7);
        assert_eq!(fit(stream_truesize(512), sndbuf), 167);
        assert_eq!(fit(stream_truesize(4096), sndbuf), 44);
        assert_eq!(stream_chunk(100, 4608), 100);
        assert_eq!(stream_chunk(10_000, 4608), 2240);
    }

    #[test]
    fn charges_come_back_when_messages_go() {
        let account = Arc::new(SendAccount::new(4608));
        assert!(account.writable());
        let m = Message::new(
            alloc::vec![0; 10],
            None,
            Vec::new(),
            None,
            Charge::new(&account, 2000),
        );
        assert_eq!(account.wmem(), 2000);
        assert!(account.has_room() && !account.writable());
        let before = account.room_stamp();
        drop(m);
        assert_eq!(account.wmem(), 0);
        assert!(account.room_stamp() > before);
    }
}
