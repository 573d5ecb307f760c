//! The analysis worker: the only owner of the `Pipeline` and the packet
//! source while the dashboard runs. It reads packets (at full speed, paced
//! by `--replay`, or as a live capture delivers them), drains the records
//! the pipeline produces, and every ~200 ms of wall time sends one
//! [`Update`]: the new records plus a [`Snapshot`] of counters and open
//! sessions. It never sends per packet, so the dashboard's work does not
//! grow with the packet rate.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::live::LiveConfig;
use crate::capture::{Input, Next, PacketSource};
use crate::error::{Error, Result};
use crate::facts::SessionRow;
use crate::pipeline::Pipeline;
use crate::record::{Capture, Record, Summary};
use crate::sink::Sink;
use crate::sink::dashboard::DashboardSink;
use crate::time::Ts;

/// Everything the main (drawing) thread receives, on one channel.
#[derive(Debug)]
pub enum UiMsg {
    /// New records and the state of the engine.
    Update(Box<Update>),
    /// The source ended: `Ok(Some(msg))` when a capture file was cut
    /// inside a packet, `Err` when reading failed.
    Done(std::result::Result<Option<String>, String>),
    /// A terminal event (key, resize), from the input thread.
    Input(crossterm::event::Event),
    /// The terminal can no longer be read.
    InputError(String),
}

/// The engine's state at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub summary: Summary,
    /// Open WebSocket sessions, in id order.
    pub sessions: Vec<SessionRow>,
    /// The idle timeout sessions are expected to hit, seconds.
    pub idle_boundary: Option<f64>,
    /// The same boundary as findings name it, and where it comes from.
    pub expected_boundary: Option<(f64, crate::detect::boundary::Source)>,
    /// Frame relay delays (ms) measured since the previous snapshot.
    pub relay_ms: Vec<f64>,
    pub capture: Option<Capture>,
    /// Packet-time "now", seconds: the last packet, the live clock, or
    /// the replay clock between packets.
    pub clock: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Update {
    /// Records produced since the previous update, in order.
    pub records: Vec<Record>,
    pub snapshot: Snapshot,
}

/// From the main thread to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Pause or resume a replay.
    Pause(bool),
    Quit,
}

#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// `--replay SPEED`: pace packets on the capture's own timeline.
    pub replay: Option<f64>,
    /// Wall time between updates.
    pub update_every: Duration,
    /// On quit, end every connection and send the final summary (live:
    /// the dashboard leaves it on screen) rather than stop at once.
    pub finish_on_quit: bool,
}

impl Default for FeedOptions {
    fn default() -> FeedOptions {
        FeedOptions { replay: None, update_every: Duration::from_millis(200), finish_on_quit: false }
    }
}

/// Where packets come from, as shown in the header.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// `-r`: analysed at full speed.
    File,
    /// `-r --replay SPEED`.
    Replay(f64),
    /// `-i`.
    Live,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// File name or interface.
    pub label: String,
    pub kind: SourceKind,
}

/// Opens the input, before the terminal is taken over, so errors
/// (missing file, bad filter, no permission) print as usual.
pub fn open_source(input: &Input, replay: Option<f64>) -> Result<(Box<dyn PacketSource + Send>, Source)> {
    let file = match input {
        Input::Live(cfg) => {
            let src = open_live(cfg)?;
            return Ok((src, Source { label: cfg.iface.clone(), kind: SourceKind::Live }));
        }
        Input::File(file) => file,
    };
    let src = file.open()?;
    let kind = match replay {
        Some(speed) => SourceKind::Replay(speed),
        None => SourceKind::File,
    };
    let path = file.path.as_str();
    let label = std::path::Path::new(path).file_name().map_or(path.into(), |n| n.to_string_lossy().into_owned());
    Ok((Box::new(src), Source { label, kind }))
}

/// The live capture source (docs/live.md, "For the dashboard"). It starts
/// its own capture thread; dropping it (when the worker ends) stops that
/// thread and closes the `-w` file. Kernel and queue drops reach the
/// Overview through `PacketSource::stats`, not stderr.
fn open_live(cfg: &LiveConfig) -> Result<Box<dyn PacketSource + Send>> {
    Ok(Box::new(crate::capture::live::open(cfg)?))
}

