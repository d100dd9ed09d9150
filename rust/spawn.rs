//! Spawning with `posix_spawn`: the parent's address space is never copied (glibc runs
//! the child on `clone(CLONE_VM|CLONE_VFORK)`), so the cost stays flat however much
//! memory the parent holds.
//!
//! Everything a request asks for is expressed as `posix_spawn` file actions and
//! attributes. The two GNU extensions it relies on (`addchdir_np`, glibc 2.29, for `cwd`;
//! `addclosefrom_np`, glibc 2.34, for `close_fds`) are looked up at run time; when one is
//! missing, [`Features`] says so and the caller delegates that spawn instead of ignoring
//! the option.

use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use crate::child::Child;
use crate::pipe::{pipe_cloexec, set_pipe_size, ReadPipe, WritePipe};
use crate::sys::{cvt_nz, dup_cloexec, fd_flags};

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
#[derive(Debug)]
pub struct SpawnRequest {
    /// The executable: a path, or a bare name looked up in `PATH`.
    pub program: CString,
    pub argv: Vec<CString>,
    /// `NAME=value` entries; `None` inherits this process's environment.
    pub env: Option<Vec<CString>>,
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
}

/// umask, groups and ids for the child: `posix_spawn` cannot express them, so a request
/// with any of them set is started by [`crate::clone_spawn`].
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

/// A started child and the parent's ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
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
    /// Anything else: bad descriptors, no pipes, out of memory.
    Other(io::Error),
}

impl From<io::Error> for SpawnError {
    fn from(e: io::Error) -> Self {
        SpawnError::Other(e)
    }
}

type AddChdir = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const c_char) -> c_int;
type AddClosefrom = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, c_int) -> c_int;

/// The optional glibc entry points, resolved once.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    addchdir: Option<AddChdir>,
    addclosefrom: Option<AddClosefrom>,
}

impl Features {
    pub fn get() -> Features {
        static FEATURES: OnceLock<Features> = OnceLock::new();
        *FEATURES.get_or_init(|| Features {
            // SAFETY: the named symbols, where present, have exactly these signatures
            // (glibc's spawn.h).
            addchdir: unsafe { weak(c"posix_spawn_file_actions_addchdir_np") }
                // SAFETY: a non-null symbol address of the function declared above.
                .map(|p| unsafe { std::mem::transmute::<*mut libc::c_void, AddChdir>(p) }),
            // SAFETY: as above.
            addclosefrom: unsafe { weak(c"posix_spawn_file_actions_addclosefrom_np") }
                // SAFETY: a non-null symbol address of the function declared above.
                .map(|p| unsafe { std::mem::transmute::<*mut libc::c_void, AddClosefrom>(p) }),
        })
    }

    /// `cwd` can be honoured natively.
    pub fn cwd(self) -> bool {
        self.addchdir.is_some()
    }

    /// `close_fds=True` can be honoured natively.
    pub fn close_fds(self) -> bool {
        self.addclosefrom.is_some()
    }
}

/// The address of a libc symbol, if this libc has it.
///
/// # Safety
/// The caller must only use the address as the function type the symbol really has.
unsafe fn weak(name: &CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the name up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// `posix_spawn_file_actions_t`, destroyed on drop. Boxed: POSIX does not allow the
/// object to move once initialised.
struct FileActions(Box<MaybeUninit<libc::posix_spawn_file_actions_t>>);

impl FileActions {
    fn new() -> io::Result<Self> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: init writes a fresh object into the uninitialised storage.
        cvt_nz(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        Ok(Self(raw))
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        self.0.as_mut_ptr()
    }

    fn dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: the object was initialised in `new`; the call copies the integers.
        cvt_nz(unsafe { libc::posix_spawn_file_actions_adddup2(self.as_mut_ptr(), from, to) })
    }

    fn close(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: as above.
        cvt_nz(unsafe { libc::posix_spawn_file_actions_addclose(self.as_mut_ptr(), fd) })
    }

    fn open_devnull(&mut self, to: RawFd) -> io::Result<()> {
        // SAFETY: as above; glibc copies the path string.
        cvt_nz(unsafe {
            libc::posix_spawn_file_actions_addopen(
                self.as_mut_ptr(),
                to,
                c"/dev/null".as_ptr(),
                libc::O_RDWR,
                0,
            )
        })
    }

    fn chdir(&mut self, addchdir: AddChdir, dir: &CStr) -> io::Result<()> {
        // SAFETY: `addchdir` is glibc's addchdir_np; it copies the path string.
        cvt_nz(unsafe { addchdir(self.as_mut_ptr(), dir.as_ptr()) })
    }

    fn closefrom(&mut self, addclosefrom: AddClosefrom, low: RawFd) -> io::Result<()> {
        // SAFETY: `addclosefrom` is glibc's addclosefrom_np.
        cvt_nz(unsafe { addclosefrom(self.as_mut_ptr(), low) })
    }
}

