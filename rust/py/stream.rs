//! The buffer behind fastspawn's `StreamReader` (`StreamBuffer`), its line iterator
//! (`LineIter`), and `BytesBuilder`, which collects a read-to-EOF in one allocation.

use std::ffi::{c_int, c_void};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyIndexError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyList, PySlice};

use super::errors::{closed_pipe, CoreResult};
use super::process::PyReadPipe;
use super::ready::ready;
use super::{bytes_buffer_mut, uninit_bytes, SMALL_READ};
use crate::buffer::ByteQueue;
use crate::pages::{malloc_is_glibc, move_into, remap_allowed, PageBuf};
use crate::sys::page_size;

/// The buffer of fastspawn's `StreamReader`: a byte queue that answers the subset of
/// `bytearray` that asyncio's own `StreamReader` methods use (`len`, `find`,
/// `startswith`, front slices, `del [:n]`, `clear`, `bytes()`, 3.15's `take_bytes`, and
/// the read-only buffer protocol: `memoryview`, what 3.14+ `start_tls` hands to
/// `ssl.MemoryBIO.write`), so those methods run on it unchanged, plus the fast paths
/// the subclass adds.
///
/// While a buffer view is exported, anything that would move or shrink the bytes
/// raises `BufferError`, as `bytearray` does.
#[pyclass(module = "fastspawn._core")]
#[derive(Default)]
pub(crate) struct StreamBuffer {
    queue: ByteQueue,
    /// Views exported and not yet released. Shared with each view (through its
    /// `internal` pointer) so that releasing one needs no borrow of the buffer: a view
    /// may be released while the buffer is borrowed, when the garbage collector runs
    /// during one of its methods or by another thread, and must not fail then.
    exports: Arc<AtomicUsize>,
    /// The reader has an exception set: every line goes through the reader's slow path.
    #[pyo3(get, set)]
    blocked: bool,
    /// The reader has paused its transport (resumed once the buffer drains to `limit`).
    #[pyo3(get, set)]
    paused: bool,
}

impl StreamBuffer {
    /// The queue, for an operation that moves or resizes its bytes: refused while a
    /// buffer view of them is exported (its pointer would dangle), as `bytearray` does.
    fn resizable(&mut self) -> PyResult<&mut ByteQueue> {
        if self.exports.load(Ordering::Acquire) == 0 {
            Ok(&mut self.queue)
        } else {
            Err(PyBufferError::new_err(
                "Existing exports of data: object cannot be re-sized",
            ))
        }
    }

    /// Takes a whole line (ending in `\n`) of at most `limit + 1` bytes, if buffered.
    fn take_line<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(end) = self.queue.find(b"\n", 0).map(|i| i + 1) else {
            return Ok(None);
        };
        if end > limit.saturating_add(1) {
            return Ok(None);
        }
        let queue = self.resizable()?;
        let line = PyBytes::new(py, &queue.as_slice()[..end]);
        queue.consume(end);
        Ok(Some(line))
    }
}

/// Python's rule for a possibly negative start index.
fn clamp_start(start: isize, len: usize) -> usize {
    if start < 0 {
        len.saturating_sub(start.unsigned_abs())
    } else {
        start as usize
    }
}

/// The bytes of a `bytearray.find`-style argument: any bytes-like object, or an int
/// (one byte). Borrowed for `bytes`, the common case.
fn bytes_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(std::borrow::Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(std::borrow::Cow::Owned(b.to_vec()));
    }
    if let Ok(i) = obj.extract::<i64>() {
        let byte =
            u8::try_from(i).map_err(|_| PyValueError::new_err("byte must be in range(0, 256)"))?;
        return Ok(std::borrow::Cow::Owned(vec![byte]));
    }
    // Anything else with the buffer protocol (memoryview, array, ...).
    let py = obj.py();
    match py.import("builtins")?.getattr("memoryview")?.call1((obj,)) {
        Ok(view) => Ok(std::borrow::Cow::Owned(
            view.call_method0("tobytes")?.extract::<Vec<u8>>()?,
        )),
        Err(_) => Err(PyTypeError::new_err(format!(
            "argument should be integer or bytes-like object, not '{}'",
            obj.get_type().name()?
        ))),
    }
}

