//! The capture device: opened through libpcap with its status kept (a
//! warning is not a failure; "no such device" and "permission denied" get
//! their way out), filtered, made non-blocking; then privileges are
//! dropped and the `-w` file created. `-D` lists the devices.

use std::ptr::NonNull;

use pcap::{Active, Capture, ConnectionStatus, Device, IfFlags, Inactive, Linktype};

use super::LiveConfig;
use super::bpf::{attach_dedup_filter, dedup_filter};
use super::worker::wall_secs;
use crate::capture::dump::Dumper;
use crate::capture::file::{filter_error, pcap_msg};
use crate::capture::privs;
use crate::decode::LinkType;
use crate::error::{Error, Result};

/// The kernel hands packets over at the latest this long after they
/// arrive (libpcap's read timeout, the TPACKET_V3 block timeout on Linux).
///
/// Not libpcap's immediate mode: on Linux that means TPACKET_V2, a ring of
/// fixed-size frames each as large as the biggest packet the interface can
/// deliver (64 KiB and more with segmentation offload, and on `lo`), and one
/// wakeup per packet. Measured on `lo` (docs/live.md): at 10k packets/s it
/// costs ten times the CPU, and at 100k packets/s the kernel drops packets
/// that the block ring (packets packed back to back, one wakeup per block)
/// takes without loss. 10 ms is not noticeable on output meant for people
/// and leaves packet time exact (timestamps are the kernel's).
const DELIVERY_MS: i32 = 10;

/// `-D`: the interfaces libpcap can open, numbered as tcpdump prints them.
pub fn list_interfaces() -> Result<i32> {
    use std::io::Write;
    let devs = Device::list().map_err(|e| Error::new(pcap_msg(&e)))?;
    let mut out = std::io::stdout().lock();
    for (i, d) in devs.iter().enumerate() {
        out.write_all(interface_line(i + 1, d).as_bytes())?;
    }
    out.flush()?;
    Ok(0)
}

/// `-L`: the link-layer types IFACE offers, as `tcpdump -L` prints them.
pub fn list_linktypes(iface: &str) -> Result<i32> {
    use std::io::Write;
    let inactive = Capture::from_device(iface).map_err(|e| device(iface, pcap_msg(&e)))?.promisc(false);
    let (cap, _) = activate(inactive, iface)?;
    let lts = cap.list_datalinks().map_err(|e| device(iface, pcap_msg(&e)))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Data link types for {iface} (use option -y to set):")?;
    for lt in lts {
        let name = lt.get_name().unwrap_or_else(|_| format!("DLT {}", lt.0));
        let desc = lt.get_description().unwrap_or_default();
        let note = if LinkType(lt.0).is_supported() { "" } else { " (not decoded by wstap)" };
        writeln!(out, "  {name} ({desc}){note}")?;
    }
    out.flush()?;
    Ok(0)
}

/// `N.NAME (description) [flags]`, as `tcpdump -D` prints it.
fn interface_line(n: usize, d: &Device) -> String {
    let mut s = format!("{n}.{}", d.name);
    if let Some(desc) = &d.desc {
        s += &format!(" ({desc})");
    }
    let f = d.flags.if_flags;
    let status = &d.flags.connection_status;
    if f.is_empty() && *status == ConnectionStatus::Unknown {
        s.push('\n');
        return s;
    }
    let mut flags: Vec<&str> = [
        (IfFlags::UP, "Up"),
        (IfFlags::RUNNING, "Running"),
        (IfFlags::LOOPBACK, "Loopback"),
        (IfFlags::WIRELESS, "Wireless"),
    ]
    .into_iter()
    .filter(|(bit, _)| f.contains(*bit))
    .map(|(_, name)| name)
    .collect();
    if flags.is_empty() {
        flags.push("none");
    }
    let wireless = f.contains(IfFlags::WIRELESS);
    match (status, wireless) {
        (ConnectionStatus::Unknown, true) => flags.push("Association status unknown"),
        (ConnectionStatus::Connected, true) => flags.push("Associated"),
        (ConnectionStatus::Disconnected, true) => flags.push("Not associated"),
        (ConnectionStatus::Unknown, false) => flags.push("Connection status unknown"),
        (ConnectionStatus::Connected, false) => flags.push("Connected"),
        (ConnectionStatus::Disconnected, false) => flags.push("Disconnected"),
        (ConnectionStatus::NotApplicable, _) => {}
    }
    s += &format!(" [{}]\n", flags.join(", "));
    s
}

/// What was opened, for the "listening on" line and the dashboard.
#[derive(Debug, Clone)]
pub struct OpenInfo {
    pub iface: String,
    pub linktype: LinkType,
    pub snaplen: i32,
    /// The first `-w` file.
    pub file: Option<String>,
    /// libpcap warned while activating (e.g. promiscuous mode unsupported).
    pub warning: Option<String>,
    /// Kernel rings (`--fanout`; 1 without).
    pub rings: usize,
}

