//! Children and their pipes: `Child`, `ReadPipe`, `WritePipe`, `spawn`, `watch`,
//! `features`.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::cgroup::PyCGroup;
use super::errors::{closed_pipe, os_error_with_filename, setup_error, CoreResult};
use super::request::NativeSpawn;
use super::{bytes_buffer_mut, uninit_bytes, SMALL_READ};
use crate::child;
use crate::pipe;
use crate::spawn::{self as spawner, SpawnError};
use crate::sys::fd_flags;

/// Takes ownership of a descriptor handed over from Python.
fn owned_fd(fd: i32) -> CoreResult<OwnedFd> {
    fd_flags(fd)?;
    // SAFETY: `fd` is open (checked above) and the documented contract of the
    // constructors is that the caller gives up its ownership.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A running or finished child. Dropping it unreaped hands it to the reaper.
#[pyclass(module = "fastspawn._core", name = "Child")]
pub(crate) struct PyChild {
    child: child::Child,
    /// Its leaf cgroup, when it was spawned with one.
    cgroup: Option<Py<PyCGroup>>,
}

#[pymethods]
impl PyChild {
    #[getter]
    fn cgroup(&self, py: Python<'_>) -> Option<Py<PyCGroup>> {
        self.cgroup.as_ref().map(|g| g.clone_ref(py))
    }

    #[getter]
    fn pid(&self) -> i32 {
        self.child.pid()
    }

    #[getter]
    fn returncode(&self) -> Option<i32> {
        self.child.returncode()
    }

    #[getter]
    fn exit_fd(&self) -> Option<i32> {
        self.child.exit_fd()
    }

    fn try_wait(&mut self) -> CoreResult<Option<i32>> {
        Ok(self.child.try_wait()?)
    }

    /// Blocks (without the GIL) until exit or `timeout` seconds; the returncode or None.
    ///
    /// A timeout of 0 or less polls once; one too large for a deadline (inf, 1e300)
    /// waits without one; NaN is refused (3.15's `Popen.wait` refuses it too, earlier
    /// ones wait: the caller decides).
    #[pyo3(signature = (timeout=None))]
    fn wait(&mut self, py: Python<'_>, timeout: Option<f64>) -> CoreResult<Option<i32>> {
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_nan() => {
                return Err(PyValueError::new_err("Invalid value NaN (not a number)").into());
            }
            // Too large (or infinite): no deadline at all.
            Some(t) => std::time::Duration::try_from_secs_f64(t.max(0.0)).ok(),
        };
        let child = &mut self.child;
        Ok(py.detach(|| child.wait(timeout))?)
    }

    fn send_signal(&self, signal: i32) -> CoreResult<bool> {
        Ok(self.child.send_signal(signal)?)
    }

    fn close_exit_fd(&mut self) {
        self.child.close_exit_fd();
    }

    /// If the child leads its own process group, keeps its zombie once it exits (its
    /// returncode is read all the same) until `release()`, so the group id stays its own;
    /// only with a pidfd. Whether the exit will be held.
    fn hold(&mut self) -> bool {
        self.child.hold()
    }

    /// Reaps a held zombie; nothing otherwise.
    fn release(&mut self) {
        self.child.release();
    }

    /// Whether the pid is still the child's: running, or an unreaped or held zombie.
    #[getter]
    fn unreaped(&mut self) -> bool {
        self.child.unreaped()
    }

    /// `killpg(pid, signal)` if the child leads its process group and is unreaped (or
    /// held); whether it was sent.
    fn kill_group(&self, signal: i32) -> CoreResult<bool> {
        Ok(self.child.kill_group(signal)?)
    }

    fn __repr__(&self) -> String {
        format!(
            "<fastspawn._core.Child pid={} returncode={:?}>",
            self.child.pid(),
            self.child.returncode()
        )
    }
}

/// The parent's non-blocking reading end of a child's stdout or stderr.
#[pyclass(module = "fastspawn._core", name = "ReadPipe")]
pub(crate) struct PyReadPipe(pub(crate) Option<pipe::ReadPipe>);

#[pymethods]
impl PyReadPipe {
    /// Takes ownership of `fd`, the reading end of a pipe; makes it non-blocking.
    #[new]
    fn new(fd: i32) -> CoreResult<Self> {
        Ok(Self(Some(pipe::ReadPipe::new(owned_fd(fd)?)?)))
    }

    fn fileno(&self) -> CoreResult<i32> {
        Ok(self.0.as_ref().ok_or_else(closed_pipe)?.as_fd().as_raw_fd())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.is_none()
    }

    /// Up to `max` bytes: `b""` at EOF, `None` when nothing is there yet.
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        max: usize,
    ) -> CoreResult<Option<Bound<'py, PyBytes>>> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        let ready = pipe.ready_len(max)?;
        if ready < SMALL_READ {
            // Small, empty (EOF or spurious wake-up): a stack buffer and one copy.
            let mut buf = [0u8; SMALL_READ];
            let want = max.min(SMALL_READ);
            return match pipe.read(&mut buf[..want])? {
                Some(n) => Ok(Some(PyBytes::new(py, &buf[..n]))),
                None => Ok(None),
            };
        }
        // Large: read straight into the bytes object that is returned.
        read_new_bytes(py, pipe, ready)
    }

    /// Up to `max` bytes read straight into a new bytes object (copied to one of the
    /// right size only when fewer arrived): `b""` at EOF, `None` when nothing is there
    /// yet. No `FIONREAD` (which contends for the pipe's lock with a writer), for a
    /// reader that wants at most `max` bytes now.
    fn read_at_most<'py>(
        &mut self,
        py: Python<'py>,
        max: usize,
    ) -> CoreResult<Option<Bound<'py, PyBytes>>> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        if max == 0 {
            // A 0-byte read could not tell EOF from "nothing yet".
            return Err(PyValueError::new_err("max must be positive").into());
        }
        read_new_bytes(py, pipe, max)
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

