//! A spawned child: its pid, the descriptor that becomes readable when it exits, and
//! its reaping.
//!
//! Where pidfds work (Linux 5.4+: `pidfd_open` and `waitid(P_PIDFD)`), the pidfd is the
//! child's identity: the event loop watches it, signals go through it, and the exit
//! status is read through it (`waitid(P_PIDFD)`), so a pid that someone else reaped and
//! the kernel gave to another process is never waited for or signalled. Where they do
//! not (ENOSYS on old kernels, EPERM under seccomp), the process-wide
//! [`reaper`](crate::reaper) collects the status by pid and signals an eventfd instead,
//! so the caller always watches exactly one descriptor per child. A `Child` dropped before
//! it was reaped is handed to the reaper: no zombie outlives it.
//!
//! A child whose status was collected by someone else (`SIGCHLD` ignored, so the kernel
//! reaps it; a `waitpid(-1)` elsewhere in the process) is *lost*: it ran, but its exit
//! status is gone. [`Child::try_wait`] then fails with ECHILD, as `waitpid` does, and the
//! Python layer reports it as asyncio does (returncode 255 and a warning).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::reaper::{self, ExitSlot};
use crate::sys::{cvt, retry_eintr, waitid, waitid_pidfd};

const PIDFD_UNKNOWN: u8 = 0;
const PIDFD_YES: u8 = 1;
const PIDFD_NO: u8 = 2;

/// Whether pidfds work here; decided on first use and remembered.
static PIDFD_STATE: AtomicU8 = AtomicU8::new(PIDFD_UNKNOWN);

