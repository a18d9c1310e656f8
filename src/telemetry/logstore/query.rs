//! Log queries: filters, free text and keyset pagination, as SQL for either backend.

use serde::{Deserialize, Serialize};

use super::LogRecord;

/// Filters of `GET /admin/logs` (all optional). Times are Unix milliseconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub key: Option<String>,
    pub user: Option<String>,
    pub virtual_key: Option<String>,
    pub request_id: Option<String>,
    /// Free text, matched against the model, tags, error message and stored content.
    pub q: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogPage {
    pub data: Vec<LogRecord>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub const COLUMNS: &str = "id, request_id, ts, endpoint, stream, model, provider, deployment, served_model, key_name, \
    user_id, virtual_key, tags, status, error_type, error_message, attempts, fallback_index, latency_ms, upstream_ms, \
    ttft_ms, prompt_tokens, completion_tokens, cached_tokens, cost_usd, request, response";

pub enum Param {
    Int(i64),
    Text(String),
}

/// The SQL after `SELECT ... FROM request_logs`, its parameters, and the page size.
/// `placeholder(n)` writes the n-th (1-based) parameter; `like` is the case-insensitive operator.
pub fn build(
    q: &LogQuery,
    placeholder: fn(usize) -> String,
    like: &str,
) -> Result<(String, Vec<Param>, usize), String> {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let mut add = |clause: &str, values: Vec<Param>, clauses: &mut Vec<String>| {
        // `{}` marks each parameter (a `?` would collide with SQLite's `?N` placeholders).
        let mut c = clause.to_string();
        for v in values {
            params.push(v);
            c = c.replacen("{}", &placeholder(params.len()), 1);
        }
        clauses.push(c);
    };
    if let Some(v) = q.since {
        add("ts >= {}", vec![Param::Int(v)], &mut clauses);
    }
    if let Some(v) = q.until {
        add("ts < {}", vec![Param::Int(v)], &mut clauses);
    }
    for (column, value) in [
        ("provider", &q.provider),
        ("model", &q.model),
        ("key_name", &q.key),
        ("user_id", &q.user),
        ("virtual_key", &q.virtual_key),
        ("request_id", &q.request_id),
    ] {
        if let Some(v) = value {
            add(
                &format!("{column} = {{}}"),
                vec![Param::Text(v.clone())],
                &mut clauses,
            );
        }
    }
    if let Some(s) = q.status {
        add("status = {}", vec![Param::Int(s as i64)], &mut clauses);
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let cols = [
            "model",
            "tags",
            "error_message",
            "request",
            "response",
            "deployment",
        ];
        let clause = cols
            .iter()
            .map(|c| format!("{c} {like} {{}} ESCAPE '\\'"))
            .collect::<Vec<_>>()
            .join(" OR ");
        add(
            &format!("({clause})"),
            cols.iter().map(|_| Param::Text(pattern.clone())).collect(),
            &mut clauses,
        );
    }
    if let Some(cursor) = &q.cursor {
        let (ts, id) = cursor
            .split_once('_')
            .and_then(|(t, i)| Some((t.parse::<i64>().ok()?, i.to_string())))
            .ok_or_else(|| format!("invalid cursor {cursor:?}"))?;
        add(
            "(ts < {} OR (ts = {} AND id < {}))",
            vec![Param::Int(ts), Param::Int(ts), Param::Text(id)],
            &mut clauses,
        );
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500) as usize;
    let mut sql = String::new();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY ts DESC, id DESC LIMIT {}", limit + 1));
    Ok((sql, params, limit))
}

/// Cuts a page fetched with `limit + 1` rows, setting the cursor when there is more.
pub fn page(mut rows: Vec<LogRecord>, limit: usize) -> LogPage {
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| format!("{}_{}", r.ts, r.id))
    } else {
        None
    };
    LogPage {
        data: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let q = LogQuery {
            since: Some(5),
            model: Some("m".into()),
            q: Some("50%_off".into()),
            cursor: Some("9_abc".into()),
            ..Default::default()
        };
        for (style, like) in [(|n: usize| format!("?{n}")) as fn(usize) -> String, |n| {
            format!("${n}")
        }]
        .into_iter()
        .zip(["LIKE", "ILIKE"])
        {
            let (sql, params, limit) = build(&q, style, like).unwrap();
            assert_eq!(limit, 50);
            assert_eq!(params.len(), 1 + 1 + 6 + 3);
            // Every placeholder 1..=n appears exactly once, in order.
            let positions: Vec<usize> = (1..=params.len())
                .map(|n| {
                    let p = style(n);
                    let hits: Vec<usize> = sql
                        .match_indices(&p)
                        .filter(|(i, _)| {
                            !sql[i + p.len()..].starts_with(|c: char| c.is_ascii_digit())
                        })
                        .map(|(i, _)| i)
                        .collect();
                    assert_eq!(hits.len(), 1, "{p} in {sql}");
                    hits[0]
                })
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{sql}");
            assert!(!sql.contains("{}"), "{sql}");
            assert!(sql.contains(&format!("model = {}", style(2))), "{sql}");
            assert!(
                sql.contains(&format!(
                    "(ts < {} OR (ts = {} AND id < {}))",
                    style(9),
                    style(10),
                    style(11)
                )),
                "{sql}"
            );
        }
        let Param::Text(pattern) = &build(&q, |n| format!("?{n}"), "LIKE").unwrap().1[2] else {
            panic!()
        };
        assert_eq!(
            pattern, "%50\\%\\_off%",
            "LIKE wildcards in the text are escaped"
        );
        assert!(
            build(
                &LogQuery {
                    cursor: Some("nope".into()),
                    ..Default::default()
                },
                |n| format!("?{n}"),
                "LIKE"
            )
            .is_err()
        );
    }
}
