//! A strict JSON reader for the pass-through checks (`raw.rs`, `raw_stream.rs`): it walks a
//! document once, without allocating, reads the few values the gateway accounts with and
//! validates the rest as it skips it.
//!
//! Why not serde_json: its skipping goes through the visitor machinery value by value, which
//! makes merely validating an answer cost about 13 instructions a byte; this reader's loops cost
//! a few. It stays a reader for those checks only, and a conservative one: whatever it cannot
//! vouch for as plainly as serde_json would read it (an escaped key, a `\u` escape of a
//! surrogate, nesting deeper than serde_json's limit) is a failure, which sends the document to
//! the parsing path, where serde_json reads and reports it. The tests of both checks compare
//! their verdicts with serde's on every truncation and many corruptions of their fixtures.
//!
//! A recording scanner also notes the strings it validated without reading them ([`Slot`]s), so
//! that the next chunk of a stream can be checked by comparing it with the last one
//! (`raw_stream::ChunkShape`).

/// The document is not one the checks vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

pub type Scan<T> = Result<T, Invalid>;

/// serde_json's default recursion limit.
const MAX_DEPTH: u32 = 128;

/// Bytes that end the plain run of a string: the quote, the backslash and control characters.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Where the plain run of a string starting at `from` ends in `bytes`: the first quote,
/// backslash or control character, or the end.
///
/// Eight bytes at a time: answers carry their text in strings, so this is the scanner's
/// per-byte cost, and a byte at a time through [`STRING_STOP`] costs several times as much.
fn plain_run(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let stops = stop_bytes(word);
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = &bytes[at..];
    at + rest
        .iter()
        .position(|&b| STRING_STOP[b as usize])
        .unwrap_or(rest.len())
}

