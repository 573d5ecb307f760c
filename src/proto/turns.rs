//! An encrypted (TLS) connection followed at the record layer, without
//! decrypting anything: only the 5-byte record headers are read, to know
//! when the client began sending application data after the server had
//! spoken (a request, as far as the outside can tell) and when the server
//! answered. Hop correlation pairs a TLS client hop with the plain request
//! a proxy forwards right after the client's turn.

use super::{Dir, ProtoEvent};
use crate::time::Ts;

/// TLS record content type of application data (RFC 8446 5.1; TLS 1.3
/// sends every encrypted record under it).
const APPLICATION_DATA: u8 = 23;
/// Turns reported per connection at most: enough for the requests of a
/// keep-alive connection or the handshake of a WebSocket; after that the
/// connection is no longer walked.
pub const MAX_TURNS: u32 = 64;

#[derive(Debug, Default)]
pub struct Turns {
    /// Per direction: bytes of the current record body still to skip, and
    /// a record header being assembled across segments.
    skip: [usize; 2],
    hdr: [[u8; 5]; 2],
    hdr_len: [usize; 2],
    /// The client sent application data since the server last spoke.
    client_turn: bool,
    turns: u32,
    /// Stopped walking (a gap, a record that is not TLS, or the bound).
    done: bool,
}

impl Turns {
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn data(&mut self, dir: Dir, ts: Ts, mut d: &[u8], out: &mut Vec<ProtoEvent>) {
        let i = dir.index();
        while !d.is_empty() && !self.done {
            if self.skip[i] > 0 {
                let n = self.skip[i].min(d.len());
                self.skip[i] -= n;
                d = &d[n..];
                continue;
            }
            let need = 5 - self.hdr_len[i];
            let n = need.min(d.len());
            self.hdr[i][self.hdr_len[i]..self.hdr_len[i] + n].copy_from_slice(&d[..n]);
            self.hdr_len[i] += n;
            d = &d[n..];
            if self.hdr_len[i] < 5 {
                break;
            }
            self.hdr_len[i] = 0;
            let h = self.hdr[i];
            if !(20..=24).contains(&h[0]) || h[1] != 3 {
                self.done = true;
                break;
            }
            self.skip[i] = u16::from_be_bytes([h[3], h[4]]) as usize;
            self.record(dir, h[0], ts, out);
        }
    }

    fn record(&mut self, dir: Dir, ty: u8, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let turn = match dir {
            Dir::ToServer if ty == APPLICATION_DATA && !self.client_turn => {
                self.client_turn = true;
                true
            }
            Dir::ToClient if self.client_turn => {
                self.client_turn = false;
                true
            }
            _ => false,
        };
        if turn {
            self.turns += 1;
            out.push(ProtoEvent::TlsTurn { dir, ts });
            if self.turns >= MAX_TURNS {
                self.done = true;
            }
        }
    }

    /// Bytes lost to the capture: record boundaries are lost with them.
    pub fn gap(&mut self) {
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ty: u8, len: usize) -> Vec<u8> {
        let mut v = vec![ty, 3, 3];
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.extend(std::iter::repeat_n(0xAB, len));
        v
    }

    fn turns(t: &mut Turns, dir: Dir, at: i64, data: &[u8]) -> Vec<(Dir, i64)> {
        let mut out = Vec::new();
        t.data(dir, Ts(at), data, &mut out);
        out.into_iter()
            .map(|e| match e {
                ProtoEvent::TlsTurn { dir, ts } => (dir, ts.0),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn client_application_data_after_the_server_spoke_is_a_turn() {
        let mut t = Turns::default();
        // TLS 1.2: ClientHello; server flight; client key exchange + Finished
        assert!(turns(&mut t, Dir::ToServer, 1, &rec(22, 200)).is_empty());
        assert!(turns(&mut t, Dir::ToClient, 2, &[rec(22, 90), rec(22, 900)].concat()).is_empty());
        assert!(turns(&mut t, Dir::ToServer, 3, &[rec(22, 70), rec(20, 1), rec(22, 40)].concat()).is_empty());
        assert!(turns(&mut t, Dir::ToClient, 4, &[rec(20, 1), rec(22, 40)].concat()).is_empty());
        // the request, split across segments, header split too
        let req = [rec(23, 300), rec(23, 20)].concat();
        assert_eq!(turns(&mut t, Dir::ToServer, 5, &req[..3]), vec![]);
        assert_eq!(turns(&mut t, Dir::ToServer, 6, &req[3..100]), vec![(Dir::ToServer, 6)]);
        assert_eq!(turns(&mut t, Dir::ToServer, 7, &req[100..]), vec![]);
        // the response, then the next request
        assert_eq!(turns(&mut t, Dir::ToClient, 8, &rec(23, 500)), vec![(Dir::ToClient, 8)]);
        assert_eq!(turns(&mut t, Dir::ToServer, 9, &rec(23, 30)), vec![(Dir::ToServer, 9)]);
    }

    #[test]
    fn stops_on_what_is_not_tls_and_at_the_bound() {
        let mut t = Turns::default();
        t.data(Dir::ToServer, Ts(1), b"GET / HTTP/1.1\r\n", &mut Vec::new());
        assert!(t.is_done());
        let mut t = Turns::default();
        let mut n = 0;
        for i in 0..200 {
            n += turns(&mut t, Dir::ToServer, 2 * i, &rec(23, 10)).len();
            n += turns(&mut t, Dir::ToClient, 2 * i + 1, &rec(23, 10)).len();
        }
        assert_eq!(n, MAX_TURNS as usize);
        assert!(t.is_done());
    }
}
