//! AWS Bedrock Runtime wire types, from the service model (`bedrock-runtime` 2023-09-30): Converse
//! and ConverseStream (`POST /model/{modelId}/converse[-stream]`), InvokeModel bodies of the
//! embedding models, and error bodies. Used by the adapter and by the mock.
//!
//! The API's unions (a content block is exactly one of `text`, `image`, `toolUse`...) are structs
//! of optional members, as the AWS SDKs model them: members this gateway does not know (video,
//! citations, guardrail content...) are kept in `other` instead of failing the parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::Extra;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<ContentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Extra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// `guardrailConfig`, `performanceConfig`, `requestMetadata`, `serviceTier`, ...
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
}

/// A content block (also a system block): exactly one member is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResultBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<CachePoint>,
    #[serde(flatten)]
    pub other: Extra,
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    pub fn cache_point() -> Self {
        ContentBlock {
            cache_point: Some(CachePoint::default()),
            ..Default::default()
        }
    }

    /// How many union members are set (a valid block has exactly one).
    pub fn members(&self) -> usize {
        [
            self.text.is_some(),
            self.image.is_some(),
            self.document.is_some(),
            self.tool_use.is_some(),
            self.tool_result.is_some(),
            self.reasoning_content.is_some(),
            self.cache_point.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count()
            + self.other.len()
    }
}

/// `{format: png|jpeg|gif|webp, source: {bytes: <base64>} | {s3Location: {...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    pub format: String,
    pub source: BinarySource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub name: String,
    pub source: BinarySource,
}

/// Where image or document bytes come from: inline base64 `bytes`, or `s3Location`/`text`/...
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BinarySource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    #[serde(flatten)]
    pub other: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    pub tool_use_id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    pub tool_use_id: String,
    #[serde(default)]
    pub content: Vec<ToolResultContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolResultContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBlock>,
    #[serde(flatten)]
    pub other: Extra,
}

/// Claude's extended thinking: `{reasoningText: {text, signature}} | {redactedContent: <base64>}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_text: Option<ReasoningText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningText {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A prompt-caching checkpoint: everything before it may be cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachePoint {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl Default for CachePoint {
    fn default() -> Self {
        CachePoint {
            kind: "default".into(),
            ttl: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<ToolEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// `{toolSpec: {...}} | {systemTool: {...}} | {cachePoint: {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_spec: Option<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<CachePoint>,
    #[serde(flatten)]
    pub other: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: InputSchema,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSchema {
    pub json: Value,
}

/// `{auto: {}} | {any: {}} | {tool: {name}}`. Converse has no "none".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    Auto(Empty),
    Any(Empty),
    Tool { name: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// Native structured output: `{textFormat: {type: "json_schema", structure: {jsonSchema: {...}}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig {
    pub text_format: TextFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextFormat {
    #[serde(rename = "type")]
    pub kind: String,
    pub structure: FormatStructure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormatStructure {
    pub json_schema: JsonSchemaDefinition,
}

/// The schema travels as a JSON *string*.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaDefinition {
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: ConverseOutput,
    pub stop_reason: String,
    #[serde(default)]
    pub usage: TokenUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
    /// `trace`, `performanceConfig`, `serviceTier`.
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConverseOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

/// Token counts. `inputTokens` excludes the cache reads and writes, which are counted apart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One ConverseStream event, named by the frame's `:event-type` header. Payloads may carry
/// fields not listed here (real Bedrock pads them with a random `"p"`); they are ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    MessageStart(MessageStart),
    ContentBlockStart(ContentBlockStart),
    ContentBlockDelta(ContentBlockDelta),
    ContentBlockStop(ContentBlockStop),
    MessageStop(MessageStop),
    Metadata(Metadata),
}

impl StreamEvent {
    pub const NAMES: [&'static str; 6] = [
        "messageStart",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart(_) => "messageStart",
            StreamEvent::ContentBlockStart(_) => "contentBlockStart",
            StreamEvent::ContentBlockDelta(_) => "contentBlockDelta",
            StreamEvent::ContentBlockStop(_) => "contentBlockStop",
            StreamEvent::MessageStop(_) => "messageStop",
            StreamEvent::Metadata(_) => "metadata",
        }
    }

    /// Parses a payload for an event type; `Ok(None)` for an event type this gateway does not know.
    pub fn parse(event_type: &str, payload: &[u8]) -> serde_json::Result<Option<StreamEvent>> {
        Ok(Some(match event_type {
            "messageStart" => StreamEvent::MessageStart(crate::schema::json_from_bytes(payload)?),
            "contentBlockStart" => {
                StreamEvent::ContentBlockStart(crate::schema::json_from_bytes(payload)?)
            }
            "contentBlockDelta" => {
                StreamEvent::ContentBlockDelta(crate::schema::json_from_bytes(payload)?)
            }
            "contentBlockStop" => {
                StreamEvent::ContentBlockStop(crate::schema::json_from_bytes(payload)?)
            }
            "messageStop" => StreamEvent::MessageStop(crate::schema::json_from_bytes(payload)?),
            "metadata" => StreamEvent::Metadata(crate::schema::json_from_bytes(payload)?),
            _ => return Ok(None),
        }))
    }

    pub fn payload(&self) -> Value {
        let v = match self {
            StreamEvent::MessageStart(e) => serde_json::to_value(e),
            StreamEvent::ContentBlockStart(e) => serde_json::to_value(e),
            StreamEvent::ContentBlockDelta(e) => serde_json::to_value(e),
            StreamEvent::ContentBlockStop(e) => serde_json::to_value(e),
            StreamEvent::MessageStop(e) => serde_json::to_value(e),
            StreamEvent::Metadata(e) => serde_json::to_value(e),
        };
        v.unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStart {
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    pub content_block_index: u32,
    pub start: BlockStart,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseStart>,
    /// `toolResult`, `image`.
    #[serde(flatten)]
    pub other: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    pub content_block_index: u32,
    pub delta: BlockDelta,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `{input: "<a fragment of the JSON input>"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseDelta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningDelta>,
    /// `citation`, `toolResult`, `image`.
    #[serde(flatten)]
    pub other: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseDelta {
    pub input: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStop {
    pub content_block_index: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    pub stop_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub usage: TokenUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
}

/// The error name AWS gives in `x-amzn-ErrorType` (or a body's `__type`/`code`), reduced to the
/// bare name: `ValidationException:http://internal.amazon.com/...` and
/// `com.amazon.coral#ThrottlingException` both become the exception name.
pub fn error_name(raw: &str) -> &str {
    let raw = raw.split(':').next().unwrap_or(raw);
    raw.rsplit('#').next().unwrap_or(raw).trim()
}

/// `{"message": "..."}` (or `Message`), the body of every Bedrock error and exception frame.
pub fn error_message(body: &Value) -> Option<String> {
    body.get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

// InvokeModel bodies of the embedding models.

/// Amazon Titan Text Embeddings (`amazon.titan-embed-text-v1`, `-v2:0`): one text per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbedRequest {
    pub input_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbedResponse {
    pub embedding: Vec<f64>,
    #[serde(default)]
    pub input_text_token_count: u64,
}

/// Cohere Embed on Bedrock (`cohere.embed-english-v3`, `-multilingual-v3`, `-v4:0`): up to 96
/// texts per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohereEmbedRequest {
    pub texts: Vec<String>,
    pub input_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimension: Option<u32>,
}

/// `embeddings` is a list of vectors (`response_type: embeddings_floats`) or, when
/// `embedding_types` was given, an object of lists by type (`embeddings_by_type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohereEmbedResponse {
    pub embeddings: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
}
