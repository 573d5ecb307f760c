//! Secrets are masked before anything reaches a sink, unless `--no-redact`.
//!
//! The rules follow what credentials look like in the wild rather than a
//! list of the ones seen so far:
//!
//! - **By name.** A header, query or path parameter, or `key=value` pair in
//!   free text is secret when its name, percent-decoded and split into words
//!   (`X-Access-Key` -> x, access, key; `accessToken` -> access, token), has
//!   a word that names a credential: key, token, secret, password/passwd/pwd/
//!   pass, session/sessid/sid, auth/authorization, credential, signature/sig,
//!   cookie, csrf/xsrf, jwt, bearer, ticket, otp, pin, apikey, private. The
//!   WebSocket nonces (`Sec-WebSocket-Key`, `-Accept`) and authentication
//!   challenges (`WWW-Authenticate`) are public and kept.
//! - **By shape.** A JSON Web Token (`eyJ...` base64url, dot-separated) is
//!   masked wherever it appears; in `Sec-WebSocket-Protocol`, paths and free
//!   text, so is a word that looks random (base64/base64url/hex, letters and
//!   digits mixed, long enough to be a key), and the credential after an
//!   authentication scheme (`Bearer x`, `Basic x`).
//! - **By position.** The userinfo of an absolute URL (`http://bob:pw@host/`);
//!   the subprotocol entries that follow a marker entry such as
//!   `Authorization` or `access_token` in `Sec-WebSocket-Protocol`; the values
//!   of Cookie and Set-Cookie (names kept) and the credentials of
//!   Authorization (scheme kept).
//!
//! Names and structure stay visible so that the output still explains what
//! was sent: `/ws?token=REDACTED&room=1`, `Bearer REDACTED`.

use std::borrow::Cow;

use crate::record::Record;

pub const MASK: &str = "REDACTED";

/// Words that make a name a credential's name.
const SECRET_WORDS: &[&str] = &[
    "key",
    "keys",
    "apikey",
    "token",
    "tokens",
    "secret",
    "secrets",
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "session",
    "sessionid",
    "sessid",
    "sid",
    "auth",
    "authorization",
    "authtoken",
    "credential",
    "credentials",
    "creds",
    "signature",
    "sig",
    "cookie",
    "csrf",
    "xsrf",
    "jwt",
    "bearer",
    "ticket",
    "otp",
    "pin",
    "private",
    "privatekey",
    "assertion",
    "saml",
    "samlresponse",
];

/// Substrings that make a word a credential's name even inside a longer
/// word (`accesstoken`, `client_secret` as one word, `sessionid`).
const SECRET_PARTS: &[&str] =
    &["token", "secret", "passw", "session", "sessid", "credential", "signature", "apikey", "authoriz", "csrf", "xsrf"];

/// Names that are credentials only as a whole (`code` is OAuth's
/// authorization code; `X-Status-Code` is not a secret).
const SECRET_WHOLE_NAMES: &[&str] = &["code", "state_token", "nonce_token"];

/// Header names that look secret by the rules but are public.
const PUBLIC_HEADERS: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-accept",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "www-authenticate",
    "proxy-authenticate",
    "keep-alive",
    // CORS: names and flags, not credentials.
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-request-headers",
];

/// Subprotocol entries that announce a credential in the next entry.
const MARKERS: &[&str] = &[
    "authorization",
    "auth",
    "bearer",
    "token",
    "access_token",
    "access-token",
    "accesstoken",
    "jwt",
    "apikey",
    "api-key",
    "api_key",
    "key",
    "password",
    "basic",
];

/// Authentication schemes whose next word is a credential.
const SCHEMES: &[&str] = &["bearer", "basic", "digest", "negotiate", "ntlm"];

/// The word after a scheme is its credential when it does not read as a
/// word (`Bearer token missing` is prose).
fn credential_like(w: &str) -> bool {
    w.len() >= 6 && (w.len() >= 20 || w.bytes().any(|b| !b.is_ascii_alphabetic()))
}

