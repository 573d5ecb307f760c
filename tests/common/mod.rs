//! Helpers for the integration tests: run the real binary, parse its JSON.
#![allow(dead_code)]

pub mod live;
#[path = "../wskeys/mod.rs"]
pub mod wskeys;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn capture(name: &str) -> PathBuf {
    root().join("captures").join(format!("{name}.pcap"))
}

/// Pins this test process's local time zone to UTC, for tests that format
/// times in process (the dashboard's screens): times are local time, as
/// tcpdump's, and what the tests hold must not depend on the machine's
/// zone. Every caller sets the same zone, so threads never disagree.
pub fn pin_utc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: set once, before any time is formatted, to the one
        // value every test of the process uses.
        unsafe { std::env::set_var("TZ", "UTC") };
        unsafe extern "C" {
            fn tzset();
        }
        // SAFETY: tzset re-reads TZ; nothing else changes it.
        unsafe { tzset() };
    });
}

/// Runs the binary with TZ=UTC: text times are local time, as tcpdump's,
/// and the outputs held by the tests must not depend on the machine's zone.
pub fn wstap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .expect("run wstap")
}

/// Runs `wstap -r FILE --json EXTRA...` and returns every record.
pub fn records_of(file: &Path, extra: &[&str]) -> Vec<Value> {
    let f = file.to_str().unwrap();
    let mut args = vec!["-r", f, "--json"];
    args.extend_from_slice(extra);
    let out = wstap(&args);
    assert!(out.status.success(), "wstap -r {f} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    parse_lines(&out.stdout)
}

pub fn parse_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn records(name: &str) -> Vec<Value> {
    records_of(&capture(name), &[])
}

pub fn of_type<'a>(rs: &'a [Value], ty: &str) -> Vec<&'a Value> {
    rs.iter().filter(|r| r["type"] == ty).collect()
}

pub fn summary(rs: &[Value]) -> &Value {
    let last = rs.last().expect("some output");
    assert_eq!(last["type"], "summary", "the summary is the last line");
    last
}

