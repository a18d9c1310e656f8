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

/// `value` as JSON: the text serde_json writes (a test compares the two byte for byte), with
/// strings escaped by SIMD (sonic-rs). serde_json's writer checks each byte of a string in turn,
/// and a prompt is most of a request: on a chat request of 4 KB that loop was a quarter of the
/// gateway's instructions. For the bodies the gateway sends upstream and the answers and chunks
/// it writes.
pub fn to_json_vec<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    sonic_rs::to_vec(value).map_err(|e| e.to_string())
}

/// [`to_json_vec`], written at the end of `out`.
pub fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), String> {
    sonic_rs::to_writer(out, value).map_err(|e| e.to_string())
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

    /// The bytes serde_json writes for `value`, and ours.
    fn both<T: serde::Serialize + ?Sized + std::fmt::Debug>(value: &T) {
        let theirs = serde_json::to_vec(value).unwrap();
        let ours = to_json_vec(value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{value:?}"
        );
        let mut after = b"data: ".to_vec();
        write_json(&mut after, value).unwrap();
        assert_eq!(after[6..], theirs[..]);
    }

    #[test]
    fn json_is_written_as_serde_json_writes_it() {
        // Every ASCII character, each at every offset of strings around the SIMD block sizes,
        // among plain text and among multi-byte characters.
        for filler in ["a", "é", "😀"] {
            for len in [0usize, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100] {
                for at in [0, len / 2, len.saturating_sub(1)] {
                    for c in (0u8..0x80).map(char::from).chain(['\u{2028}', '\u{fffd}']) {
                        let mut text: Vec<String> = vec![filler.to_string(); len];
                        if at < len {
                            text[at] = c.to_string();
                        }
                        let text = text.concat();
                        both(&text);
                        both(&serde_json::json!({ text.clone(): [text] }));
                    }
                }
            }
        }
        let all: String = (0u8..0x80).map(char::from).collect();
        both(&all);
        for n in [
            0.0,
            -0.0,
            0.1,
            0.7,
            1.0,
            1.5e3,
            1e-7,
            123456789.123,
            1e21,
            1e22,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -2.5,
            f64::NAN,
            f64::INFINITY,
        ] {
            both(&n);
            both(&(n as f32));
        }
        both(&serde_json::json!([
            u64::MAX,
            i64::MIN,
            0,
            -1,
            null,
            true,
            false,
            {},
            [],
            ""
        ]));
        // Requests as clients send them, every field of the canonical form.
        for fixture in [
            include_str!("../../tests/fixtures/openai/chat_request_kitchen_sink.json"),
            include_str!("../../tests/fixtures/anthropic/chat_request.canonical.json"),
            include_str!("../../tests/fixtures/anthropic/json_mode_request.canonical.json"),
        ] {
            let request: ChatRequest = serde_json::from_str(fixture).unwrap();
            both(&request);
            both(&serde_json::from_str::<Value>(fixture).unwrap());
        }
        both(
            &serde_json::from_str::<EmbeddingRequest>(include_str!(
                "../../tests/fixtures/openai/embeddings_request.json"
            ))
            .unwrap(),
        );
    }

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
