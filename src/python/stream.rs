//! `_core.ChatStream`: a streamed completion, iterable both ways (`for` with the GIL released
//! while waiting, `async for` as awaitables). Chunks arrive as plain dicts. Dropping or closing
//! the stream closes the upstream connection.

use std::sync::Arc;

use futures_util::StreamExt;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::Mutex;

use super::convert::{Pythonized, to_py};
use super::errors::gateway_error;
use super::gateway::served_by_dict;
use super::runtime;
use crate::gateway::ServedBy;
use crate::providers::ChunkStream;

#[pyclass(name = "ChatStream", module = "ferrogate._core", frozen)]
pub struct PyChatStream {
    inner: Arc<Mutex<Option<ChunkStream>>>,
    meta: ServedBy,
}

impl PyChatStream {
    pub fn new(stream: ChunkStream, meta: ServedBy) -> Self {
        PyChatStream {
            inner: Arc::new(Mutex::new(Some(stream))),
            meta,
        }
    }
}

#[pymethods]
impl PyChatStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let inner = self.inner.clone();
        let next = py.detach(|| {
            runtime().block_on(async move {
                let mut guard = inner.lock().await;
                let stream = guard.as_mut()?;
                let item = stream.next().await;
                if item.is_none() {
                    *guard = None;
                }
                item
            })
        });
        match next {
            None => Ok(None),
            Some(Ok(chunk)) => to_py(py, &chunk).map(Some),
            Some(Err(e)) => Err(gateway_error(py, e)),
        }
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        runtime();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut guard = inner.lock().await;
            let item = match guard.as_mut() {
                Some(stream) => stream.next().await,
                None => None,
            };
            match item {
                Some(Ok(chunk)) => Ok(Pythonized(chunk)),
                Some(Err(e)) => {
                    *guard = None;
                    Err(Python::attach(|py| gateway_error(py, e)))
                }
                None => {
                    *guard = None;
                    Err(PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }

    /// Stops the stream and closes the upstream connection.
    fn close(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.detach(|| runtime().block_on(async move { inner.lock().await.take() }));
    }

    fn served_by<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        served_by_dict(py, &self.meta, None)
    }
}
