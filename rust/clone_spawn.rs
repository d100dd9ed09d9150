//! The clone path: a child started with `clone(CLONE_VM | CLONE_VFORK)` for what
//! `posix_spawn` cannot express (a umask, supplementary groups, gid, uid) or cannot
//! report apart from an exec failure (joining a process group).
//!
//! Like `posix_spawn`, it never copies the parent's address space: the child runs on a
//! small stack of its own inside the parent's memory while the calling thread waits,
//! until it calls `execve` (or exits). The child therefore runs only async-signal-safe
//! system calls on data the parent prepared: no allocation, no locks, no unwinding.
//! All signals are blocked around `clone`; the child resets every caught signal to its
//! default before restoring the mask, so no parent handler can run on the shared memory.
//! A failure is reported as errno + stage over a close-on-exec pipe, as `subprocess`
//! does, and the failed child is reaped before returning. Where pidfds work, the child's
//! pidfd comes from the `clone` itself (`CLONE_PIDFD`): it names this child even if
//! someone else reaps it at once.
//!
//! The order of the child's steps follows CPython's `_posixsubprocess`: descriptors,
//! cwd, umask, signals, session/group, `setgroups`, `setregid`, `setreuid`, exec.

use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use crate::child::pidfd_supported;
use crate::pipe::pipe_cloexec;
use crate::spawn::{c_array, environ, surely_missing, FdAction, SpawnError, SpawnRequest};
use crate::sys::{cvt, dup_cloexec, retry_eintr};

const STAGE_EXEC: u8 = 0;
const STAGE_CHDIR: u8 = 1;
const STAGE_OTHER: u8 = 2;

/// The child's stack. The child only makes system calls, so this is ample.
const STACK_SIZE: usize = 256 * 1024;

/// Everything the child needs, prepared by the parent; only raw pointers and plain
/// values, read by the child while the parent waits.
struct ChildPlan {
    actions: *const FdAction,
    n_actions: usize,
    cwd: *const c_char,
    umask: Option<libc::mode_t>,
    restore_signals: bool,
    new_session: bool,
    process_group: Option<libc::pid_t>,
    groups: *const libc::gid_t,
    /// `None`: leave the supplementary groups alone.
    n_groups: Option<usize>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
    candidates: *const *const c_char,
    n_candidates: usize,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    err_fd: RawFd,
    mask: libc::sigset_t,
}

/// Reports `errno` at `stage` to the parent and exits.
///
/// # Safety
/// Only for the child; async-signal-safe.
unsafe fn fail(plan: &ChildPlan, stage: u8, errno: c_int) -> ! {
    let mut msg = [0u8; 5];
    msg[..4].copy_from_slice(&errno.to_le_bytes());
    msg[4] = stage;
    // SAFETY: write and _exit are async-signal-safe; `msg` lives on the child's stack.
    unsafe {
        libc::write(plan.err_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// This thread's errno, read directly (async-signal-safe).
fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Closes `[low, high]`, with `close_range` or one by one where it is missing.
///
/// # Safety
/// Only for the child; async-signal-safe.
unsafe fn close_range(low: RawFd, high: RawFd) {
    if low > high {
        return;
    }
    // SAFETY: close_range/close only close descriptors of the child's own table.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            high as libc::c_uint,
            0,
        ) == 0
        {
            return;
        }
        let mut limit = MaybeUninit::<libc::rlimit>::uninit();
        let top = if libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) == 0 {
            limit.assume_init().rlim_cur.min(1 << 20) as RawFd
        } else {
            1024
        };
        for fd in low..=high.min(top) {
            libc::close(fd);
        }
    }
}

/// # Safety
/// Only for the child; async-signal-safe.
unsafe fn reset_signals(plan: &ChildPlan) {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: sigaction with a zeroed struct queries or sets one disposition.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &raw mut old) != 0 {
                continue;
            }
            let caught = old.sa_sigaction != libc::SIG_IGN && old.sa_sigaction != libc::SIG_DFL;
            let restore = plan.restore_signals && (sig == libc::SIGPIPE || sig == libc::SIGXFSZ);
            if caught || restore {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &raw const dfl, ptr::null_mut());
            }
        }
    }
}

