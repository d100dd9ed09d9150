//! The clone path: a child started with `clone(CLONE_VM | CLONE_VFORK)` for what
//! `posix_spawn` cannot express (a umask, supplementary groups, gid, uid, resource
//! limits, a parent-death signal, the subreaper flag, a cgroup to join) or cannot
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
//! The order of the child's steps follows CPython's `_posixsubprocess`: signals,
//! descriptors, cwd, umask, session/group, `setgroups`, `setregid`, `setreuid`, exec;
//! with the declarative child setup (no `preexec_fn`) fitted in: resource limits before
//! the ids change (a privileged parent may raise a hard limit for an unprivileged
//! child), subreaper and parent-death signal after it (changing ids clears the signal),
//! and joining the leaf cgroup first of all, right after the signals are reset: before
//! the descriptor plan can close the descriptor it writes to. (`clone3` with
//! `CLONE_INTO_CGROUP` would start the child in the leaf, but a `CLONE_VM` child of
//! `clone3` returns from the system call on a stack of its own, which needs assembly.)

use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::{
    c_array, environ, surely_missing, FdAction, Rlimit, SetupStep, SpawnError, SpawnRequest,
};
use crate::child::pidfd_supported;
use crate::pipe::pipe_cloexec;
use crate::sys::{cvt, dup_cloexec, retry_eintr, waitid_pidfd};

const STAGE_EXEC: u8 = 0;
const STAGE_CHDIR: u8 = 1;
const STAGE_OTHER: u8 = 2;
/// `setrlimit`; the report's detail is the resource.
const STAGE_RLIMIT: u8 = 3;
const STAGE_PDEATHSIG: u8 = 4;
const STAGE_SUBREAPER: u8 = 5;
const STAGE_CGROUP: u8 = 6;

/// The failure report: errno (4 bytes, little-endian), stage (1), detail (4).
const REPORT_LEN: usize = 9;

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
    rlimits: *const Rlimit,
    n_rlimits: usize,
    subreaper: bool,
    /// 0: none.
    pdeathsig: c_int,
    /// The leaf cgroup's `cgroup.procs`, open for writing; -1: none.
    cgroup_procs: RawFd,
    /// The pid of the process that started the child, read before `clone`.
    parent: libc::pid_t,
    candidates: *const *const c_char,
    n_candidates: usize,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    err_fd: RawFd,
    mask: libc::sigset_t,
}

/// A step of the child that failed: the stage it reports, a detail (the resource of a
/// failed `setrlimit`), and the errno.
#[derive(Clone, Copy)]
struct Failed {
    stage: u8,
    detail: c_int,
    errno: c_int,
}

type Step = Result<(), Failed>;

/// The errno of the call that just failed, as the failure of `stage`.
fn failed(stage: u8, detail: c_int) -> Failed {
    // SAFETY: __errno_location returns this thread's errno slot, always valid; reading
    // it is async-signal-safe.
    let errno = unsafe { *libc::__errno_location() };
    Failed {
        stage,
        detail,
        errno,
    }
}

/// `Ok` unless a call returned a negative value (-1), else the errno as a failure of
/// `stage`.
fn check(ret: impl Into<i64>, stage: u8) -> Step {
    check_detailed(ret, stage, 0)
}

fn check_detailed(ret: impl Into<i64>, stage: u8, detail: c_int) -> Step {
    if ret.into() >= 0 {
        Ok(())
    } else {
        Err(failed(stage, detail))
    }
}

/// Reports `failure` on `err_fd` (see [`REPORT_LEN`]) and ends the calling process with
/// `_exit(127)`: no destructor, atexit handler or stdio flush of this address space
/// runs, which would be the parent's.
fn report_and_exit(err_fd: RawFd, failure: Failed) -> ! {
    let mut msg = [0u8; REPORT_LEN];
    msg[..4].copy_from_slice(&failure.errno.to_le_bytes());
    msg[4] = failure.stage;
    msg[5..].copy_from_slice(&failure.detail.to_le_bytes());
    // SAFETY: write reads `msg`, which lives on this stack; a bad descriptor only makes
    // it fail, and the parent then reads EOF (success) or too few bytes (EIO).
    unsafe { libc::write(err_fd, msg.as_ptr().cast(), msg.len()) };
    // SAFETY: _exit takes no pointer and never returns.
    unsafe { libc::_exit(127) }
}

