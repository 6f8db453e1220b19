//! DHCP against a tiny fake server on the other end of the wire.

use super::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

const SERVER_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 0x0a, 0, 2, 2]);
const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const OFFER: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);

thread_local! {
    static LOG: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn log_line(line: &str) {
    LOG.with(|l| l.borrow_mut().push(line.to_string()));
}

/// The server's answer to a client's DHCP message (an OFFER for a DISCOVER, an ACK
/// for a REQUEST), as an Ethernet frame.
fn answer(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let request = DhcpRepr::parse(&dhcp).ok()?;
    let message_type = match request.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => DhcpMessageType::Ack,
        _ => return None,
    };
    let reply = DhcpRepr {
        message_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: OFFER,
        server_ip: SERVER,
        router: Some(SERVER),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(SERVER),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(3600),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let caps = ChecksumCapabilities::default();
    let udp_repr = UdpRepr {
        src_port: 67,
        dst_port: 68,
    };
    let dhcp_len = reply.buffer_len();
    let ip_repr = Ipv4Repr {
        src_addr: SERVER,
        dst_addr: Ipv4Address::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: udp_repr.header_len() + dhcp_len,
        hop_limit: 64,
    };
    let eth_repr = EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut out = vec![0u8; eth_repr.buffer_len() + ip_repr.buffer_len() + ip_repr.payload_len];
    let mut eth_out = EthernetFrame::new_unchecked(&mut out[..]);
    eth_repr.emit(&mut eth_out);
    let mut ip_out = Ipv4Packet::new_unchecked(eth_out.payload_mut());
    ip_repr.emit(&mut ip_out, &caps);
    let mut udp_out = UdpPacket::new_unchecked(ip_out.payload_mut());
    udp_repr.emit(
        &mut udp_out,
        &IpAddress::Ipv4(SERVER),
        &IpAddress::Ipv4(Ipv4Address::BROADCAST),
        dhcp_len,
        |buf| {
            let mut p = DhcpPacket::new_unchecked(buf);
            reply.emit(&mut p).unwrap();
        },
        &caps,
    );
    Some(out)
}

#[test]
fn dhcp_lease_configures_the_card_and_is_logged() {
    let (nic, server_end) = FakeNic::pair();
    let config = NetConfig::from_cmdline("skiff.dhcp=1").unwrap();
    let stack = Stack::new(Some(nic.clone()), config, now, 3, kick);
    stack.set_logger(log_line);
    // No address before the lease: the card cannot reach anything.
    assert_eq!(stack.address(), None);
    let c = tcp(&stack);
    assert_eq!(
        sock(&c).connect(&addr([10, 0, 2, 2], 80)),
        Err(Errno::ENETUNREACH)
    );
    // Loopback works meanwhile.
    let _l = listener(&stack, addr(ANY, 80), 1);
    let lc = tcp(&stack);
    assert_eq!(connect_now(&lc, addr(LO, 80)), Ok(()));

    let mut served = 0;
    for _ in 0..200 {
        let deadline = stack.poll();
        let mut frame = Vec::new();
        while server_end.receive(&mut |f| frame = f.to_vec()) {
            if let Some(reply) = answer(&frame) {
                served += 1;
                nic.inject(reply);
            }
        }
        if stack.address().is_some() {
            break;
        }
        if let Some(d) = deadline {
            set_now(d.max(now() + 1_000_000));
        } else {
            advance_ms(100);
        }
    }
    assert_eq!(served, 2, "one OFFER and one ACK");
    assert_eq!(
        stack.address(),
        Some(IpCidr::Ipv4(Ipv4Cidr::new(OFFER, 24)))
    );
    stack.poll();
    let log = LOG.with(|l| l.borrow().clone());
    assert!(
        log.iter()
            .any(|l| l == "net: DHCP lease 10.0.2.15/24, gateway 10.0.2.2"),
        "{log:?}"
    );
    // Now the card routes: through the leased gateway even off the subnet.
    let c = tcp(&stack);
    assert_eq!(
        sock(&c).connect(&addr([93, 184, 216, 34], 80)),
        Err(Errno::EINPROGRESS)
    );
    // And the leased address is the guest's own: it stays on loopback.
    let c = tcp(&stack);
    assert_eq!(connect_now(&c, addr([10, 0, 2, 15], 80)), Ok(()));
}
