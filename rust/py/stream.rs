//! The buffer behind fastspawn's `StreamReader` (`StreamBuffer`), its line iterator
//! (`LineIter`), and `BytesBuilder`, which collects a read-to-EOF in one allocation.

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PySlice};

use super::process::ReadPipe;
use super::ready::ready;
use super::{bytes_buffer_mut, closed_pipe, os_error, uninit_bytes, SMALL_READ};
use crate::buffer::{move_releasing, ByteQueue};

/// The buffer of fastspawn's `StreamReader`: a byte queue that answers the subset of
/// `bytearray` that asyncio's own `StreamReader` methods use (`len`, `find`,
/// `startswith`, front slices, `del [:n]`, `clear`, `bytes()`), so those methods run on
/// it unchanged, plus the fast paths the subclass adds.
#[pyclass(module = "fastspawn._core")]
#[derive(Default)]
struct StreamBuffer(ByteQueue);

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
        self.0.len()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.as_slice())
    }

    fn __repr__(&self) -> String {
        format!("<fastspawn._core.StreamBuffer {} bytes>", self.0.len())
    }

    /// Equal to `bytes`/`bytearray` with the same content, as a `bytearray` would be.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Py<PyAny> {
        let equal = if let Ok(b) = other.cast::<PyBytes>() {
            Some(b.as_bytes() == self.0.as_slice())
        } else if let Ok(b) = other.cast::<PyByteArray>() {
            Some(b.to_vec() == self.0.as_slice())
        } else if let Ok(b) = other.cast::<StreamBuffer>() {
            Some(b.borrow().0.as_slice() == self.0.as_slice())
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
            self.0.extend(b.as_bytes());
            return Ok(());
        }
        if data.is_instance_of::<pyo3::types::PyInt>() {
            return Err(PyTypeError::new_err(format!(
                "can't extend bytearray with {}",
                data.get_type().name()?
            )));
        }
        let converted = PyByteArray::from(data)?;
        self.0.extend(&converted.to_vec());
        Ok(())
    }

    fn clear(&mut self) {
        self.0.clear();
        self.0.shrink_if_empty(KEEP_CAPACITY);
    }

    #[pyo3(signature = (sub, start=0))]
    fn find(&self, sub: &Bound<'_, PyAny>, start: isize) -> PyResult<isize> {
        let from = clamp_start(start, self.0.len());
        Ok(self
            .0
            .find(&bytes_arg(sub)?, from)
            .map_or(-1, |i| i as isize))
    }

    #[pyo3(signature = (prefix, start=0))]
    fn startswith(&self, prefix: &Bound<'_, PyAny>, start: isize) -> PyResult<bool> {
        let from = clamp_start(start, self.0.len());
        let prefix = bytes_arg(prefix)?;
        Ok(self
            .0
            .as_slice()
            .get(from..)
            .is_some_and(|rest| rest.starts_with(&prefix)))
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.0.as_slice();
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
        let ind = key.indices(self.0.len() as isize)?;
        if ind.slicelength == 0 {
            return Ok(());
        }
        if ind.start != 0 || ind.step != 1 {
            return Err(PyValueError::new_err(
                "StreamBuffer only deletes from the front",
            ));
        }
        self.0.consume(ind.slicelength);
        Ok(())
    }

    /// Reads from `pipe` straight into the buffer (no intermediate `bytes`): the count
    /// read, 0 at EOF, None when nothing was there.
    fn read_from(
        &mut self,
        mut pipe: PyRefMut<'_, ReadPipe>,
        max: usize,
    ) -> PyResult<Option<usize>> {
        let pipe = pipe.0.as_mut().ok_or_else(closed_pipe)?;
        self.0
            .append_with(|data| pipe.read_append(data, max))
            .map_err(|e| os_error(&e))
    }

    /// Removes and returns the first `n` bytes (fewer if fewer are buffered).
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let n = n.min(self.0.len());
        let out = PyBytes::new(py, &self.0.as_slice()[..n]);
        self.0.consume(n);
        out
    }

    /// If a whole line (ending in `\n`) of at most `limit + 1` bytes is buffered, takes
    /// it and returns an awaitable that yields it at once; else None.
    fn next_line<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(end) = self.0.find(b"\n", 0).map(|i| i + 1) else {
            return Ok(None);
        };
        if end > limit + 1 {
            return Ok(None);
        }
        let line = PyBytes::new(py, &self.0.as_slice()[..end]).into_any();
        self.0.consume(end);
        ready(py, line).map(Some)
    }

    /// Takes every whole line buffered (at least one, then up to about `max_bytes`),
    /// none longer than `limit + 1` bytes; stops before a longer one.
    fn take_lines<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
        max_bytes: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let ends = self.0.line_ends(b'\n', max_bytes);
        let data = self.0.as_slice();
        let mut lines = Vec::with_capacity(ends.len());
        let mut start = 0;
        for end in ends {
            if end - start > limit + 1 {
                break;
            }
            lines.push(PyBytes::new(py, &data[start..end]));
            start = end;
        }
        self.0.consume(start);
        PyList::new(py, lines)
    }
}

