//! Protocol snippets the `streams` target can send (whole or any slice of
//! one), so the fuzzer starts from real handshakes, responses and frames
//! instead of having to guess `Sec-WebSocket-Key` byte by byte.

use std::sync::OnceLock;

use wstap::proto::ws::{encode, opcode};

pub const UPGRADE: &[u8] = b"GET /ws?token=abc HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\nCookie: session=secret\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
pub const OK101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.24.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
pub const PROXIED_UPGRADE: &[u8] = b"GET /ws?token=abc HTTP/1.1\r\nHost: backend\r\nUpgrade: websocket\r\nConnection: upgrade\r\nX-Real-IP: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
pub const UPSTREAM_101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

/// Index of each snippet in [`all`].
pub mod idx {
    pub const UPGRADE: u8 = 0;
    pub const OK101: u8 = 1;
    pub const PROXIED_UPGRADE: u8 = 2;
    pub const UPSTREAM_101: u8 = 3;
    pub const CLIENT_FRAMES: u8 = 4;
    pub const SERVER_FRAMES: u8 = 5;
    pub const BAD_FRAMES: u8 = 6;
    pub const GET: u8 = 7;
    pub const OK200: u8 = 8;
    pub const CHUNKED200: u8 = 9;
    pub const FORBIDDEN: u8 = 10;
    pub const BAD_GATEWAY: u8 = 11;
    pub const CONNECT: u8 = 12;
    pub const CONNECT_OK: u8 = 13;
    pub const H2C: u8 = 14;
    pub const CONTINUE_H2C_101: u8 = 15;
    pub const POST_CHUNKED: u8 = 16;
    pub const GET10: u8 = 17;
    pub const OK10_UNTIL_CLOSE: u8 = 18;
    pub const TLS_HELLO: u8 = 19;
    pub const SOCKETIO_UPGRADE: u8 = 20;
    pub const BAD_ACCEPT_101: u8 = 21;
    pub const BAD_REQUEST: u8 = 22;
    pub const HEAD: u8 = 23;
    pub const NOT_MODIFIED: u8 = 24;
}

fn build() -> Vec<Vec<u8>> {
    let m = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut client = Vec::new();
    client.extend(encode(true, 0b100, opcode::TEXT, m, b"hello"));
    client.extend(encode(true, 0, opcode::PING, m, b"hb"));
    client.extend(encode(false, 0, opcode::BINARY, m, &[0x5a; 300]));
    client.extend(encode(true, 0, opcode::CONTINUATION, m, &[0xa5; 20]));
    client.extend(encode(true, 0, opcode::PONG, m, b"hb"));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    client.extend(encode(true, 0, opcode::CLOSE, m, &close));

    let mut server = Vec::new();
    server.extend(encode(true, 0, opcode::TEXT, None, b"hi"));
    server.extend(encode(true, 0, opcode::PONG, None, b"hb"));
    server.extend(encode(true, 0, opcode::PING, None, b""));
    server.extend(encode(false, 0, opcode::TEXT, None, b"frag"));
    server.extend(encode(true, 0, opcode::CONTINUATION, None, b"ment"));
    server.extend(encode(true, 0, opcode::BINARY, None, &[0u8; 2000]));
    let mut close = 1001u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"going away");
    server.extend(encode(true, 0, opcode::CLOSE, None, &close));

    let mut bad = Vec::new();
    bad.extend(encode(true, 0, opcode::PING, None, &[b'p'; 200])); // oversized control
    bad.extend(encode(true, 0, 0x3, None, b"reserved opcode"));
    bad.extend(encode(true, 0, opcode::CLOSE, None, b"x")); // one-byte close body
    bad.extend(encode(true, 0, opcode::TEXT, None, b"unmasked from a client"));
    bad.extend([0x82, 127, 0, 0, 1, 0, 0, 0, 0, 0]); // 2^40-byte binary frame, header only

    vec![
        UPGRADE.to_vec(),
        OK101.to_vec(),
        PROXIED_UPGRADE.to_vec(),
        UPSTREAM_101.to_vec(),
        client,
        server,
        bad,
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer t\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: x\r\n\r\n".to_vec(),
        b"HTTP/1.1 403 Forbidden\r\nServer: nginx\r\nContent-Length: 9\r\nConnection: close\r\n\r\nForbidden".to_vec(),
        b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx/1.24.0\r\nContent-Type: text/html\r\nContent-Length: 3\r\n\r\nbad".to_vec(),
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n".to_vec(),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n".to_vec(),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4\r\nabcd\r\n0\r\n\r\n".to_vec(),
        b"GET /old HTTP/1.0\r\n\r\n".to_vec(),
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close".to_vec(),
        wstap::proto::tls::encode_client_hello("ws.example.com"),
        b"GET /socket.io/?EIO=4&transport=websocket&sid=abc HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(),
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nSec-WebSocket-Accept: wrong=\r\n\r\n".to_vec(),
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n".to_vec(),
    ]
}

/// Every snippet, built once.
pub fn all() -> &'static [Vec<u8>] {
    static ALL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ALL.get_or_init(build)
}
