//! Starting a child: the request, its descriptor plan, the paths to exec, and the one
//! decision of which backend starts it.
//!
//! * [`posix`]: `posix_spawn`, for everything it can express.
//! * [`clone`]: a child on `clone(CLONE_VM|CLONE_VFORK)` running our own steps, for what
//!   `posix_spawn` cannot express (umask, credentials) or cannot report apart from an
//!   exec failure (joining a process group).
//!
//! Neither copies the parent's address space, so the cost stays flat however much memory
//! the parent holds. The backends share the vocabulary defined here and never import
//! each other; [`spawn`] builds the plan, routes, and wraps the pid in a [`Child`].

mod clone;
mod parent_thread;
mod posix;

use std::ffi::{c_char, CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

pub use posix::Extensions;

use crate::cgroup::CGroup;
use crate::child::Child;
use crate::pipe::{pipe_cloexec, set_pipe_size, ReadPipe, WritePipe};
use crate::sys::{dup_cloexec, fd_flags};

/// What one of the child's standard descriptors is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// The parent's descriptor of the same number.
    Inherit,
    /// A new pipe whose other end the parent keeps.
    Pipe,
    /// `/dev/null`.
    DevNull,
    /// This open descriptor of the parent's.
    Fd(RawFd),
    /// Whatever the child's stdout is (stderr only).
    Stdout,
}

/// Everything needed to start one child.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// The executable: a path, or a bare name looked up in `PATH`.
    pub program: CString,
    pub argv: Vec<CString>,
    /// `NAME=value` entries; `None` inherits this process's environment.
    pub env: Option<Vec<CString>>,
    /// The directories a bare program name is looked up in, `:`-separated, as the
    /// caller read `PATH` (Python: `os.get_exec_path(env)`, from `os.environ` or `env`);
    /// never read here from the C environment, which another thread may be changing.
    pub exec_path: Option<CString>,
    pub cwd: Option<CString>,
    /// stdin, stdout, stderr.
    pub stdio: [Stdio; 3],
    /// Close every descriptor but 0–2 and `pass_fds` in the child.
    pub close_fds: bool,
    pub pass_fds: Vec<RawFd>,
    pub new_session: bool,
    pub process_group: Option<libc::pid_t>,
    /// Reset SIGPIPE and SIGXFSZ, which Python ignores, to their defaults.
    pub restore_signals: bool,
    /// `F_SETPIPE_SZ` for every pipe created.
    pub pipe_size: Option<u32>,
    /// What only the clone path can apply.
    pub credentials: Credentials,
    /// What the child does for itself before exec (clone path only).
    pub setup: ChildSetup,
}

/// umask, groups and ids for the child: `posix_spawn` cannot express them, so a request
/// with any of them set is started by the [`clone`] backend.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub umask: Option<libc::mode_t>,
    /// Supplementary groups (`setgroups`).
    pub groups: Option<Vec<libc::gid_t>>,
    /// `setregid(gid, gid)`.
    pub gid: Option<libc::gid_t>,
    /// `setreuid(uid, uid)`.
    pub uid: Option<libc::uid_t>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.umask.is_none() && self.groups.is_none() && self.gid.is_none() && self.uid.is_none()
    }
}

/// One resource limit to set in the child (`setrlimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_*`.
    pub resource: libc::c_int,
    /// `rlim_cur` and `rlim_max` (`RLIM_INFINITY` is `u64::MAX`).
    pub soft: u64,
    pub hard: u64,
}