/// Starts the worker thread. Returns its handle and the control channel.
pub fn spawn(
    mut pipeline: Pipeline,
    mut src: Box<dyn PacketSource + Send>,
    opts: FeedOptions,
    tx: Sender<UiMsg>,
    beside: Vec<Box<dyn crate::sink::Sink + Send>>,
) -> Result<(JoinHandle<()>, Sender<Control>)> {
    let (ctl_tx, ctl_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("wstap-feed".into())
        .spawn(move || {
            let out = DashboardSink::with_beside(beside);
            run_into(&mut pipeline, src.as_mut(), &opts, &ctl_rx, &mut |m| tx.send(m).is_ok(), out);
        })
        .map_err(|e| Error::new(format!("cannot start the analysis thread: {e}")))?;
    Ok((handle, ctl_tx))
}

/// Replay pacing: packet `ts` is due at `wall0 + (ts - ts0) / speed`.
/// Wall time is used only to wait; analysis time stays packet time.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: f64,
    origin: Option<(Ts, Instant)>,
}

impl Pacer {
    pub fn new(speed: f64) -> Pacer {
        Pacer { speed, origin: None }
    }

    /// When the packet stamped `ts` is due (the first packet is due now).
    pub fn due(&mut self, ts: Ts, now: Instant) -> Instant {
        let (t0, w0) = *self.origin.get_or_insert((ts, now));
        if ts <= t0 { w0 } else { w0 + Duration::from_secs_f64(ts.since(t0) / self.speed) }
    }

    /// The capture time the replay has reached at wall time `now`.
    pub fn clock(&self, now: Instant) -> Option<Ts> {
        self.origin.map(|(t0, w0)| t0.add_secs(now.saturating_duration_since(w0).as_secs_f64() * self.speed))
    }

    /// A pause of `d` wall time: everything later moves by `d`.
    pub fn shift(&mut self, d: Duration) {
        if let Some((_, w0)) = &mut self.origin {
            *w0 += d;
        }
    }
}

/// What the control channel asked for.
enum Ctl {
    Go,
    Quit,
}

/// What the worker sends on: returns false when nobody listens any more;
/// the worker then stops.
pub type Emit<'a> = dyn FnMut(UiMsg) -> bool + Send + 'a;

/// The worker loop (also run synchronously by tests, without the
/// dashboard's threads).
pub fn run(
    p: &mut Pipeline,
    src: &mut dyn PacketSource,
    opts: &FeedOptions,
    ctl: &Receiver<Control>,
    emit: &mut Emit<'_>,
) {
    run_into(p, src, opts, ctl, emit, DashboardSink::default())
}

