//! fastspawn's Rust core: spawning (`posix_spawn`, or `clone(CLONE_VM|CLONE_VFORK)` for
//! what it cannot express), exit notification (pidfd, with one fallback reaper), signals,
//! and non-blocking pipes. `py/` (the `python` feature) is the only module that knows
//! about Python.
//!
//! Dependencies point one way, each module using only those listed before it:
//!
//! 1. `sys`: libc conventions (`cvt`, EINTR, wait helpers, weak symbols).
//! 2. `buffer` (the stream byte queue), `pipe` (non-blocking pipes).
//! 3. `reaper`: the fallback reaper thread.
//! 4. `child`: a started child (pidfd or reaper), its signals and reaping.
//! 5. `spawn`: the request, its descriptor plan and the routing (`spawn/mod.rs`), over
//!    the two backends that share it and not each other (`spawn/posix.rs`,
//!    `spawn/clone.rs`).
//! 6. `py`: the PyO3 layer.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod buffer;
pub mod child;
pub mod pipe;
pub mod reaper;
pub mod spawn;
pub mod sys;

#[cfg(feature = "python")]
pub mod py;
