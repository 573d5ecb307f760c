//! The `pipeline` target's input: a little capture.
//!
//! ```text
//! byte 0      link type: LINKTYPES[b % 10]
//! byte 1      first timestamp: STARTS[b % 8]
//! records     [u16 LE len][u8 flags][len bytes], to the end of the input
//!             (a last record cut short keeps the bytes that are there)
//! flags       bits 0-2  time step before the record: STEPS[..]
//!             bits 3-5  bytes the "capture" cut off (`missing`): MISSING[..]
//!             bit 6     no packet: the pipeline is told time passed (idle)
//!             bit 7     the frame is fed twice (a duplicate)
//! ```
//!
//! Timestamps include the extremes a damaged pcapng can produce (libpcap
//! turns a 64-bit count plus an if_tsoffset into any `time_t`), and
//! `missing` includes `u32::MAX` (orig_len is a free 32-bit field).

use wstap::decode::LinkType;
use wstap::time::Ts;

use crate::{Output, Reader};

pub const LINKTYPES: [LinkType; 10] = [
    LinkType::ETHERNET,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::RAW,
    LinkType::RAW_12,
    LinkType::RAW_14,
    LinkType::IPV4,
    LinkType::IPV6,
];

/// First timestamp, microseconds.
pub const STARTS: [i64; 8] =
    [1_700_000_000_000_000, 0, 1, -1_000_000, 4_102_444_800_000_000, i64::MAX - 1_000_000_000, i64::MIN, i64::MAX];

/// Time step before each record, microseconds (one step goes backwards, as
/// in merged captures).
pub const STEPS: [i64; 8] = [0, 1, 1_000, 250_000, 1_000_000, 61_000_000, 7_201_000_000, -1_000_000];

pub const MISSING: [u32; 8] = [0, 0, 0, 0, 1, 1_400, 65_535, u32::MAX];

pub const IDLE: u8 = 0x40;
pub const TWICE: u8 = 0x80;

pub fn run(data: &[u8]) {
    run_printing(data, false)
}

/// As [`run`], printing every record as a JSON line when `print`.
pub fn run_printing(data: &[u8], print: bool) {
    let mut r = Reader::new(data);
    let linktype = LINKTYPES[r.u8() as usize % LINKTYPES.len()];
    let mut ts = STARTS[r.u8() as usize % STARTS.len()];
    let args = wstap::cli::Args { read: Some("-".into()), verbose: 1, ..Default::default() };
    let mut p = wstap::app::build_pipeline(&args).expect("default arguments are valid");
    let mut out = Output::new(1, print);
    while !r.is_empty() {
        let len = r.u16() as usize;
        let flags = r.u8();
        let frame = r.bytes(len);
        ts = ts.saturating_add(STEPS[(flags & 7) as usize]);
        let missing = MISSING[((flags >> 3) & 7) as usize];
        if flags & IDLE != 0 {
            p.idle(Ts(ts));
            let _ = p.session_rows();
        } else {
            p.packet(linktype, Ts(ts), frame, missing);
            if flags & TWICE != 0 {
                p.packet(linktype, Ts(ts), frame, missing);
            }
        }
        out.drain(&mut p);
    }
    out.finish(&mut p);
}

/// Builds inputs in this format (the seeding example).
pub struct Encoder {
    pub buf: Vec<u8>,
    /// The capture time the input has reached (the first packet's time
    /// stands for `STARTS[0]`).
    ts: Option<i64>,
}

impl Encoder {
    /// `None` for a link type the format has no slot for.
    pub fn new(linktype: LinkType) -> Option<Encoder> {
        let i = LINKTYPES.iter().position(|l| *l == linktype)?;
        Some(Encoder { buf: vec![i as u8, 0], ts: None })
    }

    /// Appends a packet; its time is approximated by the nearest step not
    /// beyond it, its cut-off bytes by the nearest `MISSING` value.
    pub fn packet(&mut self, ts: Ts, frame: &[u8], missing: u32) {
        let now = *self.ts.get_or_insert(ts.0);
        let delta = ts.0.saturating_sub(now);
        let step = if delta < 0 { 7 } else { (0..7).rev().find(|&i| STEPS[i] <= delta).unwrap_or(0) };
        self.ts = Some(now.saturating_add(STEPS[step]));
        let miss = if missing == 0 { 0 } else { (4..8).rev().find(|&i| MISSING[i] <= missing).unwrap_or(4) };
        let frame = &frame[..frame.len().min(u16::MAX as usize)];
        self.buf.extend_from_slice(&(frame.len() as u16).to_le_bytes());
        self.buf.push(step as u8 | (miss as u8) << 3);
        self.buf.extend_from_slice(frame);
    }
}
