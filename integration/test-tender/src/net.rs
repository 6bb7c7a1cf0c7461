//! A minimal network guest, like Solo5's `test_net`: it answers ARP
//! requests for its address and ICMP echo requests sent to its address, to
//! the subnet broadcast or to 255.255.255.255, on raw Ethernet frames read
//! from and written to the tap. Everything is parsed by hand.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ARP_LEN: usize = 28;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const IPV4_HEADER: usize = 20;
const IP_PROTO_ICMP: u8 = 1;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_HEADER: usize = 8;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// An interface address with its prefix length, as `--ipv4=A.B.C.D/NN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The guest's address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix: u8,
}

/// A malformed `A.B.C.D/NN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    text: String,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not an IPv4 address with a prefix length (A.B.C.D/NN, NN at most 32)",
            self.text
        )
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Ipv4Cidr, CidrError> {
        let error = || CidrError {
            text: s.to_string(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(error)?;
        let addr = addr.parse().map_err(|_| error())?;
        let prefix = prefix
            .parse()
            .ok()
            .filter(|&p: &u8| p <= 32)
            .ok_or_else(error)?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Ipv4Cidr {
    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        let host_bits = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(self.addr) | host_bits)
    }

    /// Whether the guest accepts an IPv4 packet sent to `dst`.
    fn accepts(&self, dst: Ipv4Addr) -> bool {
        dst == self.addr || dst == self.broadcast() || dst == Ipv4Addr::BROADCAST
    }
}

/// The reply to one received frame (an ARP reply or an ICMP echo reply),
/// if the guest answers it.
pub fn respond(frame: &[u8], mac: [u8; 6], cidr: Ipv4Cidr) -> Option<Vec<u8>> {
    if frame.len() < ETH_HEADER {
        return None;
    }
    let dst_mac: [u8; 6] = frame[0..6].try_into().ok()?;
    if dst_mac != mac && dst_mac != BROADCAST_MAC {
        return None;
    }
    let payload = &frame[ETH_HEADER..];
    match be16(frame, 12)? {
        ETHERTYPE_ARP => arp_reply(payload, mac, cidr),
        ETHERTYPE_IPV4 => echo_reply(frame, payload, mac, cidr),
        _ => None,
    }
}

/// The gratuitous ARP a guest sends when its interface comes up.
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    arp_frame(BROADCAST_MAC, mac, ARP_REQUEST, mac, addr, [0; 6], addr)
}

fn arp_reply(arp: &[u8], mac: [u8; 6], cidr: Ipv4Cidr) -> Option<Vec<u8>> {
    // Ethernet/IPv4 ARP only: htype 1, ptype IPv4, hlen 6, plen 4.
    if arp.len() < ARP_LEN
        || be16(arp, 0)? != 1
        || be16(arp, 2)? != ETHERTYPE_IPV4
        || arp[4] != 6
        || arp[5] != 4
    {
        return None;
    }
    if be16(arp, 6)? != ARP_REQUEST || ipv4_at(arp, 24)? != cidr.addr {
        return None;
    }
    let sender_mac: [u8; 6] = arp[8..14].try_into().ok()?;
    let sender_ip = ipv4_at(arp, 14)?;
    Some(arp_frame(
        sender_mac, mac, ARP_REPLY, mac, cidr.addr, sender_mac, sender_ip,
    ))
}

fn arp_frame(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    operation: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER + ARP_LEN);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes());
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&operation.to_be_bytes());
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target_ip.octets());
    f
}

