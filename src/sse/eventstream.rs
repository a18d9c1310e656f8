//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), which Bedrock's
//! ConverseStream speaks: an incremental decoder that validates both CRCs, and the encoder the
//! mock uses.
//!
//! ```text
//! u32 total_length | u32 headers_length | u32 prelude_crc = CRC32(bytes 0..8)
//! headers (headers_length bytes) | payload | u32 message_crc = CRC32(bytes 0..total_length-4)
//! ```
//! All integers are big-endian; CRC-32 is the IEEE one (zlib). A header is `u8 name_len`, the
//! name, `u8 type` and a value whose encoding depends on the type (Bedrock only sends strings).

use bytes::{Buf, BufMut, Bytes, BytesMut};

const PRELUDE: usize = 12;
/// Prelude plus message CRC: the smallest possible frame.
const MIN_FRAME: usize = 16;
/// botocore's limits: 128 KiB of headers, 24 MiB of payload.
const MAX_HEADERS: usize = 128 * 1024;
const MAX_PAYLOAD: usize = 24 * 1024 * 1024;
const MAX_FRAME: usize = MIN_FRAME + MAX_HEADERS + MAX_PAYLOAD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Bytes),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(payload: impl Into<Bytes>) -> Frame {
        Frame {
            headers: Vec::new(),
            payload: payload.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Frame {
        self.headers
            .push((name.to_string(), HeaderValue::String(value.to_string())));
        self
    }

    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let name = &name.as_bytes()[..name.len().min(255)];
            headers.put_u8(name.len() as u8);
            headers.put_slice(name);
            match value {
                HeaderValue::Bool(true) => headers.put_u8(0),
                HeaderValue::Bool(false) => headers.put_u8(1),
                HeaderValue::Byte(b) => {
                    headers.put_u8(2);
                    headers.put_i8(*b);
                }
                HeaderValue::Short(v) => {
                    headers.put_u8(3);
                    headers.put_i16(*v);
                }
                HeaderValue::Int(v) => {
                    headers.put_u8(4);
                    headers.put_i32(*v);
                }
                HeaderValue::Long(v) => {
                    headers.put_u8(5);
                    headers.put_i64(*v);
                }
                HeaderValue::Bytes(b) => {
                    headers.put_u8(6);
                    headers.put_u16(b.len() as u16);
                    headers.put_slice(b);
                }
                HeaderValue::String(s) => {
                    headers.put_u8(7);
                    headers.put_u16(s.len() as u16);
                    headers.put_slice(s.as_bytes());
                }
                HeaderValue::Timestamp(ms) => {
                    headers.put_u8(8);
                    headers.put_i64(*ms);
                }
                HeaderValue::Uuid(u) => {
                    headers.put_u8(9);
                    headers.put_slice(u);
                }
            }
        }
        let total = MIN_FRAME + headers.len() + self.payload.len();
        let mut out = Vec::with_capacity(total);
        out.put_u32(total as u32);
        out.put_u32(headers.len() as u32);
        out.put_u32(crc32fast::hash(&out[..8]));
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.payload);
        out.put_u32(crc32fast::hash(&out));
        out
    }
}

/// Why bytes are not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Incremental decoder: push bytes as they arrive (split anywhere), take frames as soon as they
/// are complete. A bad prelude fails as soon as its 12 bytes are in, so a body that is not an
/// event stream at all (an HTML error page) is reported at once instead of being buffered.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
}

impl EventStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let total = u32::from_be_bytes(self.buf[0..4].try_into().expect("4 bytes")) as usize;
        let headers_len = u32::from_be_bytes(self.buf[4..8].try_into().expect("4 bytes")) as usize;
        let prelude_crc = u32::from_be_bytes(self.buf[8..12].try_into().expect("4 bytes"));
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(FrameError("prelude checksum mismatch".into()));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
            return Err(FrameError(format!("invalid frame length {total}")));
        }
        if headers_len > MAX_HEADERS || headers_len > total - MIN_FRAME {
            return Err(FrameError(format!(
                "invalid headers length {headers_len} in a frame of {total} bytes"
            )));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total);
        let message_crc = u32::from_be_bytes(frame[total - 4..].try_into().expect("4 bytes"));
        if crc32fast::hash(&frame[..total - 4]) != message_crc {
            return Err(FrameError("message checksum mismatch".into()));
        }
        frame.truncate(total - 4);
        frame.advance(PRELUDE);
        let headers = parse_headers(&frame.split_to(headers_len))?;
        Ok(Some(Frame {
            headers,
            payload: frame.freeze(),
        }))
    }

    /// The byte stream ended; true if a partial frame was left over.
    pub fn finish(&mut self) -> bool {
        !self.buf.is_empty()
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    fn need(b: &[u8], n: usize) -> Result<(), FrameError> {
        if b.remaining() < n {
            return Err(FrameError("truncated header".into()));
        }
        Ok(())
    }
    let mut out = Vec::new();
    while b.has_remaining() {
        let name_len = b.get_u8() as usize;
        need(b, name_len + 1)?;
        let name = std::str::from_utf8(&b[..name_len])
            .map_err(|_| FrameError("header name is not UTF-8".into()))?
            .to_string();
        b.advance(name_len);
        let value = match b.get_u8() {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => {
                need(b, 1)?;
                HeaderValue::Byte(b.get_i8())
            }
            3 => {
                need(b, 2)?;
                HeaderValue::Short(b.get_i16())
            }
            4 => {
                need(b, 4)?;
                HeaderValue::Int(b.get_i32())
            }
            5 => {
                need(b, 8)?;
                HeaderValue::Long(b.get_i64())
            }
            t @ (6 | 7) => {
                need(b, 2)?;
                let len = b.get_u16() as usize;
                need(b, len)?;
                let data = b.copy_to_bytes(len);
                if t == 6 {
                    HeaderValue::Bytes(data)
                } else {
                    HeaderValue::String(
                        String::from_utf8(data.to_vec())
                            .map_err(|_| FrameError(format!("header {name} is not valid UTF-8")))?,
                    )
                }
            }
            8 => {
                need(b, 8)?;
                HeaderValue::Timestamp(b.get_i64())
            }
            9 => {
                need(b, 16)?;
                let mut u = [0u8; 16];
                b.copy_to_slice(&mut u);
                HeaderValue::Uuid(u)
            }
            other => return Err(FrameError(format!("unknown header type {other}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_every_header_type() {
        let mut frame = Frame::new(&b"{\"a\":1}"[..]).with_header(":event-type", "x");
        frame.headers.extend([
            ("t".to_string(), HeaderValue::Bool(true)),
            ("f".to_string(), HeaderValue::Bool(false)),
            ("b".to_string(), HeaderValue::Byte(-3)),
            ("s".to_string(), HeaderValue::Short(300)),
            ("i".to_string(), HeaderValue::Int(-70000)),
            ("l".to_string(), HeaderValue::Long(1 << 40)),
            (
                "y".to_string(),
                HeaderValue::Bytes(Bytes::from_static(b"\x00\x01")),
            ),
            ("ts".to_string(), HeaderValue::Timestamp(1_705_320_000_000)),
            ("u".to_string(), HeaderValue::Uuid([7; 16])),
        ]);
        let mut d = EventStreamDecoder::new();
        d.push(&frame.encode());
        assert_eq!(d.next_frame().unwrap(), Some(frame));
        assert_eq!(d.next_frame().unwrap(), None);
        assert!(!d.finish());
    }
}
