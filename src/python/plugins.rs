//! Python plugins as engine plugins. Hooks never run on a tokio worker: `def` hooks run on a pool
//! of dedicated Python threads, `async def` hooks on one asyncio loop thread
//! (`ferrogate.plugins._event_loop`). The engine side only serializes the request and context to
//! JSON, queues the call and awaits a oneshot channel, without the GIL; the Python side
//! (`ferrogate.plugins._invoke`) applies the hook's return conventions.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyCFunction, PyTuple};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::error::{ErrorKind, GatewayError};
use crate::plugins::registry::PluginConfig;
use crate::plugins::{
    ChunkAction, Endpoint, HookFuture, Hooks, Plugin, PluginError, PreAction, Reply, Request,
    RequestContext, SharedPlugin,
};
use crate::schema::{ChatChunk, Extra};

/// Python threads running `def` hooks.
const POOL_THREADS: usize = 4;

type Job = Box<dyn FnOnce(Python<'_>) + Send>;

struct Pool {
    jobs: Mutex<Sender<Job>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..POOL_THREADS {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            std::thread::Builder::new()
                .name(format!("ferrogate-plugin-{i}"))
                .spawn(move || {
                    // Attached once for the thread's life (a thread state per job would be
                    // created and torn down on every call); the GIL is released while waiting.
                    Python::attach(|py| {
                        loop {
                            let job = py.detach(|| match rx.lock() {
                                Ok(guard) => guard.recv().ok(),
                                Err(_) => None,
                            });
                            match job {
                                Some(job) => job(py),
                                None => return,
                            }
                        }
                    })
                })
                .expect("cannot start a plugin thread");
        }
        Pool {
            jobs: Mutex::new(tx),
        }
    })
}

fn submit(job: Job) -> Result<(), PluginError> {
    pool()
        .jobs
        .lock()
        .map_err(|_| PluginError("the plugin thread pool is poisoned".into()))?
        .send(job)
        .map_err(|_| PluginError("the plugin thread pool has stopped".into()))
}

static HELPERS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn helpers(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    HELPERS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("ferrogate.plugins")?.unbind())
        })
        .map(|m| m.bind(py))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Absent,
    Sync,
    Async,
}

fn mode(s: &str) -> Mode {
    match s {
        "sync" => Mode::Sync,
        "async" => Mode::Async,
        _ => Mode::Absent,
    }
}

pub struct PyPlugin {
    name: String,
    obj: Arc<Py<PyAny>>,
    pre: Mode,
    post: Mode,
    chunk: Mode,
}

impl PyPlugin {
    pub fn from_object(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<PyPlugin> {
        let h = helpers(py)?;
        let name: String = h.getattr("_plugin_name")?.call1((obj,))?.extract()?;
        let (pre, post, chunk): (String, String, String) =
            h.getattr("_hook_modes")?.call1((obj,))?.extract()?;
        Ok(PyPlugin {
            name,
            obj: Arc::new(obj.clone().unbind()),
            pre: mode(&pre),
            post: mode(&post),
            chunk: mode(&chunk),
        })
    }

    /// Runs `hook` with JSON arguments on the right thread; the answer is
    /// `(kind, payload, context changes)`.
    fn invoke(
        &self,
        hook: &'static str,
        mode: Mode,
        ctx: Vec<u8>,
        payload: Option<Vec<u8>>,
        extra: Option<Vec<u8>>,
    ) -> impl std::future::Future<Output = Result<Invoked, PluginError>> + Send + 'static {
        let (tx, rx) = oneshot::channel::<Result<Invoked, PluginError>>();
        let obj = self.obj.clone();
        let job: Job = Box::new(move |py| {
            let tx = Arc::new(Mutex::new(Some(tx)));
            let send = {
                let tx = tx.clone();
                move |r: Result<Invoked, PluginError>| {
                    if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(r);
                    }
                }
            };
            let run = || -> PyResult<()> {
                let h = helpers(py)?;
                let args = (
                    obj.bind(py),
                    hook,
                    PyBytes::new(py, &ctx),
                    payload.as_deref().map(|p| PyBytes::new(py, p)),
                    extra.as_deref().map(|e| PyBytes::new(py, e)),
                );
                if mode == Mode::Async {
                    let coro = h.getattr("_invoke_async")?.call1(args)?;
                    let event_loop = h.getattr("_event_loop")?.call0()?;
                    let fut = py
                        .import("asyncio")?
                        .getattr("run_coroutine_threadsafe")?
                        .call1((coro, event_loop))?;
                    let send = send.clone();
                    let done = PyCFunction::new_closure(
                        py,
                        None,
                        None,
                        move |args: &Bound<'_, PyTuple>, _kwargs| {
                            let py = args.py();
                            let fut = args.get_item(0)?;
                            let r = match fut.call_method0("result") {
                                Ok(v) => extract(py, &v),
                                Err(e) => Err(describe(py, &e)),
                            };
                            send(r);
                            Ok::<(), PyErr>(())
                        },
                    )?;
                    fut.call_method1("add_done_callback", (done,))?;
                } else {
                    let r = match h.getattr("_invoke")?.call1(args) {
                        Ok(v) => extract(py, &v),
                        Err(e) => Err(describe(py, &e)),
                    };
                    send(r);
                }
                Ok(())
            };
            if let Err(e) = run() {
                send(Err(describe(py, &e)));
            }
        });
        async move {
            submit(job)?;
            rx.await
                .map_err(|_| PluginError("the plugin call was abandoned".into()))?
        }
    }
}