/// Bytes kept allocated by an empty buffer; a larger one is released.
const KEEP_CAPACITY: usize = 1 << 20;

#[pymethods]
impl StreamBuffer {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn __len__(&self) -> usize {
        self.queue.len()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.queue.as_slice())
    }

    fn __repr__(&self) -> String {
        format!("<fastspawn._core.StreamBuffer {} bytes>", self.queue.len())
    }

    /// A read-only view of the buffered bytes (`memoryview(buf)`, `bytes(buf)`, any C
    /// consumer of the buffer protocol).
    ///
    /// # Safety
    /// Called by the interpreter with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: &Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.try_borrow()?;
        let data = this.queue.as_slice();
        // A Vec's length never exceeds isize::MAX.
        let len = ffi::Py_ssize_t::try_from(data.len()).map_err(|_| PyBufferError::new_err(()))?;
        // SAFETY: `view` is valid (our caller's promise). The bytes stay in place while
        // the view lives: `obj` keeps the buffer alive, and every operation that would
        // move or resize them goes through `resizable`, which refuses while `exports`
        // counts this view. FillInfo refuses a writable request (read-only view).
        if unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                data.as_ptr().cast_mut().cast::<c_void>(),
                len,
                1,
                flags,
            )
        } != 0
        {
            return Err(PyErr::fetch(slf.py()));
        }
        this.exports.fetch_add(1, Ordering::Relaxed);
        // SAFETY: FillInfo succeeded, so `view` is filled and `internal` is ours; it
        // holds one reference to the counter until __releasebuffer__ takes it back.
        unsafe { (*view).internal = Arc::into_raw(Arc::clone(&this.exports)).cast_mut().cast() };
        Ok(())
    }

    /// # Safety
    /// Called by the interpreter, once, with a view that __getbuffer__ filled.
    unsafe fn __releasebuffer__(_slf: &Bound<'_, Self>, view: *mut ffi::Py_buffer) {
        // SAFETY: `internal` is the counter reference __getbuffer__ stored in this view,
        // taken back exactly once (the interpreter releases each view once).
        let exports = unsafe { Arc::from_raw((*view).internal.cast_const().cast::<AtomicUsize>()) };
        exports.fetch_sub(1, Ordering::Release);
    }

    /// Equal to `bytes`/`bytearray` with the same content, as a `bytearray` would be.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Py<PyAny> {
        let equal = if let Ok(b) = other.cast::<PyBytes>() {
            Some(b.as_bytes() == self.queue.as_slice())
        } else if let Ok(b) = other.cast::<PyByteArray>() {
            Some(b.to_vec() == self.queue.as_slice())
        } else if let Ok(b) = other.cast::<StreamBuffer>() {
            Some(b.borrow().queue.as_slice() == self.queue.as_slice())
        } else {
            None
        };
        match equal {
            Some(eq) => eq.into_pyobject(py).map_or_else(
                |_| py.NotImplemented(),
                |b| b.to_owned().into_any().unbind(),
            ),
            None => py.NotImplemented(),
        }
    }

    /// As `bytearray.extend`: a bytes-like object or an iterable of ints.
    fn extend(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(b) = data.cast::<PyBytes>() {
            if !b.as_bytes().is_empty() {
                self.resizable()?.extend(b.as_bytes());
            }
            return Ok(());
        }
        if data.is_instance_of::<pyo3::types::PyInt>() {
            return Err(PyTypeError::new_err(format!(
                "can't extend bytearray with {}",
                data.get_type().name()?
            )));
        }
        let converted = PyByteArray::from(data)?.to_vec();
        if !converted.is_empty() {
            self.resizable()?.extend(&converted);
        }
        Ok(())
    }

    fn clear(&mut self) -> PyResult<()> {
        if !self.queue.is_empty() {
            self.resizable()?.clear();
        }
        self.queue.shrink_if_empty(KEEP_CAPACITY);
        Ok(())
    }

    #[pyo3(signature = (sub, start=0))]
    fn find(&self, sub: &Bound<'_, PyAny>, start: isize) -> PyResult<isize> {
        let from = clamp_start(start, self.queue.len());
        Ok(self
            .queue
            .find(&bytes_arg(sub)?, from)
            .map_or(-1, |i| i as isize))
    }

    #[pyo3(signature = (prefix, start=0))]
    fn startswith(&self, prefix: &Bound<'_, PyAny>, start: isize) -> PyResult<bool> {
        let from = clamp_start(start, self.queue.len());
        let prefix = bytes_arg(prefix)?;
        Ok(self
            .queue
            .as_slice()
            .get(from..)
            .is_some_and(|rest| rest.starts_with(&prefix)))
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.queue.as_slice();
        if let Ok(slice) = key.cast::<PySlice>() {
            let ind = slice.indices(data.len() as isize)?;
            if ind.step != 1 {
                let picked: Vec<u8> = (0..ind.slicelength)
                    .map(|i| data[(ind.start + i as isize * ind.step) as usize])
                    .collect();
                return Ok(PyBytes::new(py, &picked).into_any());
            }
            let start = ind.start as usize;
            return Ok(PyBytes::new(py, &data[start..start + ind.slicelength]).into_any());
        }
        let index: isize = key.extract()?;
        let at = if index < 0 {
            index + data.len() as isize
        } else {
            index
        };
        let byte = usize::try_from(at)
            .ok()
            .and_then(|i| data.get(i))
            .ok_or_else(|| PyIndexError::new_err("bytearray index out of range"))?;
        Ok(byte.into_pyobject(py)?.into_any())
    }

    /// Only deleting from the front (`del buf[:n]`) is supported: it is all a stream
    /// reader does.
    fn __delitem__(&mut self, key: &Bound<'_, PySlice>) -> PyResult<()> {
        let ind = key.indices(self.queue.len() as isize)?;
        if ind.slicelength == 0 {
            return Ok(());
        }
        if ind.start != 0 || ind.step != 1 {
            return Err(PyValueError::new_err(
                "StreamBuffer only deletes from the front",
            ));
        }
        self.resizable()?.consume(ind.slicelength);
        Ok(())
    }

    /// Reads from `pipe` straight into the buffer (no intermediate `bytes`): the count
    /// read, 0 at EOF, None when nothing was there.
    ///
    /// Room is reserved for what the pipe holds (`FIONREAD`, at most `max`), not for
    /// `max`: the buffer keeps its capacity while the reader lives, and most readers
    /// only ever get a few bytes. When the pipe holds nothing (EOF, or a spurious
    /// wake-up), a stack buffer takes whatever arrived meanwhile.
    fn read_from(
        &mut self,
        mut pipe: PyRefMut<'_, PyReadPipe>,
        max: usize,
    ) -> CoreResult<Option<usize>> {
        let pipe = pipe.0.as_mut().ok_or_else(closed_pipe)?;
        // Refused before reading: nothing read may be dropped.
        let queue = self.resizable()?;
        let ready = pipe.ready_len(max)?;
        if ready > 0 {
            return Ok(queue.append_with(|data| pipe.read_append(data, ready))?);
        }
        let mut buf = [0u8; SMALL_READ];
        let got = pipe.read(&mut buf[..max.min(SMALL_READ)])?;
        if let Some(n @ 1..) = got {
            queue.extend(&buf[..n]);
        }
        Ok(got)
    }

    /// Removes and returns the first `n` bytes (fewer if fewer are buffered).
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let n = n.min(self.queue.len());
        if n == 0 {
            return Ok(PyBytes::new(py, b""));
        }
        let queue = self.resizable()?;
        let out = PyBytes::new(py, &queue.as_slice()[..n]);
        queue.consume(n);
        Ok(out)
    }

    /// `bytearray.take_bytes` (3.15), which 3.15's `StreamReader` calls: removes and
    /// returns the first `n` bytes, all of them for None; a negative `n` counts from the
    /// end. The same errors as `bytearray`'s, in the same order.
    #[pyo3(signature = (n=None, /))]
    fn take_bytes<'py>(
        &mut self,
        py: Python<'py>,
        n: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let size = self.queue.len() as isize;
        let mut to_take = match n {
            None => size,
            Some(n) => index_value(n)?,
        };
        if to_take < 0 {
            to_take += size;
        }
        if to_take < 0 || to_take > size {
            return Err(PyIndexError::new_err(format!(
                "can't take {to_take} bytes outside size {size}"
            )));
        }
        let queue = self.resizable()?;
        let n = to_take as usize;
        let out = PyBytes::new(py, &queue.as_slice()[..n]);
        queue.consume(n);
        Ok(out)
    }

    /// If a whole line (ending in `\n`) of at most `limit + 1` bytes is buffered, takes
    /// it and returns an awaitable that yields it at once; else None.
    fn next_line<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.take_line(py, limit)? {
            Some(line) => ready(py, line.as_any()).map(Some),
            None => Ok(None),
        }
    }

    /// Takes every whole line buffered (at least one, then up to about `max_bytes`),
    /// none longer than `limit + 1` bytes; stops before a longer one.
    fn take_lines<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
        max_bytes: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let ends = self.queue.line_ends(b'\n', max_bytes);
        let data = self.queue.as_slice();
        let mut lines = Vec::with_capacity(ends.len());
        let mut start = 0;
        for end in ends {
            if end - start > limit.saturating_add(1) {
                break;
            }
            lines.push(PyBytes::new(py, &data[start..end]));
            start = end;
        }
        if start > 0 {
            self.resizable()?.consume(start);
        }
        PyList::new(py, lines)
    }
}

