//! A spawned child: its pid, the descriptor that becomes readable when it exits, and
//! its reaping.
//!
//! Exit is signalled by a pidfd (`pidfd_open`) that the event loop watches; the status
//! is then collected with a non-blocking `waitpid` for this one pid. Where pidfds are
//! unavailable (ENOSYS on old kernels, EPERM under seccomp), the process-wide
//! [`reaper`](crate::reaper) collects the status and closes a pipe instead, so the
//! caller always watches exactly one descriptor per child. A `Child` dropped before it
//! was reaped is handed to the reaper: no zombie outlives it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::reaper::{self, ExitSlot};
use crate::sys::{cvt, retry_eintr};

const PIDFD_UNKNOWN: u8 = 0;
const PIDFD_YES: u8 = 1;
const PIDFD_NO: u8 = 2;

/// Whether `pidfd_open` works here; decided on first use and remembered.
static PIDFD_STATE: AtomicU8 = AtomicU8::new(PIDFD_UNKNOWN);

/// Set `FASTSPAWN_NO_PIDFD=1` to use the fallback reaper (how the tests cover it).
fn pidfd_disabled_by_env() -> bool {
    std::env::var_os("FASTSPAWN_NO_PIDFD").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether children are watched through pidfds (`false`: the fallback reaper).
pub fn pidfd_supported() -> bool {
    match PIDFD_STATE.load(Ordering::Relaxed) {
        PIDFD_YES => true,
        PIDFD_NO => false,
        _ => {
            // SAFETY: getpid cannot fail.
            let me = unsafe { libc::getpid() };
            let ok = !pidfd_disabled_by_env() && pidfd_open(me).is_ok();
            PIDFD_STATE.store(if ok { PIDFD_YES } else { PIDFD_NO }, Ordering::Relaxed);
            ok
        }
    }
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new CLOEXEC descriptor.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the syscall succeeded, so `fd` is a new descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether `err` says "this system has no pidfds" rather than "this call failed".
fn means_no_pidfd(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
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

/// Non-blocking `waitpid` for one pid: `Ok(None)` while it runs.
///
/// `Err(ECHILD)` means something else in this process reaped it first.
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes one c_int through the pointer we pass.
    let got = retry_eintr(|| cvt(unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) }))?;
    Ok(if got == 0 { None } else { returncode(status) })
}

fn kill(pid: libc::pid_t, signal: i32) -> io::Result<bool> {
    // SAFETY: kill only sends a signal; the caller guarantees `pid` is still our
    // unreaped child, so it cannot name a recycled process.
    match cvt(unsafe { libc::kill(pid, signal) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Debug)]
enum ExitWatch {
    /// The pidfd; `None` once closed after reaping.
    Pidfd(Option<OwnedFd>),
    /// The fallback reaper fills `slot` and then closes the write end of `notify`.
    Reaper {
        slot: Arc<ExitSlot>,
        notify: Option<OwnedFd>,
    },
}

#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    watch: ExitWatch,
    /// The returncode once reaped.
    status: Option<i32>,
}

