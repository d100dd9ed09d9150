//! Memory by whole pages: [`PageBuf`], an anonymous mapping that grows without copying,
//! and [`move_into`], which hands its bytes to another allocation by moving whole pages
//! (`mremap`) instead of copying them.
//!
//! Why: a read-to-EOF collects an unknown number of bytes and must end as one `bytes`
//! object, which only CPython's allocator may create (the stable ABI has no resize).
//! Copying N bytes into it costs the copy and a page fault per destination page; moving
//! a page costs a page-table entry. The source's bytes start at the same offset into a
//! page as the destination's will ([`PageBuf::new`] takes that offset), so every whole
//! page of the destination has a whole source page to receive; the partial first and
//! last pages are copied.
//!
//! What moving a page onto another allocation's memory does, and why the allocator does
//! not mind (see [`move_into`]'s safety contract for what the caller guarantees):
//!
//! * `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)` unmaps the destination range and moves the
//!   source pages there, in one call under the address-space lock: no other thread can
//!   map anything into the range in between. Only whole pages lying inside the
//!   destination slice are replaced, so the allocator's headers before the data and
//!   whatever follows it (a `bytes` object's NUL, the next chunk) are never touched.
//! * The moved pages are private, anonymous, read-write memory: what malloc's pages are.
//!   Whatever the allocator later does to its range works on them as on its own pages:
//!   `munmap` (glibc frees a large chunk so: every piece of the range goes), `madvise`
//!   (`DONTNEED`/`FREE` purges), `mprotect`/`mmap(MAP_FIXED)` (decommit). A realloc by
//!   `mremap` of a glibc chunk so split fails (`EFAULT`: more than one mapping), and
//!   glibc then allocates, copies and frees, as it does when `mremap` fails otherwise.
//! * The cost is bookkeeping: the range holds up to two more kernel mappings (VMAs:
//!   the moved pages do not merge with their neighbours) until the allocator unmaps it.
//!   glibc unmaps a large chunk when it is freed; an allocator that keeps its address
//!   space (jemalloc, mimalloc, glibc's heap below the mmap threshold) keeps them, which
//!   is why the caller moves pages only where `malloc` is glibc's ([`malloc_is_glibc`];
//!   a chunk below glibc's mmap threshold comes from its heap, at an offset into the
//!   page that matches by chance only, and the heap keeps the two mappings until it is
//!   trimmed).
//! * The kernel unmaps the destination before it moves the source. Its checks of the
//!   source (one mapping, not hugetlb, the range inside it) come before that unmapping
//!   on newer kernels and after it on older ones (6.1), so the source is always one
//!   whole mapping of ours, for which they cannot fail. When the kernel fails the move
//!   after unmapping the destination all the same (it can: an allocation failure in
//!   the kernel, which for such small allocations happens only to a task being
//!   killed), the hole is refilled with fresh pages
//!   (`MAP_FIXED_NOREPLACE`, which never replaces anything) and the bytes are copied;
//!   if even that fails, the caller is told never to touch or free the destination.
//! * Kernel same-page merging (KSM) makes the move's page walk fail on a pending signal
//!   after the destination is unmapped; with KSM enabled for the whole process
//!   (`PR_SET_MEMORY_MERGE`, e.g. systemd's `MemoryKSM=`) pages are only copied.

use std::io;
use std::ptr;
use std::sync::OnceLock;

use crate::sys::{page_size, prefault_pages, release_pages};

fn out_of_memory() -> io::Error {
    io::Error::from(io::ErrorKind::OutOfMemory)
}

/// An anonymous private mapping holding bytes that start `offset` bytes into its first
/// page, grown by `mremap` (the kernel moves page-table entries, never bytes).
///
/// The mapping is one kernel mapping (mapped and remapped only whole), which is what
/// `mremap` needs of a range it moves. Its room past the bytes reads as zeros until
/// written (anonymous memory), so it is handed out as plain `&mut [u8]`.
#[derive(Debug)]
pub struct PageBuf {
    /// Start of the mapping, page-aligned. An address with its provenance exposed
    /// (turned back into a pointer by [`Self::base`]), so the type stays `Send` without
    /// an `unsafe impl`: the buffer owns its mapping as a `Vec` owns its allocation.
    base: usize,
    map_len: usize,
    /// Offset of the first byte into the first page (`< page`).
    off: usize,
    len: usize,
    /// How much of the mapping (from its start) was pre-faulted: see [`Self::prefault`].
    populated: usize,
}

