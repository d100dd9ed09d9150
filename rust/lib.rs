//! fastspawn's Rust core: spawning (`posix_spawn`, or `clone(CLONE_VM|CLONE_VFORK)` for
//! what it cannot express), exit notification (pidfd, with one fallback reaper), signals,
//! and non-blocking pipes. `py/` (the `python` feature) is the only module that knows
//! about Python.
//!
//! Dependencies point one way, each module using only those listed before it:
//!
//! 1. `sys`: libc conventions (`cvt`, EINTR, wait helpers, weak symbols).
//! 2. `buffer` (the stream byte queue), `pages` (a growable mapping whose pages move
//!    onto another allocation), `pipe` (non-blocking pipes).
//! 3. `reaper`: the fallback reaper thread.
//! 4. `child`: a started child (pidfd or reaper), its signals and reaping.
//! 5. `cgroup`: a leaf cgroup v2 per child (create, list, signal, kill, remove).
//! 6. `spawn`: the request, its descriptor plan and the routing (`spawn/mod.rs`), over
//!    the two backends that share it and not each other (`spawn/posix.rs`,
//!    `spawn/clone.rs`), and `spawn/parent_thread.rs`, the long-lived thread that starts
//!    children with a parent-death signal (it knows nothing of spawning: it runs a job).
//! 7. `py`: the PyO3 layer; within it `errors` (the one error conversion), `request`
//!    (the spawn request), `ready` below `process` (children, pipes, `spawn`) below
//!    `stream` (the `StreamReader` buffer).
//! 8. `_core` (below): the extension module, exporting from `py`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod buffer;
pub mod cgroup;
pub mod child;
pub mod pages;
pub mod pipe;
pub mod reaper;
pub mod spawn;
pub mod sys;

#[cfg(feature = "python")]
pub mod py;

/// The extension module `fastspawn._core`: everything it exports, in one place (the
/// stub, `python/fastspawn/_core.pyi`, documents each).
///
/// Declared safe without the GIL (PyO3's default, stated here because it was checked):
/// every class keeps its state behind PyO3's per-object borrow flag (atomic on
/// free-threaded builds), so one object used from two threads at once raises "Already
/// borrowed" rather than racing; a `StreamBuffer`'s export count is an atomic its views
/// release without a borrow; the statics are `PyOnceLock`/`OnceLock` or atomics; the
/// fallback reaper's registry is a `Mutex` + `Condvar`; nothing here has an `unsafe impl
/// Send/Sync`; and `Ready`, whose layout assumes the GIL build's object header, is
/// compiled out of free-threaded builds (py/ready.rs); and the core never reads the C
/// environment while spawning (`PATH` comes in the request, read from `os.environ`), so
/// no `getenv` races an `os.environ[...] = ...` in another thread.
#[cfg(feature = "python")]
#[pyo3::pymodule(gil_used = false)]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::py::cgroup::PyCGroup;
    #[pymodule_export]
    use crate::py::process::{features, spawn, watch, PyChild, PyReadPipe, PyWritePipe};
    #[pymodule_export]
    use crate::py::stream::{BytesBuilder, LineIter, StreamBuffer};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // What this system offers, decided now, at import: the test switches
        // (FASTSPAWN_NO_PIDFD, FASTSPAWN_NO_SPAWN_EXTENSIONS) are read from the C
        // environment before any spawn could race an `os.environ[...] = ...`.
        crate::spawn::Extensions::get();
        crate::child::pidfd_supported();
        crate::py::stream::decide_page_moves(m.py());
        // `Ready`, a type made with the C API, where it is used (3.11; see py/ready.rs).
        #[cfg(not(Py_GIL_DISABLED))]
        crate::py::ready::register(m)?;
        Ok(())
    }
}
