//! The Python boundary: the only place with `#[pyclass]`/`#[pyfunction]`, and only the
//! stable ABI (checked on the wheel with `abi3audit --strict`).
//!
//! Plain values cross it (bytes, ints, tuples). OS errors cross once, here, as
//! `OSError(errno, strerror[, filename])`, so Python picks the subclass
//! (`FileNotFoundError`, `BrokenPipeError`, …) and `.errno` is set.
//!
//! `process.rs`: children and their pipes (`Child`, `ReadPipe`, `WritePipe`, `spawn`,
//! `watch`); `stream.rs`: the `StreamReader` buffer, its line iterator and the
//! read-to-EOF collector (`StreamBuffer`, `LineIter`, `BytesBuilder`); `ready.rs`: the
//! already-finished awaitable that `async for` lines return.

mod process;
mod ready;
mod request;
mod stream;

use std::io;

use pyo3::exceptions::{PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::sys::strerror;

/// Smallest read done without asking the pipe how much it holds first.
pub(crate) const SMALL_READ: usize = 4096;

pub(crate) fn os_error(e: &io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, strerror(errno))),
        None if e.kind() == io::ErrorKind::OutOfMemory => PyMemoryError::new_err(()),
        None => PyOSError::new_err(e.to_string()),
    }
}

/// A new `bytes` object of `len` bytes whose contents are not initialised: nothing
/// touches its pages until the caller writes them (`PyBytes::new_with` zero-fills).
pub(crate) fn uninit_bytes(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyBytes>> {
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
pub(crate) unsafe fn bytes_buffer_mut<'a>(bytes: &'a Bound<'_, PyBytes>) -> &'a mut [u8] {
    let len = bytes.as_bytes().len();
    // SAFETY: PyBytes_AsString returns the object's buffer of `len` bytes; the caller
    // guarantees exclusive access.
    unsafe {
        let base = pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<u8>();
        std::slice::from_raw_parts_mut(base, len)
    }
}

pub(crate) fn closed_pipe() -> PyErr {
    PyValueError::new_err("I/O operation on closed pipe")
}

/// The module, declared safe without the GIL (PyO3's default, stated here because it
/// was checked): every class keeps its state behind PyO3's per-object borrow flag
/// (atomic on free-threaded builds), so one object used from two threads at once
/// raises "Already borrowed" rather than racing; a `StreamBuffer`'s export count is an
/// atomic its views release without a borrow; the statics are `PyOnceLock`/`OnceLock`
/// or atomics; the fallback reaper's registry is a `Mutex` + `Condvar`; nothing here
/// has an `unsafe impl Send/Sync`; and `Ready`, whose layout assumes the GIL build's
/// object header, is compiled out of free-threaded builds (ready.rs).
///
/// Reading `PATH` from the C environment to resolve a bare program name
/// (`spawn::exec_candidates`) is as unsafe as any `getenv` while another thread calls
/// `os.putenv`/`os.environ[...] = ...`, which the GIL serialised and free threading
/// does not.
#[pymodule(gil_used = false)]
#[pyo3(name = "_core")]
pub fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    process::register(m)?;
    stream::register(m)?;
    #[cfg(not(Py_GIL_DISABLED))]
    ready::register(m)?;
    Ok(())
}
