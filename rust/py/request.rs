//! The spawn request as it crosses the boundary: one object read by attribute name
//! (`fastspawn._options.NativeSpawn`, a `NamedTuple`, documents each field), never a
//! positional list that must be kept in the same order on both sides.

use std::ffi::CString;

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::spawn::{ChildSetup, Credentials, Rlimit, SpawnRequest, Stdio};

/// `subprocess.PIPE`, `STDOUT`, `DEVNULL`.
const PIPE: i32 = -1;
const STDOUT: i32 = -2;
const DEVNULL: i32 = -3;

/// `fastspawn._options.NativeSpawn`: the fields of a spawn request, each read with `getattr(request, name)` and converted
/// as its type says (a wrong type is a `TypeError` naming the field).
#[derive(FromPyObject)]
// One field per keyword, as Python names them: Popen's flags are booleans.
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct NativeSpawn {
    program: Vec<u8>,
    argv: Vec<Vec<u8>>,
    env: Option<Vec<Vec<u8>>>,
    exec_path: Option<Vec<u8>>,
    cwd: Option<Vec<u8>>,
    stdin: Option<i32>,
    stdout: Option<i32>,
    stderr: Option<i32>,
    close_fds: bool,
    pass_fds: Vec<i32>,
    start_new_session: bool,
    process_group: Option<i32>,
    restore_signals: bool,
    pipe_size: Option<u32>,
    /// What an exec failure's `OSError.filename` is.
    pub(crate) program_name: Py<PyAny>,
    /// What a cwd failure's `OSError.filename` is.
    pub(crate) cwd_name: Py<PyAny>,
    umask: Option<u32>,
    groups: Option<Vec<u32>>,
    gid: Option<u32>,
    uid: Option<u32>,
    /// `(resource, soft, hard)`, set in order.
    rlimits: Option<Vec<(i32, u64, u64)>>,
    pdeathsig: Option<i32>,
    subreaper: bool,
    /// The cgroup v2 directory the child's leaf is made in.
    cgroup: Option<Vec<u8>>,
    /// What a failure to make or join the leaf names as `OSError.filename`.
    pub(crate) cgroup_name: Py<PyAny>,
}

impl NativeSpawn {
    /// Reads `request`'s fields; a missing one is a `TypeError` too (whose cause is the
    /// `AttributeError`), as a field of the wrong type is.
    pub(crate) fn read(request: &Bound<'_, PyAny>) -> PyResult<Self> {
        request.extract().map_err(|e: PyErr| {
            let py = request.py();
            if !e.is_instance_of::<PyAttributeError>(py) {
                return e;
            }
            let error = PyTypeError::new_err(format!("not a spawn request: {}", e.value(py)));
            error.set_cause(py, Some(e));
            error
        })
    }

    /// The core's request; `ValueError` for a NUL byte in a string.
    pub(crate) fn to_spawn_request(&self) -> PyResult<SpawnRequest> {
        Ok(SpawnRequest {
            program: c_string(&self.program)?,
            argv: self
                .argv
                .iter()
                .map(|a| c_string(a))
                .collect::<PyResult<_>>()?,
            env: self
                .env
                .as_ref()
                .map(|e| e.iter().map(|v| c_string(v)).collect::<PyResult<_>>())
                .transpose()?,
            exec_path: self.exec_path.as_deref().map(c_string).transpose()?,
            cwd: self.cwd.as_deref().map(c_string).transpose()?,
            stdio: [
                stdio(self.stdin, 0),
                stdio(self.stdout, 1),
                stdio(self.stderr, 2),
            ],
            close_fds: self.close_fds,
            pass_fds: self.pass_fds.clone(),
            new_session: self.start_new_session,
            process_group: self.process_group,
            restore_signals: self.restore_signals,
            pipe_size: self.pipe_size,
            credentials: Credentials {
                umask: self.umask,
                groups: self.groups.clone(),
                gid: self.gid,
                uid: self.uid,
            },
            setup: ChildSetup {
                rlimits: self
                    .rlimits
                    .iter()
                    .flatten()
                    .map(|&(resource, soft, hard)| Rlimit {
                        resource,
                        soft,
                        hard,
                    })
                    .collect(),
                pdeathsig: self.pdeathsig,
                subreaper: self.subreaper,
                cgroup: self.cgroup.as_deref().map(c_string).transpose()?,
            },
        })
    }
}

fn c_string(bytes: &[u8]) -> PyResult<CString> {
    CString::new(bytes).map_err(|_| PyValueError::new_err("embedded null byte"))
}

fn stdio(value: Option<i32>, target: usize) -> Stdio {
    match value {
        None => Stdio::Inherit,
        Some(PIPE) => Stdio::Pipe,
        Some(DEVNULL) => Stdio::DevNull,
        Some(STDOUT) if target == 2 => Stdio::Stdout,
        // For stdin/stdout, Popen takes STDOUT (-2) for a descriptor, which the spawn then
        // finds invalid: EBADF, after every other check made before the child starts.
        Some(fd) => Stdio::Fd(fd),
    }
}
