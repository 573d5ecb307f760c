//! The memory bound under hostile traffic (input format and checks:
//! `wstap_fuzz::budget`), with a counting global allocator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_fuzz::budget::LIVE;
use wstap_fuzz::heap_check::Counting;

#[global_allocator]
static A: Counting = Counting(&LIVE);

fuzz_target!(|data: &[u8]| wstap_fuzz::budget::run(data));
