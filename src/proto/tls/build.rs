//! Handshake records for tests, the fuzzer's seeds and the benchmark's
//! generated TLS capture (the only encryption wstap does is there, through
//! the same crates).

fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut hs = vec![ty, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(body);
    hs
}

pub fn record(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut rec = vec![ty, 3, if ty == 22 { 1 } else { 3 }];
    rec.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    rec.extend_from_slice(payload);
    rec
}

fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut e = ty.to_be_bytes().to_vec();
    e.extend_from_slice(&(data.len() as u16).to_be_bytes());
    e.extend_from_slice(data);
    e
}

fn alpn(protos: &[&str]) -> Vec<u8> {
    let mut l = Vec::new();
    for p in protos {
        l.push(p.len() as u8);
        l.extend_from_slice(p.as_bytes());
    }
    let mut d = (l.len() as u16).to_be_bytes().to_vec();
    d.extend(l);
    ext(16, &d)
}

/// A ClientHello record (TLS 1.3 and 1.2 suites offered).
pub fn client_hello(random: &[u8; 32], sni: &str, alpn_offer: &[&str]) -> Vec<u8> {
    let mut exts = Vec::new();
    if !sni.is_empty() {
        let mut sn = ((sni.len() + 3) as u16).to_be_bytes().to_vec();
        sn.push(0);
        sn.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        sn.extend_from_slice(sni.as_bytes());
        exts.extend(ext(0, &sn));
    }
    if !alpn_offer.is_empty() {
        exts.extend(alpn(alpn_offer));
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(random);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    record(22, &handshake(1, &body))
}

/// A ServerHello record for `version` (0x0303 or 0x0304) and `suite`.
pub fn server_hello(random: &[u8; 32], version: u16, suite: u16, alpn_chosen: Option<&str>) -> Vec<u8> {
    let mut exts = Vec::new();
    if version == 0x0304 {
        exts.extend(ext(43, &[3, 4]));
    } else if let Some(a) = alpn_chosen {
        exts.extend(alpn(&[a]));
    }
    let mut body = if version == 0x0304 { vec![3, 3] } else { version.to_be_bytes().to_vec() };
    body.extend_from_slice(random);
    body.push(0);
    body.extend_from_slice(&suite.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    record(22, &handshake(2, &body))
}

/// TLS 1.3 EncryptedExtensions with an ALPN choice (to be sealed).
pub fn encrypted_extensions(alpn_chosen: Option<&str>) -> Vec<u8> {
    let e = alpn_chosen.map(|a| alpn(&[a])).unwrap_or_default();
    let mut body = (e.len() as u16).to_be_bytes().to_vec();
    body.extend(e);
    handshake(8, &body)
}

/// A handshake message of type `ty` (Finished: 20, KeyUpdate: 24).
pub fn message(ty: u8, body: &[u8]) -> Vec<u8> {
    handshake(ty, body)
}
