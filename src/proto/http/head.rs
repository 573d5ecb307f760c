//! Message heads: a request or status line and its header lines, parsed
//! by `httparse` from the segment itself when it holds the whole head, else
//! from a buffer of at most [`MAX_HEAD`] bytes.

use crate::proto::message::{Headers, Request, Response, Version};

/// Largest request or response head accepted. nginx's default
/// (`large_client_header_buffers 4 8k`) takes heads up to 32 KiB with any
/// number of header lines, Apache 100 lines of 8 KiB; 64 KiB covers both.
/// The number of header lines is bounded by this size only.
pub const MAX_HEAD: usize = 64 * 1024;
/// Header lines parsed without allocating (the common case); a head with
/// more is parsed again with room for every line it has.
const FAST_HEADERS: usize = 128;

/// What reading a head gave.
pub(super) enum HeadResult<T> {
    Done(T, usize),
    NeedMore,
    Bad(&'static str),
}

/// Parses a head from `buf` + `input`, buffering a partial head.
/// `used` counts bytes consumed from `input` only.
/// A head parser: Ok(None) needs more bytes, Err names the anomaly.
type HeadParser<T> = fn(&[u8]) -> Result<Option<(T, usize)>, &'static str>;

pub(super) fn read_head<T>(buf: &mut Vec<u8>, input: &[u8], parse: HeadParser<T>) -> HeadResult<T> {
    if buf.is_empty() {
        return match parse(input) {
            Ok(Some((m, n))) => HeadResult::Done(m, n),
            Ok(None) if input.len() > MAX_HEAD => HeadResult::Bad("http-head-too-large"),
            Ok(None) => {
                buf.extend_from_slice(input);
                HeadResult::NeedMore
            }
            Err(e) => HeadResult::Bad(e),
        };
    }
    let old = buf.len();
    let take = input.len().min(MAX_HEAD + 1 - old.min(MAX_HEAD));
    buf.extend_from_slice(&input[..take]);
    match parse(buf) {
        Ok(Some((m, n))) => {
            release(buf);
            HeadResult::Done(m, n.saturating_sub(old))
        }
        Ok(None) if buf.len() > MAX_HEAD => {
            release(buf);
            HeadResult::Bad("http-head-too-large")
        }
        Ok(None) => HeadResult::NeedMore,
        Err(e) => {
            release(buf);
            HeadResult::Bad(e)
        }
    }
}

/// Empties a head buffer; a large one gives its memory back (a keep-alive
/// connection keeps its parser for its whole life).
pub(super) fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > 4096 {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

fn headers_of(hs: &[httparse::Header<'_>]) -> Headers {
    let bytes = hs.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut out = Headers::with_capacity(bytes, hs.len());
    for h in hs {
        // Header values are ASCII nearly always; from_utf8 checks that
        // faster than the lossy decoder.
        match std::str::from_utf8(h.value) {
            Ok(v) => out.push(h.name, v.trim()),
            Err(_) => out.push(h.name, String::from_utf8_lossy(h.value).trim()),
        }
    }
    out
}

pub(super) fn parse_request(data: &[u8]) -> Result<Option<(Request, usize)>, &'static str> {
    let mut hs = [httparse::EMPTY_HEADER; FAST_HEADERS];
    match request_with(data, &mut hs) {
        Err(httparse::Error::TooManyHeaders) => {
            // More header lines than the fast path has room for (nginx
            // takes any number within its buffers): room for every line.
            let mut hs = vec![httparse::EMPTY_HEADER; line_count(data)];
            request_with(data, &mut hs).map_err(|e| bad(e, "http-malformed-request"))
        }
        r => r.map_err(|e| bad(e, "http-malformed-request")),
    }
}

fn request_with<'b>(
    data: &'b [u8],
    hs: &mut [httparse::Header<'b>],
) -> Result<Option<(Request, usize)>, httparse::Error> {
    let mut r = httparse::Request::new(hs);
    Ok(match r.parse(data)? {
        httparse::Status::Complete(n) => Some((
            Request {
                method: r.method.unwrap_or("").to_string(),
                target: r.path.unwrap_or("").to_string(),
                version: Version::from_minor(r.version.unwrap_or(1)),
                headers: headers_of(r.headers),
                head_len: n,
            },
            n,
        )),
        httparse::Status::Partial => None,
    })
}

pub(super) fn parse_response(data: &[u8]) -> Result<Option<(Response, usize)>, &'static str> {
    let mut hs = [httparse::EMPTY_HEADER; FAST_HEADERS];
    match response_with(data, &mut hs) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut hs = vec![httparse::EMPTY_HEADER; line_count(data)];
            response_with(data, &mut hs).map_err(|e| bad(e, "http-malformed-response"))
        }
        r => r.map_err(|e| bad(e, "http-malformed-response")),
    }
}

fn response_with<'b>(
    data: &'b [u8],
    hs: &mut [httparse::Header<'b>],
) -> Result<Option<(Response, usize)>, httparse::Error> {
    let mut r = httparse::Response::new(hs);
    Ok(match r.parse(data)? {
        httparse::Status::Complete(n) => Some((
            Response {
                version: Version::from_minor(r.version.unwrap_or(1)),
                status: r.code.unwrap_or(0),
                reason: r.reason.unwrap_or("").to_string(),
                headers: headers_of(r.headers),
                head_len: n,
            },
            n,
        )),
        httparse::Status::Partial => None,
    })
}

/// Upper bound of the header lines in a head (at most [`MAX_HEAD`] + one
/// segment of bytes are ever parsed at once).
fn line_count(data: &[u8]) -> usize {
    let head = &data[..data.len().min(MAX_HEAD + 1)];
    head.iter().filter(|&&b| b == b'\n').count() + 1
}

fn bad(e: httparse::Error, malformed: &'static str) -> &'static str {
    match e {
        httparse::Error::TooManyHeaders => "http-too-many-headers",
        _ => malformed,
    }
}
