//! `/genai/{version}/models/{model}:{action}`: the Gemini API in front of any provider, so the
//! google-genai SDKs can use the gateway with `http_options={"base_url": "<gateway>/genai"}`.
//! The model in the path goes through the gateway's router (`gemini-2.0-flash`,
//! `openai/gpt-4o-mini`, an alias...). Errors come back in Google's error shape.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;
use serde_json::json;

use super::AppState;
use super::body::{read_limited, request_id, require_json};
use super::response::{
    encode_body, error_json, event_stream_response, finish, json_response, local_json,
};
use crate::compat::genai::{
    ChunksToResponses, batch_embed_request, batch_embed_response, embed_request, embed_response,
    error_envelope, from_chat_response, split_model_action, to_chat_request,
};
use crate::error::{GatewayError, Result};
use crate::gateway::RequestOptions;
use crate::providers::ChunkStream;
use crate::providers::gemini::wire::{
    BatchEmbedContentsRequest, EmbedContentRequest, GenerateContentRequest, GenerateContentResponse,
};
use crate::schema::parse_json;
use crate::sse::encode_json_framed;

pub fn genai_error(err: &GatewayError, rid: &str) -> Response {
    error_json(
        err,
        rid,
        serde_json::to_vec(&error_envelope(err)).unwrap_or_default(),
    )
}

/// `POST /genai/{version}/models/{model}:{action}`.
pub async fn model_action(
    State(state): State<AppState>,
    Path((_version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let started = Instant::now();
    let rid = request_id(headers);
    let result = async {
        let (model, action) = split_model_action(&rest).ok_or_else(|| {
            GatewayError::not_found(format!(
                "expected models/{{model}}:{{action}} in the path, got models/{rest}"
            ))
        })?;
        let limit = state.gateway.config().server.max_request_body.0 as usize;
        let bytes = read_limited(body, headers, limit).await?;
        require_json(&bytes)?;
        let opts = RequestOptions::default();
        match action {
            "generateContent" | "streamGenerateContent" => {
                let native: GenerateContentRequest = parse_json(&bytes)?;
                let stream = action == "streamGenerateContent";
                let req = to_chat_request(native, model, stream)?;
                if stream {
                    let sse = query
                        .as_deref()
                        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
                    let served = state.gateway.chat_stream(req, &opts).await?;
                    let body = GenaiEvents::new(served.value, model, sse);
                    let mut resp = event_stream_response(body, &rid, &served.meta, started);
                    if !sse {
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                    }
                    Ok(resp)
                } else {
                    let served = state.gateway.chat(req, &opts).await?;
                    let json = encode_body(&from_chat_response(&served.value, model))?;
                    Ok(json_response(json, &rid, &served.meta, started))
                }
            }
            "embedContent" => {
                let native: EmbedContentRequest = parse_json(&bytes)?;
                let served = state
                    .gateway
                    .embeddings(embed_request(native, model), &opts)
                    .await?;
                let json = encode_body(&embed_response(&served.value))?;
                Ok(json_response(json, &rid, &served.meta, started))
            }
            "batchEmbedContents" => {
                let native: BatchEmbedContentsRequest = parse_json(&bytes)?;
                let served = state
                    .gateway
                    .embeddings(batch_embed_request(native, model)?, &opts)
                    .await?;
                let json = encode_body(&batch_embed_response(&served.value))?;
                Ok(json_response(json, &rid, &served.meta, started))
            }
            other => Err(GatewayError::not_found(format!(
                "method {other:?} is not offered by this gateway (generateContent, \
                 streamGenerateContent, embedContent, batchEmbedContents are)"
            ))),
        }
    }
    .await;
    finish("genai.models", &rid, started, result, genai_error)
}

/// `GET /genai/{version}/models`: the gateway's models in Gemini's list shape.
pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    let list = state.gateway.list_models().await;
    let models: Vec<_> = list
        .data
        .iter()
        .map(|m| {
            json!({
                "name": format!("models/{}", m.id),
                "displayName": m.id,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents"],
            })
        })
        .collect();
    local_json(
        serde_json::to_vec(&json!({ "models": models })).unwrap_or_default(),
        &rid,
    )
}

/// Canonical chunks out as Gemini events: `data: <GenerateContentResponse>\r\n\r\n` with
/// `alt=sse`, else one JSON array streamed element by element, as the Gemini API does. A failure
/// mid-stream becomes a final event holding Google's error object.
struct GenaiEvents {
    inner: ChunkStream,
    translator: ChunksToResponses,
    pending: VecDeque<Bytes>,
    sse: bool,
    sent_any: bool,
    done: bool,
    /// The previous frame's size: the next one's buffer is sized from it.
    last_len: usize,
}

impl GenaiEvents {
    fn new(inner: ChunkStream, model: &str, sse: bool) -> Self {
        GenaiEvents {
            inner,
            translator: ChunksToResponses::new(model),
            pending: VecDeque::new(),
            sse,
            sent_any: false,
            done: false,
            last_len: 0,
        }
    }

    /// One frame, written in place: an SSE event (Gemini ends its lines with CRLF) or the next
    /// element of the JSON array.
    fn frame<T: serde::Serialize>(&mut self, value: &T) {
        let (head, tail): (&[u8], &[u8]) = match (self.sse, self.sent_any) {
            (true, _) => (b"data: ", b"\r\n\r\n"),
            (false, false) => (b"[", b""),
            (false, true) => (b",\r\n", b""),
        };
        match encode_json_framed(&[head], value, tail, self.last_len) {
            Ok(frame) => {
                self.last_len = frame.len();
                self.sent_any = true;
                self.pending.push_back(frame);
            }
            // Not expected (the gateway builds these values), and never half a frame: the
            // framing of what follows stays valid.
            Err(e) => tracing::error!(error = %e, "a Gemini stream frame could not be encoded"),
        }
    }

    fn queue(&mut self, responses: Vec<GenerateContentResponse>) {
        for r in responses {
            self.frame(&r);
        }
    }

    fn close(&mut self) {
        self.done = true;
        if !self.sse {
            let end: &'static [u8] = if self.sent_any { b"]" } else { b"[]" };
            self.pending.push_back(Bytes::from_static(end));
        }
    }
}

impl Stream for GenaiEvents {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.translator.chunk(&chunk, &mut out);
                    self.queue(out);
                }
                Poll::Ready(Some(Err(err))) => {
                    tracing::warn!(error = %err, "genai stream failed after it started");
                    self.frame(&error_envelope(&err));
                    self.close();
                }
                Poll::Ready(None) => {
                    self.translator.finish(&mut out);
                    self.queue(out);
                    self.close();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
