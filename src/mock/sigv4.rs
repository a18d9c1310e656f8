//! AWS Signature Version 4 verification, the way an AWS endpoint checks a request: the
//! signature is recomputed from the request exactly as received (the raw path, the headers named
//! in `SignedHeaders`, the host with its port, the body's hash) and compared.
//!
//! Written independently of the signer the gateway uses (`aws-sigv4`), so the mock checks the
//! gateway's signing rather than agreeing with it by construction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request's time may be from the server's.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Everything but `A-Z a-z 0-9 - . _ ~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same, keeping `/` (for paths).
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20240115/us-east-1/bedrock/aws4_request,
/// SignedHeaders=content-type;host;x-amz-date, Signature=<64 hex>`.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let (access_key_id, date, region, service, terminator) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    let signature = signature?;
    if terminator != "aws4_request"
        || scope.next().is_some()
        || date.len() != 8
        || signature.len() != 64
        || !signature.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some(Authorization {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// The canonical URI: the path as received, each byte outside the unreserved set and `/`
/// percent-encoded, so an encoded `%3A` becomes `%253A` (non-S3 services encode twice).
pub fn canonical_uri(raw_path: &str) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    utf8_percent_encode(path, PATH).to_string()
}

/// The canonical query: pairs decoded, re-encoded with the unreserved set, sorted.
pub fn canonical_query(raw_query: &str) -> String {
    let encode = |s: &str| {
        let decoded = percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .to_string();
        utf8_percent_encode(&decoded, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header's canonical value: every value of the name, trimmed, inner runs of spaces
/// collapsed, joined with `,`.
pub fn canonical_header_value(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `METHOD \n URI \n QUERY \n name:value\n... \n signed;headers \n payload-hash`.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut out = format!(
        "{method}\n{}\n{}\n",
        canonical_uri(raw_path),
        canonical_query(raw_query)
    );
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(headers, name));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning` = HMAC chain over date, region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// `20240115T120000Z` as seconds since the epoch.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Why a request was refused; each is a 403 with the error name AWS uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not a complete SigV4 one.
    Incomplete(String),
    /// The access key id is not known.
    UnknownKey,
    /// The request's time is more than [`MAX_SKEW`] away.
    Expired(String),
    /// Scope or signature do not match; the message says what was expected.
    Mismatch(String),
}

impl Rejection {
    pub fn error_type(&self) -> &'static str {
        match self {
            Rejection::Missing => "MissingAuthenticationTokenException",
            Rejection::Incomplete(_) => "IncompleteSignatureException",
            Rejection::UnknownKey => "UnrecognizedClientException",
            Rejection::Expired(_) | Rejection::Mismatch(_) => "InvalidSignatureException",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::Missing => "Missing Authentication Token".into(),
            Rejection::Incomplete(m) | Rejection::Expired(m) | Rejection::Mismatch(m) => m.clone(),
            Rejection::UnknownKey => {
                "The security token included in the request is invalid.".into()
            }
        }
    }
}

fn amz_date_of(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A request as received: the path and query exactly as they came on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks a request's SigV4 signature against `(access key id, secret)` for `service`.
pub fn verify(
    req: Received<'_>,
    credentials: (&str, &str),
    service: &str,
    now: SystemTime,
) -> Result<(), Rejection> {
    let Received {
        method,
        raw_path,
        raw_query,
        headers,
        body,
    } = req;
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(Rejection::Missing);
    };
    let value = value.to_str().unwrap_or("");
    let Some(auth) = parse_authorization(value) else {
        return Err(Rejection::Incomplete(format!(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters \
             in the form {ALGORITHM} Credential=<key id>/<date>/<region>/<service>/aws4_request, \
             SignedHeaders=<names>, Signature=<hex>"
        )));
    };
    if auth.access_key_id != credentials.0 {
        return Err(Rejection::UnknownKey);
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(Rejection::Mismatch(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(request_time) = parse_amz_date(amz_date) else {
        return Err(Rejection::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        ));
    };
    if auth.service != service {
        return Err(Rejection::Mismatch(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if auth.date != amz_date[..8] {
        return Err(Rejection::Mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let skew = MAX_SKEW.as_secs();
    if request_time + skew < now_secs {
        return Err(Rejection::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            amz_date_of(now_secs - skew),
            amz_date_of(now_secs)
        )));
    }
    if request_time > now_secs + skew {
        return Err(Rejection::Expired(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            amz_date_of(now_secs + skew),
            amz_date_of(now_secs)
        )));
    }
    let payload_hash = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| hex_sha256(body));
    let creq = canonical_request(
        method,
        raw_path,
        raw_query,
        headers,
        &auth.signed_headers,
        &payload_hash,
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let sts = string_to_sign(amz_date, &scope, &creq);
    let key = signing_key(credentials.1, &auth.date, &auth.region, &auth.service);
    let expected = signature(&key, &sts);
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Ok(());
    }
    Err(Rejection::Mismatch(format!(
        "The request signature we calculated does not match the signature you provided. Check your \
         AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n\
         The Canonical String for this request should have been\n'{creq}'\n\n\
         The String-to-Sign should have been\n'{sts}'\n"
    )))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("20240115T120000Z"), Some(1_705_320_000));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(amz_date_of(1_705_320_000), "20240115T120000Z");
        assert_eq!(amz_date_of(951_782_400), "20000229T000000Z");
        assert_eq!(parse_amz_date("2024-01-15T12:00:00Z"), None);
    }

    #[test]
    fn canonical_parts() {
        assert_eq!(
            canonical_uri("/model/a.b-v1%3A0/converse"),
            "/model/a.b-v1%253A0/converse"
        );
        assert_eq!(
            canonical_uri("/model/a:0/converse"),
            "/model/a%3A0/converse"
        );
        assert_eq!(canonical_query("b=2&a=x%20y&c"), "a=x%20y&b=2&c=");
        let mut h = HeaderMap::new();
        h.append("x-multi", "  a   b ".parse().unwrap());
        h.append("x-multi", "c".parse().unwrap());
        assert_eq!(canonical_header_value(&h, "x-multi"), "a b,c");
    }
}