/// Closes `[low, high]`, with `close_range` or one by one where it is missing.
///
/// # Safety
/// The calling process's descriptors in the range are its own to close: nothing else
/// in it (an `OwnedFd`, another thread) will use them again. True in the clone child,
/// whose descriptor table is a copy (no `CLONE_FILES`) used only until it execs.
unsafe fn close_range(low: RawFd, high: RawFd) {
    if low > high {
        return;
    }
    // SAFETY: close_range closes descriptors of this process's table, which the caller
    // gives up.
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            high as libc::c_uint,
            0,
        )
    };
    if closed == 0 {
        return;
    }
    let mut limit = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit writes one rlimit through the pointer.
    let top = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } == 0 {
        // SAFETY: getrlimit succeeded, so `limit` is initialised.
        unsafe { limit.assume_init() }.rlim_cur.min(1 << 20) as RawFd
    } else {
        1024
    };
    for fd in low..=high.min(top) {
        // SAFETY: as above, one descriptor at a time.
        unsafe { libc::close(fd) };
    }
}

/// Resets every caught signal to its default action, and with `restore_signals`
/// SIGPIPE and SIGXFSZ too (which Python ignores).
///
/// # Safety
/// Every signal is blocked in the calling thread (so no handler can run halfway), and
/// nothing in the calling process relies on its handlers any more: it is about to exec
/// or exit. True in the clone child, which inherits the mask `spawn` blocked.
unsafe fn reset_signals(restore_signals: bool) {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: all-zero bytes are a valid `sigaction` (plain data).
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: with no new action sigaction only writes the current one into `old`.
        if unsafe { libc::sigaction(sig, ptr::null(), &raw mut old) } != 0 {
            continue;
        }
        let caught = old.sa_sigaction != libc::SIG_IGN && old.sa_sigaction != libc::SIG_DFL;
        let restore = restore_signals && (sig == libc::SIGPIPE || sig == libc::SIGXFSZ);
        if caught || restore {
            // SAFETY: as above.
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: installs the default action, which runs no code of ours; the
            // caller guarantees no handler is relied upon.
            unsafe { libc::sigaction(sig, &raw const dfl, ptr::null_mut()) };
        }
    }
}

/// Applies one step of the descriptor plan.
///
/// # Safety
/// As [`close_range`]: the descriptors the step replaces or closes are the calling
/// process's own to give up; `err_fd` is the one the failure report goes to (kept open
/// by `CloseFrom`); `cwd` is null or a NUL-terminated path that outlives the call.
unsafe fn apply(action: FdAction, err_fd: RawFd, cwd: *const c_char) -> Step {
    match action {
        FdAction::Dup2(from, to) => {
            // SAFETY: replaces `to`, which the caller gives up.
            check(unsafe { libc::dup2(from, to) }, STAGE_OTHER)
        }
        FdAction::Close(fd) => {
            // SAFETY: closes `fd`, which the caller gives up.
            unsafe { libc::close(fd) };
            Ok(())
        }
        FdAction::DevNull(to) => {
            // SAFETY: open reads the NUL-terminated path.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            check(fd, STAGE_OTHER)?;
            if fd != to {
                // SAFETY: replaces `to` (given up), then closes the descriptor just opened.
                check(unsafe { libc::dup2(fd, to) }, STAGE_OTHER)?;
                // SAFETY: `fd` was opened above and nothing else refers to it.
                unsafe { libc::close(fd) };
            }
            Ok(())
        }
        FdAction::CloseFrom(low) => {
            // Keep the error pipe (close-on-exec: it goes at exec anyway).
            // SAFETY: the caller gives up every descriptor but `err_fd`.
            unsafe {
                if err_fd >= low {
                    close_range(low, err_fd - 1);
                    close_range(err_fd + 1, RawFd::MAX);
                } else {
                    close_range(low, RawFd::MAX);
                }
            }
            Ok(())
        }
        FdAction::Chdir if cwd.is_null() => Ok(()),
        FdAction::Chdir => {
            // SAFETY: `cwd` is a NUL-terminated path (the caller's guarantee).
            check(unsafe { libc::chdir(cwd) }, STAGE_CHDIR)
        }
    }
}

