//! Classifying a received frame before smoltcp sees it: which connection, listener or
//! datagram socket it is for.
//!
//! smoltcp would otherwise offer every packet to every socket of one set; classifying
//! first lets each connection live in its own small set (see `lib.rs`). Nothing here
//! trusts the frame: every length is checked, and anything not understood is
//! [`Class::Other`], which goes to smoltcp's interface-level handling (ARP, ping) and is
//! dropped there if it is garbage. Checksums are smoltcp's to verify.

use alloc::vec::Vec;
use skiff_errno::Errno;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet,
    TcpPacket, UdpPacket,
};

/// What a frame carries, as far as choosing its socket goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Tcp {
        /// The sender (the remote end).
        src: IpEndpoint,
        /// The receiver (our end).
        dst: IpEndpoint,
        syn: bool,
        ack: bool,
        rst: bool,
    },
    Udp {
        src: IpEndpoint,
        dst: IpEndpoint,
    },
    /// An ICMP error about a packet we sent, with the errno Linux derives from it and
    /// whether Linux treats it as fatal ("hard") for a connected socket.
    IcmpError {
        errno: Errno,
        hard: bool,
        protocol: IpProtocol,
        /// Our end of the offending packet.
        local: IpEndpoint,
        /// Its destination.
        remote: IpEndpoint,
    },
    /// An ARP packet: it may teach the card's link a neighbour that sockets wait for.
    Arp,
    /// Pings, fragments, other protocols and anything malformed.
    Other,
}

const ICMP_DEST_UNREACHABLE: u8 = 3;

/// Classify an Ethernet frame (`ethernet`) or a bare IPv4 packet (loopback).
pub(crate) fn classify(frame: &[u8], ethernet: bool) -> Class {
    let packet = if ethernet {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Class::Other;
        };
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => {}
            EthernetProtocol::Arp => return Class::Arp,
            _ => return Class::Other,
        }
        &frame[EthernetFrame::<&[u8]>::header_len()..]
    } else {
        frame
    };
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return Class::Other;
    };
    if ip.version() != 4 || ip.more_frags() || ip.frag_offset() != 0 {
        // No reassembly (see `lib.rs`): smoltcp drops fragments.
        return Class::Other;
    }
    let src = IpAddress::Ipv4(ip.src_addr());
    let dst = IpAddress::Ipv4(ip.dst_addr());
    let payload = ip.payload();
    match ip.next_header() {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(payload) else {
                return Class::Other;
            };
            Class::Tcp {
                src: IpEndpoint::new(src, tcp.src_port()),
                dst: IpEndpoint::new(dst, tcp.dst_port()),
                syn: tcp.syn(),
                ack: tcp.ack(),
                rst: tcp.rst(),
            }
        }
        IpProtocol::Udp => {
            let Ok(udp) = UdpPacket::new_checked(payload) else {
                return Class::Other;
            };
            Class::Udp {
                src: IpEndpoint::new(src, udp.src_port()),
                dst: IpEndpoint::new(dst, udp.dst_port()),
            }
        }
        IpProtocol::Icmp => classify_icmp(payload),
        _ => Class::Other,
    }
}

/// An ICMP destination-unreachable message: type, code, checksum, 4 unused bytes, then
/// the offending packet's IP header and at least 8 bytes of its payload.
fn classify_icmp(icmp: &[u8]) -> Class {
    if icmp.len() < 8 || icmp[0] != ICMP_DEST_UNREACHABLE {
        return Class::Other;
    }
    // Linux's `icmp_err_convert` table: the errno and whether it is fatal.
    let (errno, hard) = match icmp[1] {
        0 => (Errno::ENETUNREACH, false),
        1 => (Errno::EHOSTUNREACH, false),
        2 => (Errno::ENOPROTOOPT, true),
        3 => (Errno::ECONNREFUSED, true),
        // Fragmentation needed: a path-MTU signal, not an error for the socket.
        4 => return Class::Other,
        5 => (Errno::EOPNOTSUPP, false),
        6 => (Errno::ENETUNREACH, true),
        7 => (Errno::EHOSTDOWN, true),
        // Linux says ENONET ("machine is not on the network"), which Skiff's errno set
        // does not have; EHOSTUNREACH is the nearest meaning.
        8 => (Errno::EHOSTUNREACH, true),
        9 => (Errno::ENETUNREACH, true),
        10 => (Errno::EHOSTUNREACH, true),
        11 => (Errno::ENETUNREACH, false),
        12 => (Errno::EHOSTUNREACH, false),
        _ => (Errno::EHOSTUNREACH, false),
    };
    let inner = &icmp[8..];
    if inner.len() < 20 || inner[0] >> 4 != 4 {
        return Class::Other;
    }
    let header_len = usize::from(inner[0] & 0x0f) * 4;
    if header_len < 20 || inner.len() < header_len + 4 {
        return Class::Other;
    }
    let protocol = IpProtocol::from(inner[9]);
    if !matches!(protocol, IpProtocol::Tcp | IpProtocol::Udp) {
        return Class::Other;
    }
    let addr = |at: usize| {
        IpAddress::Ipv4(Ipv4Address::new(
            inner[at],
            inner[at + 1],
            inner[at + 2],
            inner[at + 3],
        ))
    };
    let port = |at: usize| u16::from_be_bytes([inner[at], inner[at + 1]]);
    Class::IcmpError {
        errno,
        hard,
        protocol,
        local: IpEndpoint::new(addr(12), port(header_len)),
        remote: IpEndpoint::new(addr(16), port(header_len + 2)),
    }
}

