//! The summary at the end of a run, as text.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};

use super::{N, Nn};
use crate::record::{H2Summary, Memory, Percentiles, Summary, TlsSummary};

/// What the memory budget gave up, or None when it gave up nothing.
pub fn memory_line(m: &Memory) -> Option<String> {
    let e = &m.evicted;
    if e.total()
        + m.dropped_connections
        + m.shed_connections
        + m.records_written_early
        + m.h2_connections_forgotten
        + m.closes_judged_early
        + m.socketio_sessions_forgotten
        == 0
    {
        return None;
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let mut s = format!(
        "memory budget {} (peak {}) was full: {} evicted ({} half-open, {} established, {} upgraded)",
        mib(m.budget_bytes),
        mib(m.peak_bytes),
        N(e.total(), "connection"),
        e.half_open,
        e.established,
        e.upgraded
    );
    if m.dropped_connections > 0 {
        s += &format!(", {} not followed", N(m.dropped_connections, "new connection"));
    }
    if m.shed_connections > 0 {
        s += &format!(", buffers given up on {} ({})", N(m.shed_connections, "connection"), mib(m.shed_bytes));
    }
    if m.records_written_early > 0 {
        s += &format!(", {} written out of time order", N(m.records_written_early, "record"));
    }
    if m.h2_connections_forgotten > 0 {
        s += &format!(", {} forgotten", N(m.h2_connections_forgotten, "HTTP/2 connection view"));
    }
    if m.closes_judged_early > 0 {
        s += &format!(", {} judged early", Nn(m.closes_judged_early, "abnormal close", "abnormal closes"));
    }
    if m.socketio_sessions_forgotten > 0 {
        s += &format!(", {} forgotten", N(m.socketio_sessions_forgotten, "Socket.IO session"));
    }
    Some(s)
}

/// The summary: counts, what the capture and the budget lost, upgrade
/// success, latencies, TLS and HTTP/2, findings by kind.
pub struct SummaryText<'a>(pub &'a Summary);

impl Display for SummaryText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let h = &s.handshakes;
        writeln!(
            f,
            "{} ({}, {} TCP), {}, {:.3} s of capture",
            N(s.packets, "packet"),
            N(s.bytes, "byte"),
            s.tcp_packets,
            N(s.flows, "connection"),
            s.elapsed_s
        )?;
        writeln!(
            f,
            "{}: {} upgraded, {} rejected, {} failed, {} incomplete; {}; {}",
            N(h.total, "WebSocket handshake"),
            h.upgraded,
            h.rejected,
            h.failed,
            h.incomplete,
            N(s.sessions, "session"),
            N(s.http_requests, "HTTP request")
        )?;
        let kv = |m: &std::collections::BTreeMap<&str, u64>| {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        if !s.decode_errors.is_empty() {
            writeln!(f, "decode errors: {}", kv(&s.decode_errors))?;
        }
        if !s.skipped.is_empty() {
            writeln!(f, "not analysed: {}", kv(&s.skipped))?;
        }
        let r = &s.reassembly;
        if r.gaps > 0 || r.limit_hits > 0 || r.rexmit_inconsistent > 0 {
            write!(
                f,
                "reassembly: {} ({}), {}",
                N(r.gaps, "gap"),
                N(r.gap_bytes, "byte"),
                N(r.limit_hits, "buffer limit hit")
            )?;
            if r.rexmit_inconsistent > 0 {
                let what = ("retransmission with different bytes", "retransmissions with different bytes");
                write!(f, ", {} (first copy kept)", Nn(r.rexmit_inconsistent, what.0, what.1))?;
            }
            f.write_str("\n")?;
        }
        if let Some(line) = memory_line(&s.memory) {
            f.write_str(&line)?;
            f.write_str("\n")?;
        }
        if !s.http_anomalies.is_empty() {
            writeln!(f, "parse anomalies: {}", kv(&s.http_anomalies))?;
        }
        if !s.paths.is_empty() {
            f.write_str("upgrade success by path:\n")?;
            for r in &s.paths {
                writeln!(f, "  {:<40} {:>6}/{:<6} {:>5.1}%", r.key, r.upgraded, r.attempts, r.rate * 100.0)?;
            }
        }
        if !s.upstreams.is_empty() {
            f.write_str("upgrade success by upstream:\n")?;
            for r in &s.upstreams {
                writeln!(f, "  {:<40} {:>6}/{:<6} {:>5.1}%", r.key, r.upgraded, r.attempts, r.rate * 100.0)?;
            }
        }
        let l = &s.latency_ms;
        if l.client.is_some() || l.upstream.is_some() {
            writeln!(
                f,
                "latency (ms)         {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                "p50", "p90", "p99", "p99.9", "max", "n"
            )?;
            let row = |name: &str, p: &Option<Percentiles>| match p {
                Some(p) => format!(
                    "  {name:<19}{:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}\n",
                    p.p50, p.p90, p.p99, p.p999, p.max, p.n
                ),
                None => String::new(),
            };
            f.write_str(&row("client handshake", &l.client))?;
            f.write_str(&row("upstream handshake", &l.upstream))?;
            f.write_str(&row("proxy overhead", &l.overhead))?;
            f.write_str(&row("frame relay", &l.relay))?;
        }
        if let Some(t) = &s.tls {
            tls_text(f, t, &kv)?;
        }
        if let Some(h) = &s.h2 {
            h2_text(f, h, &kv)?;
        }
        if !s.findings.is_empty() {
            let by_kind: Vec<String> = s.findings.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(f, "findings by kind: {}", by_kind.join(", "))?;
        }
        if let Some(c) = &s.capture {
            writeln!(
                f,
                "capture: {} received, {} dropped by kernel, {} dropped by interface, {} dropped before analysis",
                c.received.map_or("-".into(), |v| v.to_string()),
                c.dropped_kernel.map_or("-".into(), |v| v.to_string()),
                c.dropped_interface.map_or("-".into(), |v| v.to_string()),
                c.dropped_queue.map_or("-".into(), |v| v.to_string()),
            )?;
            if let Some(rings) = &c.rings {
                let each: Vec<String> = rings.iter().map(|n| n.to_string()).collect();
                writeln!(f, "capture rings (--fanout): {} packets", each.join(" / "))?;
            }
        }
        if s.truncated {
            f.write_str("capture file is truncated: everything up to the cut was analysed\n")?;
        }
        if s.damaged {
            f.write_str("capture file is damaged: everything before the damage was analysed, nothing after it\n")?;
        }
        Ok(())
    }
}

