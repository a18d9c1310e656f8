//! Chat completions passed on in the upstream's own JSON.
//!
//! When an OpenAI-compatible upstream answers a client of the OpenAI API, parsing the answer into
//! a [`ChatResponse`] and encoding it back gives the client the same answer, at the cost of
//! building and dropping every string of it, and with its keys reordered, its numbers reformatted
//! and its null optional fields (`"refusal": null`) left out. A [`RawChatResponse`] keeps the
//! upstream's bytes and reads only what the gateway accounts with (usage, finish reasons). It is
//! used only where nothing needs the parsed form; [`RawChatResponse::parse`] gives it to anything
//! that does.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{ChatResponse, FinishReason, Role, Usage};

/// A chat completion as the upstream sent it (OpenAI JSON), and what the gateway reads from it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawChatResponse {
    /// The JSON body, byte for byte.
    pub body: Bytes,
    pub usage: Option<Usage>,
    /// One per choice, in order (`None` where the upstream gave none).
    pub finish_reasons: Vec<Option<FinishReason>>,
}

/// A chat completion from an upstream: parsed, or kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatReply {
    Parsed(ChatResponse),
    Raw(RawChatResponse),
}

/// What an answer is checked for before it is passed on unparsed: every field that the parsed
/// form requires, or fills in when absent, is there with the type the parsed form reads it as,
/// at the top level and in each choice and message (the rest is passed on as is either way, as
/// unknown fields are); so the bytes passed on say what parsing and encoding them again would,
/// give or take layout and explicit nulls. The token counts inside `usage` are read but not
/// required. Anything else (a string with escapes where a borrowed one is read, a checked field
/// given twice, an `error` field) fails the check and takes the parsing path, which handles
/// everything and reports what is wrong. The top level is the same for a streamed chunk, whose
/// choices (`C`) differ (`raw_stream.rs`).
#[derive(Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>"))]
#[allow(dead_code)] // the fields are read to be checked, not used
pub(super) struct Checked<'a, C> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    object: &'a str,
    created: u64,
    #[serde(borrow)]
    model: &'a str,
    pub(super) choices: Vec<C>,
    pub(super) usage: Option<Usage>,
    /// A mid-stream failure (or an answer that is one): `default` makes an absent one `false`.
    #[serde(default, deserialize_with = "present")]
    pub(super) error: bool,
}

/// A field that is there, whatever its value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d)?;
    Ok(true)
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CheckedChoice {
    index: u32,
    message: CheckedMessage,
    #[serde(deserialize_with = "nullable")]
    finish_reason: Option<FinishReason>,
    #[serde(deserialize_with = "nullable")]
    logprobs: Option<IgnoredAny>,
}

/// The content and tool calls of a message pass through unread.
#[derive(Deserialize)]
#[allow(dead_code)]
struct CheckedMessage {
    role: Role,
    #[serde(deserialize_with = "nullable")]
    content: Option<IgnoredAny>,
}

/// A field that must be present, and may be null: with `deserialize_with`, an absent field is an
/// error (a plain `Option` field is read as `None` when absent).
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

impl RawChatResponse {
    /// Keeps `body` as it is if it is a complete OpenAI chat completion (see `Checked`);
    /// `None` if it is not, and it must be parsed (which also reports what is wrong with it).
    pub fn check(body: &Bytes) -> Option<RawChatResponse> {
        // UTF-8 checked over the whole body, not string by string: content is skipped unread,
        // and serde_json does not check what it skips.
        let text = std::str::from_utf8(body).ok()?;
        let checked: Checked<'_, CheckedChoice> = serde_json::from_str(text).ok()?;
        if checked.error {
            return None;
        }
        // Into a new vector: collected in place, the choices' buffer would be shrunk to fit
        // with a reallocation, which costs more than a fresh small one.
        let mut finish_reasons = Vec::with_capacity(checked.choices.len());
        finish_reasons.extend(checked.choices.into_iter().map(|c| c.finish_reason));
        Some(RawChatResponse {
            body: body.clone(),
            usage: checked.usage,
            finish_reasons,
        })
    }

