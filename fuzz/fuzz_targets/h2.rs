//! One HTTP/2 connection: frames, HPACK, streams, RFC 8441 WebSockets,
//! gaps and closes. Input format: `wstap_fuzz::h2`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wstap_fuzz::h2::run(data));
