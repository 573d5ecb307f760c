//! Loopback duplicates kept out of the kernel ring: a socket filter on the
//! packet type, which the kernel evaluates itself (libpcap drops the
//! outgoing copy only after the kernel copied it).

use std::os::fd::AsRawFd;

use pcap::{Active, Capture, Device, IfFlags};

use crate::capture::file::pcap_msg;
use crate::decode::LinkType;

/// On a loopback interface a packet socket sees every packet twice, going
/// out and coming in; libpcap throws the outgoing copy away in user space,
/// after the kernel has copied it into the ring. A filter on the packet
/// type, which the kernel evaluates itself, keeps that copy out of the
/// ring: half the copies and half the ring space on `lo` (and for the
/// loopback part of `-i any`, where proxies often reach their upstream), so
/// fewer kernel drops under load, and `received` counts each packet once.
///
/// Returns the expression for the kernel and whether its program reads a
/// cooked header (LINUX_SLL2) that must be rewritten as libpcap does.
pub(super) fn dedup_filter(iface: &str, linktype: LinkType, user: Option<&str>) -> Option<(String, bool)> {
    let and_user = |base: String| match user {
        Some(f) => format!("{base} and ({f})"),
        None => base,
    };
    if linktype == LinkType::ETHERNET && is_loopback(iface) {
        return Some((and_user("not outbound".into()), false));
    }
    if iface == "any" && linktype == LinkType::LINUX_SLL2 {
        // SAFETY: if_nametoindex on a NUL-terminated name.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        if lo != 0 {
            return Some((and_user(format!("not (outbound and ifindex {lo})")), true));
        }
    }
    None
}

// The kernel's sock_filter and libpcap's bpf_insn are the same 8 bytes.
const _: () = assert!(std::mem::size_of::<pcap::BpfInstruction>() == std::mem::size_of::<libc::sock_filter>());
const _: () = assert!(std::mem::align_of::<pcap::BpfInstruction>() == std::mem::align_of::<libc::sock_filter>());

const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MSH: u16 = 0xa0;
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PROTOCOL: u32 = 0;
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_IFINDEX: u32 = 8;
const SLL2_HDR_LEN: u32 = 20;

/// libpcap's `fix_program`/`fix_offset` for LINUX_SLL2: in the kernel the
/// packet starts after the cooked header, and the header's protocol,
/// interface index and packet type are ancillary loads. None when the
/// program reads another header field (libpcap then filters in user space).
fn cooked_to_kernel(prog: &mut [libc::sock_filter]) -> Option<()> {
    for p in prog {
        let class = p.code & 0x07;
        let mode = p.code & 0xe0;
        if !(class == BPF_LD || class == BPF_LDX) || !matches!(mode, BPF_ABS | BPF_IND | BPF_MSH) {
            continue;
        }
        if p.k >= SKF_AD_OFF {
            continue;
        }
        p.k = match p.k {
            k if k >= SLL2_HDR_LEN => k - SLL2_HDR_LEN,
            0 => SKF_AD_OFF + SKF_AD_PROTOCOL,
            4 => SKF_AD_OFF + SKF_AD_IFINDEX,
            10 => SKF_AD_OFF + SKF_AD_PKTTYPE,
            _ => return None,
        };
    }
    Some(())
}

fn program_of(prog: &pcap::BpfProgram) -> Vec<libc::sock_filter> {
    let insns = prog.get_instructions();
    // SAFETY: same size and alignment (asserted above), both plain
    // `{ u16 code; u8 jt; u8 jf; u32 k }`; the slice is read, not kept.
    unsafe { std::slice::from_raw_parts(insns.as_ptr().cast::<libc::sock_filter>(), insns.len()) }.to_vec()
}

/// Attaches [`dedup_filter`]'s program to the socket directly. Not through
/// `pcap_setfilter`: after a filter change libpcap re-runs the filter in
/// user space on the next frames, and its user-space interpreter cannot read
/// the packet type, so the first packets of the capture would be lost.
/// libpcap keeps the user's own filter for those frames, which passes what
/// it should (and drops outgoing loopback copies itself).
pub(super) fn attach_dedup_filter(cap: &Capture<Active>, expr: &str, cooked: bool) -> std::io::Result<()> {
    let prog = cap.compile(expr, true).map_err(|e| std::io::Error::other(pcap_msg(&e)))?;
    let mut insns = program_of(&prog);
    if cooked && cooked_to_kernel(&mut insns).is_none() {
        return Err(std::io::Error::other("the filter reads cooked header fields the kernel does not have"));
    }
    let fprog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_mut_ptr() };
    // SAFETY: `fprog` points at `insns`, alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::setsockopt(
            cap.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn is_loopback(iface: &str) -> bool {
    if iface == "any" {
        return false;
    }
    match Device::list() {
        Ok(devs) => devs.iter().any(|d| d.name == iface && d.flags.if_flags.contains(IfFlags::LOOPBACK)),
        Err(_) => iface == "lo",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_keeps_outgoing_copies_out_of_the_kernel_ring() {
        let (f, cooked) = dedup_filter("lo", LinkType::ETHERNET, Some("tcp port 80 or tcp port 81")).unwrap();
        assert_eq!((f.as_str(), cooked), ("not outbound and (tcp port 80 or tcp port 81)", false));
        assert_eq!(dedup_filter("lo", LinkType::ETHERNET, None).unwrap().0, "not outbound");
        let (f, cooked) = dedup_filter("any", LinkType::LINUX_SLL2, Some("tcp")).unwrap();
        assert!(f.starts_with("not (outbound and ifindex ") && f.ends_with(") and (tcp)") && cooked, "{f}");
        assert_eq!(dedup_filter("any", LinkType::LINUX_SLL, None), None, "SLL has no ifindex");
    }

    /// The rewrite libpcap does for cooked captures, on programs libpcap
    /// compiled: header fields become ancillary loads, payload offsets lose
    /// the 20-byte header.
    /// The rewrite libpcap does for cooked captures, on programs libpcap
    /// compiled: header fields become ancillary loads, payload offsets lose
    /// the 20-byte header.
    #[test]
    fn cooked_programs_are_rewritten_for_the_kernel() {
        let dead = pcap::Capture::dead(pcap::Linktype(276)).unwrap();
        let mut p = program_of(&dead.compile("not (outbound and ifindex 1)", true).unwrap());
        // ldb [10] (packet type); ld [4] (ifindex)
        assert_eq!((p[0].code, p[0].k), (0x30, 10));
        assert_eq!((p[2].code, p[2].k), (0x20, 4));
        cooked_to_kernel(&mut p).unwrap();
        assert_eq!(p[0].k, SKF_AD_OFF + SKF_AD_PKTTYPE);
        assert_eq!(p[2].k, SKF_AD_OFF + SKF_AD_IFINDEX);
        let mut p = program_of(&dead.compile("tcp port 80", true).unwrap());
        assert_eq!((p[0].code, p[0].k), (0x28, 0), "ldh [0]: protocol");
        let before: Vec<u32> = p.iter().map(|i| i.k).collect();
        cooked_to_kernel(&mut p).unwrap();
        assert_eq!(p[0].k, SKF_AD_OFF + SKF_AD_PROTOCOL);
        // IPv4 protocol byte: [20 + 9] in SLL2, [9] in the kernel.
        assert!(before.contains(&29) && p.iter().any(|i| i.code == 0x30 && i.k == 9));
        // A load of another header field cannot be done in the kernel.
        let mut odd = vec![libc::sock_filter { code: 0x30, jt: 0, jf: 0, k: 12 }];
        assert!(cooked_to_kernel(&mut odd).is_none());
    }
}
