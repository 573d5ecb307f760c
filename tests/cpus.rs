//! `--cpus`: where the threads of a real process may run, read from its
//! /proc/PID/task/*/status (as `taskset -p` and `ps -L -o psr` see them),
//! and that the list changes nothing in the output.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::live::{Running, field, is_root};
use common::*;

/// Every thread of process `pid`: (name, CPUs it may run on).
fn threads_of(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(name), Ok(status)) =
            (std::fs::read_to_string(t.path().join("comm")), std::fs::read_to_string(t.path().join("status")))
        else {
            continue;
        };
        out.push((name.trim().to_string(), field(&status, "Cpus_allowed_list:").to_string()));
    }
    out.sort();
    out
}

/// The threads once both workers have started (bounded wait).
fn with_two_workers(pid: u32) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let t = threads_of(pid);
        if t.iter().filter(|(n, _)| n.starts_with("wstap-worker-")).count() == 2
            || start.elapsed() > Duration::from_secs(10)
        {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The CPUs this test may run on, as the kernel lists them.
fn allowed() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    wstap::cpus::parse(field(&status, "Cpus_allowed_list:")).unwrap()
}

/// A live capture on lo with two workers and `extra` options: its threads.
fn live_threads(extra: &[&str]) -> Vec<(String, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wstap"));
    cmd.args(["-i", "lo", "-q", "--threads", "2"]).args(extra).arg("tcp port 1");
    let mut w = Running::start(cmd);
    assert!(w.listening(), "wstap did not start: {:?}", w.stderr);
    let threads = with_two_workers(w.pid());
    let (_, code, err) = w.stop();
    assert_eq!(code, 0, "{err:?}");
    assert_eq!(threads.iter().filter(|(n, _)| n.starts_with("wstap-worker-")).count(), 2, "{threads:?}");
    threads
}

fn worker(threads: &[(String, String)], i: usize) -> Option<&str> {
    threads.iter().find(|(n, _)| *n == format!("wstap-worker-{i}")).map(|t| t.1.as_str())
}

#[test]
fn each_worker_runs_on_its_cpu_and_every_other_thread_on_the_list() {
    if !is_root() {
        eprintln!("cpus: skipped: live capture needs root");
        return;
    }
    let here = allowed();
    let everywhere = wstap::cpus::format(&here);
    // One CPU, the last this test may use (not the first, so that a list
    // ignored would show): every thread on it, both workers included.
    let last = here.last().unwrap().to_string();
    let threads = live_threads(&["--cpus", &last]);
    assert!(threads.len() >= 5, "the main thread, capture, correlator, writer and workers: {threads:?}");
    for (name, cpus) in &threads {
        assert_eq!(*cpus, last, "{name} runs outside --cpus {last}: {threads:?}");
    }
    // Two CPUs (or the one twice): each worker pinned to its own, in
    // order; every other thread may use both.
    let list: Vec<usize> = here.iter().rev().take(2).rev().copied().collect();
    let text = wstap::cpus::format(&list);
    let threads = live_threads(&["--cpus", &text]);
    assert_eq!(worker(&threads, 0), Some(list[0].to_string().as_str()), "{threads:?}");
    assert_eq!(worker(&threads, 1), Some(list[1 % list.len()].to_string().as_str()), "{threads:?}");
    for (name, cpus) in threads.iter().filter(|(n, _)| !n.starts_with("wstap-worker-")) {
        assert_eq!(*cpus, text, "{name} runs outside --cpus {text}: {threads:?}");
    }
    // Without --cpus nothing is pinned: every thread may run anywhere the
    // process may.
    let threads = live_threads(&[]);
    assert!(threads.iter().all(|(_, c)| *c == everywhere), "{threads:?}");
}

#[test]
fn the_list_changes_nothing_in_the_output() {
    let cap = capture("nginx-mass-close");
    let cap = cap.to_str().unwrap();
    let first = allowed()[0].to_string();
    let strip = |out: std::process::Output| -> String {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // The sum of the workers' peaks moves with how the run went.
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = s.find("\"peak_bytes\":").expect("summary");
        let end = at + s[at..].find(',').unwrap();
        format!("{}{}", &s[..at], &s[end..])
    };
    let pinned = strip(wstap(&["-r", cap, "--json", "--threads", "2", "--cpus", &first]));
    let free = strip(wstap(&["-r", cap, "--json", "--threads", "2"]));
    assert_eq!(pinned, free);
    assert!(pinned.contains("\"type\":\"session\""));
}

#[test]
fn a_bad_list_is_one_line_and_exit_2() {
    let cap = capture("nginx-healthy");
    let cap = cap.to_str().unwrap();
    let outside = (allowed().last().unwrap() + 1).to_string();
    for (list, says) in [
        ("0-", "invalid --cpus '0-': expected a CPU list such as 0-3,6"),
        ("3-1", "invalid --cpus '3-1': expected a CPU list such as 0-3,6"),
        ("1,x", "invalid --cpus '1,x': expected a CPU list such as 0-3,6"),
        (outside.as_str(), "wstap may not run on CPU"),
    ] {
        let out = wstap(&["-r", cap, "--cpus", list]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{list}: {err}");
        assert_eq!(err.lines().count(), 1, "{list}: {err}");
        assert!(err.starts_with("wstap: ") && err.contains(says), "{list}: {err}");
        assert!(out.stdout.is_empty(), "{list}");
    }
}
