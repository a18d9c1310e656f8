//! The HTTP front door: an axum app exposing the OpenAI API over the [`Gateway`], with graceful
//! shutdown that drains in-flight requests.

mod admin_routes;
mod anthropic_routes;
mod body;
mod genai_routes;
mod openai_routes;
pub mod per_core;
mod response;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::gateway::Gateway;

pub use response::error_response;

#[derive(Clone)]
pub struct AppState {
    pub gateway: Gateway,
}

/// The complete route table.
pub fn app(gateway: Gateway) -> Router {
    let state = AppState { gateway };
    let openai = Router::new()
        .route("/chat/completions", post(openai_routes::chat_completions))
        .route("/embeddings", post(openai_routes::embeddings))
        .route("/models", get(openai_routes::list_models))
        .route("/models/{*id}", get(openai_routes::get_model));
    Router::new()
        .route("/health", get(openai_routes::health))
        .route("/metrics", get(admin_routes::metrics))
        .route("/admin/logs", get(admin_routes::logs))
        .nest("/v1", openai.clone())
        .nest("/openai/v1", openai.clone())
        .route("/anthropic/v1/messages", post(anthropic_routes::messages))
        .route(
            "/genai/{version}/models/{*rest}",
            post(genai_routes::model_action),
        )
        .route("/genai/{version}/models", get(genai_routes::list_models))
        // Clients configured with a base URL without `/v1` call the bare paths.
        .merge(openai)
        .fallback(openai_routes::unknown_route)
        .method_not_allowed_fallback(openai_routes::method_not_allowed)
        .with_state(state)
}

/// Binds `host:port`. Port 0 picks a free port (see [`RunningServer::addr`]).
pub async fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}")))
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests (streams
/// included) finish for up to `drain_timeout`, and returns.
pub async fn serve(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> io::Result<()> {
    serve_listener(gateway, listener, shutdown, drain_timeout, true).await
}

/// [`serve`] without the shutdown announcements (one of several listeners of a server).
async fn serve_quietly(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> io::Result<()> {
    serve_listener(gateway, listener, shutdown, drain_timeout, false).await
}

async fn serve_listener(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
    announce: bool,
) -> io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Small writes (SSE chunks) must leave at once, not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let draining = Arc::new(Notify::new());
    let drain_signal = draining.clone();
    let server = axum::serve(listener, app(gateway))
        .with_graceful_shutdown(async move { drain_signal.notified().await })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    if announce {
        tracing::info!(
            timeout_s = drain_timeout.as_secs_f64(),
            "shutting down: draining in-flight requests"
        );
    }
    draining.notify_one();
    match tokio::time::timeout(drain_timeout, server).await {
        Ok(result) => {
            if announce {
                tracing::info!("all requests drained; stopped");
            }
            result
        }
        Err(_) => {
            tracing::warn!("drain timeout reached; stopping with requests still in flight");
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A server running in the background (used by the Python `Server` and by tests).
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(gateway: Gateway, host: &str, port: u16) -> io::Result<RunningServer> {
        let listener = bind(host, port).await?;
        let addr = listener.local_addr()?;
        let drain = gateway.config().server.shutdown_timeout.0;
        let stop = Arc::new(Notify::new());
        let stop_signal = stop.clone();
        let task = tokio::spawn(serve(
            gateway,
            listener,
            async move { stop_signal.notified().await },
            drain,
        ));
        Ok(RunningServer { addr, stop, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks the server to stop (draining in-flight requests) without waiting.
    pub fn trigger_stop(&self) {
        self.stop.notify_one();
    }

    /// Stops and waits until the server has drained.
    pub async fn stop(self) -> io::Result<()> {
        self.stop.notify_one();
        self.task
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("server task failed: {e}"))))
    }
}
