//! Embeddings: request and response.

use serde::{Deserialize, Serialize};

use super::Extra;

/// `POST /v1/embeddings` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `"float"` or `"base64"`. The official openai SDK asks for base64 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl EmbeddingRequest {
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::GatewayError;
        if self.model.trim().is_empty() {
            return Err(
                GatewayError::invalid_request("`model` must not be empty").with_param("model")
            );
        }
        if self.input.is_empty() {
            return Err(
                GatewayError::invalid_request("`input` must not be empty").with_param("input")
            );
        }
        if let Some(f) = &self.encoding_format
            && f != "float"
            && f != "base64"
        {
            return Err(GatewayError::invalid_request(format!(
                "`encoding_format` must be \"float\" or \"base64\", got {f:?}"
            ))
            .with_param("encoding_format"));
        }
        Ok(())
    }

    pub fn wants_base64(&self) -> bool {
        self.encoding_format.as_deref() == Some("base64")
    }
}

/// `input`: a string, a list of strings, a list of token ids, or a list of token-id lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(v) => v.len(),
            EmbeddingInput::TokenLists(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            EmbeddingInput::Text(_) => false,
            EmbeddingInput::Tokens(v) => v.is_empty(),
            EmbeddingInput::Texts(v) => v.is_empty(),
            EmbeddingInput::TokenLists(v) => v.is_empty(),
        }
    }

    /// The inputs as texts, for providers that only take text.
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            EmbeddingInput::Text(t) => Some(vec![t.as_str()]),
            EmbeddingInput::Texts(v) => Some(v.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str = "`input` must be a string, a list of strings, a list of token ids or a list of token-id lists";
        let value = serde_json::Value::deserialize(d)?;
        let parsed = match &value {
            serde_json::Value::String(s) => Some(EmbeddingInput::Text(s.clone())),
            serde_json::Value::Array(items) => match items.first() {
                None | Some(serde_json::Value::String(_)) => serde_json::from_value(value.clone())
                    .ok()
                    .map(EmbeddingInput::Texts),
                Some(serde_json::Value::Number(_)) => serde_json::from_value(value.clone())
                    .ok()
                    .map(EmbeddingInput::Tokens),
                Some(serde_json::Value::Array(_)) => serde_json::from_value(value.clone())
                    .ok()
                    .map(EmbeddingInput::TokenLists),
                _ => None,
            },
            _ => None,
        };
        parsed.ok_or_else(|| D::Error::custom(EXPECTED))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    #[serde(default = "list_object")]
    pub object: String,
    pub data: Vec<Embedding>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: EmbeddingUsage,
    #[serde(flatten)]
    pub extra: Extra,
}

pub(crate) fn list_object() -> String {
    "list".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    #[serde(default = "embedding_object")]
    pub object: String,
    #[serde(default)]
    pub index: u32,
    pub embedding: EmbeddingVector,
    #[serde(flatten)]
    pub extra: Extra,
}

fn embedding_object() -> String {
    "embedding".to_string()
}

/// A vector as floats, or as base64 of little-endian float32 (`encoding_format: "base64"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f64>),
    Base64(String),
}

impl EmbeddingVector {
    /// Encodes floats as base64 of little-endian float32, the OpenAI wire encoding.
    pub fn to_base64(values: &[f64]) -> String {
        use base64::Engine;
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&(*v as f32).to_le_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn to_floats(&self) -> Option<Vec<f64>> {
        use base64::Engine;
        match self {
            EmbeddingVector::Float(v) => Some(v.clone()),
            EmbeddingVector::Base64(s) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
                Some(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                        .collect(),
                )
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}
