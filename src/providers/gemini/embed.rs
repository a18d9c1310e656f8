//! Embeddings: canonical <-> Gemini `batchEmbedContents` and Vertex AI `predict`.

use super::wire::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest, Part,
    PredictInstance, PredictParameters, PredictRequest, PredictResponse,
};
use crate::error::{GatewayError, Result};
use crate::schema::{
    Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector, Extra,
};

fn texts(req: &EmbeddingRequest) -> Result<Vec<&str>> {
    req.input.texts().ok_or_else(|| {
        GatewayError::invalid_request(
            "Gemini embeds text only: `input` must be a string or a list of strings, not token ids",
        )
        .with_param("input")
        .with_code("unsupported_parameter")
    })
}

/// `task_type` given as an extra field (`RETRIEVAL_QUERY`, `SEMANTIC_SIMILARITY`...).
fn task_type(req: &EmbeddingRequest) -> Option<String> {
    req.extra
        .get("task_type")
        .or_else(|| req.extra.get("taskType"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// The model as Gemini names it in a batch entry (`models/text-embedding-004`).
pub fn model_resource(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_string()
    } else {
        format!("models/{model}")
    }
}

pub fn to_batch_embed_request(req: &EmbeddingRequest) -> Result<BatchEmbedContentsRequest> {
    let task = task_type(req);
    let requests = texts(req)?
        .into_iter()
        .map(|t| EmbedContentRequest {
            model: Some(model_resource(&req.model)),
            content: Content {
                role: None,
                parts: vec![Part::text(t)],
            },
            task_type: task.clone(),
            title: None,
            output_dimensionality: req.dimensions,
            extra: Extra::new(),
        })
        .collect();
    Ok(BatchEmbedContentsRequest { requests })
}

fn vector(values: Vec<f64>, base64: bool) -> EmbeddingVector {
    if base64 {
        EmbeddingVector::Base64(EmbeddingVector::to_base64(&values))
    } else {
        EmbeddingVector::Float(values)
    }
}

fn response(
    vectors: Vec<Vec<f64>>,
    req: &EmbeddingRequest,
    prompt_tokens: u64,
) -> EmbeddingResponse {
    EmbeddingResponse {
        object: "list".into(),
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: vector(v, req.wants_base64()),
                extra: Extra::new(),
            })
            .collect(),
        model: req.model.clone(),
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
            extra: Extra::new(),
        },
        extra: Extra::new(),
    }
}

/// Gemini reports no token counts for embeddings; usage is zero.
pub fn from_batch_embed_response(
    resp: BatchEmbedContentsResponse,
    req: &EmbeddingRequest,
) -> EmbeddingResponse {
    response(
        resp.embeddings.into_iter().map(|e| e.values).collect(),
        req,
        0,
    )
}

pub fn to_predict_request(req: &EmbeddingRequest) -> Result<PredictRequest> {
    let task = task_type(req);
    Ok(PredictRequest {
        instances: texts(req)?
            .into_iter()
            .map(|t| PredictInstance {
                content: t.to_string(),
                task_type: task.clone(),
            })
            .collect(),
        parameters: req.dimensions.map(|d| PredictParameters {
            output_dimensionality: Some(d),
        }),
    })
}

pub fn from_predict_response(resp: PredictResponse, req: &EmbeddingRequest) -> EmbeddingResponse {
    let tokens = resp
        .predictions
        .iter()
        .filter_map(|p| p.embeddings.statistics.as_ref())
        .map(|s| s.token_count.max(0.0) as u64)
        .sum();
    response(
        resp.predictions
            .into_iter()
            .map(|p| p.embeddings.values)
            .collect(),
        req,
        tokens,
    )
}
