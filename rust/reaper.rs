//! The one process-wide reaper thread.
//!
//! It has two jobs: watching children when pidfds are unavailable (old kernels,
//! seccomp), and reaping children whose handle was dropped before they exited. It waits
//! only for the children it was given (never `waitpid(-1)`, which would steal other
//! libraries' children): through the pidfd where there is one (`waitid(P_PIDFD)`, so a
//! pid reaped by someone else and reused is never waited for), else by pid. It polls
//! with a back-off from 1 ms to 50 ms while it has work, and sleeps on a condition
//! variable when it has none.
//!
//! A child forked from this process (`os.fork()` without exec) does not inherit the
//! thread, only a copy of its state: the parent's queue, and locks another thread may
//! have held at the fork. It forgets that copy and makes a reaper of its own on first
//! use (see [`forget_in_child`]), as CPython resets its own thread-owned state after
//! fork. A watched child is told of its exit by a write to an eventfd, not by the close
//! of a pipe, so the copies a forked child keeps cannot hide an exit from the parent.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use crate::sys::{cvt, dup_cloexec, wait_nohang, waitid_pidfd};

const FIRST_DELAY: Duration = Duration::from_millis(1);
const LONGEST_DELAY: Duration = Duration::from_millis(50);

/// Where the reaper leaves a watched child's outcome: the returncode, or the errno of a
/// failed `waitpid` (ECHILD when something else reaped it).
#[derive(Debug, Default)]
pub struct ExitSlot(Mutex<Option<Result<i32, i32>>>);

impl ExitSlot {
    fn lock(&self) -> MutexGuard<'_, Option<Result<i32, i32>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outcome, once the reaper has one.
    pub fn get(&self) -> Option<io::Result<i32>> {
        self.lock().map(|r| r.map_err(io::Error::from_raw_os_error))
    }

    /// Runs `f` while the child is known unreaped (the reaper waits for the lock);
    /// `Ok(false)` without running it when the child is already reaped.
    pub fn while_unreaped(&self, f: impl FnOnce() -> io::Result<bool>) -> io::Result<bool> {
        let guard = self.lock();
        if guard.is_some() {
            return Ok(false);
        }
        let res = f();
        drop(guard);
        res
    }
}

struct Entry {
    pid: libc::pid_t,
    /// The child's pidfd, where it has one: waited through, not by pid.
    pidfd: Option<OwnedFd>,
    /// Set for watched children; `None` for orphans.
    slot: Option<Arc<ExitSlot>>,
    /// The watcher's eventfd (our own duplicate), written once the outcome is in.
    notify: Option<OwnedFd>,
}

impl Entry {
    /// Tries to reap; `true` when the entry is done.
    fn reap(&mut self) -> bool {
        let Some(slot) = &self.slot else {
            return self.wait_outcome().is_some();
        };
        let mut guard = slot.lock();
        let outcome = self.wait_outcome();
        if outcome.is_some() {
            *guard = outcome;
            if let Some(fd) = self.notify.take() {
                // SAFETY: eventfd_write adds 1 to the counter of an eventfd we own,
                // which makes it readable.
                unsafe { libc::eventfd_write(fd.as_raw_fd(), 1) };
                // Closed before the slot is released: whoever is woken reads the outcome
                // through the slot, and then finds no descriptor of the reaper's left.
                drop(fd);
            }
        }
        outcome.is_some()
    }

    fn wait_outcome(&self) -> Option<Result<i32, i32>> {
        let waited = match &self.pidfd {
            Some(fd) => waitid_pidfd(fd, libc::WNOHANG),
            None => wait_nohang(self.pid),
        };
        match waited {
            Ok(None) => None,
            Ok(Some(code)) => Some(Ok(code)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => Some(Err(e.raw_os_error().unwrap_or(libc::ECHILD))),
        }
    }
}

/// The reaper's work, and whether its thread runs.
#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    running: bool,
}

struct Reaper {
    state: Mutex<State>,
    wake: Condvar,
    /// Children are queued but the thread could not be started: [`retry`] has work.
    pending: AtomicBool,
}

/// This process's reaper: made on first use, and again in a child forked after that.
/// Every non-null pointer stored here comes from `Box::into_raw` in [`reaper`] and is
/// never freed (a forked child leaks its copy rather than touch its locks).
static CURRENT: AtomicPtr<Reaper> = AtomicPtr::new(ptr::null_mut());

/// `pthread_atfork` child handler: forgets the parent's reaper (see the module
/// comment). Only an atomic store, so it is async-signal-safe and takes no lock.
extern "C" fn forget_in_child() {
    CURRENT.store(ptr::null_mut(), Ordering::Release);
}