/// [`run`], the records also to the sinks beside the dashboard `out` holds.
pub fn run_into(
    p: &mut Pipeline,
    src: &mut dyn PacketSource,
    opts: &FeedOptions,
    ctl: &Receiver<Control>,
    emit: &mut Emit<'_>,
    mut out: DashboardSink,
) {
    if p.threads > 1 {
        return run_sharded(p, src, opts, ctl, emit, out);
    }
    out.begin();
    let linktype = src.linktype();
    let mut pacer = opts.replay.map(Pacer::new);
    let mut clock: Option<Ts> = None;
    let mut capture: Option<Capture> = None;
    let mut last_update = Instant::now();
    let mut n: u64 = 0;
    let result = loop {
        n += 1;
        if (pacer.is_some() || n.is_multiple_of(64)) && matches!(poll_control(ctl, pacer.as_mut(), None), Ctl::Quit) {
            if opts.finish_on_quit {
                break Ok(None);
            }
            return;
        }
        let next = match src.next_packet() {
            Ok(next) => next,
            Err(e) => break Err(e.to_string()),
        };
        match next {
            Next::Packet(pkt) => {
                if let Some(pc) = pacer.as_mut() {
                    // Wait until the packet is due, in slices, so updates keep
                    // flowing (the replay clock moves) and keys are obeyed.
                    loop {
                        let now = Instant::now();
                        let due = pc.due(pkt.ts, now);
                        if due <= now {
                            break;
                        }
                        let slice = (due - now).min(opts.update_every);
                        if matches!(poll_control(ctl, Some(pc), Some(slice)), Ctl::Quit) {
                            return;
                        }
                        if last_update.elapsed() >= opts.update_every {
                            let at = pc.clock(Instant::now()).map(|c| c.min(pkt.ts)).max(clock);
                            if !send_update(p, &mut out, at, capture.clone(), None, emit) {
                                return;
                            }
                            last_update = Instant::now();
                        }
                    }
                }
                let missing = pkt.missing();
                let ts = pkt.ts;
                p.packet(linktype, ts, pkt.data, missing);
                clock = clock.max(Some(ts));
            }
            Next::Idle(now) => {
                // A quiet live link: obey a quit now, not 64 ticks later.
                if matches!(poll_control(ctl, None, None), Ctl::Quit) {
                    if opts.finish_on_quit {
                        break Ok(None);
                    }
                    return;
                }
                p.idle(now);
                clock = clock.max(Some(now));
            }
            Next::End => break Ok(None),
            Next::Truncated(msg) => {
                p.stats.truncated = true;
                break Ok(Some(msg));
            }
            Next::Damaged(msg) => {
                // What was read before the damage is shown, summary included.
                p.stats.damaged = true;
                break Ok(Some(damage_shown(&msg)));
            }
        }
        if p.drain_to(&mut out).is_err() {
            return;
        }
        if last_update.elapsed() >= opts.update_every {
            capture = src.stats();
            if !send_update(p, &mut out, clock, capture.clone(), None, emit) {
                return;
            }
            last_update = Instant::now();
        }
    };
    finish(p, src, &mut out, result, clock, capture, emit);
}

/// [`run_into`] with flow-sharded workers (`--threads N`, shard.rs): the
/// workers and the correlator analyse; this thread reads (the source
/// steered by the controls, [`Steered`]); the writer's sink ([`Viewer`])
/// sends the records with the correlator's view of the engine, made after
/// a batch the reader ended when `update_every` of wall time had passed. Not
/// with `--replay` (config.rs): a paced replay needs no second core.
fn run_sharded(
    p: &mut Pipeline,
    src: &mut dyn PacketSource,
    opts: &FeedOptions,
    ctl: &Receiver<Control>,
    emit: &mut Emit<'_>,
    out: DashboardSink,
) {
    let mut steered = Steered { src, ctl, n: 0, quit: false };
    let mut viewer = Viewer { out, emit, every: opts.update_every, gone: false };
    viewer.begin();
    let n = p.threads;
    let ended = crate::shard::run(p, n, &mut steered, &mut viewer);
    let Steered { src, quit, .. } = steered;
    let Viewer { mut out, emit, gone, .. } = viewer;
    if gone || (quit && !opts.finish_on_quit) {
        return;
    }
    let result = match ended {
        Ok(crate::pipeline::InputEnd::Complete) => Ok(None),
        Ok(crate::pipeline::InputEnd::Truncated(msg)) => Ok(Some(msg)),
        Ok(crate::pipeline::InputEnd::Damaged(msg)) => Ok(Some(damage_shown(&msg))),
        Err(e) => Err(e.to_string()),
    };
    let clock = p.stats.last_ts.map(|_| p.now());
    finish(p, src, &mut out, result, clock, None, emit);
}

/// What the dashboard says of damaged input (one thread or workers).
fn damage_shown(msg: &str) -> String {
    format!("{msg}; analysed everything before the damage")
}

/// The dashboard's source with workers: quit (or the dashboard gone)
/// ends the input here, so the workers finish as at the end of a file.
struct Steered<'a> {
    src: &'a mut dyn PacketSource,
    ctl: &'a Receiver<Control>,
    n: u64,
    quit: bool,
}