/// One read of up to `len` (> 0) bytes straight into a new bytes object of `len` bytes,
/// returned as it is when filled (the caller asked for what the pipe holds), else
/// copied into one of the size read (the stable ABI cannot shrink a bytes object in
/// place): `b""` at EOF, `None` when nothing is there yet.
fn read_new_bytes<'py>(
    py: Python<'py>,
    pipe: &mut pipe::ReadPipe,
    len: usize,
) -> CoreResult<Option<Bound<'py, PyBytes>>> {
    let bytes = uninit_bytes(py, len)?;
    // SAFETY: `bytes` was just created and is not yet visible to Python code.
    let buf = unsafe { bytes_buffer_mut(&bytes) };
    match pipe.read(buf)? {
        Some(n) if n == len => Ok(Some(bytes)),
        Some(n) => Ok(Some(PyBytes::new(py, &buf[..n]))),
        None => Ok(None),
    }
}

/// The parent's non-blocking writing end of a child's stdin, with its own buffer.
#[pyclass(module = "fastspawn._core", name = "WritePipe")]
pub(crate) struct PyWritePipe(Option<pipe::WritePipe>);

#[pymethods]
impl PyWritePipe {
    /// Takes ownership of `fd`, the writing end of a pipe; makes it non-blocking.
    #[new]
    fn new(fd: i32) -> CoreResult<Self> {
        Ok(Self(Some(pipe::WritePipe::new(owned_fd(fd)?)?)))
    }

    fn fileno(&self) -> CoreResult<i32> {
        Ok(self.0.as_ref().ok_or_else(closed_pipe)?.as_fd().as_raw_fd())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes accepted but not yet written to the pipe.
    #[getter]
    fn buffered(&self) -> usize {
        self.0.as_ref().map_or(0, pipe::WritePipe::buffered)
    }

    /// Writes what the pipe takes now, buffers the rest; returns the bytes buffered.
    fn write(&mut self, data: &[u8]) -> CoreResult<usize> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        Ok(pipe.write(data)?)
    }

    /// Writes buffered bytes the pipe takes now; returns the bytes still buffered.
    fn flush(&mut self) -> CoreResult<usize> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        Ok(pipe.flush()?)
    }

    /// Drops the buffer without writing it.
    fn discard(&mut self) {
        if let Some(pipe) = self.0.as_mut() {
            pipe.discard();
        }
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

/// The child and the parent's ends of its pipes.
type SpawnedTuple = (
    PyChild,
    Option<PyWritePipe>,
    Option<PyReadPipe>,
    Option<PyReadPipe>,
);

/// Starts the child `request` describes (see `_core.pyi`); None when it cannot be
/// started natively here.
#[pyfunction]
pub(crate) fn spawn(
    py: Python<'_>,
    request: &Bound<'_, PyAny>,
) -> CoreResult<Option<SpawnedTuple>> {
    let request = NativeSpawn::read(request)?;
    let req = request.to_spawn_request()?;
    // The spawn waits until the child has exec'd; let other threads run meanwhile.
    match py.detach(|| spawner::spawn(&req)) {
        Ok(None) => Ok(None),
        Ok(Some(s)) => Ok(Some((
            PyChild {
                child: s.child,
                cgroup: s
                    .cgroup
                    .map(|g| Py::new(py, PyCGroup::new(g)))
                    .transpose()?,
            },
            s.stdin.map(|p| PyWritePipe(Some(p))),
            s.stdout.map(|p| PyReadPipe(Some(p))),
            s.stderr.map(|p| PyReadPipe(Some(p))),
        ))),
        Err(SpawnError::Exec(e)) => Err(os_error_with_filename(&e, request.program_name)),
        Err(SpawnError::Chdir(e)) => Err(os_error_with_filename(&e, request.cwd_name)),
        Err(SpawnError::Setup(step, e)) => Err(setup_error(py, step, e, request.cgroup_name)),
        Err(SpawnError::Cgroup(e)) => Err(os_error_with_filename(&e, request.cgroup_name)),
        Err(SpawnError::Other(e)) => Err(e.into()),
    }
}

/// Watches `pid`, a child this process started some other way (the delegated
/// `subprocess.Popen` path) and that nobody has reaped.
#[pyfunction]
pub(crate) fn watch(pid: i32) -> CoreResult<PyChild> {
    Ok(PyChild {
        child: child::Child::watch(pid)?,
        cgroup: None,
    })
}

/// What this system lets the core do natively.
#[pyfunction]
pub(crate) fn features() -> (bool, bool, bool) {
    let f = spawner::Extensions::get();
    (f.cwd(), f.close_fds(), child::pidfd_supported())
}
