//! `-r FILE -w OUT`: cutting a capture, as `tcpdump -r in -w out FILTER`.
//!
//! Every packet read (after the filter and `-c`) is written as it is read,
//! by [`WriteThrough`], a source wrapped around the file's: the analysis
//! runs as usual and the file it writes is what it analysed.
//!
//! `--write-only websocket|failing|findings` writes only the packets of
//! some connections, both hops of each. Which ones is known only once the
//! analysis has paired the hops and decided (a handshake's outcome, a
//! finding), so the file is read twice: [`Choose`] notes the connections
//! from the records as they pass to the run's own sink, then
//! [`write_chosen`] reads the file again and writes the packets of those
//! connections (by their addresses and ports, in both directions).

use crate::capture::dump::{Dumper, Rotation};
use crate::capture::{Next, PacketSource, RawPacket};
use crate::cli::WriteOnly;
use crate::decode::LinkType;
use crate::error::Result;
use crate::flow::key::{Endpoint, FlowKey, FxHashSet};
use crate::record::{Outcome, Record};
use crate::sink::Sink;

/// The snap length written in the header of a cut file (wstap's readers
/// keep the whole packet, and so does the file).
pub const SNAPLEN: u32 = 262_144;

/// The `-w` file of a cut. With `-G` its first file is named after the
/// first packet's time (packet time is the clock when reading a file), so
/// it is created with the first packet; otherwise at once, so that a cut
/// that keeps nothing still leaves a valid, empty capture.
pub struct Out {
    dumper: Option<Dumper>,
    pending: Option<(Rotation, u32)>,
}

impl Out {
    pub fn open(rot: Rotation, linktype: u32) -> Result<Out> {
        if rot.interval.is_some() {
            return Ok(Out { dumper: None, pending: Some((rot, linktype)) });
        }
        Ok(Out { dumper: Some(Dumper::open(rot, linktype, SNAPLEN, 0)?), pending: None })
    }

    /// Writes a packet; `Ok(false)`: `-G -W`'s last file is full.
    pub fn write(&mut self, p: &RawPacket<'_>) -> Result<bool> {
        let secs = p.ts.0.div_euclid(1_000_000);
        let d = match (&mut self.dumper, self.pending.take()) {
            (Some(d), _) => d,
            (None, Some((rot, lt))) => self.dumper.insert(Dumper::open(rot, lt, SNAPLEN, secs)?),
            (None, None) => return Ok(false),
        };
        d.write(secs, (secs, p.ts.0.rem_euclid(1_000_000)), p.data, p.orig_len)
    }

    pub fn close(&mut self) -> Result<()> {
        match &mut self.dumper {
            Some(d) => d.close(),
            None => Ok(()),
        }
    }
}

/// A source whose packets are also written to a `-w` file.
pub struct WriteThrough<'a> {
    pub inner: &'a mut dyn PacketSource,
    pub out: Out,
    /// `-G` with `-W`: the file limit was reached; reading stops there, as
    /// tcpdump stops.
    done: bool,
}

impl<'a> WriteThrough<'a> {
    pub fn new(inner: &'a mut dyn PacketSource, out: Out) -> WriteThrough<'a> {
        WriteThrough { inner, out, done: false }
    }
}

impl PacketSource for WriteThrough<'_> {
    fn linktype(&self) -> LinkType {
        self.inner.linktype()
    }

    fn set_keys(&mut self, keys: crate::proto::tls::Keys) {
        self.inner.set_keys(keys)
    }

    fn next_packet(&mut self) -> Result<Next<'_>> {
        if self.done {
            return Ok(Next::End);
        }
        let next = self.inner.next_packet()?;
        if let Next::Packet(p) = &next
            && !self.out.write(p)?
        {
            self.done = true;
            return Ok(Next::End);
        }
        Ok(next)
    }
}

/// Connections `--write-only` remembers at most (about 50 bytes each: some
/// 25 MB), so that a capture of endless connections cannot make the set
/// grow with it. Past it, more are not written, and a warning says so.
pub const MAX_CHOSEN: usize = 500_000;

/// The connections `--write-only` keeps, noted from the records passing
/// to `out` (direction-free: both directions of a connection).
pub struct Choose<'a> {
    pub out: &'a mut dyn Sink,
    pub only: WriteOnly,
    pub chosen: FxHashSet<(Endpoint, Endpoint)>,
    /// Connections not remembered, past [`MAX_CHOSEN`].
    pub dropped: u64,
}

impl<'a> Choose<'a> {
    pub fn new(out: &'a mut dyn Sink, only: WriteOnly) -> Choose<'a> {
        Choose { out, only, chosen: FxHashSet::default(), dropped: 0 }
    }

    fn keep(&mut self, f: FlowKey) {
        let key = f.canonical();
        if self.chosen.len() < MAX_CHOSEN || self.chosen.contains(&key) {
            self.chosen.insert(key);
        } else {
            self.dropped += 1;
        }
    }
}

impl Sink for Choose<'_> {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        match (self.only, r) {
            (WriteOnly::Websocket, Record::Handshake(h)) => {
                for hop in h.client.iter().chain(&h.upstream) {
                    self.keep(hop.flow);
                }
            }
            (WriteOnly::Websocket, Record::Session(s)) => {
                for f in s.client_flow.iter().chain(&s.upstream_flow) {
                    self.keep(*f);
                }
            }
            (WriteOnly::Failing, Record::Handshake(h)) if matches!(h.outcome, Outcome::Rejected | Outcome::Failed) => {
                for hop in h.client.iter().chain(&h.upstream) {
                    self.keep(hop.flow);
                }
            }
            (WriteOnly::Findings, Record::Finding(f)) => {
                for fl in &f.flows {
                    self.keep(*fl);
                }
            }
            _ => {}
        }
        self.out.record(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The second reading: writes the packets of the chosen connections.
/// Returns how many were written. Packets that are not TCP segments (IP
/// fragments included) belong to no connection and are not written.
pub fn write_chosen(
    src: &mut dyn PacketSource,
    out: &mut Out,
    chosen: &FxHashSet<(Endpoint, Endpoint)>,
) -> Result<u64> {
    let linktype = src.linktype();
    let mut n = 0;
    while !chosen.is_empty() {
        let p = match src.next_packet()? {
            Next::Packet(p) => p,
            Next::Idle(_) => continue,
            Next::End | Next::Truncated(_) | Next::Damaged(_) => break,
        };
        let Ok(seg) = crate::decode::decode(linktype, p.data, p.missing()) else { continue };
        let key = FlowKey { src: seg.src, dst: seg.dst }.canonical();
        if chosen.contains(&key) {
            if !out.write(&p)? {
                break;
            }
            n += 1;
        }
    }
    out.close()?;
    Ok(n)
}
