//! `_core.Gateway`: the engine, callable from Python. `completion` / `embedding` block (with the
//! GIL released); `acompletion` / `aembedding` return awaitables; `*_stream` return a
//! [`PyChatStream`].

use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::convert::{Pythonized, options_from_py, request_from_py, to_py};
use super::errors::{config_error, gateway_error};
use super::runtime;
use super::stream::PyChatStream;
use crate::config::Config;
use crate::gateway::{Gateway, ServedBy};
use crate::schema::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse};

#[pyclass(name = "Gateway", module = "ferrogate._core", frozen)]
pub struct PyGateway {
    pub(crate) inner: Gateway,
}

/// A config given as None (defaults + environment), a path to a JSON/YAML file, or a dict.
fn config_from_py(py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Config> {
    let Some(obj) = config.filter(|o| !o.is_none()) else {
        return Ok(Config::default());
    };
    if obj.is_instance_of::<PyDict>() {
        let value: serde_json::Value = pythonize::depythonize(obj).map_err(|e| {
            config_error(
                py,
                crate::config::ConfigError(format!("config is not plain data: {e}")),
            )
        })?;
        return Config::from_value(value).map_err(|e| config_error(py, e));
    }
    let path = if obj.is_instance_of::<PyString>() {
        obj.extract::<String>()?
    } else {
        // os.PathLike
        py.import("os")?
            .call_method1("fspath", (obj,))?
            .extract::<String>()?
    };
    Config::from_file(&path).map_err(|e| config_error(py, e))
}

#[pymethods]
impl PyGateway {
    #[new]
    #[pyo3(signature = (config = None))]
    fn new(py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let config = config_from_py(py, config)?;
        if crate::telemetry::otel::wanted(&config.telemetry.tracing)
            && !crate::telemetry::otel::enabled()
        {
            // Export runs on the extension's runtime.
            let _guard = runtime().enter();
            match crate::telemetry::init(None, Some(&config.telemetry.tracing)) {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "a tracing subscriber is already installed; OpenTelemetry export is not added"
                ),
                Err(e) => {
                    return Err(config_error(
                        py,
                        crate::config::ConfigError(format!("telemetry.tracing: {e}")),
                    ));
                }
            }
        }
        let inner = py
            .detach(|| Gateway::new(config))
            .map_err(|e| config_error(py, e))?;
        Ok(PyGateway { inner })
    }

    /// Replaces the config; in-flight requests finish on the old one.
    #[pyo3(signature = (config = None))]
    fn reload(&self, py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let config = config_from_py(py, config)?;
        py.detach(|| self.inner.reload(config))
            .map_err(|e| config_error(py, e))
    }

    /// The effective config as a dict, secrets redacted.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &*self.inner.config())
    }

    /// Adds a Python plugin (an object with hook methods) after the existing ones.
    #[pyo3(signature = (plugin, fail_closed = false, timeout = 1.0))]
    fn register_plugin(
        &self,
        py: Python<'_>,
        plugin: &Bound<'_, PyAny>,
        fail_closed: bool,
        timeout: f64,
    ) -> PyResult<String> {
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "plugin timeout must be a positive number of seconds",
            ));
        }
        let plugin = super::plugins::PyPlugin::from_object(py, plugin)?;
        let name = crate::plugins::Plugin::name(&plugin).to_string();
        self.inner
            .register_plugin(
                std::sync::Arc::new(plugin),
                fail_closed,
                std::time::Duration::from_secs_f64(timeout),
            )
            .map_err(|e| config_error(py, e))?;
        Ok(name)
    }

    /// Switches a plugin on or off; False if no plugin has that name.
    fn set_plugin_enabled(&self, name: &str, enabled: bool) -> bool {
        self.inner.set_plugin_enabled(name, enabled)
    }

    /// The plugins in order, with whether each is enabled.
    fn plugins(&self) -> Vec<(String, bool)> {
        self.inner
            .pipeline()
            .slots()
            .iter()
            .map(|s| (s.name.clone(), s.is_enabled()))
            .collect()
    }

    /// Queries the request log store (filters as in `GET /admin/logs`).
    #[pyo3(signature = (filters = None))]
    fn query_logs<'py>(
        &self,
        py: Python<'py>,
        filters: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q: crate::telemetry::logstore::LogQuery = match filters {
            Some(f) => request_from_py(f)?,
            None => Default::default(),
        };
        let gateway = self.inner.clone();
        let page = py.detach(|| runtime().block_on(async move { gateway.query_logs(&q).await }));
        to_py(py, &page.map_err(|e| gateway_error(py, e))?)
    }

    /// Waits until the log store has written every queued record (tests, shutdown).
    #[pyo3(signature = (timeout = 10.0))]
    fn flush_logs(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let gateway = self.inner.clone();
        let wait = std::time::Duration::from_secs_f64(timeout.max(0.0));
        let done = py.detach(|| {
            runtime().block_on(async move {
                match gateway.open_log_store().await {
                    Ok(Some(store)) => store.flush(wait).await,
                    _ => true,
                }
            })
        });
        Ok(done)
    }

    /// Names of all providers the gateway knows (built-in and configured).
    fn provider_names(&self) -> Vec<String> {
        self.inner.snapshot().providers.names().to_vec()
    }

    #[pyo3(signature = (request, options = None))]
    fn completion(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyResponse> {
        let req: ChatRequest = request_from_py(request)?;
        let opts = options_from_py(options)?;
        let started = Instant::now();
        let gateway = self.inner.clone();
        let result =
            py.detach(|| runtime().block_on(async move { gateway.chat(req, &opts).await }));
        let served = result.map_err(|e| gateway_error(py, e))?;
        Ok(PyResponse::new(
            Body::Chat(served.value),
            served.meta,
            started,
        ))
    }

    #[pyo3(signature = (request, options = None))]
    fn acompletion<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: ChatRequest = request_from_py(request)?;
        let opts = options_from_py(options)?;
        let gateway = self.inner.clone();
        runtime();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let started = Instant::now();
            match gateway.chat(req, &opts).await {
                Ok(served) => Ok(PyResponse::new(
                    Body::Chat(served.value),
                    served.meta,
                    started,
                )),
                Err(e) => Err(Python::attach(|py| gateway_error(py, e))),
            }
        })
    }

    #[pyo3(signature = (request, options = None))]
    fn completion_stream(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyChatStream> {
        let req: ChatRequest = request_from_py(request)?;
        let opts = options_from_py(options)?;
        let gateway = self.inner.clone();
        let result =
            py.detach(|| runtime().block_on(async move { gateway.chat_stream(req, &opts).await }));
        let served = result.map_err(|e| gateway_error(py, e))?;
        Ok(PyChatStream::new(served.value, served.meta))
    }

    #[pyo3(signature = (request, options = None))]
    fn acompletion_stream<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: ChatRequest = request_from_py(request)?;
        let opts = options_from_py(options)?;
        let gateway = self.inner.clone();
        runtime();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match gateway.chat_stream(req, &opts).await {
                Ok(served) => Ok(PyChatStream::new(served.value, served.meta)),
                Err(e) => Err(Python::attach(|py| gateway_error(py, e))),
            }
        })
    }

    #[pyo3(signature = (request, options = None))]
    fn embedding(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyResponse> {
        let req: EmbeddingRequest = request_from_py(request)?;
        let opts = options_from_py(options)?;
        let started = Instant::now();
        let gateway = self.inner.clone();
        let result =
            py.detach(|| runtime().block_on(async move { gateway.embeddings(req, &opts).await }));
        let served = result.map_err(|e| gateway_error(py, e))?;
        Ok(PyResponse::new(
            Body::Embedding(served.value),
            served.meta,
            started,
        ))
    }

    #[pyo3(signature = (request, options = None))]
    fn aembedding<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: EmbeddingRequest = request_from_py(request)?;
        let opts = options_from_py(options)?;
        let gateway = self.inner.clone();
        runtime();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let started = Instant::now();
            match gateway.embeddings(req, &opts).await {
                Ok(served) => Ok(PyResponse::new(
                    Body::Embedding(served.value),
                    served.meta,
                    started,
                )),
                Err(e) => Err(Python::attach(|py| gateway_error(py, e))),
            }
        })
    }

    /// The models list (`GET /v1/models` shape).
    #[pyo3(signature = (options = None))]
    fn models<'py>(
        &self,
        py: Python<'py>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = options_from_py(options)?;
        let gateway = self.inner.clone();
        let list =
            py.detach(|| runtime().block_on(async move { gateway.list_models_for(&opts).await }));
        to_py(py, &list.map_err(|e| gateway_error(py, e))?)
    }

    #[pyo3(signature = (options = None))]
    fn amodels<'py>(
        &self,
        py: Python<'py>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = options_from_py(options)?;
        let gateway = self.inner.clone();
        runtime();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match gateway.list_models_for(&opts).await {
                Ok(list) => Ok(Pythonized(list)),
                Err(e) => Err(Python::attach(|py| gateway_error(py, e))),
            }
        })
    }
}