impl PacketSource for Steered<'_> {
    fn linktype(&self) -> crate::decode::LinkType {
        self.src.linktype()
    }
    fn next_packet(&mut self) -> crate::error::Result<Next<'_>> {
        self.n += 1;
        if self.quit || (self.n.is_multiple_of(64) && matches!(poll_control(self.ctl, None, None), Ctl::Quit)) {
            self.quit = true;
            return Ok(Next::End);
        }
        let next = self.src.next_packet()?;
        // A quiet live link: obey a quit now, not 64 ticks later.
        if matches!(next, Next::Idle(_)) && matches!(poll_control(self.ctl, None, None), Ctl::Quit) {
            self.quit = true;
        }
        Ok(next)
    }
    fn set_keys(&mut self, keys: crate::proto::tls::Keys) {
        self.src.set_keys(keys)
    }
    fn stats(&mut self) -> Option<Capture> {
        self.src.stats()
    }
    fn host(&self) -> Option<String> {
        self.src.host()
    }
    fn system(&self) -> Option<crate::record::CaptureSystem> {
        self.src.system()
    }
    fn lull(&self) -> bool {
        self.src.lull()
    }
}

/// The writer's sink with workers: the records to the dashboard's feed
/// (and the sinks beside it), sent on with each view.
struct Viewer<'a, 'b> {
    out: DashboardSink,
    emit: &'a mut Emit<'b>,
    every: Duration,
    /// Nobody listens any more: the next record stops the run.
    gone: bool,
}

