//! Streamed chat chunks passed on in the upstream's own JSON.
//!
//! The streamed counterpart of [`RawChatResponse`](super::RawChatResponse): when an
//! OpenAI-compatible upstream streams to a client of the OpenAI API, each chunk is parsed into a
//! [`ChatChunk`] and encoded back into the same JSON, give or take layout and explicit nulls. A
//! [`RawChunk`] keeps the chunk's text and reads only what the gateway accounts with (usage,
//! finish reasons, whether it carries a token); [`StreamChunk::into_parsed`] gives the parsed form
//! to anything that needs it. A stream's chunks are checked against the last one's
//! [`ChunkShape`], which mostly spares walking each again.

use bytes::Bytes;

use super::json_scan::{Invalid, Scan, Scanner, Slot, SlotKind, once};
use super::raw;
use super::{ChatChunk, FinishReason, Usage};

/// A chunk as the upstream sent it (the JSON of one `data:` event), and what the gateway reads
/// from it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawChunk {
    /// The chunk's JSON, byte for byte (without the SSE framing).
    pub data: Bytes,
    /// Boxed, as in [`StreamChunk::Parsed`]: chunks move through several layers, and only the
    /// last chunk of a stream carries usage.
    pub usage: Option<Box<Usage>>,
    /// The choices that finished in this chunk: (choice index, reason).
    pub finished: Vec<(u32, FinishReason)>,
    /// Some choice carries a token ([`ChatChunk::has_token`]).
    pub has_token: bool,
    /// How many choices the chunk has (none in the usage-only chunk that ends a stream).
    pub choices: usize,
}

/// A streamed chunk: parsed, or kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamChunk {
    /// Boxed: a chunk is moved through every layer between the upstream and the client, and the
    /// parsed form is four times the size of the raw one.
    Parsed(Box<ChatChunk>),
    Raw(RawChunk),
}

/// What a stream's chunks said about usage and how its choices finished, folded without the
/// content: what accounting needs from a streamed answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    pub usage: Option<Usage>,
    /// By choice index (`None` where a choice has not finished).
    pub finish_reasons: Vec<Option<FinishReason>>,
}

/// A chunk's choice as it is checked before the chunk is passed on unparsed (its top level is
/// checked as a complete answer's, `raw::check_top_level`): `index`, `delta`, `finish_reason`
/// and `logprobs` are required (the last two may be null), as the parsed form requires or fills
/// them in. The delta is read for its role (a known one, if any) and whether it carries a token
/// (content text, which must be a string if not null, or tool calls); the rest passes through
/// validated but unread.
struct CheckedChoice {
    index: u32,
    finish_reason: Option<FinishReason>,
    delta: Delta,
}

/// What a delta says about tokens ([`ChatChunk::has_token`]).
#[derive(Clone, Copy)]
struct Delta {
    /// Its content is a string that is not empty.
    text: bool,
    /// It carries tool calls.
    tool_calls: bool,
}

fn chunk_choice(s: &mut Scanner<'_>) -> Scan<CheckedChoice> {
    let (mut at, mut delta, mut finish, mut logprobs) = (None, None, None, None);
    s.object(|s, key| match key {
        "index" => once(&mut at, raw::index(s)?),
        "delta" => once(&mut delta, read_delta(s)?),
        "finish_reason" => once(&mut finish, raw::nullable(s, raw::finish_reason)?),
        "logprobs" => once(&mut logprobs, s.skip()?),
        _ => s.skip(),
    })?;
    match (at, delta, finish, logprobs) {
        (Some(index), Some(delta), Some(finish_reason), Some(())) => Ok(CheckedChoice {
            index,
            finish_reason,
            delta,
        }),
        _ => Err(Invalid),
    }
}