/// The value of an integer-like `n` (anything with `__index__`), as `bytearray` reads
/// an index: `TypeError` for anything else, `IndexError` past `Py_ssize_t`.
fn index_value(n: &Bound<'_, PyAny>) -> PyResult<isize> {
    // SAFETY: `n` is a live object and we are attached to the interpreter.
    if unsafe { ffi::PyIndex_Check(n.as_ptr()) } == 0 {
        return Err(PyTypeError::new_err("n must be an integer or None"));
    }
    // SAFETY: as above; the result is -1 with an exception set on failure.
    let value = unsafe { ffi::PyNumber_AsSsize_t(n.as_ptr(), ffi::PyExc_IndexError) };
    if value == -1 {
        if let Some(err) = PyErr::take(n.py()) {
            return Err(err);
        }
    }
    Ok(value)
}

/// `async for` over a fastspawn `StreamReader`: the whole fast path — a buffered line
/// and no pending exception — runs here without entering Python code; anything else
/// (waiting for data, EOF, limits, errors) is the reader's `slow()` (its `readline()`).
///
/// What it needs of the reader crosses as plain state on the buffer (`blocked`,
/// `paused`, kept by the reader) and two callables, so no private name of the reader
/// is spelled here.
#[pyclass(module = "fastspawn._core")]
pub(crate) struct LineIter {
    buffer: Py<StreamBuffer>,
    limit: usize,
    /// Awaitable for the next line the slow way (`StopAsyncIteration` at EOF).
    slow: Py<PyAny>,
    /// Resumes the reader's paused transport.
    resume: Py<PyAny>,
}

