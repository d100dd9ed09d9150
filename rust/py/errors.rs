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

use crate::spawn::SetupStep;
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

/// A step of the child setup that failed in the child: the error the same call raises
/// in Python (`resource.setrlimit`'s `ValueError` for EINVAL and EPERM, else
/// `OSError`, named after `cgroup_name` for the cgroup step), with a note naming the
/// step.
pub(crate) fn setup_error(
    py: Python<'_>,
    step: SetupStep,
    e: io::Error,
    cgroup_name: Py<PyAny>,
) -> CoreError {
    let note = match step {
        SetupStep::Rlimit(resource) => format!("in the child: setrlimit of resource {resource}"),
        SetupStep::ParentDeathSignal => "in the child: prctl(PR_SET_PDEATHSIG)".to_owned(),
        SetupStep::Subreaper => "in the child: prctl(PR_SET_CHILD_SUBREAPER)".to_owned(),
        SetupStep::Cgroup => {
            "in the child: joining its leaf cgroup (writing to cgroup.procs)".to_owned()
        }
    };
    let error = match (step, e.raw_os_error()) {
        (SetupStep::Rlimit(_), Some(libc::EINVAL)) => {
            PyValueError::new_err("current limit exceeds maximum limit")
        }
        (SetupStep::Rlimit(_), Some(libc::EPERM)) => {
            PyValueError::new_err("not allowed to raise maximum limit")
        }
        (SetupStep::Cgroup, _) => os_error_with_filename(&e, cgroup_name).0,
        _ => CoreError::from(e).0,
    };
    // PEP 678 notes (3.11+); a failure to add one leaves the error as it is.
    let _ = error.value(py).call_method1("add_note", (note,));
    CoreError(error)
}
