//! PostgreSQL backend, for teams and several gateway instances sharing one log.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use super::LogRecord;
use super::query::{COLUMNS, LogPage, LogQuery, Param, build, page};

pub struct PgStore {
    /// Batches are written in transactions on their own connection, so queries never run
    /// inside one.
    client: Client,
    reader: Client,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS request_logs (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
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
    latency_ms DOUBLE PRECISION NOT NULL,
    upstream_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION,
    request TEXT,
    response TEXT
);
CREATE INDEX IF NOT EXISTS request_logs_ts ON request_logs (ts DESC, id DESC);
CREATE INDEX IF NOT EXISTS request_logs_request_id ON request_logs (request_id);
";

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("[REDACTED]"));
            }
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

async fn open(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        format!(
            "cannot connect to the PostgreSQL log store at {}: {e}",
            redacted(url)
        )
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "PostgreSQL log store connection lost");
        }
    });
    Ok(client)
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<PgStore, String> {
        let client = open(url).await?;
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| format!("cannot create the log table: {e}"))?;
        let reader = open(url).await?;
        Ok(PgStore { client, reader })
    }

    pub async fn write(&self, batch: &[LogRecord]) -> Result<(), String> {
        let placeholders: Vec<String> = (1..=27).map(|i| format!("${i}")).collect();
        let stmt = self
            .client
            .prepare(&format!(
                "INSERT INTO request_logs ({COLUMNS}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
                placeholders.join(", ")
            ))
            .await
            .map_err(|e| e.to_string())?;
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| e.to_string())?;
        let result = async {
            let mut pending = Vec::with_capacity(batch.len());
            for r in batch {
                let tags = serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into());
                let row: Vec<Box<dyn ToSql + Sync + Send>> = vec![
                    Box::new(r.id.clone()),
                    Box::new(r.request_id.clone()),
                    Box::new(r.ts),
                    Box::new(r.endpoint.clone()),
                    Box::new(r.stream),
                    Box::new(r.model.clone()),
                    Box::new(r.provider.clone()),
                    Box::new(r.deployment.clone()),
                    Box::new(r.served_model.clone()),
                    Box::new(r.key_name.clone()),
                    Box::new(r.user.clone()),
                    Box::new(r.virtual_key.clone()),
                    Box::new(tags),
                    Box::new(r.status as i32),
                    Box::new(r.error_type.clone()),
                    Box::new(r.error_message.clone()),
                    Box::new(r.attempts as i32),
                    Box::new(r.fallback_index as i32),
                    Box::new(r.latency_ms),
                    Box::new(r.upstream_ms),
                    Box::new(r.ttft_ms),
                    Box::new(r.prompt_tokens as i64),
                    Box::new(r.completion_tokens as i64),
                    Box::new(r.cached_tokens as i64),
                    Box::new(r.cost_usd),
                    Box::new(r.request.clone()),
                    Box::new(r.response.clone()),
                ];
                pending.push(row);
            }
            // Pipelined: the client sends all inserts without waiting for each answer.
            let futures = pending.iter().map(|row| {
                let refs: Vec<&(dyn ToSql + Sync)> = row
                    .iter()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let stmt = &stmt;
                async move { self.client.execute(stmt, &refs).await }
            });
            for r in futures_util::future::join_all(futures).await {
                r.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }
        .await;
        match result {
            Ok(()) => self
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| e.to_string()),
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    pub async fn query(&self, q: &LogQuery) -> Result<LogPage, String> {
        let (tail, params, limit) = build(q, |n| format!("${n}"), "ILIKE")?;
        let owned: Vec<Box<dyn ToSql + Sync + Send>> = params
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    Param::Int(i) => Box::new(i),
                    Param::Text(t) => Box::new(t),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = owned
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        // Integer parameters are compared with integer columns: cast the columns so one binding
        // type (BIGINT) fits them all.
        let tail = tail.replace("status = ", "status::BIGINT = ");
        let rows = self
            .reader
            .query(&format!("SELECT {COLUMNS} FROM request_logs{tail}"), &refs)
            .await
            .map_err(|e| e.to_string())?;
        let records = rows
            .iter()
            .map(|row| LogRecord {
                id: row.get(0),
                request_id: row.get(1),
                ts: row.get(2),
                endpoint: row.get(3),
                stream: row.get(4),
                model: row.get(5),
                provider: row.get(6),
                deployment: row.get(7),
                served_model: row.get(8),
                key_name: row.get(9),
                user: row.get(10),
                virtual_key: row.get(11),
                tags: serde_json::from_str(row.get::<_, &str>(12)).unwrap_or_default(),
                status: row.get::<_, i32>(13) as u16,
                error_type: row.get(14),
                error_message: row.get(15),
                attempts: row.get::<_, i32>(16) as u32,
                fallback_index: row.get::<_, i32>(17) as u32,
                latency_ms: row.get(18),
                upstream_ms: row.get(19),
                ttft_ms: row.get(20),
                prompt_tokens: row.get::<_, i64>(21) as u64,
                completion_tokens: row.get::<_, i64>(22) as u64,
                cached_tokens: row.get::<_, i64>(23) as u64,
                cost_usd: row.get(24),
                request: row.get(25),
                response: row.get(26),
            })
            .collect();
        Ok(page(records, limit))
    }

    pub async fn prune(&self, before_ms: i64) -> Result<u64, String> {
        self.client
            .execute("DELETE FROM request_logs WHERE ts < $1", &[&before_ms])
            .await
            .map_err(|e| e.to_string())
    }
}
