//! Chat Completions: request, messages, tools, response.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::extra::deserialize_with_extra;
use super::{Extra, MessageContent, Stop};

/// OpenAI request fields that no other provider API understands. Adapters for native APIs drop
/// them rather than forward them, because those APIs reject unknown fields.
pub const OPENAI_ONLY_FIELDS: &[&str] = &[
    "store",
    "prediction",
    "modalities",
    "audio",
    "web_search_options",
    "verbosity",
    "reasoning_effort",
    "metadata",
    "service_tier",
    "functions",
    "function_call",
    "safety_identifier",
    "prompt_cache_key",
];

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Extra>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Boxed, as is `response_format`: most requests carry neither, and inline the two would make
    /// every request, which is moved through each layer that handles it, about 250 bytes larger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Box<ToolChoice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Boxed: see `tool_choice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Box<ResponseFormat>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Checks what the wire format cannot express: an empty conversation, impossible values.
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::GatewayError;
        if self.model.trim().is_empty() {
            return Err(
                GatewayError::invalid_request("`model` must not be empty").with_param("model")
            );
        }
        if self.messages.is_empty() {
            return Err(GatewayError::invalid_request(
                "`messages` must contain at least one message",
            )
            .with_param("messages"));
        }
        if self.n == Some(0) {
            return Err(GatewayError::invalid_request("`n` must be at least 1").with_param("n"));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(GatewayError::invalid_request(format!(
                "`temperature` must be between 0 and 2, got {t}"
            ))
            .with_param("temperature"));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(GatewayError::invalid_request(format!(
                "`top_p` must be between 0 and 1, got {p}"
            ))
            .with_param("top_p"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role == Role::Tool && m.tool_call_id.is_none() {
                return Err(GatewayError::invalid_request(format!(
                    "messages[{i}]: a `tool` message needs a `tool_call_id`"
                ))
                .with_param(format!("messages[{i}].tool_call_id")));
            }
        }
        Ok(())
    }

    /// The token limit the caller asked for, whichever field carried it.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::System,
        Role::Developer,
        Role::User,
        Role::Assistant,
        Role::Tool,
        Role::Function,
    ];

    /// The role a wire name stands for (as deserializing reads it), if it is one.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
        }
    }
}

/// One message of a conversation, or the message of a response choice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    /// Absent or null on assistant messages that only call tools.
    pub content: Option<MessageContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Message {
    pub fn new(role: Role, content: impl Into<MessageContent>) -> Self {
        Message {
            role,
            content: Some(content.into()),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            refusal: None,
            extra: Extra::new(),
        }
    }

    pub fn text(&self) -> String {
        self.content
            .as_ref()
            .map(MessageContent::text)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
    #[serde(flatten)]
    pub extra: Extra,
}

fn function_type() -> String {
    "function".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON-encoded arguments, as the model produced them (not necessarily valid JSON).
    #[serde(default)]
    pub arguments: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool the model may call. Function tools are typed; other tool types pass through in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDefinition>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_choice`: `"none" | "auto" | "required"` or `{"type": "function", "function": {"name"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Named(NamedToolChoice),
}

impl ToolChoice {
    /// The function name a named choice forces, if any.
    pub fn forced_function(&self) -> Option<&str> {
        match self {
            ToolChoice::Named(n) => n.function.as_ref().map(|f| f.name.as_str()),
            ToolChoice::Mode(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<ToolChoiceFunction>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoiceFunction {
    pub name: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response_format`: `{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A chat completion (non-streamed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn chat_completion_object() -> String {
    "chat.completion".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub finish_reason: Option<FinishReason>,
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Why the model stopped. Provider-specific reasons are mapped onto these; values the gateway does
/// not know pass through as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    Other(String),
}

impl FinishReason {
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::FunctionCall => "function_call",
            FinishReason::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> FinishReason {
        match s {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "function_call" => FinishReason::FunctionCall,
            other => FinishReason::Other(other.to_string()),
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(FinishReason::parse(&s))
    }
}

/// Token counts. Cached prompt tokens are in `prompt_tokens_details.cached_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Default::default()
        }
    }

    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromptTokensDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompletionTokensDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

deserialize_with_extra!(ChatRequest {
    model: "model"[required],
    messages: "messages"[required],
    stream: "stream",
    stream_options: "stream_options",
    temperature: "temperature",
    top_p: "top_p",
    n: "n",
    stop: "stop",
    max_tokens: "max_tokens",
    max_completion_tokens: "max_completion_tokens",
    presence_penalty: "presence_penalty",
    frequency_penalty: "frequency_penalty",
    logit_bias: "logit_bias",
    logprobs: "logprobs",
    top_logprobs: "top_logprobs",
    user: "user",
    seed: "seed",
    tools: "tools",
    tool_choice: "tool_choice",
    parallel_tool_calls: "parallel_tool_calls",
    response_format: "response_format",
});

deserialize_with_extra!(Message {
    role: "role"[required],
    content: "content",
    name: "name",
    tool_calls: "tool_calls",
    tool_call_id: "tool_call_id",
    refusal: "refusal",
});

deserialize_with_extra!(ToolCall {
    id: "id"[required],
    kind: "type" = function_type(),
    function: "function"[required],
});

deserialize_with_extra!(ChatResponse {
    id: "id"[required],
    object: "object" = chat_completion_object(),
    created: "created",
    model: "model",
    choices: "choices"[required],
    usage: "usage",
    system_fingerprint: "system_fingerprint",
});

deserialize_with_extra!(Choice {
    index: "index",
    message: "message"[required],
    finish_reason: "finish_reason",
    logprobs: "logprobs",
});

deserialize_with_extra!(Usage {
    prompt_tokens: "prompt_tokens",
    completion_tokens: "completion_tokens",
    total_tokens: "total_tokens",
    prompt_tokens_details: "prompt_tokens_details",
    completion_tokens_details: "completion_tokens_details",
});

deserialize_with_extra!(PromptTokensDetails {
    cached_tokens: "cached_tokens",
    audio_tokens: "audio_tokens",
});

deserialize_with_extra!(CompletionTokensDetails {
    reasoning_tokens: "reasoning_tokens",
    audio_tokens: "audio_tokens",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_the_wire_names() {
        for role in Role::ALL {
            let wire = serde_json::to_string(&role).unwrap();
            assert_eq!(wire, format!("\"{}\"", role.as_str()));
            assert_eq!(Role::from_name(role.as_str()), Some(role));
            assert_eq!(serde_json::from_str::<Role>(&wire).unwrap(), role);
        }
        assert_eq!(Role::from_name("robot"), None);
        assert_eq!(Role::from_name("User"), None);
    }
}
