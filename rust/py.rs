//! The Python boundary: the only file with `#[pyclass]`/`#[pyfunction]`.
//!
//! Plain values cross it (bytes, ints, tuples). OS errors cross once, here, as
//! `OSError(errno, strerror[, filename])`, so Python picks the subclass
//! (`FileNotFoundError`, `BrokenPipeError`, …) and `.errno` is set.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use pyo3::exceptions::{
    PyIndexError, PyMemoryError, PyOSError, PyStopIteration, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PySlice};

use crate::buffer::ByteQueue;
use crate::child;
use crate::pipe;
use crate::spawn::{self as spawner, SpawnError, SpawnRequest, Stdio};
use crate::sys::{fd_flags, strerror};

/// `subprocess.PIPE`, `STDOUT`, `DEVNULL`.
const PIPE: i32 = -1;
const STDOUT: i32 = -2;
const DEVNULL: i32 = -3;

/// Smallest read done without asking the pipe how much it holds first.
const SMALL_READ: usize = 4096;

fn os_error(e: &io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, strerror(errno))),
        None => PyOSError::new_err(e.to_string()),
    }
}

fn os_error_with_filename(e: &io::Error, filename: Py<PyAny>) -> PyErr {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    PyOSError::new_err((errno, strerror(errno), filename))
}

fn c_string(bytes: Vec<u8>) -> PyResult<CString> {
    CString::new(bytes).map_err(|_| PyValueError::new_err("embedded null byte"))
}

/// Takes ownership of a descriptor handed over from Python.
fn owned_fd(fd: i32) -> PyResult<OwnedFd> {
    fd_flags(fd).map_err(|e| os_error(&e))?;
    // SAFETY: `fd` is open (checked above) and the documented contract of the
    // constructors is that the caller gives up its ownership.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new `bytes` object of `len` bytes whose contents are not initialised: nothing
/// touches its pages until the caller writes them (`PyBytes::new_with` zero-fills).
fn uninit_bytes(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyBytes>> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len).map_err(|_| PyMemoryError::new_err(()))?;
    // SAFETY: a NULL source asks CPython for an uninitialised buffer of `size` bytes; the
    // result is a new reference or NULL with an exception set.
    let ptr = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    // SAFETY: `ptr` is a new (owned) reference, or NULL, which from_owned_ptr_or_err maps
    // to the pending exception.
    Ok(unsafe { Bound::from_owned_ptr_or_err(py, ptr)? }.cast_into::<PyBytes>()?)
}

/// The writable buffer of a `bytes` object that nobody else has seen yet.
///
/// # Safety
/// `bytes` must be referenced by the caller alone (not yet published to Python code), so
/// mutating it cannot be observed; the slice must not outlive it.
// The object is shared only by reference count, not by Rust borrows; exclusivity is the
// caller's promise (see # Safety), which is what this lint cannot see.
#[allow(clippy::mut_from_ref)]
unsafe fn bytes_buffer_mut<'a>(bytes: &'a Bound<'_, PyBytes>) -> &'a mut [u8] {
    let len = bytes.as_bytes().len();
    // SAFETY: PyBytes_AsString returns the object's buffer of `len` bytes; the caller
    // guarantees exclusive access.
    unsafe {
        let base = pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<u8>();
        std::slice::from_raw_parts_mut(base, len)
    }
}

fn closed_pipe() -> PyErr {
    PyValueError::new_err("I/O operation on closed pipe")
}

fn stdio(value: Option<i32>, target: usize) -> PyResult<Stdio> {
    Ok(match value {
        None => Stdio::Inherit,
        Some(PIPE) => Stdio::Pipe,
        Some(DEVNULL) => Stdio::DevNull,
        Some(STDOUT) if target == 2 => Stdio::Stdout,
        Some(STDOUT) => return Err(PyValueError::new_err("STDOUT can only be used for stderr")),
        Some(fd) => Stdio::Fd(fd),
    })
}

/// A running or finished child. Dropping it unreaped hands it to the reaper.
#[pyclass(module = "fastspawn._core", name = "Child")]
struct PyChild(child::Child);

