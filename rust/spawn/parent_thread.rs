//! The one thread that starts children with a parent-death signal.
//!
//! `PR_SET_PDEATHSIG` fires when the child's parent *thread* ends, not its process (the
//! kernel's `real_parent` is the thread that cloned it). fastspawn spawns from whatever
//! thread asks: an event loop's, a pooled spawner thread, a short-lived thread running
//! its own `asyncio.run`. A child with the signal started there would be killed when
//! that thread ends, while this process lives on. So those children are all started by
//! one thread of the core's that never ends (it waits for work, and dies with the
//! process); the calling thread waits for its result.
//!
//! The thread starts on first use. A child forked from this process (`os.fork()` without
//! exec) does not have it: it forgets the parent's handle (`pthread_atfork`, as the
//! reaper does) and starts its own on first use.

use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::Once;

/// Work for the thread.
type Job = Box<dyn FnOnce() + Send>;

/// The thread's queue in this process. Every non-null pointer stored here comes from
/// `Box::into_raw` in [`queue`] and is never freed (a forked child leaks its copy).
static QUEUE: AtomicPtr<Sender<Job>> = AtomicPtr::new(ptr::null_mut());

/// `pthread_atfork` child handler: forgets the parent's thread (an atomic store only:
/// async-signal-safe, no lock).
extern "C" fn forget_in_child() {
    QUEUE.store(ptr::null_mut(), Ordering::Release);
}

/// The queue of this process's thread, which is started if there is none.
fn queue() -> io::Result<&'static Sender<Job>> {
    static AT_FORK: Once = Once::new();
    let current = QUEUE.load(Ordering::Acquire);
    // SAFETY: non-null pointers in QUEUE are valid forever (see QUEUE).
    if let Some(queue) = unsafe { current.as_ref() } {
        return Ok(queue);
    }
    AT_FORK.call_once(|| {
        // SAFETY: registers a function that only stores an atomic. It stays valid: the
        // library is never unloaded (CPython does not unload extension modules).
        unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
    });
    let (sender, receiver) = channel::<Job>();
    std::thread::Builder::new()
        .name("fastspawn-parent".into())
        .spawn(move || {
            for job in receiver {
                job();
            }
        })?;
    let fresh = Box::into_raw(Box::new(sender));
    match QUEUE.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` is now in QUEUE, valid forever.
        Ok(_) => Ok(unsafe { &*fresh }),
        Err(other) => {
            // SAFETY: another thread installed one first: ours was never shared (its
            // thread ends once the sender is dropped here), and `other` is valid
            // forever (see QUEUE).
            unsafe {
                drop(Box::from_raw(fresh));
                Ok(&*other)
            }
        }
    }
}

/// This thread's signal mask.
fn signal_mask() -> libc::sigset_t {
    let mut mask = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: with no new set, pthread_sigmask only writes the current mask into `mask`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, ptr::null(), mask.as_mut_ptr()) };
    // SAFETY: initialised just above.
    unsafe { mask.assume_init() }
}

fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: sets this thread's mask from a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, ptr::null_mut()) };
}

/// Runs `work` on the thread, with the calling thread's signal mask (which a child
/// started there inherits, as it would here), and waits for its result.
pub(super) fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (reply, result) = sync_channel(1);
    let mask = signal_mask();
    let job: Job = Box::new(move || {
        set_signal_mask(&mask);
        let _ = reply.send(work());
    });
    // The thread ends only with the process, or by a panic in `work`: either way the
    // answer is an error here, never a hang.
    let gone = || io::Error::other("fastspawn's parent thread is gone");
    queue()?.send(job).map_err(|_| gone())?;
    result.recv().map_err(|_| gone())
}