impl OpenInfo {
    /// tcpdump's "listening on lo, link-type EN10MB (Ethernet), snapshot
    /// length 262144 bytes".
    pub fn listening_line(&self) -> String {
        let lt = Linktype(self.linktype.0);
        let name = lt.get_name().unwrap_or_else(|_| self.linktype.0.to_string());
        let desc = lt.get_description().map(|d| format!(" ({d})")).unwrap_or_default();
        let mut s =
            format!("listening on {}, link-type {name}{desc}, snapshot length {} bytes", self.iface, self.snaplen);
        if self.rings > 1 {
            s += &format!(", {} rings (PACKET_FANOUT by flow)", self.rings);
        }
        if let Some(f) = &self.file {
            s += &if f == "-" {
                ", writing the packets to standard output".to_string()
            } else {
                format!(", writing {f}")
            };
        }
        s
    }
}

unsafe extern "C" {
    fn pcap_activate(p: *mut libc::c_void) -> libc::c_int;
    fn pcap_statustostr(status: libc::c_int) -> *const libc::c_char;
    fn pcap_geterr(p: *mut libc::c_void) -> *mut libc::c_char;
}

const PCAP_ERROR: i32 = -1;
const PCAP_ERROR_NO_SUCH_DEVICE: i32 = -5;
const PCAP_ERROR_PERM_DENIED: i32 = -8;

/// `pcap_activate`, keeping its status code. (The crate's `open()` reduces
/// every failure and every warning to the error text, and a warning is not a
/// failure; the status tells "no such device" from "permission denied".)
fn activate(cap: Capture<Inactive>, iface: &str) -> Result<(Capture<Active>, Option<String>)> {
    let ptr = cap.as_ptr();
    // SAFETY: `ptr` is the live handle owned by `cap`; pcap_geterr returns a
    // NUL-terminated buffer inside it, read before `cap` is dropped.
    let (status, detail) = unsafe {
        let status = pcap_activate(ptr.cast());
        let e = pcap_geterr(ptr.cast());
        let detail = if e.is_null() { String::new() } else { std::ffi::CStr::from_ptr(e).to_string_lossy().into() };
        (status, detail)
    };
    if status < 0 {
        drop(cap);
        return Err(activate_error(iface, status, detail.trim()));
    }
    let warning = (status > 0).then(|| {
        let d = detail.trim();
        if d.is_empty() { format!("{iface}: {}", status_text(status)) } else { format!("{iface}: {d}") }
    });
    let handle = NonNull::new(ptr).ok_or_else(|| device(iface, "no capture handle".into()))?;
    // The same pcap_t, now activated, changes owner: `cap` must not close it.
    std::mem::forget(cap);
    Ok((Capture::<Active>::from(handle), warning))
}

fn status_text(status: i32) -> String {
    // SAFETY: pcap_statustostr returns a static (or thread-local) string.
    unsafe {
        let s = pcap_statustostr(status);
        if s.is_null() { format!("error {status}") } else { std::ffi::CStr::from_ptr(s).to_string_lossy().into() }
    }
}

/// One line per failure, as tcpdump words them, with the way out.
pub fn activate_error(iface: &str, status: i32, detail: &str) -> Error {
    match status {
        PCAP_ERROR_NO_SUCH_DEVICE => device(iface, "No such device exists (wstap -D lists the interfaces)".into()),
        PCAP_ERROR_PERM_DENIED => device(
            iface,
            format!(
                "You don't have permission to capture on that device (run as root, or grant the capability: sudo setcap cap_net_raw,cap_net_admin=eip {})",
                exe_for_message()
            ),
        ),
        PCAP_ERROR if !detail.is_empty() => device(iface, detail.to_string()),
        _ if detail.is_empty() => device(iface, status_text(status)),
        _ => device(iface, format!("{} ({detail})", status_text(status))),
    }
}

/// A live capture device that cannot be opened or read.
fn device(iface: &str, reason: String) -> Error {
    Error::Device { iface: iface.to_string(), reason }
}

fn exe_for_message() -> String {
    match std::env::current_exe() {
        Ok(p) if !p.to_string_lossy().contains(char::is_whitespace) => p.to_string_lossy().into_owned(),
        _ => "$(command -v wstap)".to_string(),
    }
}

/// Opens the device and sets the filters (what needs the privilege), drops
/// every privilege (privs.rs), then opens the `-w` file as the user that
/// parses the packets, as tcpdump does. With `--fanout N`, N handles of the
/// same interface, each joined to one PACKET_FANOUT group by flow hash.
pub(super) fn open_device(cfg: &LiveConfig) -> Result<(Vec<Capture<Active>>, Option<Dumper>, OpenInfo)> {
    let iface = cfg.iface.as_str();
    let (first, linktype, warning) = open_handle(cfg)?;
    let mut caps = vec![first];
    if cfg.rings > 1 {
        let group = fanout_group();
        join_fanout(&caps[0], group).map_err(|e| device(iface, format!("--fanout: {e}")))?;
        for _ in 1..cfg.rings {
            let (cap, _, _) = open_handle(cfg)?;
            join_fanout(&cap, group).map_err(|e| device(iface, format!("--fanout: {e}")))?;
            caps.push(cap);
        }
    }
    // The socket is open and filtered: nothing needs a privilege any more.
    privs::apply(&cfg.plan)?;
    let dumper = match &cfg.write {
        Some(rot) => Some(Dumper::open(rot.clone(), linktype.0 as u32, cfg.snaplen as u32, wall_secs())?),
        None => None,
    };
    let info = OpenInfo {
        iface: iface.to_string(),
        linktype,
        snaplen: cfg.snaplen,
        file: dumper.as_ref().map(|d| d.current().to_string()),
        warning,
        rings: cfg.rings,
    };
    Ok((caps, dumper, info))
}

