//! Tunnels worth opening on a capture taken in a mobile core or a cloud
//! fabric: GTP-U (3GPP TS 29.281) on UDP port 2152.

use super::Skip;

const GTPU_PORT: u16 = 2152;

/// Returns the inner IP packet of a UDP datagram that carries one, or
/// `None` for ordinary UDP.
pub fn udp_inner_ip(udp: &[u8]) -> Result<Option<&[u8]>, Skip> {
    if udp.len() < 8 {
        return Err(Skip::TunnelMalformed);
    }
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    if sport != GTPU_PORT && dport != GTPU_PORT {
        return Ok(None);
    }
    gtpu_payload(&udp[8..]).map(Some)
}

fn gtpu_payload(g: &[u8]) -> Result<&[u8], Skip> {
    if g.len() < 8 {
        return Err(Skip::TunnelMalformed);
    }
    let flags = g[0];
    if flags >> 5 != 1 || flags & 0x10 == 0 {
        return Err(Skip::TunnelMalformed); // not GTPv1 / not GTP (PT=0 is GTP')
    }
    if g[1] != 0xff {
        return Err(Skip::NotTcp); // signalling, not a G-PDU
    }
    let mut at = 8;
    if flags & 0x07 != 0 {
        if g.len() < 12 {
            return Err(Skip::TunnelMalformed);
        }
        let mut next = g[11];
        at = 12;
        // Extension headers: length in 4-byte units, next type in the last byte.
        let mut guard = 0;
        while flags & 0x04 != 0 && next != 0 {
            guard += 1;
            let len = *g.get(at).ok_or(Skip::TunnelMalformed)? as usize * 4;
            if len == 0 || guard > 16 || at + len > g.len() {
                return Err(Skip::TunnelMalformed);
            }
            next = g[at + len - 1];
            at += len;
        }
    }
    let inner = &g[at..];
    match inner.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(inner),
        _ => Err(Skip::TunnelMalformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_udp_is_not_a_tunnel() {
        let udp = [0, 53, 0, 53, 0, 8, 0, 0];
        assert_eq!(udp_inner_ip(&udp), Ok(None));
    }

    #[test]
    fn gtpu_with_extension_header() {
        let mut p = vec![0x08, 0x68, 0x08, 0x68, 0, 0, 0, 0];
        p.extend_from_slice(&[0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85]);
        p.extend_from_slice(&[1, 0, 0, 0]); // one 4-byte extension, next = 0
        p.push(0x45);
        assert_eq!(udp_inner_ip(&p).unwrap().unwrap(), &[0x45]);
        // Cut extension header
        assert!(udp_inner_ip(&p[..20]).is_err());
    }
}
