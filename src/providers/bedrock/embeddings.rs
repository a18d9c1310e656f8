//! Canonical embeddings <-> Bedrock InvokeModel bodies of the embedding models. Bedrock has no
//! common embeddings API: each model family has its own body.
//!
//! - Amazon Titan Text Embeddings take one text per call: an input list becomes one call per
//!   text, and the token counts (`inputTextTokenCount`) are summed.
//! - Cohere Embed takes up to 96 texts per call (`input_type` defaults to `search_document`;
//!   callers may pass `input_type` and `truncate`). Its body has no token count: the
//!   `X-Amzn-Bedrock-Input-Token-Count` response header gives it.

use serde_json::Value;

use super::wire::{CohereEmbedRequest, CohereEmbedResponse, TitanEmbedRequest, TitanEmbedResponse};
use crate::error::{GatewayError, Result};
use crate::schema::{
    Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector, Extra,
};

/// Texts per Cohere call.
pub const COHERE_BATCH: usize = 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFamily {
    Titan,
    Cohere,
}

impl EmbedFamily {
    /// The family of a model id (inference profiles and ARNs included).
    pub fn of(model: &str) -> Result<EmbedFamily> {
        if model.contains("amazon.titan-embed") {
            Ok(EmbedFamily::Titan)
        } else if model.contains("cohere.embed") {
            Ok(EmbedFamily::Cohere)
        } else {
            Err(GatewayError::invalid_request(format!(
                "embeddings on Bedrock are supported for Amazon Titan (`amazon.titan-embed-*`) and \
                 Cohere (`cohere.embed-*`) models, not {model:?}"
            ))
            .with_param("model")
            .with_code("unsupported_model"))
        }
    }
}

/// The inputs as texts; Bedrock's embedding models take no token ids.
pub fn input_texts(req: &EmbeddingRequest) -> Result<Vec<&str>> {
    req.input.texts().ok_or_else(|| {
        GatewayError::invalid_request("Bedrock embedding models take text, not token ids")
            .with_param("input")
    })
}

pub fn titan_request(text: &str, req: &EmbeddingRequest) -> TitanEmbedRequest {
    TitanEmbedRequest {
        input_text: text.to_string(),
        dimensions: req.dimensions,
        normalize: req.extra.get("normalize").and_then(Value::as_bool),
    }
}

pub fn cohere_request(texts: &[&str], req: &EmbeddingRequest) -> CohereEmbedRequest {
    let text_of = |k: &str| req.extra.get(k).and_then(Value::as_str).map(str::to_string);
    CohereEmbedRequest {
        texts: texts.iter().map(|t| t.to_string()).collect(),
        input_type: text_of("input_type").unwrap_or_else(|| "search_document".into()),
        truncate: text_of("truncate"),
        embedding_types: Some(vec!["float".into()]),
        output_dimension: req.dimensions,
    }
}

/// A Titan answer: the vector and its token count.
pub fn parse_titan(body: &[u8]) -> std::result::Result<(Vec<f64>, u64), String> {
    let r: TitanEmbedResponse = crate::schema::json_from_bytes(body).map_err(|e| e.to_string())?;
    Ok((r.embedding, r.input_text_token_count))
}

/// A Cohere answer's float vectors, in either response shape.
pub fn parse_cohere(body: &[u8]) -> std::result::Result<Vec<Vec<f64>>, String> {
    let r: CohereEmbedResponse = crate::schema::json_from_bytes(body).map_err(|e| e.to_string())?;
    let vectors = match r.embeddings {
        Value::Object(mut by_type) => by_type
            .remove("float")
            .ok_or("`embeddings` has no `float` vectors")?,
        list => list,
    };
    serde_json::from_value(vectors).map_err(|e| format!("`embeddings`: {e}"))
}

/// The canonical answer, in the encoding the caller asked for.
pub fn to_embedding_response(
    vectors: Vec<Vec<f64>>,
    model: &str,
    prompt_tokens: u64,
    base64: bool,
) -> EmbeddingResponse {
    EmbeddingResponse {
        object: "list".into(),
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: if base64 {
                    EmbeddingVector::Base64(EmbeddingVector::to_base64(&v))
                } else {
                    EmbeddingVector::Float(v)
                },
                extra: Extra::new(),
            })
            .collect(),
        model: model.to_string(),
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
            extra: Extra::new(),
        },
        extra: Extra::new(),
    }
}
