//! `--cpus LIST`: the CPUs wstap runs on, as Suricata's `cpu-affinity`
//! sets and Zeek's `pin_cpus` place a sensor. The whole process (capture
//! threads, the reader, the correlator, the writer, the metrics endpoint)
//! stays on the list, and each analysis worker is pinned to one CPU of it,
//! in order (worker i on the list's i-th CPU, round again when there are
//! more workers than CPUs). On a proxy host this keeps the sensor off the
//! cores the proxy's own workers use (nginx `worker_cpu_affinity`).
//!
//! The list is in the kernel's format (`0-3,6`, as `taskset -c` and
//! /proc/PID/status `Cpus_allowed_list` write it). A CPU the process may
//! not run on (offline, or outside the set wstap was started in) is an
//! error, not silently dropped.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// A CPU list: ascending, no duplicates, not empty.
pub type Cpus = Vec<usize>;

/// Reads a CPU list (`0-3,6`).
pub fn parse(text: &str) -> Result<Cpus, String> {
    let bad = || format!("invalid --cpus '{text}': expected a CPU list such as 0-3,6");
    let number = |s: &str| -> Result<usize, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<usize>().ok().filter(|&n| n < CpuSet::count()).ok_or_else(|| {
            format!(
                "invalid --cpus '{text}': CPU {s} is past the last CPU the kernel interface knows ({})",
                CpuSet::count() - 1
            )
        })
    };
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The CPUs this process may run on now.
pub fn allowed() -> Cpus {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Writes a CPU list back in the kernel's format (ranges joined).
pub fn format(cpus: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&cpus[i].to_string());
        if j > i {
            out.push('-');
            out.push_str(&cpus[j].to_string());
        }
        i = j + 1;
    }
    out
}

/// Checks a list against the CPUs this process may run on (`allowed`).
pub fn check(cpus: &[usize], allowed: &[usize]) -> Result<(), String> {
    let outside: Vec<usize> = cpus.iter().copied().filter(|c| !allowed.contains(c)).collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(format!(
        "--cpus {}: wstap may not run on CPU {} here (it may run on {})",
        format(cpus),
        format(&outside),
        format(allowed)
    ))
}

fn set_of(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &c in cpus {
        // `parse` kept every CPU under CpuSet::count().
        let _ = set.set(c);
    }
    set
}

/// Keeps the calling thread, and every thread it starts from now on, on
/// `cpus`: called on the main thread before any other starts.
pub fn confine(cpus: &[usize]) -> Result<(), String> {
    sched_setaffinity(Pid::from_raw(0), &set_of(cpus))
        .map_err(|e| format!("--cpus {}: cannot run on them: {e}", format(cpus)))
}

/// The CPU worker `w` runs on.
pub fn of_worker(cpus: &[usize], w: usize) -> usize {
    cpus[w % cpus.len()]
}

/// Pins the calling thread, worker `w`, to its CPU of `cpus`. The process
/// was confined to the list already, so this cannot ask for a CPU it may
/// not use; if the kernel refuses anyway, the worker stays on the list.
pub fn pin_worker(cpus: &[usize], w: usize) {
    if !cpus.is_empty() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set_of(&[of_worker(cpus, w)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_the_kernel_writes_them() {
        assert_eq!(parse("0").unwrap(), [0]);
        assert_eq!(parse("0-3,6").unwrap(), [0, 1, 2, 3, 6]);
        assert_eq!(parse("6,0-1,1").unwrap(), [0, 1, 6], "sorted, duplicates once");
        assert_eq!(format(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(format(&parse("2-5,7").unwrap()), "2-5,7");
    }

    #[test]
    fn bad_lists_say_what_was_expected() {
        for bad in ["", "a", "1-", "-1", "3-1", "1,,2", " 1", "1.5", "0x1"] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("invalid --cpus '{bad}': expected a CPU list")), "{bad:?}: {e}");
        }
        let e = parse("0,99999").unwrap_err();
        assert!(e.contains("CPU 99999 is past the last CPU"), "{e}");
    }

    #[test]
    fn cpus_outside_the_allowed_set_are_named() {
        assert!(check(&[0, 1], &[0, 1, 2, 3]).is_ok());
        assert_eq!(
            check(&[1, 4, 5], &[0, 1, 2, 3]).unwrap_err(),
            "--cpus 1,4-5: wstap may not run on CPU 4-5 here (it may run on 0-3)"
        );
    }

    #[test]
    fn workers_take_the_cpus_in_turn() {
        let cpus = parse("2-3,6").unwrap();
        let placed: Vec<usize> = (0..5).map(|w| of_worker(&cpus, w)).collect();
        assert_eq!(placed, [2, 3, 6, 2, 3]);
    }

    #[test]
    fn the_allowed_set_is_the_kernels() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let listed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
        let here = allowed();
        assert!(!here.is_empty());
        assert_eq!(format(&here), listed);
    }
}
