//! docs/json.md is the contract: every field any record of any bundled
//! capture carries is named there (a finding's `detail` fields there or
//! in docs/findings.md), so a field cannot be added without its line.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// Objects whose keys are data (counts by kind, ids by header name), not
/// field names.
const KEYED_BY_DATA: &[&str] =
    &["findings", "http_anomalies", "decode_errors", "skipped", "resets", "not_decrypted", "request_ids"];

fn fields(v: &Value, path: &str, out: &mut BTreeSet<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert((k.clone(), format!("{path}.{k}")));
                if !KEYED_BY_DATA.contains(&k.as_str()) {
                    fields(x, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| fields(x, &format!("{path}[]"), out)),
        _ => {}
    }
}

#[test]
fn every_field_written_is_documented() {
    let json_md = std::fs::read_to_string(root().join("docs/json.md")).unwrap();
    let findings_md = std::fs::read_to_string(root().join("docs/findings.md")).unwrap();
    let named = |doc: &str, k: &str| doc.contains(&format!("`{k}`")) || doc.contains(&format!("\"{k}\""));
    let mut seen = BTreeSet::new();
    let mut types = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap") && !p.to_string_lossy().contains("bench"))
        .collect();
    files.sort();
    for file in &files {
        let keys = file.with_extension("keys");
        let mut extra = vec!["-v"];
        let k = keys.to_str().unwrap().to_string();
        if keys.exists() {
            extra.extend(["--keylog", &k]);
        }
        for rec in records_of(file, &extra) {
            let ty = rec["type"].as_str().unwrap().to_string();
            fields(&rec, &ty, &mut seen);
            types.insert(ty);
        }
    }
    assert_eq!(types.into_iter().collect::<Vec<_>>(), ["finding", "frame", "handshake", "http", "session", "summary"]);
    let missing: Vec<String> = seen
        .iter()
        .filter(|(k, path)| {
            let in_detail = path.starts_with("finding.detail.");
            !(named(&json_md, k) || in_detail && named(&findings_md, k))
        })
        .map(|(_, path)| path.clone())
        .collect();
    assert!(missing.is_empty(), "fields written but not in docs/json.md: {missing:#?}");
}
