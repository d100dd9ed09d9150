//! fastspawn's Rust core: spawning (`posix_spawn`), exit notification (pidfd, with one
//! fallback reaper), signals, and non-blocking pipes. `py/` (the `python` feature) is
//! the only module that knows about Python.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod buffer;
pub mod child;
pub mod clone_spawn;
pub mod pipe;
pub mod reaper;
pub mod spawn;
pub mod sys;

#[cfg(feature = "python")]
pub mod py;
