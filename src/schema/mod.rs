//! Canonical request and response types: the OpenAI shapes, which every provider adapter translates
//! to and from. Every struct keeps the fields it does not know in `extra`, so they are forwarded,
//! never dropped.

mod chat;
mod content;
mod embeddings;
pub(crate) mod extra;
mod json_scan;
mod models;
mod raw;
#[cfg(test)]
mod raw_oracle;
mod raw_stream;
mod stream;

pub use chat::*;
pub use content::*;
pub use embeddings::*;
pub use models::*;
pub use raw::*;
pub use raw_stream::*;
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

/// `serde_json::from_slice`, with the body's UTF-8 checked once up front.
///
/// From bytes, serde_json checks the UTF-8 of every string it reads, one call per string, which on a
/// chat body costs several times a single pass over the whole body; from a `&str` it checks nothing.
/// Bytes that are not UTF-8 take `from_slice`, so the error and its position are the same as before.
pub fn json_from_bytes<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// A fresh random id (32 lowercase hex digits) for requests and log records that came without
/// one. Encoded directly: formatting through `Display` costs more than drawing the random bytes.
pub fn random_id() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// Parses a JSON body, reporting the path of the first bad field (`messages[1].content`).
///
/// Valid bodies take the plain parser; only a failed parse is repeated with path tracking, which
/// costs an allocation per field and is only worth it for the error message.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> crate::error::Result<T> {
    if let Ok(value) = json_from_bytes(body) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn json_from_bytes_reads_what_from_slice_reads() {
        let body =
            r#"{"a": "caf\u00e9 \ud83d\ude00", "b": ["é", 1.5e3, null], "c": {"d": "\"q\""}}"#;
        let ours: Value = json_from_bytes(body.as_bytes()).unwrap();
        let theirs: Value = serde_json::from_slice(body.as_bytes()).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(ours["a"], "café 😀");
    }

    #[test]
    fn json_from_bytes_reports_bad_utf8_as_from_slice_does() {
        // Invalid UTF-8 inside a string, then outside one, then JSON that is merely broken.
        for body in [
            &b"{\"a\": \"x\xff\"}"[..],
            &b"{\"a\": 1}\xff"[..],
            &b"{\"a\": }"[..],
        ] {
            let ours = json_from_bytes::<Value>(body).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<Value>(body)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn random_ids_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (random_id(), random_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
        }
        assert_ne!(a, b);
    }
}
