//! Gemini API wire types (`generateContent`, `streamGenerateContent`, embeddings, errors), from the
//! public API reference. Vertex AI speaks the same bodies. Used in both directions: by the adapter
//! (gateway -> Google), by the `/genai` drop-in route (google-genai SDK -> gateway) and by the mock.
//!
//! Google's JSON parser accepts both `camelCase` and the proto `snake_case` field names (the Python
//! SDK sends `inlineData.mime_type`, `thinking_config`...), so every field takes both; the gateway
//! always writes camelCase. Fields the gateway does not model are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::Extra;

/// `POST .../models/{model}:generateContent` body (also `:streamGenerateContent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "system_instruction"
    )]
    pub system_instruction: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "tool_config"
    )]
    pub tool_config: Option<ToolConfig>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "safety_settings"
    )]
    pub safety_settings: Option<Vec<Value>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "generation_config"
    )]
    pub generation_config: Option<GenerationConfig>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "cached_content"
    )]
    pub cached_content: Option<String>,
    /// Fields the gateway does not model (`labels` on Vertex AI...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One turn: `role` is `user` or `model` (absent on `systemInstruction`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

impl Content {
    pub fn new(role: &str, parts: Vec<Part>) -> Content {
        Content {
            role: Some(role.to_string()),
            parts,
        }
    }

    /// The text of every non-thought part, joined without separator.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter(|p| p.thought != Some(true))
            .filter_map(|p| p.text.as_deref())
            .collect()
    }
}

/// A part is a union decided by which field is present (`text`, `inlineData`, `functionCall`...),
/// plus metadata (`thought`, `thoughtSignature`). Kinds the gateway does not translate
/// (`executableCode`, `videoMetadata`...) stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "inline_data"
    )]
    pub inline_data: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "file_data")]
    pub file_data: Option<FileData>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_call"
    )]
    pub function_call: Option<FunctionCall>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_response"
    )]
    pub function_response: Option<FunctionResponse>,
    /// The part is a thought summary, not answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque signature of the model's reasoning; must be sent back with the part it came on.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thought_signature"
    )]
    pub thought_signature: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Part {
    pub fn text(text: impl Into<String>) -> Part {
        Part {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    /// What kind of part this is, for messages (`text`, `inlineData`, `executableCode`...).
    pub fn kind(&self) -> String {
        if self.text.is_some() {
            "text".into()
        } else if self.inline_data.is_some() {
            "inlineData".into()
        } else if self.file_data.is_some() {
            "fileData".into()
        } else if self.function_call.is_some() {
            "functionCall".into()
        } else if self.function_response.is_some() {
            "functionResponse".into()
        } else {
            self.extra
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "empty".into())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    #[serde(alias = "mime_type")]
    pub mime_type: String,
    /// Base64 of the bytes.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "mime_type")]
    pub mime_type: Option<String>,
    #[serde(alias = "file_uri")]
    pub file_uri: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// A JSON object.
    #[serde(default)]
    pub args: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// A JSON object; by convention `{"output": ...}` or `{"error": ...}`.
    #[serde(default)]
    pub response: Value,
}

/// One entry of `tools`: function declarations, or a built-in tool (`googleSearch`,
/// `codeExecution`, `urlContext`...) kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_declarations"
    )]
    pub function_declarations: Option<Vec<FunctionDeclaration>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An OpenAPI-subset schema (no `additionalProperties`, `$ref`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// A full JSON Schema, the alternative to `parameters`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "parameters_json_schema"
    )]
    pub parameters_json_schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_calling_config"
    )]
    pub function_calling_config: Option<FunctionCallingConfig>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO`, `ANY`, `NONE` or `VALIDATED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "allowed_function_names"
    )]
    pub allowed_function_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "stop_sequences"
    )]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_mime_type"
    )]
    pub response_mime_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_schema"
    )]
    pub response_schema: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_json_schema"
    )]
    pub response_json_schema: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "candidate_count"
    )]
    pub candidate_count: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_output_tokens"
    )]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "top_p")]
    pub top_p: Option<f64>,
    /// An integer on the Gemini API, a number on Vertex AI: kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "top_k")]
    pub top_k: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "presence_penalty"
    )]
    pub presence_penalty: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "frequency_penalty"
    )]
    pub frequency_penalty: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_logprobs"
    )]
    pub response_logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thinking_config"
    )]
    pub thinking_config: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `generateContent` answer, and each event of a `streamGenerateContent` stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "prompt_feedback"
    )]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "usage_metadata"
    )]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "model_version"
    )]
    pub model_version: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_id"
    )]
    pub response_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Absent when the candidate was blocked before producing anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "finish_reason"
    )]
    pub finish_reason: Option<String>,
    /// Omitted by the API for candidate 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "block_reason"
    )]
    pub block_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default, alias = "prompt_token_count")]
    pub prompt_token_count: u64,
    #[serde(default, alias = "candidates_token_count")]
    pub candidates_token_count: u64,
    #[serde(default, alias = "total_token_count")]
    pub total_token_count: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "cached_content_token_count"
    )]
    pub cached_content_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thoughts_token_count"
    )]
    pub thoughts_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "tool_use_prompt_token_count"
    )]
    pub tool_use_prompt_token_count: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT", "details": [...]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

/// The canonical status name Google uses for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// `:embedContent` body (also each entry of `:batchEmbedContents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedContentRequest {
    /// `models/{model}`; required inside a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "task_type")]
    pub task_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "output_dimensionality"
    )]
    pub output_dimensionality: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEmbedContentsRequest {
    pub requests: Vec<EmbedContentRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentEmbedding {
    #[serde(default)]
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedContentResponse {
    pub embedding: ContentEmbedding,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEmbedContentsResponse {
    #[serde(default)]
    pub embeddings: Vec<ContentEmbedding>,
}

/// Vertex AI `:predict` for text embedding models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictRequest {
    pub instances: Vec<PredictInstance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<PredictParameters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictInstance {
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictResponse {
    #[serde(default)]
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub embeddings: PredictedEmbedding,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedEmbedding {
    #[serde(default)]
    pub values: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<EmbeddingStatistics>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingStatistics {
    #[serde(default)]
    pub token_count: f64,
    #[serde(default)]
    pub truncated: bool,
}
