//! Helpers for the integration tests: run the real binary, parse its JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn capture(name: &str) -> PathBuf {
    root().join("captures").join(format!("{name}.pcap"))
}

pub fn wstap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wstap")).args(args).stdin(Stdio::null()).output().expect("run wstap")
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
