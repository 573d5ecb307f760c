//! Protocol sniffing: what a connection carries, from its first payload
//! bytes, and which side of a connection picked up mid-way is the client.

use super::{Dir, h2, tls};

/// What a connection's first payload says it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// A TLS ClientHello from the client.
    TlsHello,
    /// The HTTP/2 client preface in clear (prior knowledge, or after h2c).
    H2Preface,
    /// An HTTP/1 request line from the client, or a status line from the
    /// server.
    Http,
    /// A TLS record picked up mid-connection.
    TlsRecord,
    /// Anything else (SSH, a tunnel): not parsed.
    Unknown,
}

/// What the first payload `data`, sent in `dir`, says the connection is.
pub fn first_payload(dir: Dir, data: &[u8]) -> Carries {
    match dir {
        Dir::ToServer if tls::is_client_hello(data) => Carries::TlsHello,
        Dir::ToServer if h2::is_preface(data) => Carries::H2Preface,
        Dir::ToServer if looks_like_request(data) => Carries::Http,
        Dir::ToClient if looks_like_response(data) => Carries::Http,
        _ if tls::looks_like_record(data) => Carries::TlsRecord,
        _ => Carries::Unknown,
    }
}

/// A plausible start of a request: an upper-case method token and a space
/// (or the beginning of one).
pub fn looks_like_request(d: &[u8]) -> bool {
    let mut n = 0;
    for &b in d.iter().take(20) {
        if b == b' ' {
            return n > 0;
        }
        if !(b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return false;
        }
        n += 1;
    }
    n > 0 && n == d.len().min(20) && n < 20
}

/// A plausible start of a response (or a prefix of "HTTP/1.").
pub fn looks_like_response(d: &[u8]) -> bool {
    let p = b"HTTP/1.";
    let n = d.len().min(p.len());
    n > 0 && d[..n] == p[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausibility_checks() {
        assert!(looks_like_request(b"GET / HTTP/1.1"));
        assert!(looks_like_request(b"GE"));
        assert!(!looks_like_request(b"\x16\x03\x01"));
        assert!(!looks_like_request(b"SSH-2.0-OpenSSH"));
        assert!(looks_like_response(b"HTTP/1.1 200"));
        assert!(looks_like_response(b"HT"));
        assert!(!looks_like_response(b"SSH-2.0"));
    }
}
