//! Operational routes: `GET /metrics` (Prometheus) and `GET /admin/logs` (the request log
//! store). Admin routes require `server.admin_token` as a Bearer token when one is configured.

use axum::extract::{Query, State};
use axum::response::Response;
use http::HeaderMap;

use super::AppState;
use super::body::request_id;
use super::response::{error_response, local_json};
use crate::error::{ErrorKind, GatewayError};
use crate::telemetry::logstore::LogQuery;

pub async fn metrics(State(state): State<AppState>) -> Response {
    if !state.gateway.config().telemetry.metrics.enabled {
        return error_response(
            &GatewayError::not_found("metrics are disabled (telemetry.metrics.enabled)"),
            "metrics",
        );
    }
    crate::telemetry::metrics::set_state_gauges(&state.gateway);
    let body = crate::telemetry::metrics::render();
    Response::builder()
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(axum::body::Body::from(body))
        .unwrap_or_else(|_| {
            error_response(&GatewayError::internal("cannot render metrics"), "metrics")
        })
}

/// Checks the admin token, comparing in constant time.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(token) = state.gateway.config().server.admin_token.clone() else {
        return Ok(());
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = token.expose().as_bytes();
    let same = given.len() == expected.len()
        && given
            .as_bytes()
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorKind::Authentication,
            "admin routes need `Authorization: Bearer <server.admin_token>`",
        )
        .with_code("invalid_admin_token"))
    }
}

pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let rid = request_id(&headers);
    if let Err(e) = authorized(&state, &headers) {
        return error_response(&e, &rid);
    }
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return error_response(
                &GatewayError::invalid_request(format!("invalid log query: {}", e.body_text())),
                &rid,
            );
        }
    };
    match state.gateway.query_logs(&q).await {
        Ok(page) => local_json(serde_json::to_vec(&page).unwrap_or_default(), &rid),
        Err(e) => error_response(&e, &rid),
    }
}
