//! The Rust HTTP server, started from Python: `serve` blocks (Ctrl-C / SIGTERM drain and return),
//! `start_server` runs it in the background and returns a handle.

use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;

use super::gateway::PyGateway;
use super::runtime;
use crate::server::{self, RunningServer};

fn host_port(gateway: &PyGateway, host: Option<String>, port: Option<u16>) -> (String, u16) {
    let config = gateway.inner.config();
    (
        host.unwrap_or_else(|| config.server.host.clone()),
        port.unwrap_or(config.server.port),
    )
}

/// Serves until SIGINT/SIGTERM, then drains in-flight requests and returns.
#[pyfunction]
#[pyo3(signature = (gateway, host = None, port = None))]
pub fn serve(
    py: Python<'_>,
    gateway: &PyGateway,
    host: Option<String>,
    port: Option<u16>,
) -> PyResult<()> {
    let (host, port) = host_port(gateway, host, port);
    let engine = gateway.inner.clone();
    let drain = engine.config().server.shutdown_timeout.0;
    py.detach(|| {
        runtime().block_on(async move {
            let listener = server::bind(&host, port).await?;
            let addr = listener.local_addr()?;
            eprintln!(
                "ferrogate {} listening on http://{addr}",
                env!("CARGO_PKG_VERSION")
            );
            server::serve(engine, listener, server::shutdown_signal(), drain).await
        })
    })
    .map_err(|e| PyOSError::new_err(e.to_string()))
}

#[pyfunction]
#[pyo3(signature = (gateway, host = None, port = None))]
pub fn start_server(
    py: Python<'_>,
    gateway: &PyGateway,
    host: Option<String>,
    port: Option<u16>,
) -> PyResult<PyServerHandle> {
    let (host, port) = host_port(gateway, host, port);
    let engine = gateway.inner.clone();
    let running = py
        .detach(|| {
            runtime().block_on(async move { RunningServer::start(engine, &host, port).await })
        })
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    Ok(PyServerHandle {
        base_url: running.base_url(),
        host: running.addr.ip().to_string(),
        port: running.addr.port(),
        running: Mutex::new(Some(running)),
    })
}

/// A server running in this process's background threads.
#[pyclass(name = "ServerHandle", module = "ferrogate._core", frozen)]
pub struct PyServerHandle {
    running: Mutex<Option<RunningServer>>,
    #[pyo3(get)]
    base_url: String,
    #[pyo3(get)]
    host: String,
    #[pyo3(get)]
    port: u16,
}

#[pymethods]
impl PyServerHandle {
    /// Stops accepting connections, drains in-flight requests, and waits until done.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let running = self
            .running
            .lock()
            .map_err(|_| PyRuntimeError::new_err("server handle poisoned"))?
            .take();
        if let Some(running) = running {
            py.detach(|| runtime().block_on(running.stop()))
                .map_err(|e| PyOSError::new_err(e.to_string()))?;
        }
        Ok(())
    }

    #[getter]
    fn running(&self) -> bool {
        self.running.lock().map(|r| r.is_some()).unwrap_or(false)
    }
}
