//! Option values: decoding the caller's bytes, Linux's limits and defaults, and the
//! per-socket TCP settings that connections are built from.

use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};

/// Linux's `net.core.somaxconn`: the largest listen backlog.
pub(crate) const SOMAXCONN: i32 = 4096;

/// Bytes of receive and send buffer a TCP connection gets unless `SO_RCVBUF` /
/// `SO_SNDBUF` say otherwise. smoltcp allocates both when the connection is made and
/// cannot grow them later (Linux starts at 128 KiB / 16 KiB and autotunes up to
/// megabytes), so this is a compromise: 64 KiB each lets a peer that writes a few
/// hundred KiB before it reads its echo (a common test pattern) make progress through
/// both endpoints' buffers, fills a loopback or user-networking path, and keeps 1,000
/// connections within 128 MiB.
pub(crate) const TCP_DEFAULT_RX: usize = 64 * 1024;
pub(crate) const TCP_DEFAULT_TX: usize = 64 * 1024;
/// Linux's default `net.core.rmem_max` / `wmem_max`: the largest `SO_RCVBUF` /
/// `SO_SNDBUF` an unprivileged request gets (before doubling).
pub(crate) const RMEM_MAX: u32 = 212_992;
pub(crate) const WMEM_MAX: u32 = 212_992;
/// Linux's `SOCK_MIN_RCVBUF` / `SOCK_MIN_SNDBUF` (after doubling).
pub(crate) const SOCK_MIN_RCVBUF: usize = 2304;
pub(crate) const SOCK_MIN_SNDBUF: usize = 4608;
/// The most any `*BUFFORCE` request allocates per buffer: far above Linux's defaults,
/// far below smoltcp's 1 GiB limit.
pub(crate) const BUF_FORCE_MAX: usize = 16 << 20;
/// Linux's UDP default `SO_RCVBUF`/`SO_SNDBUF` (`net.core.rmem_default`).
pub(crate) const UDP_DEFAULT_BUF: usize = 212_992;
/// Linux's `TCP_MSS_DEFAULT`: what `TCP_MAXSEG` reports before a connection exists.
pub(crate) const TCP_MSS_DEFAULT: i32 = 536;
/// Linux's default time-to-live.
pub(crate) const DEFAULT_TTL: u8 = 64;

/// An `int` option value: `EINVAL` when fewer than four bytes were given.
pub(crate) fn int_arg(value: &[u8]) -> KResult<i32> {
    let bytes: [u8; 4] = value
        .get(..4)
        .ok_or(Errno::EINVAL)?
        .try_into()
        .map_err(|_| Errno::EINVAL)?;
    Ok(i32::from_ne_bytes(bytes))
}