fn read_delta(s: &mut Scanner<'_>) -> Scan<Delta> {
    let (mut role, mut text, mut tool_calls) = (None, None, None);
    s.object(|s, key| match key {
        "role" => once(&mut role, raw::nullable(s, raw::role)?),
        "content" => once(&mut text, raw::nullable(s, Scanner::token_str)?),
        "tool_calls" => once(&mut tool_calls, raw::nullable(s, Scanner::skip)?.is_some()),
        _ => s.skip(),
    })?;
    Ok(Delta {
        text: text.flatten().unwrap_or(false),
        tool_calls: tool_calls.unwrap_or(false),
    })
}

/// A chunk that passed the check, with what else the check found.
struct Checked {
    chunk: RawChunk,
    /// Some choice carries tool calls.
    tool_calls: bool,
    /// The strings read but not looked into.
    slots: Vec<Slot>,
}

/// The full check of a chunk's (trimmed) text, recording its slots.
fn check_text(data: String) -> Result<Checked, String> {
    let text = data.trim();
    // A multi-line event would need one `data:` field per line to be passed on.
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
        return Err(data);
    }
    let mut scanner = Scanner::recording(text);
    let Ok(checked) = raw::check_top_level(&mut scanner, chunk_choice) else {
        return Err(data);
    };
    let slots = scanner.into_slots();
    let has_token = checked
        .choices
        .iter()
        .any(|c| c.delta.text || c.delta.tool_calls);
    let tool_calls = checked.choices.iter().any(|c| c.delta.tool_calls);
    let choices = checked.choices.len();
    let finished = checked
        .choices
        .into_iter()
        .filter_map(|c| Some((c.index, c.finish_reason?)))
        .collect();
    let usage = checked.usage.map(Box::new);
    let range = range_in(&data, text);
    let data = slice_of(data, range);
    Ok(Checked {
        chunk: RawChunk {
            data,
            usage,
            finished,
            has_token,
            choices,
        },
        tool_calls,
        slots,
    })
}

/// Where `part` (a slice of `whole`) is in `whole`.
fn range_in(whole: &str, part: &str) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// `range` of `data`, without a copy.
fn slice_of(data: String, range: std::ops::Range<usize>) -> Bytes {
    let whole = range.start == 0 && range.end == data.len();
    let data = Bytes::from(data);
    if whole { data } else { data.slice(range) }
}

impl RawChunk {
    /// Keeps `data` (the text of one `data:` event) as it is if it is a complete OpenAI chunk
    /// (see `raw::check_top_level`) that can be framed as one `data:` line again; gives it back
    /// if it must be parsed (which also reports what is wrong with it). A stream's chunks are
    /// checked with [`ChunkShape::check`], which gives the same verdict, mostly at a fraction of
    /// the cost; this is that check with nothing learned yet.
    pub fn check(data: String) -> Result<RawChunk, String> {
        ChunkShape::default().check(data)
    }

    /// The parsed form of the chunk.
    pub fn parse(&self) -> Result<ChatChunk, String> {
        crate::schema::json_from_bytes(&self.data).map_err(|e| e.to_string())
    }
}

/// The shape of a stream's last chunk that passed [`RawChunk::check`], to check the next ones
/// against.
///
/// A stream's chunks mostly differ only in strings the check validates but does not read: the
/// token's text, and for some upstreams an id or a padding field. A chunk whose text is the
/// shape's outside those strings (its slots), and whose strings there read as a slot of
/// their kind, gets the shape's verdict without being walked again: the check is a
/// deterministic walk, so it reaches each slot in the same state, and leaves it in the same
/// state whatever string of the slot's kind it reads there. Of those strings only whether the
/// token text is empty is read. Any other chunk is checked in full and becomes the shape.
#[derive(Debug, Default)]
pub struct ChunkShape {
    learned: Option<Shape>,
}

#[derive(Debug)]
struct Shape {
    /// The chunk the shape was learned from (trimmed).
    text: Bytes,
    slots: Vec<Slot>,
    finished: Vec<(u32, FinishReason)>,
    choices: usize,
    /// Some choice carries tool calls: a token, whatever the text slots hold.
    tool_calls: bool,
}