impl FileActions {
    /// The `posix_spawn` file actions for `plan`; ENOSYS where this libc lacks an
    /// extension the plan needs (callers check [`Features`] first and delegate).
    fn from_plan(plan: &[FdAction], cwd: Option<&CStr>, features: Features) -> io::Result<Self> {
        let enosys = || io::Error::from_raw_os_error(libc::ENOSYS);
        let mut actions = Self::new()?;
        for action in plan {
            match *action {
                FdAction::Dup2(from, to) => actions.dup2(from, to)?,
                FdAction::Close(fd) => actions.close(fd)?,
                FdAction::DevNull(fd) => actions.open_devnull(fd)?,
                FdAction::CloseFrom(low) => {
                    actions.closefrom(features.addclosefrom.ok_or_else(enosys)?, low)?;
                }
                FdAction::Chdir => {
                    if let Some(dir) = cwd {
                        actions.chdir(features.addchdir.ok_or_else(enosys)?, dir)?;
                    }
                }
            }
        }
        Ok(actions)
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` and destroyed exactly once, here.
        unsafe { libc::posix_spawn_file_actions_destroy(self.as_mut_ptr()) };
    }
}

/// `posix_spawnattr_t`, destroyed on drop.
struct SpawnAttr(Box<MaybeUninit<libc::posix_spawnattr_t>>);

impl SpawnAttr {
    fn new() -> io::Result<Self> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: init writes a fresh object into the uninitialised storage.
        cvt_nz(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        Ok(Self(raw))
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        self.0.as_mut_ptr()
    }

    fn configure(&mut self, req: &SpawnRequest) -> io::Result<()> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises `set`; sigaddset only modifies it.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            if req.restore_signals {
                libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
                libc::sigaddset(set.as_mut_ptr(), libc::SIGXFSZ);
            }
        }
        // glibc's child sets its two internal signals (SIGCANCEL, SIGSETXID: 32 and 33) to
        // SIG_IGN unless they are in the default set, and an ignored signal stays ignored
        // across exec. Popen's fork + exec leaves each as this process has it: ignored
        // only if ignored here. sigaddset refuses them, so their bits are set directly.
        for signal in GLIBC_INTERNAL_SIGNALS {
            if ignored_here(signal) {
                continue;
            }
            let bit = signal as usize - 1;
            // SAFETY: glibc's sigset_t is an array of unsigned longs, one bit per signal
            // from 1 (`set` was initialised above); signals 32 and 33 lie in the first
            // 128 bits of its 1024.
            unsafe {
                *set.as_mut_ptr()
                    .cast::<libc::c_ulong>()
                    .add(bit / libc::c_ulong::BITS as usize) |=
                    1 << (bit % libc::c_ulong::BITS as usize);
            }
        }
        // SAFETY: the attr is initialised and `set` was initialised above.
        cvt_nz(unsafe { libc::posix_spawnattr_setsigdefault(self.as_mut_ptr(), set.as_ptr()) })?;
        let mut flags = c_int::from(libc::POSIX_SPAWN_SETSIGDEF);
        if req.new_session {
            flags |= c_int::from(libc::POSIX_SPAWN_SETSID);
        }
        // A process group is never asked of posix_spawn: see `spawn`.
        // SAFETY: the attr is initialised; the flags are valid glibc flags.
        cvt_nz(unsafe { libc::posix_spawnattr_setflags(self.as_mut_ptr(), flags as libc::c_short) })
    }
}

/// glibc's SIGCANCEL and SIGSETXID (`__SIGRTMIN` and `__SIGRTMIN + 1`).
const GLIBC_INTERNAL_SIGNALS: [c_int; 2] = [32, 33];

/// Whether `signal` is ignored in this process. Asked of the kernel directly, because
/// glibc's `sigaction` refuses its internal signals.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn ignored_here(signal: c_int) -> bool {
    // The kernel's struct sigaction on these architectures: the handler comes first,
    // then flags, restorer and an 8-byte mask.
    let mut old = [0usize; 4];
    // SAFETY: rt_sigaction with no new action only writes the current one into `old`,
    // which is large enough for the kernel's struct; 8 is the kernel's sigset size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            std::ptr::null::<libc::c_void>(),
            old.as_mut_ptr(),
            8usize,
        )
    };
    ret == 0 && old[0] == libc::SIG_IGN
}

/// Elsewhere the kernel's struct layout differs: keep glibc's behaviour (ignored).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn ignored_here(_signal: c_int) -> bool {
    true
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` and destroyed exactly once, here.
        unsafe { libc::posix_spawnattr_destroy(self.as_mut_ptr()) };
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
/// program itself when it names a directory, else each `PATH` entry joined with it
/// (`PATH` from `req.env` when given, else from this process; `/bin:/usr/bin` when unset).
///
/// Reads this process's environment: call it while no other thread can change it
/// (from Python, with the GIL held).
pub fn exec_candidates(req: &SpawnRequest) -> Vec<CString> {
    let program = req.program.as_bytes();
    if program.contains(&b'/') {
        return vec![req.program.clone()];
    }
    let from_env = req.env.as_ref().map(|env| {
        env.iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH=").map(<[u8]>::to_vec))
    });
    let path = match from_env {
        Some(found) => found,
        None => std::env::var_os("PATH").map(|p| p.as_bytes().to_vec()),
    }
    .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
    path.split(|&b| b == b':')
        .map(|dir| {
            let mut full = dir.to_vec();
            if !full.is_empty() && !full.ends_with(b"/") {
                full.push(b'/');
            }
            full.extend_from_slice(program);
            // Neither part contains NUL (PATH came from a C string, program is a
            // CString), so nothing is dropped here in practice.
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

/// The error changing into `dir` would give, if any.
fn chdir_error(dir: &CStr) -> Option<io::Error> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: stat writes into `st` and reads the NUL-terminated path.
    if unsafe { libc::stat(dir.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Some(io::Error::last_os_error());
    }
    // SAFETY: stat succeeded, so `st` is initialised.
    if unsafe { st.assume_init() }.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Some(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    // SAFETY: access reads the NUL-terminated path.
    if unsafe { libc::access(dir.as_ptr(), libc::X_OK) } != 0 {
        return Some(io::Error::last_os_error());
    }
    None
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

/// Calls `posix_spawn` for each candidate until one starts; returns its pid.
fn spawn_first(
    req: &SpawnRequest,
    candidates: &[CString],
    actions: &mut FileActions,
    attr: &mut SpawnAttr,
) -> Result<libc::pid_t, SpawnError> {
    let argv = c_array(&req.argv);
    let env_owned = req.env.as_deref().map(c_array);
    let envp: *const *mut c_char = match &env_owned {
        Some(env) => env.as_ptr(),
        // SAFETY: reading the `environ` pointer itself; posix_spawn copies what it needs.
        None => unsafe { environ }.cast(),
    };
    let mut first_error: Option<io::Error> = None;
    let mut last_error = io::Error::from_raw_os_error(libc::ENOENT);
    let several = candidates.len() > 1;
    for path in candidates {
        if several && req.cwd.is_none() && surely_missing(path) {
            continue;
        }
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: `path` is NUL-terminated, the
        // actions and attr are initialised, argv and envp are null-terminated arrays of
        // NUL-terminated strings that outlive the call, and `pid` is writable.
        let ret = unsafe {
            libc::posix_spawn(
                &raw mut pid,
                path.as_ptr(),
                actions.as_mut_ptr(),
                attr.as_mut_ptr(),
                argv.as_ptr(),
                envp,
            )
        };
        let Err(e) = cvt_nz(ret) else {
            return Ok(pid);
        };
        if let Some(chdir_err) = req.cwd.as_deref().and_then(chdir_error) {
            return Err(SpawnError::Chdir(chdir_err));
        }
        if first_error.is_none() && !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
        {
            first_error = Some(e);
        } else {
            last_error = e;
        }
    }
    Err(SpawnError::Exec(first_error.unwrap_or(last_error)))
}

/// Starts the child described by `req`, trying `candidates` (from [`exec_candidates`])
/// in order, as `subprocess` does: the first error other than ENOENT/ENOTDIR is the one
/// reported.
pub fn spawn(req: &SpawnRequest, candidates: &[CString]) -> Result<Spawned, SpawnError> {
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
    // posix_spawn cannot set a umask or change credentials, and when joining a process
    // group fails it reports the errno as if the exec had failed (EPERM, EACCES): the
    // clone path reports which step failed, as `subprocess` does.
    let (pid, pidfd) = if req.credentials.is_empty() && req.process_group.is_none() {
        let mut actions =
            FileActions::from_plan(&fds.actions, req.cwd.as_deref(), Features::get())?;
        let mut attr = SpawnAttr::new()?;
        attr.configure(req)?;
        // No pidfd from posix_spawn: `Child::watch` opens one, and takes a child that
        // someone else reaped meanwhile for what it is (it ran; its status is lost).
        // glibc 2.39's pidfd_spawn would give it atomically, but the pid must then be
        // read back from the pidfd, which fails (ESRCH) in exactly that case.
        (spawn_first(req, candidates, &mut actions, &mut attr)?, None)
    } else {
        crate::clone_spawn::spawn(req, candidates, &fds.actions)?
    };
    // The child's ends of the pipes close here, in the parent.
    drop(fds);
    let child = match pidfd {
        Some(fd) => Child::from_pidfd(pid, fd),
        None => Child::watch(pid)?,
    };
    Ok(Spawned {
        child,
        stdin: stdin.map(WritePipe::new).transpose()?,
        stdout: stdout.map(ReadPipe::new).transpose()?,
        stderr: stderr.map(ReadPipe::new).transpose()?,
    })
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
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            close_fds: true,
            pass_fds: Vec::new(),
            new_session: false,
            process_group: None,
            restore_signals: true,
            pipe_size: None,
            credentials: Credentials::default(),
        }
    }

    /// Spawns `req`, reads its stdout (if piped) to EOF and waits: `(returncode, output)`.
    pub(crate) fn run(req: &SpawnRequest) -> (i32, Vec<u8>) {
        let mut spawned = spawn(req, &exec_candidates(req)).unwrap_or_else(|e| panic!("{e:?}"));
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

    #[test]
    fn captures_stdout_and_exit_code() {
        let mut req = request(&["sh", "-c", "echo hi; exit 3"]);
        req.stdio[1] = Stdio::Pipe;
        assert_eq!(run(&req), (3, b"hi\n".to_vec()));
    }

    #[test]
    fn missing_program_is_enoent_exec_error() {
        let req = request(&["definitely-not-a-program-xyz"]);
        match spawn(&req, &exec_candidates(&req)) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_cwd_is_a_chdir_error() {
        let mut req = request(&["/bin/true"]);
        req.cwd = Some(CString::new("/no/such/dir").unwrap());
        match spawn(&req, &exec_candidates(&req)) {
            Err(SpawnError::Chdir(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn env_path_is_used_for_lookup() {
        let mut req = request(&["sh", "-c", "echo $FOO"]);
        req.env = Some(vec![
            CString::new("PATH=/nonexistent:/bin").unwrap(),
            CString::new("FOO=bar").unwrap(),
        ]);
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
        match spawn(&req, &exec_candidates(&req)) {
            Err(SpawnError::Other(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM)),
            other => panic!("expected a setup error, got {:?}", other.map(|s| s.child)),
        }
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