pub enum Body {
    Chat(ChatResponse),
    Embedding(EmbeddingResponse),
}

/// A finished call: the response (converted to Python data on demand, on the caller's thread)
/// and how it was served.
#[pyclass(name = "CoreResponse", module = "ferrogate._core", frozen)]
pub struct PyResponse {
    body: Body,
    meta: ServedBy,
    overhead_us: u64,
}

impl PyResponse {
    fn new(body: Body, meta: ServedBy, started: Instant) -> Self {
        let overhead_us = started.elapsed().saturating_sub(meta.upstream).as_micros() as u64;
        PyResponse {
            body,
            meta,
            overhead_us,
        }
    }
}

#[pymethods]
impl PyResponse {
    /// The response as plain Python data (dicts and lists).
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.body {
            Body::Chat(r) => to_py(py, r),
            Body::Embedding(r) => to_py(py, r),
        }
    }

    /// How the call was served: provider, model, key name, attempts, fallback index, timings.
    fn served_by<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        served_by_dict(py, &self.meta, Some(self.overhead_us))
    }
}

pub fn served_by_dict<'py>(
    py: Python<'py>,
    meta: &ServedBy,
    overhead_us: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("provider", &*meta.provider)?;
    d.set_item("model", &meta.model)?;
    d.set_item("deployment", &*meta.deployment)?;
    d.set_item("key_name", meta.key_name.as_deref())?;
    d.set_item("attempts", meta.attempts)?;
    d.set_item("fallback_index", meta.fallback_index)?;
    d.set_item("upstream_ms", meta.upstream.as_secs_f64() * 1000.0)?;
    d.set_item("overhead_us", overhead_us)?;
    Ok(d)
}
