//! Turning an upstream byte stream into canonical chunks: a frame decoder (SSE, or AWS
//! event-stream for Bedrock) feeds a per-provider translator, a pure state machine that can be
//! golden-tested without a network. Chunks are yielded as soon as their frame is complete: nothing
//! is buffered beyond one frame, and nothing is read from the upstream until the caller asks for
//! the next chunk (backpressure end to end).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use super::transport::TimedBody;
use crate::error::Result;
use crate::sse::{SseDecoder, SseEvent};

/// Splits bytes into the frames of a streaming protocol.
pub trait FrameDecoder: Send + 'static {
    type Frame;
    fn push(&mut self, bytes: &[u8]);
    fn next_frame(&mut self) -> Result<Option<Self::Frame>>;
    /// The byte stream ended; true if an incomplete frame was left over.
    fn finish(&mut self) -> bool;
}

impl FrameDecoder for SseDecoder {
    type Frame = SseEvent;
    fn push(&mut self, bytes: &[u8]) {
        SseDecoder::push(self, bytes)
    }
    fn next_frame(&mut self) -> Result<Option<SseEvent>> {
        Ok(self.next_event())
    }
    fn finish(&mut self) -> bool {
        SseDecoder::finish(self)
    }
}

/// Whether the stream goes on after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Done,
}

/// A provider's streaming translation: native frames in, canonical chunks out.
pub trait StreamTranslator<F>: Send + 'static {
    /// What it yields: [`ChatChunk`](crate::schema::ChatChunk)s, or
    /// [`StreamChunk`](crate::schema::StreamChunk)s where chunks may be passed on as they came.
    type Chunk: Send + Unpin + 'static;
    fn frame(&mut self, frame: F, out: &mut VecDeque<Self::Chunk>) -> Result<Flow>;
    /// The upstream closed the stream without a terminal frame. `truncated` says whether a partial
    /// frame was left over. Return an error if the answer is incomplete.
    fn end(&mut self, truncated: bool, out: &mut VecDeque<Self::Chunk>) -> Result<()>;
}

/// Runs a translator over frames, for golden tests and anything else that has the whole stream.
pub fn translate_all<D, T>(mut decoder: D, mut translator: T, bytes: &[u8]) -> Result<Vec<T::Chunk>>
where
    D: FrameDecoder,
    T: StreamTranslator<D::Frame>,
{
    let mut out = VecDeque::new();
    decoder.push(bytes);
    while let Some(frame) = decoder.next_frame()? {
        if translator.frame(frame, &mut out)? == Flow::Done {
            return Ok(out.into());
        }
    }
    let truncated = decoder.finish();
    translator.end(truncated, &mut out)?;
    Ok(out.into())
}

pub struct TranslatedStream<D, T>
where
    D: FrameDecoder,
    T: StreamTranslator<D::Frame>,
{
    body: TimedBody,
    decoder: D,
    translator: T,
    out: VecDeque<T::Chunk>,
    done: bool,
    /// An error to yield once the chunks produced before it have been delivered.
    failed: Option<crate::error::GatewayError>,
}

impl<D, T> TranslatedStream<D, T>
where
    D: FrameDecoder,
    T: StreamTranslator<D::Frame>,
{
    pub fn new(body: TimedBody, decoder: D, translator: T) -> Self {
        TranslatedStream {
            body,
            decoder,
            translator,
            out: VecDeque::new(),
            done: false,
            failed: None,
        }
    }
}

impl<D, T> Stream for TranslatedStream<D, T>
where
    D: FrameDecoder + Unpin,
    T: StreamTranslator<D::Frame> + Unpin,
{
    type Item = Result<T::Chunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if this.done {
                return Poll::Ready(this.failed.take().map(Err));
            }
            // Drain complete frames before reading more bytes.
            match this.decoder.next_frame() {
                Ok(Some(frame)) => {
                    match this.translator.frame(frame, &mut this.out) {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Done) => {
                            this.done = true;
                            this.body.answer_complete();
                        }
                        Err(e) => {
                            this.done = true;
                            this.failed = Some(e);
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    this.failed = Some(e);
                    continue;
                }
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.decoder.push(&bytes),
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.failed = Some(e);
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let truncated = this.decoder.finish();
                    this.failed = this.translator.end(truncated, &mut this.out).err();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