/// The process-wide steps after the descriptors: umask, then session or process group,
/// in `_posixsubprocess`'s order.
///
/// # Safety
/// The calling process is the child: a process about to exec, whose umask, session and
/// process group nobody else relies on.
unsafe fn apply_session(plan: &ChildPlan) -> Step {
    if let Some(mask) = plan.umask {
        // SAFETY: umask only swaps a process attribute.
        unsafe { libc::umask(mask) };
    }
    if plan.new_session {
        // SAFETY: setsid takes no argument.
        check(unsafe { libc::setsid() }, STAGE_OTHER)?;
    }
    if let Some(pgroup) = plan.process_group {
        // SAFETY: setpgid takes two integers.
        check(unsafe { libc::setpgid(0, pgroup) }, STAGE_OTHER)?;
    }
    Ok(())
}

/// Sets the resource limits, in order: before the credentials change, so a privileged
/// parent can raise a hard limit for a child that then drops its privileges.
///
/// # Safety
/// The calling process is the child, whose limits nobody else relies on; `plan.rlimits`
/// points to `plan.n_rlimits` limits.
unsafe fn apply_rlimits(plan: &ChildPlan) -> Step {
    for i in 0..plan.n_rlimits {
        // SAFETY: `i` is within the limits (the caller's guarantee).
        let limit = unsafe { *plan.rlimits.add(i) };
        let new = libc::rlimit64 {
            rlim_cur: limit.soft,
            rlim_max: limit.hard,
        };
        // SAFETY: prlimit64 on this process (pid 0) reads one rlimit64 and, with a null
        // old-value pointer, writes nothing: `setrlimit`, made directly.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                limit.resource,
                &raw const new,
                ptr::null_mut::<libc::rlimit64>(),
            )
        };
        check_detailed(ret, STAGE_RLIMIT, limit.resource)?;
    }
    Ok(())
}

/// Supplementary groups, gid, uid; in `_posixsubprocess`'s order.
///
/// # Safety
/// The calling process is the child: a single-threaded process about to exec, whose
/// credentials nobody else relies on. `plan.groups` points to `plan.n_groups` ids when
/// that is `Some`.
///
/// The ids are set with the raw system calls, as glibc's own `posix_spawn` child does
/// (its `local-setxid.h`): glibc's `setgroups`/`setregid`/`setreuid` see the parent's
/// memory, believe the process multi-threaded, and run their all-threads protocol
/// (`__nptl_setxid`: its lock, a signal to each of the parent's threads) from the child.
/// The raw calls change the calling thread, which here is the whole child.
unsafe fn apply_credentials(plan: &ChildPlan) -> Step {
    if let Some(n) = plan.n_groups {
        // SAFETY: the kernel reads `n` gid_t from `plan.groups` (the caller's guarantee).
        let ret = unsafe { libc::syscall(libc::SYS_setgroups, n, plan.groups) };
        check(ret, STAGE_OTHER)?;
    }
    if let Some(gid) = plan.gid {
        // SAFETY: setregid takes two integers.
        let ret = unsafe { libc::syscall(libc::SYS_setregid, gid, gid) };
        check(ret, STAGE_OTHER)?;
    }
    if let Some(uid) = plan.uid {
        // SAFETY: setreuid takes two integers.
        let ret = unsafe { libc::syscall(libc::SYS_setreuid, uid, uid) };
        check(ret, STAGE_OTHER)?;
    }
    Ok(())
}

/// Makes the child a subreaper, and gives it its parent-death signal: after the
/// credentials change, which clears the signal.
///
/// The parent may have died between `clone` and `prctl`, and then the signal would
/// never come: the child has been reparented, so `getppid()` is no longer the
/// `plan.parent` read before `clone`, and the child sends itself the signal as the
/// kernel would have. (All signals are blocked until just before the exec: SIGKILL
/// ends it at once, another signal when the mask is restored, with the disposition the
/// kernel's would have met.)
///
/// # Safety
/// The calling process is the child (its own subreaper flag, parent-death signal and
/// pending signals); `plan.parent` is the pid of the process that started it.
unsafe fn apply_parent_ties(plan: &ChildPlan) -> Step {
    if plan.subreaper {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer.
        let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
        check(ret, STAGE_SUBREAPER)?;
    }
    if plan.pdeathsig != 0 {
        let signal = plan.pdeathsig as libc::c_ulong;
        // SAFETY: PR_SET_PDEATHSIG takes one integer.
        let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal) };
        check(ret, STAGE_PDEATHSIG)?;
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != plan.parent {
            // SAFETY: getpid cannot fail; kill signals this process only.
            unsafe { libc::kill(libc::getpid(), plan.pdeathsig) };
        }
    }
    Ok(())
}