impl Child {
    /// Starts watching `pid` (> 0), a child of this process that nobody has reaped yet.
    ///
    /// On failure the child is killed and handed to the reaper, so it never lingers
    /// unwatched.
    pub fn watch(pid: libc::pid_t) -> io::Result<Self> {
        if pid <= 0 {
            // kill and waitpid would read 0 as "our process group" and -1 as "everyone".
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Self::try_watch(pid).inspect_err(|_| {
            let _ = kill(pid, libc::SIGKILL);
            reaper::adopt_orphan(pid);
        })
    }

    fn try_watch(pid: libc::pid_t) -> io::Result<Self> {
        if pidfd_supported() {
            match pidfd_open(pid) {
                Ok(fd) => {
                    return Ok(Self {
                        pid,
                        watch: ExitWatch::Pidfd(Some(fd)),
                        status: None,
                    })
                }
                Err(e) if means_no_pidfd(&e) => PIDFD_STATE.store(PIDFD_NO, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        let (slot, notify) = reaper::watch(pid)?;
        Ok(Self {
            pid,
            watch: ExitWatch::Reaper {
                slot,
                notify: Some(notify),
            },
            status: None,
        })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    pub fn returncode(&self) -> Option<i32> {
        self.status
    }

    /// The descriptor that becomes readable when the child exits; `None` once closed.
    pub fn exit_fd(&self) -> Option<RawFd> {
        match &self.watch {
            ExitWatch::Pidfd(fd) => fd.as_ref().map(AsRawFd::as_raw_fd),
            ExitWatch::Reaper { notify, .. } => notify.as_ref().map(AsRawFd::as_raw_fd),
        }
    }

    /// Closes the exit descriptor. Call it after the loop stopped watching it.
    pub fn close_exit_fd(&mut self) {
        match &mut self.watch {
            ExitWatch::Pidfd(fd) => *fd = None,
            ExitWatch::Reaper { notify, .. } => *notify = None,
        }
    }

    /// Reaps the child if it has exited: `Ok(Some(returncode))`, else `Ok(None)`.
    /// `Err(ECHILD)`: something else in this process reaped it first.
    pub fn try_wait(&mut self) -> io::Result<Option<i32>> {
        if self.status.is_none() {
            self.status = match &self.watch {
                ExitWatch::Pidfd(_) => wait_nohang(self.pid)?,
                ExitWatch::Reaper { slot, .. } => slot.get().transpose()?,
            };
        }
        Ok(self.status)
    }

    /// Blocks until the child has exited or `timeout` has passed (`None`: no limit; a
    /// deadline too far to represent is none either); then [`try_wait`].
    ///
    /// [`try_wait`]: Self::try_wait
    pub fn wait(&mut self, timeout: Option<std::time::Duration>) -> io::Result<Option<i32>> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            if let Some(code) = self.try_wait()? {
                return Ok(Some(code));
            }
            let Some(fd) = self.exit_fd() else {
                // Closed exit fd means reaped, handled above; be safe regardless.
                return self.try_wait();
            };
            // ppoll rather than poll: a timeout below a millisecond stays what it is.
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(libc::timespec {
                        tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                        // The 64-bit targets supported have a c_long wider than u32.
                        tv_nsec: libc::c_long::from(left.subsec_nanos()),
                    })
                }
            };
            let timeout_ptr = left.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: ppoll reads and writes exactly one pollfd on our stack, reads the
            // timespec (or none) behind `timeout_ptr`, which outlives the call, and is
            // given no signal mask.
            retry_eintr(|| {
                cvt(unsafe { libc::ppoll(&raw mut pfd, 1, timeout_ptr, std::ptr::null()) })
            })?;
        }
    }

    /// Sends `signal` unless the child is known to be gone. `Ok(false)`: it was gone.
    ///
    /// Through the pidfd the signal can never reach a process that recycled the pid.
    pub fn send_signal(&self, signal: i32) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(false);
        }
        match &self.watch {
            ExitWatch::Pidfd(Some(fd)) => {
                // SAFETY: pidfd_send_signal with a null siginfo and no flags reads only
                // its scalar arguments.
                let ret = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        signal,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                match cvt(ret) {
                    Ok(_) => Ok(true),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            // Unreaped (status is None) and the fd closed only after reaping: the pid
            // is still ours.
            ExitWatch::Pidfd(None) => kill(self.pid, signal),
            // The reaper reaps only while holding the slot, so the pid stays ours while
            // we hold it.
            ExitWatch::Reaper { slot, .. } => slot.while_unreaped(|| kill(self.pid, signal)),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        match self.watch {
            ExitWatch::Pidfd(_) => reaper::adopt_orphan(self.pid),
            // Already registered with the reaper, which reaps it whether or not anybody
            // still listens.
            ExitWatch::Reaper { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_sh(script: &str) -> libc::pid_t {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        // Ownership of the pid moves to our `Child`; std's handle must not wait on it.
        std::mem::forget(child);
        pid
    }

    fn wait_readable(fd: RawFd) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&raw mut pfd, 1, 10_000) };
        assert_eq!(n, 1, "exit fd never became readable");
    }

    #[test]
    fn exit_code_is_reported_through_the_exit_fd() {
        let mut child = Child::watch(spawn_sh("exit 7")).unwrap();
        wait_readable(child.exit_fd().unwrap());
        // The reaper may need a moment after the fd fires in fallback mode; pidfd is immediate.
        assert_eq!(child.try_wait().unwrap(), Some(7));
        child.close_exit_fd();
        assert_eq!(child.exit_fd(), None);
        assert!(!child.send_signal(libc::SIGTERM).unwrap());
    }

    #[test]
    fn signal_exit_is_negative() {
        let mut child = Child::watch(spawn_sh("sleep 30")).unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        assert!(child.send_signal(libc::SIGTERM).unwrap());
        wait_readable(child.exit_fd().unwrap());
        assert_eq!(child.try_wait().unwrap(), Some(-libc::SIGTERM));
    }

    #[test]
    fn pids_meaning_a_group_or_everyone_are_refused() {
        for pid in [0, -1, libc::pid_t::MIN] {
            let err = Child::watch(pid).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        }
    }

    #[test]
    fn dropped_child_is_reaped_by_the_reaper() {
        let pid = spawn_sh("exit 0");
        drop(Child::watch(pid).unwrap());
        for _ in 0..500 {
            // ECHILD once the reaper has collected it.
            if wait_nohang(pid).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("orphan {pid} was never reaped");
    }
}
