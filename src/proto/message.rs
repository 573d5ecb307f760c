//! HTTP/1.x messages as wstap keeps them: method/target/status and every
//! header in wire order (repeated headers kept), values as text.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
    /// A request or response on an HTTP/2 stream.
    Http2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }
    pub fn from_minor(m: u8) -> Version {
        if m == 0 { Version::Http10 } else { Version::Http11 }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in wire order, names and values in one buffer (a message
/// head is one allocation, not two per header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// (name start, name end = value start, value end) into `text`.
    idx: Vec<(u32, u32, u32)>,
}

impl Headers {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Headers {
        let mut h = Headers::default();
        for (n, v) in pairs {
            h.push(n, v);
        }
        h
    }

    pub fn with_capacity(bytes: usize, count: usize) -> Headers {
        Headers { text: String::with_capacity(bytes), idx: Vec::with_capacity(count) }
    }

    pub fn push(&mut self, name: &str, value: &str) {
        let a = self.text.len() as u32;
        self.text.push_str(name);
        let b = self.text.len() as u32;
        self.text.push_str(value);
        self.idx.push((a, b, self.text.len() as u32));
    }

    /// Every (name, value), in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.idx.iter().map(|&(a, b, c)| (&self.text[a as usize..b as usize], &self.text[b as usize..c as usize]))
    }

    pub fn len(&self) -> usize {
        self.idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// First value of a header, name compared case-insensitively. Names
    /// are compared as bytes, lengths first, and only the value found is
    /// sliced as text (correlation asks several names of every request).
    pub fn get(&self, name: &str) -> Option<&str> {
        let (t, n) = (self.text.as_bytes(), name.as_bytes());
        let &(_, b, c) = self
            .idx
            .iter()
            .find(|&&(a, b, _)| (b - a) as usize == n.len() && t[a as usize..b as usize].eq_ignore_ascii_case(n))?;
        self.text.get(b as usize..c as usize)
    }

    /// The first value of each of `names` (lower case), in one pass over
    /// the headers instead of one per name: what [`Self::get`] gives for
    /// each, where several names are asked of every request (request ids,
    /// pairing evidence).
    pub fn get_each<const N: usize>(&self, names: &[&str; N]) -> [Option<&str>; N] {
        let mut out = [None; N];
        let t = self.text.as_bytes();
        for &(a, b, c) in &self.idx {
            let name = &t[a as usize..b as usize];
            for (i, n) in names.iter().enumerate() {
                if out[i].is_none() && n.len() == name.len() && name.eq_ignore_ascii_case(n.as_bytes()) {
                    out[i] = self.text.get(b as usize..c as usize);
                    break;
                }
            }
        }
        out
    }

    /// Every value of a header, in wire order; names compared as bytes,
    /// lengths first (as [`Self::get`]), only the values found sliced.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let (t, n) = (self.text.as_bytes(), name.as_bytes());
        self.idx
            .iter()
            .filter(move |&&(a, b, _)| (b - a) as usize == n.len() && t[a as usize..b as usize].eq_ignore_ascii_case(n))
            .filter_map(|&(_, b, c)| self.text.get(b as usize..c as usize))
    }

    /// All values of a repeated header joined with ", " (RFC 9110 5.3).
    pub fn joined(&self, name: &str) -> Option<String> {
        let mut it = self.values(name);
        let first = it.next()?;
        let mut s = first.to_string();
        for v in it {
            s.push_str(", ");
            s.push_str(v);
        }
        Some(s)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Comma-separated tokens of every occurrence of a header, trimmed.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values(name).flat_map(|v| v.split(',')).map(str::trim).filter(|t| !t.is_empty())
    }

    /// Whether a token list header (Connection, Upgrade) holds `token`,
    /// case-insensitively: browsers send `Connection: keep-alive, Upgrade`
    /// and servers `Upgrade: WebSocket`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        // (`tokens`, without its adapters: asked several times of every
        // request and response.)
        self.values(name).any(|v| {
            v.split(',').any(|t| {
                // `Upgrade: websocket/13` carries a protocol version.
                let t = t.trim();
                t.split('/').next().unwrap_or(t).trim().eq_ignore_ascii_case(token)
            })
        })
    }

    pub fn content_length(&self) -> Option<u64> {
        self.get("content-length").and_then(|v| v.trim().parse().ok())
    }

    pub fn is_chunked(&self) -> bool {
        self.tokens("transfer-encoding").last().is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Headers,
    /// Size of the request line and headers on the wire.
    pub head_len: usize,
}