/// # Safety
/// Only for the child; async-signal-safe.
unsafe fn apply(plan: &ChildPlan, action: FdAction) {
    // SAFETY: descriptor calls on the child's own table; the path is NUL-terminated.
    unsafe {
        match action {
            FdAction::Dup2(from, to) => {
                if libc::dup2(from, to) < 0 {
                    fail(plan, STAGE_OTHER, errno());
                }
            }
            FdAction::Close(fd) => {
                libc::close(fd);
            }
            FdAction::DevNull(to) => {
                let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if fd < 0 {
                    fail(plan, STAGE_OTHER, errno());
                }
                if fd != to {
                    if libc::dup2(fd, to) < 0 {
                        fail(plan, STAGE_OTHER, errno());
                    }
                    libc::close(fd);
                }
            }
            FdAction::CloseFrom(low) => {
                // Keep the error pipe (close-on-exec: it goes at exec anyway).
                if plan.err_fd >= low {
                    close_range(low, plan.err_fd - 1);
                    close_range(plan.err_fd + 1, RawFd::MAX);
                } else {
                    close_range(low, RawFd::MAX);
                }
            }
            FdAction::Chdir => {
                if !plan.cwd.is_null() && libc::chdir(plan.cwd) != 0 {
                    fail(plan, STAGE_CHDIR, errno());
                }
            }
        }
    }
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildPlan, alive while the parent waits (CLONE_VFORK),
    // and every pointer in it was built by `spawn` below for exactly these lengths.
    unsafe {
        let plan = &*arg.cast::<ChildPlan>();
        reset_signals(plan);
        for i in 0..plan.n_actions {
            apply(plan, *plan.actions.add(i));
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        if plan.new_session && libc::setsid() < 0 {
            fail(plan, STAGE_OTHER, errno());
        }
        if let Some(pgroup) = plan.process_group {
            if libc::setpgid(0, pgroup) != 0 {
                fail(plan, STAGE_OTHER, errno());
            }
        }
        if let Some(n) = plan.n_groups {
            if libc::setgroups(n, plan.groups) != 0 {
                fail(plan, STAGE_OTHER, errno());
            }
        }
        if let Some(gid) = plan.gid {
            if libc::setregid(gid, gid) != 0 {
                fail(plan, STAGE_OTHER, errno());
            }
        }
        if let Some(uid) = plan.uid {
            if libc::setreuid(uid, uid) != 0 {
                fail(plan, STAGE_OTHER, errno());
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, &raw const plan.mask, ptr::null_mut());
        // As subprocess: try every candidate, report the first error that is not
        // "no such file" (ENOENT/ENOTDIR), else the last one.
        let mut first = 0;
        let mut last = libc::ENOENT;
        for i in 0..plan.n_candidates {
            libc::execve(*plan.candidates.add(i), plan.argv.cast(), plan.envp.cast());
            last = errno();
            if first == 0 && last != libc::ENOENT && last != libc::ENOTDIR {
                first = last;
            }
        }
        fail(plan, STAGE_EXEC, if first != 0 { first } else { last })
    }
}

/// The child's stack, unmapped on drop.
struct Stack(*mut c_void);

impl Stack {
    fn new() -> io::Result<Self> {
        // SAFETY: an anonymous private mapping; checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(p))
    }

    /// The initial stack pointer (stacks grow down on every Linux target we build for).
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping, which is what clone expects.
        unsafe { self.0.cast::<u8>().add(STACK_SIZE).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`, once; the child no longer uses it
        // (the parent resumes only after the child exec'd or exited).
        unsafe { libc::munmap(self.0, STACK_SIZE) };
    }
}

/// Blocks every signal in this thread until dropped.
struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    fn new() -> Self {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask fills `old`.
        unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
            Self(old.assume_init())
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw const self.0, ptr::null_mut()) };
    }
}

/// Starts the child of `req` on the clone path; returns its pid, and its pidfd where
/// pidfds work.
pub fn spawn(
    req: &SpawnRequest,
    candidates: &[CString],
    actions: &[FdAction],
) -> Result<(libc::pid_t, Option<OwnedFd>), SpawnError> {
    let (err_read, err_write) = pipe_cloexec()?;
    // Keep the error pipe above the descriptors the child sets up (0-2).
    let err_write = if err_write.as_raw_fd() < 3 {
        dup_cloexec(err_write.as_raw_fd(), 3)?
    } else {
        err_write
    };
    let argv = c_array(&req.argv);
    let env_owned = req.env.as_deref().map(c_array);
    let envp: *const *mut c_char = match &env_owned {
        Some(env) => env.as_ptr(),
        // SAFETY: reading the `environ` pointer itself, as posix_spawn would.
        None => unsafe { environ }.cast(),
    };
    let several = candidates.len() > 1;
    let paths: Vec<*const c_char> = candidates
        .iter()
        .filter(|path| !(several && req.cwd.is_none() && surely_missing(path)))
        .map(|path| path.as_ptr())
        .collect();
    let creds = &req.credentials;
    let stack = Stack::new()?;
    let blocked = SignalsBlocked::new();
    let plan = ChildPlan {
        actions: actions.as_ptr(),
        n_actions: actions.len(),
        cwd: req.cwd.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
        umask: creds.umask,
        restore_signals: req.restore_signals,
        new_session: req.new_session,
        process_group: req.process_group,
        groups: creds.groups.as_ref().map_or(ptr::null(), Vec::as_ptr),
        n_groups: creds.groups.as_ref().map(Vec::len),
        gid: creds.gid,
        uid: creds.uid,
        candidates: paths.as_ptr(),
        n_candidates: paths.len(),
        argv: argv.as_ptr(),
        envp,
        err_fd: err_write.as_raw_fd(),
        mask: blocked.0,
    };
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    if pidfd_supported() {
        flags |= libc::CLONE_PIDFD;
    }
    let mut pidfd: c_int = -1;
    // SAFETY: the child runs `child_main` on its own stack with a pointer to `plan`;
    // CLONE_VFORK suspends this thread until the child exec'd or exited, so `plan`, the
    // arrays it points into and the stack all outlive the child's use of them. With
    // CLONE_PIDFD the kernel stores the new (close-on-exec) pidfd, which is created
    // after the child's copy of the descriptor table, through the parent-tid argument.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            flags,
            (&raw const plan).cast_mut().cast(),
            &raw mut pidfd,
        )
    };
    let clone_error = io::Error::last_os_error();
    drop(blocked);
    drop(stack);
    drop(err_write);
    if pid < 0 {
        return Err(SpawnError::Other(clone_error));
    }
    // SAFETY: with CLONE_PIDFD a successful clone stored a new descriptor that nobody
    // else owns; without it `pidfd` stayed -1.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let mut msg = [0u8; 5];
    let mut got = 0;
    while got < msg.len() {
        // SAFETY: reads into the rest of `msg`.
        let n = retry_eintr(|| {
            cvt(unsafe {
                libc::read(
                    err_read.as_raw_fd(),
                    msg[got..].as_mut_ptr().cast(),
                    msg.len() - got,
                )
            })
        })?;
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    drop(err_read);
    if got == 0 {
        return Ok((pid, pidfd));
    }
    // The child failed before exec and has exited: reap it (through the pidfd if there
    // is one: the pid may already have been reaped by someone else and reused).
    if let Some(fd) = &pidfd {
        let _ = crate::sys::waitid_pidfd(fd, 0);
    } else {
        let mut status = 0;
        // SAFETY: waitpid on our own child, writing one c_int.
        let _ = retry_eintr(|| cvt(unsafe { libc::waitpid(pid, &raw mut status, 0) }));
    }
    let errno = i32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let error = io::Error::from_raw_os_error(if got == msg.len() { errno } else { libc::EIO });
    Err(match msg[4] {
        STAGE_EXEC if got == msg.len() => SpawnError::Exec(error),
        STAGE_CHDIR => SpawnError::Chdir(error),
        _ => SpawnError::Other(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::{exec_candidates, spawn as spawn_request, Credentials, Stdio};

    fn request(script: &str) -> SpawnRequest {
        SpawnRequest {
            program: CString::new("/bin/sh").unwrap(),
            argv: ["sh", "-c", script]
                .iter()
                .map(|a| CString::new(*a).unwrap())
                .collect(),
            env: None,
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Pipe, Stdio::Inherit],
            close_fds: true,
            pass_fds: Vec::new(),
            new_session: false,
            process_group: None,
            restore_signals: true,
            pipe_size: None,
            credentials: Credentials {
                umask: Some(0o027),
                ..Credentials::default()
            },
        }
    }

    fn output(req: &SpawnRequest) -> (i32, String) {
        let (code, out) = crate::spawn::tests::run(req);
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn umask_is_applied() {
        assert_eq!(output(&request("umask; exit 4")), (4, "0027\n".to_owned()));
    }

    #[test]
    fn cwd_and_close_fds_work_on_the_clone_path() {
        let mut req = request("pwd; ls /proc/self/fd | wc -l");
        req.cwd = Some(CString::new("/tmp").unwrap());
        let (code, out) = output(&req);
        assert_eq!(code, 0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "/tmp");
        // 0, 1, 2 and the one ls opens for /proc/self/fd.
        assert!(lines[1].trim().parse::<u32>().unwrap() <= 4, "{out}");
    }

    #[test]
    fn exec_and_chdir_failures_are_reported_with_their_stage() {
        let mut req = request("true");
        req.program = CString::new("/no/such/program").unwrap();
        match spawn_request(&req, &exec_candidates(&req)) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
        let mut req = request("true");
        req.cwd = Some(CString::new("/no/such/dir").unwrap());
        match spawn_request(&req, &exec_candidates(&req)) {
            Err(SpawnError::Chdir(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }
}