/// What the child sets up for itself between clone and exec, declared instead of run as
/// a `preexec_fn`: only the [`clone`] backend does it.
#[derive(Debug, Default, Clone)]
pub struct ChildSetup {
    /// Set in order, before the credentials change (so a privileged parent can raise a
    /// hard limit for a child that then drops its privileges).
    pub rlimits: Vec<Rlimit>,
    /// The signal the child gets when this process dies (`PR_SET_PDEATHSIG`), set after
    /// the credentials change (which would clear it). The kernel sends it when the
    /// *thread* that started the child ends, so such children are started by one
    /// thread that lives as long as the process (`parent_thread`).
    pub pdeathsig: Option<libc::c_int>,
    /// Make the child a subreaper (`PR_SET_CHILD_SUBREAPER`): orphaned descendants are
    /// reparented to it, not to init, so they stay in its subtree.
    pub subreaper: bool,
    /// A cgroup v2 directory: a fresh leaf is made in it for the child ([`CGroup`]),
    /// which joins it first thing after `clone`, before it can fork.
    pub cgroup: Option<CString>,
}

impl ChildSetup {
    pub fn is_empty(&self) -> bool {
        self.rlimits.is_empty()
            && self.pdeathsig.is_none()
            && !self.subreaper
            && self.cgroup.is_none()
    }
}

/// A step of [`ChildSetup`], named in the error when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStep {
    /// `setrlimit` of this resource.
    Rlimit(libc::c_int),
    /// `prctl(PR_SET_PDEATHSIG)`.
    ParentDeathSignal,
    /// `prctl(PR_SET_CHILD_SUBREAPER)`.
    Subreaper,
    /// Joining the leaf cgroup (writing "0" to its `cgroup.procs`).
    Cgroup,
}

/// A started child and the parent's ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// The child's leaf cgroup, when [`ChildSetup::cgroup`] asked for one.
    pub cgroup: Option<CGroup>,
    pub stdin: Option<WritePipe>,
    pub stdout: Option<ReadPipe>,
    pub stderr: Option<ReadPipe>,
}

/// Why a spawn failed, so the caller can name the file as `subprocess` does.
#[derive(Debug)]
pub enum SpawnError {
    /// Executing the program failed (the error names the program).
    Exec(io::Error),
    /// Changing to `cwd` failed (the error names the directory).
    Chdir(io::Error),
    /// A step of the [`ChildSetup`] failed in the child.
    Setup(SetupStep, io::Error),
    /// Making the leaf cgroup failed in the parent, before the spawn (the error names
    /// the cgroup directory given).
    Cgroup(io::Error),
    /// Anything else: bad descriptors, no pipes, out of memory.
    Other(io::Error),
}

impl From<io::Error> for SpawnError {
    fn from(e: io::Error) -> Self {
        SpawnError::Other(e)
    }
}

/// A null-terminated array of pointers into `strings`, for argv and envp.
pub(crate) fn c_array(strings: &[CString]) -> Vec<*mut c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// The paths to try for `req.program`, in order, as `subprocess` builds them: the
/// program itself when it names a directory, else each entry of `req.exec_path` joined
/// with it (`/bin:/usr/bin`, Python's `os.defpath`, when that is `None`).
pub fn exec_candidates(req: &SpawnRequest) -> Vec<CString> {
    let program = req.program.as_bytes();
    if program.contains(&b'/') {
        return vec![req.program.clone()];
    }
    let path = req
        .exec_path
        .as_ref()
        .map_or(&b"/bin:/usr/bin"[..], |p| p.as_bytes());
    path.split(|&b| b == b':')
        .map(|dir| {
            let mut full = dir.to_vec();
            if !full.is_empty() && !full.ends_with(b"/") {
                full.push(b'/');
            }
            full.extend_from_slice(program);
            // Neither part contains NUL (both are C strings), so nothing is dropped.
            CString::new(full).ok()
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// Whether a candidate can be skipped without a spawn: it is absolute and does not exist.
pub(crate) fn surely_missing(path: &CStr) -> bool {
    if path.to_bytes().first() != Some(&b'/') {
        return false;
    }
    // SAFETY: access reads the NUL-terminated path.
    let ok = unsafe { libc::access(path.as_ptr(), libc::F_OK) } == 0;
    !ok && matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR)
    )
}

/// One step of setting up the child's descriptors, run in order in the child: by
/// `posix_spawn` (as file actions) or by the clone path's child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdAction {
    Dup2(RawFd, RawFd),
    Close(RawFd),
    /// Open `/dev/null` read-write as this descriptor.
    DevNull(RawFd),
    /// Close every descriptor from this one up.
    CloseFrom(RawFd),
    /// Change to `SpawnRequest::cwd`.
    Chdir,
}