#[pymethods]
impl PyChild {
    #[getter]
    fn pid(&self) -> i32 {
        self.0.pid()
    }

    #[getter]
    fn returncode(&self) -> Option<i32> {
        self.0.returncode()
    }

    #[getter]
    fn exit_fd(&self) -> Option<i32> {
        self.0.exit_fd()
    }

    fn try_wait(&mut self) -> PyResult<Option<i32>> {
        self.0.try_wait().map_err(|e| os_error(&e))
    }

    /// Blocks (without the GIL) until exit or `timeout` seconds; the returncode or None.
    #[pyo3(signature = (timeout=None))]
    fn wait(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<i32>> {
        let timeout = timeout.map(|t| std::time::Duration::from_secs_f64(t.max(0.0)));
        let child = &mut self.0;
        py.detach(|| child.wait(timeout)).map_err(|e| os_error(&e))
    }

    fn send_signal(&self, signal: i32) -> PyResult<bool> {
        self.0.send_signal(signal).map_err(|e| os_error(&e))
    }

    fn close_exit_fd(&mut self) {
        self.0.close_exit_fd();
    }

    fn __repr__(&self) -> String {
        format!(
            "<fastspawn._core.Child pid={} returncode={:?}>",
            self.0.pid(),
            self.0.returncode()
        )
    }
}

/// The parent's non-blocking reading end of a child's stdout or stderr.
#[pyclass(module = "fastspawn._core")]
struct ReadPipe(Option<pipe::ReadPipe>);

#[pymethods]
impl ReadPipe {
    /// Takes ownership of `fd`, the reading end of a pipe; makes it non-blocking.
    #[new]
    fn new(fd: i32) -> PyResult<Self> {
        pipe::ReadPipe::new(owned_fd(fd)?)
            .map(|p| Self(Some(p)))
            .map_err(|e| os_error(&e))
    }

    fn fileno(&self) -> PyResult<i32> {
        Ok(self.0.as_ref().ok_or_else(closed_pipe)?.as_fd().as_raw_fd())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.is_none()
    }

    /// Up to `max` bytes: `b""` at EOF, `None` when nothing is there yet.
    fn read<'py>(&mut self, py: Python<'py>, max: usize) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        let ready = pipe.ready_len(max).map_err(|e| os_error(&e))?;
        if ready < SMALL_READ {
            // Small, empty (EOF or spurious wake-up): a stack buffer and one copy.
            let mut buf = [0u8; SMALL_READ];
            let want = max.min(SMALL_READ);
            return match pipe.read(&mut buf[..want]).map_err(|e| os_error(&e))? {
                Some(n) => Ok(Some(PyBytes::new(py, &buf[..n]))),
                None => Ok(None),
            };
        }
        // Large: read straight into the bytes object that is returned.
        let bytes = uninit_bytes(py, ready)?;
        // SAFETY: `bytes` was just created and is not yet visible to Python code.
        let got = pipe.read(unsafe { bytes_buffer_mut(&bytes) }).map_err(|e| os_error(&e))?;
        match got {
            Some(n) if n == ready => Ok(Some(bytes)),
            Some(n) => Ok(Some(PyBytes::new(py, &bytes.as_bytes()[..n]))),
            None => Ok(None),
        }
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

/// The parent's non-blocking writing end of a child's stdin, with its own buffer.
#[pyclass(module = "fastspawn._core")]
struct WritePipe(Option<pipe::WritePipe>);

#[pymethods]
impl WritePipe {
    /// Takes ownership of `fd`, the writing end of a pipe; makes it non-blocking.
    #[new]
    fn new(fd: i32) -> PyResult<Self> {
        pipe::WritePipe::new(owned_fd(fd)?)
            .map(|p| Self(Some(p)))
            .map_err(|e| os_error(&e))
    }

    fn fileno(&self) -> PyResult<i32> {
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
    fn write(&mut self, data: &[u8]) -> PyResult<usize> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        pipe.write(data).map_err(|e| os_error(&e))
    }

