//! Message content: a plain string or a list of typed parts (text, image, audio, file...).

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::Extra;

/// `content` of a message: `"text"` or `[{"type": "text", ...}, {"type": "image_url", ...}]`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// All text of the content, parts joined without separator. Images and other parts are skipped.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(t) => t.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

impl From<&str> for MessageContent {
    fn from(s: &str) -> Self {
        MessageContent::Text(s.to_string())
    }
}

impl From<String> for MessageContent {
    fn from(s: String) -> Self {
        MessageContent::Text(s)
    }
}

impl Serialize for MessageContent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MessageContent::Text(t) => s.serialize_str(t),
            MessageContent::Parts(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = MessageContent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(MessageContent::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// One part of a multimodal content array. Text and images are typed because providers translate
/// them; every other part type (audio, files, refusals, future types) is kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text { text: String, extra: Extra },
    ImageUrl { image_url: ImageUrl, extra: Extra },
    Other(Extra),
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text {
            text: text.into(),
            extra: Extra::new(),
        }
    }

    pub fn image(url: impl Into<String>) -> Self {
        ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url.into(),
                detail: None,
                extra: Extra::new(),
            },
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `https://` URL or a `data:<mime>;base64,<data>` URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ImageUrl {
    /// Splits a `data:` URL into (media type, base64 data).
    pub fn as_data_url(&self) -> Option<(&str, &str)> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        Some((media_type, data))
    }
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentPart::Text { text, extra } => {
                let mut m = s.serialize_map(Some(2 + extra.len()))?;
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
                for (k, v) in extra {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            ContentPart::ImageUrl { image_url, extra } => {
                let mut m = s.serialize_map(Some(2 + extra.len()))?;
                m.serialize_entry("type", "image_url")?;
                m.serialize_entry("image_url", image_url)?;
                for (k, v) in extra {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            ContentPart::Other(map) => map.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = ContentPart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content part object with a `type`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = Extra::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    map.insert(k, v);
                }
                part_from_map(map).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(PartVisitor)
    }
}

fn part_from_map(mut map: Extra) -> Result<ContentPart, String> {
    let kind = match map.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("content part `type` must be a string".into()),
        None => return Err("content part is missing `type`".into()),
    };
    match kind.as_str() {
        "text" => {
            map.remove("type");
            let text = match map.remove("text") {
                Some(Value::String(t)) => t,
                _ => return Err("a `text` content part needs a string `text`".into()),
            };
            Ok(ContentPart::Text { text, extra: map })
        }
        "image_url" => {
            map.remove("type");
            let image_url = match map.remove("image_url") {
                // Some clients send the URL as a bare string.
                Some(Value::String(url)) => ImageUrl {
                    url,
                    detail: None,
                    extra: Extra::new(),
                },
                Some(v @ Value::Object(_)) => serde_json::from_value(v)
                    .map_err(|e| format!("invalid `image_url` content part: {e}"))?,
                _ => return Err("an `image_url` content part needs an `image_url` object".into()),
            };
            Ok(ContentPart::ImageUrl {
                image_url,
                extra: map,
            })
        }
        _ => Ok(ContentPart::Other(map)),
    }
}

/// `stop`: one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_string_and_parts() {
        let c: MessageContent = serde_json::from_str("\"hi\"").unwrap();
        assert_eq!(c, MessageContent::Text("hi".into()));
        let c: MessageContent = serde_json::from_str(
            r#"[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAA","detail":"low"}},
                {"type":"input_audio","input_audio":{"data":"xx","format":"wav"}}]"#,
        )
        .unwrap();
        let MessageContent::Parts(parts) = &c else {
            panic!()
        };
        assert_eq!(parts.len(), 3);
        let ContentPart::ImageUrl { image_url, .. } = &parts[1] else {
            panic!()
        };
        assert_eq!(image_url.as_data_url(), Some(("image/png", "AAA")));
        assert!(matches!(&parts[2], ContentPart::Other(m) if m["type"] == "input_audio"));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back[0]["cache_control"]["type"], "ephemeral");
        assert_eq!(back[2]["input_audio"]["format"], "wav");
    }

    #[test]
    fn bad_parts_are_named() {
        let err = serde_json::from_str::<MessageContent>(r#"[{"text":"a"}]"#).unwrap_err();
        assert!(err.to_string().contains("missing `type`"), "{err}");
        let err = serde_json::from_str::<MessageContent>("42").unwrap_err();
        assert!(err.to_string().contains("a string or an array"), "{err}");
    }
}
