//! What the TLS layer reports: each connection's handshake facts and why
//! its application data was not read, and the counters of the summary.

/// Why a TLS connection's application data was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Undecrypted {
    /// No key for its client random in the key log(s).
    NoKey,
    /// A suite wstap does not decrypt (CBC, CCM, export, ...).
    UnsupportedSuite,
    /// SSL 3.0, TLS 1.0 or 1.1.
    UnsupportedVersion,
    /// The capture missed the ClientHello or ServerHello (started mid-connection).
    HandshakeNotCaptured,
    /// Records did not authenticate with the logged key (wrong key log,
    /// damaged records).
    AuthFailed,
    /// Bytes of the connection were lost to the capture, so records could
    /// no longer be delimited.
    StreamGap,
    /// Not TLS records after all.
    Malformed,
}

impl Undecrypted {
    pub const ALL: [Undecrypted; 7] = [
        Undecrypted::NoKey,
        Undecrypted::UnsupportedSuite,
        Undecrypted::UnsupportedVersion,
        Undecrypted::HandshakeNotCaptured,
        Undecrypted::AuthFailed,
        Undecrypted::StreamGap,
        Undecrypted::Malformed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Undecrypted::NoKey => "no-key",
            Undecrypted::UnsupportedSuite => "unsupported-suite",
            Undecrypted::UnsupportedVersion => "unsupported-version",
            Undecrypted::HandshakeNotCaptured => "handshake-not-captured",
            Undecrypted::AuthFailed => "auth-failed",
            Undecrypted::StreamGap => "stream-gap",
            Undecrypted::Malformed => "malformed",
        }
    }
    pub(super) fn index(self) -> usize {
        Undecrypted::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// What a TLS connection's handshake said and whether it was read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsInfo {
    /// "TLS 1.2", "TLS 1.3" (from the ServerHello).
    pub version: Option<&'static str>,
    /// IANA name of the negotiated suite.
    pub cipher: Option<String>,
    pub sni: Option<String>,
    /// The protocol the server chose (ALPN), e.g. "http/1.1", "h2".
    pub alpn: Option<String>,
    /// Application data was decrypted and parsed.
    pub decrypted: bool,
    /// Why it was not, when it was not.
    pub reason: Option<Undecrypted>,
}

impl TlsInfo {
    /// Neither decrypted nor given up: records are held for keys that may
    /// still come (a key log being written).
    pub fn awaiting_keys(&self) -> bool {
        !self.decrypted && self.reason.is_none()
    }
}

/// TLS counters of connections, added up by the flow table (summary `tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsStats {
    pub connections: u64,
    pub decrypted: u64,
    pub not_decrypted: [u64; Undecrypted::ALL.len()],
    /// Records decrypted (every content type).
    pub records: u64,
    /// Application-data plaintext bytes handed to the parsers.
    pub bytes: u64,
    /// Records whose authentication tag did not verify.
    pub auth_failures: u64,
    pub key_updates: u64,
    /// Connections whose keys arrived after their records (held, then read).
    pub late_keys: u64,
    /// Record bytes dropped because keys did not come within the hold limit.
    pub held_dropped: u64,
}

impl TlsStats {
    pub fn add(&mut self, o: &TlsStats) {
        self.connections += o.connections;
        self.decrypted += o.decrypted;
        for (a, b) in self.not_decrypted.iter_mut().zip(o.not_decrypted) {
            *a += b;
        }
        self.records += o.records;
        self.bytes += o.bytes;
        self.auth_failures += o.auth_failures;
        self.key_updates += o.key_updates;
        self.late_keys += o.late_keys;
        self.held_dropped += o.held_dropped;
    }
}
