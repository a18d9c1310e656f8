//! `POST /anthropic/v1/messages`: the Anthropic Messages API in front of any provider, so the
//! official `anthropic` SDK (and tools built on it) can use the gateway with
//! `base_url=<gateway>/anthropic`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;

use super::AppState;
use super::body::{read_limited, request_id, require_json};
use super::response::{encode_body, error_json, event_stream_response, finish, json_response};
use crate::compat::anthropic::{
    ChunksToEvents, error_envelope, from_chat_response, to_chat_request,
};
use crate::error::{GatewayError, Result};
use crate::providers::ChunkStream;
use crate::providers::anthropic::wire::{MessagesRequest, StreamEvent};
use crate::schema::parse_json;
use crate::sse::encode_json_event;

pub fn anthropic_error(err: &GatewayError, rid: &str) -> Response {
    error_json(
        err,
        rid,
        serde_json::to_vec(&error_envelope(err)).unwrap_or_default(),
    )
}

pub async fn messages(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let started = Instant::now();
    let rid = request_id(headers);
    let result = async {
        let config = state.gateway.config();
        let limit = config.server.max_request_body.0 as usize;
        let rejected = super::openai_routes::rejected;
        let bytes = read_limited(body, headers, limit).await.map_err(rejected)?;
        require_json(&bytes).map_err(rejected)?;
        let native: MessagesRequest = parse_json(&bytes).map_err(rejected)?;
        let model = native.model.clone();
        let req = to_chat_request(native)?;
        let opts = super::openai_routes::options_from_headers(headers, &rid, &config)
            .map_err(super::openai_routes::rejected)?;
        if req.is_stream() {
            let served = state.gateway.chat_stream(req, &opts).await?;
            let body = AnthropicEvents::new(served.value, &model);
            Ok(event_stream_response(body, &rid, &served.meta, started))
        } else {
            let served = state.gateway.chat(req, &opts).await?;
            let json = encode_body(&from_chat_response(&served.value, &model))?;
            Ok(json_response(json, &rid, &served.meta, started))
        }
    }
    .await;
    finish("anthropic.messages", &rid, started, result, anthropic_error)
}

/// Canonical chunks out as Anthropic `event:`/`data:` frames. A failure mid-stream becomes an
/// `error` event, as the Anthropic API sends it.
struct AnthropicEvents {
    inner: ChunkStream,
    translator: ChunksToEvents,
    pending: VecDeque<Bytes>,
    done: bool,
}

impl AnthropicEvents {
    fn new(inner: ChunkStream, model: &str) -> Self {
        AnthropicEvents {
            inner,
            translator: ChunksToEvents::new(model),
            pending: VecDeque::new(),
            done: false,
        }
    }

    fn queue(&mut self, events: Vec<StreamEvent>) {
        for e in events {
            self.pending
                .push_back(encode_json_event(e.name(), &e).unwrap_or_default());
        }
    }
}

impl Stream for AnthropicEvents {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let mut events = Vec::new();
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.translator.chunk(&chunk, &mut events),
                Poll::Ready(Some(Err(err))) => {
                    self.done = true;
                    let env = error_envelope(&err);
                    self.pending
                        .push_back(encode_json_event("error", &env).unwrap_or_default());
                }
                Poll::Ready(None) => {
                    self.done = true;
                    self.translator.finish(&mut events);
                }
                Poll::Pending => return Poll::Pending,
            }
            self.queue(events);
        }
    }
}
