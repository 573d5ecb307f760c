//! Exports from the dashboard: the selected finding or session as JSON
//! Lines (`e`: the same records `--json` writes, redacted as they are), or
//! a pcap of its connections (`w`: every packet of those TCP connections,
//! read again from the capture file, or live from the `-w` file being
//! written; raw bytes, as `-w` writes them).
//! Each returns the line the status bar shows: where it wrote, or why not.

use std::io::Write;
use std::path::PathBuf;

use super::app::{App, Mode, View};
use crate::flow::FlowKey;
use crate::record::{Finding, Record};

/// What is selected, as an export names it and the records that describe it.
struct Selected {
    /// `finding-3-upgrade-stripped`, `session-12`.
    name: String,
    records: Vec<Record>,
    flows: Vec<FlowKey>,
}

fn selected(app: &App) -> Option<Selected> {
    match app.view {
        View::Findings => {
            let f: &Finding =
                if app.mode == Mode::Detail { app.detail_finding()? } else { app.selected_group()?.latest()? };
            let mut records = Vec::new();
            if let Some(h) = f.detail.get("handshake").and_then(|v| v.as_u64()).and_then(|id| app.handshakes.get(&id)) {
                records.push(Record::Handshake(h.clone()));
            }
            records.push(Record::Finding(f.clone()));
            Some(Selected { name: format!("finding-{}-{}", f.fault, f.kind.name()), records, flows: f.flows.clone() })
        }
        View::Sessions => {
            let s = if app.mode == Mode::Detail { app.detail_session_line()? } else { app.selected_session()? };
            let mut records = Vec::new();
            if let Some(h) = s.handshake.and_then(|id| app.handshakes.get(&id)) {
                records.push(Record::Handshake(h.clone()));
            }
            if let Some(r) = &s.record {
                records.push(Record::Session((**r).clone()));
            }
            records.extend(app.findings_of_session(s).into_iter().map(|f| Record::Finding(f.clone())));
            Some(Selected { name: format!("session-{}", s.id), records, flows: s.flows.clone() })
        }
        _ => None,
    }
}

/// A file name in the export directory that does not exist yet.
fn fresh_path(app: &App, stem: &str, ext: &str) -> PathBuf {
    let mut p = app.export_dir.join(format!("wstap-{stem}.{ext}"));
    let mut n = 1;
    while p.exists() && n < 1000 {
        n += 1;
        p = app.export_dir.join(format!("wstap-{stem}-{n}.{ext}"));
    }
    p
}

/// Creates `path` for writing without following a link or replacing a file.
fn create(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// `e`: the selected finding (with its handshake) or session (its
/// handshake, its record once closed, the findings it belongs to) as JSON
/// Lines.
pub fn json(app: &App) -> String {
    let Some(sel) = selected(app) else { return "export: select a finding or a session first".into() };
    let path = fresh_path(app, &sel.name, "jsonl");
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(create(&path)?);
        for r in &sel.records {
            crate::sink::json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    };
    match write() {
        Ok(()) => format!("wrote {} ({} records)", path.display(), sel.records.len()),
        Err(e) => format!("export: {}: {e}", path.display()),
    }
}

/// A BPF filter for exactly these TCP connections.
pub fn filter_of(flows: &[FlowKey]) -> String {
    let one = |f: &FlowKey| {
        format!("(host {} and host {} and port {} and port {})", f.src.ip, f.dst.ip, f.src.port, f.dst.port)
    };
    let mut v: Vec<String> = flows.iter().map(one).collect();
    v.dedup();
    format!("tcp and ({})", v.join(" or "))
}

/// `w`: every packet of the selected finding's or session's connections,
/// read again from the capture file, as a pcap.
pub fn pcap(app: &App) -> String {
    let Some(sel) = selected(app) else { return "export: select a finding or a session first".into() };
    let Some(file) = &app.capture_file else {
        return "export: a pcap needs the capture file (-r), or live the -w file (one file, no -C/-G)".into();
    };
    let live = app.source.kind == super::feed::SourceKind::Live;
    if sel.flows.is_empty() {
        return "export: no connection to export".into();
    }
    let path = fresh_path(app, &sel.name, "pcap");
    match write_pcap(file, &sel.flows, &path, live) {
        Ok(n) => format!("wrote {} ({n} packets of {} connections)", path.display(), sel.flows.len()),
        Err(e) => format!("export: {e}"),
    }
}

/// Copies the packets of `flows` from `input` to a new pcap at `path`;
/// returns how many. `growing`: `input` is the `-w` file a live capture
/// is writing, whose last record may be half written: reading stops there.
pub fn write_pcap(input: &str, flows: &[FlowKey], path: &PathBuf, growing: bool) -> Result<u64, String> {
    let mut cap = pcap::Capture::from_file(input).map_err(|e| format!("{input}: {e}"))?;
    cap.filter(&filter_of(flows), true).map_err(|e| format!("filter: {e}"))?;
    // create_new first: never replace a file or follow a link there.
    drop(create(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let mut out = cap.savefile(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut n = 0;
    loop {
        match cap.next_packet() {
            Ok(p) => {
                out.write(&p);
                n += 1;
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(_) if growing => break,
            Err(e) => return Err(format!("{input}: {e}")),
        }
    }
    out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(n)
}
