//! The request log store: one record per request (metadata; content only when enabled), queued
//! without ever blocking the request and written in batches by a background task to SQLite (the
//! default) or PostgreSQL. When the writer falls behind the queue fills up and further records
//! are dropped, counted in `ferrogate_log_store_dropped_total` and logged.

mod postgres;
mod query;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use query::{LogPage, LogQuery};

use crate::config::{Dur, LogBackendKind, LogStoreConfig};

/// One request, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Unique row id.
    pub id: String,
    pub request_id: String,
    /// Unix time in milliseconds.
    pub ts: i64,
    pub endpoint: String,
    pub stream: bool,
    /// The model as requested.
    pub model: String,
    pub provider: Option<String>,
    pub deployment: Option<String>,
    /// The provider's model id.
    pub served_model: Option<String>,
    pub key_name: Option<String>,
    pub user: Option<String>,
    pub virtual_key: Option<String>,
    pub tags: Vec<String>,
    pub status: u16,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
    pub fallback_index: u32,
    pub latency_ms: f64,
    pub upstream_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: Option<f64>,
    /// Request and response bodies, only with `log_content`.
    pub request: Option<String>,
    pub response: Option<String>,
}

enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(Box<postgres::PgStore>),
}

impl Backend {
    async fn write(&self, batch: Vec<LogRecord>) -> Result<(), String> {
        match self {
            Backend::Sqlite(s) => s.write(batch).await,
            Backend::Postgres(p) => p.write(&batch).await,
        }
    }

    async fn query(&self, q: &LogQuery) -> Result<LogPage, String> {
        match self {
            Backend::Sqlite(s) => s.query(q.clone()).await,
            Backend::Postgres(p) => p.query(q).await,
        }
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, String> {
        match self {
            Backend::Sqlite(s) => s.prune(before_ms).await,
            Backend::Postgres(p) => p.prune(before_ms).await,
        }
    }
}

/// The store: the queue in front of the backend and the tasks that empty it.
pub struct LogStore {
    tx: mpsc::Sender<LogRecord>,
    backend: Arc<Backend>,
    queued: AtomicU64,
    written: Arc<AtomicU64>,
    dropped: AtomicU64,
    last_drop_warning: std::sync::Mutex<Option<Instant>>,
    pub log_content: bool,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("written", &self.written.load(Ordering::Relaxed))
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl LogStore {
    /// Opens the backend (creating its table) and starts the writer and retention tasks on the
    /// current tokio runtime.
    pub async fn open(cfg: &LogStoreConfig) -> Result<Arc<LogStore>, String> {
        let backend = Arc::new(match cfg.backend {
            LogBackendKind::Sqlite => Backend::Sqlite(sqlite::SqliteStore::open(&cfg.path).await?),
            LogBackendKind::Postgres => {
                let url = cfg
                    .url
                    .as_ref()
                    .ok_or("telemetry.log_store.url: required for the postgres backend")?;
                Backend::Postgres(Box::new(postgres::PgStore::connect(url.expose()).await?))
            }
        });
        let (tx, rx) = mpsc::channel(cfg.queue_size.max(1));
        let store = Arc::new(LogStore {
            tx,
            backend: backend.clone(),
            queued: AtomicU64::new(0),
            written: Arc::new(AtomicU64::new(0)),
            dropped: AtomicU64::new(0),
            last_drop_warning: std::sync::Mutex::new(None),
            log_content: cfg.log_content,
        });
        tokio::spawn(writer(
            rx,
            backend.clone(),
            cfg.batch_size.max(1),
            cfg.flush_interval.0,
            store.written.clone(),
        ));
        tokio::spawn(retention(backend, cfg.retention));
        Ok(store)
    }

    /// Queues a record; never waits. A full queue drops it (counted and logged).
    pub fn record(&self, rec: LogRecord) {
        match self.tx.try_send(rec) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                super::metrics::log_store(0, 1);
                let mut last = self
                    .last_drop_warning
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    *last = Some(Instant::now());
                    tracing::warn!(
                        dropped_total = self.dropped.load(Ordering::Relaxed),
                        "request log store is behind; records are being dropped"
                    );
                }
            }
        }
    }

    pub async fn query(&self, q: &LogQuery) -> Result<LogPage, String> {
        self.backend.query(q).await
    }

    /// Waits until every record queued so far is written (or `timeout` passes).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.written.load(Ordering::Relaxed) < self.queued.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

async fn writer(
    mut rx: mpsc::Receiver<LogRecord>,
    backend: Arc<Backend>,
    batch_size: usize,
    flush_interval: Duration,
    written: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + flush_interval;
        while batch.len() < batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(rec)) => batch.push(rec),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match backend.write(std::mem::take(&mut batch)).await {
            Ok(()) => super::metrics::log_store(n, 0),
            Err(e) => {
                tracing::error!(error = %e, records = n, "request log store: writing a batch failed; records lost");
                super::metrics::log_store(0, n);
            }
        }
        // Counted even when the write failed, so `flush` does not wait for records that are gone.
        written.fetch_add(n, Ordering::Relaxed);
    }
}

async fn retention(backend: Arc<Backend>, keep: Dur) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cutoff = now_ms() - keep.0.as_millis() as i64;
        match backend.prune(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "request log store: pruned records past retention"
            ),
            Err(e) => tracing::warn!(error = %e, "request log store: pruning failed"),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
