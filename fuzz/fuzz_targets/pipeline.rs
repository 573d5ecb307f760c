//! Raw frames of any supported link type through decode, reassembly, the
//! HTTP and WebSocket parsers, correlation, detectors and both sinks.
//! Input format: `wstap_fuzz::pipeline`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wstap_fuzz::pipeline::run(data));
