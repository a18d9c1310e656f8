//! Reading request bodies within the configured size limit, and request ids.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::response::REQUEST_ID;
use crate::error::{ErrorKind, GatewayError, Result};

/// The whole body, or 413 when it is over `limit` bytes (checked against `Content-Length` first,
/// so an oversized upload is refused before it is read).
pub async fn read_limited(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "request body is larger than the limit of {limit} bytes (server.max_request_body)"
            ),
        )
        .with_code("request_too_large")
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(GatewayError::invalid_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// The caller's `x-request-id` when it is a sane token, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crate::schema::random_id)
}

/// Rejects an empty body with a message that says what was expected.
pub fn require_json(body: &Bytes) -> Result<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::invalid_request(
            "request body is empty: expected a JSON object",
        ));
    }
    Ok(())
}