#[pymethods]
impl LineIter {
    #[new]
    fn new(buffer: Py<StreamBuffer>, limit: usize, slow: Py<PyAny>, resume: Py<PyAny>) -> Self {
        Self {
            buffer,
            limit,
            slow,
            resume,
        }
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut buffer = self.buffer.bind(py).try_borrow_mut()?;
        if !buffer.blocked {
            if let Some(line) = buffer.take_line(py, self.limit)? {
                let resume = buffer.paused && buffer.queue.len() <= self.limit;
                drop(buffer);
                if resume {
                    self.resume.bind(py).call0()?;
                }
                return ready(py, line.as_any());
            }
        }
        drop(buffer);
        self.slow.bind(py).call0()
    }
}

/// Collects one `bytes` object of unknown final size by appending.
///
/// Up to [`PAGES_FROM`] bytes grow in a Rust vector and `finish` copies them. Past that
/// they move to a [`PageBuf`] (an anonymous mapping grown by `mremap`, no copies) whose
/// bytes start at the offset into a page where CPython's allocator puts a large `bytes`
/// object's data ([`large_bytes_offset`]). `finish` then moves its whole pages onto the
/// new `bytes` object ([`move_into`]: no copy, no page faults) and copies the partial
/// first and last pages; where it cannot (another offset, another allocator, a failed
/// move) it copies a step at a time, releasing each step's pages as it goes. Either way
/// collecting N bytes peaks near N of memory (plus a step), not the 2N of a join.
#[pyclass(module = "fastspawn._core")]
#[derive(Default)]
pub(crate) struct BytesBuilder(Collected);

