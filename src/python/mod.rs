//! Python bindings (`ferrogate._core`). Bindings only: every operation is one engine future,
//! offered twice (sync: run with the GIL released; async: an asyncio awaitable), and every value
//! crosses as plain Python data for the facade in `python/ferrogate/` to wrap.

mod convert;
mod errors;
mod gateway;
mod plugins;
mod server;
mod stream;

use std::sync::Once;

use pyo3::prelude::*;

static RUNTIME_INIT: Once = Once::new();

/// The tokio runtime of the extension, built on first use (not at import). Its builder must be
/// registered before pyo3-async-runtimes first touches the runtime, or it is silently ignored.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME_INIT.call_once(|| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("ferrogate-worker");
        pyo3_async_runtimes::tokio::init(builder);
    });
    pyo3_async_runtimes::tokio::get_runtime()
}

/// The Prometheus text of every metric recorded in this process (with `gateway`, its circuit
/// states and queue depths are refreshed first).
#[pyfunction]
#[pyo3(signature = (gateway = None))]
fn metrics_text(gateway: Option<&gateway::PyGateway>) -> String {
    if let Some(g) = gateway {
        crate::telemetry::metrics::set_state_gauges(&g.inner);
    }
    crate::telemetry::metrics::render()
}

/// Runs the `ferrogate` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| crate::cli::run(argv))
}

/// Whether `argv` (program name first) is a `serve` the native executable can run: its config
/// loads and has no Python plugin.
#[pyfunction]
fn runs_natively(argv: Vec<String>) -> bool {
    crate::cli::runs_natively(&argv)
}

/// Installs the JSON/pretty log subscriber for in-process use. Returns False if one was already set.
#[pyfunction]
#[pyo3(signature = (level = "info".to_string(), format = "auto".to_string()))]
fn init_logging(level: String, format: String) -> PyResult<bool> {
    let format = match format.as_str() {
        "auto" => crate::config::LogFormat::Auto,
        "json" => crate::config::LogFormat::Json,
        "pretty" => crate::config::LogFormat::Pretty,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "log format must be 'auto', 'json' or 'pretty', got {other:?}"
            )));
        }
    };
    Ok(crate::telemetry::init_logging(
        &crate::config::LoggingConfig { level, format },
    ))
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Config files may name Python plugins; this process can build them.
    crate::plugins::registry::set_python_factory(plugins::factory);
    m.add_class::<gateway::PyGateway>()?;
    m.add_class::<gateway::PyResponse>()?;
    m.add_class::<stream::PyChatStream>()?;
    m.add_class::<server::PyServerHandle>()?;
    m.add_function(wrap_pyfunction!(server::serve, m)?)?;
    m.add_function(wrap_pyfunction!(server::start_server, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(runs_natively, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_text, m)?)?;
    m.add_function(wrap_pyfunction!(init_logging, m)?)?;
    Ok(())
}