/// The summary's HTTP/2 lines: connections, streams, WebSocket streams,
/// resets, and whatever the bounds dropped.
fn h2_text(f: &mut Formatter<'_>, h: &H2Summary, kv: &dyn Fn(&BTreeMap<&str, u64>) -> String) -> fmt::Result {
    write!(
        f,
        "HTTP/2: {} ({} offering WebSockets, RFC 8441), {}, {} ({} accepted)",
        N(h.connections, "connection"),
        h.connect_protocol_offered,
        N(h.streams, "stream"),
        N(h.websocket_streams, "WebSocket stream"),
        h.websocket_accepted
    )?;
    if !h.resets.is_empty() {
        write!(f, "; RST_STREAM: {}", kv(&h.resets))?;
    }
    if h.goaways > 0 {
        write!(f, "; {} GOAWAY", h.goaways)?;
    }
    f.write_str("\n")?;
    let dropped = [
        (h.streams_dropped, "stream not followed (cap)", "streams not followed (cap)"),
        (h.streams_over_limit, "stream over the server's limit", "streams over the server's limit"),
        (h.hpack_errors, "HPACK error", "HPACK errors"),
        (h.header_blocks_lost, "header block not decoded", "header blocks not decoded"),
        (h.header_lists_dropped, "header list over the cap", "header lists over the cap"),
        (h.header_lists_over_limit, "header list over the receiver's limit", "header lists over the receiver's limit"),
        (h.oversized_frames, "oversized frame skipped", "oversized frames skipped"),
        (h.desyncs, "direction lost to gaps", "directions lost to gaps"),
        (h.flow_control_overruns, "flow-control overrun", "flow-control overruns"),
    ];
    let v: Vec<String> =
        dropped.iter().filter(|(n, ..)| *n > 0).map(|(n, one, many)| Nn(*n, one, many).to_string()).collect();
    if !v.is_empty() {
        writeln!(f, "  {}", v.join(", "))?;
    }
    Ok(())
}

/// The summary's TLS lines: what was decrypted, what was not and why, and
/// what the key logs held (counts only: keys are never printed).
fn tls_text(f: &mut Formatter<'_>, t: &TlsSummary, kv: &dyn Fn(&BTreeMap<&str, u64>) -> String) -> fmt::Result {
    write!(f, "TLS: {}, {} decrypted", N(t.connections, "connection"), t.decrypted)?;
    if t.decrypted > 0 {
        write!(f, " ({}, {} of application data", N(t.records, "record"), N(t.bytes, "byte"))?;
        if t.key_updates > 0 {
            write!(f, ", {}", N(t.key_updates, "key update"))?;
        }
        if t.late_keys > 0 {
            write!(f, ", {} read when their keys arrived late", N(t.late_keys, "connection"))?;
        }
        f.write_str(")")?;
    }
    f.write_str("\n")?;
    if !t.not_decrypted.is_empty() {
        writeln!(
            f,
            "  not decrypted: {}; those hops are inferred from the other side of the proxy",
            kv(&t.not_decrypted)
        )?;
    }
    if t.auth_failures > 0 {
        let what = ("record failed", "records failed");
        writeln!(f, "  {} authentication (wrong keys or damaged records)", Nn(t.auth_failures, what.0, what.1))?;
    }
    if t.held_dropped > 0 {
        writeln!(f, "  {} of records dropped waiting for keys that did not come", N(t.held_dropped, "byte"))?;
    }
    if let Some(k) = &t.keylog {
        let mut src = Vec::new();
        if k.files > 0 {
            src.push(N(k.files, "key log file").to_string());
        }
        if k.dsb > 0 {
            src.push(N(k.dsb, "pcapng secrets block").to_string());
        }
        write!(
            f,
            "  keys: {}: {}, {}, {} not understood, {}",
            src.join(" and "),
            N(k.lines, "line"),
            N(k.secrets, "secret"),
            k.malformed,
            N(k.ignored, "unused label")
        )?;
        if k.evicted > 0 {
            write!(f, ", {} forgotten (bound)", N(k.evicted, "connection"))?;
        }
        if k.read_errors > 0 {
            write!(f, ", {}", N(k.read_errors, "read error"))?;
        }
        f.write_str("\n")?;
    }
    Ok(())
}
