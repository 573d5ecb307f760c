//! WebSocket keys of their own for each copy of a template capture, as
//! real clients never repeat a key (the hop pairing must be neither helped
//! nor fooled by copies sharing one): shared by the benchmark's generator
//! (examples/benchgen.rs) and the many-connection tests (tests/common).
#![allow(dead_code)]

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The Sec-WebSocket-Accept that answers `key` (RFC 6455 4.2.2).
pub fn accept(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Copy `k`'s key in place of `orig`: of the same length, derived from both.
pub fn copy_key(orig: &str, k: i64) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(orig.as_bytes());
    h.update(k.to_le_bytes());
    let d = h.finalize();
    base64::engine::general_purpose::STANDARD.encode(&d[..16])
}

/// Offsets of a header's value (case-insensitive name, `len` bytes) in
/// `d`, with the value.
pub fn find_values(d: &[u8], name: &[u8], len: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + name.len() + len <= d.len() {
        if d[i..i + name.len()].eq_ignore_ascii_case(name) {
            let mut v = i + name.len();
            while v < d.len() && d[v] == b' ' {
                v += 1;
            }
            if v + len <= d.len() {
                out.push((v, String::from_utf8_lossy(&d[v..v + len]).into_owned()));
            }
            i = v;
        } else {
            i += 1;
        }
    }
    out
}

/// The Sec-WebSocket-Key values (24 characters) in `d`.
pub fn keys(d: &[u8]) -> Vec<(usize, String)> {
    find_values(d, b"sec-websocket-key:", 24)
}

/// The Sec-WebSocket-Accept values (28 characters) in `d`.
pub fn accepts(d: &[u8]) -> Vec<(usize, String)> {
    find_values(d, b"sec-websocket-accept:", 28)
}

/// Which key each accept answers, for the keys given (a template's):
/// a copy's accept is then the accept of its copy of that key.
pub fn key_of_accept<K: AsRef<str>>(keys: impl IntoIterator<Item = K>) -> std::collections::HashMap<String, String> {
    keys.into_iter().map(|k| (accept(k.as_ref()), k.as_ref().to_string())).collect()
}
