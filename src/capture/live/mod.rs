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

//!
//! One file per part: [`device`] opens the interface through libpcap (and
//! `-D` lists them), [`bpf`] keeps loopback duplicates out of the kernel
//! ring, [`queue`] is the bounded hand-over between the two threads,
//! [`worker`] is the capture thread, [`source`] the analysis side.

mod bpf;
mod device;
mod merge;
mod queue;
mod source;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use device::{OpenInfo, activate_error, list_interfaces, list_linktypes};
pub use source::LiveCapture;

use super::dump::Rotation;
use super::privs::Plan;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::sink::Sink;

/// tcpdump's default (and maximum) snap length.
pub const MAX_SNAPLEN: i32 = 262_144;
/// Kernel ring size without `-B`: 32 MiB, where libpcap (and tcpdump) use
/// 2 MiB: room for bursts while the capture thread is not scheduled (a busy
/// proxy host), about a second of traffic at 30 MB/s.
pub const DEFAULT_BUFFER_BYTES: i32 = 32 << 20;
/// `--fanout` at most.
pub const MAX_RINGS: usize = 16;
/// Memory the queue between capture and analysis may hold. On a busy proxy
/// this absorbs seconds of stalled output (a paused terminal, a full pipe).
pub const QUEUE_BYTES: usize = 64 << 20;

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
    /// `-Q`: only packets received (`In`) or sent (`Out`) by the host.
    pub direction: Option<crate::cli::Direction>,
    /// `-y`: the link-layer type to capture with (a libpcap name).
    pub linktype: Option<String>,
    /// `--fanout N`: kernel rings, one capture thread each (1: one ring).
    pub rings: usize,
}

/// Opens the interface as `cfg` says and starts the capture thread. The
/// dashboard drives a pipeline from the result in its own thread.
pub fn open(cfg: &LiveConfig) -> Result<LiveCapture> {
    LiveCapture::start(cfg.clone())
}

/// `wstap -i IFACE`: capture, analyse and print until `-c`, `--duration`,
/// SIGINT or SIGTERM; then flush open sessions and the summary.
pub fn run(cfg: &LiveConfig, p: &mut Pipeline, sink: &mut dyn Sink) -> Result<()> {
    crate::signal::install_stop().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
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

/// What the capture thread and the analysis side share: the stop request,
/// the counters, the error the capture ended on and why it ended.
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
    /// `--fanout`: packets taken from each ring (published with the kernel
    /// counters).
    rings: Mutex<Vec<u64>>,
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
