//! A leaf cgroup (v2) per child: every descendant, however it forked, daemonised or
//! outlived the child, stays in it, so it can be listed, signalled and killed as a whole.
//!
//! The parent creates the leaf under a directory the caller gives (`mkdir` before the
//! spawn) and opens the leaf's `cgroup.procs`; the child writes "0" to that descriptor
//! between clone and exec (`spawn/clone.rs`), before it can fork. Everything here works
//! on descriptors opened once (the parent directory and the leaf, both `O_PATH`), never
//! on a path looked up again, so a rename cannot redirect it.
//!
//! * [`CGroup::kill`]: `cgroup.kill` (Linux 5.14), which the kernel applies to every
//!   member, forks in flight included. Without it: freeze (`cgroup.freeze`), wait for
//!   `frozen 1`, SIGKILL every member listed, thaw.
//! * [`CGroup::signal`]: any other signal: freeze, signal every member (through a pidfd
//!   each: a frozen process cannot exit, so the pid listed is the process signalled),
//!   thaw; SIGCONT after SIGTERM, so a stopped process can act on it.
//! * [`CGroup::remove`]: `rmdir` once empty. Dropping a `CGroup` tries it too.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::child::pidfd_open;
use crate::sys::{cvt, retry_eintr};

/// `statfs.f_type` of a cgroup v2 filesystem (`CGROUP2_SUPER_MAGIC`).
const CGROUP2_SUPER_MAGIC: libc::c_long = 0x6367_7270;

/// How long [`CGroup::signal`] and the `cgroup.kill`-less [`CGroup::kill`] wait for the
/// freeze to take effect (a process in uninterruptible sleep freezes only when it leaves
/// it); past it, what is listed is signalled anyway, then listed again.
const FREEZE_TIMEOUT: Duration = Duration::from_millis(500);

/// Leaves created by this process so far: the next leaf's number.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `openat(dir, name, flags | O_CLOEXEC)`.
fn open_at(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let fd = retry_eintr(|| {
        // SAFETY: openat reads the NUL-terminated name and returns a new descriptor.
        cvt(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) })
    })?;
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `write(fd, data)` in one call (the cgroup files take a value per write).
fn write_all(fd: &OwnedFd, data: &[u8]) -> io::Result<()> {
    retry_eintr(|| {
        // SAFETY: write reads `data.len()` bytes from `data`.
        cvt(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) })
    })?;
    Ok(())
}

/// The whole of a (small) file, read from offset 0 with `pread`.
fn read_all(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = retry_eintr(|| {
            // SAFETY: pread writes at most `buf.len()` bytes into `buf`.
            cvt(unsafe {
                libc::pread(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    out.len() as libc::off_t,
                )
            })
        })?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// The value of `key` in a flat keyed file (`cgroup.events`: `populated 1`).
fn keyed_value(text: &[u8], key: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b' ');
        if fields.next()? != key {
            return None;
        }
        std::str::from_utf8(fields.next()?).ok()?.parse().ok()
    })
}

/// The pids listed in a `cgroup.procs` text.
fn parse_pids(text: &[u8]) -> Vec<libc::pid_t> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok()?.trim().parse().ok())
        .collect()
}

