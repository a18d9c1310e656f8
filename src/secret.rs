//! Secret values (provider keys, tokens). They print as `[REDACTED]` in every `Debug`, `Display`
//! and `Serialize`, so a config dump, a log line or an admin response cannot leak one by accident.

use std::fmt;
use std::sync::{Arc, OnceLock};

use http::HeaderValue;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone)]
pub struct Secret(Arc<Inner>);

struct Inner {
    value: Box<str>,
    /// `Bearer <value>` as a header value, made on first use: a configured key is sent on every
    /// request, and validating and copying it into a header each time costs more than the rest
    /// of the request's headers. `None` when the value cannot be a header.
    bearer: OnceLock<Option<HeaderValue>>,
}

impl Secret {
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Secret(Arc::new(Inner {
            value: value.into(),
            bearer: OnceLock::new(),
        }))
    }

    /// The raw value. Call only where it is sent to its provider.
    pub fn expose(&self) -> &str {
        &self.0.value
    }

    /// `Bearer <value>`, marked sensitive (HTTP/2 header compression never indexes it); `None`
    /// if the value holds characters a header cannot (a line break, say).
    pub fn bearer_header(&self) -> Option<HeaderValue> {
        self.0
            .bearer
            .get_or_init(|| {
                let mut value = HeaderValue::try_from(["Bearer ", self.expose()].concat()).ok()?;
                value.set_sensitive(true);
                Some(value)
            })
            .clone()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

/// Reads a value that is either written inline or, as `env.VAR_NAME`, taken from the environment
/// when the config is loaded. A reference to an unset variable is a config error naming it.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        resolve_env_reference(&raw)
            .map(Secret::new)
            .map_err(serde::de::Error::custom)
    }
}

/// Resolves `env.VAR_NAME` to the variable's value; any other string is returned as it is.
pub fn resolve_env_reference(raw: &str) -> Result<String, String> {
    match raw.strip_prefix("env.") {
        Some(var) if !var.is_empty() => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(format!(
                "environment variable `{var}` (referenced as `{raw}`) is not set"
            )),
        },
        _ => Ok(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("sk-live-abc");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "sk-live-abc");
    }

    #[test]
    fn bearer_header_is_made_once_and_sensitive() {
        let s = Secret::new("sk-live-abc");
        let header = s.bearer_header().unwrap();
        assert_eq!(header, "Bearer sk-live-abc");
        assert!(header.is_sensitive());
        // The clone shares the memo; an equal secret made apart compares equal.
        assert_eq!(s.clone().bearer_header().unwrap(), header);
        assert_eq!(s, Secret::new(String::from("sk-live-abc")));
        assert_eq!(Secret::new("line\nbreak").bearer_header(), None);
    }

    #[test]
    fn env_reference() {
        // SAFETY: test-only; the variable name is unique to this test.
        unsafe { std::env::set_var("FERROGATE_TEST_SECRET_REF", "v1") };
        let s: Secret = serde_json::from_str("\"env.FERROGATE_TEST_SECRET_REF\"").unwrap();
        assert_eq!(s.expose(), "v1");
        let err = serde_json::from_str::<Secret>("\"env.FERROGATE_TEST_UNSET_VAR\"").unwrap_err();
        assert!(err.to_string().contains("FERROGATE_TEST_UNSET_VAR"));
    }
}
