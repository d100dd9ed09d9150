//! `ready(value)`: an awaitable whose result is already known, so `await` returns it
//! without suspending. `async for` over a fastspawn `StreamReader` gets one per buffered
//! line.
//!
//! Which awaitable is fastest depends on the interpreter's `SEND` instruction:
//!
//! * 3.11 hands a non-coroutine awaitable's result back through its `am_send` slot.
//!   `Ready` (below), a small type built with the C API rather than `#[pyclass]` for
//!   that one slot PyO3 does not offer, returns the result there directly. Without it
//!   the result must travel inside a `StopIteration` (created, normalised, unpacked),
//!   which cost about a third of each line.
//! * 3.12+ no longer consult `am_send`: any awaitable other than a native coroutine or
//!   generator is driven through `__next__`, so `Ready` would pay for the
//!   `StopIteration` (measured: half the lines per second of 3.11). A native coroutine
//!   is run inline by `SEND` instead, and its return value needs no exception, so there
//!   `ready` calls a one-line `async def` (compiled once, below).
//!
//! `Ready` lays its instances out after `ffi::PyObject`, which is opaque in the
//! free-threaded stable ABI (abi3t) and laid out differently in free-threaded builds.
//! Those target 3.14+ only, where `Ready` is never used, so it is compiled out there
//! (`Py_GIL_DISABLED`, a cfg build.rs takes from PyO3's configuration). Elsewhere it
//! is registered only on 3.11, the one version that uses it.

use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// `async def ready(value): return value` on 3.12+, None before (see the module
/// comment); looked up once, as `version_info` parses the version string.
fn ready_coroutine_function(py: Python<'_>) -> PyResult<Option<&Bound<'_, PyAny>>> {
    static FUNCTION: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();
    FUNCTION
        .get_or_try_init(py, || {
            if py.version_info() < (3, 12) {
                return Ok::<_, PyErr>(None);
            }
            let namespace = PyDict::new(py);
            py.run(
                c"async def ready(value):\n    return value\n",
                Some(&namespace),
                None,
            )?;
            Ok(Some(namespace.as_any().get_item("ready")?.unbind()))
        })
        .map(|f| f.as_ref().map(|f| f.bind(py)))
}

/// A new awaitable that `await` turns into `value` at once.
pub(crate) fn ready<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(function) = ready_coroutine_function(py)? else {
        #[cfg(not(Py_GIL_DISABLED))]
        return am_send::new_ready(py, value);
        #[cfg(Py_GIL_DISABLED)]
        unreachable!("free-threaded builds target Python 3.14+");
    };
    // SAFETY: both are live objects and we are attached to the interpreter; the NULL
    // ends the argument list. The result is a new reference, or NULL with an exception
    // set. (Unlike `call1`, this builds no argument tuple: CPython passes the one
    // argument on the stack.)
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_CallFunctionObjArgs(
                function.as_ptr(),
                value.as_ptr(),
                ptr::null_mut::<ffi::PyObject>(),
            ),
        )
    }
}

/// Adds `Ready` where it is used (3.11).
#[cfg(not(Py_GIL_DISABLED))]
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if ready_coroutine_function(m.py())?.is_none() {
        m.add("Ready", am_send::ready_type(m.py())?)?;
    }
    Ok(())
}

/// The `Ready` type, for 3.11 (see the module comment).
#[cfg(not(Py_GIL_DISABLED))]
mod am_send {
    use std::ffi::{c_int, c_void};
    use std::ptr;

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;
    use pyo3::types::PyType;

    /// The instance layout: the object header, then the result (an owned reference, or
    /// NULL once handed out).
    #[repr(C)]
    struct ReadyObject {
        ob_base: ffi::PyObject,
        value: *mut ffi::PyObject,
    }

    /// The instance size, as `PyType_Spec` takes it (checked to fit when compiled).
    const BASICSIZE: c_int = {
        let size = std::mem::size_of::<ReadyObject>();
        assert!(size <= c_int::MAX as usize);
        size as c_int
    };

