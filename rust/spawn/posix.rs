//! The `posix_spawn` backend: everything a request asks for expressed as file actions
//! and attributes. glibc runs the child on `clone(CLONE_VM|CLONE_VFORK)`, so the
//! parent's address space is never copied and the cost stays flat however much memory
//! the parent holds.
//!
//! Two of the file actions it relies on are GNU extensions (`addchdir_np`, glibc 2.29,
//! for `cwd`; `addclosefrom_np`, glibc 2.34, for `close_fds`), looked up at run time:
//! [`Extensions`] says which this libc has, and the routing in [`super`] sends nothing
//! here that needs a missing one.

use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::OnceLock;

use super::{c_array, environ, surely_missing, FdAction, SpawnError, SpawnRequest};
use crate::sys::{cvt_nz, weak_symbol};

type AddChdir = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const c_char) -> c_int;
type AddClosefrom = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, c_int) -> c_int;

/// The optional glibc file actions, resolved once.
#[derive(Debug, Clone, Copy)]
pub struct Extensions {
    addchdir: Option<AddChdir>,
    addclosefrom: Option<AddClosefrom>,
}

/// Set `FASTSPAWN_NO_SPAWN_EXTENSIONS=1` to behave as on a libc without either
/// extension (how the tests cover that routing).
fn disabled_by_env() -> bool {
    std::env::var_os("FASTSPAWN_NO_SPAWN_EXTENSIONS").is_some_and(|v| !v.is_empty() && v != "0")
}

impl Extensions {
    /// What this libc has, looked up on first use and remembered.
    pub fn get() -> Extensions {
        static EXTENSIONS: OnceLock<Extensions> = OnceLock::new();
        *EXTENSIONS.get_or_init(|| {
            if disabled_by_env() {
                Extensions {
                    addchdir: None,
                    addclosefrom: None,
                }
            } else {
                Extensions::look_up()
            }
        })
    }

    fn look_up() -> Extensions {
        Extensions {
            // SAFETY: the named symbols, where present, have exactly these signatures
            // (glibc's spawn.h).
            addchdir: unsafe { weak_symbol(c"posix_spawn_file_actions_addchdir_np") }
                // SAFETY: a non-null symbol address of the function declared above.
                .map(|p| unsafe { std::mem::transmute::<*mut libc::c_void, AddChdir>(p) }),
            // SAFETY: as above.
            addclosefrom: unsafe { weak_symbol(c"posix_spawn_file_actions_addclosefrom_np") }
                // SAFETY: a non-null symbol address of the function declared above.
                .map(|p| unsafe { std::mem::transmute::<*mut libc::c_void, AddClosefrom>(p) }),
        }
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
    /// extension the plan needs (the routing checks [`Extensions`] first).
    fn from_plan(
        plan: &[FdAction],
        cwd: Option<&CStr>,
        extensions: Extensions,
    ) -> io::Result<Self> {
        let enosys = || io::Error::from_raw_os_error(libc::ENOSYS);
        let mut actions = Self::new()?;
        for action in plan {
            match *action {
                FdAction::Dup2(from, to) => actions.dup2(from, to)?,
                FdAction::Close(fd) => actions.close(fd)?,
                FdAction::DevNull(fd) => actions.open_devnull(fd)?,
                FdAction::CloseFrom(low) => {
                    actions.closefrom(extensions.addclosefrom.ok_or_else(enosys)?, low)?;
                }
                FdAction::Chdir => {
                    if let Some(dir) = cwd {
                        actions.chdir(extensions.addchdir.ok_or_else(enosys)?, dir)?;
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

/// Starts the child of `req` with `posix_spawn`, setting up its descriptors by `plan`;
/// returns its pid.
///
/// No pidfd comes from `posix_spawn`: the caller opens one (`Child::watch`), and takes a
/// child that someone else reaped meanwhile for what it is (it ran; its status is lost).
/// glibc 2.39's `pidfd_spawn` would give it atomically, but the pid must then be read
/// back from the pidfd, which fails (ESRCH) in exactly that case.
pub(super) fn spawn(
    req: &SpawnRequest,
    candidates: &[CString],
    plan: &[FdAction],
) -> Result<libc::pid_t, SpawnError> {
    let mut actions = FileActions::from_plan(plan, req.cwd.as_deref(), Extensions::get())?;
    let mut attr = SpawnAttr::new()?;
    attr.configure(req)?;
    spawn_first(req, candidates, &mut actions, &mut attr)
}
