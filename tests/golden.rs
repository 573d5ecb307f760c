//! Golden outputs: every bundled capture and every peer capture, through the
//! real binary, in JSON Lines (`--json`, and `-v --json` with the per-message
//! records) and in the default text, held to the files in tests/golden/.
//!
//! The JSON is a contract (docs/json.md): a change here must be a deliberate
//! one. After a deliberate change, rewrite the files and review the diff:
//!
//!     WSTAP_BLESS=1 cargo test --test golden
//!     git diff tests/golden
//!
//! A capture with a key log beside it (captures/NAME.keys) is read with
//! `--keylog`, so the decrypted hops are held too.

mod common;

use std::path::{Path, PathBuf};

use common::{root, wstap};

/// Every capture the repository ships: captures/*.pcap[ng], tests/data/peers/*/*.
fn inputs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut dirs = vec![root().join("captures")];
    for e in std::fs::read_dir(root().join("tests/data/peers")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            dirs.push(p);
        }
    }
    for d in dirs {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "pcap" || ext == "pcapng" {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// `captures/nginx-healthy.pcap` -> `nginx-healthy`; peers keep their folder:
/// `zeek/websocket_ping`.
fn name_of(p: &Path) -> String {
    let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
    let parent = p.parent().unwrap();
    if parent.ends_with("captures") {
        stem
    } else {
        format!("{}/{stem}", parent.file_name().unwrap().to_str().unwrap())
    }
}

fn run(p: &Path, extra: &[&str]) -> String {
    let f = p.to_str().unwrap();
    let keys = p.with_extension("keys");
    let keys = keys.to_str().unwrap();
    let mut args = vec!["-r", f];
    if Path::new(keys).exists() {
        args.extend_from_slice(&["--keylog", keys]);
    }
    args.extend_from_slice(extra);
    let out = wstap(&args);
    assert!(out.status.success(), "wstap {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let mut s = String::from_utf8(out.stdout).expect("utf-8 output");
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.is_empty() {
        s.push_str("--- stderr\n");
        s.push_str(&err);
    }
    s
}

fn check(kind: &str, ext: &str, extra: &[&str]) {
    let bless = std::env::var_os("WSTAP_BLESS").is_some();
    let dir = root().join("tests/golden").join(kind);
    let mut failed = Vec::new();
    for p in inputs() {
        let name = name_of(&p);
        let got = run(&p, extra);
        let file = dir.join(format!("{name}.{ext}"));
        if bless {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (WSTAP_BLESS=1 writes it)", file.display()));
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            failed.push(format!(
                "{name}: first difference at line {}\n  got:  {}\n  want: {}",
                line + 1,
                got.lines().nth(line).unwrap_or("<end>"),
                want.lines().nth(line).unwrap_or("<end>")
            ));
        }
    }
    // Every golden file belongs to a capture that still exists.
    if !bless {
        let names: Vec<String> = inputs().iter().map(|p| format!("{}.{ext}", name_of(p))).collect();
        for e in walk(&dir) {
            let rel = e.strip_prefix(&dir).unwrap().to_str().unwrap().to_string();
            assert!(names.contains(&rel), "stale golden file {} (its capture is gone)", e.display());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} outputs differ from tests/golden/{kind}:\n{}",
        failed.len(),
        inputs().len(),
        failed.join("\n")
    );
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() { v.extend(walk(&p)) } else { v.push(p) }
    }
    v
}

#[test]
fn json_lines_are_unchanged() {
    check("json", "jsonl", &["--json"]);
}

#[test]
fn verbose_json_lines_are_unchanged() {
    check("json-v", "jsonl", &["--json", "-vv"]);
}

#[test]
fn text_is_unchanged() {
    check("text", "txt", &["--color", "never"]);
}
