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

use super::json_scan::{Invalid, Scan, Scanner, once};
use super::{
    ChatResponse, CompletionTokensDetails, FinishReason, PromptTokensDetails, Role, Usage,
};

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
/// at the top level and in each choice and message (the rest is validated and passed on as is
/// either way, as unknown fields are); so the bytes passed on say what parsing and encoding them
/// again would, give or take layout and explicit nulls. The token counts inside `usage` are read
/// but not required. Anything else (a string with escapes where a plain one is read, a checked
/// field given twice, an `error` field) fails the check and takes the parsing path, which
/// handles everything and reports what is wrong. The top level is the same for a streamed
/// chunk, whose choices (`C`, read by `choice`) differ (`raw_stream.rs`).
pub(super) struct TopLevel<C> {
    pub(super) choices: Vec<C>,
    pub(super) usage: Option<Usage>,
}

pub(super) fn check_top_level<'a, C>(
    s: &mut Scanner<'a>,
    mut choice: impl FnMut(&mut Scanner<'a>) -> Scan<C>,
) -> Scan<TopLevel<C>> {
    let (mut id, mut object, mut created, mut model) = (None, None, None, None);
    let (mut choices, mut usage) = (None, None);
    s.object(|s, key| match key {
        "id" => once(&mut id, s.unread_plain_str()?),
        "object" => once(&mut object, s.unread_plain_str()?),
        "created" => once(&mut created, s.u64()?),
        "model" => once(&mut model, s.unread_plain_str()?),
        "choices" => {
            let mut list = Vec::new();
            s.array(|s| {
                list.push(choice(s)?);
                Ok(())
            })?;
            once(&mut choices, list)
        }
        "usage" => once(&mut usage, nullable(s, read_usage)?),
        // A mid-stream failure (or an answer that is one), whatever its value.
        "error" => Err(Invalid),
        _ => s.skip(),
    })?;
    s.end()?;
    if id.is_none() || object.is_none() || created.is_none() || model.is_none() {
        return Err(Invalid);
    }
    Ok(TopLevel {
        choices: choices.ok_or(Invalid)?,
        usage: usage.flatten(),
    })
}

/// Usage as the parsed form reads it: the token counts and their details (every field
/// optional; counts non-negative integers, details' counts possibly null). Usage with fields
/// beyond those (which the parsed form keeps) is read by the parsed form's own reader.
fn read_usage(s: &mut Scanner<'_>) -> Scan<Usage> {
    let mut rest = s.clone();
    let (mut prompt, mut completion, mut total) = (None, None, None);
    let (mut prompt_details, mut completion_details) = (None, None);
    let mut known_fields_only = true;
    s.object(|s, key| match key {
        "prompt_tokens" => once(&mut prompt, s.u64()?),
        "completion_tokens" => once(&mut completion, s.u64()?),
        "total_tokens" => once(&mut total, s.u64()?),
        "prompt_tokens_details" => {
            let read = details(s, ["cached_tokens", "audio_tokens"], &mut known_fields_only)?;
            once(&mut prompt_details, read)
        }
        "completion_tokens_details" => {
            let read = details(
                s,
                ["reasoning_tokens", "audio_tokens"],
                &mut known_fields_only,
            )?;
            once(&mut completion_details, read)
        }
        _ => {
            known_fields_only = false;
            s.skip()
        }
    })?;
    if !known_fields_only {
        return serde_json::from_str::<Usage>(rest.value_text()?).map_err(|_| Invalid);
    }
    Ok(Usage {
        prompt_tokens: prompt.unwrap_or(0),
        completion_tokens: completion.unwrap_or(0),
        total_tokens: total.unwrap_or(0),
        prompt_tokens_details: prompt_details.flatten().map(|[cached, audio]| {
            PromptTokensDetails {
                cached_tokens: cached,
                audio_tokens: audio,
                ..Default::default()
            }
        }),
        completion_tokens_details: completion_details.flatten().map(|[reasoning, audio]| {
            CompletionTokensDetails {
                reasoning_tokens: reasoning,
                audio_tokens: audio,
                ..Default::default()
            }
        }),
        ..Default::default()
    })
}

/// A details object of usage (or null): the two counts named, each possibly null or absent;
/// another field clears `known_fields_only`.
fn details(
    s: &mut Scanner<'_>,
    names: [&str; 2],
    known_fields_only: &mut bool,
) -> Scan<Option<[Option<u64>; 2]>> {
    nullable(s, |s| {
        let mut counts = [None, None];
        s.object(|s, key| match names.iter().position(|name| *name == key) {
            Some(i) => once(&mut counts[i], nullable(s, Scanner::u64)?),
            None => {
                *known_fields_only = false;
                s.skip()
            }
        })?;
        Ok(counts.map(Option::flatten))
    })
}

