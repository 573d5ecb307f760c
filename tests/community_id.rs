//! The Community ID on every record is the one the other tools compute:
//! tshark (its `communityid` dissector, the spec's implementation in
//! Wireshark) is the conformance peer, on every bundled capture. The spec's
//! own reference values (PyPI `communityid`) are checked beside the
//! function (src/flow/key.rs).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// Every object of a record that carries a `community_id`, with its
/// structured connection fields.
fn connections<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("community_id") {
                out.push(v);
            }
            m.values().for_each(|x| connections(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| connections(x, out)),
        _ => {}
    }
}

/// tshark's Community ID of every TCP connection in a capture, by
/// (address, port, address, port) in both orientations.
fn tshark_ids(file: &str) -> BTreeMap<(String, u16, String, u16), String> {
    let out = Command::new("tshark")
        .args(["-r", file, "--enable-protocol", "communityid", "-Y", "tcp", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst"])
        .args(["-e", "tcp.dstport", "-e", "communityid"])
        .stderr(Stdio::null())
        .output()
        .expect("tshark runs");
    let mut ids = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 7 || f[6].is_empty() {
            continue;
        }
        // Tunnelled packets list the outer and inner addresses: the last
        // is the connection's.
        let last = |a: &str, b: &str| -> String {
            let s = if a.is_empty() { b } else { a };
            s.rsplit(',').next().unwrap_or(s).to_string()
        };
        let (src, dst) = (last(f[0], f[1]), last(f[3], f[4]));
        let port = |p: &str| p.rsplit(',').next().unwrap_or(p).parse::<u16>().unwrap();
        let (sp, dp) = (port(f[2]), port(f[5]));
        let id = f[6].rsplit(',').next().unwrap().to_string();
        ids.insert((src.clone(), sp, dst.clone(), dp), id.clone());
        ids.insert((dst, dp, src, sp), id);
    }
    ids
}

#[test]
fn every_records_community_id_is_tsharks() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tshark is a test dependency (scripts/deps.sh)");
        eprintln!("tshark not installed: skipped");
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .filter(|p| !p.to_string_lossy().contains("bench"))
        .collect();
    files.sort();
    let (mut checked, mut v6) = (0, 0);
    for file in &files {
        let name = file.to_str().unwrap();
        let theirs = tshark_ids(name);
        // -v: http and frame lines carry their connection's fields too.
        for rec in records_of(file, &["-v"]) {
            let mut conns = Vec::new();
            connections(&rec, &mut conns);
            for c in conns {
                let k = (
                    c["orig_h"].as_str().unwrap().to_string(),
                    c["orig_p"].as_u64().unwrap() as u16,
                    c["resp_h"].as_str().unwrap().to_string(),
                    c["resp_p"].as_u64().unwrap() as u16,
                );
                let want = theirs.get(&k).unwrap_or_else(|| panic!("{name}: tshark has no connection {k:?}"));
                assert_eq!(c["community_id"].as_str(), Some(want.as_str()), "{name} {k:?} in {rec}");
                if k.0.contains(':') {
                    v6 += 1;
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "only {checked} connection fields checked");
    assert!(v6 > 0, "an IPv6 capture was checked");
}

/// The structured fields say what the `flow` string says, initiator first
/// (a frame's `flow` is written sender first; its fields stay the
/// connection's).
#[test]
fn structured_fields_match_the_flow_strings() {
    for name in ["nginx-healthy", "nginx-ipv6", "chain-haproxy-nginx"] {
        for rec in records_of(&capture(name), &["-v"]) {
            let mut conns = Vec::new();
            connections(&rec, &mut conns);
            assert!(rec["type"] == "summary" || !conns.is_empty(), "{name}: {rec} has no connection fields");
            for c in conns {
                let Some(flow) = c["flow"].as_str() else { continue };
                let h = |k: &str| {
                    let s = c[k].as_str().unwrap();
                    if s.contains(':') { format!("[{s}]") } else { s.to_string() }
                };
                let conn = format!("{}:{}->{}:{}", h("orig_h"), c["orig_p"], h("resp_h"), c["resp_p"]);
                if rec["type"] == "frame" && rec["dir"] == "to_client" {
                    let (a, b) = flow.split_once("->").unwrap();
                    assert_eq!(conn, format!("{b}->{a}"), "{name}: {rec}");
                } else {
                    assert_eq!(conn, flow, "{name}: {rec}");
                }
            }
        }
    }
}
