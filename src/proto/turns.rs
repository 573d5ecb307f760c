//! An encrypted (TLS) connection followed at the record layer, without
//! decrypting anything: only the 5-byte record headers are read, to know
//! when the client began sending application data after the server had
//! spoken (a request, as far as the outside can tell) and when the server
//! answered. Hop correlation pairs a TLS client hop with the plain request
//! a proxy forwards right after the client's turn.
//!
//! TLS 1.3 hides its last handshake messages under the application-data
//! type: the client's Finished is its first such record, and the server
//! answers it with session tickets (NewSessionTicket), often after the
//! client's request already left in the same flight and before the proxy
//! forwarded it. Neither is a turn: the client's first application-data
//! record is not counted, and the server's first flight after it is taken
//! for tickets (not an answer) while it is made of at most [`MAX_TICKETS`]
//! records of at most [`MAX_TICKET_RECORD`] bytes. A larger record, or more
//! of them, is an answer (a page the proxy served itself, say).

use super::{Dir, ProtoEvent};
use crate::time::Ts;

/// TLS record content type of application data (RFC 8446 5.1; TLS 1.3
/// sends every encrypted record under it).
const APPLICATION_DATA: u8 = 23;
/// Turns reported per connection at most: enough for the requests of a
/// keep-alive connection or the handshake of a WebSocket; after that the
/// connection is no longer walked.
pub const MAX_TURNS: u32 = 64;
/// TLS 1.3 session tickets a server sends after the client's Finished, at
/// most, as far as the record layer can tell (OpenSSL sends 2, fewer on
/// resumption).
pub const MAX_TICKETS: u8 = 4;
/// Largest record taken for a session ticket (OpenSSL's are ~270 bytes).
pub const MAX_TICKET_RECORD: usize = 1024;

#[derive(Debug, Default)]
pub struct Turns {
    /// Per direction: bytes of the current record body still to skip, and
    /// a record header being assembled across segments.
    skip: [usize; 2],
    hdr: [[u8; 5]; 2],
    hdr_len: [usize; 2],
    /// The client sent application data the server has not answered.
    client_turn: bool,
    /// The server sent records since the client's last application data.
    server_spoke: bool,
    /// The client sent application data at all; the server sent
    /// application data before it did (TLS 1.3's encrypted handshake).
    client_app: bool,
    tls13: bool,
    /// TLS 1.3: the server's records after the client's Finished, taken
    /// for session tickets (None once that flight is over).
    tickets: Option<u8>,
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
            self.record(dir, h[0], self.skip[i], ts, out);
        }
    }

    fn record(&mut self, dir: Dir, ty: u8, len: usize, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let turn = match dir {
            Dir::ToServer if ty == APPLICATION_DATA => {
                if !self.client_app {
                    self.client_app = true;
                    if self.tls13 {
                        // Its Finished: the server's next records are tickets.
                        self.tickets = Some(0);
                        return;
                    }
                }
                // The server spoke since, though not to answer (tickets):
                // this is new data all the same.
                let after_tickets = self.server_spoke && self.client_turn;
                self.server_spoke = false;
                if self.tickets.is_some_and(|n| n > 0) {
                    self.tickets = None;
                }
                let turn = !self.client_turn || after_tickets;
                self.client_turn = true;
                turn
            }
            Dir::ToServer => false,
            Dir::ToClient => {
                if ty == APPLICATION_DATA && !self.client_app {
                    self.tls13 = true;
                }
                self.server_spoke = true;
                if let Some(n) = self.tickets {
                    if ty == APPLICATION_DATA && n < MAX_TICKETS && len <= MAX_TICKET_RECORD {
                        self.tickets = Some(n + 1);
                        return;
                    }
                    self.tickets = None;
                }
                std::mem::replace(&mut self.client_turn, false)
            }
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

    /// TLS 1.3 up to the client's Finished: ClientHello; ServerHello, CCS
    /// and the encrypted server handshake (application-data type).
    fn tls13_handshake(t: &mut Turns) {
        assert!(turns(t, Dir::ToServer, 1, &rec(22, 300)).is_empty());
        assert!(turns(t, Dir::ToClient, 2, &[rec(22, 122), rec(20, 1), rec(23, 27), rec(23, 900)].concat()).is_empty());
    }

    #[test]
    fn tls13_finished_and_session_tickets_are_not_turns() {
        use Dir::{ToClient as C, ToServer as S};
        // Finished and the request in one flight; two tickets, then the
        // proxied answer, then a second request on the connection.
        let mut t = Turns::default();
        tls13_handshake(&mut t);
        assert_eq!(turns(&mut t, S, 3, &[rec(20, 1), rec(23, 69), rec(23, 201)].concat()), vec![(S, 3)]);
        assert_eq!(turns(&mut t, C, 4, &rec(23, 282)), vec![], "a ticket is no answer");
        assert_eq!(turns(&mut t, C, 5, &rec(23, 282)), vec![]);
        assert_eq!(turns(&mut t, C, 6, &rec(23, 205)), vec![], "a small answer in the tickets' flight is not told");
        assert_eq!(turns(&mut t, S, 7, &rec(23, 100)), vec![(S, 7)], "the next request is a turn all the same");
        assert_eq!(turns(&mut t, C, 8, &rec(23, 205)), vec![(C, 8)], "and its answer one");
        // Finished alone (curl): tickets, then the request.
        let mut t = Turns::default();
        tls13_handshake(&mut t);
        assert_eq!(turns(&mut t, S, 3, &[rec(20, 1), rec(23, 53)].concat()), vec![], "the Finished is no request");
        assert_eq!(turns(&mut t, C, 4, &[rec(23, 266), rec(23, 266)].concat()), vec![]);
        assert_eq!(turns(&mut t, S, 5, &rec(23, 106)), vec![(S, 5)]);
        assert_eq!(turns(&mut t, C, 6, &rec(23, 203)), vec![(C, 6)]);
        // A connection opened ahead (a browser's): Finished, tickets, nothing.
        let mut t = Turns::default();
        tls13_handshake(&mut t);
        assert_eq!(turns(&mut t, S, 3, &[rec(20, 1), rec(23, 53)].concat()), vec![]);
        assert_eq!(turns(&mut t, C, 4, &rec(23, 266)), vec![]);
        // A page the proxy served itself right after the tickets: answered.
        let mut t = Turns::default();
        tls13_handshake(&mut t);
        assert_eq!(turns(&mut t, S, 3, &[rec(20, 1), rec(23, 53)].concat()), vec![]);
        assert_eq!(turns(&mut t, S, 4, &rec(23, 671)), vec![(S, 4)]);
        assert_eq!(turns(&mut t, C, 5, &[rec(23, 266), rec(23, 266)].concat()), vec![]);
        assert_eq!(turns(&mut t, C, 6, &rec(23, 1374)), vec![(C, 6)]);
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
