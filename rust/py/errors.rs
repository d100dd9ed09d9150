//! Errors on their way to Python, converted in one place.
//!
//! OS errors cross as `OSError(errno, strerror[, filename])`, so Python picks the
//! subclass (`FileNotFoundError`, `BrokenPipeError`, …) and `.errno` is set. PyO3's own
//! `From<io::Error> for PyErr` keeps only the message, so functions of the boundary
//! return [`CoreResult`]: `?` on an `io::Error` then converts it here, and on a `PyErr`
//! passes it through.

use std::io;

use pyo3::exceptions::{PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::sys::strerror;

/// An error of the core or of Python, raised in Python as [`From<CoreError> for
/// PyErr`](#impl-From<CoreError>-for-PyErr) says.
pub(crate) struct CoreError(PyErr);

pub(crate) type CoreResult<T> = Result<T, CoreError>;

impl From<io::Error> for CoreError {
    fn from(e: io::Error) -> Self {
        Self(match e.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, strerror(errno))),
            None if e.kind() == io::ErrorKind::OutOfMemory => PyMemoryError::new_err(()),
            None => PyOSError::new_err(e.to_string()),
        })
    }
}

impl From<PyErr> for CoreError {
    fn from(e: PyErr) -> Self {
        Self(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> Self {
        e.0
    }
}

/// `OSError(errno, strerror, filename)`: a spawn's exec or cwd failure, named as
/// `subprocess` names it.
pub(crate) fn os_error_with_filename(e: &io::Error, filename: Py<PyAny>) -> CoreError {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    CoreError(PyOSError::new_err((errno, strerror(errno), filename)))
}

pub(crate) fn closed_pipe() -> CoreError {
    CoreError(PyValueError::new_err("I/O operation on closed pipe"))
}