    /// Writes buffered bytes the pipe takes now; returns the bytes still buffered.
    fn flush(&mut self) -> PyResult<usize> {
        let pipe = self.0.as_mut().ok_or_else(closed_pipe)?;
        pipe.flush().map_err(|e| os_error(&e))
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

/// The buffer of fastspawn's `StreamReader`: a byte queue that answers the subset of
/// `bytearray` that asyncio's own `StreamReader` methods use (`len`, `find`,
/// `startswith`, front slices, `del [:n]`, `clear`, `bytes()`), so those methods run on
/// it unchanged, plus the fast paths the subclass adds.
#[pyclass(module = "fastspawn._core")]
#[derive(Default)]
struct StreamBuffer(ByteQueue);

/// Python's rule for a possibly negative start index.
fn clamp_start(start: isize, len: usize) -> usize {
    if start < 0 {
        len.saturating_sub(start.unsigned_abs())
    } else {
        start as usize
    }
}

/// The bytes of a `bytearray.find`-style argument: any bytes-like object, or an int
/// (one byte). Borrowed for `bytes`, the common case.
fn bytes_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(std::borrow::Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(std::borrow::Cow::Owned(b.to_vec()));
    }
    if let Ok(i) = obj.extract::<i64>() {
        let byte =
            u8::try_from(i).map_err(|_| PyValueError::new_err("byte must be in range(0, 256)"))?;
        return Ok(std::borrow::Cow::Owned(vec![byte]));
    }
    // Anything else with the buffer protocol (memoryview, array, ...).
    let py = obj.py();
    match py.import("builtins")?.getattr("memoryview")?.call1((obj,)) {
        Ok(view) => Ok(std::borrow::Cow::Owned(
            view.call_method0("tobytes")?.extract::<Vec<u8>>()?,
        )),
        Err(_) => Err(PyTypeError::new_err(format!(
            "argument should be integer or bytes-like object, not '{}'",
            obj.get_type().name()?
        ))),
    }
}

/// Bytes kept allocated by an empty buffer; a larger one is released.
const KEEP_CAPACITY: usize = 1 << 20;

#[pymethods]
impl StreamBuffer {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.as_slice())
    }

    fn __repr__(&self) -> String {
        format!("<fastspawn._core.StreamBuffer {} bytes>", self.0.len())
    }

