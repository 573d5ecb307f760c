//! One TLS connection at the record layer: handshake records, sealed and
//! raw records cut anywhere, gaps, closes, keys present, absent, wrong or
//! late, so decryption and the HTTP/WebSocket parsers behind it are
//! reached. Input format: `wstap_fuzz::tls`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wstap_fuzz::tls::run(data));
