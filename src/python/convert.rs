//! Crossing the boundary: Python objects into engine types (with the path of a bad field in the
//! error), engine values into plain Python data.

use std::time::Duration;

use pyo3::IntoPyObject;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pythonize::{Depythonizer, pythonize};
use serde::Serialize;

use super::errors::gateway_error;
use crate::error::from_path_error;
use crate::gateway::RequestOptions;
use crate::providers::credentials::Credential;
use crate::secret::Secret;

/// Reads a request body (a dict, possibly nested with dict subclasses) into an engine type. A bad
/// field raises `BadRequestError` naming it, as the server's 400 would.
pub fn request_from_py<T: for<'de> serde::Deserialize<'de>>(obj: &Bound<'_, PyAny>) -> PyResult<T> {
    let mut de = Depythonizer::from_object(obj);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| gateway_error(obj.py(), from_path_error(e)))
}

/// Per-call options from the facade: `api_key`, `api_base`, `timeout` (seconds), `extra_headers`.
pub fn options_from_py(options: Option<&Bound<'_, PyDict>>) -> PyResult<RequestOptions> {
    let mut opts = RequestOptions::default();
    let Some(d) = options else {
        return Ok(opts);
    };
    if let Some(v) = d.get_item("api_key")?.filter(|v| !v.is_none()) {
        opts.credential = Some(Credential::ApiKey(Secret::new(v.extract::<String>()?)));
    }
    if let Some(v) = d.get_item("api_base")?.filter(|v| !v.is_none()) {
        opts.api_base = Some(v.extract::<String>()?);
    }
    if let Some(v) = d.get_item("timeout")?.filter(|v| !v.is_none()) {
        let secs: f64 = v.extract()?;
        if !secs.is_finite() || secs <= 0.0 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "timeout must be a positive number of seconds, got {secs}"
            )));
        }
        opts.timeout = Some(Duration::from_secs_f64(secs));
    }
    if let Some(v) = d.get_item("metadata")?.filter(|v| !v.is_none()) {
        let value: serde_json::Value = pythonize::depythonize(&v).map_err(|e| {
            pyo3::exceptions::PyTypeError::new_err(format!("metadata must be plain data: {e}"))
        })?;
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(tags)) = map.get("tags") {
                    opts.tags = tags
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect();
                }
                opts.metadata = map;
            }
            _ => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "metadata must be a dict",
                ));
            }
        }
    }
    if let Some(v) = d.get_item("request_id")?.filter(|v| !v.is_none()) {
        opts.request_id = Some(v.extract::<String>()?);
    }
    if let Some(v) = d.get_item("extra_headers")?.filter(|v| !v.is_none()) {
        let headers = v.cast::<PyDict>()?;
        for (k, v) in headers.iter() {
            opts.extra_headers.push((k.extract()?, v.extract()?));
        }
    }
    Ok(opts)
}

/// A value that becomes plain Python data (dicts, lists, str, int, float, None) when returned.
pub struct Pythonized<T>(pub T);

impl<'py, T: Serialize> IntoPyObject<'py> for Pythonized<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.0)
    }
}

pub fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize(py, value).map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("cannot convert response: {e}"))
    })
}