/// The descriptor plan of one spawn plus the descriptors it refers to, which must stay
/// open until the spawn has happened.
pub struct ChildFds {
    pub actions: Vec<FdAction>,
    keep_open: Vec<OwnedFd>,
}

impl ChildFds {
    /// Makes the child's `target` a copy of the parent's `source`.
    ///
    /// A source below 3 other than `target` is first duplicated above 2, so no earlier
    /// action can overwrite it (e.g. stdout=2, stderr=1). A source equal to `target` is
    /// inherited as is unless it is close-on-exec, in which case a duplicate clears it.
    fn connect(&mut self, source: RawFd, target: RawFd) -> io::Result<()> {
        let cloexec = fd_flags(source)? & libc::FD_CLOEXEC != 0;
        if source == target && !cloexec {
            return Ok(());
        }
        if source < 3 || source == target {
            let copy = dup_cloexec(source, 3)?;
            self.actions.push(FdAction::Dup2(copy.as_raw_fd(), target));
            self.keep_open.push(copy);
        } else {
            self.actions.push(FdAction::Dup2(source, target));
        }
        Ok(())
    }
}

/// The descriptors above 2 and below `below` that may be open in this process, lowest
/// first: those listed in `/proc/self/fd`, or where /proc is not mounted (containers
/// and sandboxes hide it) every number in the range, for the caller to ask each one
/// (`subprocess` does the same without /proc).
fn candidate_fds(below: RawFd) -> Vec<RawFd> {
    candidate_fds_listed_in("/proc/self/fd", below)
}

fn candidate_fds_listed_in(listing: &str, below: RawFd) -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir(listing) else {
        return (3..below).collect();
    };
    let mut fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2 && fd < below)
        .collect();
    fds.sort_unstable();
    fds
}

fn plan_close_fds(fds: &mut ChildFds, req: &SpawnRequest) -> io::Result<()> {
    let mut keep: Vec<RawFd> = req.pass_fds.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    for &fd in &keep {
        // Passed descriptors arrive in the child with close-on-exec cleared.
        fds.connect(fd, fd)?;
    }
    let Some(&highest) = keep.last() else {
        fds.actions.push(FdAction::CloseFrom(3));
        return Ok(());
    };
    // closefrom cannot skip the passed descriptors, so inheritable descriptors between
    // them are closed one by one; close-on-exec ones vanish at exec anyway.
    for fd in candidate_fds(highest) {
        if keep.binary_search(&fd).is_err() {
            if let Ok(flags) = fd_flags(fd) {
                if flags & libc::FD_CLOEXEC == 0 {
                    fds.actions.push(FdAction::Close(fd));
                }
            }
        }
    }
    fds.actions.push(FdAction::CloseFrom(highest + 1));
    Ok(())
}

/// Sets up the child's stdin, stdout and stderr; returns the parent's pipe ends.
fn connect_stdio(fds: &mut ChildFds, req: &SpawnRequest) -> io::Result<[Option<OwnedFd>; 3]> {
    for fd in req.stdio.iter().filter_map(|s| match s {
        Stdio::Fd(fd) => Some(*fd),
        _ => None,
    }) {
        fd_flags(fd)?;
    }
    let mut parent_ends: [Option<OwnedFd>; 3] = [None, None, None];
    for (target, how) in req.stdio.iter().enumerate() {
        let target = target as RawFd;
        match *how {
            Stdio::Inherit => {}
            Stdio::DevNull => fds.actions.push(FdAction::DevNull(target)),
            Stdio::Fd(fd) => fds.connect(fd, target)?,
            Stdio::Stdout => fds.actions.push(FdAction::Dup2(1, target)),
            Stdio::Pipe => {
                let (read_end, write_end) = pipe_cloexec()?;
                let (parent, child) = if target == 0 {
                    (write_end, read_end)
                } else {
                    (read_end, write_end)
                };
                if let Some(size) = req.pipe_size {
                    set_pipe_size(parent.as_fd(), size)?;
                }
                fds.connect(child.as_raw_fd(), target)?;
                fds.keep_open.push(child);
                parent_ends[target as usize] = Some(parent);
            }
        }
    }
    Ok(parent_ends)
}