/// Decodes `%XX` escapes (twice at most: double encoding is a classic way
/// around filters). Invalid escapes stay as they are.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let mut cur: Vec<u8> = s.as_bytes().to_vec();
    for _ in 0..2 {
        let mut out = Vec::with_capacity(cur.len());
        let mut i = 0;
        let mut changed = false;
        while i < cur.len() {
            let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
            if cur[i] == b'%'
                && let (Some(h), Some(l)) = (cur.get(i + 1).and_then(|&b| hex(b)), cur.get(i + 2).and_then(|&b| hex(b)))
            {
                out.push(h << 4 | l);
                i += 3;
                changed = true;
            } else {
                out.push(cur[i]);
                i += 1;
            }
        }
        cur = out;
        if !changed || !cur.contains(&b'%') {
            break;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&cur).into_owned())
}

/// Calls `f` with each word of a name (slices of it): split at anything
/// not alphanumeric and where lower case turns to upper case
/// (`accessToken`, `X-API-Key`). Stops early when `f` says so.
fn any_word(name: &str, mut f: impl FnMut(&str) -> bool) -> bool {
    let mut start = None;
    let mut prev_lower = false;
    for (i, c) in name.char_indices() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take()
                && f(&name[s..i])
            {
                return true;
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            if let Some(s) = start
                && f(&name[s..i])
            {
                return true;
            }
            start = Some(i);
        }
        if start.is_none() {
            start = Some(i);
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    start.is_some_and(|s| f(&name[s..]))
}

/// `needle` (lower case ASCII) in `hay`, ignoring ASCII case.
fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Whether a parameter, pair or header name names a credential.
pub fn is_secret_name(name: &str) -> bool {
    // An address or a number names nothing (and are common in free text).
    if !name.bytes().any(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    let decoded = percent_decode(name);
    let name = decoded.trim();
    if SECRET_WHOLE_NAMES.iter().any(|w| w.eq_ignore_ascii_case(name)) {
        return true;
    }
    if SECRET_PARTS.iter().any(|p| contains_ci(name, p)) {
        return true;
    }
    if any_word(name, |w| SECRET_WORDS.iter().any(|s| s.eq_ignore_ascii_case(w))) {
        return true;
    }
    // The name as one word too (`pass_phrase`, `api-key` as `apikey`).
    if name.bytes().any(|b| !b.is_ascii_alphanumeric()) {
        let joined: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
        return SECRET_PARTS.iter().any(|p| contains_ci(&joined, p));
    }
    false
}

/// Whether a header's value is a secret as a whole.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    !PUBLIC_HEADERS.contains(&n.as_str()) && is_secret_name(&n)
}

fn is_b64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.' | b'~')
}

