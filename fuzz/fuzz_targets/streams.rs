//! Valid Ethernet/IP/TCP segments of up to four connections, with the
//! stream itself fuzzed (order, overlap, gaps, wraparound, flags, payload)
//! so HTTP and WebSocket parsing after reassembly is reached.
//! Input format: `wstap_fuzz::streams`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wstap_fuzz::streams::run(data));
