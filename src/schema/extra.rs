//! Deserializing the wire types that keep unknown fields in `extra`.
//!
//! `#[serde(flatten)]` would do it, but serde then buffers every field of the object into an
//! intermediate tree before deserializing the known ones from it, and does so again at each
//! nesting level (a response, its choices, their messages). On the request path that was the
//! largest part of parsing. [`deserialize_with_extra!`] writes the visitor instead: known fields
//! straight from the input, the others into `extra` as JSON values. Serialization keeps the
//! derive (flattening costs little there); the macro's field list is the only place that says
//! what a field takes when absent, so those structs carry no `#[serde(default)]`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// An object key, borrowed from the input when it can be (no allocation for known fields).
pub enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    pub fn into_string(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_string(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Implements `Deserialize` for a struct whose last field is `extra: Extra`. Each other field is
/// listed with its JSON name and what it takes when absent: nothing (`Default::default()`),
/// `= expr`, or `[required]` (absent is an error, `missing field`). A field given twice is an
/// error (`duplicate field`), as with the derive.
///
/// ```ignore
/// deserialize_with_extra!(Usage {
///     prompt_tokens: "prompt_tokens",
///     object: "object" = chat_completion_object(),
///     id: "id" [required],
/// });
/// ```
macro_rules! deserialize_with_extra {
    ($ty:ident { $($field:ident : $json:literal $([$required:ident])? $(= $default:expr)?),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        $(let mut $field = None;)*
                        let mut extra = $crate::schema::Extra::new();
                        while let Some(key) = map.next_key::<$crate::schema::extra::Key<'de>>()? {
                            match key.as_str() {
                                $($json => {
                                    if $field.is_some() {
                                        return Err(serde::de::Error::duplicate_field($json));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                _ => {
                                    let value = map.next_value()?;
                                    extra.insert(key.into_string(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: match $field {
                                Some(v) => v,
                                None => deserialize_with_extra!(
                                    @absent $json $([$required])? $(= $default)?
                                ),
                            },)*
                            extra,
                        })
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    };
    (@absent $json:literal) => { Default::default() };
    (@absent $json:literal = $default:expr) => { $default };
    (@absent $json:literal [required]) => {
        return Err(serde::de::Error::missing_field($json))
    };
}

pub(crate) use deserialize_with_extra;

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::schema::{ChatChunk, ChatRequest, ChatResponse};

    #[test]
    fn unknown_fields_are_kept_at_every_level_and_round_trip() {
        let wire = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
            "service_tier": "default",
            "choices": [{
                "index": 0, "finish_reason": "stop", "logprobs": null, "choice_extra": [1, 2],
                "message": {"role": "assistant", "content": "hi", "annotations": [], "audio": null}
            }],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                      "prompt_tokens_details": {"cached_tokens": 0, "vendor_tokens": 5}}
        });
        let text = wire.to_string();
        let parsed: ChatResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.extra["service_tier"], "default");
        assert_eq!(parsed.choices[0].extra["choice_extra"], json!([1, 2]));
        assert_eq!(parsed.choices[0].message.extra["annotations"], json!([]));
        assert_eq!(parsed.choices[0].message.extra["audio"], Value::Null);
        let details = parsed
            .usage
            .as_ref()
            .unwrap()
            .prompt_tokens_details
            .as_ref();
        assert_eq!(details.unwrap().extra["vendor_tokens"], 5);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), wire);
        // Keys that are not borrowed from the input (a Value, an escaped key) work the same.
        assert_eq!(
            serde_json::from_value::<ChatResponse>(wire).unwrap(),
            parsed
        );
        let escaped = text.replace("\"model\"", "\"mod\\u0065l\"");
        assert_eq!(
            serde_json::from_str::<ChatResponse>(&escaped).unwrap(),
            parsed
        );
    }

    #[test]
    fn defaults_missing_and_duplicate_fields() {
        let chunk: ChatChunk = serde_json::from_str(r#"{"choices":[{"delta":{}}]}"#).unwrap();
        assert_eq!(chunk.object, "chat.completion.chunk");
        assert_eq!(chunk.choices[0].index, 0);
        assert!(chunk.extra.is_empty());

        let err = |text: &str| {
            serde_json::from_str::<ChatRequest>(text)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"model":"m"}"#).contains("missing field `messages`"));
        let dup = err(r#"{"model":"m","messages":[],"model":"n"}"#);
        assert!(dup.contains("duplicate field `model`"), "{dup}");
        let wrong = err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":"two"}"#);
        assert!(wrong.contains("invalid type"), "{wrong}");
        assert!(
            err(r#"["m", []]"#).contains("invalid type: sequence, expected struct ChatRequest")
        );
    }
}
