//! Message framing per direction (RFC 9112 6.3): where a message head is
//! expected, how long its body is (Content-Length, chunked coding, until
//! the connection closes), and resynchronisation after a gap or garbage.
//! Bodies are counted past, never stored.

use super::head::MAX_HEAD;
use crate::proto::message::Headers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Expecting a message head.
    Head,
    Body(u64),
    Chunked(ChunkState),
    /// Response body delimited by the connection close.
    UntilClose,
    /// Client sent an Upgrade/CONNECT request; waiting for the response
    /// to know whether what follows is HTTP.
    AwaitResponse,
    /// Lost framing (gap or garbage); looking for a message start at the
    /// beginning of each chunk.
    Resync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkState {
    Size { size: u64, digits: u8, ext: bool },
    Data(u64),
    DataEnd,
    Trailer { len: usize },
}

/// Message body framing (RFC 9112 6.3).
pub(super) fn body_state(h: &Headers, response: bool) -> State {
    if h.is_chunked() {
        State::Chunked(ChunkState::Size { size: 0, digits: 0, ext: false })
    } else if let Some(n) = h.content_length() {
        if n > 0 { State::Body(n) } else { State::Head }
    } else if response {
        State::UntilClose
    } else {
        State::Head
    }
}

/// Skips body bytes; returns how many were consumed. Sets the state back to
/// `Head` at the end of the body, or to `Resync` on a malformed chunk.
pub(super) fn skip_body(state: &mut State, input: &[u8]) -> usize {
    match *state {
        State::Body(n) => {
            let k = (n.min(input.len() as u64)) as usize;
            *state = if n - k as u64 == 0 { State::Head } else { State::Body(n - k as u64) };
            k
        }
        State::Chunked(mut cs) => {
            let mut i = 0;
            while i < input.len() {
                if let ChunkState::Data(n) = cs {
                    let k = (n.min((input.len() - i) as u64)) as usize;
                    i += k;
                    cs = if n - k as u64 == 0 { ChunkState::DataEnd } else { ChunkState::Data(n - k as u64) };
                    continue;
                }
                let b = input[i];
                i += 1;
                cs = match (cs, b) {
                    (ChunkState::Size { size, digits, ext: false }, b) if b.is_ascii_hexdigit() => {
                        if digits >= 15 {
                            *state = State::Resync;
                            return i;
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        ChunkState::Size { size: size * 16 + v, digits: digits + 1, ext: false }
                    }
                    (ChunkState::Size { size, digits, .. }, b'\n') => {
                        if digits == 0 {
                            *state = State::Resync;
                            return i;
                        }
                        if size == 0 { ChunkState::Trailer { len: 0 } } else { ChunkState::Data(size) }
                    }
                    (s @ ChunkState::Size { .. }, b'\r') => s,
                    (ChunkState::Size { size, digits, .. }, b';' | b' ' | b'\t') => {
                        ChunkState::Size { size, digits, ext: true }
                    }
                    (s @ ChunkState::Size { ext: true, .. }, _) => s,
                    (ChunkState::Size { .. }, _) => {
                        *state = State::Resync;
                        return i;
                    }
                    (ChunkState::DataEnd, b'\r') => ChunkState::DataEnd,
                    (ChunkState::DataEnd, b'\n') => ChunkState::Size { size: 0, digits: 0, ext: false },
                    (ChunkState::DataEnd, _) => {
                        *state = State::Resync;
                        return i;
                    }
                    (ChunkState::Trailer { len }, b'\n') => {
                        if len == 0 {
                            *state = State::Head;
                            return i;
                        }
                        ChunkState::Trailer { len: 0 }
                    }
                    (t @ ChunkState::Trailer { .. }, b'\r') => t,
                    (ChunkState::Trailer { len }, _) => {
                        if len > MAX_HEAD {
                            *state = State::Resync;
                            return i;
                        }
                        ChunkState::Trailer { len: len + 1 }
                    }
                    (ChunkState::Data(_), _) => unreachable!("handled above"),
                };
            }
            *state = State::Chunked(cs);
            i
        }
        _ => 0,
    }
}