/// How far ahead of the bytes [`PageBuf::reserve`] pre-faults the room at most.
const PREFAULT_STEP: usize = 1 << 20;

/// `MADV_POPULATE_WRITE` works here (Linux >= 5.14); cleared when it is refused for good.
static PREFAULT_WORKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Length of a mapping holding `off + capacity` bytes: whole pages, at least one.
fn map_len_for(off: usize, capacity: usize) -> io::Result<usize> {
    let page = page_size();
    off.checked_add(capacity)
        .and_then(|n| n.max(1).checked_next_multiple_of(page))
        .filter(|&n| isize::try_from(n).is_ok())
        .ok_or_else(out_of_memory)
}

/// The error of a failed `mmap`/`mremap` (`ENOMEM` as `OutOfMemory`, as a failed `Vec`
/// reserve reports it).
fn map_error() -> io::Error {
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOMEM) {
        out_of_memory()
    } else {
        err
    }
}

impl PageBuf {
    /// An empty buffer with room for `capacity` bytes, its bytes starting
    /// `offset % page` bytes into a page.
    pub fn new(offset: usize, capacity: usize) -> io::Result<Self> {
        let off = offset % page_size();
        let map_len = map_len_for(off, capacity)?;
        // SAFETY: a new private anonymous mapping at an address the kernel picks: no
        // existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(map_error());
        }
        Ok(Self {
            base: ptr.expose_provenance(),
            map_len,
            off,
            len: 0,
            populated: 0,
        })
    }

    /// Faults in, in one `madvise(MADV_POPULATE_WRITE)`, the pages that `want` more bytes
    /// will be written to, and some room past them (a quarter of the bytes held, at most
    /// [`PREFAULT_STEP`]), so one call serves several reads: a pipe read into fresh
    /// anonymous memory otherwise takes one page fault per 4 KiB inside the kernel's copy.
    /// Memory touched ahead of the data stays under a quarter of it (and 1 MiB). Nothing
    /// changes for the bytes (the pages read as zeros either way); a kernel without it,
    /// or a failure, leaves the faults to happen as before.
    fn prefault(&mut self, want: usize) {
        use std::sync::atomic::Ordering;
        let page = page_size();
        let needed = (self.off + self.len).saturating_add(want);
        if needed <= self.populated || !PREFAULT_WORKS.load(Ordering::Relaxed) {
            return;
        }
        let ahead = (self.len / 4).min(PREFAULT_STEP);
        let end = needed.saturating_add(ahead).saturating_add(page - 1) / page * page;
        let end = end.min(self.map_len);
        let start = self
            .populated
            .max((self.off + self.len) / page_size() * page_size());
        // SAFETY: [start, end) is page-aligned at its start and lies inside our own
        // mapping; MADV_POPULATE_WRITE only faults those pages in (writable, zeroed as a
        // first write would), it never changes their contents once present.
        let ret = unsafe {
            libc::madvise(
                self.base().add(start).cast(),
                end - start,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if ret == 0 {
            self.populated = end;
        } else if !matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOMEM | libc::EINTR | libc::EAGAIN)
        ) {
            // A kernel older than 5.14 (EINVAL), a sandbox refusing it (EPERM, ENOSYS):
            // never again. A transient failure only skips this step; the pages fault in
            // when written.
            PREFAULT_WORKS.store(false, Ordering::Relaxed);
        }
    }

    fn base(&self) -> *mut u8 {
        ptr::with_exposed_provenance_mut(self.base)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the first byte into its page.
    pub fn offset(&self) -> usize {
        self.off
    }

    pub fn capacity(&self) -> usize {
        self.map_len - self.off
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: [off, off + len) lies inside the mapping, which lives as long as
        // `self`; anonymous memory is initialised (zeros until written).
        unsafe { std::slice::from_raw_parts(self.base().add(self.off), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, borrowed exclusively through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.base().add(self.off), self.len) }
    }

    /// The room after the bytes, to fill and then count in with [`Self::commit`].
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let room = self.capacity() - self.len;
        // SAFETY: [off + len, map_len) lies inside the mapping and is borrowed
        // exclusively through `&mut self`; anonymous memory reads as zeros until
        // written, so every byte is an initialised `u8`.
        unsafe { std::slice::from_raw_parts_mut(self.base().add(self.off + self.len), room) }
    }

    /// Counts the first `n` bytes of the room (at most all of it) as bytes of the buffer.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.capacity() - self.len);
    }

    /// Makes room for at least `additional` more bytes, at least doubling the mapping
    /// when it grows. `OutOfMemory` when the room cannot be had.
    pub fn reserve(&mut self, additional: usize) -> io::Result<()> {
        let need = self.len.checked_add(additional).ok_or_else(out_of_memory)?;
        if need <= self.capacity() {
            self.prefault(additional);
            return Ok(());
        }
        let new_len = map_len_for(self.off, need.max(self.capacity().saturating_mul(2)))?;
        // SAFETY: the whole mapping is ours and one kernel mapping; MREMAP_MAYMOVE lets
        // the kernel move it (page tables, not bytes). No reference into it outlives
        // this `&mut self` borrow, and the new address replaces the old below.
        let ptr = unsafe {
            libc::mremap(
                self.base().cast(),
                self.map_len,
                new_len,
                libc::MREMAP_MAYMOVE,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(map_error());
        }
        self.base = ptr.expose_provenance();
        self.map_len = new_len;
        self.prefault(additional);
        Ok(())
    }

    pub fn extend_from_slice(&mut self, data: &[u8]) -> io::Result<()> {
        self.reserve(data.len())?;
        self.spare_mut()[..data.len()].copy_from_slice(data);
        self.commit(data.len());
        Ok(())
    }

    /// Unmaps what is left of the mapping once the pages of `hole` (offsets into the
    /// mapping, page-aligned) were moved away, without going over the hole: another
    /// thread may already have mapped something there.
    fn unmap_around(self, hole: std::ops::Range<usize>) {
        let base = self.base();
        let map_len = self.map_len;
        std::mem::forget(self);
        for (start, end) in [(0, hole.start), (hole.end, map_len)] {
            if start < end {
                // SAFETY: [start, end) is a part of our mapping that is still ours (not
                // the hole); nothing refers to it any more (`self` is consumed).
                // Failing leaves it mapped: leaked address space, nothing unsound.
                let _ = unsafe { libc::munmap(base.add(start).cast(), end - start) };
            }
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, whole (a moved-out part goes through
        // unmap_around, which forgets `self`), and no reference into it outlives `self`.
        let _ = unsafe { libc::munmap(self.base().cast(), self.map_len) };
    }
}

/// How [`move_into`] handed the bytes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Whole pages moved by `mremap`, the partial first and last pages copied.
    Remapped,
    /// Copied (and released from the source step by step).
    Copied,
}

/// Whether whole pages may be moved at all in this process: not with kernel same-page
/// merging enabled process-wide (see the module documentation).
pub fn remap_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        // SAFETY: PR_GET_MEMORY_MERGE only reads a process flag (EINVAL before Linux
        // 6.4, where process-wide merging does not exist).
        let merge = unsafe { libc::prctl(libc::PR_GET_MEMORY_MERGE, 0, 0, 0, 0) };
        merge <= 0
    })
}

