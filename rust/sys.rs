//! Small helpers that turn C calling conventions into `io::Result`.
//!
//! Two conventions exist at the libc boundary: most calls return `-1` and set `errno`,
//! while the `posix_spawn` family returns the error number itself. EINTR is retried in
//! exactly one place, [`retry_eintr`]. The wait helpers ([`wait_nohang`],
//! [`waitid_pidfd`]) and the status-to-`returncode` conversions live here too: both the
//! child handle and the reaper stand on them.

use std::ffi::CStr;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

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

/// `waitid(idtype, id, &info, flags)`, EINTR retried: the child's `siginfo_t`, or
/// `Ok(None)` when `WNOHANG` found no child in a waitable state (the kernel then leaves
/// `si_pid` at the zero it was given).
pub fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    flags: libc::c_int,
) -> io::Result<Option<libc::siginfo_t>> {
    // SAFETY: siginfo_t is plain data, for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes one siginfo_t through the pointer we pass.
    retry_eintr(|| cvt(unsafe { libc::waitid(idtype, id, &raw mut info, flags) }))?;
    // SAFETY: waitid filled the SIGCHLD fields, or left the zeroed ones.
    let pid = unsafe { info.si_pid() };
    Ok((pid != 0).then_some(info))
}

/// A `waitpid` status as Python's `returncode`: the exit code, or `-signal`.
pub fn returncode(status: libc::c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(-libc::WTERMSIG(status))
    } else {
        None
    }
}

/// A `waitid` result as Python's `returncode`: the exit code, or `-signal`.
fn siginfo_returncode(info: &libc::siginfo_t) -> Option<i32> {
    // SAFETY: waitid filled the SIGCHLD fields of `info`.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => Some(status),
        libc::CLD_KILLED | libc::CLD_DUMPED => Some(-status),
        _ => None,
    }
}

/// Non-blocking `waitpid` for one pid: `Ok(None)` while it runs.
///
/// `Err(ECHILD)` means something else in this process reaped it first.
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes one c_int through the pointer we pass.
    let got = retry_eintr(|| cvt(unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) }))?;
    Ok(if got == 0 { None } else { returncode(status) })
}

/// `waitid(P_PIDFD, fd, WEXITED | flags)`: the returncode once the child exited (reaping
/// it unless `flags` has `WNOWAIT`), `Ok(None)` while it runs (with `WNOHANG`).
///
/// `Err(ECHILD)`: the pidfd's process is not an unreaped child of ours (something else
/// reaped it, or it never was ours).
pub fn waitid_pidfd(fd: &OwnedFd, flags: libc::c_int) -> io::Result<Option<i32>> {
    let info = waitid(
        libc::P_PIDFD,
        fd.as_raw_fd() as libc::id_t,
        libc::WEXITED | flags,
    )?;
    Ok(info.as_ref().and_then(siginfo_returncode))
}

/// The address of a libc symbol, if this libc has it (`dlsym(RTLD_DEFAULT)`): how an
/// optional glibc extension is found at run time.
///
/// # Safety
/// The caller must only use the address as the function (or object) type the symbol
/// really has.
pub unsafe fn weak_symbol(name: &CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the name up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
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

/// The size of a memory page (`sysconf(_SC_PAGESIZE)`), read once.
pub fn page_size() -> usize {
    static PAGE_SIZE: OnceLock<usize> = OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf only reads a system constant.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Gives the memory of the whole pages inside `buf` back to the kernel
/// (`madvise(MADV_DONTNEED)`), for bytes that will not be read again: the resident
/// memory shrinks at once, without freeing the allocation.
///
/// Only pages lying entirely inside `buf` are touched: the partial pages at either end
/// may hold other data (an allocator's header, another object) and are left alone, so
/// nothing outside `buf` changes. Inside, the released bytes afterwards read as zeros
/// (private anonymous memory, what the allocator hands out; the file's bytes for a
/// private file mapping, the same bytes for a shared one). Any of those is a valid `u8`
/// and `buf` is borrowed exclusively, so this is safe on any slice; the caller only
/// loses the old contents.
///
/// Returns the range released, as offsets into `buf` (empty when no whole page lies
/// inside, and then no system call is made).
pub fn release_pages(buf: &mut [u8]) -> io::Result<Range<usize>> {
    advise_whole_pages(buf, libc::MADV_DONTNEED)
}

/// Makes the whole pages inside `buf` resident and writable now
/// (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14+; `EINVAL` before), as writing to each
/// would, but in one system call instead of one page fault per page. The contents do
/// not change. For memory about to be overwritten in full.
pub fn prefault_pages(buf: &mut [u8]) -> io::Result<Range<usize>> {
    advise_whole_pages(buf, libc::MADV_POPULATE_WRITE)
}

/// `madvise(advice)` on the whole pages inside `buf`: the range advised, as offsets
/// into `buf` (empty, and no system call, when no whole page lies inside). The advice
/// must leave every byte of those pages a valid `u8` (see [`release_pages`]).
fn advise_whole_pages(buf: &mut [u8], advice: libc::c_int) -> io::Result<Range<usize>> {
    let page = page_size();
    let addr = buf.as_ptr().addr();
    let start = addr.next_multiple_of(page) - addr;
    let end = ((addr + buf.len()) & !(page - 1)).saturating_sub(addr);
    if start >= end {
        return Ok(0..0);
    }
    // SAFETY: [start, end) is inside `buf`, which we borrow exclusively, and is made of
    // whole pages, so no byte outside `buf` is affected; the bytes inside keep or take
    // a valid value (the callers' advice).
    cvt(unsafe { libc::madvise(buf.as_mut_ptr().add(start).cast(), end - start, advice) })?;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_pages_zeroes_whole_pages_inside_only() {
        let page = page_size();
        let mut data = vec![0xab_u8; 5 * page + 123];
        let len = data.len();
        let range = release_pages(&mut data[7..len - 5]).unwrap();
        let (start, end) = (range.start + 7, range.end + 7);
        let base = data.as_ptr().addr();
        assert_eq!((base + start) % page, 0);
        assert_eq!((base + end) % page, 0);
        assert!(end - start >= 3 * page, "{start}..{end}");
        assert!(start >= 7 && start - 7 < page && end <= len - 5 && len - 5 - end < page);
        assert!(data[start..end].iter().all(|&b| b == 0));
        assert!(data[..start].iter().all(|&b| b == 0xab));
        assert!(data[end..].iter().all(|&b| b == 0xab));
    }

    #[test]
    fn prefault_pages_keeps_the_contents() {
        let page = page_size();
        let mut data: Vec<u8> = (0..4 * page).map(|i| (i % 253) as u8).collect();
        let expected = data.clone();
        // EINVAL before Linux 5.14; the contents must stay either way.
        let _ = prefault_pages(&mut data[1..]);
        assert!(data == expected);
    }

    #[test]
    fn release_pages_without_a_whole_page_does_nothing() {
        let page = page_size();
        let mut data = vec![1_u8; 2 * page];
        let base = data.as_ptr().addr();
        // A slice shorter than a page, or one that straddles a boundary without covering
        // a whole page.
        let off = base.next_multiple_of(page) - base;
        let from = off.saturating_sub(10);
        assert_eq!(release_pages(&mut data[from..from + 20]).unwrap(), 0..0);
        assert_eq!(release_pages(&mut data[..0]).unwrap(), 0..0);
        assert!(data.iter().all(|&b| b == 1));
    }

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
