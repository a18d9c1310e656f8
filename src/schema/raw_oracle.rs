//! The pass-through checks written with serde (what they were before `json_scan.rs`), kept as
//! the reference their scanner-based versions are tested against: on every truncation and many
//! corruptions of the fixtures, whatever the scanner accepts serde accepts too, with the same
//! usage, finish reasons and tokens read.

use serde::Deserialize;
use serde::de::{IgnoredAny, Visitor};

use super::{FinishReason, Role, Usage};

#[derive(Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>"))]
#[allow(dead_code)]
struct Checked<'a, C> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    object: &'a str,
    created: u64,
    #[serde(borrow)]
    model: &'a str,
    choices: Vec<C>,
    usage: Option<Usage>,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d)?;
    Ok(true)
}

fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct AnswerChoice {
    index: u32,
    message: AnswerMessage,
    #[serde(deserialize_with = "nullable")]
    finish_reason: Option<FinishReason>,
    #[serde(deserialize_with = "nullable")]
    logprobs: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct AnswerMessage {
    role: Role,
    #[serde(deserialize_with = "nullable")]
    content: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ChunkChoice {
    index: u32,
    delta: ChunkDelta,
    #[serde(deserialize_with = "nullable")]
    finish_reason: Option<FinishReason>,
    #[serde(deserialize_with = "nullable")]
    logprobs: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ChunkDelta {
    role: Option<Role>,
    content: Option<NonEmpty>,
    tool_calls: Option<IgnoredAny>,
}

struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!s.is_empty()))
            }
        }
        d.deserialize_str(Text)
    }
}

/// An answer's usage and finish reasons, if serde's check accepts it.
pub fn answer(text: &str) -> Option<(Option<Usage>, Vec<Option<FinishReason>>)> {
    let checked: Checked<'_, AnswerChoice> = serde_json::from_str(text).ok()?;
    if checked.error {
        return None;
    }
    let reasons = checked
        .choices
        .into_iter()
        .map(|c| c.finish_reason)
        .collect();
    Some((checked.usage, reasons))
}

/// What accounting reads from a chunk (usage, finished choices, carries a token, choice count),
/// if serde's check accepts it.
pub type ChunkReading = (Option<Usage>, Vec<(u32, FinishReason)>, bool, usize);

pub fn chunk(text: &str) -> Option<ChunkReading> {
    let checked: Checked<'_, ChunkChoice> = serde_json::from_str(text).ok()?;
    if checked.error {
        return None;
    }
    let has_token = checked
        .choices
        .iter()
        .any(|c| c.delta.content.as_ref().is_some_and(|t| t.0) || c.delta.tool_calls.is_some());
    let count = checked.choices.len();
    let finished = checked
        .choices
        .into_iter()
        .filter_map(|c| Some((c.index, c.finish_reason?)))
        .collect();
    Some((checked.usage, finished, has_token, count))
}

/// Variants of `text`: every truncation, every byte deleted, and every byte replaced by each of
/// the bytes that matter to JSON's grammar, as far as they are UTF-8.
pub fn corruptions(text: &str) -> Vec<String> {
    const BYTES: &[u8] = b"\"\\{}[],: 0-1.enu\x01x";
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut keep = |v: Vec<u8>| {
        if let Ok(s) = String::from_utf8(v) {
            out.push(s);
        }
    };
    for i in 0..bytes.len() {
        keep(bytes[..i].to_vec());
        let mut deleted = bytes.to_vec();
        deleted.remove(i);
        keep(deleted);
        for &b in BYTES {
            if bytes[i] != b {
                let mut replaced = bytes.to_vec();
                replaced[i] = b;
                keep(replaced);
            }
        }
    }
    out
}
