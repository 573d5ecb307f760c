//! The allocator is jemalloc, not glibc's malloc: with thousands of
//! connections open at once, glibc's malloc and free took 13% of wstap's
//! time (8% with a hundred), merging and unlinking free chunks that had
//! long left the cache (`malloc_consolidate`, `unlink_chunk`); jemalloc's
//! size-class slabs keep their metadata apart (-10% wall time on one
//! thread and -13% on two, small packets; docs/benchmark.md "Allocator").

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start, so that peak RSS stays that of
/// the live state (the budget's) and not of the last moments' churn:
/// - `dirty_decay_ms:500`: memory freed goes back to the kernel after half
///   a second unused, not 10 s (shedding buffers at full speed frees
///   hundreds of MB a second: tests/hostile.rs, bench/run.sh's hogs). Not
///   shorter: with 20 ms, the slabs that batches and records empty and
///   fill again were handed back and faulted in again all the time, and
///   with two threads each return interrupts the other core (-1.5% to -4%
///   with two threads at 500 ms);
/// - `oversize_threshold:131072`: blocks of 128 KiB and more (the flow
///   table as it doubles, big buffers) come from jemalloc's own arena for
///   them and go back at once when freed, as glibc's mmapped chunks did;
/// - `tcache_max:8192`: a thread's cache keeps blocks up to 8 KiB, not
///   32 KiB (a flood of HTTP/2 header blocks and TLS records left 6 MB of
///   big blocks cached).
///
/// The others cost no time on the benchmark (docs/benchmark.md "Allocator").
/// (C's `const char *malloc_conf`: a thin pointer to a NUL-terminated string.)
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&u8> = Some(&b"dirty_decay_ms:500,oversize_threshold:131072,tcache_max:8192\0"[0]);

fn main() {
    let args = wstap::cli::Args::parse_line();
    match wstap::app::run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // A closed pipe (`wstap ... | head`) is not an error.
            if e.is_broken_pipe() {
                std::process::exit(0);
            }
            eprintln!("wstap: {e}");
            std::process::exit(2);
        }
    }
}
