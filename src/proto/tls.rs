//! Just enough TLS to know a hop is encrypted and which name it was for:
//! the ClientHello and its server_name extension (RFC 8446 4.1.2, RFC 6066 3).

/// A TLS handshake record carrying a ClientHello.
pub fn is_client_hello(d: &[u8]) -> bool {
    d.len() >= 6 && d[0] == 0x16 && d[1] == 0x03 && d[2] <= 0x04 && d[5] == 0x01
}

/// The SNI host name, if the ClientHello (in this first segment) has one.
pub fn sni(d: &[u8]) -> Option<String> {
    let mut r = Reader { d, at: 5 };
    if r.u8()? != 1 {
        return None;
    }
    r.skip(3)?; // handshake length
    r.skip(2 + 32)?; // version, random
    let sid = r.u8()? as usize;
    r.skip(sid)?;
    let cs = r.u16()? as usize;
    r.skip(cs)?;
    let comp = r.u8()? as usize;
    r.skip(comp)?;
    let ext_len = r.u16()? as usize;
    let end = r.at.checked_add(ext_len)?.min(d.len());
    while r.at + 4 <= end {
        let ty = r.u16()?;
        let len = r.u16()? as usize;
        if ty == 0 {
            r.skip(2)?; // list length
            if r.u8()? != 0 {
                return None;
            }
            let n = r.u16()? as usize;
            let name = r.take(n)?;
            return std::str::from_utf8(name).ok().map(str::to_string);
        }
        r.skip(len)?;
    }
    None
}

struct Reader<'a> {
    d: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.d.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
}

/// Encodes a minimal TLS 1.3 ClientHello record naming `name` (SNI), for
/// tests and the fuzzer's seeds.
pub fn encode_client_hello(name: &str) -> Vec<u8> {
    let mut ext = vec![0, 0];
    let sn_len = name.len() + 3;
    ext.extend_from_slice(&((sn_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(sn_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name.as_bytes());
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sni() {
        let h = encode_client_hello("ws.example.com");
        assert!(is_client_hello(&h));
        assert_eq!(sni(&h).as_deref(), Some("ws.example.com"));
        for n in 0..h.len() {
            let _ = sni(&h[..n]);
        }
        assert!(!is_client_hello(b"GET / HTTP/1.1"));
    }
}
