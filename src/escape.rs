//! The one place where text from the wire is made safe for a terminal.
//!
//! Anything a peer sent (paths, header values, reason phrases, close
//! reasons, SNI, ...) may hold bytes a terminal acts on: ESC starts escape
//! sequences (`ESC ]0;` sets the window title, `ESC [2J` clears the
//! screen), BEL rings, CR and backspace overwrite what was printed, and
//! UTF-8 encoded C1 controls (U+009B is CSI) do the same on many terminals.
//! Bidirectional overrides (U+202E) reorder what the reader sees.
//!
//! Flows, roles and other typed fields need nothing: they are printed from
//! addresses and names wstap owns.
//!
//! Every text output goes through here: the text sink escapes each record
//! ([`record`]) before formatting it, and the dashboard each record and
//! session row it receives. Nothing is dropped: a control character becomes
//! a visible escape (`\x1b`, `\u009b`, `\u202e`), so the operator sees that
//! something odd was sent, and what.

use std::borrow::Cow;
use std::fmt::Write;

use crate::record::{Hop, Record};

/// Whether `c` must not reach a terminal as is.
#[inline]
pub fn is_unsafe(c: char) -> bool {
    match c {
        // C0 controls (NUL, BEL, BS, TAB, LF, CR, ESC, ...) and DEL.
        '\0'..='\x1f' | '\x7f' => true,
        // C1 controls (CSI, OSC, ST, ...).
        '\u{80}'..='\u{9f}' => true,
        // Bidirectional formatting, line and paragraph separators.
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// Whether `s` holds anything [`text`] would change. A fast scan: ASCII
/// text without control bytes (nearly everything) is one pass over 8-byte
/// words; only a string with a control byte or a non-ASCII one is looked
/// at character by character.
#[inline]
pub fn needs(s: &str) -> bool {
    maybe_unsafe(s.as_bytes()) && s.chars().any(is_unsafe)
}

/// Whether `b` holds a byte below 0x20, 0x7f or a byte of 0x80 and more
/// (never false when it does; the usual bit tricks on words, then the
/// tail byte by byte).
#[inline]
fn maybe_unsafe(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        // A byte below 0x20 (x - 0x20 borrows into its high bit while the
        // byte's own high bit is clear), a byte equal to 0x7f (a zero
        // byte of x ^ 0x7f..), or a high bit set.
        let below = x.wrapping_sub(ONES * 0x20) & !x;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y;
        if (x | below | del) & HIGH != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c < 0x20 || c == 0x7f || c >= 0x80)
}

/// Whether `b` is a JSON string body that needs no escape at all, by JSON
/// or by the terminal rule: printable ASCII (0x20 to 0x7e) without `"`
/// and `\`. Exact (the same word tricks as [`maybe_unsafe`], with the two
/// JSON bytes added).
#[inline]
pub fn json_plain(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn zero_byte(y: u64) -> u64 {
        y.wrapping_sub(ONES) & !y
    }
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let below = x.wrapping_sub(ONES * 0x20) & !x;
        let hit = x
            | below
            | zero_byte(x ^ (ONES * 0x7f))
            | zero_byte(x ^ (ONES * b'"' as u64))
            | zero_byte(x ^ (ONES * b'\\' as u64));
        if hit & HIGH != 0 {
            return false;
        }
    }
    words.remainder().iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

/// A run of `s` that is safe as it is, or one unsafe character: what
/// [`pieces`] cuts a string into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Safe(&'a str),
    Unsafe(char),
}

/// `s` cut, in order, into runs of safe text and the unsafe characters
/// between them: each output ([`text`], the JSON sink) spells the unsafe
/// ones its own way.
pub fn pieces(s: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let end = match rest.char_indices().find(|&(_, c)| is_unsafe(c)) {
            Some((0, c)) => {
                rest = &rest[c.len_utf8()..];
                return Some(Piece::Unsafe(c));
            }
            Some((i, _)) => i,
            None if rest.is_empty() => return None,
            None => rest.len(),
        };
        let (safe, after) = rest.split_at(end);
        rest = after;
        Some(Piece::Safe(safe))
    })
}

