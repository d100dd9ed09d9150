//! Small helpers that turn C calling conventions into `io::Result`.
//!
//! Two conventions exist at the libc boundary: most calls return `-1` and set `errno`,
//! while the `posix_spawn` family returns the error number itself. EINTR is retried in
//! exactly one place, [`retry_eintr`].

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `-1` + errno → `Err`, anything else → `Ok`.
pub fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `posix_spawn` convention: `0` is success, anything else is the errno.
pub fn cvt_nz(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// Runs `f` until it fails with something other than EINTR.
pub fn retry_eintr<T, F: FnMut() -> io::Result<T>>(mut f: F) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// `F_GETFD`: the descriptor flags, or EBADF when `fd` is not open.
pub fn fd_flags(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFD only reads the descriptor table; an invalid fd yields EBADF.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })
}

/// A close-on-exec duplicate of `fd` numbered `min` or higher.
pub fn dup_cloexec(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor; on success we are its only owner.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a borrowed, open descriptor.
    let flags = cvt(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(raw, libc::F_SETFL, wanted) })?;
    }
    Ok(())
}

/// The text `strerror` gives for `errno`, as Python's `os.strerror` does.
pub fn strerror(errno: i32) -> String {
    // `io::Error`'s Display appends " (os error N)"; strip it to match Python.
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_matches_libc_text() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(strerror(libc::EPIPE), "Broken pipe");
    }

    #[test]
    fn fd_flags_reports_ebadf() {
        let err = fd_flags(1_000_000).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn cvt_nz_maps_errno() {
        assert!(cvt_nz(0).is_ok());
        assert_eq!(
            cvt_nz(libc::EACCES).unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
    }
}