impl Request {
    /// RFC 6455 4.1 upgrade attempt: any request carrying
    /// `Upgrade: websocket` or a `Sec-WebSocket-Key` (a proxy that strips
    /// the hop-by-hop headers still forwards the key).
    pub fn is_websocket_attempt(&self) -> bool {
        self.headers.has_token("upgrade", "websocket")
            || self.headers.has("sec-websocket-key")
            || self.is_extended_connect()
    }

    /// RFC 8441: an HTTP/2 extended CONNECT for a WebSocket (`:protocol
    /// websocket`), answered 2xx on success instead of 101.
    pub fn is_extended_connect(&self) -> bool {
        self.version == Version::Http2
            && self.method.eq_ignore_ascii_case("CONNECT")
            && self.headers.get(":protocol").is_some_and(|p| p.eq_ignore_ascii_case("websocket"))
    }

    /// The HTTP/2 stream the request came on, when it did.
    pub fn is_h2(&self) -> bool {
        self.version == Version::Http2
    }

    /// Path without the query string.
    pub fn path(&self) -> &str {
        let t = self.target.as_str();
        let t = t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))
            .or_else(|| t.strip_prefix("ws://"))
            .or_else(|| t.strip_prefix("wss://"))
            .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
            .unwrap_or(t);
        t.split('?').next().unwrap_or(t)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub head_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().copied())
    }

    /// One pass for several names gives what a lookup of each gives:
    /// any case, the first of repeated headers, absent names, a name that
    /// is a prefix of another.
    #[test]
    fn get_each_is_get_for_each_name() {
        let x = h(&[
            ("Host", "a"),
            ("X-Request-ID", "first"),
            ("x-request-id", "second"),
            ("TRACEPARENT", "00-1-2-01"),
            ("b3", "x"),
            ("Origin", ""),
            ("X-Request-IDs", "not it"),
        ]);
        let names = ["x-request-id", "traceparent", "origin", "b3", "cf-ray", "host", "x-request-ids"];
        let each = x.get_each(&names);
        for (n, v) in names.iter().zip(each) {
            assert_eq!(v, x.get(n), "{n}");
        }
        assert_eq!(each[0], Some("first"));
        assert_eq!(each[4], None);
        assert_eq!(h(&[]).get_each(&["a"]), [None]);
    }

    #[test]
    fn connection_is_a_case_insensitive_token_list() {
        let hs = h(&[("connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket")]);
        assert!(hs.has_token("Connection", "upgrade"));
        assert!(hs.has_token("upgrade", "websocket"));
        assert!(!hs.has_token("connection", "close"));
        let repeated = h(&[("Connection", "keep-alive"), ("connection", "upgrade")]);
        assert!(repeated.has_token("connection", "upgrade"));
        assert_eq!(repeated.joined("Connection").unwrap(), "keep-alive, upgrade");
        assert!(!h(&[("Upgrade", "upgrade")]).has_token("upgrade", "websocket"));
    }

    #[test]
    fn request_path_strips_query_and_absolute_form() {
        let mut r = Request {
            method: "GET".into(),
            target: "/ws?token=1".into(),
            version: Version::Http11,
            headers: Headers::default(),
            head_len: 0,
        };
        assert_eq!(r.path(), "/ws");
        r.target = "http://example.com/chat?x".into();
        assert_eq!(r.path(), "/chat");
        r.target = "http://example.com".into();
        assert_eq!(r.path(), "/");
    }

    #[test]
    fn chunked_is_last_transfer_coding() {
        assert!(h(&[("Transfer-Encoding", "gzip, chunked")]).is_chunked());
        assert!(!h(&[("Transfer-Encoding", "chunked, gzip")]).is_chunked());
    }
}