/// The backend that starts a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    PosixSpawn,
    Clone,
}

/// The one routing decision: the backend that starts `req`, or `None` when it cannot
/// be started natively here.
fn backend(req: &SpawnRequest) -> Option<Backend> {
    if !req.credentials.is_empty() || req.process_group.is_some() || !req.setup.is_empty() {
        // posix_spawn cannot set a umask, change credentials or run the child setup, and
        // when joining a process group fails it reports the errno as if the exec had
        // failed (EPERM, EACCES): the clone path reports which step failed, as
        // `subprocess` does. It changes directory and closes descriptors itself.
        return Some(Backend::Clone);
    }
    let extensions = Extensions::get();
    if (req.cwd.is_some() && !extensions.cwd()) || (req.close_fds && !extensions.close_fds()) {
        // This libc lacks the posix_spawn file action the option needs (`addchdir_np`,
        // glibc 2.29; `addclosefrom_np`, 2.34): not natively here, so the caller spawns
        // some other way rather than ignore the option.
        return None;
    }
    Some(Backend::PosixSpawn)
}

/// Starts the child described by `req`, trying the paths [`exec_candidates`] gives in
/// order, as `subprocess` does: the first error other than ENOENT/ENOTDIR is the one
/// reported.
///
/// `Ok(None)`, before anything is created, when `req` cannot be started natively here
/// (see [`backend`]).
///
/// A request with a parent-death signal is started by the one long-lived thread of
/// [`parent_thread`] (the calling thread waits for it), so that the signal comes when
/// this process dies, not when the calling thread ends.
pub fn spawn(req: &SpawnRequest) -> Result<Option<Spawned>, SpawnError> {
    if req.setup.pdeathsig.is_some() {
        let req = req.clone();
        parent_thread::run(move || spawn_here(&req))?
    } else {
        spawn_here(req)
    }
}

/// [`spawn`], on the calling thread.
fn spawn_here(req: &SpawnRequest) -> Result<Option<Spawned>, SpawnError> {
    let Some(backend) = backend(req) else {
        return Ok(None);
    };
    let candidates = &exec_candidates(req);
    // The leaf first, so nothing else is created when it cannot be; dropped (removed)
    // on every failure below, the child having joined it or not.
    let cgroup = req
        .setup
        .cgroup
        .as_deref()
        .map(CGroup::create)
        .transpose()
        .map_err(SpawnError::Cgroup)?;
    let procs = cgroup
        .as_ref()
        .map(CGroup::open_procs)
        .transpose()
        .map_err(SpawnError::Cgroup)?;
    let mut fds = ChildFds {
        actions: Vec::new(),
        keep_open: Vec::new(),
    };
    let [stdin, stdout, stderr] = connect_stdio(&mut fds, req)?;
    if req.close_fds {
        plan_close_fds(&mut fds, req)?;
    }
    if req.cwd.is_some() {
        fds.actions.push(FdAction::Chdir);
    }
    let (pid, pidfd) = match backend {
        Backend::PosixSpawn => (posix::spawn(req, candidates, &fds.actions)?, None),
        Backend::Clone => {
            // SAFETY: getpid cannot fail.
            let parent = unsafe { libc::getpid() };
            let procs = procs.as_ref().map(AsRawFd::as_raw_fd);
            clone::spawn(req, candidates, &fds.actions, parent, procs)?
        }
    };
    // The child's ends of the pipes, and the leaf's cgroup.procs, close here.
    drop(fds);
    drop(procs);
    let child = match pidfd {
        Some(fd) => Child::from_pidfd(pid, fd),
        None => Child::watch(pid)?,
    };
    Ok(Some(Spawned {
        child,
        cgroup,
        stdin: stdin.map(WritePipe::new).transpose()?,
        stdout: stdout.map(ReadPipe::new).transpose()?,
        stderr: stderr.map(ReadPipe::new).transpose()?,
    }))
}