/// `s` with every unsafe character replaced by a visible escape: `\x1b`
/// for C0 controls and DEL, `\u009b` for the others.
pub fn text(s: &str) -> Cow<'_, str> {
    if !needs(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for p in pieces(s) {
        match p {
            Piece::Safe(t) => out.push_str(t),
            Piece::Unsafe(c) if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            Piece::Unsafe(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

fn fix(s: &mut String) {
    if let Cow::Owned(o) = text(s) {
        *s = o;
    }
}

fn fix_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        fix(s);
    }
}

/// A finding's `fix`: wstap's own text, several lines (a configuration
/// snippet), quoting what came from the wire: each line is escaped, the
/// line breaks between them are kept.
fn lines_need(s: &str) -> bool {
    s.split('\n').any(needs)
}

fn fix_lines(s: &mut String) {
    if lines_need(s) {
        *s = s.split('\n').map(|l| text(l).into_owned()).collect::<Vec<_>>().join("\n");
    }
}

fn fix_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => fix(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(fix_value),
        serde_json::Value::Object(m) => {
            if m.keys().any(|k| needs(k)) {
                let old = std::mem::take(m);
                for (k, mut v) in old {
                    fix_value(&mut v);
                    m.insert(text(&k).into_owned(), v);
                }
            } else {
                m.values_mut().for_each(fix_value);
            }
        }
        _ => {}
    }
}

fn value_needs(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => needs(s),
        serde_json::Value::Array(a) => a.iter().any(value_needs),
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| needs(k) || value_needs(v)),
        _ => false,
    }
}

fn hop_strings(h: &Hop) -> impl Iterator<Item = &str> {
    let tls = h.tls.as_ref().map(|t| [&t.cipher, &t.sni, &t.alpn]).into_iter().flatten();
    [&h.method, &h.target, &h.upgrade, &h.connection, &h.key, &h.reason, &h.accept, &h.server, &h.sni, &h.protocol]
        .into_iter()
        .chain(tls)
        .filter_map(|s| s.as_deref())
}

fn fix_hop(h: &mut Hop) {
    for s in [
        &mut h.method,
        &mut h.target,
        &mut h.upgrade,
        &mut h.connection,
        &mut h.key,
        &mut h.reason,
        &mut h.accept,
        &mut h.server,
        &mut h.sni,
        &mut h.protocol,
    ] {
        fix_opt(s);
    }
    if let Some(t) = &mut h.tls {
        // SNI and ALPN are the client's bytes; an unknown cipher suite is
        // printed from its number, but escape it all the same.
        fix_opt(&mut t.cipher);
        fix_opt(&mut t.sni);
        fix_opt(&mut t.alpn);
    }
}

/// Whether any string of the record needs escaping.
fn record_needs(r: &Record) -> bool {
    let o = |s: &Option<String>| s.as_deref().is_some_and(needs);
    match r {
        Record::Http(m) => {
            o(&m.method) || o(&m.target) || o(&m.reason) || m.headers.iter().any(|(n, v)| needs(n) || needs(v))
        }
        Record::Frame(f) => o(&f.close_reason),
        Record::Handshake(h) => {
            needs(&h.path) || [&h.client, &h.upstream].into_iter().flatten().any(|h| hop_strings(h).any(needs))
        }
        Record::Session(s) => needs(&s.path) || o(&s.close.reason),
        Record::Finding(f) => {
            needs(&f.message) || o(&f.path) || f.fix.as_deref().is_some_and(lines_need) || value_needs(&f.detail)
        }
        Record::Summary(s) => s.paths.iter().chain(&s.upstreams).any(|r| needs(&r.key)),
    }
}

fn fix_record(r: &mut Record) {
    match r {
        Record::Http(m) => {
            fix_opt(&mut m.method);
            fix_opt(&mut m.target);
            fix_opt(&mut m.reason);
            for (n, v) in &mut m.headers {
                fix(n);
                fix(v);
            }
        }
        Record::Frame(f) => fix_opt(&mut f.close_reason),
        Record::Handshake(h) => {
            fix(&mut h.path);
            for hop in [&mut h.client, &mut h.upstream].into_iter().flatten() {
                fix_hop(hop);
            }
        }
        Record::Session(s) => {
            fix(&mut s.path);
            fix_opt(&mut s.close.reason);
        }
        Record::Finding(f) => {
            fix(&mut f.message);
            fix_opt(&mut f.path);
            if let Some(x) = &mut f.fix {
                fix_lines(x);
            }
            fix_value(&mut f.detail);
        }
        Record::Summary(s) => {
            for r in s.paths.iter_mut().chain(s.upstreams.iter_mut()) {
                fix(&mut r.key);
            }
        }
    }
}

/// The record with every string that came from the wire made safe for a
/// terminal; borrowed (no copy) when nothing needs it.
pub fn record(r: &Record) -> Cow<'_, Record> {
    if !record_needs(r) {
        return Cow::Borrowed(r);
    }
    let mut r = r.clone();
    fix_record(&mut r);
    Cow::Owned(r)
}