/// A field that must be there and may be null, read by `read` when it is not.
pub(super) fn nullable<'a, T>(
    s: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Scan<T>,
) -> Scan<Option<T>> {
    if s.null()? {
        Ok(None)
    } else {
        read(s).map(Some)
    }
}

pub(super) fn finish_reason(s: &mut Scanner<'_>) -> Scan<FinishReason> {
    s.plain_str().map(FinishReason::parse)
}

pub(super) fn role(s: &mut Scanner<'_>) -> Scan<Role> {
    s.plain_str()
        .and_then(|name| Role::from_name(name).ok_or(Invalid))
}

pub(super) fn index(s: &mut Scanner<'_>) -> Scan<u32> {
    u32::try_from(s.u64()?).map_err(|_| Invalid)
}

/// A choice of an answer: its `index`, `message` (with a known `role` and a `content`, which
/// may be null), `finish_reason` and `logprobs` (both may be null) are required; gives the
/// finish reason.
fn answer_choice(s: &mut Scanner<'_>) -> Scan<Option<FinishReason>> {
    let (mut at, mut message, mut finish, mut logprobs) = (None, None, None, None);
    s.object(|s, key| match key {
        "index" => once(&mut at, index(s)?),
        "message" => {
            let (mut role_read, mut content) = (None, None);
            s.object(|s, key| match key {
                "role" => once(&mut role_read, role(s)?),
                "content" => once(&mut content, s.skip()?),
                _ => s.skip(),
            })?;
            if role_read.is_none() || content.is_none() {
                return Err(Invalid);
            }
            once(&mut message, ())
        }
        "finish_reason" => once(&mut finish, nullable(s, finish_reason)?),
        "logprobs" => once(&mut logprobs, s.skip()?),
        _ => s.skip(),
    })?;
    if at.is_none() || message.is_none() || logprobs.is_none() {
        return Err(Invalid);
    }
    finish.ok_or(Invalid)
}

impl RawChatResponse {
    /// Keeps `body` as it is if it is a complete OpenAI chat completion (see `check_top_level`);
    /// `None` if it is not, and it must be parsed (which also reports what is wrong with it).
    pub fn check(body: &Bytes) -> Option<RawChatResponse> {
        // UTF-8 checked over the whole body at once: the scanner reads a `str`.
        let text = std::str::from_utf8(body).ok()?;
        let checked = check_top_level(&mut Scanner::new(text), answer_choice).ok()?;
        Some(RawChatResponse {
            body: body.clone(),
            usage: checked.usage,
            finish_reasons: checked.choices,
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
    fn usage_is_read_as_the_parsed_form_reads_it() {
        for text in [
            r#"{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}"#,
            r#"{}"#,
            r#"{"prompt_tokens":1,"prompt_tokens_details":null,
                "completion_tokens_details":{"reasoning_tokens":4,"audio_tokens":null}}"#,
            // Fields the fast reader does not know: read by the parsed form's reader, kept.
            r#"{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":2,"text_tokens":9}}"#,
            r#"{"prompt_tokens":1,"cost":0.5,"provider_specific":{"a":[1]}}"#,
        ] {
            let mut s = Scanner::new(text);
            let ours = read_usage(&mut s).unwrap();
            s.end().unwrap();
            assert_eq!(ours, serde_json::from_str::<Usage>(text).unwrap(), "{text}");
        }
        for text in [
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"prompt_tokens":null}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1.5}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":1}}"#,
            r#"{"completion_tokens_details":[]}"#,
        ] {
            assert!(read_usage(&mut Scanner::new(text)).is_err(), "{text}");
            assert!(serde_json::from_str::<Usage>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn accepts_nothing_serde_would_not_and_reads_what_serde_reads() {
        use crate::schema::raw_oracle;
        let fixture = String::from_utf8(fixture().to_vec()).unwrap();
        let compact =
            serde_json::to_string(&serde_json::from_str::<Value>(&fixture).unwrap()).unwrap();
        let (mut accepted, mut refused_too) = (0, 0);
        for text in [fixture.clone(), compact]
            .iter()
            .flat_map(|t| std::iter::once(t.clone()).chain(raw_oracle::corruptions(t)))
        {
            let body = Bytes::from(text.clone());
            match RawChatResponse::check(&body) {
                Some(raw) => {
                    accepted += 1;
                    let oracle = raw_oracle::answer(&text)
                        .unwrap_or_else(|| panic!("serde refuses what the scanner took: {text}"));
                    assert_eq!((raw.usage, raw.finish_reasons), oracle, "{text}");
                }
                // Refusing more than serde is allowed (the parsing path takes it), but rare.
                None if raw_oracle::answer(&text).is_some() => refused_too += 1,
                None => {}
            }
        }
        assert!(accepted > 100, "{accepted}");
        assert!(refused_too * 20 < accepted, "{refused_too} of {accepted}");
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