impl Shape {
    /// Whether `text` has this shape, and if so, whether it carries a token.
    fn has_token(&self, text: &str) -> Option<bool> {
        let (learned, bytes) = (&self.text[..], text.as_bytes());
        let (mut from, mut at) = (0, 0);
        let mut text_in_slots = false;
        for slot in &self.slots {
            // Mostly the slot holds the same string as in the learned chunk (an id, a model),
            // compared with what comes before it at once: the same bytes are the same string.
            let same_string = &learned[from..slot.end];
            if bytes.get(at..at + same_string.len()) == Some(same_string) {
                text_in_slots |= slot.kind == SlotKind::Token && slot.end - slot.start > 2;
                (from, at) = (slot.end, at + same_string.len());
                continue;
            }
            let same = &learned[from..slot.start];
            if bytes.get(at..at + same.len())? != same {
                return None;
            }
            let (end, empty) = Scanner::slot_at(text, at + same.len(), slot.kind)?;
            text_in_slots |= slot.kind == SlotKind::Token && !empty;
            (from, at) = (slot.end, end);
        }
        (bytes[at..] == learned[from..]).then_some(self.tool_calls || text_in_slots)
    }
}

impl ChunkShape {
    /// [`RawChunk::check`], for the next chunk of the stream.
    pub fn check(&mut self, data: String) -> Result<RawChunk, String> {
        if let Some(shape) = &self.learned {
            let text = data.trim();
            if let Some(has_token) = shape.has_token(text) {
                let range = range_in(&data, text);
                return Ok(RawChunk {
                    data: slice_of(data, range),
                    usage: None,
                    finished: shape.finished.clone(),
                    has_token,
                    choices: shape.choices,
                });
            }
        }
        let checked = check_text(data)?;
        // Not from a chunk with usage: its strings may be read (usage with fields beyond the
        // token counts is read by serde), and a stream has one such chunk, the last.
        if checked.chunk.usage.is_none() {
            self.learned = Some(Shape {
                text: checked.chunk.data.clone(),
                slots: checked.slots,
                finished: checked.chunk.finished.clone(),
                choices: checked.chunk.choices,
                tool_calls: checked.tool_calls,
            });
        }
        Ok(checked.chunk)
    }
}

impl StreamChunk {
    /// The chunk in its parsed form.
    pub fn into_parsed(self) -> Result<ChatChunk, String> {
        match self {
            StreamChunk::Parsed(c) => Ok(*c),
            StreamChunk::Raw(r) => r.parse(),
        }
    }

    /// Parses a raw chunk in place, for code that reads or changes what it says.
    pub fn make_parsed(&mut self) -> Result<&mut ChatChunk, String> {
        if let StreamChunk::Raw(r) = self {
            *self = StreamChunk::Parsed(Box::new(r.parse()?));
        }
        match self {
            StreamChunk::Parsed(c) => Ok(&mut **c),
            StreamChunk::Raw(_) => Err("the chunk could not be parsed".to_string()),
        }
    }
}

impl StreamSummary {
    /// Takes in what `chunk` says.
    pub fn push(&mut self, chunk: &StreamChunk) {
        match chunk {
            StreamChunk::Parsed(c) => {
                if let Some(u) = &c.usage {
                    self.usage = Some(u.clone());
                }
                for choice in &c.choices {
                    if let Some(reason) = &choice.finish_reason {
                        self.finish(choice.index, reason.clone());
                    }
                }
            }
            StreamChunk::Raw(r) => {
                if let Some(u) = &r.usage {
                    self.usage = Some(Usage::clone(u));
                }
                for (index, reason) in &r.finished {
                    self.finish(*index, reason.clone());
                }
            }
        }
    }