    /// Equal to `bytes`/`bytearray` with the same content, as a `bytearray` would be.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Py<PyAny> {
        let equal = if let Ok(b) = other.cast::<PyBytes>() {
            Some(b.as_bytes() == self.0.as_slice())
        } else if let Ok(b) = other.cast::<PyByteArray>() {
            Some(b.to_vec() == self.0.as_slice())
        } else if let Ok(b) = other.cast::<StreamBuffer>() {
            Some(b.borrow().0.as_slice() == self.0.as_slice())
        } else {
            None
        };
        match equal {
            Some(eq) => eq.into_pyobject(py).map_or_else(
                |_| py.NotImplemented(),
                |b| b.to_owned().into_any().unbind(),
            ),
            None => py.NotImplemented(),
        }
    }

    /// As `bytearray.extend`: a bytes-like object or an iterable of ints.
    fn extend(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(b) = data.cast::<PyBytes>() {
            self.0.extend(b.as_bytes());
            return Ok(());
        }
        if data.is_instance_of::<pyo3::types::PyInt>() {
            return Err(PyTypeError::new_err(format!(
                "can't extend bytearray with {}",
                data.get_type().name()?
            )));
        }
        let converted = PyByteArray::from(data)?;
        self.0.extend(&converted.to_vec());
        Ok(())
    }

    fn clear(&mut self) {
        self.0.clear();
        self.0.shrink_if_empty(KEEP_CAPACITY);
    }

    #[pyo3(signature = (sub, start=0))]
    fn find(&self, sub: &Bound<'_, PyAny>, start: isize) -> PyResult<isize> {
        let from = clamp_start(start, self.0.len());
        Ok(self
            .0
            .find(&bytes_arg(sub)?, from)
            .map_or(-1, |i| i as isize))
    }

    #[pyo3(signature = (prefix, start=0))]
    fn startswith(&self, prefix: &Bound<'_, PyAny>, start: isize) -> PyResult<bool> {
        let from = clamp_start(start, self.0.len());
        let prefix = bytes_arg(prefix)?;
        Ok(self
            .0
            .as_slice()
            .get(from..)
            .is_some_and(|rest| rest.starts_with(&prefix)))
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.0.as_slice();
        if let Ok(slice) = key.cast::<PySlice>() {
            let ind = slice.indices(data.len() as isize)?;
            if ind.step != 1 {
                let picked: Vec<u8> = (0..ind.slicelength)
                    .map(|i| data[(ind.start + i as isize * ind.step) as usize])
                    .collect();
                return Ok(PyBytes::new(py, &picked).into_any());
            }
            let start = ind.start as usize;
            return Ok(PyBytes::new(py, &data[start..start + ind.slicelength]).into_any());
        }
        let index: isize = key.extract()?;
        let at = if index < 0 {
            index + data.len() as isize
        } else {
            index
        };
        let byte = usize::try_from(at)
            .ok()
            .and_then(|i| data.get(i))
            .ok_or_else(|| PyIndexError::new_err("bytearray index out of range"))?;
        Ok(byte.into_pyobject(py)?.into_any())
    }

    /// Only deleting from the front (`del buf[:n]`) is supported: it is all a stream
    /// reader does.
    fn __delitem__(&mut self, key: &Bound<'_, PySlice>) -> PyResult<()> {
        let ind = key.indices(self.0.len() as isize)?;
        if ind.slicelength == 0 {
            return Ok(());
        }
        if ind.start != 0 || ind.step != 1 {
            return Err(PyValueError::new_err(
                "StreamBuffer only deletes from the front",
            ));
        }
        self.0.consume(ind.slicelength);
        Ok(())
    }

    /// Reads from `pipe` straight into the buffer (no intermediate `bytes`): the count
    /// read, 0 at EOF, None when nothing was there.
    fn read_from(&mut self, mut pipe: PyRefMut<'_, ReadPipe>, max: usize) -> PyResult<Option<usize>> {
        let pipe = pipe.0.as_mut().ok_or_else(closed_pipe)?;
        self.0
            .append_with(|data| pipe.read_append(data, max))
            .map_err(|e| os_error(&e))
    }

    /// Removes and returns the first `n` bytes (fewer if fewer are buffered).
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let n = n.min(self.0.len());
        let out = PyBytes::new(py, &self.0.as_slice()[..n]);
        self.0.consume(n);
        out
    }

    /// If a whole line (ending in `\n`) of at most `limit + 1` bytes is buffered, takes
    /// it and returns an awaitable that yields it at once; else None.
    fn next_line(&mut self, py: Python<'_>, limit: usize) -> Option<Ready> {
        let end = self.0.find(b"\n", 0)? + 1;
        if end > limit + 1 {
            return None;
        }
        let line = PyBytes::new(py, &self.0.as_slice()[..end])
            .into_any()
            .unbind();
        self.0.consume(end);
        Some(Ready(Some(line)))
    }

    /// Takes every whole line buffered (at least one, then up to about `max_bytes`),
    /// none longer than `limit + 1` bytes; stops before a longer one.
    fn take_lines<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
        max_bytes: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let ends = self.0.line_ends(b'\n', max_bytes);
        let data = self.0.as_slice();
        let mut lines = Vec::with_capacity(ends.len());
        let mut start = 0;
        for end in ends {
            if end - start > limit + 1 {
                break;
            }
            lines.push(PyBytes::new(py, &data[start..end]));
            start = end;
        }
        self.0.consume(start);
        PyList::new(py, lines)
    }
}

/// An awaitable whose result is already known: `await` returns it without suspending.
#[pyclass(module = "fastspawn._core")]
struct Ready(Option<Py<PyAny>>);

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Finishes at once: `StopIteration(value)` is how an awaitable returns a value.
    fn __next__(&mut self, py: Python<'_>) -> PyResult<()> {
        let value = self.0.take().unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((value,)))
    }
}