/// A JSON Web Token (or JWS/JWE): base64url header starting `eyJ`, then
/// dot-separated base64url parts.
pub fn is_jwt(w: &str) -> bool {
    let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.');
    let mut parts = w.split('.');
    let Some(h) = parts.next() else { return false };
    let rest: Vec<&str> = parts.collect();
    h.len() >= 10
        && h.starts_with("eyJ")
        && !rest.is_empty()
        && h.bytes()
            .chain(rest.iter().flat_map(|p| p.bytes()))
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A word that looks like a key or token: from the base64/hex alphabets,
/// long enough, with letters and digits mixed the way random strings are
/// and words are not.
pub fn looks_random(w: &str) -> bool {
    let b = w.as_bytes();
    if b.len() < 16 || !b.iter().all(|&c| is_b64_char(c)) {
        return false;
    }
    if is_jwt(w) {
        return true;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let upper = b.iter().filter(|c| c.is_ascii_uppercase()).count();
    let lower = b.iter().filter(|c| c.is_ascii_lowercase()).count();
    let letters = upper + lower;
    let hex = b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
    // Hex keys and ids (32+ digits: MD5, SHA, UUID-like).
    if hex && b.len() >= 32 && digits >= 4 && letters >= 4 {
        return true;
    }
    // Mixed-case base64 with digits (API keys, session ids, base64 of
    // `user:password`): words and version strings have one case or few digits.
    let mixed_case = upper >= 2 && lower >= 2;
    (mixed_case && (digits >= 2 || b.ends_with(b"="))) || (b.len() >= 40 && digits >= 4 && letters >= 4)
}

/// Shorter base64 (`dXNlcjpwdw==`, base64 of `user:pw`) counts in places
/// where plain words are not expected: subprotocol entries.
fn looks_like_credential_entry(p: &str) -> bool {
    let b = p.as_bytes();
    if looks_random(p) || is_jwt(p) {
        return true;
    }
    b.len() >= 8
        && b.iter().all(|&c| is_b64_char(c))
        && (b.ends_with(b"=") || (b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_digit)))
        && !p.contains('.')
}

/// Masks credentials in free text (WebSocket close reasons, HTTP reason
/// phrases): JWTs and random-looking words, `name=value` / `name: value`
/// pairs whose name is a secret's, and the word after an authentication
/// scheme. Sec-WebSocket-Key and -Accept values (24 and 28 base64
/// characters) are public nonces and kept.
pub fn free_text(s: &str) -> Cow<'_, str> {
    // Fast path: nothing that could be a secret (no pair, no long word,
    // no scheme, no token start).
    if s.len() < 6 {
        return Cow::Borrowed(s);
    }
    let long_word = s.split(is_sep).any(|w| w.len() >= 16);
    if !(long_word || s.contains(['=', ':']) || SCHEMES.iter().any(|sch| contains_ci(s, sch))) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut mask_next = false;
    let mut rest = s;
    while !rest.is_empty() {
        // Split off the next separator run and word.
        let sep_end = rest.find(|c: char| !is_sep(c)).unwrap_or(rest.len());
        out.push_str(&rest[..sep_end]);
        rest = &rest[sep_end..];
        if rest.is_empty() {
            break;
        }
        let word_end = rest.find(is_sep).unwrap_or(rest.len());
        let word = &rest[..word_end];
        rest = &rest[word_end..];
        let nonce = is_nonce(word);
        let (name, value) = split_pair(word);
        if mask_next && !word.is_empty() {
            out.push_str(MASK);
            changed = true;
            mask_next = false;
            continue;
        }
        mask_next = false;
        if let Some(v) = value {
            if !v.is_empty() && (is_secret_name(name) || (!is_nonce(v) && (looks_random(v) || is_jwt(v)))) {
                replace_within(&mut out, word, v);
                changed = true;
                continue;
            }
            if v.is_empty() && is_secret_name(name) {
                // `token: abc` / `password= abc`: the value is the next word.
                out.push_str(word);
                mask_next = true;
                continue;
            }
        }
        if !nonce && (is_jwt(word) || looks_random(word.trim_matches(|c: char| matches!(c, '"' | '\'' | '(' | ')')))) {
            out.push_str(MASK);
            changed = true;
            continue;
        }
        let lw = word.trim_end_matches(':');
        if SCHEMES.iter().any(|sch| sch.eq_ignore_ascii_case(lw)) && rest.starts_with(' ') {
            out.push_str(word);
            // The credential follows the scheme (`Bearer abc`).
            let after = rest.trim_start_matches(' ');
            let next_end = after.find(is_sep).unwrap_or(after.len());
            if next_end > 0 && credential_like(&after[..next_end]) {
                out.push_str(&rest[..rest.len() - after.len()]);
                out.push_str(MASK);
                rest = &after[next_end..];
                changed = true;
            }
            continue;
        }
        out.push_str(word);
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(s) }
}

/// Appends `word` with its sub-slice `part` masked.
fn replace_within(out: &mut String, word: &str, part: &str) {
    let off = (part.as_ptr() as usize).saturating_sub(word.as_ptr() as usize).min(word.len());
    let end = (off + part.len()).min(word.len());
    out.push_str(&word[..off]);
    out.push_str(MASK);
    out.push_str(&word[end..]);
}

fn is_sep(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '&' | '|' | '<' | '>' | '[' | ']' | '{' | '}')
}

/// `name=value` or `name:value` (a JSON-ish `"name":"value"` too).
fn split_pair(word: &str) -> (&str, Option<&str>) {
    match word.find(['=', ':']) {
        Some(i) if i > 0 => {
            let name = word[..i].trim_matches(|c: char| c == '"' || c == '\'');
            let value = word[i + 1..].trim_start_matches(['=', ':']).trim_matches(|c: char| c == '"' || c == '\'');
            (name, Some(value))
        }
        _ => (word, None),
    }
}

/// A Sec-WebSocket-Key (16 random bytes) or -Accept (a SHA-1) value.
fn is_nonce(w: &str) -> bool {
    let b = w.as_bytes();
    ((b.len() == 24 && b.ends_with(b"==")) || (b.len() == 28 && b.ends_with(b"=") && !b.ends_with(b"==")))
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=')
}