#[derive(Debug)]
enum Collected {
    Heap(Vec<u8>),
    Pages(PageBuf),
}

impl Default for Collected {
    fn default() -> Self {
        Self::Heap(Vec::new())
    }
}

/// Bytes copied per step by `finish` (and released from the source after each).
const FINISH_STEP: usize = 1 << 20;
/// Bytes collected in a vector; more go to a [`PageBuf`]. Below glibc's initial mmap
/// threshold (128 KiB), where the vector lives in the heap: a vector that grew into a
/// chunk of its own would, when freed, raise glibc's threshold to its size (glibc's
/// dynamic threshold, up to 32 MiB), and the output's `bytes` object would come from
/// the heap, at an offset that does not match, and be copied.
const PAGES_FROM: usize = 1 << 16;
/// Room a [`PageBuf`] starts with (address space: pages cost memory once written).
const PAGES_START: usize = 8 << 20;
/// Whole pages a `finish` moves rather than copies, at least (the move's system call
/// and its split of the destination mapping pay off long before this).
const MOVE_MIN_PAGES: usize = 16;
/// Size of the probe object [`large_bytes_offset`] allocates: above glibc's largest
/// mmap threshold (32 MiB on 64-bit), so it is a chunk of its own, as large outputs are.
const PROBE_SIZE: usize = 64 << 20;

/// Where CPython's allocator puts the data of a large `bytes` object, as an offset into
/// a page (with glibc: 16 bytes of chunk header and the 32 of the object's), learnt
/// once from a probe object. Nothing depends on it being right: a `finish` that finds
/// another offset copies.
fn large_bytes_offset(py: Python<'_>) -> usize {
    static OFFSET: PyOnceLock<usize> = PyOnceLock::new();
    *OFFSET.get_or_init(py, || {
        // Its pages are never touched but the first and the last (header, NUL).
        uninit_bytes(py, PROBE_SIZE).map_or(0, |probe| {
            // SAFETY: `probe` is a live bytes object; only the address is used.
            let data = unsafe { ffi::PyBytes_AsString(probe.as_ptr()) };
            data.addr() % page_size()
        })
    })
}

/// Whether `finish` may move pages onto a `bytes` object here, decided once at import
/// ([`decide_page_moves`]); false until then.
static PAGES_MAY_MOVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Decides, at import, whether `finish` may move pages onto a `bytes` object: only when
/// the allocator behind large objects is glibc's `malloc` (CPython's default; not a
/// preloaded one, nor 3.13+'s `PYTHONMALLOC=mimalloc`, nor the mimalloc of every object
/// in a free-threaded build, which an abi3t wheel can only tell at run time from
/// `sys.abiflags`), and the kernel may move them ([`remap_allowed`]). `PYTHONMALLOC` is
/// read here, before any thread could change the environment.
pub(crate) fn decide_page_moves(py: Python<'_>) -> bool {
    *PAGES_MAY_MOVE.get_or_init(|| {
        let mimalloc = std::env::var_os("PYTHONMALLOC")
            .is_some_and(|v| v.to_string_lossy().contains("mimalloc"));
        let free_threaded = cfg!(Py_GIL_DISABLED)
            || py
                .import("sys")
                .and_then(|sys| sys.getattr("abiflags")?.extract::<String>())
                .map_or(true, |flags| flags.contains('t'));
        !mimalloc && !free_threaded && malloc_is_glibc() && remap_allowed()
    })
}