/// Whether `malloc` is glibc's own (not one preloaded in its place, as jemalloc or
/// tcmalloc are with `LD_PRELOAD`): glibc gives a large request a mapping of its own
/// and unmaps it whole when it is freed, so the mappings a move splits it into go too.
pub fn malloc_is_glibc() -> bool {
    static GLIBC: OnceLock<bool> = OnceLock::new();
    *GLIBC.get_or_init(|| {
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: looks up an already-loaded library (RTLD_NOLOAD loads nothing).
            let libc_so =
                unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
            if libc_so.is_null() {
                return false;
            }
            // SAFETY: symbol lookups by NUL-terminated name; the handle is valid.
            let (glibc, used) = unsafe {
                (
                    libc::dlsym(libc_so, c"malloc".as_ptr()),
                    libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()),
                )
            };
            // SAFETY: drops the reference dlopen took; libc stays loaded regardless.
            unsafe { libc::dlclose(libc_so) };
            !glibc.is_null() && glibc == used
        }
        #[cfg(not(target_env = "gnu"))]
        false
    })
}

/// The destination pages a failed move may have left unmapped, mapped again: `Ok` when
/// the range is mapped now, `Err` when a hole may be left.
fn refill(dst: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: MAP_FIXED_NOREPLACE maps only where nothing is mapped (EEXIST otherwise),
    // so no existing mapping is affected; kernels before 4.17 take the address as a hint.
    let ptr = unsafe {
        libc::mmap(
            dst.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        let err = io::Error::last_os_error();
        // EEXIST: the range is still mapped (the move failed before unmapping it).
        return if err.raw_os_error() == Some(libc::EEXIST) {
            Ok(())
        } else {
            Err(err)
        };
    }
    if ptr.cast::<u8>() != dst {
        // An old kernel placed it elsewhere: the range was mapped. Not ours to keep.
        // SAFETY: `ptr` is the mapping just made, referred to by nothing.
        let _ = unsafe { libc::munmap(ptr, len) };
    }
    Ok(())
}

/// Moves the bytes of `src` into `dst` (the same length) and frees `src`.
///
/// When `dst` starts at the same offset into a page as `src`'s bytes and at least
/// `min_pages` whole pages lie inside `dst`, those pages are moved (`mremap`) and the
/// partial first and last pages copied: no copy, no page faults, and memory never holds
/// two copies. Otherwise, and if the move fails, the bytes are copied `step` at a time,
/// each copied step released from `src` first, so memory peaks near one copy plus a
/// step. `usize::MAX` for `min_pages` always copies.
///
/// # Errors
/// `InvalidInput` when the lengths differ (nothing done). Any other error means a
/// failed move left part of `dst` unmapped and it could not be mapped again: `dst` must
/// then never be read, written or freed (leak it).
///
/// # Safety
/// `dst` must be private anonymous memory from an allocator (malloc's, not a file or
/// shared mapping), and no other thread may use it during the call. Its whole pages are
/// replaced, not written: the caller vouches that the allocator is content with that
/// (the module documentation explains why malloc-like allocators are).
pub unsafe fn move_into(
    src: PageBuf,
    dst: &mut [u8],
    min_pages: usize,
    step: usize,
) -> io::Result<Moved> {
    let n = src.len();
    if n != dst.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let page = page_size();
    let d = dst.as_ptr().addr();
    // Bytes of `dst` before its first whole page, and the whole pages after them.
    let head = (d.next_multiple_of(page) - d).min(n);
    let pages = (n - head) / page;
    if d % page == src.offset() && pages > 0 && pages >= min_pages && remap_allowed() {
        let whole = head..head + pages * page;
        dst[..whole.start].copy_from_slice(&src.as_slice()[..whole.start]);
        dst[whole.end..].copy_from_slice(&src.as_slice()[whole.end..]);
        // Offsets into src's mapping: page-aligned, as `d + head` is and src.off = d % page.
        let hole = src.off + whole.start..src.off + whole.end;
        // SAFETY: the source range is whole pages inside src's mapping (one kernel
        // mapping, ours); the destination range is whole pages inside `dst`, which the
        // caller vouches are private anonymous allocator memory that nobody else uses
        // now. The two do not overlap (src's mapping is not the allocator's).
        let moved = unsafe {
            libc::mremap(
                src.base().add(hole.start).cast(),
                whole.len(),
                whole.len(),
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                dst.as_mut_ptr().add(whole.start),
            )
        };
        if moved != libc::MAP_FAILED {
            src.unmap_around(hole);
            return Ok(Moved::Remapped);
        }
        // The source is intact (the kernel moves entries back on failure); the
        // destination may have a hole where the move started.
        // SAFETY: `whole` lies inside `dst`.
        refill(unsafe { dst.as_mut_ptr().add(whole.start) }, whole.len())?;
    }
    copy_releasing(src, dst, step);
    Ok(Moved::Copied)
}

/// Copies `src` into `dst` (the same length, checked by the caller) `step` bytes at a
/// time, releasing each copied step of `src` ([`release_pages`]) before the next; each
/// step of `dst` is faulted in with one system call first ([`prefault_pages`]).
fn copy_releasing(mut src: PageBuf, dst: &mut [u8], step: usize) {
    let page = page_size();
    let step = step.max(page) / page * page;
    let off = src.offset();
    let n = src.len();
    let mut done = 0;
    while done < n {
        // The page boundary of `src` at most `step` past `done` (always past `done`).
        let end = ((done + off + step) / page * page - off).min(n);
        // Best effort: without it, the copy faults the pages in one by one.
        let _ = prefault_pages(&mut dst[done..end]);
        dst[done..end].copy_from_slice(&src.as_slice()[done..end]);
        // Never read again: `src` is dropped below. A failure only leaves them resident.
        let _ = release_pages(&mut src.as_mut_slice()[done..end]);
        done = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 7 + seed) % 251) as u8).collect()
    }

    fn filled(off: usize, data: &[u8]) -> PageBuf {
        let mut buf = PageBuf::new(off, 1).unwrap();
        // Grown in several steps, as reads grow it.
        for chunk in data.chunks(100_003) {
            buf.extend_from_slice(chunk).unwrap();
        }
        assert_eq!(buf.as_slice(), data);
        buf
    }

    fn sizes() -> Vec<usize> {
        let page = page_size();
        vec![
            0,
            1,
            page - 1,
            page,
            page + 1,
            2 * page + 1,
            (8 << 20) + 12_345,
        ]
    }

    /// An allocation from the system allocator (glibc's malloc, as CPython's for large
    /// objects) with guard bytes around a slice of `len` bytes at `off` into a page.
    struct Target {
        mem: Vec<u8>,
        start: usize,
        len: usize,
    }

    impl Target {
        fn new(off: usize, len: usize) -> Self {
            let page = page_size();
            let mut mem = vec![0xEE_u8; len + 3 * page];
            let base = mem.as_ptr().addr();
            let start = (off + page - base % page) % page + page;
            mem[start..start + len].fill(0x11);
            Self { mem, start, len }
        }

        fn slice(&mut self) -> &mut [u8] {
            &mut self.mem[self.start..self.start + self.len]
        }

        fn check(&self, expected: &[u8]) {
            assert!(self.mem[self.start..self.start + self.len] == *expected);
            assert!(self.mem[..self.start].iter().all(|&b| b == 0xEE));
            assert!(self.mem[self.start + self.len..].iter().all(|&b| b == 0xEE));
        }
    }

    /// Which of the first `pages` pages of `buf`'s mapping are resident (`mincore`).
    fn resident(buf: &PageBuf, pages: usize) -> Vec<bool> {
        let mut vec = vec![0u8; pages];
        // SAFETY: mincore reads the page tables of [base, base + pages * page), which lies
        // inside the mapping, and writes one byte per page into `vec`.
        let ret =
            unsafe { libc::mincore(buf.base().cast(), pages * page_size(), vec.as_mut_ptr()) };
        assert_eq!(ret, 0);
        vec.iter().map(|b| b & 1 == 1).collect()
    }

    #[test]
    fn room_is_prefaulted_one_step_ahead_and_no_further() {
        let page = page_size();
        let mut buf = PageBuf::new(48, 8 * PREFAULT_STEP).unwrap();
        assert!(resident(&buf, 8 * PREFAULT_STEP / page).iter().all(|r| !r));
        buf.reserve(100).unwrap();
        let steps = resident(&buf, 8 * PREFAULT_STEP / page);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .split(['.', '-'])
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        let works = PREFAULT_WORKS.load(std::sync::atomic::Ordering::Relaxed);
        // MADV_POPULATE_WRITE came with Linux 5.14.
        assert!(works || version < (5, 14), "{release}");
        if works {
            // The page written to, not the rest of the (large) room.
            assert!(steps[0]);
            assert!(steps[1..].iter().all(|r| !r));
        }
        // Filling it across steps and growing it keep every byte.
        let data = pattern(20 * PREFAULT_STEP + 12345, 7);
        for chunk in data.chunks(65536 + 17) {
            buf.reserve(chunk.len()).unwrap();
            buf.spare_mut()[..chunk.len()].copy_from_slice(chunk);
            buf.commit(chunk.len());
        }
        assert_eq!(buf.as_slice(), &data[..]);
        assert!(buf.populated <= buf.map_len);
        // Touched ahead of the data: at most a quarter of it, and at most one step.
        let touched = resident(&buf, buf.map_len / page)
            .iter()
            .filter(|r| **r)
            .count()
            * page;
        let held = buf.off + buf.len;
        if works {
            assert!(touched >= held - page, "{touched} < {held}");
        }
        assert!(
            touched <= held + (held / 4).min(PREFAULT_STEP) + 2 * page,
            "{touched} vs {held}"
        );
    }

    #[test]
    fn remaps_whole_pages_when_offsets_match() {
        let page = page_size();
        for off in [0, 48, page - 1] {
            for len in sizes() {
                let data = pattern(len, off);
                let src = filled(off, &data);
                let mut target = Target::new(off, len);
                // SAFETY: the slice is malloc'd memory used by this thread alone.
                let how = unsafe { move_into(src, target.slice(), 1, 1 << 20) }.unwrap();
                let head = (page - off) % page;
                let expected = if len >= head + page {
                    Moved::Remapped
                } else {
                    Moved::Copied
                };
                assert_eq!(how, expected, "off {off}, len {len}");
                target.check(&data);
                // The allocator frees (glibc: unmaps, or reuses heap memory) the range
                // with moved pages inside; the next allocations are sound.
                drop(target);
                let again = pattern(len + 5, 3);
                assert_eq!(again.clone(), again);
            }
        }
    }

    #[test]
    fn copies_when_offsets_differ_or_below_min_pages() {
        let page = page_size();
        for len in sizes() {
            let data = pattern(len, 1);
            let mut target = Target::new(100, len);
            // SAFETY: as above.
            let how = unsafe { move_into(filled(48, &data), target.slice(), 1, page + 1) };
            assert_eq!(how.unwrap(), Moved::Copied);
            target.check(&data);

            let mut target = Target::new(48, len);
            // SAFETY: as above.
            let how = unsafe { move_into(filled(48, &data), target.slice(), usize::MAX, 4096) };
            assert_eq!(how.unwrap(), Moved::Copied);
            target.check(&data);
        }
    }

    #[test]
    fn heap_memory_survives_moved_pages() {
        // Small targets come from glibc's heap (brk), not from a mapping of their own:
        // the heap stays usable after pages inside it were replaced and it was freed.
        let page = page_size();
        let mut kept = Vec::new();
        for round in 0..50 {
            let len = 3 * page + round;
            let data = pattern(len, round);
            let mut target = Target::new(16, len);
            // SAFETY: as above.
            let how = unsafe { move_into(filled(16, &data), target.slice(), 1, 1 << 20) };
            assert_eq!(how.unwrap(), Moved::Remapped);
            target.check(&data);
            if round % 3 == 0 {
                kept.push(target);
            }
            let mut other = vec![round as u8; 5 * page];
            other[page] ^= 1;
            assert_eq!(other.iter().filter(|&&b| b != round as u8).count(), 1);
        }
        for (i, target) in kept.iter().enumerate() {
            let round = i * 3;
            target.check(&pattern(3 * page + round, round));
        }
    }

    #[test]
    fn refill_maps_a_hole_and_leaves_a_mapped_range_alone() {
        // In a child of its own: the hole made here must not be taken by a mapping of
        // another test's thread (which the buffer's drop would then unmap).
        // SAFETY: the child only runs the check below and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let page = page_size();
                let data = pattern(4 * page, 5);
                let mut buf = filled(0, &data);
                let base = buf.as_mut_slice().as_mut_ptr();
                // SAFETY: the second page of our own mapping, which nothing refers to.
                unsafe {
                    refill(base.add(page), page).unwrap(); // mapped: left as it is
                    assert_eq!(libc::munmap(base.add(page).cast(), page), 0);
                    refill(base.add(page), page).unwrap(); // a hole: mapped again
                }
                let got = buf.as_slice();
                assert!(got[..page] == data[..page] && got[2 * page..] == data[2 * page..]);
                assert!(got[page..2 * page].iter().all(|&b| b == 0));
            })
            .is_ok();
            // SAFETY: ends the forked child without running the parent's test harness.
            unsafe { libc::_exit(i32::from(!ok)) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    #[test]
    fn different_lengths_are_refused() {
        let mut dst = vec![0u8; 10];
        // SAFETY: as above.
        let err = unsafe { move_into(filled(0, b"abc"), &mut dst, 1, 4096) }.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn buffer_grows_in_place_of_copies() {
        let mut buf = PageBuf::new(48, 10).unwrap();
        assert_eq!(buf.offset(), 48);
        assert!(buf.is_empty());
        let data = pattern(5 << 20, 9);
        for chunk in data.chunks(65_536) {
            buf.reserve(chunk.len()).unwrap();
            let room = buf.spare_mut();
            assert!(room.len() >= chunk.len());
            room[..chunk.len()].copy_from_slice(chunk);
            buf.commit(chunk.len());
        }
        buf.commit(usize::MAX);
        assert_eq!(buf.len(), buf.capacity());
        assert!(buf.as_slice()[..data.len()] == *data);
        assert_eq!(
            buf.reserve(usize::MAX).unwrap_err().kind(),
            io::ErrorKind::OutOfMemory
        );
    }
}
