//! SQLite backend (the default): one file, WAL mode, written from a blocking thread.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params_from_iter};

use super::LogRecord;
use super::query::{COLUMNS, LogPage, LogQuery, Param, build, page};

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS request_logs (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL,
    model TEXT NOT NULL,
    provider TEXT,
    deployment TEXT,
    served_model TEXT,
    key_name TEXT,
    user_id TEXT,
    virtual_key TEXT,
    tags TEXT NOT NULL,
    status INTEGER NOT NULL,
    error_type TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL,
    fallback_index INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    upstream_ms REAL,
    ttft_ms REAL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL,
    request TEXT,
    response TEXT
);
CREATE INDEX IF NOT EXISTS request_logs_ts ON request_logs (ts DESC, id DESC);
CREATE INDEX IF NOT EXISTS request_logs_request_id ON request_logs (request_id);
";

fn blocking_err(e: tokio::task::JoinError) -> String {
    format!("log store task failed: {e}")
}

impl SqliteStore {
    pub async fn open(path: &str) -> Result<SqliteStore, String> {
        let path = path.to_string();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, String> {
            let conn = Connection::open(&path)
                .map_err(|e| format!("cannot open SQLite log store {path}: {e}"))?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| e.to_string())?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| e.to_string())?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            conn.execute_batch(SCHEMA)
                .map_err(|e| format!("cannot create the log table in {path}: {e}"))?;
            Ok(conn)
        })
        .await
        .map_err(blocking_err)??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub async fn write(&self, batch: Vec<LogRecord>) -> Result<(), String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut conn = conn.lock().map_err(|_| "log store connection poisoned".to_string())?;
            let tx = conn.transaction().map_err(|e| e.to_string())?;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT OR IGNORE INTO request_logs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
                    ))
                    .map_err(|e| e.to_string())?;
                for r in &batch {
                    stmt.execute(rusqlite::params![
                        r.id,
                        r.request_id,
                        r.ts,
                        r.endpoint,
                        r.stream,
                        r.model,
                        r.provider,
                        r.deployment,
                        r.served_model,
                        r.key_name,
                        r.user,
                        r.virtual_key,
                        serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into()),
                        r.status,
                        r.error_type,
                        r.error_message,
                        r.attempts,
                        r.fallback_index,
                        r.latency_ms,
                        r.upstream_ms,
                        r.ttft_ms,
                        r.prompt_tokens as i64,
                        r.completion_tokens as i64,
                        r.cached_tokens as i64,
                        r.cost_usd,
                        r.request,
                        r.response,
                    ])
                    .map_err(|e| e.to_string())?;
                }
            }
            tx.commit().map_err(|e| e.to_string())
        })
        .await
        .map_err(blocking_err)?
    }

    pub async fn query(&self, q: LogQuery) -> Result<LogPage, String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || -> Result<LogPage, String> {
            let (tail, params, limit) = build(&q, |n| format!("?{n}"), "LIKE")?;
            let conn = conn
                .lock()
                .map_err(|_| "log store connection poisoned".to_string())?;
            let mut stmt = conn
                .prepare(&format!("SELECT {COLUMNS} FROM request_logs{tail}"))
                .map_err(|e| e.to_string())?;
            let values: Vec<rusqlite::types::Value> = params
                .into_iter()
                .map(|p| match p {
                    Param::Int(i) => rusqlite::types::Value::Integer(i),
                    Param::Text(t) => rusqlite::types::Value::Text(t),
                })
                .collect();
            let rows = stmt
                .query_map(params_from_iter(values), |row| {
                    let tags: String = row.get(12)?;
                    Ok(LogRecord {
                        id: row.get(0)?,
                        request_id: row.get(1)?,
                        ts: row.get(2)?,
                        endpoint: row.get(3)?,
                        stream: row.get(4)?,
                        model: row.get(5)?,
                        provider: row.get(6)?,
                        deployment: row.get(7)?,
                        served_model: row.get(8)?,
                        key_name: row.get(9)?,
                        user: row.get(10)?,
                        virtual_key: row.get(11)?,
                        tags: serde_json::from_str(&tags).unwrap_or_default(),
                        status: row.get(13)?,
                        error_type: row.get(14)?,
                        error_message: row.get(15)?,
                        attempts: row.get(16)?,
                        fallback_index: row.get(17)?,
                        latency_ms: row.get(18)?,
                        upstream_ms: row.get(19)?,
                        ttft_ms: row.get(20)?,
                        prompt_tokens: row.get::<_, i64>(21)? as u64,
                        completion_tokens: row.get::<_, i64>(22)? as u64,
                        cached_tokens: row.get::<_, i64>(23)? as u64,
                        cost_usd: row.get(24)?,
                        request: row.get(25)?,
                        response: row.get(26)?,
                    })
                })
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            Ok(page(rows, limit))
        })
        .await
        .map_err(blocking_err)?
    }

    pub async fn prune(&self, before_ms: i64) -> Result<u64, String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || -> Result<u64, String> {
            let conn = conn
                .lock()
                .map_err(|_| "log store connection poisoned".to_string())?;
            conn.execute("DELETE FROM request_logs WHERE ts < ?1", [before_ms])
                .map(|n| n as u64)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(blocking_err)?
    }
}