    /// Takes the result out of `obj`: an owned reference (None if already taken).
    ///
    /// # Safety
    /// `obj` must be a live `Ready` instance and the GIL held.
    unsafe fn take_value(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: the caller guarantees `obj` has ReadyObject's layout.
        let slot = unsafe { &mut (*obj.cast::<ReadyObject>()).value };
        let value = std::mem::replace(slot, ptr::null_mut());
        if value.is_null() {
            // SAFETY: Py_None is immortal or owned by the interpreter; we return a new ref.
            unsafe {
                let none = ffi::Py_None();
                ffi::Py_INCREF(none);
                none
            }
        } else {
            value
        }
    }

    unsafe extern "C" fn ready_dealloc(obj: *mut ffi::PyObject) {
        // SAFETY: called by the interpreter, with the GIL, for a Ready whose refcount hit 0.
        unsafe {
            let value = (*obj.cast::<ReadyObject>()).value;
            ffi::Py_XDECREF(value);
            let tp = ffi::Py_TYPE(obj);
            let free: ffi::freefunc = std::mem::transmute(ffi::PyType_GetSlot(tp, ffi::Py_tp_free));
            free(obj.cast::<c_void>());
            // Instances of heap types own a reference to their type.
            ffi::Py_DECREF(tp.cast::<ffi::PyObject>());
        }
    }

    /// `__await__` and `__iter__`: the object is its own iterator.
    unsafe extern "C" fn ready_self(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: `obj` is a live object; we return a new reference to it.
        unsafe { ffi::Py_INCREF(obj) };
        obj
    }

    /// `__next__`: finishes at once by raising `StopIteration(result)`.
    unsafe extern "C" fn ready_next(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: called by the interpreter with the GIL for a live Ready. The exception is
        // built as an instance so a tuple result is not mistaken for constructor arguments.
        unsafe {
            let value = take_value(obj);
            let exc = ffi::PyObject_CallFunctionObjArgs(
                ffi::PyExc_StopIteration,
                value,
                ptr::null_mut::<ffi::PyObject>(),
            );
            ffi::Py_DECREF(value);
            if !exc.is_null() {
                ffi::PyErr_SetObject(ffi::PyExc_StopIteration, exc);
                ffi::Py_DECREF(exc);
            }
        }
        ptr::null_mut()
    }

    /// `am_send`: returns the result to the awaiting coroutine, no exception involved.
    unsafe extern "C" fn ready_send(
        obj: *mut ffi::PyObject,
        _arg: *mut ffi::PyObject,
        result: *mut *mut ffi::PyObject,
    ) -> ffi::PySendResult {
        // SAFETY: called by the interpreter with the GIL for a live Ready; `result` is a
        // valid out-pointer that receives an owned reference.
        unsafe { *result = take_value(obj) };
        ffi::PySendResult::PYGEN_RETURN
    }

    pub(super) fn ready_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
        static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        TYPE.get_or_try_init(py, || {
            let mut slots = [
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_dealloc,
                    pfunc: ready_dealloc as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_am_await,
                    pfunc: ready_self as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_iter,
                    pfunc: ready_self as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_tp_iternext,
                    pfunc: ready_next as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: ffi::Py_am_send,
                    pfunc: ready_send as *mut c_void,
                },
                ffi::PyType_Slot {
                    slot: 0,
                    pfunc: ptr::null_mut(),
                },
            ];
            let mut spec = ffi::PyType_Spec {
                name: c"fastspawn._core.Ready".as_ptr(),
                basicsize: BASICSIZE,
                itemsize: 0,
                flags: ffi::Py_TPFLAGS_DEFAULT as _,
                slots: slots.as_mut_ptr(),
            };
            // SAFETY: the spec and its slots are valid for the call (CPython copies what it
            // keeps; the name is a static C string); the result is a new reference or NULL.
            let tp =
                unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&raw mut spec))? };
            Ok(tp.cast_into::<PyType>()?.unbind())
        })
        .map(|tp| tp.bind(py))
    }

    /// A new `Ready` holding `value`.
    pub(super) fn new_ready<'py>(
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tp = ready_type(py)?;
        // SAFETY: GenericAlloc returns a zeroed instance (new reference, holding a
        // reference to its heap type) or NULL with an exception set.
        let obj = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyType_GenericAlloc(tp.as_type_ptr(), 0))?
        };
        // SAFETY: `obj` was just allocated with ReadyObject's layout and is not yet
        // shared; the stored reference is owned by the instance (released in dealloc or
        // taken).
        unsafe { (*obj.as_ptr().cast::<ReadyObject>()).value = value.clone().into_ptr() };
        Ok(obj)
    }
}
