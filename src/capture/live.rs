//! Live capture (issue #4): `wstap -i IFACE [EXPRESSION]`, where tcpdump
//! runs today, with the same engine as offline analysis.
//!
//! Two stages, so that a slow consumer never makes the kernel drop packets:
//!
//! ```text
//!  kernel ring --pcap_dispatch--> capture thread --bounded queue--> analysis + output
//!                                   |  -w file (before the queue)     (caller's thread:
//!                                   |  -c / --duration / stop           Pipeline::run)
//! ```
//!
//! The capture thread owns the libpcap handle (non-blocking, packets handed
//! over by the kernel within 10 ms, BPF filter in the kernel), writes each
//! packet to the `-w` file and then copies it into a batch for the queue,
//! so the file is complete even when analysis lags. When the queue is full (analysis or output too slow) it does not
//! wait: it counts the packet in `dropped_queue` and goes back to the ring.
//! Drops are thus counted where they happen: `dropped_kernel` (ring full),
//! `dropped_interface` (driver), `dropped_queue` (analysis behind).
//!
//! [`LiveCapture`] is the analysis side: a [`PacketSource`] that hands out
//! the queued packets, `Next::Idle(now)` when nothing arrived for a while
//! (so packet time advances on a quiet link and idle sessions can be
//! reported while still open), and `Next::End` once the capture thread has
//! finished (count, duration, signal, stop) and the queue is drained.

use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap::{Active, Capture, ConnectionStatus, Device, IfFlags, Inactive, Linktype};

use super::dump::{Dumper, Rotation};
use super::file::{filter_error, pcap_msg};
use super::privs::{self, Plan};
use super::{Next, PacketSource, RawPacket, signal};
use crate::decode::LinkType;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::record;
use crate::sink::Sink;
use crate::time::Ts;

/// tcpdump's default (and maximum) snap length.
pub const MAX_SNAPLEN: i32 = 262_144;
/// The kernel hands packets over at the latest this long after they
/// arrive (libpcap's read timeout, the TPACKET_V3 block timeout on Linux).
///
/// Not libpcap's immediate mode: on Linux that means TPACKET_V2, a ring of
/// fixed-size frames each as large as the biggest packet the interface can
/// deliver (64 KiB and more with segmentation offload, and on `lo`), and one
/// wakeup per packet. Measured on `lo` (docs/live.md): at 10k packets/s it
/// costs ten times the CPU, and at 100k packets/s the kernel drops packets
/// that the block ring (packets packed back to back, one wakeup per block)
/// takes without loss. 10 ms is not noticeable on output meant for people
/// and leaves packet time exact (timestamps are the kernel's).
const DELIVERY_MS: i32 = 10;
/// Kernel ring size without `-B`: 32 MiB, where libpcap (and tcpdump) use
/// 2 MiB: room for bursts while the capture thread is not scheduled (a busy
/// proxy host), about a second of traffic at 30 MB/s.
pub const DEFAULT_BUFFER_BYTES: i32 = 32 << 20;
/// How long the capture thread sleeps in poll(2) when the ring is empty:
/// bounds the reaction time to a stop request.
const POLL_MS: i32 = 100;
/// How long the analysis side waits for packets before an idle tick.
const IDLE_TICK: Duration = Duration::from_millis(200);
/// Capture statistics are read this often (and at the end).
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Memory the queue between capture and analysis may hold. On a busy proxy
/// this absorbs seconds of stalled output (a paused terminal, a full pipe).
pub const QUEUE_BYTES: usize = 64 << 20;
/// A batch is handed over at the latest this long after its first packet:
/// the analysis thread wakes at most ~100 times a second on a steady trickle
/// instead of once per batch of the kernel's, and output lags the wire by
/// at most this plus [`DELIVERY_MS`].
const HANDOFF: Duration = Duration::from_millis(10);
/// A batch is handed over when it holds this much...
const BATCH_PKTS: usize = 256;
const BATCH_BYTES: usize = 256 << 10;
/// ...and, while the queue is full, grows up to this before packets are
/// dropped.
const PENDING_MAX_PKTS: usize = 16_384;
const PENDING_MAX_BYTES: usize = 4 << 20;

// ------------------------------------------------------------------ config

/// A checked live capture request (config.rs builds it from `-i` and the
/// capture options).
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub iface: String,
    pub filter: Option<String>,
    pub snaplen: i32,
    pub count: Option<u64>,
    /// Kernel ring size in bytes (`-B`, else [`DEFAULT_BUFFER_BYTES`]).
    pub buffer_bytes: Option<i32>,
    pub duration: Option<Duration>,
    pub write: Option<Rotation>,
    /// Who parses the packets (`-Z`; privs.rs).
    pub plan: Plan,
    pub queue_bytes: usize,
    /// `--immediate-mode`: libpcap's immediate mode (one wakeup per packet).
    pub immediate: bool,
}

// ------------------------------------------------------------------ entry points

/// `-D`: the interfaces libpcap can open, numbered as tcpdump prints them.
pub fn list_interfaces() -> Result<i32> {
    use std::io::Write;
    let devs = Device::list().map_err(|e| Error::new(pcap_msg(&e)))?;
    let mut out = std::io::stdout().lock();
    for (i, d) in devs.iter().enumerate() {
        out.write_all(interface_line(i + 1, d).as_bytes())?;
    }
    out.flush()?;
    Ok(0)
}

