//! Secrets are masked before anything reaches a sink: Cookie and
//! Authorization values, token-like headers, credentials in query strings
//! and bearer tokens smuggled in `Sec-WebSocket-Protocol`. `--no-redact`
//! turns this off.

pub const MASK: &str = "REDACTED";

const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "authorization",
    "key",
    "api_key",
    "apikey",
    "api-key",
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "client_secret",
    "sig",
    "signature",
    "session",
    "sessionid",
    "session_id",
    "sid",
    "jwt",
    "code",
    "ticket",
    "credential",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) || name.to_ascii_lowercase().ends_with("token")
}

/// Whether a header's value is a secret.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "x-api-key"
            | "x-auth-token"
            | "x-csrf-token"
            | "x-xsrf-token"
    ) || n.contains("token")
        || n.contains("secret")
        || n.contains("password")
        || n.contains("apikey")
        || n.contains("api-key")
}

/// Masks secret query parameters, keeping their names.
pub fn target(t: &str) -> String {
    let Some((path, query)) = t.split_once('?') else {
        return t.to_string();
    };
    let q: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}={MASK}"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

/// Masks a header value if it is a secret; keeps enough structure to be
/// useful (cookie names, the authorization scheme).
pub fn header(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "cookie" => value
            .split(';')
            .map(|c| match c.split_once('=') {
                Some((k, _)) => format!("{}={MASK}", k.trim()),
                None => MASK.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        "authorization" | "proxy-authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {MASK}"),
            None => MASK.to_string(),
        },
        "sec-websocket-protocol" => value
            .split(',')
            .map(|p| {
                let p = p.trim();
                if looks_like_token(p) { MASK.to_string() } else { p.to_string() }
            })
            .collect::<Vec<_>>()
            .join(", "),
        "referer" | "origin" | "location" => target(value),
        _ if is_secret_header(&n) => MASK.to_string(),
        _ => value.to_string(),
    }
}

/// A subprotocol entry that carries a credential (`authorization.bearer.<JWT>`,
/// a raw JWT, a long opaque string).
fn looks_like_token(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l.contains("bearer") || l.contains("token") || l.starts_with("eyj") || (p.len() >= 40 && !p.contains(' '))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_masked() {
        assert_eq!(target("/ws?token=abc&room=1"), "/ws?token=REDACTED&room=1");
        assert_eq!(target("/ws?access_token=x&AUTH=y"), "/ws?access_token=REDACTED&AUTH=REDACTED");
        assert_eq!(
            target("/socket.io/?EIO=4&transport=polling&sid=abc"),
            "/socket.io/?EIO=4&transport=polling&sid=REDACTED"
        );
        assert_eq!(target("/plain"), "/plain");
    }

    #[test]
    fn secret_headers_are_masked() {
        assert_eq!(header("Cookie", "session=abc; theme=dark"), "session=REDACTED; theme=REDACTED");
        assert_eq!(header("Authorization", "Bearer eyJhbGciOi"), "Bearer REDACTED");
        assert_eq!(header("X-Auth-Token", "t"), "REDACTED");
        assert_eq!(header("Upgrade", "websocket"), "websocket");
        assert_eq!(
            header("Sec-WebSocket-Protocol", "v1, authorization.bearer.eyJhbGciOiJIUzI1NiJ9.e30.x"),
            "v1, REDACTED"
        );
        assert_eq!(header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(!Redactor { enabled: false }.header("Cookie", "a=b").contains(MASK));
    }
}