/// `pidfd_send_signal(fd, sig)`: `Ok(false)` if the process was already reaped, or is
/// not ours to signal (another user's: a setuid descendant).
fn pidfd_signal(fd: &OwnedFd, sig: libc::c_int) -> io::Result<bool> {
    // SAFETY: pidfd_send_signal with a null siginfo and no flags reads only its scalar
    // arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match cvt(ret) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH | libc::EPERM)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One leaf cgroup: its name, its path, and while it exists the directories it was
/// made in and it is (closed once it is removed).
#[derive(Debug)]
pub struct CGroup {
    name: CString,
    path: PathBuf,
    dirs: Option<Dirs>,
}

#[derive(Debug)]
struct Dirs {
    parent: OwnedFd,
    leaf: OwnedFd,
}

/// `rmdir` of `name` in `parent`.
fn remove_dir_at(parent: &OwnedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: unlinkat reads the NUL-terminated name.
    let ret = unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
    cvt(ret).map(drop)
}

impl CGroup {
    /// Creates a fresh leaf `fastspawn-<pid>-<n>` under `parent`, which must be a
    /// directory of a cgroup v2 hierarchy this process may write; the errors are those
    /// of the failing call (`ENOENT`, `ENOTDIR`, `EACCES`, ...), and `ENOTSUP` for a
    /// directory of another filesystem (a cgroup v1 hierarchy, say).
    pub fn create(parent: &CStr) -> io::Result<Self> {
        let parent_fd = open_at(libc::AT_FDCWD, parent, libc::O_PATH | libc::O_DIRECTORY)?;
        // SAFETY: all-zero bytes are a valid `statfs` (plain data).
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs writes one statfs through the pointer.
        cvt(unsafe { libc::fstatfs(parent_fd.as_raw_fd(), &raw mut fs) })?;
        if fs.f_type != CGROUP2_SUPER_MAGIC {
            return Err(io::Error::from_raw_os_error(libc::ENOTSUP));
        }
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        let mut attempts = 0;
        let name = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = CString::new(format!("fastspawn-{me}-{n}"))
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: mkdirat reads the NUL-terminated name.
            match cvt(unsafe { libc::mkdirat(parent_fd.as_raw_fd(), name.as_ptr(), 0o755) }) {
                Ok(_) => break name,
                // A leaf left by an earlier process that had our pid: take the next number.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempts < 100 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let leaf = match open_at(
            parent_fd.as_raw_fd(),
            &name,
            libc::O_PATH | libc::O_DIRECTORY,
        ) {
            Ok(leaf) => leaf,
            Err(e) => {
                let _ = remove_dir_at(&parent_fd, &name);
                return Err(e);
            }
        };
        let mut path = PathBuf::from(std::ffi::OsStr::from_bytes(parent.to_bytes()));
        path.push(std::ffi::OsStr::from_bytes(name.to_bytes()));
        Ok(Self {
            name,
            path,
            dirs: Some(Dirs {
                parent: parent_fd,
                leaf,
            }),
        })
    }

    /// The leaf's path, as made from the parent path given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`remove`](Self::remove) has removed it.
    pub fn removed(&self) -> bool {
        self.dirs.is_none()
    }

    fn file(&self, name: &CStr, flags: libc::c_int) -> io::Result<Option<OwnedFd>> {
        match &self.dirs {
            Some(dirs) => open_at(dirs.leaf.as_raw_fd(), name, flags).map(Some),
            None => Ok(None),
        }
    }

    /// The leaf's `cgroup.procs`, open for writing: what the child writes "0" to, to
    /// join it. ENOENT once removed.
    pub fn open_procs(&self) -> io::Result<OwnedFd> {
        self.file(c"cgroup.procs", libc::O_WRONLY)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    /// The processes in the leaf now (none once removed).
    pub fn pids(&self) -> io::Result<Vec<libc::pid_t>> {
        match self.file(c"cgroup.procs", libc::O_RDONLY)? {
            Some(fd) => Ok(parse_pids(&read_all(&fd)?)),
            None => Ok(Vec::new()),
        }
    }

    /// `populated` of `cgroup.events`: whether any process is in the leaf (false once
    /// removed). Exited processes (zombies) are not.
    pub fn populated(&self) -> io::Result<bool> {
        match self.file(c"cgroup.events", libc::O_RDONLY)? {
            Some(fd) => Ok(keyed_value(&read_all(&fd)?, b"populated").unwrap_or(0) != 0),
            None => Ok(false),
        }
    }

    /// SIGKILL to every process in the leaf; returns the pids listed just before. With
    /// `cgroup.kill` the kernel reaches every member, forks in progress included; where
    /// it is missing (Linux < 5.14), see [`signal`](Self::signal).
    pub fn kill(&self) -> io::Result<Vec<libc::pid_t>> {
        let listed = self.pids()?;
        let Some(kill) = self.file_if_exists(c"cgroup.kill", libc::O_WRONLY)? else {
            return self.signal(libc::SIGKILL, &[]);
        };
        write_all(&kill, b"1")?;
        Ok(listed)
    }

    /// `self.file`, or `None` where this kernel has no such file.
    fn file_if_exists(&self, name: &CStr, flags: libc::c_int) -> io::Result<Option<OwnedFd>> {
        match self.file(name, flags) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            other => other,
        }
    }

    /// `sig` to every process in the leaf but those in `skip` (already signalled some
    /// other way); returns the pids signalled.
    ///
    /// The leaf is frozen first, so nothing can fork meanwhile and every pid listed stays
    /// its process's (a frozen process cannot exit; each is signalled through a pidfd
    /// taken while it is still listed); then thawed, and after SIGTERM sent SIGCONT.
    /// Where freezing does not take effect within a bound (a process in uninterruptible
    /// sleep), what is listed is signalled, then the leaf listed and signalled again.
    pub fn signal(&self, sig: libc::c_int, skip: &[libc::pid_t]) -> io::Result<Vec<libc::pid_t>> {
        if self.dirs.is_none() {
            return Ok(Vec::new());
        }
        let freeze = self.file_if_exists(c"cgroup.freeze", libc::O_WRONLY)?;
        let frozen = match &freeze {
            Some(fd) => {
                write_all(fd, b"1")?;
                self.wait_frozen(FREEZE_TIMEOUT).unwrap_or(false)
            }
            None => false,
        };
        let result = self.signal_listed(sig, skip, frozen);
        if let Some(fd) = &freeze {
            // Never leave it frozen.
            write_all(fd, b"0")?;
        }
        let signalled = result?;
        if sig == libc::SIGTERM {
            // Without a pidfd, none: the pid may have been reused since the thaw.
            for fd in signalled.iter().filter_map(|(_, pin)| pin.as_ref()) {
                pidfd_signal(fd, libc::SIGCONT)?;
            }
        }
        Ok(signalled.into_iter().map(|(pid, _)| pid).collect())
    }

    /// Signals every member listed but those in `skip`: `(pid, its pidfd)` for each
    /// signalled (no pidfd where this system has none).
    fn signal_listed(
        &self,
        sig: libc::c_int,
        skip: &[libc::pid_t],
        frozen: bool,
    ) -> io::Result<Vec<(libc::pid_t, Option<OwnedFd>)>> {
        let mut signalled: Vec<(libc::pid_t, Option<OwnedFd>)> = Vec::new();
        // Frozen: one listing is all there is. Otherwise a second one catches forks.
        for _ in 0..if frozen { 1 } else { 2 } {
            for pid in self.pids()? {
                if skip.contains(&pid) || signalled.iter().any(|(p, _)| *p == pid) {
                    continue;
                }
                match pidfd_open(pid) {
                    Ok(fd) => {
                        // Still listed after the pin: the pidfd is of the member (two live
                        // processes cannot share a pid).
                        if self.pids()?.contains(&pid) && pidfd_signal(&fd, sig)? {
                            signalled.push((pid, Some(fd)));
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    // No pidfds here (ENOSYS, or refused by seccomp): kill, which a
                    // frozen member's pid cannot escape.
                    Err(_) => {
                        // SAFETY: kill takes two integers.
                        if unsafe { libc::kill(pid, sig) } == 0 {
                            signalled.push((pid, None));
                        }
                    }
                }
            }
        }
        Ok(signalled)
    }

    /// Waits until `cgroup.events` says `frozen 1`, at most `timeout`; whether it did.
    /// `poll` with POLLPRI wakes on every change of the file.
    fn wait_frozen(&self, timeout: Duration) -> io::Result<bool> {
        let Some(events) = self.file(c"cgroup.events", libc::O_RDONLY)? else {
            return Ok(false);
        };
        let deadline = Instant::now() + timeout;
        loop {
            if keyed_value(&read_all(&events)?, b"frozen") == Some(1) {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut pfd = libc::pollfd {
                fd: events.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            // Capped at 10 ms per poll: a change that came between the read and the poll
            // is then seen on the next read at the latest.
            let ms = left.as_millis().min(10) as libc::c_int;
            // SAFETY: poll reads and writes one pollfd.
            let ret = unsafe { libc::poll(&raw mut pfd, 1, ms.max(1)) };
            if ret < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(io::Error::last_os_error());
            }
        }
    }

    /// Removes the leaf if it is empty (`rmdir`); whether it is gone (now or before).
    /// `Ok(false)` while processes are in it (EBUSY).
    pub fn remove(&mut self) -> io::Result<bool> {
        let Some(dirs) = &self.dirs else {
            return Ok(true);
        };
        match remove_dir_at(&dirs.parent, &self.name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(false),
            // Removed by someone else.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        self.dirs = None;
        Ok(true)
    }
}

impl Drop for CGroup {
    /// Removes the leaf if it is empty (a failed spawn's, or one whose processes all
    /// exited); one still in use is left.
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_files() {
        assert_eq!(parse_pids(b"12\n345\n"), vec![12, 345]);
        assert_eq!(parse_pids(b""), Vec::<libc::pid_t>::new());
        let events = b"populated 1\nfrozen 0\n";
        assert_eq!(keyed_value(events, b"populated"), Some(1));
        assert_eq!(keyed_value(events, b"frozen"), Some(0));
        assert_eq!(keyed_value(events, b"other"), None);
    }

    #[test]
    fn not_a_cgroup2_directory() {
        let err = CGroup::create(c"/tmp").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSUP));
        let err = CGroup::create(c"/no/such/dir").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