impl BytesBuilder {
    /// The page buffer to append `more` bytes to, once the bytes outgrow the vector.
    fn pages_for(&mut self, py: Python<'_>, more: usize) -> io::Result<Option<&mut PageBuf>> {
        if let Collected::Heap(vec) = &self.0 {
            if vec.len().saturating_add(more) <= PAGES_FROM {
                return Ok(None);
            }
            let capacity = PAGES_START.max(vec.len().saturating_add(more));
            let mut pages = PageBuf::new(large_bytes_offset(py), capacity)?;
            pages.extend_from_slice(vec)?;
            self.0 = Collected::Pages(pages);
        }
        match &mut self.0 {
            Collected::Pages(pages) => Ok(Some(pages)),
            Collected::Heap(_) => Ok(None),
        }
    }

    fn append(&mut self, py: Python<'_>, data: &[u8]) -> io::Result<()> {
        match self.pages_for(py, data.len())? {
            Some(pages) => pages.extend_from_slice(data),
            None => match &mut self.0 {
                Collected::Heap(vec) => {
                    vec.try_reserve(data.len())
                        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
                    vec.extend_from_slice(data);
                    Ok(())
                }
                Collected::Pages(pages) => pages.extend_from_slice(data),
            },
        }
    }
}

#[pymethods]
impl BytesBuilder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn __len__(&self) -> usize {
        match &self.0 {
            Collected::Heap(vec) => vec.len(),
            Collected::Pages(pages) => pages.len(),
        }
    }

    fn extend(&mut self, py: Python<'_>, data: &[u8]) -> CoreResult<()> {
        Ok(self.append(py, data)?)
    }

    /// Reads from `pipe` straight into the bytes being built: the count read, 0 at EOF,
    /// None when nothing was there.
    fn read_from(
        &mut self,
        py: Python<'_>,
        mut pipe: PyRefMut<'_, PyReadPipe>,
        max: usize,
    ) -> CoreResult<Option<usize>> {
        let pipe = pipe.0.as_mut().ok_or_else(closed_pipe)?;
        let want = match pipe.ready_len(max)? {
            0 => max.min(SMALL_READ),
            n => n,
        };
        if let Some(pages) = self.pages_for(py, want)? {
            pages.reserve(want)?;
            let got = pipe.read(&mut pages.spare_mut()[..want])?;
            if let Some(n) = got {
                pages.commit(n);
            }
            return Ok(got);
        }
        match &mut self.0 {
            Collected::Heap(vec) => Ok(pipe.read_append(vec, want)?),
            Collected::Pages(_) => Ok(None),
        }
    }

    /// Moves everything out of a stream buffer into this builder.
    fn extend_from(
        &mut self,
        py: Python<'_>,
        mut buffer: PyRefMut<'_, StreamBuffer>,
    ) -> CoreResult<()> {
        if buffer.queue.is_empty() {
            return Ok(());
        }
        let taken = std::mem::take(buffer.resizable()?);
        if let Collected::Heap(vec) = &mut self.0 {
            if vec.is_empty() && taken.len() <= PAGES_FROM {
                *vec = taken.into_vec();
                return Ok(());
            }
        }
        Ok(self.append(py, taken.as_slice())?)
    }

    /// The bytes collected; the builder is left empty.
    fn finish<'py>(&mut self, py: Python<'py>) -> CoreResult<Bound<'py, PyBytes>> {
        let pages = match std::mem::take(&mut self.0) {
            Collected::Heap(vec) => return Ok(PyBytes::new(py, &vec)),
            Collected::Pages(pages) => pages,
        };
        let bytes = match uninit_bytes(py, pages.len()) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.0 = Collected::Pages(pages);
                return Err(e.into());
            }
        };
        let min_pages = if PAGES_MAY_MOVE.get() == Some(&true) {
            MOVE_MIN_PAGES
        } else {
            usize::MAX
        };
        // SAFETY: `bytes` was just created and is visible to no Python code or other
        // thread. Its data is glibc malloc's private anonymous memory when pages may
        // move at all (`decide_page_moves`), and the object's header, glibc's chunk
        // header and everything after the data (the NUL, the next chunk) lie outside
        // the data's whole pages, the only ones replaced.
        match unsafe { move_into(pages, bytes_buffer_mut(&bytes), min_pages, FINISH_STEP) } {
            Ok(_) => Ok(bytes),
            Err(e) => {
                // Part of its data is unmapped: never read or free it (a leak).
                std::mem::forget(bytes);
                Err(e.into())
            }
        }
    }
}