impl Sink for Viewer<'_, '_> {
    fn begin(&mut self) {
        self.out.begin()
    }
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        if self.gone {
            return Err(std::io::Error::other("the dashboard is gone"));
        }
        self.out.record(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
    fn wants_runtime(&self) -> bool {
        self.out.wants_runtime()
    }
    fn runtime(&mut self, snapshot: &crate::runtime::RuntimeSnapshot) {
        self.out.runtime(snapshot)
    }
    fn view_every(&self) -> Option<Duration> {
        Some(self.every)
    }
    fn view(&mut self, view: Box<Snapshot>) {
        if !self.gone && !(self.emit)(UiMsg::Update(Box::new(Update { records: self.out.take(), snapshot: *view }))) {
            self.gone = true;
        }
    }
}

/// The end of the input (or a live quit): every connection ended, the
/// sinks beside the dashboard given their last numbers and the summary,
/// then the last update and `Done`.
fn finish(
    p: &mut Pipeline,
    src: &mut dyn PacketSource,
    out: &mut DashboardSink,
    result: std::result::Result<Option<String>, String>,
    clock: Option<Ts>,
    capture: Option<Capture>,
    emit: &mut Emit<'_>,
) {
    let summary = match &result {
        Ok(_) => {
            let mut s = p.finish();
            s.capture = src.stats();
            (s.host, s.system) = (src.host(), src.system());
            Some(s)
        }
        Err(_) => None,
    };
    let capture = src.stats().or(capture);
    // The sinks beside the dashboard end as a run without it does: the
    // last runtime numbers, then the summary.
    let _ = p.drain_to(out);
    out.runtime(&crate::runtime::RuntimeSnapshot::of(p, capture.clone()));
    if let Some(s) = &summary {
        let _ = out.beside_only(&Record::Summary(s.clone()));
    }
    let _ = out.flush();
    if send_update(p, out, clock, capture, summary, emit) {
        emit(UiMsg::Done(result));
    }
}

/// Drains the pipeline's records and sends them with a snapshot.
fn send_update(
    p: &mut Pipeline,
    out: &mut DashboardSink,
    clock: Option<Ts>,
    capture: Option<Capture>,
    summary: Option<Summary>,
    emit: &mut dyn FnMut(UiMsg) -> bool,
) -> bool {
    let _ = p.drain_to(out);
    if out.wants_runtime() {
        out.runtime(&crate::runtime::RuntimeSnapshot::of(p, capture.clone()));
    }
    let summary = summary.unwrap_or_else(|| p.summary());
    let sessions = p.session_rows();
    let redact = p.redactor();
    let snapshot = snapshot_of(summary, sessions, &mut p.analysis, redact, capture, clock);
    emit(UiMsg::Update(Box::new(Update { records: out.take(), snapshot })))
}

/// The dashboard's snapshot from the engine's parts: one pipeline's, or
/// with workers the correlator's (shard.rs). Wire text in it is made
/// terminal-safe here, paths redacted as records' are.
pub fn snapshot_of(
    summary: Summary,
    mut sessions: Vec<SessionRow>,
    analysis: &mut crate::analysis::Analysis,
    redact: crate::redact::Redactor,
    capture: Option<Capture>,
    clock: Option<Ts>,
) -> Snapshot {
    let mut summary = Record::Summary(summary);
    crate::escape::record_in_place(&mut summary);
    let Record::Summary(summary) = summary else { unreachable!("a summary stays a summary") };
    for s in &mut sessions {
        s.path = redact.path(&s.path);
        if let std::borrow::Cow::Owned(e) = crate::escape::text(&s.path) {
            s.path = e;
        }
    }
    Snapshot {
        summary,
        sessions,
        idle_boundary: analysis.idle_boundary(),
        expected_boundary: analysis.expected_boundary(),
        relay_ms: analysis.correlation.take_relay_samples(),
        capture,
        clock: clock.map(Ts::secs),
    }
}

/// Obeys the control channel: returns `Quit` when asked to stop (or when
/// the dashboard is gone). A pause blocks here until resumed, moving the
/// replay timeline by the time spent paused. With `wait`, blocks up to
/// that long for a message (the replay's sleep).
fn poll_control(ctl: &Receiver<Control>, mut pacer: Option<&mut Pacer>, wait: Option<Duration>) -> Ctl {
    let first = match wait {
        Some(d) => ctl.recv_timeout(d).map_err(|e| e == RecvTimeoutError::Disconnected),
        None => ctl.try_recv().map_err(|e| e == TryRecvError::Disconnected),
    };
    let mut msg = match first {
        Ok(m) => m,
        Err(true) => return Ctl::Quit,
        Err(false) => return Ctl::Go,
    };
    loop {
        match msg {
            Control::Quit => return Ctl::Quit,
            Control::Pause(false) => return Ctl::Go,
            Control::Pause(true) => {
                let since = Instant::now();
                loop {
                    match ctl.recv() {
                        Ok(Control::Pause(true)) => continue,
                        Ok(m) => {
                            msg = m;
                            break;
                        }
                        Err(_) => return Ctl::Quit,
                    }
                }
                if let Some(pc) = pacer.as_deref_mut() {
                    pc.shift(since.elapsed());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_divides_capture_time_by_speed() {
        let w0 = Instant::now();
        let mut pc = Pacer::new(2.0);
        let t0 = Ts::from_secs_f64(100.0);
        assert_eq!(pc.due(t0, w0), w0);
        assert_eq!(pc.due(Ts::from_secs_f64(104.0), w0), w0 + Duration::from_secs(2));
        // Out-of-order packets (merged captures) are due at once.
        assert_eq!(pc.due(Ts::from_secs_f64(99.0), w0), w0);
        assert_eq!(pc.clock(w0 + Duration::from_secs(3)), Some(Ts::from_secs_f64(106.0)));
        pc.shift(Duration::from_secs(10));
        assert_eq!(pc.due(Ts::from_secs_f64(104.0), w0), w0 + Duration::from_secs(12));
    }

    #[test]
    fn pause_then_quit_is_obeyed() {
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(Control::Pause(true)).unwrap();
        tx.send(Control::Quit).unwrap();
        assert!(matches!(poll_control(&rx, None, None), Ctl::Quit));
        tx.send(Control::Pause(true)).unwrap();
        tx.send(Control::Pause(false)).unwrap();
        assert!(matches!(poll_control(&rx, None, None), Ctl::Go));
        drop(tx);
        assert!(matches!(poll_control(&rx, None, None), Ctl::Quit));
    }
}
