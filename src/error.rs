//! One error type for the whole engine. Each front door renders it its own way: the server as
//! OpenAI-style error JSON with an HTTP status, the Python bindings as a typed exception.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

/// What went wrong, independent of how it is shown. Decides the default HTTP status, the OpenAI
/// `type` string and the Python exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or has a bad value (400).
    InvalidRequest,
    /// The prompt does not fit the model's context window (400).
    ContextWindowExceeded,
    /// The provider refused the content (400).
    ContentFiltered,
    /// Missing or invalid credentials (401).
    Authentication,
    /// Credentials are valid but not allowed to do this (403).
    PermissionDenied,
    /// Unknown model, provider or route (404).
    NotFound,
    /// The request body is over the configured limit (413).
    PayloadTooLarge,
    /// Syntactically valid but semantically rejected (422).
    Unprocessable,
    /// Rate limited by the provider or the gateway (429).
    RateLimited,
    /// The upstream answered with a server error (5xx, status kept).
    UpstreamServer,
    /// The upstream answered with something that is not a valid response (502).
    BadUpstreamResponse,
    /// The upstream could not be reached or dropped the connection (502).
    UpstreamConnection,
    /// The upstream did not answer in time (504).
    Timeout,
    /// No candidate can serve the request right now (503).
    Unavailable,
    /// A bug or an unexpected state inside the gateway (500).
    Internal,
}

impl ErrorKind {
    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextWindowExceeded
            | ErrorKind::ContentFiltered => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unprocessable => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::UpstreamServer | ErrorKind::Internal => 500,
            ErrorKind::BadUpstreamResponse | ErrorKind::UpstreamConnection => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The OpenAI error `type` string.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextWindowExceeded
            | ErrorKind::ContentFiltered
            | ErrorKind::PayloadTooLarge
            | ErrorKind::Unprocessable => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::UpstreamServer | ErrorKind::Internal => "server_error",
            ErrorKind::BadUpstreamResponse => "bad_response_error",
            ErrorKind::UpstreamConnection => "api_connection_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Unavailable => "service_unavailable_error",
        }
    }

    /// A stable snake_case name, used by the Python bindings to pick the exception class.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ContextWindowExceeded => "context_window_exceeded",
            ErrorKind::ContentFiltered => "content_filtered",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::UpstreamServer => "upstream_server",
            ErrorKind::BadUpstreamResponse => "bad_upstream_response",
            ErrorKind::UpstreamConnection => "upstream_connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the same request may succeed if sent again (possibly elsewhere).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::UpstreamServer
                | ErrorKind::BadUpstreamResponse
                | ErrorKind::UpstreamConnection
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
        )
    }

    /// The kind an upstream HTTP status maps to.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::Timeout,
            413 => ErrorKind::PayloadTooLarge,
            422 => ErrorKind::Unprocessable,
            429 => ErrorKind::RateLimited,
            s if s >= 500 => ErrorKind::UpstreamServer,
            _ => ErrorKind::InvalidRequest,
        }
    }
}

/// An error with everything a caller needs to act on it. Messages never contain secrets: upstream
/// messages pass through [`GatewayError::scrub`] before they get here.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    /// HTTP status to answer with. Defaults to the kind's status; upstream errors keep theirs.
    pub status: u16,
    pub message: String,
    /// The provider whose answer caused the error, if any.
    pub provider: Option<Arc<str>>,
    /// OpenAI-style machine-readable code (`context_length_exceeded`, `queue_full`...).
    pub code: Option<String>,
    /// The request field at fault, e.g. `messages[0].role`.
    pub param: Option<String>,
    /// How long the caller should wait before retrying, from the upstream's `Retry-After`.
    pub retry_after: Option<Duration>,
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            status: kind.default_status(),
            message: message.into(),
            provider: None,
            code: None,
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_provider(mut self, provider: impl Into<Arc<str>>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// Removes every occurrence of the given secrets from the message. Upstreams sometimes echo
    /// (parts of) the key they were sent; none of it may reach a caller or a log.
    pub fn scrub<'a>(mut self, secrets: impl IntoIterator<Item = &'a str>) -> Self {
        for secret in secrets {
            if secret.len() >= 4 && self.message.contains(secret) {
                self.message = self.message.replace(secret, "[REDACTED]");
            }
        }
        self
    }

    /// The OpenAI error object: `{"error": {"message", "type", "param", "code"}}`, plus the
    /// provider when one is known.
    pub fn to_openai_json(&self) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind.openai_type(),
            "param": self.param,
            "code": self.code,
        });
        if let Some(provider) = &self.provider {
            error["provider"] = Value::String(provider.to_string());
        }
        json!({ "error": error })
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.provider {
            Some(p) => write!(f, "{} ({}): {}", self.kind.as_str(), p, self.message),
            None => write!(f, "{}: {}", self.kind.as_str(), self.message),
        }
    }
}

impl std::error::Error for GatewayError {}

/// Turns a serde error with its path into a 400 naming the offending field.
pub fn from_path_error<E: fmt::Display>(err: serde_path_to_error::Error<E>) -> GatewayError {
    let path = err.path().to_string();
    let inner = err.into_inner().to_string();
    // serde_json appends " at line X column Y"; the field path says more to a caller.
    let inner = match inner.find(" at line ") {
        Some(i) => inner[..i].to_string(),
        None => inner,
    };
    if path == "." || path.is_empty() {
        GatewayError::invalid_request(format!("invalid request body: {inner}"))
    } else {
        GatewayError::invalid_request(format!("invalid request body: {path}: {inner}"))
            .with_param(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secrets() {
        let err = GatewayError::new(ErrorKind::Authentication, "bad key sk-secret-123 given")
            .scrub(["sk-secret-123"]);
        assert_eq!(err.message, "bad key [REDACTED] given");
    }

    #[test]
    fn openai_json_shape() {
        let err = GatewayError::new(ErrorKind::RateLimited, "slow down")
            .with_code("rate_limit_exceeded")
            .with_provider("openai");
        let v = err.to_openai_json();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["provider"], "openai");
        assert!(v["error"]["param"].is_null());
        assert_eq!(err.status, 429);
    }
}