/// Masks secrets in a request target or URL: userinfo, secret-named
/// query and `;` parameters (names percent-decoded before they are
/// judged), JWT and random-looking values and path segments. Names and the
/// rest of the structure are kept.
pub fn target(t: &str) -> String {
    // Absolute form: scheme://[userinfo@]host/...
    let (prefix, rest) = match t.find("://") {
        Some(i) if t[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') => {
            let after = &t[i + 3..];
            let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let authority = &after[..auth_end];
            let host = match authority.rfind('@') {
                Some(at) => format!("{MASK}@{}", &authority[at + 1..]),
                None => authority.to_string(),
            };
            (format!("{}{host}", &t[..i + 3]), &after[auth_end..])
        }
        _ => (String::new(), t),
    };
    let (path, query) = match rest.find(['?', '#']) {
        Some(i) => (&rest[..i], Some((&rest[i..i + 1], &rest[i + 1..]))),
        None => (rest, None),
    };
    let mut out = prefix;
    out.push_str(&path_part(path));
    if let Some((mark, q)) = query {
        out.push_str(mark);
        out.push_str(&params(q, &['&', ';']));
    }
    out
}

/// A path (no query): secret `;name=value` parameters and JWT or
/// random-looking segments masked.
pub fn path(p: &str) -> String {
    path_part(p).into_owned()
}

fn path_part(p: &str) -> Cow<'_, str> {
    if !p.contains(';') && !p.split('/').any(segment_is_secret) {
        return Cow::Borrowed(p);
    }
    let segs: Vec<String> = p
        .split('/')
        .map(|seg| match seg.split_once(';') {
            Some((s, ps)) => {
                let s = if segment_is_secret(s) { MASK } else { s };
                format!("{s};{}", params(ps, &[';']))
            }
            None if segment_is_secret(seg) => MASK.to_string(),
            None => seg.to_string(),
        })
        .collect();
    Cow::Owned(segs.join("/"))
}

fn segment_is_secret(seg: &str) -> bool {
    // Shorter than any key or token (and than their encodings).
    if seg.len() < 16 {
        return false;
    }
    let d = percent_decode(seg);
    is_jwt(&d) || looks_random(&d)
}

/// `name=value` parameters separated by any of `seps`.
fn params(q: &str, seps: &[char]) -> String {
    let mut out = String::with_capacity(q.len());
    let mut rest = q;
    loop {
        let end = rest.find(seps).unwrap_or(rest.len());
        let kv = &rest[..end];
        match kv.split_once('=') {
            Some((k, v)) if is_secret_name(k) || value_is_secret(v) => {
                out.push_str(k);
                out.push('=');
                out.push_str(MASK);
            }
            None if value_is_secret(kv) => out.push_str(MASK),
            _ => out.push_str(kv),
        }
        if end == rest.len() {
            break;
        }
        out.push_str(&rest[end..end + 1]);
        rest = &rest[end + 1..];
    }
    out
}

fn value_is_secret(v: &str) -> bool {
    let d = percent_decode(v);
    is_jwt(&d) || looks_random(&d)
}

/// Masks a header value if it is a secret; keeps enough structure to be
/// useful (cookie names, the authorization scheme, subprotocol names).
pub fn header(name: &str, value: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "cookie" => value
            .split(';')
            .map(|c| match c.split_once('=') {
                Some((k, _)) => format!("{}={MASK}", k.trim()),
                None => MASK.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        "set-cookie" => {
            let mut parts = value.split(';');
            let first = match parts.next().and_then(|c| c.split_once('=')) {
                Some((k, _)) => format!("{}={MASK}", k.trim()),
                None => MASK.to_string(),
            };
            std::iter::once(first).chain(parts.map(|a| a.trim().to_string())).collect::<Vec<_>>().join("; ")
        }
        "authorization" | "proxy-authorization" => match value.trim().split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {MASK}"),
            None => MASK.to_string(),
        },
        "sec-websocket-protocol" => subprotocols(value),
        "referer" | "origin" | "location" | "content-location" | "x-original-url" | "x-rewrite-url"
        | "x-forwarded-uri" | "x-original-uri" => target(value),
        _ if is_secret_header(&n) => MASK.to_string(),
        _ => free_text_in_header(value).into_owned(),
    }
}