fn echo_reply(frame: &[u8], ip: &[u8], mac: [u8; 6], cidr: Ipv4Cidr) -> Option<Vec<u8>> {
    if ip.len() < IPV4_HEADER || ip[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(be16(ip, 2)?);
    if header_len < IPV4_HEADER || total_len < header_len + ICMP_HEADER || total_len > ip.len() {
        return None;
    }
    // No fragments (MF set or a fragment offset), not ICMP, bad checksum: drop.
    if be16(ip, 6)? & 0x3fff != 0 || ip[9] != IP_PROTO_ICMP || checksum(&ip[..header_len]) != 0 {
        return None;
    }
    let src = ipv4_at(ip, 12)?;
    if !cidr.accepts(ipv4_at(ip, 16)?) {
        return None;
    }
    let icmp = &ip[header_len..total_len];
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || checksum(icmp) != 0 {
        return None;
    }

    let mut reply_icmp = icmp.to_vec();
    reply_icmp[0] = ICMP_ECHO_REPLY;
    reply_icmp[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&reply_icmp);
    reply_icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut header = [0u8; IPV4_HEADER];
    header[0] = 0x45;
    header[1] = ip[1];
    let reply_len = u16::try_from(IPV4_HEADER + reply_icmp.len()).ok()?;
    header[2..4].copy_from_slice(&reply_len.to_be_bytes());
    header[4..6].copy_from_slice(&ip[4..6]);
    header[8] = 64;
    header[9] = IP_PROTO_ICMP;
    header[12..16].copy_from_slice(&cidr.addr.octets());
    header[16..20].copy_from_slice(&src.octets());
    let sum = checksum(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(ETH_HEADER + IPV4_HEADER + reply_icmp.len());
    f.extend_from_slice(&frame[6..12]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(&header);
    f.extend_from_slice(&reply_icmp);
    Some(f)
}

/// The Internet checksum (RFC 1071). Over data that carries its own correct
/// checksum it is 0.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above folded the sum into 16 bits.
    !(sum as u16)
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn ipv4_at(data: &[u8], at: usize) -> Option<Ipv4Addr> {
    let octets: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

/// A MAC as the guest prints it: 12 lowercase hex digits, no separators.
pub fn mac_hex(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const HOST: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

    fn cidr() -> Ipv4Cidr {
        "10.0.0.2/24".parse().unwrap()
    }

    fn echo_request(dst_ip: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut icmp = vec![ICMP_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1];
        icmp.extend_from_slice(payload);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0xab, 0xcd, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1];
        ip.extend_from_slice(&dst_ip);
        let len = (ip.len() + icmp.len()) as u16;
        ip[2..4].copy_from_slice(&len.to_be_bytes());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut f = GUEST.to_vec();
        f.extend_from_slice(&HOST);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(cidr().to_string(), "10.0.0.2/24");
        assert_eq!(cidr().broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert_eq!(
            "10.0.0.2/0".parse::<Ipv4Cidr>().unwrap().broadcast(),
            Ipv4Addr::BROADCAST
        );
        assert_eq!(
            "10.0.0.2/32".parse::<Ipv4Cidr>().unwrap().broadcast(),
            Ipv4Addr::new(10, 0, 0, 2)
        );
        for bad in ["10.0.0.2", "10.0.0/24", "10.0.0.2/33", "x/24", "10.0.0.2/"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn checksum_of_known_header() {
        // RFC 1071 style example: a header with its checksum sums to zero.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0);
        assert_eq!(checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn answers_arp_for_its_address_only() {
        let mut request = arp_frame(
            BROADCAST_MAC,
            HOST,
            ARP_REQUEST,
            HOST,
            Ipv4Addr::new(10, 0, 0, 1),
            [0; 6],
            Ipv4Addr::new(10, 0, 0, 2),
        );
        let reply = respond(&request, GUEST, cidr()).unwrap();
        assert_eq!(be16(&reply, 12), Some(ETHERTYPE_ARP));
        assert_eq!(&reply[0..6], &HOST);
        assert_eq!(&reply[6..12], &GUEST);
        assert_eq!(be16(&reply, 20), Some(ARP_REPLY));
        assert_eq!(&reply[22..28], &GUEST);
        assert_eq!(&reply[28..32], &[10, 0, 0, 2]);
        assert_eq!(&reply[32..38], &HOST);
        assert_eq!(&reply[38..42], &[10, 0, 0, 1]);
        request[41] = 3;
        assert_eq!(respond(&request, GUEST, cidr()), None);
    }

    #[test]
    fn answers_echo_requests() {
        for dst in [[10, 0, 0, 2], [10, 0, 0, 255], [255, 255, 255, 255]] {
            let reply = respond(&echo_request(dst, b"abcdefg"), GUEST, cidr()).unwrap();
            assert_eq!(be16(&reply, 12), Some(ETHERTYPE_IPV4));
            assert_eq!(&reply[0..6], &HOST);
            let ip = &reply[ETH_HEADER..];
            assert_eq!(checksum(&ip[..20]), 0);
            assert_eq!(&ip[12..16], &[10, 0, 0, 2]);
            assert_eq!(&ip[16..20], &[10, 0, 0, 1]);
            let icmp = &ip[20..];
            assert_eq!(icmp[0], ICMP_ECHO_REPLY);
            assert_eq!(checksum(icmp), 0);
            assert_eq!(
                &icmp[4..],
                &[0x12, 0x34, 0, 1, b'a', b'b', b'c', b'd', b'e', b'f', b'g']
            );
        }
        assert_eq!(
            respond(&echo_request([10, 0, 0, 3], b""), GUEST, cidr()),
            None
        );
        let mut corrupt = echo_request([10, 0, 0, 2], b"x");
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(respond(&corrupt, GUEST, cidr()), None);
        let mut other_mac = echo_request([10, 0, 0, 2], b"x");
        other_mac[5] = 9;
        assert_eq!(respond(&other_mac, GUEST, cidr()), None);
    }

    #[test]
    fn truncated_frames_are_ignored() {
        let frame = echo_request([10, 0, 0, 2], b"abcdefgh");
        for len in 0..frame.len() {
            assert_eq!(respond(&frame[..len], GUEST, cidr()), None, "{len}");
        }
    }

    #[test]
    fn gratuitous_arp_announces_the_address() {
        let f = gratuitous_arp(GUEST, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &BROADCAST_MAC);
        assert_eq!(&f[28..32], &f[38..42]);
        assert_eq!(mac_hex(GUEST), "020000000002");
    }
}
