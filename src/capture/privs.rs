//! `-Z USER`: give up root once the capture device (and the first `-w` file)
//! is open, as tcpdump does. Only the open socket needs the privilege;
//! everything after it, parsing untrusted packets included, runs as USER.

use std::ffi::CString;

use crate::error::{Error, Result};

/// A user from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Looks USER up (getpwnam_r). A numeric USER that names no account is
/// refused too: `-Z` wants a real account with its groups.
pub fn lookup(name: &str) -> Result<User> {
    let unknown = || Error::new(format!("-Z {name}: no such user"));
    let cname = CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: getpwnam_r fills `pw` with pointers into `buf`, which
        // outlives every read of them below; `out` is null or `&mut pw`.
        let (rc, found, uid, gid) = unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut out: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out);
            (rc, !out.is_null(), pw.pw_uid, pw.pw_gid)
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(Error::new(format!("-Z {name}: {}", std::io::Error::from_raw_os_error(rc))));
        }
        if !found {
            return Err(unknown());
        }
        return Ok(User { name: name.to_string(), uid, gid });
    }
}

/// Refuses `-Z` when not running as root: only root can become someone else.
pub fn check_can_switch(user: &User) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(Error::new(format!(
            "-Z {}: only root can switch to another user (running as uid {euid})",
            user.name
        )));
    }
    Ok(())
}

/// Switches the whole process (every thread) to USER: supplementary groups,
/// then group, then user. Checks that root cannot be regained.
pub fn drop_to(user: &User) -> Result<()> {
    check_can_switch(user)?;
    let fail = |what: &str| Error::new(format!("-Z {}: {what}: {}", user.name, std::io::Error::last_os_error()));
    let cname = CString::new(user.name.as_str()).map_err(|_| Error::new(format!("-Z {}: bad name", user.name)))?;
    // SAFETY: plain system calls on integers and a NUL-terminated name.
    // glibc applies set*id to every thread of the process.
    unsafe {
        if libc::initgroups(cname.as_ptr(), user.gid as _) != 0 {
            return Err(fail("initgroups"));
        }
        if libc::setgid(user.gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(user.uid) != 0 {
            return Err(fail("setuid"));
        }
        if user.uid != 0 && libc::setuid(0) == 0 {
            return Err(Error::new(format!("-Z {}: root could be regained after setuid", user.name)));
        }
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
    fn unknown_user_is_one_clear_line() {
        let e = lookup("no-such-user-wstap").unwrap_err();
        assert_eq!(e.to_string(), "-Z no-such-user-wstap: no such user");
        assert!(lookup("bad\0name").is_err());
    }
}