fn reaper() -> &'static Reaper {
    static AT_FORK: Once = Once::new();
    let current = CURRENT.load(Ordering::Acquire);
    // SAFETY: non-null pointers in CURRENT are valid forever (see CURRENT).
    if let Some(reaper) = unsafe { current.as_ref() } {
        return reaper;
    }
    AT_FORK.call_once(|| {
        // SAFETY: registers a function that only stores an atomic. It stays valid: the
        // library is never unloaded (CPython does not unload extension modules).
        unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
    });
    let fresh = Box::into_raw(Box::new(Reaper {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        pending: AtomicBool::new(false),
    }));
    match CURRENT.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` is now in CURRENT, valid forever.
        Ok(_) => unsafe { &*fresh },
        Err(other) => {
            // SAFETY: another thread installed one first: ours was never shared, and
            // `other` is valid forever (see CURRENT).
            unsafe {
                drop(Box::from_raw(fresh));
                &*other
            }
        }
    }
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the thread unless it runs. It can be refused (EAGAIN: `RLIMIT_NPROC` or a
    /// cgroup's `pids.max` reached; ENOMEM): then whatever can be reaped now is reaped
    /// by the caller, the rest stays queued, and the next call tries again.
    fn start(&'static self, state: &mut State) -> io::Result<()> {
        if state.running {
            return Ok(());
        }
        let started = std::thread::Builder::new()
            .name("fastspawn-reaper".into())
            .spawn(move || self.run());
        match started {
            Ok(_) => {
                state.running = true;
                self.pending.store(false, Ordering::Relaxed);
                self.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                state.entries.retain_mut(|e| !e.reap());
                self.pending
                    .store(!state.entries.is_empty(), Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn run(&self) {
        let mut state = self.lock();
        let mut delay = FIRST_DELAY;
        loop {
            if state.entries.is_empty() {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                delay = FIRST_DELAY;
                continue;
            }
            let before = state.entries.len();
            state.entries.retain_mut(|e| !e.reap());
            let (guard, timeout) = self
                .wake
                .wait_timeout(state, delay)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            // New work or a reaped child restarts the back-off; idle polling slows down.
            delay = if !timeout.timed_out() || state.entries.len() != before {
                FIRST_DELAY
            } else {
                (delay * 2).min(LONGEST_DELAY)
            };
        }
    }
}

/// Watches `pid` without a pidfd: returns the slot that will hold its outcome and an
/// eventfd that becomes readable once it does.
///
/// Fails (EAGAIN, ...) when the thread cannot be started: nothing would watch the child.
pub fn watch(pid: libc::pid_t) -> io::Result<(Arc<ExitSlot>, OwnedFd)> {
    // SAFETY: eventfd creates a new descriptor (counter 0: not readable yet).
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd succeeded, so `fd` is a new descriptor that we alone own.
    let read_end = unsafe { OwnedFd::from_raw_fd(fd) };
    // The reaper's own descriptor: the watcher may close its one at any time.
    let write_end = dup_cloexec(read_end.as_raw_fd(), 0)?;
    let slot = Arc::new(ExitSlot::default());
    let reaper = reaper();
    let mut state = reaper.lock();
    reaper.start(&mut state)?;
    state.entries.push(Entry {
        pid,
        pidfd: None,
        slot: Some(Arc::clone(&slot)),
        notify: Some(write_end),
    });
    reaper.wake.notify_one();
    Ok((slot, read_end))
}

/// Tries again to start the thread (or reaps what it can) if children are queued that
/// no thread watches; one atomic load otherwise. Called for every new child, so queued
/// orphans are reaped as soon as the process can start a thread again.
pub fn retry() {
    let reaper = reaper();
    if reaper.pending.load(Ordering::Relaxed) {
        let _ = reaper.start(&mut reaper.lock());
    }
}

/// Reaps `pid` in the background (through `pidfd` when given); nobody wants its status
/// any more. Where the thread cannot be started, the child waits in the queue for a
/// later call that can start it (or reap it: see [`Reaper::start`]).
pub fn adopt_orphan(pid: libc::pid_t, pidfd: Option<OwnedFd>) {
    let reaper = reaper();
    let mut state = reaper.lock();
    state.entries.push(Entry {
        pid,
        pidfd,
        slot: None,
        notify: None,
    });
    if reaper.start(&mut state).is_ok() {
        reaper.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    #[test]
    fn watched_child_fills_slot_then_makes_its_eventfd_readable() {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        std::mem::forget(child);
        let (slot, notify) = watch(pid).unwrap();
        let mut pfd = libc::pollfd {
            fd: notify.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        assert_eq!(unsafe { libc::poll(&raw mut pfd, 1, 10_000) }, 1);
        assert_eq!(slot.get().unwrap().unwrap(), 3);
        assert!(!slot.while_unreaped(|| Ok(true)).unwrap());
    }
}
