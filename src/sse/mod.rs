//! Server-Sent Events: an incremental decoder (bytes in, events out) following the WHATWG
//! event-stream parsing rules, and the encoder for the OpenAI `data:` stream.

pub mod eventstream;

use bytes::{Buf, Bytes, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
}

/// Incremental decoder. Feed it byte chunks as they arrive; it yields each event as soon as its
/// terminating blank line has been seen. Handles `\n`, `\r\n` and `\r` line endings, lines and
/// UTF-8 sequences split across chunks, comments, and a leading BOM.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    /// Bytes of `buf` already scanned for a line end (avoids rescanning on every push).
    scanned: usize,
    fields: Fields,
    seen_first_line: bool,
    /// A `\r` ended the previous line; a `\n` right after it belongs to the same line end.
    pending_cr: bool,
}

/// The fields of the event being read.
#[derive(Debug, Default)]
struct Fields {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a complete line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if one is buffered.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.pending_cr && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
                self.pending_cr = false;
            }
            let pos = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]);
            let Some(rel) = pos else {
                self.scanned = self.buf.len();
                return None;
            };
            let end = self.scanned + rel;
            self.scanned = 0;
            self.pending_cr = self.buf[end] == b'\r';
            let mut line = &self.buf[..end];
            if !self.seen_first_line {
                self.seen_first_line = true;
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            // Read in place, then dropped from the buffer: moving the start of a `BytesMut` is
            // cheaper than splitting the line off as a buffer of its own.
            let event = self.fields.line(line);
            self.buf.advance(end + 1);
            if event.is_some() {
                return event;
            }
        }
    }

    /// Call when the byte stream ends: an event not terminated by a blank line is discarded, as the
    /// spec says. Returns whether unterminated data was lost (a truncated stream).
    pub fn finish(&mut self) -> bool {
        let lost = self.fields.has_data || !self.buf.iter().all(|b| b.is_ascii_whitespace());
        self.buf.clear();
        self.scanned = 0;
        lost
    }
}

impl Fields {
    /// Takes in one line; the event it completes, if any.
    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Checked as UTF-8 first: much cheaper than the lossy conversion, which only invalid
        // bytes need.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {} // `retry` and unknown fields do not matter to a gateway
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.has_data {
            // An event with no data is not dispatched; its `event:` name is dropped.
            self.event = None;
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        })
    }
}

/// `data: <json>\n\n`, the OpenAI form, with the JSON written in place: one buffer (of about
/// `size_hint` bytes, e.g. the previous event's size), no copy.
pub fn encode_json_data<T: serde::Serialize + ?Sized>(
    value: &T,
    size_hint: usize,
) -> Result<Bytes, String> {
    encode_json_framed(&[b"data: "], value, b"\n\n", size_hint)
}

/// `data: <text>\n\n` for text already encoded as one line (a chunk passed on as it came).
pub fn data_event(text: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(b"data: ".len() + text.len() + 2);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(text);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `event: <name>\ndata: <json>\n\n`, the form Anthropic-style streams use, written in place.
pub fn encode_json_event<T: serde::Serialize + ?Sized>(
    event: &str,
    value: &T,
) -> Result<Bytes, String> {
    encode_json_framed(
        &[b"event: ", event.as_bytes(), b"\ndata: "],
        value,
        b"\n\n",
        0,
    )
}

/// `head` parts, the JSON of `value`, then `tail`, written into one buffer of about `size_hint`
/// bytes: the frame of any JSON event stream (SSE with `\n` or `\r\n` line ends, the elements
/// of a streamed JSON array).
pub fn encode_json_framed<T: serde::Serialize + ?Sized>(
    head: &[&[u8]],
    value: &T,
    tail: &[u8],
    size_hint: usize,
) -> Result<Bytes, String> {
    let head_len: usize = head.iter().map(|h| h.len()).sum();
    let mut out = Vec::with_capacity(head_len + size_hint.max(120) + tail.len());
    for part in head {
        out.extend_from_slice(part);
    }
    crate::schema::write_json(&mut out, value)?;
    out.extend_from_slice(tail);
    Ok(Bytes::from(out))
}

/// The OpenAI end-of-stream marker.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_encoded_in_place() {
        let value = serde_json::json!({"a": "x\ny"});
        let data = encode_json_data(&value, 0).unwrap();
        assert_eq!(&data[..], b"data: {\"a\":\"x\\ny\"}\n\n");
        let event = encode_json_event("ping", &value).unwrap();
        assert_eq!(&event[..], b"event: ping\ndata: {\"a\":\"x\\ny\"}\n\n");
        assert_eq!(&data_event(b"{\"a\":1}")[..], b"data: {\"a\":1}\n\n");
        // What the encoders write, the decoder reads back.
        let mut d = SseDecoder::new();
        d.push(&event);
        let e = d.next_event().unwrap();
        assert_eq!(e.event.as_deref(), Some("ping"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&e.data).unwrap(),
            value
        );
    }

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = vec![];
        for c in chunks {
            d.push(c);
            while let Some(e) = d.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn simple_events() {
        let ev = decode_all(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[1].data, "[DONE]");
    }

    #[test]
    fn split_anywhere_gives_same_events() {
        let stream: &[u8] =
            b"\xEF\xBB\xBF: keep-alive\r\nevent: message_start\r\ndata: {\"x\":\"\xC3\xA9\"}\r\n\r\nevent: ping\ndata: {}\n\ndata: a\ndata: b\r\rid: 7\ndata:c\n\n";
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0].event.as_deref(), Some("message_start"));
        assert_eq!(whole[0].data, "{\"x\":\"é\"}");
        assert_eq!(whole[1].event.as_deref(), Some("ping"));
        assert_eq!(whole[2].data, "a\nb");
        assert_eq!(whole[2].event, None);
        assert_eq!(whole[3].data, "c");
        assert_eq!(whole[3].id.as_deref(), Some("7"));
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(decode_all(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes), whole);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let ev = decode_all(&[b"event: x\n\ndata: y\n\n"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, None);
    }

    #[test]
    fn finish_reports_truncation() {
        let mut d = SseDecoder::new();
        d.push(b"data: {\"partial\"");
        assert!(d.next_event().is_none());
        assert!(d.finish());
        let mut d = SseDecoder::new();
        d.push(b"data: x\n\n");
        assert!(d.next_event().is_some());
        assert!(!d.finish());
    }
}
