//! Privileges. wstap parses what the internet sends, so it holds no
//! privilege while it does (docs/live.md, "Privileges"):
//!
//! 1. At start, a set-user-ID or set-group-ID copy refuses to run: it would
//!    read and write files as its owner for anyone who runs it. File
//!    capabilities (`setcap cap_net_raw,cap_net_admin=eip`) are the way to
//!    let non-root users capture.
//! 2. The capture device (or the `-r` file) is opened with what the
//!    process has.
//! 3. Then, as tcpdump does: running as root, the process becomes an
//!    unprivileged user (`-Z USER`; by default `wstap` if that account
//!    exists, else `nobody`; `-Z root` keeps root): supplementary groups,
//!    group, user, checked that root cannot be regained. Every capability
//!    left is dropped (the `setcap` deployment: the process is not root but
//!    holds CAP_NET_RAW and CAP_NET_ADMIN), checked with capget, and
//!    no_new_privs is set. Only then are `-w` files opened (as the user,
//!    never following a symbolic link, see dump.rs) and packets parsed.
//!
//! Accounts, groups, set*id and no_new_privs go through nix; capabilities
//! through capget/capset directly, which nix does not wrap (two system
//! calls, checked after).

use std::ffi::CString;

use nix::unistd::{self, Gid, Uid};

use crate::error::{Error, Result};

/// Accounts tried, in order, when running as root without `-Z`.
pub const DEFAULT_USERS: &[&str] = &["wstap", "nobody"];

/// What to do once the capture is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Stay as is (not root, or `-Z root`); capabilities are still dropped
    /// unless root was asked to be kept.
    Keep { root: bool },
    /// Become this user.
    Become(User),
}

/// The plan for `-Z` (None: the default).
pub fn plan(z: Option<&str>) -> Result<Plan> {
    let euid = unistd::geteuid();
    match z {
        Some(name) => {
            let u = lookup(name)?;
            check_can_switch(&u)?;
            Ok(if u.uid == 0 { Plan::Keep { root: true } } else { Plan::Become(u) })
        }
        None if euid.is_root() => {
            DEFAULT_USERS.iter().find_map(|n| lookup(n).ok()).map(Plan::Become).ok_or_else(|| {
                Error::Privileges(
                    "running as root, and no unprivileged account to parse packets as (wstap, nobody): \
                 create one (useradd --system --no-create-home wstap) or keep root with -Z root"
                        .into(),
                )
            })
        }
        None => Ok(Plan::Keep { root: false }),
    }
}

/// Carries the plan out (step 3 above).
pub fn apply(plan: &Plan) -> Result<()> {
    match plan {
        Plan::Keep { root: true } => return Ok(()),
        Plan::Keep { root: false } => {}
        Plan::Become(u) => drop_to(u)?,
    }
    drop_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| Error::Privileges(format!("cannot set no_new_privs: {e}")))?;
    DROPPED.store(true, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// Set once [`apply`] has dropped privileges (not with `-Z root`).
static DROPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a thread started before [`apply`] (the live key log's reader,
/// which opens its file with the privileges of the start): capabilities
/// and `no_new_privs` belong to each thread, so such a thread calls this
/// in its loop until it returns `true`, and from then on holds what the
/// rest of the process holds. `false` while nothing has been dropped yet
/// (or ever, with `-Z root`).
pub fn follow_drop() -> bool {
    if !DROPPED.load(std::sync::atomic::Ordering::Acquire) {
        return false;
    }
    // Failures here leave the thread as it was; the main thread's own
    // drop was checked. A thread that cannot drop says so once.
    if let Err(e) = drop_capabilities()
        .and_then(|_| nix::sys::prctl::set_no_new_privs().map_err(|e| Error::Privileges(e.to_string())))
    {
        eprintln!("wstap: warning: a helper thread kept its privileges: {e}");
    }
    true
}

/// Step 1: a set-user-ID or set-group-ID copy refuses to run.
pub fn refuse_setid() -> Result<()> {
    let (uid, euid, gid, egid) = (unistd::getuid(), unistd::geteuid(), unistd::getgid(), unistd::getegid());
    if uid != euid || gid != egid {
        return Err(Error::Privileges(format!(
            "refusing to run set-user-ID or set-group-ID (real uid {uid}, effective uid {euid}, real gid {gid}, \
             effective gid {egid}): remove the bit (chmod u-s,g-s); to capture without root grant capabilities \
             instead: sudo setcap cap_net_raw,cap_net_admin=eip {}",
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "wstap".into())
        )));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// The calling thread's (effective, permitted, inheritable) capability
/// sets, 64 bits each.
pub fn capabilities() -> Result<(u64, u64, u64)> {
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let mut d = [CapData::default(); 2];
    // SAFETY: capget fills two CapData for version 3, as the kernel ABI says.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::Privileges(format!("capget: {}", std::io::Error::last_os_error())));
    }
    let w = |f: fn(&CapData) -> u32| f(&d[0]) as u64 | (f(&d[1]) as u64) << 32;
    Ok((w(|c| c.effective), w(|c| c.permitted), w(|c| c.inheritable)))
}

/// Empties the effective, permitted and inheritable sets (and the ambient
/// one), then checks they are empty. Threads started later inherit this.
pub fn drop_capabilities() -> Result<()> {
    // SAFETY: prctl with integer arguments; fails harmlessly on old kernels.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    if capabilities()? == (0, 0, 0) {
        return Ok(());
    }
    let mut h = CapHeader { version: CAP_V3, pid: 0 };
    let d = [CapData::default(); 2];
    // SAFETY: capset reads two CapData for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    if rc != 0 {
        return Err(Error::Privileges(format!("cannot drop capabilities: {}", std::io::Error::last_os_error())));
    }
    match capabilities()? {
        (0, 0, 0) => Ok(()),
        (e, p, _) => Err(Error::Privileges(format!(
            "capabilities still held after dropping them (effective {e:#x}, permitted {p:#x})"
        ))),
    }
}