/// Set `FASTSPAWN_NO_PIDFD=1` to use the fallback reaper (how the tests cover it).
fn pidfd_disabled_by_env() -> bool {
    std::env::var_os("FASTSPAWN_NO_PIDFD").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether children are watched through pidfds (`false`: the fallback reaper).
///
/// Both calls are tried on this process's own pidfd: `pidfd_open` (Linux 5.3) and
/// `waitid(P_PIDFD)` (5.4), which must answer ECHILD (we are not our own child), not
/// EINVAL.
pub fn pidfd_supported() -> bool {
    match PIDFD_STATE.load(Ordering::Relaxed) {
        PIDFD_YES => true,
        PIDFD_NO => false,
        _ => {
            // SAFETY: getpid cannot fail.
            let me = unsafe { libc::getpid() };
            let ok = !pidfd_disabled_by_env()
                && pidfd_open(me).is_ok_and(|fd| {
                    waitid_pidfd(&fd, libc::WNOHANG)
                        .is_err_and(|e| e.raw_os_error() == Some(libc::ECHILD))
                });
            PIDFD_STATE.store(if ok { PIDFD_YES } else { PIDFD_NO }, Ordering::Relaxed);
            ok
        }
    }
}

pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new CLOEXEC descriptor.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the syscall succeeded, so `fd` is a new descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether `err` says "this system has no pidfds" rather than "this call failed".
fn means_no_pidfd(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

fn is_echild(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ECHILD)
}

/// Whether `pid` (> 0) names a child of ours that nobody has reaped yet, asked without
/// reaping it (`waitid(WNOWAIT)`).
fn is_unreaped_child(pid: libc::pid_t) -> io::Result<bool> {
    match waitid(
        libc::P_PID,
        pid as libc::id_t,
        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
    ) {
        Ok(_) => Ok(true),
        Err(e) if is_echild(&e) => Ok(false),
        Err(e) => Err(e),
    }
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

/// Kills and reaps `pid`, a child we could not watch, if it still is an unreaped child
/// of ours: a pid that is no longer ours is never signalled. The wait is short (SIGKILL
/// cannot be caught) and leaves no zombie, without needing the reaper.
fn abandon(pid: libc::pid_t) {
    if is_unreaped_child(pid).unwrap_or(false) {
        let _ = kill(pid, libc::SIGKILL);
        let mut status = 0;
        // SAFETY: waitpid on our own unreaped child, writing one c_int.
        let _ = retry_eintr(|| cvt(unsafe { libc::waitpid(pid, &raw mut status, 0) }));
    }
}

/// Whether this is process `pid` (not a child forked from it).
fn is_current(pid: libc::pid_t) -> bool {
    // SAFETY: getpid cannot fail.
    pid == unsafe { libc::getpid() }
}

/// A descriptor that is readable at once and stays so: the exit descriptor of a child
/// already lost, so the event loop hears of it like any other exit.
fn always_readable() -> io::Result<OwnedFd> {
    // SAFETY: eventfd creates a new descriptor (counter 1: readable until read).
    let fd = cvt(unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd succeeded, so `fd` is a new descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[derive(Debug)]
enum Watch {
    /// Watched, reaped and signalled through the pidfd (the child's descriptor).
    Pidfd,
    /// The fallback reaper fills `slot` and then makes the child's descriptor (an
    /// eventfd) readable. `owner` is the process that started the child: in a child
    /// forked from it, the handle's copy is not a child there, and nothing fills `slot`.
    Reaper {
        slot: Arc<ExitSlot>,
        owner: libc::pid_t,
    },
    /// Its status was gone before we could watch it; the descriptor is
    /// [`always_readable`].
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Exited(i32),
    /// Someone else collected the exit status.
    Lost,
}

#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    watch: Watch,
    /// The exit descriptor (see [`Watch`]). Open until the child is reaped *and* the
    /// loop let go of it ([`close_exit_fd`](Self::close_exit_fd)): a pidfd keeps the
    /// child's identity while it is unreaped, and a number the loop still watches must
    /// not be reused.
    fd: Option<OwnedFd>,
    /// `close_exit_fd` was called: the descriptor is no longer handed out.
    released: bool,
    status: Option<Status>,
    /// [`hold`](Self::hold) was asked for: an exit is read with `WNOWAIT`, so the child
    /// stays an unreaped zombie until [`release`](Self::release) (or drop).
    hold: bool,
    /// The exit was read but the zombie is kept (only ever with a pidfd).
    held: bool,
}

impl Child {
    /// Starts watching `pid` (> 0), a child of this process that nobody had reaped when
    /// it was started.
    ///
    /// A child whose status someone else took meanwhile is returned [lost](self); a
    /// pid that is not an unreaped child of ours is never signalled. On any other
    /// failure the child is killed and reaped here, so it never lingers unwatched.
    pub fn watch(pid: libc::pid_t) -> io::Result<Self> {
        if pid <= 0 {
            // waitpid/kill would read 0 and -1 as "the group" and "everyone".
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Self::try_watch(pid).inspect_err(|_| abandon(pid))
    }

    /// Watches `pid` through `pidfd`, obtained atomically with it (`CLONE_PIDFD`).
    pub fn from_pidfd(pid: libc::pid_t, pidfd: OwnedFd) -> Self {
        Self::new(pid, Watch::Pidfd, pidfd)
    }

    fn new(pid: libc::pid_t, watch: Watch, fd: OwnedFd) -> Self {
        reaper::retry();
        let status = matches!(watch, Watch::Lost).then_some(Status::Lost);
        Self {
            pid,
            watch,
            fd: Some(fd),
            released: false,
            status,
            hold: false,
            held: false,
        }
    }

    fn lost(pid: libc::pid_t) -> io::Result<Self> {
        Ok(Self::new(pid, Watch::Lost, always_readable()?))
    }

    fn try_watch(pid: libc::pid_t) -> io::Result<Self> {
        if pidfd_supported() {
            match pidfd_open(pid) {
                // pidfd_open after the spawn: by now the pid may have been reaped by
                // someone else and even reused. Only a child of ours that is still
                // unreaped answers waitid(WNOWAIT); anything else is a lost child.
                Ok(fd) => {
                    return match waitid_pidfd(&fd, libc::WNOHANG | libc::WNOWAIT) {
                        Ok(_) => Ok(Self::new(pid, Watch::Pidfd, fd)),
                        Err(e) if is_echild(&e) => Self::lost(pid),
                        Err(e) => Err(e),
                    };
                }
                // The process is gone altogether: it ran, and was reaped by someone else.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Self::lost(pid),
                Err(e) if means_no_pidfd(&e) => PIDFD_STATE.store(PIDFD_NO, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        // By pid from here on. It must be ours and unreaped now; the reaper's waitpid
        // can still take a recycled pid's status if someone else reaps it later, the
        // residual risk of running without pidfds.
        if !is_unreaped_child(pid)? {
            return Self::lost(pid);
        }
        let (slot, notify) = reaper::watch(pid)?;
        // SAFETY: getpid cannot fail.
        let owner = unsafe { libc::getpid() };
        Ok(Self::new(pid, Watch::Reaper { slot, owner }, notify))
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// If the child leads its own process group, keeps its zombie once it exits: its
    /// returncode is read with `WNOWAIT` and the pid (hence the group id) stays its own
    /// until [`release`]. Only with a pidfd (the fallback reaper reaps on its own
    /// thread); returns whether the exit will be held.
    ///
    /// [`release`]: Self::release
    pub fn hold(&mut self) -> bool {
        // SAFETY: getpgid takes a scalar; the pid is still ours (status unknown yet).
        let leads = || unsafe { libc::getpgid(self.pid) } == self.pid;
        self.hold = matches!(self.watch, Watch::Pidfd) && self.status.is_none() && leads();
        self.hold
    }

    /// Reaps a held zombie (nothing otherwise). Something else having reaped it meanwhile
    /// changes nothing: its returncode was read.
    pub fn release(&mut self) {
        self.hold = false;
        if !self.held {
            return;
        }
        self.held = false;
        if let Some(fd) = &self.fd {
            // ECHILD (reaped by someone else) and the rest: nothing left to do.
            let _ = waitid_pidfd(fd, libc::WNOHANG);
        }
        if self.released {
            self.fd = None;
        }
    }

    /// Whether the child's pid is still its own: running, or a zombie held or not yet
    /// reaped. Asked of the kernel where there is a pidfd, so a child that something
    /// else in the process reaped (a `waitpid(-1)`) reads as gone, and is lost from then
    /// on, before its pid can be taken for another process's.
    pub fn unreaped(&mut self) -> bool {
        if self.status.is_some() && !self.held {
            return false;
        }
        let gone = match (&self.watch, &self.fd) {
            (Watch::Pidfd, Some(fd)) => {
                matches!(waitid_pidfd(fd, libc::WNOHANG | libc::WNOWAIT), Err(e) if is_echild(&e))
            }
            // A copy of the handle in a forked process is not a child there.
            (Watch::Reaper { slot, owner }, _) => {
                return is_current(*owner) && slot.get().is_none()
            }
            _ => return self.status.is_none(),
        };
        if gone {
            if !self.held {
                self.status = Some(Status::Lost);
            }
            self.held = false;
            if self.released {
                self.fd = None;
            }
        }
        !gone
    }

    /// `killpg(pid, signal)` if the child leads its own process group and its pid is
    /// still its own (unreaped, or a held zombie): `Ok(false)` without signalling
    /// otherwise. While the child is unreaped its pid, the group id, cannot be reused.
    pub fn kill_group(&self, signal: i32) -> io::Result<bool> {
        let send = || {
            // SAFETY: getpgid and killpg take scalars only.
            if unsafe { libc::getpgid(self.pid) } != self.pid {
                return Ok(false);
            }
            // SAFETY: as above; pid > 0 (checked at watch), so never "our own group".
            match cvt(unsafe { libc::killpg(self.pid, signal) }) {
                Ok(_) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
                Err(e) => Err(e),
            }
        };
        match (&self.watch, &self.fd) {
            (Watch::Pidfd, Some(fd)) if self.status.is_none() || self.held => {
                // Still an unreaped child of ours (another reaper in the process could
                // have taken it): WNOWAIT leaves it as it is.
                match waitid_pidfd(fd, libc::WNOHANG | libc::WNOWAIT) {
                    Ok(_) => send(),
                    Err(e) if is_echild(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            // The reaper reaps only while holding the slot: checked and sent under it.
            (Watch::Reaper { slot, owner }, _) if is_current(*owner) && self.status.is_none() => {
                slot.while_unreaped(send)
            }
            _ => Ok(false),
        }
    }

    /// The returncode once it exited (reaped, or held); `None` while it runs, and for a
    /// lost child.
    pub fn returncode(&self) -> Option<i32> {
        match self.status {
            Some(Status::Exited(code)) => Some(code),
            _ => None,
        }
    }

    /// The descriptor that becomes readable when the child exits; `None` once released.
    pub fn exit_fd(&self) -> Option<RawFd> {
        if self.released {
            return None;
        }
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Lets go of the exit descriptor; call it after the loop stopped watching it. It is
    /// closed now if the child is reaped, else once it is (a pidfd is its identity).
    pub fn close_exit_fd(&mut self) {
        self.released = true;
        if self.status.is_some() && !self.held {
            self.fd = None;
        }
    }

    /// Reaps the child if it has exited: `Ok(Some(returncode))`, else `Ok(None)`.
    /// `Err(ECHILD)` (every time): something else collected its status.
    pub fn try_wait(&mut self) -> io::Result<Option<i32>> {
        if self.status.is_none() {
            let outcome = match (&self.watch, &self.fd) {
                (Watch::Pidfd, Some(fd)) if self.hold => {
                    let code = waitid_pidfd(fd, libc::WNOHANG | libc::WNOWAIT);
                    self.held = matches!(code, Ok(Some(_)));
                    code
                }
                (Watch::Pidfd, Some(fd)) => waitid_pidfd(fd, libc::WNOHANG),
                (Watch::Reaper { slot, owner }, _) if is_current(*owner) => slot.get().transpose(),
                // A pidfd is only closed once reaped.
                (Watch::Pidfd, None) | (Watch::Reaper { .. } | Watch::Lost, _) => {
                    Err(io::Error::from_raw_os_error(libc::ECHILD))
                }
            };
            self.status = match outcome {
                Ok(code) => code.map(Status::Exited),
                Err(e) if is_echild(&e) => Some(Status::Lost),
                Err(e) => return Err(e),
            };
            if self.status.is_some() && self.released && !self.held {
                self.fd = None;
            }
        }
        match self.status {
            Some(Status::Exited(code)) => Ok(Some(code)),
            Some(Status::Lost) => Err(io::Error::from_raw_os_error(libc::ECHILD)),
            None => Ok(None),
        }
    }

    /// Blocks until the child has exited or `timeout` has passed (`None`: no limit; a
    /// deadline too far to represent is none either); then [`try_wait`].
    ///
    /// [`try_wait`]: Self::try_wait
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Option<i32>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(code) = self.try_wait()? {
                return Ok(Some(code));
            }
            let Some(fd) = self.fd.as_ref().map(AsRawFd::as_raw_fd) else {
                // Only closed once reaped, which try_wait reported above.
                return self.try_wait();
            };
            // ppoll rather than poll: a timeout below a millisecond stays what it is.
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
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
            retry_eintr(|| {
                // SAFETY: ppoll reads and writes exactly one pollfd on our stack, reads
                // the timespec (or none) behind `timeout_ptr`, which outlives the call,
                // and is given no signal mask.
                let ready = unsafe { libc::ppoll(&raw mut pfd, 1, timeout_ptr, std::ptr::null()) };
                cvt(ready)
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
        match (&self.watch, &self.fd) {
            (Watch::Pidfd, Some(fd)) => {
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
            // The reaper reaps only while holding the slot, so the pid stays ours while
            // we hold it.
            (Watch::Reaper { slot, owner }, _) if is_current(*owner) => {
                slot.while_unreaped(|| kill(self.pid, signal))
            }
            (Watch::Pidfd, None) | (Watch::Reaper { .. } | Watch::Lost, _) => Ok(false),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.release();
        if self.status.is_some() {
            return;
        }
        match self.watch {
            // Reaped now if it already exited (or is not ours: a copy of the parent's
            // handle in a forked child); else the reaper waits through its pidfd.
            Watch::Pidfd => {
                if let Ok(None) = self.try_wait() {
                    reaper::adopt_orphan(self.pid, self.fd.take());
                }
            }
            // Already registered with the reaper, which reaps it whether or not anybody
            // still listens.
            Watch::Reaper { .. } | Watch::Lost => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::wait_nohang;

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

    fn state(pid: libc::pid_t) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 2..].chars().next()
    }

    #[test]
    fn a_held_zombie_keeps_its_group_reachable_until_released() {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        if !pidfd_supported() {
            return;
        }
        // The child leads its group, leaves a sleep in it and exits at once.
        let mut command = std::process::Command::new("/bin/sh");
        command
            .args(["-c", "sleep 30 >/dev/null & echo $!; exit 3"])
            .stdout(std::process::Stdio::piped())
            .process_group(0);
        let mut spawned = command.spawn().unwrap();
        let mut out = String::new();
        spawned
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let sleeper: libc::pid_t = out.trim().parse().unwrap();
        let pid = spawned.id() as libc::pid_t;
        std::mem::forget(spawned);
        let mut child = Child::watch(pid).unwrap();
        assert!(child.hold());
        wait_readable(child.exit_fd().unwrap());
        assert_eq!(child.try_wait().unwrap(), Some(3));
        assert_eq!(child.returncode(), Some(3));
        assert!(child.unreaped());
        assert_eq!(state(pid), Some('Z'));
        assert!(!child.send_signal(libc::SIGKILL).unwrap());
        // The group id is still the child's: killpg reaches the orphaned sleep.
        assert!(child.kill_group(libc::SIGKILL).unwrap());
        for _ in 0..500 {
            if matches!(state(sleeper), None | Some('Z')) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(matches!(state(sleeper), None | Some('Z')));
        child.close_exit_fd();
        child.release();
        assert!(!child.unreaped());
        assert_eq!(state(pid), None);
        assert!(!child.kill_group(libc::SIGKILL).unwrap());
        assert_eq!(child.try_wait().unwrap(), Some(3));
    }

    #[test]
    fn a_held_zombie_reaped_by_someone_else_is_gone() {
        use std::os::unix::process::CommandExt;
        if !pidfd_supported() {
            return;
        }
        let spawned = std::process::Command::new("/bin/true")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = spawned.id() as libc::pid_t;
        std::mem::forget(spawned);
        let mut child = Child::watch(pid).unwrap();
        assert!(child.hold());
        wait_readable(child.exit_fd().unwrap());
        assert_eq!(child.try_wait().unwrap(), Some(0));
        assert!(child.unreaped());
        // Another reaper in the process takes it: its pid may now be anyone's.
        assert_eq!(wait_nohang(pid).unwrap(), Some(0));
        assert!(!child.unreaped());
        assert!(!child.kill_group(0).unwrap());
        assert_eq!(child.try_wait().unwrap(), Some(0));
    }

    #[test]
    fn a_child_outside_its_own_group_is_never_signalled_as_a_group() {
        let mut child = Child::watch(spawn_sh("sleep 30")).unwrap();
        // It is in our group: killpg would reach us.
        assert!(!child.kill_group(0).unwrap());
        assert!(child.send_signal(libc::SIGKILL).unwrap());
        assert_eq!(child.wait(None).unwrap(), Some(-libc::SIGKILL));
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
        let pid = spawn_sh("sleep 0.05");
        drop(Child::watch(pid).unwrap());
        for _ in 0..500 {
            // ECHILD once the reaper has collected it.
            if wait_nohang(pid).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("orphan {pid} was never reaped");
    }

    #[test]
    fn a_pid_that_is_not_our_child_is_lost_and_never_signalled() {
        // Our own pid, and init's: never children of ours.
        // SAFETY: getpid cannot fail.
        for pid in [unsafe { libc::getpid() }, 1] {
            let mut child = Child::watch(pid).unwrap();
            assert!(!child.send_signal(0).unwrap());
            assert_eq!(
                child.try_wait().unwrap_err().raw_os_error(),
                Some(libc::ECHILD)
            );
            assert_eq!(child.returncode(), None);
            wait_readable(child.exit_fd().unwrap());
        }
    }

    #[test]
    fn a_child_reaped_by_someone_else_is_lost() {
        let pid = spawn_sh("exit 3");
        let mut child = Child::watch(pid).unwrap();
        wait_readable(child.exit_fd().unwrap());
        if !pidfd_supported() {
            // The reaper may win the race with the waitpid below.
            return;
        }
        assert_eq!(wait_nohang(pid).unwrap(), Some(3));
        assert_eq!(
            child.try_wait().unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
        assert!(!child.send_signal(libc::SIGKILL).unwrap());
    }

    #[test]
    fn wait_takes_no_deadline_for_a_timeout_too_large_to_represent() {
        let mut child = Child::watch(spawn_sh("exit 5")).unwrap();
        assert_eq!(child.wait(Some(Duration::MAX)).unwrap(), Some(5));
        let mut child = Child::watch(spawn_sh("sleep 30")).unwrap();
        assert_eq!(child.wait(Some(Duration::ZERO)).unwrap(), None);
        child.send_signal(libc::SIGKILL).unwrap();
        assert_eq!(child.wait(None).unwrap(), Some(-libc::SIGKILL));
    }
}