    fn finish(&mut self, index: u32, reason: FinishReason) {
        let i = index as usize;
        if self.finish_reasons.len() <= i {
            self.finish_reasons.resize(i + 1, None);
        }
        self.finish_reasons[i] = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// What the parsing path would send for `data`.
    fn parsed_then_encoded(data: &str) -> Value {
        let parsed: ChatChunk = serde_json::from_str(data).unwrap();
        serde_json::to_value(&parsed).unwrap()
    }

    fn complete() -> Value {
        json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                         "finish_reason": null, "logprobs": null}],
            "system_fingerprint": "fp", "service_tier": "default"
        })
    }

    #[test]
    fn accepts_nothing_serde_would_not_and_reads_what_serde_reads() {
        use crate::schema::raw_oracle;
        let stream = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openai/stream_tool_call.sse"
        ))
        .unwrap();
        let mut chunks: Vec<String> = stream
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| d.starts_with('{'))
            .map(str::to_string)
            .collect();
        chunks.push(complete().to_string());
        chunks.push(
            json!({"id": "c", "object": "chat.completion.chunk", "created": 2, "model": "m",
                   "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7,
                   "total_tokens": 12, "prompt_tokens_details": {"cached_tokens": 1}}})
            .to_string(),
        );
        assert!(chunks.len() >= 4);
        let (mut accepted, mut refused_too) = (0, 0);
        for text in chunks
            .iter()
            .flat_map(|t| std::iter::once(t.clone()).chain(raw_oracle::corruptions(t)))
        {
            match RawChunk::check(text.clone()) {
                Ok(raw) => {
                    accepted += 1;
                    let oracle = raw_oracle::chunk(&text)
                        .unwrap_or_else(|| panic!("serde refuses what the scanner took: {text}"));
                    let usage = raw.usage.map(|u| *u);
                    assert_eq!(
                        (usage, raw.finished, raw.has_token, raw.choices),
                        oracle,
                        "{text}"
                    );
                }
                // Refusing more than serde is allowed (the parsing path takes it), but rare.
                Err(_) if raw_oracle::chunk(&text).is_some() => refused_too += 1,
                Err(_) => {}
            }
        }
        assert!(accepted > 100, "{accepted}");
        assert!(refused_too * 20 < accepted, "{refused_too} of {accepted}");
    }

    #[test]
    fn a_complete_chunk_is_kept_with_what_accounting_reads() {
        let data = complete().to_string();
        let raw = RawChunk::check(data.clone()).expect("complete");
        assert_eq!(&raw.data[..], data.as_bytes());
        assert!(raw.has_token);
        assert_eq!(
            (raw.choices, raw.usage.as_ref(), raw.finished.len()),
            (1, None, 0)
        );
        // Passing the text on says what parsing and encoding it would.
        let sent: Value = serde_json::from_slice(&raw.data).unwrap();
        assert_eq!(sent, parsed_then_encoded(&data));
        assert_eq!(
            raw.parse().unwrap(),
            serde_json::from_str::<ChatChunk>(&data).unwrap()
        );

        // The last chunks: a finish reason, then usage with no choices.
        let finish = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{},"finish_reason":"length","logprobs":null}]}"#;
        let raw = RawChunk::check(finish.to_string()).unwrap();
        assert!(!raw.has_token);
        assert_eq!(raw.finished, [(1, FinishReason::Length)]);
        let usage = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let raw = RawChunk::check(usage.to_string()).unwrap();
        assert_eq!(raw.choices, 0);
        assert_eq!(raw.usage.as_ref().map(|u| u.prompt_tokens), Some(5));

        // Surrounding whitespace is not part of the chunk.
        let raw = RawChunk::check(format!("  {data}\t")).unwrap();
        assert_eq!(&raw.data[..], data.as_bytes());
    }

    #[test]
    fn tokens_are_content_text_or_tool_calls() {
        let with_delta = |delta: Value| {
            let mut v = complete();
            v["choices"][0]["delta"] = delta;
            RawChunk::check(v.to_string()).unwrap().has_token
        };
        assert!(with_delta(json!({"content": "x"})));
        assert!(with_delta(json!({"content": "\u{e9}\\n"})));
        assert!(with_delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]})
        ));
        assert!(!with_delta(json!({"role": "assistant", "content": ""})));
        assert!(!with_delta(json!({"content": null})));
        assert!(!with_delta(json!({})));
    }

    #[test]
    fn anything_the_parsed_form_would_fill_in_or_reject_takes_the_parsing_path() {
        let without = |path: &[&str]| {
            let mut v = complete();
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut v;
            for p in parents {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at.as_object_mut().unwrap().remove(*last).unwrap();
            v.to_string()
        };
        for path in [
            &["id"][..],
            &["object"],
            &["created"],
            &["model"],
            &["choices"],
            &["choices", "0", "index"],
            &["choices", "0", "delta"],
            &["choices", "0", "finish_reason"],
            &["choices", "0", "logprobs"],
        ] {
            let data = without(path);
            assert_eq!(RawChunk::check(data.clone()), Err(data), "{path:?}");
        }
        let with = |pointer: &str, value: Value| {
            let mut v = complete();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap()[key] = value;
            v.to_string()
        };
        for (what, data) in [
            ("escaped id", r#"{"id":"c\u0031","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}"#.to_string()),
            ("an error", r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"error":{"message":"overloaded"}}"#.to_string()),
            ("a null error", r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"error":null}"#.to_string()),
            ("unknown role", with("/choices/0/delta/role", json!("robot"))),
            ("content not a string", with("/choices/0/delta/content", json!(["x"]))),
            ("negative created", with("/created", json!(-1))),
            ("usage not an object", with("/usage", json!("many"))),
            ("two lines", complete().to_string().replacen(',', ",\n", 1)),
            ("not JSON", "{".to_string()),
        ] {
            assert_eq!(RawChunk::check(data.clone()), Err(data), "{what}");
        }
    }

    #[test]
    fn a_summary_folds_usage_and_finish_reasons_of_either_form() {
        let mut summary = StreamSummary::default();
        let parsed: ChatChunk = serde_json::from_str(
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        summary.push(&StreamChunk::Parsed(Box::new(parsed)));
        let raw = RawChunk::check(
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":2,"delta":{},"finish_reason":"tool_calls","logprobs":null}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#.to_string(),
        )
        .unwrap();
        summary.push(&StreamChunk::Raw(raw));
        assert_eq!(
            summary.finish_reasons,
            [
                Some(FinishReason::Stop),
                None,
                Some(FinishReason::ToolCalls)
            ]
        );
        assert_eq!(summary.usage.map(|u| u.total_tokens), Some(7));
    }

    #[test]
    fn a_raw_chunk_is_parsed_in_place_on_demand() {
        let data = complete().to_string();
        let mut chunk = StreamChunk::Raw(RawChunk::check(data.clone()).unwrap());
        chunk.make_parsed().unwrap().model = "changed".into();
        match &chunk {
            StreamChunk::Parsed(c) => {
                assert_eq!((c.id.as_str(), c.model.as_str()), ("c", "changed"))
            }
            StreamChunk::Raw(_) => panic!("still raw"),
        }
        let expected: ChatChunk = serde_json::from_str(&data).unwrap();
        let raw = StreamChunk::Raw(RawChunk::check(data).unwrap());
        assert_eq!(raw.into_parsed().unwrap(), expected);
    }

    /// The chunks of one stream as an upstream sends them: the same id, model and layout, a
    /// different token each time, and (as OpenAI's `obfuscation` field) a padding string that
    /// changes too.
    fn stream_of(tokens: &[&str]) -> Vec<String> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                json!({
                    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7,
                    "model": "gpt-4o-mini", "service_tier": "default",
                    "system_fingerprint": "fp_1",
                    "choices": [{"index": 0, "delta": {"content": token},
                                 "logprobs": null, "finish_reason": null}],
                    "obfuscation": "x".repeat(i % 5),
                })
                .to_string()
            })
            .collect()
    }

    fn learned(chunk: &str) -> ChunkShape {
        let mut shape = ChunkShape::default();
        shape
            .check(chunk.to_string())
            .expect("a chunk to learn from");
        assert!(shape.learned.is_some(), "{chunk}");
        shape
    }

    #[test]
    fn a_chunk_checked_against_a_shape_gets_the_full_checks_verdict() {
        use crate::schema::raw_oracle;
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openai/stream_tool_call.sse"
        ))
        .unwrap();
        let tool_stream: Vec<String> = fixture
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| d.starts_with('{') && !d.contains("\"usage\":{"))
            .map(str::to_string)
            .collect();
        let text_stream = stream_of(&["Hel", "lo", "", "\\n", "caf\u{e9} \u{1F600}", "a\"b"]);
        let mut hits = 0;
        for stream in [&tool_stream, &text_stream] {
            for learned_from in stream {
                let mut candidates = stream.clone();
                candidates.extend(raw_oracle::corruptions(learned_from));
                candidates.push(format!(" {learned_from}\n"));
                candidates.push(learned_from.replace("\"Hel\"", "\"H\\u00e9\""));
                candidates.push(learned_from.replace("\"Hel\"", "\"\\ud800\""));
                candidates.push(learned_from.replace("chatcmpl-1", "chatcmpl\\u0031"));
                for text in candidates {
                    let mut shape = learned(learned_from);
                    if shape
                        .learned
                        .as_ref()
                        .unwrap()
                        .has_token(text.trim())
                        .is_some()
                    {
                        hits += 1;
                    }
                    assert_eq!(
                        shape.check(text.clone()),
                        RawChunk::check(text.clone()),
                        "{text}\nagainst the shape of\n{learned_from}"
                    );
                }
            }
        }
        // Every chunk of a stream but the first and the last of the tool call has its
        // neighbours' shape; so do the corruptions inside a string that stay valid.
        assert!(hits > 200, "{hits}");
    }

    #[test]
    fn the_chunks_of_a_stream_are_checked_against_the_first_ones_shape() {
        let chunks = stream_of(&["You ", "said", ": ", "", "x"]);
        let mut shape = ChunkShape::default();
        let read: Vec<_> = chunks
            .iter()
            .map(|c| shape.check(c.clone()).map(|r| r.has_token))
            .collect();
        assert_eq!(read, [Ok(true), Ok(true), Ok(true), Ok(false), Ok(true)]);
        let learned = shape.learned.as_ref().unwrap();
        assert_eq!(&learned.text[..], chunks[0].as_bytes(), "learned once");
        let kinds: Vec<_> = learned.slots.iter().map(|s| s.kind).collect();
        use SlotKind::*;
        // In the order `json!` writes them: the token, then id, model, obfuscation, object,
        // service_tier and system_fingerprint.
        assert_eq!(kinds, [Token, Plain, Plain, Any, Plain, Any, Any]);

        // A chunk that says something else (a finish reason) is checked in full, and becomes
        // the shape.
        let last = chunks[0].replace("\"finish_reason\":null", "\"finish_reason\":\"stop\"");
        let raw = shape.check(last.clone()).unwrap();
        assert_eq!(raw.finished, [(0, FinishReason::Stop)]);
        assert_eq!(&shape.learned.as_ref().unwrap().text[..], last.as_bytes());
        // A chunk with usage is not learned from.
        let usage = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"note":"x"}}"#;
        assert!(shape.check(usage.to_string()).unwrap().usage.is_some());
        assert_eq!(&shape.learned.as_ref().unwrap().text[..], last.as_bytes());
    }
}