const EACH_BYTE: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` (little-endian) below `n` (at most 0x80) set. Exact for
/// the lowest such byte, the only one read: a byte above may be set by a borrow from it.
const fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(EACH_BYTE * n as u64) & !word & HIGH_BITS
}

/// The lowest byte of `word` set is its first stop byte, as in [`STRING_STOP`]; zero if none.
const fn stop_bytes(word: u64) -> u64 {
    bytes_below(word, 0x20)
        | bytes_below(word ^ (EACH_BYTE * b'"' as u64), 1)
        | bytes_below(word ^ (EACH_BYTE * b'\\' as u64), 1)
}

/// A string value whose text a check validated but did not read (see [`Scanner::recording`]):
/// another document that differs from this one only in such strings gets the same verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The opening quote.
    pub start: usize,
    /// Past the closing quote.
    pub end: usize,
    pub kind: SlotKind,
}

/// How a [`Slot`]'s string was read, and so how a string in its place must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// Without escapes ([`Scanner::unread_plain_str`]).
    Plain,
    /// Escapes validated ([`Scanner::skip`]).
    Any,
    /// Escapes validated, and whether it is empty is read ([`Scanner::token_str`]).
    Token,
}

#[derive(Clone)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    depth: u32,
    /// The slots seen so far, when recording.
    slots: Option<Vec<Slot>>,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Scanner {
            bytes: text.as_bytes(),
            text,
            at: 0,
            depth: 0,
            slots: None,
        }
    }

    /// A scanner that notes the [`Slot`]s of the document it reads ([`Scanner::into_slots`]).
    pub fn recording(text: &'a str) -> Self {
        Scanner {
            slots: Some(Vec::new()),
            ..Scanner::new(text)
        }
    }

    /// The slots noted, in document order (none if not recording).
    pub fn into_slots(self) -> Vec<Slot> {
        self.slots.unwrap_or_default()
    }

    /// Reads a string of `kind` at `at` (its opening quote) in `text`, as a slot of that kind was
    /// read: where it ends, and whether it is empty. `None` if it is not one.
    pub fn slot_at(text: &'a str, at: usize, kind: SlotKind) -> Option<(usize, bool)> {
        let mut s = Scanner {
            at,
            ..Scanner::new(text)
        };
        let empty = match kind {
            SlotKind::Plain => s.plain_str().ok()?.is_empty(),
            SlotKind::Any | SlotKind::Token => s.any_str().ok()?,
        };
        Some((s.at, empty))
    }

    /// Notes the string that started at `start` and just ended as a slot, when recording.
    fn note(&mut self, start: usize, kind: SlotKind) {
        if let Some(slots) = &mut self.slots {
            slots.push(Slot {
                start,
                end: self.at,
                kind,
            });
        }
    }

    fn skip_whitespace(&mut self) {
        // Mostly none, or one space: the common case costs one comparison.
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Scan<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied().ok_or(Invalid)
    }

    fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.peek()? != byte {
            return Err(Invalid);
        }
        self.at += 1;
        Ok(())
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Scan<()> {
        self.skip_whitespace();
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// An object, calling `member` with each key, the scanner then at the key's value (which
    /// `member` must read or skip). Keys with escapes are refused.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Scan<()>) -> Scan<()> {
        if self.open(b'{', b'}')? {
            return Ok(());
        }
        loop {
            let key = self.plain_str()?;
            self.expect(b':')?;
            member(self, key)?;
            if self.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    /// An array, calling `element` at each element (which it must read or skip).
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        if self.open(b'[', b']')? {
            return Ok(());
        }
        loop {
            element(self)?;
            if self.next_or_close(b']')? {
                return Ok(());
            }
        }
    }

    /// Past the opening byte of an object or array; whether it is empty (closed already).
    fn open(&mut self, open: u8, close: u8) -> Scan<bool> {
        self.expect(open)?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid);
        }
        self.next_is_close(close)
    }

    /// After a member or element: past a comma (`false`), or past the closing byte (`true`).
    fn next_or_close(&mut self, close: u8) -> Scan<bool> {
        if self.peek()? == b',' {
            self.at += 1;
            return Ok(false);
        }
        if self.next_is_close(close)? {
            Ok(true)
        } else {
            Err(Invalid)
        }
    }

    fn next_is_close(&mut self, close: u8) -> Scan<bool> {
        if self.peek()? == close {
            self.at += 1;
            self.depth -= 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// A string without escapes, borrowed from the document.
    pub fn plain_str(&mut self) -> Scan<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = plain_run(self.bytes, start);
        if self.bytes.get(end) != Some(&b'"') {
            return Err(Invalid);
        }
        self.at = end + 1;
        // Boundaries at ASCII quotes of a `str`: on character boundaries.
        Ok(&self.text[start..end])
    }

    /// A string without escapes whose text the check does not read (a [`SlotKind::Plain`]
    /// slot).
    pub fn unread_plain_str(&mut self) -> Scan<()> {
        self.skip_whitespace();
        let start = self.at;
        self.plain_str()?;
        self.note(start, SlotKind::Plain);
        Ok(())
    }

    /// Any string, escapes validated, of which the check reads only whether it is empty (a
    /// [`SlotKind::Token`] slot); whether it is not.
    pub fn token_str(&mut self) -> Scan<bool> {
        self.skip_whitespace();
        let start = self.at;
        let empty = self.any_str()?;
        self.note(start, SlotKind::Token);
        Ok(!empty)
    }

    /// Any string, escapes validated; whether it is empty.
    pub fn any_str(&mut self) -> Scan<bool> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            let at = plain_run(self.bytes, self.at);
            match self.bytes.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(at == start);
                }
                Some(b'\\') => self.at = self.escape(at + 1)?,
                _ => return Err(Invalid), // a control character, or the end
            }
        }
    }

    /// Past the escape whose letter is at `at`.
    fn escape(&self, at: usize) -> Scan<usize> {
        match self.bytes.get(at) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 1),
            Some(b'u') => {
                let hex = self.bytes.get(at + 1..at + 5).ok_or(Invalid)?;
                let mut code = 0u32;
                for &h in hex {
                    code = code * 16 + (h as char).to_digit(16).ok_or(Invalid)?;
                }
                // Surrogates must pair up; serde_json checks how: leave them to it.
                if (0xD800..=0xDFFF).contains(&code) {
                    return Err(Invalid);
                }
                Ok(at + 5)
            }
            _ => Err(Invalid),
        }
    }

    /// A non-negative integer that fits in a `u64`, without fraction or exponent.
    pub fn u64(&mut self) -> Scan<u64> {
        self.skip_whitespace();
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(Invalid)?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return Err(Invalid);
        }
        if let Some(b'.' | b'e' | b'E') = self.bytes.get(self.at) {
            return Err(Invalid);
        }
        Ok(value)
    }

    /// `null`, consumed.
    pub fn null(&mut self) -> Scan<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.bytes.get(self.at..self.at + word.len()) != Some(word) {
            return Err(Invalid);
        }
        self.at += word.len();
        Ok(())
    }

    fn number(&mut self) -> Scan<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits = |s: &mut Self| {
            let start = s.at;
            while s.bytes.get(s.at).is_some_and(u8::is_ascii_digit) {
                s.at += 1;
            }
            if s.at == start {
                Err(Invalid)
            } else {
                Ok(s.at - start)
            }
        };
        let start = self.at;
        let n = digits(self)?;
        if n > 1 && self.bytes[start] == b'0' {
            return Err(Invalid);
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            digits(self)?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            digits(self)?;
        }
        Ok(())
    }

    /// Any value, validated and skipped.
    pub fn skip(&mut self) -> Scan<()> {
        match self.peek()? {
            b'{' => self.object(|s, _| s.skip()),
            b'[' => self.array(Self::skip),
            b'"' => {
                let start = self.at;
                self.any_str()?;
                self.note(start, SlotKind::Any);
                Ok(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Invalid),
        }
    }

    /// Any value, validated and skipped, as its text.
    pub fn value_text(&mut self) -> Scan<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        self.skip()?;
        Ok(&self.text[start..self.at])
    }
}

/// A field checked once: a second occurrence fails, as serde's derived readers fail it.
pub fn once<T>(slot: &mut Option<T>, value: T) -> Scan<()> {
    if slot.is_some() {
        return Err(Invalid);
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(text: &str) -> bool {
        let mut s = Scanner::new(text);
        s.skip().and_then(|()| s.end()).is_ok()
    }

    /// The plain run a byte at a time, as the table says.
    fn plain_run_bytewise(bytes: &[u8], from: usize) -> usize {
        from + bytes[from..]
            .iter()
            .position(|&b| STRING_STOP[b as usize])
            .unwrap_or(bytes.len() - from)
    }

    #[test]
    fn plain_run_stops_where_the_table_says() {
        // Every byte value at every offset of the first words, after plain ASCII, multi-byte
        // text and DEL (none of them stops), with and without a second stop byte after it.
        for filler in [b'a', 0xc3, 0x7f, 0x80, 0xff] {
            for len in 0..20 {
                for at in 0..len {
                    for b in 0..=255u8 {
                        for second in [None, Some(0u8), Some(b'"'), Some(0x1f)] {
                            let mut bytes = vec![filler; len];
                            bytes[at] = b;
                            if let (Some(c), true) = (second, at + 1 < len) {
                                bytes[at + 1] = c;
                            }
                            for from in [0, at.min(3)] {
                                assert_eq!(
                                    plain_run(&bytes, from),
                                    plain_run_bytewise(&bytes, from),
                                    "{bytes:?} from {from}"
                                );
                            }
                        }
                    }
                }
            }
        }
        // Pseudo-random documents: stops anywhere, often several in one word.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    [b'x', b'"', b'\\', 0, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0xe2]
                        [(state % 10) as usize]
                })
                .collect();
            for from in 0..=len {
                assert_eq!(
                    plain_run(&bytes, from),
                    plain_run_bytewise(&bytes, from),
                    "{bytes:?}"
                );
            }
        }
    }

    #[test]
    fn accepts_what_json_allows_and_refuses_what_it_does_not() {
        for ok in [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e+3, 0, 0.0, 1E9, true, false, null, \"x\\n\\u00e9\\\"\"]} ",
            "\"\"",
            "\"caf\u{e9} \u{1F600}\"",
            "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
        ] {
            assert!(valid(ok), "{ok}");
            assert!(
                serde_json::from_str::<serde_json::Value>(ok).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[-]",
            "[+1]",
            "[tru]",
            "[nul]",
            "\"tab\there\"",
            "\"bad \\x escape\"",
            "\"short \\u12\"",
            "\"unterminated",
            "{} {}",
            "{'a':1}",
            "[NaN]",
        ] {
            assert!(!valid(bad), "{bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad:?}"
            );
        }
        // Conservative where serde_json has its own rules: surrogate escapes, escaped keys,
        // nesting past its limit.
        assert!(!valid("\"\\ud83d\\ude00\""));
        let mut s = Scanner::new("{\"\\u0061\":1}");
        assert!(s.object(|s, _| s.skip()).is_err());
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(!valid(&deep));
        let fine = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(valid(&fine));
    }

    #[test]
    fn reads_integers_strings_and_value_text() {
        let mut s =
            Scanner::new("{\"n\": 18446744073709551615, \"s\": \"plain\", \"v\": {\"x\": [1]} }");
        let (mut n, mut text, mut v) = (None, None, None);
        s.object(|s, key| match key {
            "n" => once(&mut n, s.u64()?),
            "s" => once(&mut text, s.plain_str()?),
            "v" => once(&mut v, s.value_text()?),
            _ => s.skip(),
        })
        .unwrap();
        s.end().unwrap();
        assert_eq!(
            (n, text, v),
            (Some(u64::MAX), Some("plain"), Some("{\"x\": [1]}"))
        );
        for bad in ["18446744073709551616", "-1", "1.0", "1e3", "01", "\"1\""] {
            assert!(Scanner::new(bad).u64().is_err(), "{bad}");
        }
        assert!(Scanner::new("\"with \\\" escape\"").plain_str().is_err());
        assert_eq!(Scanner::new("\"\"").any_str(), Ok(true));
        assert_eq!(Scanner::new("\"a\\tb\"").any_str(), Ok(false));
        // A repeated field is refused.
        let mut s = Scanner::new("{\"n\":1,\"n\":2}");
        let mut n = None;
        assert!(
            s.object(|s, key| match key {
                "n" => once(&mut n, s.u64()?),
                _ => s.skip(),
            })
            .is_err()
        );
    }
}