extern "C" {
    /// CPython's in-place resize of a bytes object it owns alone (exported by every
    /// CPython, though outside the limited API). Large buffers are realloc'd, which
    /// glibc does with mremap: no copy, no second resident copy.
    fn _PyBytes_Resize(
        bytes: *mut *mut pyo3::ffi::PyObject,
        newsize: pyo3::ffi::Py_ssize_t,
    ) -> libc::c_int;
}

/// Builds one `bytes` object of unknown final size by appending, growing it in place,
/// so collecting N bytes costs about N of memory rather than the 2N of a join.
#[pyclass(module = "fastspawn._core")]
#[derive(Default)]
struct BytesBuilder {
    /// A bytes object nobody else references, `len` bytes of it used.
    bytes: Option<Py<PyBytes>>,
    len: usize,
}

/// Smallest capacity a builder grows to.
const BUILDER_MIN_CAPACITY: usize = 1 << 16;

impl BytesBuilder {
    fn capacity(&self, py: Python<'_>) -> usize {
        self.bytes
            .as_ref()
            .map_or(0, |b| b.bind(py).as_bytes().len())
    }

    /// Makes room for `more` bytes after the `len` used, growing geometrically.
    fn reserve(&mut self, py: Python<'_>, more: usize) -> PyResult<()> {
        let needed = self.len + more;
        let capacity = self.capacity(py);
        if needed > capacity {
            self.resize(py, needed.max(2 * capacity).max(BUILDER_MIN_CAPACITY))?;
        }
        Ok(())
    }

    fn resize(&mut self, py: Python<'_>, size: usize) -> PyResult<()> {
        let Some(bytes) = self.bytes.take() else {
            self.bytes = Some(uninit_bytes(py, size)?.unbind());
            return Ok(());
        };
        let mut ptr = bytes.into_ptr();
        let size = pyo3::ffi::Py_ssize_t::try_from(size).map_err(|_| PyMemoryError::new_err(()))?;
        // SAFETY: `ptr` is an owned reference to a bytes object that nothing else
        // references (we created it and never handed it out), as _PyBytes_Resize
        // requires. On failure it releases the object and sets ptr to NULL.
        let ret = unsafe { _PyBytes_Resize(&raw mut ptr, size) };
        if ret != 0 {
            self.len = 0;
            return Err(PyErr::fetch(py));
        }
        // SAFETY: on success `ptr` is an owned reference to a bytes object.
        self.bytes = Some(
            unsafe { Bound::from_owned_ptr(py, ptr) }
                .cast_into::<PyBytes>()?
                .unbind(),
        );
        Ok(())
    }
}

#[pymethods]
impl BytesBuilder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn extend(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let needed = self.len + data.len();
        self.reserve(py, data.len())?;
        let Some(bytes) = &self.bytes else {
            return Ok(());
        };
        // SAFETY: the builder's bytes object is referenced by the builder alone until
        // `finish` hands it out.
        let buf = unsafe { bytes_buffer_mut(bytes.bind(py)) };
        buf[self.len..needed].copy_from_slice(data);
        self.len = needed;
        Ok(())
    }

    /// Reads from `pipe` straight into the bytes being built: the count read, 0 at EOF,
    /// None when nothing was there.
    fn read_from(&mut self, py: Python<'_>, mut pipe: PyRefMut<'_, ReadPipe>, max: usize) -> PyResult<Option<usize>> {
        let pipe = pipe.0.as_mut().ok_or_else(closed_pipe)?;
        let want = match pipe.ready_len(max).map_err(|e| os_error(&e))? {
            0 => max.min(SMALL_READ),
            n => n,
        };
        self.reserve(py, want)?;
        let Some(bytes) = &self.bytes else {
            return Ok(None);
        };
        // SAFETY: the builder's bytes object is referenced by the builder alone until
        // `finish` hands it out.
        let buf = unsafe { bytes_buffer_mut(bytes.bind(py)) };
        let got = pipe
            .read(&mut buf[self.len..self.len + want])
            .map_err(|e| os_error(&e))?;
        self.len += got.unwrap_or(0);
        Ok(got)
    }

    /// Moves everything out of a stream buffer into this builder.
    fn extend_from(
        &mut self,
        py: Python<'_>,
        mut buffer: PyRefMut<'_, StreamBuffer>,
    ) -> PyResult<()> {
        let taken = std::mem::take(&mut buffer.0);
        self.extend(py, taken.as_slice())
    }

    /// The bytes collected, shrunk in place to their length; the builder is left empty.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        if self.bytes.is_none() {
            return Ok(PyBytes::new(py, b""));
        }
        let len = self.len;
        self.resize(py, len)?;
        self.len = 0;
        let bytes = self.bytes.take().expect("resized above");
        Ok(bytes.into_bound(py))
    }
}