/// Joins the leaf cgroup: "0" (the writing process) to its `cgroup.procs`, through the
/// descriptor the parent opened. Nothing of the child's can fork before this.
///
/// # Safety
/// The calling process is the child; `plan.cgroup_procs` is -1 or open for writing.
unsafe fn join_cgroup(plan: &ChildPlan) -> Step {
    if plan.cgroup_procs < 0 {
        return Ok(());
    }
    // SAFETY: write reads one byte of a static string.
    let ret = unsafe { libc::write(plan.cgroup_procs, c"0".as_ptr().cast(), 1) };
    check(ret as i64, STAGE_CGROUP)
}

/// Restores the signal mask and execs each candidate in turn; returns only on failure,
/// with the first error that is not "no such file" (ENOENT/ENOTDIR), else the last one,
/// as `subprocess` does.
///
/// # Safety
/// `plan.candidates` points to `plan.n_candidates` NUL-terminated paths, `plan.argv`
/// and `plan.envp` to null-terminated arrays of NUL-terminated strings, all alive for
/// the call; the caller has reset its signal handlers ([`reset_signals`]), since
/// restoring the mask lets pending signals through.
unsafe fn exec_first(plan: &ChildPlan) -> Failed {
    // SAFETY: sets this thread's mask from a valid sigset.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &raw const plan.mask, ptr::null_mut()) };
    let mut first = 0;
    let mut last = libc::ENOENT;
    for i in 0..plan.n_candidates {
        // SAFETY: `i` is within the candidates (the caller's guarantee).
        let path = unsafe { *plan.candidates.add(i) };
        // SAFETY: every pointer is valid and terminated (the caller's guarantee); execve
        // only returns on failure.
        unsafe { libc::execve(path, plan.argv.cast(), plan.envp.cast()) };
        last = failed(STAGE_EXEC, 0).errno;
        if first == 0 && last != libc::ENOENT && last != libc::ENOTDIR {
            first = last;
        }
    }
    Failed {
        stage: STAGE_EXEC,
        detail: 0,
        errno: if first != 0 { first } else { last },
    }
}