pub(crate) fn int_bytes(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// The value `SO_RCVBUF`/`SO_SNDBUF` store for a request of `requested` bytes, as
/// Linux's `sock_setsockopt`: clamp to the maximum (a negative request is a huge one),
/// double for bookkeeping overhead, raise to the minimum. `force` (`*BUFFORCE`)
/// skips the maximum; a negative forced request counts as zero.
pub(crate) fn buffer_value(requested: i32, max: u32, min: usize, force: bool) -> usize {
    let val = if force {
        (requested.max(0) as usize).min(BUF_FORCE_MAX / 2)
    } else {
        (requested as u32).min(max) as usize
    };
    (val * 2).max(min)
}

/// The bytes of buffer a stored `SO_RCVBUF`/`SO_SNDBUF` value buys: half of it, as
/// Linux counts the other half as overhead.
pub(crate) fn buffer_bytes(stored: usize) -> usize {
    (stored / 2).max(1024)
}

/// Linux's conversion of `TCP_DEFER_ACCEPT` seconds to SYN-ACK retransmissions (initial
/// timeout 1 s, doubling up to 120 s)...
pub(crate) fn secs_to_retrans(seconds: i32) -> u8 {
    if seconds <= 0 {
        return 0;
    }
    let (mut timeout, mut period, mut retrans) = (1i64, 1i64, 1u8);
    while i64::from(seconds) > period && retrans < u8::MAX {
        retrans += 1;
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    retrans
}

/// ...and back, which is what `getsockopt` reports.
pub(crate) fn retrans_to_secs(retrans: u8) -> i32 {
    if retrans == 0 {
        return 0;
    }
    let (mut timeout, mut period) = (1i32, 1i32);
    for _ in 1..retrans {
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    period
}

/// How long a connection attempt retransmits its SYN before giving up, for `syncnt`
/// retries: Linux's initial 1 s timeout doubling per retry, plus the wait after the
/// last (6 retries: 127 s).
pub(crate) fn syn_timeout_ms(syncnt: u8) -> u64 {
    let mut total = 0u64;
    let mut rto = 1000u64;
    for _ in 0..=syncnt {
        total += rto;
        rto = (rto * 2).min(120_000);
    }
    total
}

/// How long unacknowledged data may wait before Linux gives up on a connection when
/// `TCP_USER_TIMEOUT` is not set: `tcp_retries2` = 15 retransmissions with an RTO
/// growing from 200 ms to 120 s.
pub(crate) const DEFAULT_DATA_TIMEOUT_MS: u64 = 924_600;
/// Linux's `tcp_fin_timeout`: how long an orphaned connection waits in FIN-WAIT-2.
pub(crate) const FIN_TIMEOUT_S: i32 = 60;
/// How long a half-open connection (SYN received) waits for the final ACK: Linux's
/// `tcp_synack_retries` = 5 with the same backoff (1+2+4+8+16+32 s).
pub(crate) const SYNACK_TIMEOUT_MS: u64 = 63_000;

/// What a TCP socket's options say about its connection; accepted connections inherit
/// their listener's, as Linux clones the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpOpts {
    /// Stored `SO_RCVBUF` / `SO_SNDBUF` values (doubled, as reported).
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub nodelay: bool,
    pub keepalive: bool,
    pub keepidle_s: i32,
    pub keepintvl_s: i32,
    pub keepcnt: i32,
    /// `TCP_USER_TIMEOUT` in milliseconds (0: Linux's default behaviour).
    pub user_timeout_ms: u32,
    /// `TCP_SYNCNT`: SYN retransmissions before a connect gives up.
    pub syncnt: u8,
    /// `TCP_LINGER2`: seconds an orphaned connection waits in FIN-WAIT-2 (0: the
    /// system default).
    pub linger2_s: i32,
    pub ttl: Option<u8>,
    /// `IP_TOS` as stored (Linux clears the ECN bits for TCP).
    pub tos: i32,
    // Hints: recorded and reported back, with no effect (see `getsockopt`).
    pub defer_accept: u8,
    pub fastopen: i32,
    pub quickack: bool,
    pub cork: bool,
    pub maxseg: i32,
    pub window_clamp: i32,
    pub recverr: bool,
    pub mtu_discover: i32,
}

impl Default for TcpOpts {
    fn default() -> TcpOpts {
        TcpOpts {
            rcvbuf: TCP_DEFAULT_RX * 2,
            sndbuf: TCP_DEFAULT_TX * 2,
            nodelay: false,
            keepalive: false,
            keepidle_s: 7200,
            keepintvl_s: 75,
            keepcnt: 9,
            user_timeout_ms: 0,
            syncnt: 6,
            linger2_s: 0,
            ttl: None,
            tos: 0,
            defer_accept: 0,
            fastopen: 0,
            quickack: true,
            cork: false,
            maxseg: 0,
            window_clamp: 0,
            recverr: false,
            mtu_discover: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_follow_linux() {
        // The values Linux reports on this machine's defaults (rmem_max 212992).
        assert_eq!(buffer_value(0, RMEM_MAX, SOCK_MIN_RCVBUF, false), 2304);
        assert_eq!(buffer_value(1152, RMEM_MAX, SOCK_MIN_RCVBUF, false), 2304);
        assert_eq!(buffer_value(2000, RMEM_MAX, SOCK_MIN_RCVBUF, false), 4000);
        assert_eq!(buffer_value(2000, WMEM_MAX, SOCK_MIN_SNDBUF, false), 4608);
        assert_eq!(
            buffer_value(100_000, RMEM_MAX, SOCK_MIN_RCVBUF, false),
            200_000
        );
        assert_eq!(
            buffer_value(1_000_000, RMEM_MAX, SOCK_MIN_RCVBUF, false),
            425_984
        );
        assert_eq!(buffer_value(-5, RMEM_MAX, SOCK_MIN_RCVBUF, false), 425_984);
        assert_eq!(buffer_value(-5, RMEM_MAX, SOCK_MIN_RCVBUF, true), 2304);
        assert_eq!(
            buffer_value(1_000_000, RMEM_MAX, SOCK_MIN_RCVBUF, true),
            2_000_000
        );
    }

    #[test]
    fn defer_accept_rounds_like_linux() {
        assert_eq!(secs_to_retrans(0), 0);
        assert_eq!(secs_to_retrans(5), 3);
        assert_eq!(retrans_to_secs(3), 7);
        assert_eq!(retrans_to_secs(secs_to_retrans(1)), 1);
        assert_eq!(retrans_to_secs(secs_to_retrans(30)), 31);
    }

    #[test]
    fn syn_retries_give_linuxs_127_seconds() {
        assert_eq!(syn_timeout_ms(6), 127_000);
        assert_eq!(syn_timeout_ms(1), 3_000);
    }

    #[test]
    fn int_options_need_four_bytes() {
        assert_eq!(int_arg(&[1, 0]), Err(Errno::EINVAL));
        assert_eq!(int_arg(&5i32.to_ne_bytes()), Ok(5));
    }
}