/// A user from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Looks USER up in the password database. A numeric USER that names no
/// account is refused too: `-Z` wants a real account with its groups.
pub fn lookup(name: &str) -> Result<User> {
    let unknown = || Error::Privileges(format!("-Z {name}: no such user"));
    if name.contains('\0') {
        return Err(unknown());
    }
    match unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(User { name: name.to_string(), uid: u.uid.as_raw(), gid: u.gid.as_raw() }),
        Ok(None) => Err(unknown()),
        Err(e) => Err(Error::Privileges(format!("-Z {name}: {}", std::io::Error::from(e)))),
    }
}

/// Refuses `-Z` when not running as root: only root can become someone else.
pub fn check_can_switch(user: &User) -> Result<()> {
    let euid = unistd::geteuid();
    if !euid.is_root() {
        return Err(Error::Privileges(format!(
            "-Z {}: only root can switch to another user (running as uid {euid})",
            user.name
        )));
    }
    Ok(())
}

/// Switches the whole process (every thread) to USER: supplementary groups,
/// then group, then user. Checks that root cannot be regained. (glibc
/// applies set*id to every thread of the process.)
pub fn drop_to(user: &User) -> Result<()> {
    check_can_switch(user)?;
    let fail =
        |what: &str, e: nix::Error| Error::Privileges(format!("-Z {}: {what}: {}", user.name, std::io::Error::from(e)));
    let cname =
        CString::new(user.name.as_str()).map_err(|_| Error::Privileges(format!("-Z {}: bad name", user.name)))?;
    unistd::initgroups(&cname, Gid::from_raw(user.gid)).map_err(|e| fail("initgroups", e))?;
    unistd::setgid(Gid::from_raw(user.gid)).map_err(|e| fail("setgid", e))?;
    unistd::setuid(Uid::from_raw(user.uid)).map_err(|e| fail("setuid", e))?;
    if user.uid != 0 && unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(Error::Privileges(format!("-Z {}: root could be regained after setuid", user.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_every_password_database() {
        let u = lookup("root").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
    }

    #[test]
    fn plans() {
        let root = unistd::geteuid().is_root();
        if root {
            assert_eq!(plan(Some("root")).unwrap(), Plan::Keep { root: true });
            assert!(matches!(plan(None).unwrap(), Plan::Become(u) if u.uid != 0));
        } else {
            assert_eq!(plan(None).unwrap(), Plan::Keep { root: false });
            assert!(plan(Some("root")).is_err(), "only root can switch");
        }
        assert!(refuse_setid().is_ok(), "tests do not run set-user-ID");
        let (e, p, _) = capabilities().unwrap();
        assert_eq!(e & !p, 0, "effective is a subset of permitted");
    }

    #[test]
    fn unknown_user_is_one_clear_line() {
        let e = lookup("no-such-user-wstap").unwrap_err();
        assert_eq!(e.to_string(), "-Z no-such-user-wstap: no such user");
        assert!(lookup("bad\0name").is_err());
    }
}