/// `async for` over a fastspawn `StreamReader`: the whole fast path — a buffered line
/// and no pending exception — runs here without entering Python code; anything else
/// (waiting for data, EOF, limits, errors) is the reader's own `readline()`.
#[pyclass(module = "fastspawn._core")]
struct LineIter {
    reader: Py<PyAny>,
    buffer: Py<StreamBuffer>,
    limit: usize,
}

#[pymethods]
impl LineIter {
    #[new]
    fn new(reader: Py<PyAny>, buffer: Py<StreamBuffer>, limit: usize) -> Self {
        Self {
            reader,
            buffer,
            limit,
        }
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let reader = self.reader.bind(py);
        if reader.getattr(pyo3::intern!(py, "_exception"))?.is_none() {
            let mut buffer = self.buffer.bind(py).borrow_mut();
            if let Some(ready) = buffer.next_line(py, self.limit)? {
                let left = buffer.0.len();
                drop(buffer);
                if left <= self.limit
                    && reader.getattr(pyo3::intern!(py, "_paused"))?.is_truthy()?
                {
                    reader.call_method0(pyo3::intern!(py, "_maybe_resume_transport"))?;
                }
                return Ok(ready);
            }
        }
        reader.call_method0(pyo3::intern!(py, "_anext_slow"))
    }
}

/// Collects one `bytes` object of unknown final size by appending.
///
/// The bytes grow in a Rust vector (reallocated geometrically; glibc moves a large
/// block with `mremap`, without copying). `finish` then moves them into the `bytes`
/// object a step at a time, releasing each step's pages of the vector as it goes, so
/// collecting N bytes peaks near N of memory (plus a step) rather than the 2N of a join.
#[pyclass(module = "fastspawn._core")]
#[derive(Default)]
struct BytesBuilder(Vec<u8>);

/// Bytes copied per step by `finish` (and released from the vector after each).
const FINISH_STEP: usize = 1 << 20;

#[pymethods]
impl BytesBuilder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn extend(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }

    /// Reads from `pipe` straight into the bytes being built: the count read, 0 at EOF,
    /// None when nothing was there.
    fn read_from(
        &mut self,
        mut pipe: PyRefMut<'_, ReadPipe>,
        max: usize,
    ) -> PyResult<Option<usize>> {
        let pipe = pipe.0.as_mut().ok_or_else(closed_pipe)?;
        let want = match pipe.ready_len(max).map_err(|e| os_error(&e))? {
            0 => max.min(SMALL_READ),
            n => n,
        };
        pipe.read_append(&mut self.0, want)
            .map_err(|e| os_error(&e))
    }

    /// Moves everything out of a stream buffer into this builder.
    fn extend_from(&mut self, mut buffer: PyRefMut<'_, StreamBuffer>) {
        let taken = std::mem::take(&mut buffer.0);
        if self.0.is_empty() {
            self.0 = taken.into_vec();
        } else {
            self.0.extend_from_slice(taken.as_slice());
        }
    }

    /// The bytes collected; the builder is left empty.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let collected = std::mem::take(&mut self.0);
        if collected.len() < FINISH_STEP {
            return Ok(PyBytes::new(py, &collected));
        }
        let bytes = match uninit_bytes(py, collected.len()) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.0 = collected;
                return Err(e);
            }
        };
        // SAFETY: `bytes` was just created and is not yet visible to Python code.
        move_releasing(collected, unsafe { bytes_buffer_mut(&bytes) }, FINISH_STEP);
        Ok(bytes)
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamBuffer>()?;
    m.add_class::<LineIter>()?;
    m.add_class::<BytesBuilder>()?;
    Ok(())
}