/// A hook's answer: what to do, with which payload, and the context's changes.
struct Invoked {
    kind: String,
    payload: Option<Vec<u8>>,
    changes: Vec<u8>,
}

fn extract(_py: Python<'_>, v: &Bound<'_, PyAny>) -> Result<Invoked, PluginError> {
    let (kind, payload, changes): (String, Option<Vec<u8>>, Vec<u8>) = v
        .extract()
        .map_err(|e| PluginError(format!("unexpected hook result: {e}")))?;
    Ok(Invoked {
        kind,
        payload,
        changes,
    })
}

fn describe(py: Python<'_>, e: &PyErr) -> PluginError {
    let kind = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    PluginError(format!("{kind}: {}", e.value(py)))
}

#[derive(Deserialize)]
struct Changes {
    user: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: Extra,
    #[serde(default)]
    state: Extra,
}

fn apply_changes(ctx: &mut RequestContext, raw: &[u8]) -> Result<(), PluginError> {
    let c: Changes = crate::schema::json_from_bytes(raw)
        .map_err(|e| PluginError(format!("context changes: {e}")))?;
    ctx.user = c.user;
    ctx.tags = c.tags;
    ctx.metadata = c.metadata;
    ctx.state = c.state;
    Ok(())
}

fn context_json(ctx: &RequestContext) -> Result<Vec<u8>, PluginError> {
    let mut v = serde_json::to_value(ctx).map_err(|e| PluginError(e.to_string()))?;
    if let Some(s) = &ctx.served_by {
        v["served_by"] = serde_json::json!({
            "provider": &*s.provider, "model": s.model, "deployment": &*s.deployment,
            "key_name": s.key_name.as_deref(), "attempts": s.attempts, "fallback_index": s.fallback_index,
        });
    }
    serde_json::to_vec(&v).map_err(|e| PluginError(e.to_string()))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, PluginError> {
    serde_json::to_vec(v).map_err(|e| PluginError(e.to_string()))
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, raw: Option<&[u8]>) -> Result<T, PluginError> {
    let raw = raw.ok_or_else(|| PluginError(format!("the hook returned no {what}")))?;
    crate::schema::parse_json(raw).map_err(|e| {
        PluginError(format!(
            "the hook returned an invalid {what}: {}",
            e.message
        ))
    })
}

/// A rejection or replacement error a plugin asked for.
#[derive(Deserialize)]
struct PluginRejection {
    status: u16,
    message: String,
    code: Option<String>,
    param: Option<String>,
}

fn rejection(plugin: &str, raw: Option<&[u8]>) -> Result<GatewayError, PluginError> {
    let r: PluginRejection = parse("error", raw)?;
    let kind = ErrorKind::from_status(r.status);
    let mut e = GatewayError::new(kind, r.message)
        .with_status(r.status)
        .with_provider(format!("plugin:{plugin}"));
    e.code = r.code;
    e.param = r.param;
    Ok(e)
}

fn error_json(e: &GatewayError) -> Result<Vec<u8>, PluginError> {
    to_json(&serde_json::json!({
        "kind": e.kind.as_str(), "status_code": e.status, "message": e.message,
        "provider": e.provider.as_deref(), "code": e.code, "param": e.param,
        "retry_after": e.retry_after.map(|d| d.as_secs_f64()), "body": e.to_openai_json(),
    }))
}

impl Plugin for PyPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            pre: self.pre != Mode::Absent,
            post: self.post != Mode::Absent,
            chunk: self.chunk != Mode::Absent,
            // Python hooks get the answer and the chunks as dicts, from their parsed form.
            raw_chat: false,
            raw_stream: false,
        }
    }

    fn pre_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        request: Request<'a>,
    ) -> HookFuture<'a, PreAction> {
        Box::pin(async move {
            let payload = match &request {
                Request::Chat(r) => to_json(&**r)?,
                Request::Embeddings(r) => to_json(&**r)?,
            };
            let out = self
                .invoke(
                    "pre_hook",
                    self.pre,
                    context_json(ctx)?,
                    Some(payload),
                    None,
                )
                .await?;
            apply_changes(ctx, &out.changes)?;
            match out.kind.as_str() {
                "continue" => {
                    match request {
                        Request::Chat(r) => *r = parse("request", out.payload.as_deref())?,
                        Request::Embeddings(r) => *r = parse("request", out.payload.as_deref())?,
                    }
                    Ok(PreAction::Continue)
                }
                "respond" => Ok(PreAction::Respond(match ctx.endpoint {
                    Endpoint::ChatCompletions => {
                        Reply::Chat(parse("response", out.payload.as_deref())?)
                    }
                    Endpoint::Embeddings => {
                        Reply::Embeddings(parse("response", out.payload.as_deref())?)
                    }
                })),
                "reject" => Ok(PreAction::Reject(rejection(
                    &self.name,
                    out.payload.as_deref(),
                )?)),
                other => Err(PluginError(format!("unknown pre_hook outcome {other:?}"))),
            }
        })
    }

    fn post_hook<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        result: &'a mut Result<Reply, GatewayError>,
    ) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let (payload, error) = match &*result {
                Ok(Reply::Chat(r)) => (Some(to_json(r)?), None),
                Ok(Reply::Embeddings(r)) => (Some(to_json(r)?), None),
                // Not expected (`raw_chat` is off), and already the JSON the hook would get.
                Ok(Reply::RawChat(r)) => (Some(r.body.to_vec()), None),
                // Not expected either (`raw_stream` is off): a stream's folded answer is given.
                Ok(Reply::StreamSummary(_)) => {
                    return Err(PluginError("a stream's answer was not folded".into()));
                }
                Err(e) => (None, Some(error_json(e)?)),
            };
            let out = self
                .invoke("post_hook", self.post, context_json(ctx)?, payload, error)
                .await?;
            apply_changes(ctx, &out.changes)?;
            match out.kind.as_str() {
                "keep" => {}
                "response" => {
                    *result = Ok(match ctx.endpoint {
                        Endpoint::ChatCompletions => {
                            Reply::Chat(parse("response", out.payload.as_deref())?)
                        }
                        Endpoint::Embeddings => {
                            Reply::Embeddings(parse("response", out.payload.as_deref())?)
                        }
                    })
                }
                "error" => *result = Err(rejection(&self.name, out.payload.as_deref())?),
                other => return Err(PluginError(format!("unknown post_hook outcome {other:?}"))),
            }
            Ok(())
        })
    }

    fn on_stream_chunk<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        chunk: &'a mut ChatChunk,
    ) -> HookFuture<'a, ChunkAction> {
        Box::pin(async move {
            let out = self
                .invoke(
                    "on_stream_chunk",
                    self.chunk,
                    context_json(ctx)?,
                    Some(to_json(&*chunk)?),
                    None,
                )
                .await?;
            apply_changes(ctx, &out.changes)?;
            match out.kind.as_str() {
                "drop" => Ok(ChunkAction::Drop),
                "keep" => {
                    *chunk = parse("chunk", out.payload.as_deref())?;
                    Ok(ChunkAction::Keep)
                }
                other => Err(PluginError(format!(
                    "unknown on_stream_chunk outcome {other:?}"
                ))),
            }
        })
    }
}

/// Builds a Python plugin from a config entry (`python: "package.module:ClassName"`).
pub fn factory(cfg: &PluginConfig) -> Result<SharedPlugin, String> {
    let target = cfg.python.clone().unwrap_or_default();
    Python::attach(|py| {
        let config = super::convert::to_py(py, &cfg.config).map_err(|e| e.to_string())?;
        let instance = helpers(py)
            .and_then(|h| h.getattr("_load")?.call1((target.as_str(), config)))
            .map_err(|e| describe(py, &e).0)?;
        let plugin = PyPlugin::from_object(py, &instance).map_err(|e| describe(py, &e).0)?;
        Ok(Arc::new(plugin) as SharedPlugin)
    })
}