    /// The parsed form of the body.
    pub fn parse(&self) -> Result<ChatResponse, String> {
        crate::schema::json_from_bytes(&self.body).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn fixture() -> Bytes {
        Bytes::from(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/openai/chat_response.json"
            ))
            .unwrap(),
        )
    }

    /// What the parsing path would send for `body`.
    fn parsed_then_encoded(body: &[u8]) -> Value {
        let parsed: ChatResponse = serde_json::from_slice(body).unwrap();
        serde_json::to_value(&parsed).unwrap()
    }

    #[test]
    fn a_complete_answer_is_kept_with_its_usage_and_finish_reasons() {
        let body = fixture();
        let raw = RawChatResponse::check(&body).expect("complete");
        assert_eq!(raw.body, body);
        let usage = raw.usage.as_ref().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (50, 12));
        assert_eq!(usage.cached_tokens(), 32);
        assert_eq!(
            raw.finish_reasons,
            [Some(FinishReason::ToolCalls), Some(FinishReason::Stop)]
        );
        assert_eq!(raw.parse().unwrap(), serde_json::from_slice(&body).unwrap());
        // Passing the bytes on says what parsing and encoding them would.
        let sent: Value = serde_json::from_slice(&raw.body).unwrap();
        assert_eq!(sent, parsed_then_encoded(&body));
    }

    #[test]
    fn anything_the_parsed_form_would_fill_in_or_reject_takes_the_parsing_path() {
        let complete = json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": null, "logprobs": null,
                         "message": {"role": "assistant", "content": null}}]
        });
        let body = Bytes::from(complete.to_string());
        let raw = RawChatResponse::check(&body).expect("complete, nulls included");
        assert_eq!(raw.usage, None);
        assert_eq!(raw.finish_reasons, [None]);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            parsed_then_encoded(&body)
        );

        let without = |path: &[&str]| {
            let mut v = complete.clone();
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut v;
            for p in parents {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at.as_object_mut().unwrap().remove(*last).unwrap();
            Bytes::from(v.to_string())
        };
        for path in [
            &["id"][..],
            &["object"],
            &["created"],
            &["model"],
            &["choices"],
            &["choices", "0", "index"],
            &["choices", "0", "finish_reason"],
            &["choices", "0", "logprobs"],
            &["choices", "0", "message"],
            &["choices", "0", "message", "role"],
            &["choices", "0", "message", "content"],
        ] {
            assert_eq!(RawChatResponse::check(&without(path)), None, "{path:?}");
        }
        for (what, body) in [
            (
                "escaped id",
                r#"{"id":"c\u0031","object":"chat.completion","created":1,"model":"m","choices":[]}"#,
            ),
            (
                "an error",
                r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[],"error":{"message":"x"}}"#,
            ),
            (
                "created not a count",
                r#"{"id":"c","object":"chat.completion","created":-1,"model":"m","choices":[]}"#,
            ),
            (
                "unknown role",
                r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":null,"logprobs":null,"message":{"role":"robot","content":"x"}}]}"#,
            ),
            (
                "duplicate key",
                r#"{"id":"c","id":"d","object":"chat.completion","created":1,"model":"m","choices":[]}"#,
            ),
            (
                "trailing data",
                r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[]} x"#,
            ),
            ("not JSON", "<html>bad gateway</html>"),
        ] {
            assert_eq!(RawChatResponse::check(&Bytes::from(body)), None, "{what}");
        }
        // Not UTF-8 inside the content, which the check skips over without reading it: still not
        // passed on (a client would get a body that is not JSON).
        let mut body = fixture().to_vec();
        let at = body.windows(5).position(|w| w == b"Paris").unwrap();
        body[at] = 0xff;
        assert_eq!(RawChatResponse::check(&Bytes::from(body)), None);
    }
}
