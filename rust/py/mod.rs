//! The Python boundary: the only place with `#[pyclass]`/`#[pyfunction]`, and only the
//! stable ABI (checked on the wheel with `abi3audit --strict`). The module itself, and
//! so the whole exported surface, is declared in `lib.rs`.
//!
//! Plain values cross it (bytes, ints, tuples), and a spawn request as one object read
//! by field name. Errors cross once, in `errors.rs`.
//!
//! `cgroup.rs`: a child's leaf cgroup (`CGroup`); `process.rs`: children and their pipes (`Child`, `ReadPipe`, `WritePipe`, `spawn`,
//! `watch`, `features`); `request.rs`: the spawn request; `stream.rs`: the
//! `StreamReader` buffer, its line iterator and the read-to-EOF collector
//! (`StreamBuffer`, `LineIter`, `BytesBuilder`); `ready.rs`: the already-finished
//! awaitable that `async for` lines return.

pub(crate) mod cgroup;
pub(crate) mod errors;
pub(crate) mod process;
pub(crate) mod ready;
mod request;
pub(crate) mod stream;

use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Smallest read done without asking the pipe how much it holds first.
pub(crate) const SMALL_READ: usize = 4096;

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
