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

fn workers_in(threads: &[(String, String)]) -> usize {
    threads.iter().filter(|(n, _)| n.starts_with("wstap-worker-")).count()
}

/// The CPUs this test may run on, as the kernel lists them.
fn allowed() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    wstap::cpus::parse(field(&status, "Cpus_allowed_list:")).unwrap()
}

/// A live capture on lo with `args`: its threads once `settled` says they
/// are (a thread is named, and a worker pinned, a moment after it starts;
/// at most 10 s), or as they are then.
fn live_threads(args: &[&str], settled: impl Fn(&[(String, String)]) -> bool) -> Vec<(String, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wstap"));
    cmd.args(["-i", "lo", "-q"]).args(args).arg("tcp port 1");
    let mut w = Running::start(cmd);
    assert!(w.listening(), "wstap did not start: {:?}", w.stderr);
    let start = Instant::now();
    let threads = loop {
        let t = threads_of(w.pid());
        if settled(&t) || start.elapsed() > Duration::from_secs(10) {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (_, code, err) = w.stop();
    assert_eq!(code, 0, "{err:?}");
    threads
}

fn worker(threads: &[(String, String)], i: usize) -> Option<&str> {
    threads.iter().find(|(n, _)| *n == format!("wstap-worker-{i}")).map(|t| t.1.as_str())
}

/// `workers` workers, worker i on the list's i-th CPU (in turn), every other
/// thread named and on the whole list.
fn placed(threads: &[(String, String)], list: &[usize], workers: usize) -> Result<(), String> {
    let text = wstap::cpus::format(list);
    if workers_in(threads) != workers {
        return Err(format!("{} workers, not {workers}", workers_in(threads)));
    }
    for i in 0..workers {
        let want = list[i % list.len()].to_string();
        if worker(threads, i) != Some(want.as_str()) {
            return Err(format!("wstap-worker-{i} on {:?}, not on {want}", worker(threads, i)));
        }
    }
    let others: Vec<_> = threads.iter().filter(|(n, _)| !n.starts_with("wstap-worker-")).collect();
    // The main thread, the capture thread, the correlator, the writer, each named.
    for name in ["wstap", "wstap-capture", "wstap-correlato", "wstap-writer"] {
        if others.iter().filter(|(n, _)| n == name).count() != 1 {
            return Err(format!("no single {name} thread"));
        }
    }
    match others.iter().find(|(_, c)| *c != text) {
        Some((n, c)) => Err(format!("{n} may run on {c}, outside {text}")),
        None => Ok(()),
    }
}

#[test]
fn each_worker_runs_on_its_cpu_and_every_other_thread_on_the_list() {
    if !is_root() {
        eprintln!("cpus: skipped: live capture needs root");
        return;
    }
    let here = allowed();
    let check = |args: &[&str], list: &[usize], workers: usize| {
        let threads = live_threads(args, |t| placed(t, list, workers).is_ok());
        if let Err(e) = placed(&threads, list, workers) {
            panic!("{args:?}: {e}: {threads:?}");
        }
    };
    // One CPU, the last this test may use (not the first, so that a list
    // ignored would show): every thread on it, both workers included.
    let last = [*here.last().unwrap()];
    check(&["--threads", "2", "--cpus", &wstap::cpus::format(&last)], &last, 2);
    // Two CPUs (or the one twice): each worker pinned to its own, in
    // order; every other thread may use both.
    let list: Vec<usize> = here.iter().rev().take(2).rev().copied().collect();
    let text = wstap::cpus::format(&list);
    check(&["--threads", "2", "--cpus", &text], &list, 2);
    // Not asked for a number, live capture runs a worker per listed CPU.
    check(&["--cpus", &text], &list, list.len());
    // Without --cpus nothing is pinned: every thread may run anywhere the
    // process may.
    let everywhere = wstap::cpus::format(&here);
    let threads = live_threads(&["--threads", "2"], |t| workers_in(t) == 2);
    assert_eq!(workers_in(&threads), 2, "{threads:?}");
    assert!(threads.iter().all(|(_, c)| *c == everywhere), "{threads:?}");
}

#[test]
fn the_list_changes_nothing_in_the_output() {
    let cap = capture("nginx-mass-close");
    let cap = cap.to_str().unwrap();
    let first = allowed()[0].to_string();
    let strip = |out: std::process::Output| -> String {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        peak_zeroed(&out.stdout)
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
