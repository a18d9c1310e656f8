//! Cohere v2 wire types (`POST /v2/chat`, `POST /v2/embed`, `GET /v1/models`), from the public API
//! reference and the official SDK's generated types. Used by the adapter (gateway -> Cohere) and by
//! the mock (which parses what the adapter sends and answers in Cohere's shapes).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::schema::Extra;

/// `POST /v2/chat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_tools: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Cohere parameters the gateway does not model (`documents`, `citation_options`,
    /// `safety_mode`, `thinking`, `priority`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One message; the role is the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ToolCall>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_plan: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Vec<Value>>,
    },
    Tool {
        tool_call_id: String,
        content: Content,
    },
}

/// A string or a list of content items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Items(Vec<ContentItem>),
}

impl Content {
    /// All text, items joined without separator (thinking, images and documents skipped).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Items(items) => items
                .iter()
                .filter_map(|i| match i {
                    ContentItem::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentItem {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    Thinking {
        thinking: String,
    },
    /// A document in a tool result (`{"data": ...}` plus an optional `id`).
    Document {
        document: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// A web URL or a base64 data URI.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: ToolFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolFunction {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (required by Cohere).
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON-encoded arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ToolChoice {
    Required,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        json_schema: Option<Value>,
    },
}

/// `POST /v2/chat` answer (non-streamed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
    pub message: AssistantMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<LogprobItem>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    #[serde(default = "assistant")]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn assistant() -> String {
    "assistant".into()
}

/// `usage`: what was billed and what the model processed (which includes Cohere's own prompt
/// scaffolding, so it is larger than the billed input).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<Units>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Units>,
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token (and other unit) counts. The API reference types them as numbers; they are whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Units {
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_tokens: Option<u64>,
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_tokens: Option<u64>,
    /// `search_units`, `classifications`, `images`...
    #[serde(flatten)]
    pub extra: Extra,
}

/// A count written as an integer or a float (`12` or `12.0`).
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    Ok(v.filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x.round() as u64))
}

/// Log-probabilities of one text chunk: one value per token the chunk is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogprobItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default)]
    pub token_ids: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f64>>,
}

/// One streamed event (`event: <type>` + `data: {"type": <type>, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    #[serde(rename = "message-start")]
    MessageStart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<Value>,
    },
    #[serde(rename = "content-start")]
    ContentStart {
        #[serde(default)]
        index: u32,
        #[serde(default)]
        delta: ContentDelta,
    },
    #[serde(rename = "content-delta")]
    ContentDelta {
        #[serde(default)]
        index: u32,
        #[serde(default)]
        delta: ContentDelta,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<LogprobItem>,
    },
    #[serde(rename = "content-end")]
    ContentEnd {
        #[serde(default)]
        index: u32,
    },
    #[serde(rename = "tool-plan-delta")]
    ToolPlanDelta { delta: ToolPlanDelta },
    #[serde(rename = "tool-call-start")]
    ToolCallStart {
        #[serde(default)]
        index: u32,
        delta: ToolCallStartDelta,
    },
    #[serde(rename = "tool-call-delta")]
    ToolCallDelta {
        #[serde(default)]
        index: u32,
        delta: ToolCallDeltaDelta,
    },
    #[serde(rename = "tool-call-end")]
    ToolCallEnd {
        #[serde(default)]
        index: u32,
    },
    #[serde(rename = "citation-start")]
    CitationStart {
        #[serde(default)]
        index: u32,
        #[serde(default)]
        delta: Value,
    },
    #[serde(rename = "citation-end")]
    CitationEnd {
        #[serde(default)]
        index: u32,
    },
    #[serde(rename = "message-end")]
    MessageEnd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default)]
        delta: MessageEndDelta,
    },
    #[serde(rename = "debug")]
    Debug {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<String>,
    },
}

impl StreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message-start",
            StreamEvent::ContentStart { .. } => "content-start",
            StreamEvent::ContentDelta { .. } => "content-delta",
            StreamEvent::ContentEnd { .. } => "content-end",
            StreamEvent::ToolPlanDelta { .. } => "tool-plan-delta",
            StreamEvent::ToolCallStart { .. } => "tool-call-start",
            StreamEvent::ToolCallDelta { .. } => "tool-call-delta",
            StreamEvent::ToolCallEnd { .. } => "tool-call-end",
            StreamEvent::CitationStart { .. } => "citation-start",
            StreamEvent::CitationEnd { .. } => "citation-end",
            StreamEvent::MessageEnd { .. } => "message-end",
            StreamEvent::Debug { .. } => "debug",
        }
    }
}

/// `delta` of content events: `{"message": {"content": {"type"?, "text"?, "thinking"?}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentDelta {
    #[serde(default)]
    pub message: ContentDeltaMessage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentDeltaMessage {
    #[serde(default)]
    pub content: ContentPiece,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPiece {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
}

/// `{"message": {"tool_plan": "..."}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolPlanDelta {
    pub message: ToolPlanMessage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolPlanMessage {
    #[serde(default)]
    pub tool_plan: String,
}

/// `{"message": {"tool_calls": {"id", "type", "function": {"name", "arguments"}}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallStartDelta {
    pub message: ToolCallStartMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallStartMessage {
    pub tool_calls: ToolCall,
}

/// `{"message": {"tool_calls": {"function": {"arguments": "..."}}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDeltaDelta {
    pub message: ToolCallDeltaMessage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDeltaMessage {
    pub tool_calls: ToolCallFragment,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFragment {
    #[serde(default)]
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageEndDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Set when the generation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v2/embed` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    pub texts: Vec<String>,
    /// `search_document`, `search_query`, `classification`, `clustering` or `image`.
    pub input_type: String,
    pub embedding_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimension: Option<u32>,
    /// `truncate`, `max_tokens`, `priority`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `POST /v2/embed` answer (`response_type: "embeddings_by_type"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    #[serde(default)]
    pub id: String,
    pub embeddings: EmbeddingsByType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsByType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float: Option<Vec<Vec<f64>>>,
    /// `int8`, `uint8`, `binary`, `ubinary`, `base64`.
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<Units>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Units>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /v1/models` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Cohere's error body: `{"id": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub message: String,
}
