//! `CGroup`: a child's leaf cgroup v2 (`rust/cgroup.rs`), as `Child.cgroup` hands it out.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::errors::CoreResult;
use crate::cgroup::CGroup;

/// The leaf cgroup a child was spawned into; removed on drop if empty.
#[pyclass(module = "fastspawn._core", name = "CGroup")]
pub(crate) struct PyCGroup(CGroup);

impl PyCGroup {
    pub(crate) fn new(group: CGroup) -> Self {
        Self(group)
    }
}

#[pymethods]
impl PyCGroup {
    /// The leaf's path (`os.fsdecode` of its bytes).
    #[getter]
    fn path<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = PyBytes::new(py, self.0.path().as_os_str().as_bytes());
        py.import("os")?.call_method1("fsdecode", (bytes,))
    }

    #[getter]
    fn removed(&self) -> bool {
        self.0.removed()
    }

    fn pids(&self) -> CoreResult<Vec<i32>> {
        Ok(self.0.pids()?)
    }

    fn populated(&self) -> CoreResult<bool> {
        Ok(self.0.populated()?)
    }

    /// Releases the GIL: without `cgroup.kill` it waits for the freeze.
    fn kill(&self, py: Python<'_>) -> CoreResult<Vec<i32>> {
        let group = &self.0;
        Ok(py.detach(|| group.kill())?)
    }

    /// Releases the GIL while it waits for the freeze.
    #[pyo3(signature = (signal, skip=Vec::new()))]
    // PyO3 extracts a sequence argument as an owned Vec.
    #[allow(clippy::needless_pass_by_value)]
    fn signal(&self, py: Python<'_>, signal: i32, skip: Vec<i32>) -> CoreResult<Vec<i32>> {
        let group = &self.0;
        Ok(py.detach(|| group.signal(signal, &skip))?)
    }

    fn remove(&mut self) -> CoreResult<bool> {
        Ok(self.0.remove()?)
    }

    fn __repr__(&self) -> String {
        format!(
            "<fastspawn._core.CGroup path='{}'{}>",
            self.0.path().display(),
            if self.0.removed() { " removed" } else { "" }
        )
    }
}