/// `N.NAME (description) [flags]`, as `tcpdump -D` prints it.
fn interface_line(n: usize, d: &Device) -> String {
    let mut s = format!("{n}.{}", d.name);
    if let Some(desc) = &d.desc {
        s += &format!(" ({desc})");
    }
    let f = d.flags.if_flags;
    let status = &d.flags.connection_status;
    if f.is_empty() && *status == ConnectionStatus::Unknown {
        s.push('\n');
        return s;
    }
    let mut flags: Vec<&str> = [
        (IfFlags::UP, "Up"),
        (IfFlags::RUNNING, "Running"),
        (IfFlags::LOOPBACK, "Loopback"),
        (IfFlags::WIRELESS, "Wireless"),
    ]
    .into_iter()
    .filter(|(bit, _)| f.contains(*bit))
    .map(|(_, name)| name)
    .collect();
    if flags.is_empty() {
        flags.push("none");
    }
    let wireless = f.contains(IfFlags::WIRELESS);
    match (status, wireless) {
        (ConnectionStatus::Unknown, true) => flags.push("Association status unknown"),
        (ConnectionStatus::Connected, true) => flags.push("Associated"),
        (ConnectionStatus::Disconnected, true) => flags.push("Not associated"),
        (ConnectionStatus::Unknown, false) => flags.push("Connection status unknown"),
        (ConnectionStatus::Connected, false) => flags.push("Connected"),
        (ConnectionStatus::Disconnected, false) => flags.push("Disconnected"),
        (ConnectionStatus::NotApplicable, _) => {}
    }
    s += &format!(" [{}]\n", flags.join(", "));
    s
}

/// Opens the interface as `cfg` says and starts the capture thread. The
/// dashboard drives a pipeline from the result in its own thread.
pub fn open(cfg: &LiveConfig) -> Result<LiveCapture> {
    LiveCapture::start(cfg.clone())
}