/// Finding kinds with a given severity, sorted, with repeats.
pub fn kinds(rs: &[Value], severity: &str) -> Vec<String> {
    let mut v: Vec<String> = of_type(rs, "finding")
        .iter()
        .filter(|f| f["severity"] == severity)
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The client ground truth recorded next to a capture: what the real
/// client saw (captures/NAME.client.jsonl).
pub fn client_log(name: &str) -> Vec<Value> {
    let p = root().join("captures").join(format!("{name}.client.jsonl"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Builds a pcap (Ethernet) of TCP connections, for tests that need traffic
/// no real capture has (secrets to redact, exact timings).
pub struct PcapBuilder {
    packets: Vec<(u64, Vec<u8>)>,
    t_us: u64,
}

/// One side of a TCP connection being written.
pub struct Tcp {
    pub src: ([u8; 4], u16),
    pub dst: ([u8; 4], u16),
    seq: u32,
    ack: u32,
}

impl Default for PcapBuilder {
    fn default() -> Self {
        PcapBuilder { packets: Vec::new(), t_us: 1_700_000_000_000_000 }
    }
}

impl PcapBuilder {
    pub fn advance_ms(&mut self, ms: u64) {
        self.t_us += ms * 1000;
    }

    fn push(&mut self, from: &mut Tcp, to: &Tcp, syn: bool, fin: bool, payload: &[u8]) {
        let mut tcp = etherparse::TcpHeader::new(from.src.1, from.dst.1, from.seq, 65535);
        tcp.syn = syn;
        tcp.fin = fin;
        tcp.ack = !syn || from.ack != 0;
        tcp.acknowledgment_number = to.seq;
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(from.src.0, from.dst.0, 64)
            .tcp_header(tcp);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        from.seq = from.seq.wrapping_add(payload.len() as u32 + syn as u32 + fin as u32);
        self.t_us += 100;
        self.packets.push((self.t_us, out));
    }

    /// Three-way handshake; returns (client side, server side).
    pub fn connect(&mut self, client: ([u8; 4], u16), server: ([u8; 4], u16)) -> (Tcp, Tcp) {
        let mut c = Tcp { src: client, dst: server, seq: 1000, ack: 0 };
        let mut s = Tcp { src: server, dst: client, seq: 5000, ack: 0 };
        self.push(&mut c, &s, true, false, b"");
        s.ack = 1;
        self.push(&mut s, &c, true, false, b"");
        c.ack = 1;
        let (cc, ss) = (Tcp { ..c }, Tcp { ..s });
        (cc, ss)
    }

    pub fn send(&mut self, from: &mut Tcp, to: &Tcp, payload: &[u8]) {
        self.push(from, to, false, false, payload);
    }

    pub fn fin(&mut self, from: &mut Tcp, to: &Tcp) {
        self.push(from, to, false, true, b"");
    }

    pub fn write(&self, path: &std::path::Path) {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        for (t, p) in &self.packets {
            f.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
            f.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
            f.extend_from_slice(&(p.len() as u32).to_le_bytes());
            f.extend_from_slice(&(p.len() as u32).to_le_bytes());
            f.extend_from_slice(p);
        }
        std::fs::write(path, f).unwrap();
    }
}

/// Gives an Ethernet + IPv4 frame (a template's packet) the address `a` as
/// both source and destination and fixes its IPv4 header checksum: how the
/// many-connection tests make each copy of a capture a connection of its
/// own. Other frames are left as they are.
pub fn readdress_v4(buf: &mut [u8], a: [u8; 4]) {
    if buf.len() <= 34 || buf[12] != 8 || buf[13] != 0 {
        return;
    }
    buf[26..30].copy_from_slice(&a);
    buf[30..34].copy_from_slice(&a);
    let ihl = (buf[14] & 0xf) as usize * 4;
    buf[24] = 0;
    buf[25] = 0;
    let mut sum: u32 = buf[14..14 + ihl].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    buf[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Gives copy `k` of a template's packet WebSocket keys of its own, as
/// examples/benchgen.rs does: every `Sec-WebSocket-Key` value is replaced
/// by one derived from it and `k`, every `Sec-WebSocket-Accept` by the
/// accept of the key it answers, in place (same lengths; TCP checksums are
/// not checked). Copies that run at the same time then pair as real
/// clients' do. `key_of_accept` maps each template accept to its key
/// ([`wskeys::key_of_accept`]).
pub fn rekey(buf: &mut [u8], k: u32, key_of_accept: &std::collections::HashMap<String, String>) {
    for (at, key) in wskeys::keys(buf) {
        buf[at..at + 24].copy_from_slice(wskeys::copy_key(&key, k as i64).as_bytes());
    }
    for (at, acc) in wskeys::accepts(buf) {
        if let Some(key) = key_of_accept.get(&acc) {
            buf[at..at + 28].copy_from_slice(wskeys::accept(&wskeys::copy_key(key, k as i64)).as_bytes());
        }
    }
}

/// JSON Lines output with the summary's `memory.peak_bytes` set to 0 (it
/// must be there and above 0): the one field that moves with the number of
/// workers (each reports its own peak, summed) and with how a run went.
pub fn peak_zeroed(stdout: &[u8]) -> String {
    let text = String::from_utf8(stdout.to_vec()).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last = lines.last_mut().expect("output");
    let mut s: Value = serde_json::from_str(last).expect("the summary");
    assert_eq!(s["type"], "summary");
    assert!(s["memory"]["peak_bytes"].as_u64().unwrap() > 0);
    s["memory"]["peak_bytes"] = 0.into();
    *last = s.to_string();
    lines.join("\n")
}

/// A directory of a test's own files under the system's temp dir, removed
/// when the test passes. When it fails the files stay, named on stderr, to
/// be read. Generated captures run to hundreds of MB: left behind, every run
/// of the suite would fill the disk a little more.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("wstap-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for reading: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