/// Other headers (and findings' sentences): only unmistakable credentials
/// (JWTs, `Bearer x`, secret-named pairs); random-looking values are ids
/// and tags there.
fn free_text_in_header(v: &str) -> Cow<'_, str> {
    let has_pair = v.contains('=') || v.contains(':');
    let has_scheme = SCHEMES.iter().any(|sch| contains_ci(v, sch));
    if !(has_pair || has_scheme || v.contains("eyJ")) {
        return Cow::Borrowed(v);
    }
    let mut out = String::new();
    let mut changed = false;
    let mut mask_next = false;
    for (i, w) in v.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if mask_next && credential_like(w) {
            out.push_str(MASK);
            changed = true;
            mask_next = false;
            continue;
        }
        mask_next = false;
        if is_jwt(w) {
            out.push_str(MASK);
            changed = true;
        } else if let (name, Some(val)) = split_pair(w)
            && !val.is_empty()
            && (is_secret_name(name) || is_jwt(val))
            && !name.contains('/')
        {
            replace_within(&mut out, w, val);
            changed = true;
        } else {
            mask_next = SCHEMES.iter().any(|sch| sch.eq_ignore_ascii_case(w));
            out.push_str(w);
        }
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(v) }
}

/// `Sec-WebSocket-Protocol`: browsers cannot set headers on a WebSocket, so
/// applications smuggle tokens in as subprotocol entries (`access_token,
/// eyJ...`, `base64url.bearer.authorization.k8s.io.<token>`,
/// `Authorization, dXNlcjpw...`). Masked: entries that carry a credential
/// (a JWT, a random-looking or base64 value, a secret word with a value
/// attached) and the entry after a marker entry. Protocol names
/// (`graphql-ws`, `v10.stomp`, `mqtt`) stay.
fn subprotocols(value: &str) -> String {
    let mut out = Vec::new();
    let mut after_marker = false;
    for p in value.split(',') {
        let p = p.trim();
        let lower = p.to_ascii_lowercase();
        let marker = MARKERS.contains(&lower.as_str());
        let secret = if marker {
            false
        } else if after_marker && !p.is_empty() {
            true
        } else {
            looks_like_credential_entry(p)
                || p.split(['.', '_', '-', ':', '=']).any(|part| is_jwt(part) || looks_like_credential_entry(part))
                || (is_secret_name(p) && p.split(['.', ':', '=', '/']).count() > 1)
        };
        after_marker = marker;
        out.push(if secret { MASK.to_string() } else { p.to_string() });
    }
    out.join(", ")
}

/// A redaction policy, so callers need not branch on the flag.
#[derive(Debug, Clone, Copy)]
pub struct Redactor {
    pub enabled: bool,
}

impl Redactor {
    pub fn target(&self, t: &str) -> String {
        if self.enabled { target(t) } else { t.to_string() }
    }
    pub fn header(&self, name: &str, value: &str) -> String {
        if self.enabled { header(name, value) } else { value.to_string() }
    }
    pub fn opt_header(&self, name: &str, value: Option<&str>) -> Option<String> {
        value.map(|v| self.header(name, v))
    }
    pub fn path(&self, p: &str) -> String {
        if self.enabled { path(p) } else { p.to_string() }
    }
    pub fn free_text(&self, s: &str) -> String {
        if self.enabled { free_text(s).into_owned() } else { s.to_string() }
    }
}

/// Replaces `s` when the rule changed it (rules borrow when they do not).
fn redo(s: &mut String, f: impl for<'a> Fn(&'a str) -> Cow<'a, str>) {
    if let Cow::Owned(r) = f(s) {
        *s = r;
    }
}

fn redo_opt(s: &mut Option<String>, f: impl for<'a> Fn(&'a str) -> Cow<'a, str>) {
    if let Some(s) = s {
        redo(s, f);
    }
}

/// The last pass before the sinks: fields whose text the record builders
/// copy as it came (paths, reason phrases, close reasons, finding
/// messages) get the path and free-text rules. Header values and targets
/// were masked where the records were built.
pub fn record(r: &mut Record) {
    match r {
        Record::Http(m) => redo_opt(&mut m.reason, free_text),
        Record::Frame(f) => redo_opt(&mut f.close_reason, free_text),
        Record::Handshake(h) => {
            redo(&mut h.path, path_part);
            for hop in [&mut h.client, &mut h.upstream].into_iter().flatten() {
                redo_opt(&mut hop.reason, free_text);
            }
        }
        Record::Session(s) => {
            redo(&mut s.path, path_part);
            redo_opt(&mut s.close.reason, free_text);
        }
        Record::Finding(f) => {
            redo_opt(&mut f.path, path_part);
            // A detector's sentence: only unmistakable credentials (its
            // nonces and addresses are the evidence).
            redo(&mut f.message, free_text_in_header);
            redo(&mut f.message, targets_in_text);
            redact_value_paths(&mut f.detail);
        }
        Record::Summary(s) => {
            for r in &mut s.paths {
                redo(&mut r.key, path_part);
            }
        }
    }
}