/// `wstap -i IFACE`: capture, analyse and print until `-c`, `--duration`,
/// SIGINT or SIGTERM; then flush open sessions and the summary.
pub fn run(cfg: &LiveConfig, p: &mut Pipeline, sink: &mut dyn Sink) -> Result<()> {
    signal::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    let mut live = open(cfg)?;
    live.warn_on_drops = true;
    p.warn_on_evictions = true;
    if let Some(w) = &live.info.warning {
        eprintln!("wstap: warning: {w}");
    }
    eprintln!("wstap: {}", live.info.listening_line());
    let r = p.run(&mut live, sink);
    // Stops and joins the capture thread: the -w file is closed either way.
    live.stop();
    let err = live.finish();
    r?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(n) = live.warned_queue_drops() {
        eprintln!(
            "wstap: warning: {n} packets could not be analysed in time (dropped before analysis){}",
            live.info.file.as_deref().map(|f| format!("; {f} has them all")).unwrap_or_default()
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ opening

/// What was opened, for the "listening on" line and the dashboard.
#[derive(Debug, Clone)]
pub struct OpenInfo {
    pub iface: String,
    pub linktype: LinkType,
    pub snaplen: i32,
    /// The first `-w` file.
    pub file: Option<String>,
    /// libpcap warned while activating (e.g. promiscuous mode unsupported).
    pub warning: Option<String>,
}

impl OpenInfo {
    /// tcpdump's "listening on lo, link-type EN10MB (Ethernet), snapshot
    /// length 262144 bytes".
    pub fn listening_line(&self) -> String {
        let lt = Linktype(self.linktype.0);
        let name = lt.get_name().unwrap_or_else(|_| self.linktype.0.to_string());
        let desc = lt.get_description().map(|d| format!(" ({d})")).unwrap_or_default();
        let mut s =
            format!("listening on {}, link-type {name}{desc}, snapshot length {} bytes", self.iface, self.snaplen);
        if let Some(f) = &self.file {
            s += &format!(", writing {f}");
        }
        s
    }
}

unsafe extern "C" {
    fn pcap_activate(p: *mut libc::c_void) -> libc::c_int;
    fn pcap_statustostr(status: libc::c_int) -> *const libc::c_char;
    fn pcap_geterr(p: *mut libc::c_void) -> *mut libc::c_char;
}

const PCAP_ERROR: i32 = -1;
const PCAP_ERROR_NO_SUCH_DEVICE: i32 = -5;
const PCAP_ERROR_PERM_DENIED: i32 = -8;

/// `pcap_activate`, keeping its status code. (The crate's `open()` reduces
/// every failure and every warning to the error text, and a warning is not a
/// failure; the status tells "no such device" from "permission denied".)
fn activate(cap: Capture<Inactive>, iface: &str) -> Result<(Capture<Active>, Option<String>)> {
    let ptr = cap.as_ptr();
    // SAFETY: `ptr` is the live handle owned by `cap`; pcap_geterr returns a
    // NUL-terminated buffer inside it, read before `cap` is dropped.
    let (status, detail) = unsafe {
        let status = pcap_activate(ptr.cast());
        let e = pcap_geterr(ptr.cast());
        let detail = if e.is_null() { String::new() } else { std::ffi::CStr::from_ptr(e).to_string_lossy().into() };
        (status, detail)
    };
    if status < 0 {
        drop(cap);
        return Err(activate_error(iface, status, detail.trim()));
    }
    let warning = (status > 0).then(|| {
        let d = detail.trim();
        if d.is_empty() { format!("{iface}: {}", status_text(status)) } else { format!("{iface}: {d}") }
    });
    let handle = NonNull::new(ptr).ok_or_else(|| device(iface, "no capture handle".into()))?;
    // The same pcap_t, now activated, changes owner: `cap` must not close it.
    std::mem::forget(cap);
    Ok((Capture::<Active>::from(handle), warning))
}

fn status_text(status: i32) -> String {
    // SAFETY: pcap_statustostr returns a static (or thread-local) string.
    unsafe {
        let s = pcap_statustostr(status);
        if s.is_null() { format!("error {status}") } else { std::ffi::CStr::from_ptr(s).to_string_lossy().into() }
    }
}

/// One line per failure, as tcpdump words them, with the way out.
pub fn activate_error(iface: &str, status: i32, detail: &str) -> Error {
    match status {
        PCAP_ERROR_NO_SUCH_DEVICE => device(iface, "No such device exists (wstap -D lists the interfaces)".into()),
        PCAP_ERROR_PERM_DENIED => device(
            iface,
            format!(
                "You don't have permission to capture on that device (run as root, or grant the capability: sudo setcap cap_net_raw,cap_net_admin=eip {})",
                exe_for_message()
            ),
        ),
        PCAP_ERROR if !detail.is_empty() => device(iface, detail.to_string()),
        _ if detail.is_empty() => device(iface, status_text(status)),
        _ => device(iface, format!("{} ({detail})", status_text(status))),
    }
}

/// A live capture device that cannot be opened or read.
fn device(iface: &str, reason: String) -> Error {
    Error::Device { iface: iface.to_string(), reason }
}

fn exe_for_message() -> String {
    match std::env::current_exe() {
        Ok(p) if !p.to_string_lossy().contains(char::is_whitespace) => p.to_string_lossy().into_owned(),
        _ => "$(command -v wstap)".to_string(),
    }
}

/// Opens the device and sets the filters (what needs the privilege), drops
/// every privilege (privs.rs), then opens the `-w` file as the user that
/// parses the packets, as tcpdump does.
fn open_device(cfg: &LiveConfig) -> Result<(Capture<Active>, Option<Dumper>, OpenInfo)> {
    let iface = cfg.iface.as_str();
    let mut inactive = Capture::from_device(iface)
        .map_err(|e| device(iface, pcap_msg(&e)))?
        .snaplen(cfg.snaplen)
        .promisc(false)
        .immediate_mode(cfg.immediate)
        .timeout(DELIVERY_MS);
    if let Some(b) = cfg.buffer_bytes {
        inactive = inactive.buffer_size(b);
    }
    let (mut cap, warning) = activate(inactive, iface)?;
    if iface == "any" {
        // As tcpdump: SLL2 carries the interface index. Quietly keep the
        // default where it is not offered.
        let _ = cap.set_datalink(Linktype(LinkType::LINUX_SLL2.0));
    }
    let linktype = LinkType(cap.get_datalink().0);
    if !linktype.is_supported() {
        return Err(device(
            iface,
            format!(
                "link type {} ({}) is not supported",
                linktype.0,
                cap.get_datalink().get_name().unwrap_or_else(|_| "unknown".into())
            ),
        ));
    }
    if let Some(f) = &cfg.filter {
        cap.filter(f, true).map_err(|e| filter_error(f, &e))?;
    }
    if let Some((expr, cooked)) = dedup_filter(iface, linktype, cfg.filter.as_deref()) {
        // Best effort: without it, the kernel copies both and libpcap
        // drops the outgoing copy, as tcpdump has it.
        let _ = attach_dedup_filter(&cap, &expr, cooked);
    }
    let cap = cap.setnonblock().map_err(|e| device(iface, pcap_msg(&e)))?;
    // The socket is open and filtered: nothing needs a privilege any more.
    privs::apply(&cfg.plan)?;
    let dumper = match &cfg.write {
        Some(rot) => Some(Dumper::open(rot.clone(), linktype.0 as u32, cfg.snaplen as u32, wall_secs())?),
        None => None,
    };
    let info = OpenInfo {
        iface: iface.to_string(),
        linktype,
        snaplen: cfg.snaplen,
        file: dumper.as_ref().map(|d| d.current().to_string()),
        warning,
    };
    Ok((cap, dumper, info))
}

/// On a loopback interface a packet socket sees every packet twice, going
/// out and coming in; libpcap throws the outgoing copy away in user space,
/// after the kernel has copied it into the ring. A filter on the packet
/// type, which the kernel evaluates itself, keeps that copy out of the
/// ring: half the copies and half the ring space on `lo` (and for the
/// loopback part of `-i any`, where proxies often reach their upstream), so
/// fewer kernel drops under load, and `received` counts each packet once.
///
/// Returns the expression for the kernel and whether its program reads a
/// cooked header (LINUX_SLL2) that must be rewritten as libpcap does.
fn dedup_filter(iface: &str, linktype: LinkType, user: Option<&str>) -> Option<(String, bool)> {
    let and_user = |base: String| match user {
        Some(f) => format!("{base} and ({f})"),
        None => base,
    };
    if linktype == LinkType::ETHERNET && is_loopback(iface) {
        return Some((and_user("not outbound".into()), false));
    }
    if iface == "any" && linktype == LinkType::LINUX_SLL2 {
        // SAFETY: if_nametoindex on a NUL-terminated name.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        if lo != 0 {
            return Some((and_user(format!("not (outbound and ifindex {lo})")), true));
        }
    }
    None
}

// The kernel's sock_filter and libpcap's bpf_insn are the same 8 bytes.
const _: () = assert!(std::mem::size_of::<pcap::BpfInstruction>() == std::mem::size_of::<libc::sock_filter>());
const _: () = assert!(std::mem::align_of::<pcap::BpfInstruction>() == std::mem::align_of::<libc::sock_filter>());

const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MSH: u16 = 0xa0;
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PROTOCOL: u32 = 0;
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_IFINDEX: u32 = 8;
const SLL2_HDR_LEN: u32 = 20;

/// libpcap's `fix_program`/`fix_offset` for LINUX_SLL2: in the kernel the
/// packet starts after the cooked header, and the header's protocol,
/// interface index and packet type are ancillary loads. None when the
/// program reads another header field (libpcap then filters in user space).
fn cooked_to_kernel(prog: &mut [libc::sock_filter]) -> Option<()> {
    for p in prog {
        let class = p.code & 0x07;
        let mode = p.code & 0xe0;
        if !(class == BPF_LD || class == BPF_LDX) || !matches!(mode, BPF_ABS | BPF_IND | BPF_MSH) {
            continue;
        }
        if p.k >= SKF_AD_OFF {
            continue;
        }
        p.k = match p.k {
            k if k >= SLL2_HDR_LEN => k - SLL2_HDR_LEN,
            0 => SKF_AD_OFF + SKF_AD_PROTOCOL,
            4 => SKF_AD_OFF + SKF_AD_IFINDEX,
            10 => SKF_AD_OFF + SKF_AD_PKTTYPE,
            _ => return None,
        };
    }
    Some(())
}

fn program_of(prog: &pcap::BpfProgram) -> Vec<libc::sock_filter> {
    let insns = prog.get_instructions();
    // SAFETY: same size and alignment (asserted above), both plain
    // `{ u16 code; u8 jt; u8 jf; u32 k }`; the slice is read, not kept.
    unsafe { std::slice::from_raw_parts(insns.as_ptr().cast::<libc::sock_filter>(), insns.len()) }.to_vec()
}

/// Attaches [`dedup_filter`]'s program to the socket directly. Not through
/// `pcap_setfilter`: after a filter change libpcap re-runs the filter in
/// user space on the next frames, and its user-space interpreter cannot read
/// the packet type, so the first packets of the capture would be lost.
/// libpcap keeps the user's own filter for those frames, which passes what
/// it should (and drops outgoing loopback copies itself).
fn attach_dedup_filter(cap: &Capture<Active>, expr: &str, cooked: bool) -> std::io::Result<()> {
    let prog = cap.compile(expr, true).map_err(|e| std::io::Error::other(pcap_msg(&e)))?;
    let mut insns = program_of(&prog);
    if cooked && cooked_to_kernel(&mut insns).is_none() {
        return Err(std::io::Error::other("the filter reads cooked header fields the kernel does not have"));
    }
    let fprog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_mut_ptr() };
    // SAFETY: `fprog` points at `insns`, alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::setsockopt(
            cap.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn is_loopback(iface: &str) -> bool {
    if iface == "any" {
        return false;
    }
    match Device::list() {
        Ok(devs) => devs.iter().any(|d| d.name == iface && d.flags.if_flags.contains(IfFlags::LOOPBACK)),
        Err(_) => iface == "lo",
    }
}

// ------------------------------------------------------------------ shared state

/// Why the capture thread stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Count,
    Duration,
    Signal,
    /// [`LiveCapture::stop`] (or the analysis side went away).
    Stopped,
    /// `-G` with `-W`: the file limit was reached.
    FileLimit,
    Error,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    captured: AtomicU64,
    received: AtomicU64,
    dropped_kernel: AtomicU64,
    dropped_interface: AtomicU64,
    dropped_queue: AtomicU64,
    /// Bytes handed to the queue and not yet released by the analysis side.
    queued_bytes: AtomicUsize,
    error: Mutex<Option<Error>>,
    end: Mutex<Option<EndReason>>,
}

/// A handle to stop a capture from elsewhere (the dashboard's quit key).
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

impl Stopper {
    /// Asks the capture thread to stop; what it captured is still delivered,
    /// then `Next::End`.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

// ------------------------------------------------------------------ batches

#[derive(Debug, Clone, Copy)]
struct Meta {
    ts: Ts,
    start: u32,
    len: u32,
    orig_len: u32,
}

/// Packets copied out of the kernel ring, one allocation for many.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    pkts: Vec<Meta>,
    /// What this batch counts for in `queued_bytes`.
    accounted: usize,
}

impl Batch {
    fn with_capacity() -> Batch {
        Batch { data: Vec::with_capacity(BATCH_BYTES), pkts: Vec::with_capacity(BATCH_PKTS), accounted: 0 }
    }
    fn bytes(&self) -> usize {
        self.data.len() + self.pkts.len() * std::mem::size_of::<Meta>()
    }
    fn clear(&mut self) {
        self.data.clear();
        self.pkts.clear();
        self.accounted = 0;
    }
}

/// The capture thread's end of the queue.
struct Feeder {
    tx: SyncSender<Batch>,
    /// Emptied batches coming back, to reuse their buffers.
    recycled: Receiver<Batch>,
    pending: Batch,
    /// When the first packet of `pending` arrived.
    since: Option<Instant>,
    spare: Option<Batch>,
    shared: Arc<Shared>,
    budget: usize,
    /// The analysis side is gone.
    closed: bool,
}

impl Feeder {
    fn new(tx: SyncSender<Batch>, recycled: Receiver<Batch>, shared: Arc<Shared>, budget: usize) -> Feeder {
        Feeder {
            tx,
            recycled,
            pending: Batch::with_capacity(),
            since: None,
            spare: None,
            shared,
            budget,
            closed: false,
        }
    }

    /// Queues one packet without ever blocking: when the queue is full and
    /// the pending batch is at its cap, the packet is counted as dropped.
    fn push(&mut self, ts: Ts, data: &[u8], orig_len: u32) {
        let p = &self.pending;
        if (p.pkts.len() >= PENDING_MAX_PKTS || p.data.len() + data.len() > PENDING_MAX_BYTES) && !self.hand_over() {
            self.shared.dropped_queue.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.pending.pkts.is_empty() {
            self.since = Some(Instant::now());
        }
        let start = self.pending.data.len() as u32;
        self.pending.data.extend_from_slice(data);
        self.pending.pkts.push(Meta { ts, start, len: data.len() as u32, orig_len });
        if self.pending.pkts.len() >= BATCH_PKTS || self.pending.data.len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    /// How long the pending batch may still wait (zero: hand it over now;
    /// None: nothing pending).
    fn due_in(&self, now: Instant) -> Option<Duration> {
        self.since.map(|t| HANDOFF.saturating_sub(now.duration_since(t)))
    }

    /// Hands the pending batch over if it has waited long enough.
    fn hand_over_if_due(&mut self, now: Instant) {
        if self.due_in(now).is_some_and(|d| d.is_zero()) {
            self.hand_over();
        }
    }

    /// Tries to queue the pending batch; false when the queue is full (or
    /// gone), the batch then stays pending.
    fn hand_over(&mut self) -> bool {
        if self.pending.pkts.is_empty() {
            return true;
        }
        if self.closed {
            return false;
        }
        let bytes = self.pending.bytes();
        let q = &self.shared.queued_bytes;
        // An empty queue always takes the batch, however large it grew.
        let queued = q.load(Ordering::Acquire);
        if queued > 0 && queued + bytes > self.budget {
            return false;
        }
        let fresh = self.spare.take().or_else(|| self.recycled.try_recv().ok()).unwrap_or_else(Batch::with_capacity);
        let mut b = std::mem::replace(&mut self.pending, fresh);
        b.accounted = bytes;
        q.fetch_add(bytes, Ordering::AcqRel);
        match self.tx.try_send(b) {
            Ok(()) => {
                self.since = None;
                true
            }
            Err(e) => {
                let b = match e {
                    TrySendError::Full(b) => b,
                    TrySendError::Disconnected(b) => {
                        self.closed = true;
                        b
                    }
                };
                q.fetch_sub(bytes, Ordering::AcqRel);
                self.spare = Some(std::mem::replace(&mut self.pending, b));
                false
            }
        }
    }

    /// End of capture: the last batch may wait for room (nothing more can be
    /// lost from the kernel now), unless the analysis side is gone.
    fn finish(&mut self) {
        if self.pending.pkts.is_empty() || self.closed {
            return;
        }
        let mut b = std::mem::take(&mut self.pending);
        b.accounted = b.bytes();
        self.shared.queued_bytes.fetch_add(b.accounted, Ordering::AcqRel);
        if self.tx.send(b).is_err() {
            self.closed = true;
        }
    }
}

// ------------------------------------------------------------------ capture thread

/// pcap_stats counters are 32 bits and wrap on a long capture: accumulate
/// the deltas into 64 bits.
#[derive(Default)]
struct StatsAcc {
    last: (u32, u32, u32),
    total: (u64, u64, u64),
}

impl StatsAcc {
    fn update(&mut self, s: (u32, u32, u32)) -> (u64, u64, u64) {
        self.total.0 += s.0.wrapping_sub(self.last.0) as u64;
        self.total.1 += s.1.wrapping_sub(self.last.1) as u64;
        self.total.2 += s.2.wrapping_sub(self.last.2) as u64;
        self.last = s;
        self.total
    }
}

struct Worker {
    cap: Capture<Active>,
    dumper: Option<Dumper>,
    feeder: Feeder,
    shared: Arc<Shared>,
    count: Option<u64>,
    deadline: Option<Instant>,
    stats: StatsAcc,
    iface: String,
}

impl Worker {
    fn run(mut self) {
        let end = self.capture_loop();
        // The file first: complete on disk even if the analysis side is
        // stuck and the last batch has to wait for it.
        if let Some(mut d) = self.dumper.take()
            && let Err(e) = d.close()
        {
            self.fail(e);
        }
        self.feeder.finish();
        self.publish_stats();
        let end = if self.shared.error.lock().map(|e| e.is_some()).unwrap_or(false) { EndReason::Error } else { end };
        if let Ok(mut slot) = self.shared.end.lock() {
            *slot = Some(end);
        }
        // Dropping the feeder closes the queue: the analysis side sees End
        // once it has taken what is queued.
    }

    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.shared.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn publish_stats(&mut self) {
        if let Ok(s) = self.cap.stats() {
            let (recv, drop, ifdrop) = self.stats.update((s.received, s.dropped, s.if_dropped));
            self.shared.received.store(recv, Ordering::Relaxed);
            self.shared.dropped_kernel.store(drop, Ordering::Relaxed);
            self.shared.dropped_interface.store(ifdrop, Ordering::Relaxed);
        }
    }

    fn capture_loop(&mut self) -> EndReason {
        let fd = self.cap.as_raw_fd();
        let mut captured: u64 = 0;
        let mut last_stats = Instant::now();
        loop {
            let now = Instant::now();
            if self.count.is_some_and(|c| captured >= c) {
                return EndReason::Count;
            }
            let stop = if self.shared.stop.load(Ordering::Relaxed) || self.feeder.closed {
                Some(EndReason::Stopped)
            } else if signal::requested() {
                Some(EndReason::Signal)
            } else if self.deadline.is_some_and(|d| now >= d) {
                Some(EndReason::Duration)
            } else {
                None
            };
            if let Some(end) = stop {
                self.drain(&mut captured);
                return end;
            }
            if now.duration_since(last_stats) >= STATS_EVERY {
                self.publish_stats();
                last_stats = now;
            }
            match self.dispatch_once(&mut captured) {
                Err(end) => return end,
                Ok(n) => {
                    let now = Instant::now();
                    self.feeder.hand_over_if_due(now);
                    if n == 0 {
                        // The ring is empty: a good moment to push the file
                        // out, then sleep until packets, the hand-over or
                        // the poll timeout.
                        if let Some(d) = &mut self.dumper
                            && let Err(e) = d.flush()
                        {
                            self.fail(e);
                            return EndReason::Error;
                        }
                        let mut timeout = Duration::from_millis(POLL_MS as u64);
                        if let Some(d) = self.deadline {
                            timeout = timeout.min(d.saturating_duration_since(now));
                        }
                        if let Some(d) = self.feeder.due_in(now) {
                            timeout = timeout.min(d);
                        }
                        poll_in(fd, timeout.as_millis().max(1) as i32);
                    }
                }
            }
        }
    }

    /// On a stop, what the kernel already holds is still taken: a few
    /// passes over the ring, bounded in case traffic keeps coming.
    fn drain(&mut self, captured: &mut u64) {
        for _ in 0..16 {
            if self.feeder.closed || self.count.is_some_and(|c| *captured >= c) {
                break;
            }
            match self.dispatch_once(captured) {
                Ok(0) | Err(_) => break,
                Ok(_) => self.feeder.hand_over(),
            };
        }
    }

    /// One `pcap_dispatch`: every packet the ring holds (up to `-c`) is
    /// written to the `-w` file and queued. `Ok(n)`: packets taken;
    /// `Err(end)`: the capture must end.
    fn dispatch_once(&mut self, captured: &mut u64) -> std::result::Result<usize, EndReason> {
        let want = self.count.map(|c| (c - *captured).min(i32::MAX as u64) as usize);
        let wall = wall_secs();
        let mut failed: Option<Error> = None;
        let mut file_limit = false;
        let mut n_taken: u64 = 0;
        let (dumper, feeder) = (&mut self.dumper, &mut self.feeder);
        let r = self.cap.dispatch(want, |pkt| {
            if failed.is_some() || file_limit {
                return;
            }
            let h = pkt.header;
            if let Some(d) = dumper.as_mut() {
                match d.write(wall, timeval(&h.ts), pkt.data, h.len) {
                    Ok(true) => {}
                    Ok(false) => {
                        file_limit = true;
                        return;
                    }
                    Err(e) => {
                        failed = Some(e);
                        return;
                    }
                }
            }
            n_taken += 1;
            let (sec, usec) = timeval(&h.ts);
            feeder.push(Ts::from_timeval(sec, usec), pkt.data, h.len);
        });
        *captured += n_taken;
        self.shared.captured.store(*captured, Ordering::Relaxed);
        if let Some(e) = failed {
            self.fail(e);
            return Err(EndReason::Error);
        }
        if file_limit {
            return Err(EndReason::FileLimit);
        }
        match r {
            Ok(n) => Ok(n),
            Err(e) => {
                self.fail(device(&self.iface, pcap_msg(&e)));
                Err(EndReason::Error)
            }
        }
    }
}

/// Waits until `fd` is readable or `ms` pass (EINTR from a signal just
/// returns early, which is what a stop wants).
fn poll_in(fd: i32, ms: i32) {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// (seconds, microseconds): `time_t` and `suseconds_t` are not 64 bits on
/// every target.
#[allow(clippy::unnecessary_cast)]
fn timeval(tv: &libc::timeval) -> (i64, i64) {
    (tv.tv_sec as i64, tv.tv_usec as i64)
}

fn wall_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn wall_now() -> Ts {
    Ts(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0))
}

// ------------------------------------------------------------------ analysis side

/// A running live capture, as a [`PacketSource`]. Dropping it stops the
/// capture thread and closes the `-w` file.
pub struct LiveCapture {
    pub info: OpenInfo,
    rx: Option<Receiver<Batch>>,
    recycle: SyncSender<Batch>,
    cur: Batch,
    idx: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Print a line on stderr when packets start being dropped (the CLI;
    /// the dashboard shows the counters instead).
    pub warn_on_drops: bool,
    warned: (u64, Option<Instant>),
}

impl LiveCapture {
    /// Opens the device and starts the capture thread.
    pub fn start(cfg: LiveConfig) -> Result<LiveCapture> {
        let (cap, dumper, info) = open_device(&cfg)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::sync_channel(4096);
        let (recycle, recycled) = mpsc::sync_channel(64);
        let feeder = Feeder::new(tx, recycled, shared.clone(), cfg.queue_bytes);
        let worker = Worker {
            cap,
            dumper,
            feeder,
            shared: shared.clone(),
            count: cfg.count,
            deadline: cfg.duration.map(|d| Instant::now() + d),
            stats: StatsAcc::default(),
            iface: cfg.iface.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("wstap-capture".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::new(format!("cannot start the capture thread: {e}")))?;
        Ok(LiveCapture {
            info,
            rx: Some(rx),
            recycle,
            cur: Batch::default(),
            idx: 0,
            shared,
            thread: Some(thread),
            warn_on_drops: false,
            warned: (0, None),
        })
    }

    /// A handle that stops the capture from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// Asks the capture thread to stop (what it captured is still delivered).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Packets taken from the kernel so far.
    pub fn captured(&self) -> u64 {
        self.shared.captured.load(Ordering::Relaxed)
    }

    /// Why the capture ended (None while it runs).
    pub fn end_reason(&self) -> Option<EndReason> {
        self.shared.end.lock().ok().and_then(|e| *e)
    }

    /// Waits for the capture thread (after a stop) and returns its error, if
    /// the capture ended on one (interface gone, `-w` write failed).
    pub fn finish(&mut self) -> Option<Error> {
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.error.lock().ok().and_then(|mut e| e.take())
    }

    /// The queue drop count if drops happened (for the final warning).
    fn warned_queue_drops(&self) -> Option<u64> {
        let n = self.shared.dropped_queue.load(Ordering::Relaxed);
        (n > 0 && self.warn_on_drops).then_some(n)
    }

    /// Hands the current batch back to the capture thread for reuse.
    fn release(&mut self) {
        if self.cur.accounted > 0 {
            self.shared.queued_bytes.fetch_sub(self.cur.accounted, Ordering::AcqRel);
        }
        let mut b = std::mem::take(&mut self.cur);
        if b.data.capacity() > 0 {
            b.clear();
            let _ = self.recycle.try_send(b);
        }
        self.idx = 0;
    }

    /// While the CLI runs: one stderr line, at most every 10 s, when packets
    /// are being dropped anywhere.
    fn maybe_warn(&mut self) {
        let q = self.shared.dropped_queue.load(Ordering::Relaxed);
        let k = self.shared.dropped_kernel.load(Ordering::Relaxed);
        let total = q + k;
        if total <= self.warned.0 || self.warned.1.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return;
        }
        self.warned = (total, Some(Instant::now()));
        eprintln!(
            "wstap: warning: packets dropped so far: {k} by the kernel, {q} before analysis (analysis or output too slow)"
        );
    }
}

// The dashboard drives a pipeline from a LiveCapture in its own thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<LiveCapture>();
};

impl PacketSource for LiveCapture {
    fn linktype(&self) -> LinkType {
        self.info.linktype
    }

    fn next_packet(&mut self) -> Result<Next<'_>> {
        while self.idx >= self.cur.pkts.len() {
            self.release();
            let Some(rx) = &self.rx else { return Ok(Next::End) };
            match rx.recv_timeout(IDLE_TICK) {
                Ok(b) => {
                    self.cur = b;
                    if self.warn_on_drops {
                        self.maybe_warn();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.warn_on_drops {
                        self.maybe_warn();
                    }
                    return Ok(Next::Idle(wall_now()));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The capture thread is done and everything queued was
                    // taken: wait for it so the final statistics are there.
                    self.rx = None;
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                    return Ok(Next::End);
                }
            }
        }
        let m = self.cur.pkts[self.idx];
        self.idx += 1;
        let (s, e) = (m.start as usize, m.start as usize + m.len as usize);
        Ok(Next::Packet(RawPacket { ts: m.ts, data: &self.cur.data[s..e], orig_len: m.orig_len }))
    }

    fn stats(&mut self) -> Option<record::Capture> {
        let s = &self.shared;
        Some(record::Capture {
            received: Some(s.received.load(Ordering::Relaxed)),
            dropped_kernel: Some(s.dropped_kernel.load(Ordering::Relaxed)),
            dropped_interface: Some(s.dropped_interface.load(Ordering::Relaxed)),
            dropped_queue: Some(s.dropped_queue.load(Ordering::Relaxed)),
        })
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop();
        // Closing the queue first: a capture thread waiting to hand over its
        // last batch gives up instead of waiting for us.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feeder(budget: usize, slots: usize) -> (Feeder, Receiver<Batch>, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::sync_channel(slots);
        let (_recycle, recycled) = mpsc::sync_channel(4);
        let f = Feeder::new(tx, recycled, shared.clone(), budget);
        (f, rx, shared)
    }

    #[test]
    fn full_queue_counts_drops_instead_of_blocking() {
        let (mut f, rx, shared) = feeder(usize::MAX, 1);
        let pkt = [0u8; 1000];
        // One batch fills the single slot; the pending batch then grows to
        // its cap; everything after that is counted, never waited for.
        let n = 1 + BATCH_PKTS + PENDING_MAX_PKTS + 500;
        for i in 0..n {
            f.push(Ts(i as i64), &pkt, 1000);
        }
        let dropped = shared.dropped_queue.load(Ordering::Relaxed) as usize;
        assert!(dropped > 0);
        let queued: usize = rx.try_iter().map(|b| b.pkts.len()).sum();
        assert_eq!(queued + f.pending.pkts.len() + dropped, n, "every packet is queued, pending or counted");
    }

    #[test]
    fn byte_budget_bounds_the_queue_and_frees_as_analysis_takes() {
        let (mut f, rx, shared) = feeder(3 * BATCH_BYTES, 1024);
        let pkt = vec![7u8; BATCH_BYTES / 4];
        for i in 0..64 {
            f.push(Ts(i), &pkt, pkt.len() as u32);
        }
        let q = shared.queued_bytes.load(Ordering::Relaxed);
        assert!(q <= 3 * BATCH_BYTES, "{q}");
        assert_eq!(shared.dropped_queue.load(Ordering::Relaxed), 0, "the pending batch absorbs the rest");
        assert!(!f.pending.pkts.is_empty());
        // The analysis side takes everything and releases the bytes: the
        // pending batch (larger than the budget by now) goes through.
        let mut got: Vec<Batch> = rx.try_iter().collect();
        for b in &got {
            shared.queued_bytes.fetch_sub(b.accounted, Ordering::AcqRel);
        }
        assert!(f.hand_over());
        assert!(f.pending.pkts.is_empty());
        got.extend(rx.try_iter());
        let ts: Vec<i64> = got.iter().flat_map(|b| b.pkts.iter().map(|m| m.ts.0)).collect();
        assert_eq!(ts, (0..64).collect::<Vec<_>>(), "nothing lost, order kept");
    }

    #[test]
    fn closed_queue_is_noticed() {
        let (mut f, rx, _shared) = feeder(usize::MAX, 1);
        drop(rx);
        for i in 0..(BATCH_PKTS * 2) {
            f.push(Ts(i as i64), b"x", 1);
        }
        assert!(f.closed);
    }

    #[test]
    fn pcap_counters_wrap_into_64_bits() {
        let mut s = StatsAcc::default();
        assert_eq!(s.update((u32::MAX - 1, 0, 0)).0, (u32::MAX - 1) as u64);
        assert_eq!(s.update((3, 1, 0)), (u32::MAX as u64 + 4, 1, 0));
    }

    #[test]
    fn errors_are_one_line_with_the_way_out() {
        let e = activate_error("eth9", PCAP_ERROR_NO_SUCH_DEVICE, "SIOCGIFHWADDR: No such device");
        assert_eq!(e.to_string(), "eth9: No such device exists (wstap -D lists the interfaces)");
        let e = activate_error("lo", PCAP_ERROR_PERM_DENIED, "socket: Operation not permitted").to_string();
        assert!(e.starts_with("lo: You don't have permission to capture on that device (run as root, or grant"));
        assert!(e.contains("setcap cap_net_raw,cap_net_admin=eip "));
        assert!(!e.contains('\n'));
        assert_eq!(activate_error("x", PCAP_ERROR, "boom").to_string(), "x: boom");
    }

    #[test]
    fn loopback_keeps_outgoing_copies_out_of_the_kernel_ring() {
        let (f, cooked) = dedup_filter("lo", LinkType::ETHERNET, Some("tcp port 80 or tcp port 81")).unwrap();
        assert_eq!((f.as_str(), cooked), ("not outbound and (tcp port 80 or tcp port 81)", false));
        assert_eq!(dedup_filter("lo", LinkType::ETHERNET, None).unwrap().0, "not outbound");
        let (f, cooked) = dedup_filter("any", LinkType::LINUX_SLL2, Some("tcp")).unwrap();
        assert!(f.starts_with("not (outbound and ifindex ") && f.ends_with(") and (tcp)") && cooked, "{f}");
        assert_eq!(dedup_filter("any", LinkType::LINUX_SLL, None), None, "SLL has no ifindex");
    }

    /// The rewrite libpcap does for cooked captures, on programs libpcap
    /// compiled: header fields become ancillary loads, payload offsets lose
    /// the 20-byte header.
    #[test]
    fn cooked_programs_are_rewritten_for_the_kernel() {
        let dead = pcap::Capture::dead(pcap::Linktype(276)).unwrap();
        let mut p = program_of(&dead.compile("not (outbound and ifindex 1)", true).unwrap());
        // ldb [10] (packet type); ld [4] (ifindex)
        assert_eq!((p[0].code, p[0].k), (0x30, 10));
        assert_eq!((p[2].code, p[2].k), (0x20, 4));
        cooked_to_kernel(&mut p).unwrap();
        assert_eq!(p[0].k, SKF_AD_OFF + SKF_AD_PKTTYPE);
        assert_eq!(p[2].k, SKF_AD_OFF + SKF_AD_IFINDEX);
        let mut p = program_of(&dead.compile("tcp port 80", true).unwrap());
        assert_eq!((p[0].code, p[0].k), (0x28, 0), "ldh [0]: protocol");
        let before: Vec<u32> = p.iter().map(|i| i.k).collect();
        cooked_to_kernel(&mut p).unwrap();
        assert_eq!(p[0].k, SKF_AD_OFF + SKF_AD_PROTOCOL);
        // IPv4 protocol byte: [20 + 9] in SLL2, [9] in the kernel.
        assert!(before.contains(&29) && p.iter().any(|i| i.code == 0x30 && i.k == 9));
        // A load of another header field cannot be done in the kernel.
        let mut odd = vec![libc::sock_filter { code: 0x30, jt: 0, jf: 0, k: 12 }];
        assert!(cooked_to_kernel(&mut odd).is_none());
    }
}
