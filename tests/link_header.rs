//! `-e`, as tcpdump -e: under each handshake, the link-level header of the
//! packet that opened each hop's connection. Checked against tcpdump -e on
//! every bundled capture and every peer capture (Ethernet with real MAC
//! addresses, Linux cooked v1 and v2, IPv4 and IPv6): the same words for
//! the same packet.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// tcpdump's endpoint `1.2.3.4.80` or `::1.80` as wstap writes it.
fn endpoint(s: &str) -> Option<String> {
    let (addr, port) = s.rsplit_once('.')?;
    port.parse::<u16>().ok()?;
    Some(if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") })
}

/// The link header tcpdump -e printed for each TCP packet, by flow `A->B`,
/// in file order: the first packet of a flow, and every SYN.
fn tcpdump_links(file: &Path) -> HashMap<String, Vec<(String, bool)>> {
    let out = Command::new("tcpdump").args(["-e", "-nn", "-r"]).arg(file).arg("tcp").output().expect("tcpdump");
    let mut by_flow: HashMap<String, Vec<(String, bool)>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `TS [IFACE] HEADER, length N: A > B: Flags [S], ...`
        let Some((head, rest)) = line.split_once(", length ") else { continue };
        let Some((_, rest)) = rest.split_once(": ") else { continue };
        // VLAN tags come after the length: `vlan 3, p 2, ethertype IPv4 (0x0800), A > B`.
        let mut head = head.to_string();
        let mut rest = rest;
        if rest.starts_with("vlan ")
            && let Some(gt) = rest.find(" > ")
            && let Some(i) = rest[..gt].rfind("), ")
        {
            head = format!("{head}, {}", &rest[..i + 1]);
            rest = &rest[i + 3..];
        }
        let mut w = rest.split_whitespace();
        let (Some(a), Some(">"), Some(b)) = (w.next(), w.next(), w.next()) else { continue };
        let (Some(a), Some(b)) = (endpoint(a), endpoint(b.trim_end_matches(':'))) else { continue };
        let syn = rest.contains("Flags [S]");
        // Drop the time stamp and, for cooked v2, the interface's name
        // (wstap prints its index, as tcpdump does after the direction).
        let mut words: Vec<&str> = head.split_whitespace().skip(1).collect();
        if words.len() > 1 && ["In", "Out", "B", "M", "P"].contains(&words[1]) {
            words.remove(0);
        }
        by_flow.entry(format!("{a}->{b}")).or_default().push((words.join(" "), syn));
    }
    by_flow
}

fn captures() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for dir in [
        "captures",
        "tests/data/peers/zeek",
        "tests/data/peers/suricata",
        "tests/data/peers/ndpi",
        "tests/data/peers/arkime",
    ] {
        let Ok(rd) = std::fs::read_dir(root().join(dir)) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = p.to_string_lossy();
            if (name.ends_with(".pcap") || name.ends_with(".pcapng")) && !name.contains("tls") && !name.contains("h2") {
                all.push(p);
            }
        }
    }
    all.sort();
    all
}

#[test]
fn link_headers_are_tcpdump_s_for_the_packet_that_opened_each_hop() {
    let (mut checked, mut ethernet_macs, mut cooked, mut tunnelled) = (0, 0, 0, 0);
    for file in captures() {
        let out = wstap(&["-e", "-Z", "root", "-r", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let tcpdump = tcpdump_links(&file);
        for line in text.lines().filter(|l| l.starts_with("  link ")) {
            // `  link client   A->B: HEADER` or `... HEADER (its first packet, B->A)`
            let rest = line["  link ".len()..].split_once(' ').unwrap().1.trim_start();
            let (flow, header) = rest.split_once(": ").unwrap();
            let (header, first) = match header.strip_suffix(')').and_then(|h| h.rsplit_once(" (its first packet, ")) {
                Some((h, f)) => (h, f.to_string()),
                None => (header, flow.to_string()),
            };
            assert_ne!(header, "not kept", "{}: {line}", file.display());
            // A connection inside a tunnel (GTP, VXLAN) is not TCP to
            // tcpdump: its outer packets carry the same link header, but
            // tcpdump names no such flow; count those apart.
            let Some(seen) = tcpdump.get(&first) else {
                tunnelled += 1;
                continue;
            };
            let matches = |(h, syn): &(String, bool), i: usize| (i == 0 || *syn) && h == header;
            assert!(
                seen.iter().enumerate().any(|(i, s)| matches(s, i)),
                "{}: {line}\n  tcpdump -e for {first}: {:?}",
                file.display(),
                seen.first()
            );
            checked += 1;
            ethernet_macs += (header.contains(" > ") && !header.starts_with("00:00:00:00:00:00")) as usize;
            cooked += (!header.contains(" > ")
                && ["In ", "Out ", "B ", "M ", "P "].iter().any(|d| header.starts_with(d)))
                as usize;
        }
    }
    assert!(checked >= 100, "only {checked} link lines checked");
    assert!(tunnelled <= checked / 10, "{tunnelled} hops tcpdump does not show as TCP");
    assert!(ethernet_macs >= 5, "captures with real MAC addresses: {ethernet_macs} hops");
    assert!(cooked >= 2, "Linux cooked hops: {cooked}");
}

#[test]
fn e_is_text_only_and_one_thread_and_the_default_prints_no_link_line() {
    let f = capture("nginx-any-sll2");
    let plain = wstap(&["-Z", "root", "-r", f.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("  link "));
    let out = wstap(&["-e", "-Z", "root", "-r", f.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "  link client   127.0.0.1:46038->127.0.0.1:18101: In ifindex 1 00:00:00:00:00:00 ethertype IPv4 (0x0800)"
        ),
        "{text}"
    );
    for bad in [vec!["-e", "--json"], vec!["-e", "--threads", "2"], vec!["-e", "--tui"]] {
        let mut args = vec!["-Z", "root", "-r", f.to_str().unwrap()];
        args.extend(bad.iter());
        let out = wstap(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end().lines().count(), 1, "{bad:?}");
    }
}