/// Escapes a record in place (the dashboard keeps its own copies).
pub fn record_in_place(r: &mut Record) {
    if record_needs(r) {
        fix_record(r);
    }
}

/// A close frame's `-v` line whose reason came from the wire: what the
/// tests of escaping (here and in the JSON sink) feed.
#[cfg(test)]
pub(crate) fn close_line(code: Option<u16>, reason: &str) -> crate::record::FrameLine {
    let ep = |s: &str| {
        let sa: std::net::SocketAddr = s.parse().unwrap();
        crate::flow::Endpoint::new(sa.ip(), sa.port())
    };
    crate::record::FrameLine {
        ty: "frame",
        ts: 0.0,
        flow: crate::flow::FlowKey { src: ep("10.0.0.1:1"), dst: ep("10.0.0.2:2") },
        dir: crate::proto::Dir::ToClient,
        opcode: crate::proto::ws::opcode::CLOSE,
        fin: true,
        rsv1: false,
        masked: false,
        len: 5,
        close_code: code,
        close_reason: Some(reason.into()),
        stream_id: None,
    }
}

#[cfg(test)]
mod tests {
    /// The word scan says what a byte-by-byte scan says: every byte value
    /// at every position of strings of 0 to 20 bytes, among safe ones.
    #[test]
    fn the_word_scan_misses_no_unsafe_byte() {
        let slow = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == 0x7f || c >= 0x80);
        for len in 0..=20 {
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = v;
                    // Never missed; and exact, so printable ASCII (nearly
                    // everything) never takes the slow path.
                    assert_eq!(slow(&b), super::maybe_unsafe(&b), "{b:?}");
                }
            }
            assert!(!super::maybe_unsafe(&vec![b'~'; len]));
            assert!(!super::maybe_unsafe(&vec![b' '; len]));
        }
        assert!(!super::needs("GET /ws HTTP/1.1 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(super::needs("0123456789abcdef\u{202e}"));
        assert!(!super::needs("0123456789abcdef\u{e9}"));
    }

    /// The JSON word scan is exact too: every byte value at every position
    /// of strings of 0 to 20 bytes, on backgrounds at both ends of the
    /// plain range and beside each byte that is not plain.
    #[test]
    fn the_json_word_scan_is_exact() {
        let plain = |b: &[u8]| b.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\');
        for bg in [b'a', b' ', b'~', b'#', b'[', b']'] {
            for len in 0..=20 {
                for at in 0..len {
                    for v in 0..=255u8 {
                        let mut b = vec![bg; len];
                        b[at] = v;
                        assert_eq!(plain(&b), super::json_plain(&b), "{b:?}");
                        if at + 1 < len {
                            b[at + 1] = b'"';
                            assert!(!super::json_plain(&b), "{b:?}");
                        }
                    }
                }
                assert!(super::json_plain(&vec![bg; len]));
            }
        }
    }

    use super::*;

    #[test]
    fn controls_become_visible_escapes() {
        assert_eq!(text("plain /ws?x=1"), "plain /ws?x=1");
        assert!(matches!(text("héllo wörld"), Cow::Borrowed(_)));
        assert_eq!(text("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(text("\x1b[2J\0\r\n\t\x7f"), "\\x1b[2J\\x00\\x0d\\x0a\\x09\\x7f");
        assert_eq!(text("csi\u{9b}31m"), "csi\\u009b31m");
        assert_eq!(text("abc\u{202e}fdp.exe"), "abc\\u202efdp.exe");
        // Nothing unsafe is left, whatever the input.
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!text(&all).chars().any(is_unsafe));
    }

    #[test]
    fn pieces_are_the_safe_runs_and_the_unsafe_characters_in_order() {
        use Piece::*;
        let all = |s| pieces(s).collect::<Vec<_>>();
        assert_eq!(all(""), []);
        assert_eq!(all("plain"), [Safe("plain")]);
        assert_eq!(
            all("\x1b[2Jé\u{9b}\u{202e}x"),
            [Unsafe('\x1b'), Safe("[2Jé"), Unsafe('\u{9b}'), Unsafe('\u{202e}'), Safe("x")]
        );
    }

    #[test]
    fn records_are_escaped_only_when_needed() {
        let f = close_line(Some(1000), "bye");
        let r = Record::Frame(f.clone());
        assert!(matches!(record(&r), Cow::Borrowed(_)));
        let bad = Record::Frame(crate::record::FrameLine { close_reason: Some("\x1b[2Jgone".into()), ..f });
        match record(&bad).as_ref() {
            Record::Frame(f) => assert_eq!(f.close_reason.as_deref(), Some("\\x1b[2Jgone")),
            _ => unreachable!(),
        }
    }
}