/// A TCP segment that carries data and a FIN, as two: the data alone, then the FIN
/// alone at the sequence number after the data. `None` for any other frame.
///
/// smoltcp trims a segment to its receive window and then accepts a FIN at the end of
/// it even when it dropped data in front of that FIN; it then acknowledges the FIN
/// where its data ends and reports end of file with those bytes missing. A sender
/// that sent into a window the receiver has since shrunk (smoltcp's window scaling
/// rounds the advertised window down, so its right edge can move back by a few bytes)
/// sets this off. Handed over in two parts, the FIN lies beyond the trimmed data and
/// smoltcp ignores it until the sender retransmits it after the missing bytes, as
/// Linux's receiver would. Frames from the card must carry valid checksums (else
/// `None`: smoltcp drops them as usual); the parts get fresh ones.
pub(crate) fn split_fin(frame: &[u8], ethernet: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let offset = if ethernet {
        EthernetFrame::<&[u8]>::header_len()
    } else {
        0
    };
    let ip = Ipv4Packet::new_checked(frame.get(offset..)?).ok()?;
    if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    if ethernet && !ip.verify_checksum() {
        return None;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let ip_header = usize::from(ip.header_len());
    let ip_total = usize::from(ip.total_len());
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    if !tcp.fin() || tcp.syn() || tcp.rst() || tcp.payload().is_empty() {
        return None;
    }
    if ethernet && !tcp.verify_checksum(&src, &dst) {
        return None;
    }
    let tcp_header = usize::from(tcp.header_len());
    let data_len = tcp.payload().len();
    let fin_seq = tcp.seq_number() + data_len;
    // Without Ethernet padding: the frame up to the IP packet's end.
    let end = offset + ip_total;

    let mut data = frame[..end].to_vec();
    {
        let mut t = TcpPacket::new_unchecked(&mut data[offset + ip_header..]);
        t.set_fin(false);
        t.fill_checksum(&src, &dst);
    }

    let fin_len = ip_header + tcp_header;
    let mut fin = frame[..offset + fin_len].to_vec();
    {
        let mut i = Ipv4Packet::new_unchecked(&mut fin[offset..]);
        i.set_total_len(fin_len as u16);
        i.fill_checksum();
    }
    {
        let mut t = TcpPacket::new_unchecked(&mut fin[offset + ip_header..]);
        t.set_seq_number(fin_seq);
        t.set_psh(false);
        t.fill_checksum(&src, &dst);
    }
    Some((data, fin))
}

/// TCP's window-scale option kind.
const TCP_OPTION_WINDOW_SCALE: u8 = 3;
const TCP_OPTION_END: u8 = 0;
const TCP_OPTION_NOP: u8 = 1;

/// Turn the window-scale option of a loopback SYN (a bare IPv4 packet) into no-ops, so
/// that neither end of the connection scales its window. Anything else is left alone.
///
/// smoltcp rounds a scaled window down to its scale, so as odd-sized data arrives the
/// window's right edge moves back by a byte or more; a smoltcp sender that already sent
/// up to the old edge (with 64 KiB buffers loopback's 65495-byte segments leave a short
/// second segment behind each full one) has that data's tail cut off. If the window
/// then closes, smoltcp's sender replaces its retransmission timer with the zero-window
/// probe timer and is left with no timer at all when the window reopens, so the bytes
/// cut off are never sent again: the connection hangs. An unscaled window is
/// advertised exactly (at most 65535 bytes, which costs loopback nothing) and its edge
/// never moves back.
pub(crate) fn strip_window_scale(packet: &mut [u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(&*packet) else {
        return;
    };
    if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
        return;
    }
    let (ip_header, ip_total) = (usize::from(ip.header_len()), usize::from(ip.total_len()));
    let Ok(tcp) = TcpPacket::new_checked(&packet[ip_header..ip_total]) else {
        return;
    };
    if !tcp.syn() {
        return;
    }
    let tcp_header = usize::from(tcp.header_len());
    let options = &mut packet[ip_header + 20..ip_header + tcp_header];
    let mut at = 0;
    while at < options.len() {
        match options[at] {
            TCP_OPTION_END => break,
            TCP_OPTION_NOP => at += 1,
            kind => {
                let Some(&len) = options.get(at + 1) else {
                    break;
                };
                let len = usize::from(len);
                if len < 2 || at + len > options.len() {
                    break;
                }
                if kind == TCP_OPTION_WINDOW_SCALE {
                    options[at..at + len].fill(TCP_OPTION_NOP);
                }
                at += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::TcpRepr;

    /// An IPv4 header (no options) for `protocol` with `payload_len` bytes after it.
    fn ipv4(protocol: u8, src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    fn tcp_segment(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    #[test]
    fn tcp_over_loopback_and_ethernet() {
        let mut p = ipv4(6, [10, 0, 0, 2], [10, 0, 0, 1], 20);
        p.extend(tcp_segment(40000, 80, 0x02));
        let want = Class::Tcp {
            src: IpEndpoint::new(IpAddress::v4(10, 0, 0, 2), 40000),
            dst: IpEndpoint::new(IpAddress::v4(10, 0, 0, 1), 80),
            syn: true,
            ack: false,
            rst: false,
        };
        assert_eq!(classify(&p, false), want);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&p);
        assert_eq!(classify(&f, true), want);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&f, true), Class::Arp);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(classify(&f, true), Class::Other);
    }

    #[test]
    fn icmp_port_unreachable_names_the_udp_flow() {
        let mut inner = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 1], 8);
        inner.extend_from_slice(&[0x9c, 0x40, 0, 9, 0, 8, 0, 0]);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(inner);
        let mut p = ipv4(1, [127, 0, 0, 1], [127, 0, 0, 1], icmp.len());
        p.extend(icmp);
        assert_eq!(
            classify(&p, false),
            Class::IcmpError {
                errno: Errno::ECONNREFUSED,
                hard: true,
                protocol: IpProtocol::Udp,
                local: IpEndpoint::new(IpAddress::v4(127, 0, 0, 1), 40000),
                remote: IpEndpoint::new(IpAddress::v4(127, 0, 0, 1), 9),
            }
        );
    }

    /// A TCP segment from 10.0.0.2:40000 to 10.0.0.1:80 with `flags`, sequence
    /// number 1000 and `data`, with valid checksums, in an Ethernet frame or not.
    fn data_segment(flags: u8, data: &[u8], ethernet: bool) -> Vec<u8> {
        let mut t = tcp_segment(40000, 80, flags);
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t.extend_from_slice(data);
        let mut p = ipv4(6, [10, 0, 0, 2], [10, 0, 0, 1], t.len());
        p.extend(t);
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        let (src, dst) = (IpAddress::v4(10, 0, 0, 2), IpAddress::v4(10, 0, 0, 1));
        TcpPacket::new_unchecked(&mut p[20..]).fill_checksum(&src, &dst);
        if !ethernet {
            return p;
        }
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend(p);
        // Ethernet padding after the packet must not become data.
        f.extend_from_slice(&[0xee; 6]);
        f
    }

    #[test]
    fn data_with_fin_splits_into_data_then_fin() {
        let (src, dst) = (IpAddress::v4(10, 0, 0, 2), IpAddress::v4(10, 0, 0, 1));
        for ethernet in [false, true] {
            let at = if ethernet { 14 } else { 0 };
            let frame = data_segment(0x19, b"hello", ethernet); // FIN|PSH|ACK
            let (data, fin) = split_fin(&frame, ethernet).expect("split");
            let ip = Ipv4Packet::new_checked(&data[at..]).unwrap();
            assert!(ip.verify_checksum());
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(&src, &dst));
            assert!(!t.fin() && t.psh() && t.ack());
            assert_eq!(t.payload(), b"hello");
            assert_eq!(t.seq_number().0, 1000);

            let ip = Ipv4Packet::new_checked(&fin[at..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(usize::from(ip.total_len()), 40);
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(&src, &dst));
            assert!(t.fin() && t.ack() && !t.psh());
            assert!(t.payload().is_empty());
            assert_eq!(t.seq_number().0, 1005);
        }
        // Nothing to split: no FIN, no data, a SYN, or a corrupted frame from the card.
        assert_eq!(split_fin(&data_segment(0x18, b"x", true), true), None);
        assert_eq!(split_fin(&data_segment(0x11, b"", true), true), None);
        assert_eq!(split_fin(&data_segment(0x03, b"x", true), true), None);
        let mut bad = data_segment(0x19, b"hello", true);
        bad[14 + 40] ^= 1;
        assert_eq!(split_fin(&bad, true), None);
        // Loopback carries no checksums to check.
        let mut lo = data_segment(0x19, b"hello", false);
        lo[40] ^= 1;
        assert!(split_fin(&lo, false).is_some());
        // Every truncation short of the whole packet (the last 6 bytes are padding).
        let whole = data_segment(0x19, b"hello", true);
        for n in 0..whole.len() - 6 {
            assert_eq!(split_fin(&whole[..n], true), None, "truncated to {n}");
        }
    }

    #[test]
    fn loopback_syns_lose_their_window_scale_only() {
        // MSS 65495, NOP, window scale 1, SACK permitted.
        let options = [2, 4, 0xff, 0xd7, 1, 3, 3, 1, 4, 2, 0, 0];
        let segment = |flags: u8| {
            let mut t = tcp_segment(40000, 80, flags);
            t[12] = ((20 + options.len() as u8) / 4) << 4;
            t.extend_from_slice(&options);
            let mut p = ipv4(6, [127, 0, 0, 1], [127, 0, 0, 1], t.len());
            p.extend(t);
            p
        };
        let mut syn = segment(0x02);
        strip_window_scale(&mut syn);
        assert_eq!(&syn[40..], &[2, 4, 0xff, 0xd7, 1, 1, 1, 1, 4, 2, 0, 0]);
        let t = TcpPacket::new_checked(&syn[20..]).unwrap();
        assert_eq!(
            TcpRepr::parse(
                &t,
                &IpAddress::v4(127, 0, 0, 1),
                &IpAddress::v4(127, 0, 0, 1),
                &smoltcp::phy::ChecksumCapabilities::ignored()
            )
            .unwrap()
            .window_scale,
            None
        );
        // Not a SYN: untouched.
        let mut ack = segment(0x10);
        let before = ack.clone();
        strip_window_scale(&mut ack);
        assert_eq!(ack, before);
        // Malformed options and truncated packets never panic.
        let mut bad = segment(0x02);
        bad[41] = 40;
        strip_window_scale(&mut bad);
        let whole = segment(0x02);
        for n in 0..whole.len() {
            let mut p = whole[..n].to_vec();
            strip_window_scale(&mut p);
        }
    }

    #[test]
    fn garbage_never_panics_and_is_other() {
        // Every truncation of valid packets, and some random-looking bytes.
        let mut p = ipv4(6, [10, 0, 0, 2], [10, 0, 0, 1], 20);
        p.extend(tcp_segment(1, 2, 0x12));
        for n in 0..p.len() {
            let c = classify(&p[..n], false);
            assert_eq!(c, Class::Other, "truncated to {n}");
            assert!(matches!(classify(&p[..n], true), Class::Other | Class::Arp));
        }
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0, 0x4f];
        icmp.resize(30, 0xff);
        let mut q = ipv4(1, [1, 1, 1, 1], [2, 2, 2, 2], icmp.len());
        q.extend(icmp);
        assert_eq!(classify(&q, false), Class::Other);
        let mut seed = 0x1234_5678u32;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = classify(&bytes, true);
            let _ = classify(&bytes, false);
        }
        // A fragment is not classified.
        let mut frag = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], 8);
        frag[6] = 0x20;
        frag.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        assert_eq!(classify(&frag, false), Class::Other);
    }
}