/// Request targets a detector's sentence quotes (a path, a path with
/// parameters, an absolute URL): masked as targets are.
fn targets_in_text(s: &str) -> Cow<'_, str> {
    if !s.contains(['/']) || !s.contains(['=', ';', '@']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    for (i, w) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let lower = w.get(..8).unwrap_or(w).to_ascii_lowercase();
        let url = w.starts_with('/') || ["http://", "https://", "ws://", "wss://"].iter().any(|p| lower.starts_with(p));
        if url && w.contains(['=', ';', '@']) {
            let t = target(w);
            changed |= t != w;
            out.push_str(&t);
        } else {
            out.push_str(w);
        }
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(s) }
}

/// Finding details: `path` fields and close `reason`s.
fn redact_value_paths(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match (k.as_str(), v) {
                    ("path", serde_json::Value::String(s)) => redo(s, path_part),
                    ("reason" | "close_reason" | "message", serde_json::Value::String(s)) => redo(s, free_text),
                    (_, v) => redact_value_paths(v),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_value_paths),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_quoted_in_finding_messages_are_masked() {
        let m = "the proxy forwarded GET /ws;auth=abc?tok%65n=x&room=1 to 10.0.0.2:3000 without X-Forwarded-Proto";
        let r = targets_in_text(m);
        assert!(!r.contains("abc") && !r.contains("tok%65n=x"), "{r}");
        assert!(r.contains("room=1") && r.contains("10.0.0.2:3000"), "{r}");
        assert!(matches!(targets_in_text("GET /ws to 10.0.0.2:3000"), Cow::Borrowed(_)));
        assert!(!targets_in_text("see https://bob:pw@app.example/x?a=1").contains("pw@"));
    }

    #[test]
    fn query_tokens_are_masked() {
        assert_eq!(target("/ws?token=abc&room=1"), "/ws?token=REDACTED&room=1");
        assert_eq!(target("/ws?access_token=x&AUTH=y"), "/ws?access_token=REDACTED&AUTH=REDACTED");
        assert_eq!(
            target("/socket.io/?EIO=4&transport=polling&sid=abc"),
            "/socket.io/?EIO=4&transport=polling&sid=REDACTED"
        );
        assert_eq!(target("/plain"), "/plain");
        assert_eq!(target("/ws?room=1&t=Nq8x1Y2"), "/ws?room=1&t=Nq8x1Y2");
    }

    #[test]
    fn names_are_judged_by_their_words() {
        for n in [
            "X-Access-Key",
            "X-Session-Id",
            "x-api-key",
            "X-Auth-Token",
            "accessToken",
            "client_secret",
            "X-Amz-Security-Token",
            "x-goog-api-key",
            "PHPSESSID",
            "X-CSRF-Token",
            "passwd",
            "Private-Token",
            "X-Hub-Signature-256",
            "tok%65n",
            "tok%2565n",
            "sig",
            "code",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in
            ["room", "transport", "EIO", "author", "monkey", "Host", "User-Agent", "X-Status-Code", "keyboard_layout"]
        {
            assert!(!is_secret_name(n), "{n}");
        }
        assert!(!is_secret_header("Sec-WebSocket-Key"));
        assert!(!is_secret_header("WWW-Authenticate"));
        assert!(is_secret_header("X-Access-Key"));
    }

    #[test]
    fn targets_lose_userinfo_encoded_names_and_semicolon_params() {
        assert_eq!(target("http://bob:pw@host/ws?x=1"), "http://REDACTED@host/ws?x=1");
        assert_eq!(target("ws://tok@example.com"), "ws://REDACTED@example.com");
        assert_eq!(target("/ws?tok%65n=abc"), "/ws?tok%65n=REDACTED");
        assert_eq!(target("/ws;auth=abc;v=1"), "/ws;auth=REDACTED;v=1");
        assert_eq!(target("/ws?room=1;session=xyz"), "/ws?room=1;session=REDACTED");
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(target(&format!("/ws/{jwt}/x?t={jwt}")), "/ws/REDACTED/x?t=REDACTED");
        assert_eq!(target("/rooms/42/chat"), "/rooms/42/chat");
    }

    #[test]
    fn secret_headers_are_masked() {
        assert_eq!(header("Cookie", "session=abc; theme=dark"), "session=REDACTED; theme=REDACTED");
        assert_eq!(header("Set-Cookie", "sid=abc; Path=/; HttpOnly"), "sid=REDACTED; Path=/; HttpOnly");
        assert_eq!(header("Authorization", "Bearer eyJhbGciOi"), "Bearer REDACTED");
        assert_eq!(header("X-Auth-Token", "t"), "REDACTED");
        assert_eq!(header("X-Access-Key", "AKIAxyz"), "REDACTED");
        assert_eq!(header("X-Session-Id", "42"), "REDACTED");
        assert_eq!(header("Upgrade", "websocket"), "websocket");
        assert_eq!(header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(header("Referer", "https://u:p@app/x?token=1"), "https://REDACTED@app/x?token=REDACTED");
        assert_eq!(header("X-Request-Id", "5f3c9a2b7d1e4f60a8b9c0d1e2f3a4b5"), "5f3c9a2b7d1e4f60a8b9c0d1e2f3a4b5");
        assert_eq!(header("X-Forwarded-Uri", "/cb?code=abc"), "/cb?code=REDACTED");
        assert_eq!(header("X-Debug", "user=bob password=hunter2"), "user=bob password=REDACTED");
        assert_eq!(header("Access-Control-Allow-Credentials", "true"), "true");
        assert!(!Redactor { enabled: false }.header("Cookie", "a=b").contains(MASK));
    }

    #[test]
    fn subprotocol_credentials_are_masked_and_names_kept() {
        let h = |v: &str| header("Sec-WebSocket-Protocol", v);
        assert_eq!(h("v1, authorization.bearer.eyJhbGciOiJIUzI1NiJ9.e30.x"), "v1, REDACTED");
        assert_eq!(h("Authorization, dXNlcjpwYXNzd29yZA=="), "Authorization, REDACTED");
        assert_eq!(h("Authorization, hunter2"), "Authorization, REDACTED");
        assert_eq!(h("access_token, eyJhbGciOiJIUzI1NiJ9.e30.sig"), "access_token, REDACTED");
        assert_eq!(
            h("base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNkl, base64.binary.k8s.io"),
            "REDACTED, base64.binary.k8s.io"
        );
        assert_eq!(h("dXNlcjpwdw=="), "REDACTED");
        for keep in ["graphql-ws", "graphql-transport-ws", "v10.stomp, v11.stomp", "mqtt", "wamp.2.json", "ocpp1.6"] {
            assert_eq!(h(keep), keep);
        }
    }

    #[test]
    fn free_text_secrets_are_masked() {
        assert_eq!(free_text("going away"), "going away");
        assert_eq!(free_text("bye"), "bye");
        assert_eq!(free_text("token expired: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"), "token expired: REDACTED");
        assert_eq!(free_text("bad password=hunter2 for bob"), "bad password=REDACTED for bob");
        assert_eq!(free_text("invalid api_key: sk_live_4eC39HqLyjWDarjtT1zdp7dc"), "invalid api_key: REDACTED");
        assert_eq!(free_text("auth failed, Bearer abcdef123456"), "auth failed, Bearer REDACTED");
        assert_eq!(free_text("session 8f14e45fceea167a5a36dedd4bea2543 closed"), "session REDACTED closed");
        assert_eq!(free_text("{\"token\":\"abc123\"}"), "{\"token\":\"REDACTED\"}");
        // WebSocket nonces and ordinary words stay.
        assert_eq!(
            free_text("expected s3pPLMBiTxaQ9kYGzzhZRbK+xOo= got dGhlIHNhbXBsZSBub25jZQ=="),
            "expected s3pPLMBiTxaQ9kYGzzhZRbK+xOo= got dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert_eq!(free_text("Service Restart 1012 at 10:42"), "Service Restart 1012 at 10:42");
    }
}
