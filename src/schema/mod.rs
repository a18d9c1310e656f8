//! Canonical request and response types: the OpenAI shapes, which every provider adapter translates
//! to and from. Every struct keeps the fields it does not know in `extra`, so they are forwarded,
//! never dropped.

mod chat;
mod content;
mod embeddings;
pub(crate) mod extra;
mod models;
mod raw;
mod stream;

pub use chat::*;
pub use content::*;
pub use embeddings::*;
pub use models::*;
pub use raw::*;
pub use stream::*;

/// Unknown fields, kept in arrival order of keys as serde_json gives them.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses a JSON body, reporting the path of the first bad field (`messages[1].content`).
///
/// Valid bodies take the plain parser; only a failed parse is repeated with path tracking, which
/// costs an allocation per field and is only worth it for the error message.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> crate::error::Result<T> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(crate::error::from_path_error)?;
    de.end().map_err(|e| {
        crate::error::GatewayError::invalid_request(format!(
            "invalid request body: trailing data after the JSON value ({e})"
        ))
    })?;
    Ok(value)
}
