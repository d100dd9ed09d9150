//! Gives this crate PyO3's view of the target Python as cfgs (`Py_3_11`..,
//! `Py_LIMITED_API`, `Py_GIL_DISABLED`), so code that depends on the ABI — the
//! hand-built `Ready` type needs a known `PyObject` layout and the GIL — is compiled
//! only where it is valid. Without the `python` feature there is nothing to configure.

fn main() {
    #[cfg(feature = "python")]
    pyo3_build_config::use_pyo3_cfgs();
}