/// Starts a child with `posix_spawn`. See `_core.pyi` for the contract.
#[pyfunction]
#[pyo3(signature = (
    program, argv, env, cwd, stdin, stdout, stderr, close_fds, pass_fds,
    start_new_session, process_group, restore_signals, pipe_size, program_name, cwd_name,
))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn spawn(
    py: Python<'_>,
    program: Vec<u8>,
    argv: Vec<Vec<u8>>,
    env: Option<Vec<Vec<u8>>>,
    cwd: Option<Vec<u8>>,
    stdin: Option<i32>,
    stdout: Option<i32>,
    stderr: Option<i32>,
    close_fds: bool,
    pass_fds: Vec<i32>,
    start_new_session: bool,
    process_group: Option<i32>,
    restore_signals: bool,
    pipe_size: Option<usize>,
    program_name: Py<PyAny>,
    cwd_name: Py<PyAny>,
) -> PyResult<(
    PyChild,
    Option<WritePipe>,
    Option<ReadPipe>,
    Option<ReadPipe>,
)> {
    let req = SpawnRequest {
        program: c_string(program)?,
        argv: argv.into_iter().map(c_string).collect::<PyResult<_>>()?,
        env: env
            .map(|e| e.into_iter().map(c_string).collect::<PyResult<_>>())
            .transpose()?,
        cwd: cwd.map(c_string).transpose()?,
        stdio: [stdio(stdin, 0)?, stdio(stdout, 1)?, stdio(stderr, 2)?],
        close_fds,
        pass_fds,
        new_session: start_new_session,
        process_group,
        restore_signals,
        pipe_size,
    };
    // PATH is read while the GIL keeps Python code from changing the environment.
    let candidates = spawner::exec_candidates(&req);
    // posix_spawn waits until the child has exec'd; let other threads run meanwhile.
    let spawned = py.detach(|| spawner::spawn(&req, &candidates));
    match spawned {
        Ok(s) => Ok((
            PyChild(s.child),
            s.stdin.map(|p| WritePipe(Some(p))),
            s.stdout.map(|p| ReadPipe(Some(p))),
            s.stderr.map(|p| ReadPipe(Some(p))),
        )),
        Err(SpawnError::Exec(e)) => Err(os_error_with_filename(&e, program_name)),
        Err(SpawnError::Chdir(e)) => Err(os_error_with_filename(&e, cwd_name)),
        Err(SpawnError::Other(e)) => Err(os_error(&e)),
    }
}

/// Watches `pid`, a child this process started some other way (the delegated
/// `subprocess.Popen` path) and that nobody has reaped.
#[pyfunction]
fn watch(pid: i32) -> PyResult<PyChild> {
    child::Child::watch(pid)
        .map(PyChild)
        .map_err(|e| os_error(&e))
}

/// What this system lets the core do natively.
#[pyfunction]
fn features() -> (bool, bool, bool) {
    let f = spawner::Features::get();
    (f.cwd(), f.close_fds(), child::pidfd_supported())
}

#[pymodule]
#[pyo3(name = "_core")]
pub fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyChild>()?;
    m.add_class::<ReadPipe>()?;
    m.add_class::<WritePipe>()?;
    m.add_class::<StreamBuffer>()?;
    m.add_class::<Ready>()?;
    m.add_class::<BytesBuilder>()?;
    m.add_function(wrap_pyfunction!(spawn, m)?)?;
    m.add_function(wrap_pyfunction!(watch, m)?)?;
    m.add_function(wrap_pyfunction!(features, m)?)?;
    Ok(())
}