extern "C" {
    pub(crate) static environ: *const *const c_char;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    fn request(argv: &[&str]) -> SpawnRequest {
        SpawnRequest {
            program: CString::new(argv[0]).unwrap(),
            argv: argv.iter().map(|a| CString::new(*a).unwrap()).collect(),
            env: None,
            exec_path: Some(CString::new("/usr/local/bin:/usr/bin:/bin").unwrap()),
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            close_fds: true,
            pass_fds: Vec::new(),
            new_session: false,
            process_group: None,
            restore_signals: true,
            pipe_size: None,
            credentials: Credentials::default(),
            setup: ChildSetup::default(),
        }
    }

    /// Spawns `req`, reads its stdout (if piped) to EOF and waits: `(returncode, output)`.
    pub(crate) fn run(req: &SpawnRequest) -> (i32, Vec<u8>) {
        let mut spawned = spawn(req)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .expect("started natively");
        let mut out = Vec::new();
        if let Some(pipe) = spawned.stdout.take() {
            crate::sys::set_nonblocking(pipe.as_fd(), false).unwrap();
            let fd: OwnedFd = pipe.as_fd().try_clone_to_owned().unwrap();
            drop(pipe);
            std::fs::File::from(fd).read_to_end(&mut out).unwrap();
        }
        loop {
            if let Some(code) = spawned.child.try_wait().unwrap() {
                return (code, out);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// A `sleep 5` with SIGKILL as its parent-death signal, started by `start` on a
    /// thread that then ends; whether it still runs 300 ms later (then it is killed).
    fn survives_its_spawning_thread(
        start: fn(&SpawnRequest) -> Result<Option<Spawned>, SpawnError>,
    ) -> bool {
        let mut req = request(&["sleep", "5"]);
        req.setup.pdeathsig = Some(libc::SIGKILL);
        let mut spawned = std::thread::spawn(move || start(&req).unwrap().unwrap())
            .join()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let running = spawned.child.try_wait().unwrap().is_none();
        spawned.child.send_signal(libc::SIGKILL).unwrap();
        spawned.child.wait(None).unwrap();
        running
    }

    #[test]
    fn pdeathsig_follows_the_process_not_the_spawning_thread() {
        assert!(survives_its_spawning_thread(spawn));
        // What the kernel does with a child started by the thread itself: the signal
        // comes when that thread ends.
        assert!(!survives_its_spawning_thread(spawn_here));
    }

    #[test]
    fn captures_stdout_and_exit_code() {
        let mut req = request(&["sh", "-c", "echo hi; exit 3"]);
        req.stdio[1] = Stdio::Pipe;
        assert_eq!(run(&req), (3, b"hi\n".to_vec()));
    }

    #[test]
    fn missing_program_is_enoent_exec_error() {
        let req = request(&["definitely-not-a-program-xyz"]);
        match spawn(&req) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_cwd_is_a_chdir_error() {
        let mut req = request(&["/bin/true"]);
        req.cwd = Some(CString::new("/no/such/dir").unwrap());
        match spawn(&req) {
            Err(SpawnError::Chdir(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exec_path_is_used_for_lookup() {
        let mut req = request(&["sh", "-c", "echo $FOO"]);
        req.env = Some(vec![CString::new("FOO=bar").unwrap()]);
        req.exec_path = Some(CString::new("/nonexistent:/bin").unwrap());
        req.stdio[1] = Stdio::Pipe;
        assert_eq!(
            exec_candidates(&req),
            vec![
                CString::new("/nonexistent/sh").unwrap(),
                CString::new("/bin/sh").unwrap()
            ]
        );
        assert_eq!(run(&req), (0, b"bar\n".to_vec()));
    }

    #[test]
    fn close_fds_closes_inheritable_descriptors_except_pass_fds() {
        let (r1, _w1) = pipe_cloexec().unwrap();
        let (r2, _w2) = pipe_cloexec().unwrap();
        let inheritable = [r1.as_raw_fd(), r2.as_raw_fd()];
        for fd in inheritable {
            // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        let script = format!(
            "for fd in {} {}; do [ -e /proc/self/fd/$fd ] && echo open || echo closed; done",
            inheritable[0], inheritable[1]
        );
        let mut req = request(&["sh", "-c", &script]);
        req.stdio[1] = Stdio::Pipe;
        req.pass_fds = vec![inheritable[1]];
        assert_eq!(run(&req), (0, b"closed\nopen\n".to_vec()));
        req.close_fds = false;
        req.pass_fds.clear();
        assert_eq!(run(&req), (0, b"open\nopen\n".to_vec()));
    }

    #[test]
    fn without_proc_every_number_below_the_highest_passed_is_a_candidate() {
        let (r, _w) = pipe_cloexec().unwrap();
        let fd = r.as_raw_fd();
        let listed = candidate_fds_listed_in("/proc/self/fd", fd + 1);
        assert!(listed.contains(&fd) && listed.iter().all(|&n| n > 2 && n <= fd));
        let all: Vec<RawFd> = (3..=fd).collect();
        assert_eq!(
            candidate_fds_listed_in("/no/such/proc/self/fd", fd + 1),
            all
        );
    }

    #[test]
    fn swapped_low_descriptors_do_not_clobber_each_other() {
        // stdout goes to the parent's stderr and stderr to a pipe: dup2 order must not
        // let the first action overwrite the second's source.
        let mut req = request(&["sh", "-c", "echo err >&2"]);
        req.stdio[2] = Stdio::Pipe;
        req.stdio[1] = Stdio::Fd(2);
        assert_eq!(run(&req).0, 0);
    }

    #[test]
    fn stderr_can_follow_stdout() {
        let mut req = request(&["sh", "-c", "echo out; echo err >&2"]);
        req.stdio[1] = Stdio::Pipe;
        req.stdio[2] = Stdio::Stdout;
        assert_eq!(run(&req), (0, b"out\nerr\n".to_vec()));
    }

    #[test]
    fn a_failed_setpgid_is_not_reported_as_an_exec_failure() {
        // Process group 1 belongs to another session: setpgid fails with EPERM, which
        // posix_spawn would have returned as if the exec had failed.
        let mut req = request(&["true"]);
        req.process_group = Some(1);
        match spawn(&req) {
            Err(SpawnError::Other(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM)),
            other => panic!(
                "expected a setup error, got {:?}",
                other.map(|s| s.map(|s| s.child))
            ),
        }
    }

    /// A writable cgroup v2 directory (the mount point found in /proc/self/mountinfo),
    /// or `None` where there is none.
    fn writable_cgroup2() -> Option<CString> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = info.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2")
                .then(|| left.split(' ').nth(4).map(str::to_owned))?
        })?;
        let path = CString::new(mount).ok()?;
        // SAFETY: access reads the NUL-terminated path.
        (unsafe { libc::access(path.as_ptr(), libc::W_OK) } == 0).then_some(path)
    }

    #[test]
    fn a_cgroup_holds_and_kills_a_double_forked_daemon() {
        let Some(parent) = writable_cgroup2() else {
            eprintln!("skipped: no writable cgroup v2 directory");
            return;
        };
        let mut req = request(&["sh", "-c", "(setsid sleep 100 >/dev/null &); exit 0"]);
        req.setup.cgroup = Some(parent);
        let mut spawned = spawn(&req).unwrap().unwrap();
        let mut group = spawned.cgroup.take().expect("a leaf cgroup");
        assert_eq!(spawned.child.wait(None).unwrap(), Some(0));
        // The daemon outlived the child, in the leaf.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while group.pids().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never showed up"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(group.populated().unwrap());
        assert!(!group.remove().unwrap(), "removed while populated");
        assert_eq!(group.kill().unwrap().len(), 1);
        while group.populated().unwrap() {
            assert!(std::time::Instant::now() < deadline, "still populated");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let path = group.path().to_owned();
        assert!(group.remove().unwrap() && !path.exists());
    }

    #[test]
    fn signal_freezes_skips_and_thaws() {
        let Some(parent) = writable_cgroup2() else {
            return;
        };
        // Two daemons, then the child becomes a sleep itself: killing the daemons cannot
        // end it (a shell waiting for a foreground sleep would exit once it is killed).
        let script =
            "(setsid sleep 100 >/dev/null &); (setsid sleep 100 >/dev/null &); exec sleep 100";
        let mut req = request(&["sh", "-c", script]);
        req.setup.cgroup = Some(parent);
        let mut spawned = spawn(&req).unwrap().unwrap();
        let mut group = spawned.cgroup.take().unwrap();
        let child = spawned.child.pid();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // Once the child is the sleep, both subshells have forked their daemon and exited.
        let comm = format!("/proc/{child}/comm");
        while std::fs::read_to_string(&comm).unwrap_or_default() != "sleep\n"
            || group.pids().unwrap().len() != 3
        {
            assert!(
                std::time::Instant::now() < deadline,
                "never the sleep and its two daemons"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // SIGKILL through the freeze (what kill() does without cgroup.kill), the child
        // skipped.
        let mut signalled = group.signal(libc::SIGKILL, &[child]).unwrap();
        signalled.sort_unstable();
        assert_eq!(signalled.len(), 2, "{signalled:?}");
        assert!(!signalled.contains(&child));
        let events = std::fs::read_to_string(group.path().join("cgroup.events")).unwrap();
        assert!(events.contains("frozen 0"), "{events}");
        while group.pids().unwrap() != [child] {
            assert!(
                std::time::Instant::now() < deadline,
                "the others still run: {:?} (child {child})",
                group.pids()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            spawned.child.try_wait().unwrap(),
            None,
            "the child was skipped"
        );
        assert_eq!(group.kill().unwrap(), vec![child]);
        assert_eq!(spawned.child.wait(None).unwrap(), Some(-libc::SIGKILL));
        while group.populated().unwrap() {
            assert!(std::time::Instant::now() < deadline, "still populated");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(group.remove().unwrap());
    }

    #[test]
    fn a_failed_spawn_leaves_no_leaf() {
        let Some(mount) = writable_cgroup2() else {
            return;
        };
        // A parent of this test's own, so other tests' leaves do not count.
        let parent = format!(
            "{}/fastspawn-rust-test-{}",
            mount.to_str().unwrap(),
            std::process::id()
        );
        std::fs::create_dir(&parent).unwrap();
        let mut req = request(&["/no/such/program"]);
        req.setup.cgroup = Some(CString::new(parent.clone()).unwrap());
        let failed = spawn(&req);
        let left = std::fs::read_dir(&parent)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
            .count();
        std::fs::remove_dir(&parent).unwrap();
        assert!(matches!(failed, Err(SpawnError::Exec(_))));
        assert_eq!(left, 0);
    }

    #[test]
    fn new_session_and_process_group() {
        let mut req = request(&["sh", "-c", "ps -o sid= -o pgid= -p $$"]);
        req.stdio[1] = Stdio::Pipe;
        req.new_session = true;
        let (code, out) = run(&req);
        assert_eq!(code, 0);
        let fields: Vec<String> = String::from_utf8(out)
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            fields[0], fields[1],
            "session leader is its own group leader"
        );
    }
}
