//! Engine errors as the facade's typed exceptions (`ferrogate.errors`), built by its
//! `_from_core` factory so the class hierarchy lives in Python, next to its documentation.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::config::ConfigError;
use crate::error::GatewayError;

static FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CONFIG_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn errors_attr(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Py<PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("ferrogate.errors")?.getattr(name)?.unbind())
    })
    .map(|o| o.clone_ref(py))
}

pub fn gateway_error(py: Python<'_>, err: GatewayError) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let factory = errors_attr(py, &FACTORY, "_from_core")?;
        let kw = PyDict::new(py);
        kw.set_item("kind", err.kind.as_str())?;
        kw.set_item("status_code", err.status)?;
        kw.set_item("message", &err.message)?;
        kw.set_item("provider", err.provider.as_deref())?;
        kw.set_item("code", err.code.as_deref())?;
        kw.set_item("param", err.param.as_deref())?;
        kw.set_item("retry_after", err.retry_after.map(|d| d.as_secs_f64()))?;
        kw.set_item("body", super::convert::to_py(py, &err.to_openai_json())?)?;
        let exc = factory.bind(py).call((), Some(&kw))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

pub fn config_error(py: Python<'_>, err: ConfigError) -> PyErr {
    match errors_attr(py, &CONFIG_ERROR, "ConfigError")
        .and_then(|cls| cls.bind(py).call1((err.0.clone(),)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => pyo3::exceptions::PyValueError::new_err(err.0),
    }
}