/// One handle on the device, activated, typed, filtered and non-blocking:
/// with its link type and libpcap's warning.
fn open_handle(cfg: &LiveConfig) -> Result<(Capture<Active>, LinkType, Option<String>)> {
    let iface = cfg.iface.as_str();
    let mut inactive = Capture::from_device(iface)
        .map_err(|e| device(iface, pcap_msg(&e)))?
        .snaplen(cfg.snaplen)
        .promisc(false)
        .immediate_mode(cfg.immediate)
        .timeout(DELIVERY_MS);
    if let Some(b) = cfg.buffer_bytes {
        inactive = inactive.buffer_size(b);
    }
    let (mut cap, warning) = activate(inactive, iface)?;
    match &cfg.linktype {
        Some(name) => {
            let lt = Linktype::from_name(name).map_err(|_| {
                Error::usage(format!("-y {name}: not a link-layer type name (wstap -i {iface} -L lists them)"))
            })?;
            cap.set_datalink(lt).map_err(|e| device(iface, format!("-y {name}: {} (-L lists them)", pcap_msg(&e))))?;
        }
        None if iface == "any" => {
            // As tcpdump: SLL2 carries the interface index. Quietly keep
            // the default where it is not offered.
            let _ = cap.set_datalink(Linktype(LinkType::LINUX_SLL2.0));
        }
        None => {}
    }
    if let Some(d) = cfg.direction {
        let d = match d {
            crate::cli::Direction::In => pcap::Direction::In,
            crate::cli::Direction::Out => pcap::Direction::Out,
            crate::cli::Direction::Inout => pcap::Direction::InOut,
        };
        cap.direction(d).map_err(|e| device(iface, format!("-Q: {}", pcap_msg(&e))))?;
    }
    let linktype = LinkType(cap.get_datalink().0);
    if !linktype.is_supported() {
        return Err(device(
            iface,
            format!(
                "link type {} ({}) is not supported",
                linktype.0,
                cap.get_datalink().get_name().unwrap_or_else(|_| "unknown".into())
            ),
        ));
    }
    if let Some(f) = &cfg.filter {
        cap.filter(f, true).map_err(|e| filter_error(f, &e))?;
    }
    if let Some((expr, cooked)) = dedup_filter(iface, linktype, cfg.filter.as_deref()) {
        // Best effort: without it, the kernel copies both and libpcap
        // drops the outgoing copy, as tcpdump has it.
        let _ = attach_dedup_filter(&cap, &expr, cooked);
    }
    let cap = cap.setnonblock().map_err(|e| device(iface, pcap_msg(&e)))?;
    Ok((cap, linktype, warning))
}

/// A PACKET_FANOUT group id for this process (ids are per network
/// namespace; two wstaps on one host get different ones).
fn fanout_group() -> u16 {
    (std::process::id() & 0xffff) as u16
}

/// Joins `cap`'s packet socket to fanout group `group`, spread by flow hash
/// (the kernel's symmetric hash: both directions of a connection in the
/// same ring), IP fragments reassembled before hashing, as Suricata's
/// af-packet `cluster_flow` does.
fn join_fanout(cap: &Capture<Active>, group: u16) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const PACKET_FANOUT: libc::c_int = 18;
    const PACKET_FANOUT_HASH: libc::c_int = 0;
    const PACKET_FANOUT_FLAG_DEFRAG: libc::c_int = 0x8000;
    let arg: libc::c_int = group as libc::c_int | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    // SAFETY: a valid socket descriptor owned by `cap`, and a c_int option
    // value of the size given.
    let r = unsafe {
        libc::setsockopt(
            cap.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_FANOUT,
            (&arg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_with_the_way_out() {
        let e = activate_error("eth9", PCAP_ERROR_NO_SUCH_DEVICE, "SIOCGIFHWADDR: No such device");
        assert_eq!(e.to_string(), "eth9: No such device exists (wstap -D lists the interfaces)");
        let e = activate_error("lo", PCAP_ERROR_PERM_DENIED, "socket: Operation not permitted").to_string();
        assert!(e.starts_with("lo: You don't have permission to capture on that device (run as root, or grant"));
        assert!(e.contains("setcap cap_net_raw,cap_net_admin=eip "));
        assert!(!e.contains('\n'));
        assert_eq!(activate_error("x", PCAP_ERROR, "boom").to_string(), "x: boom");
    }
}