/// The child's steps up to the exec; returns only the step that failed.
///
/// # Safety
/// The caller is the child `spawn` started on `clone(CLONE_VM|CLONE_VFORK)` with every
/// signal blocked: it runs in the parent's memory while the parent's thread is
/// suspended, so it may only make async-signal-safe calls (no allocation, lock or
/// unwinding); its descriptor table, credentials and signal handlers are its own. `plan`
/// is as `spawn` built it: every pointer valid for the lengths it gives.
unsafe fn run_child(plan: &ChildPlan) -> Failed {
    // SAFETY: signals are blocked and the process will exec or exit (the contract).
    unsafe { reset_signals(plan.restore_signals) };
    // First, before the descriptor plan can close or replace its descriptor.
    // SAFETY: the child is a process of its own, about to exec.
    if let Err(failure) = unsafe { join_cgroup(plan) } {
        return failure;
    }
    for i in 0..plan.n_actions {
        // SAFETY: `i` is within the plan's actions.
        let action = unsafe { *plan.actions.add(i) };
        // SAFETY: the descriptor table is the child's own; `cwd` as `spawn` set it.
        if let Err(failure) = unsafe { apply(action, plan.err_fd, plan.cwd) } {
            return failure;
        }
    }
    // SAFETY (each step): the child is a single-threaded process about to exec, whose
    // process attributes are its own; `plan`'s arrays are as `spawn` built them.
    let steps: [unsafe fn(&ChildPlan) -> Step; 4] = [
        apply_session,
        apply_rlimits,
        apply_credentials,
        apply_parent_ties,
    ];
    for step in steps {
        // SAFETY: see above.
        if let Err(failure) = unsafe { step(plan) } {
            return failure;
        }
    }
    // SAFETY: the arrays are as `spawn` built them; the handlers were reset above.
    unsafe { exec_first(plan) }
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildPlan` that `spawn` passed to clone; it stays alive while
    // the parent waits (CLONE_VFORK).
    let plan = unsafe { &*arg.cast::<ChildPlan>() };
    // SAFETY: this is the clone child `run_child` describes (see `spawn`).
    let failure = unsafe { run_child(plan) };
    report_and_exit(plan.err_fd, failure)
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
/// pidfds work. `parent` is this process's pid (the child compares it with its
/// `getppid()` once its parent-death signal is set); `cgroup_procs`, the `cgroup.procs`
/// of the leaf cgroup the child joins (open for writing), if any.
pub fn spawn(
    req: &SpawnRequest,
    candidates: &[CString],
    actions: &[FdAction],
    parent: libc::pid_t,
    cgroup_procs: Option<RawFd>,
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
        rlimits: req.setup.rlimits.as_ptr(),
        n_rlimits: req.setup.rlimits.len(),
        subreaper: req.setup.subreaper,
        pdeathsig: req.setup.pdeathsig.unwrap_or(0),
        cgroup_procs: cgroup_procs.unwrap_or(-1),
        parent,
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
    let Some(failure) = read_report(&err_read)? else {
        return Ok((pid, pidfd));
    };
    drop(err_read);
    // The child failed before exec and has exited: reap it (through the pidfd if there
    // is one: the pid may already have been reaped by someone else and reused).
    if let Some(fd) = &pidfd {
        let _ = waitid_pidfd(fd, 0);
    } else {
        let mut status = 0;
        // SAFETY: waitpid on our own child, writing one c_int.
        let _ = retry_eintr(|| cvt(unsafe { libc::waitpid(pid, &raw mut status, 0) }));
    }
    let error = io::Error::from_raw_os_error(failure.errno);
    Err(match failure.stage {
        STAGE_EXEC => SpawnError::Exec(error),
        STAGE_CHDIR => SpawnError::Chdir(error),
        STAGE_RLIMIT => SpawnError::Setup(SetupStep::Rlimit(failure.detail), error),
        STAGE_PDEATHSIG => SpawnError::Setup(SetupStep::ParentDeathSignal, error),
        STAGE_SUBREAPER => SpawnError::Setup(SetupStep::Subreaper, error),
        STAGE_CGROUP => SpawnError::Setup(SetupStep::Cgroup, error),
        _ => SpawnError::Other(error),
    })
}

/// The child's failure report, or `None` at EOF without one (the error pipe closed at
/// exec, or the child died before it could write: it ran). A report cut short is EIO.
fn read_report(err_read: &OwnedFd) -> io::Result<Option<Failed>> {
    let mut msg = [0u8; REPORT_LEN];
    let mut got = 0;
    while got < msg.len() {
        let rest = &mut msg[got..];
        let n = retry_eintr(|| {
            // SAFETY: read writes at most `rest.len()` bytes into `rest`.
            let n =
                unsafe { libc::read(err_read.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
            cvt(n)
        })?;
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(match got {
        0 => None,
        REPORT_LEN => Some(Failed {
            errno: i32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]),
            stage: msg[4],
            detail: i32::from_le_bytes([msg[5], msg[6], msg[7], msg[8]]),
        }),
        _ => Some(Failed {
            errno: libc::EIO,
            stage: STAGE_OTHER,
            detail: 0,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::{spawn as spawn_request, ChildSetup, Credentials, Stdio};

    fn request(script: &str) -> SpawnRequest {
        SpawnRequest {
            program: CString::new("/bin/sh").unwrap(),
            argv: ["sh", "-c", script]
                .iter()
                .map(|a| CString::new(*a).unwrap())
                .collect(),
            env: None,
            exec_path: None,
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
            setup: ChildSetup::default(),
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
    fn credentials_are_applied_while_other_threads_run() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return; // Only root may change its ids.
        }
        // Other threads exist (the test harness's, and this one), so glibc's setxid
        // wrappers would run their all-threads protocol; the raw calls must not need it.
        let busy = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let mut req = request("id -u; id -g; id -G");
        req.credentials = Credentials {
            umask: None,
            groups: Some(vec![65534, 1]),
            gid: Some(65534),
            uid: Some(65534),
        };
        assert_eq!(output(&req), (0, "65534\n65534\n65534 1\n".to_owned()));
        busy.join().unwrap();
    }

    fn setup_request(script: &str, setup: ChildSetup) -> SpawnRequest {
        let mut req = request(script);
        req.credentials = Credentials::default();
        req.setup = setup;
        req
    }

    #[test]
    fn rlimits_are_applied_in_order() {
        let limit = |soft, hard| Rlimit {
            resource: libc::RLIMIT_NOFILE as c_int,
            soft,
            hard,
        };
        let setup = ChildSetup {
            rlimits: vec![limit(300, 400), limit(100, 200)],
            ..ChildSetup::default()
        };
        let req = setup_request("ulimit -Sn; ulimit -Hn", setup);
        assert_eq!(output(&req), (0, "100\n200\n".to_owned()));
    }

    #[test]
    fn a_failed_rlimit_is_reported_with_its_resource() {
        let setup = ChildSetup {
            rlimits: vec![Rlimit {
                resource: libc::RLIMIT_CORE as c_int,
                soft: 2,
                hard: 1,
            }],
            ..ChildSetup::default()
        };
        match spawn_request(&setup_request("true", setup)) {
            Err(SpawnError::Setup(SetupStep::Rlimit(r), e)) => {
                assert_eq!(
                    (r, e.raw_os_error()),
                    (libc::RLIMIT_CORE as c_int, Some(libc::EINVAL))
                );
            }
            other => panic!("{:?}", other.map(|s| s.map(|s| s.child))),
        }
    }

    /// Starts `req` on the clone path as if `parent` had started it; its returncode.
    fn returncode_as_child_of(req: &SpawnRequest, parent: libc::pid_t) -> i32 {
        let candidates = crate::spawn::exec_candidates(req);
        let (pid, pidfd) =
            spawn(req, &candidates, &[], parent, None).unwrap_or_else(|e| panic!("{e:?}"));
        let mut child = match pidfd {
            Some(fd) => crate::child::Child::from_pidfd(pid, fd),
            None => crate::child::Child::watch(pid).unwrap(),
        };
        child.wait(None).unwrap().unwrap()
    }

    #[test]
    fn a_parent_gone_before_pdeathsig_took_effect_is_noticed() {
        let mut req = setup_request(
            "exit 3",
            ChildSetup {
                pdeathsig: Some(libc::SIGKILL),
                ..ChildSetup::default()
            },
        );
        req.stdio = [Stdio::Inherit; 3];
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        assert_eq!(returncode_as_child_of(&req, me), 3);
        // A parent pid the child does not see as its parent: as if its parent had died
        // (and it had been reparented) between clone and prctl.
        assert_eq!(returncode_as_child_of(&req, me + 1_000_000), -libc::SIGKILL);
        // A signal other than SIGKILL arrives once the mask is restored, before exec.
        req.setup.pdeathsig = Some(libc::SIGTERM);
        assert_eq!(returncode_as_child_of(&req, me + 1_000_000), -libc::SIGTERM);
    }

    #[test]
    fn a_subreaper_child_adopts_orphaned_descendants() {
        // The subshell starts a sleep and exits: the orphaned sleep is reparented to the
        // nearest subreaper, our child (else to init, or another subreaper above us).
        let script = "pid=$( (sleep 5 >/dev/null & echo $!) ); sleep 0.2; \
                      ppid=$(cut -d' ' -f4 /proc/$pid/stat); kill $pid; \
                      [ \"$ppid\" = $$ ] && echo adopted || echo elsewhere";
        let mut setup = ChildSetup {
            subreaper: true,
            ..ChildSetup::default()
        };
        assert_eq!(
            output(&setup_request(script, setup.clone())),
            (0, "adopted\n".to_owned())
        );
        setup.subreaper = false;
        assert_eq!(
            output(&setup_request(script, setup)),
            (0, "elsewhere\n".to_owned())
        );
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
        match spawn_request(&req) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
        let mut req = request("true");
        req.cwd = Some(CString::new("/no/such/dir").unwrap());
        match spawn_request(&req) {
            Err(SpawnError::Chdir(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }
}
