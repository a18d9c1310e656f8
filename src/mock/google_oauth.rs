//! The mock's Google OAuth token endpoint (`POST /oauth2/token`), as a service account's
//! `token_uri` points to it: it checks the JWT-bearer grant (structure, `RS256`, claims, expiry,
//! and the signature when the mock knows the account's key), issues opaque access tokens and
//! remembers them so the Vertex AI routes can check `Authorization: Bearer`. Token requests are
//! counted in `/mock/stats` (`path:/oauth2/token`), so a test can tell that tokens are cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{Shared, json_response};
use crate::providers::google_auth::{
    JWT_BEARER_GRANT, SCOPE, ServiceAccount, unix_now, verify_assertion,
};

/// Lifetime of an issued token, as Google gives it.
const TOKEN_LIFETIME: u64 = 3599;

/// The service account the mock accepts assertions from (its public half).
#[derive(Debug, Clone)]
pub struct MockGoogleAccount {
    pub client_email: String,
    pub key_id: Option<String>,
    pub public_key_der: Vec<u8>,
}

impl MockGoogleAccount {
    pub fn from_service_account(account: &ServiceAccount) -> Self {
        MockGoogleAccount {
            client_email: account.client_email.clone(),
            key_id: account.private_key_id.clone(),
            public_key_der: account.public_key_der(),
        }
    }
}

/// Access tokens issued by the mock, with their expiry.
#[derive(Debug, Default)]
pub struct TokenStore {
    issued: Mutex<HashMap<String, Instant>>,
}

impl TokenStore {
    pub fn issue(&self) -> String {
        let token = format!("ya29.mock-{}", uuid::Uuid::new_v4().simple());
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        issued.retain(|_, expiry| *expiry > now);
        issued.insert(token.clone(), now + Duration::from_secs(TOKEN_LIFETIME));
        token
    }

    pub fn is_valid(&self, token: &str) -> bool {
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"error": error, "error_description": description}),
    )
}

/// Decodes an `application/x-www-form-urlencoded` value.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

/// Checks the assertion; `Err` is Google's `error_description`.
fn check_assertion(jwt: &str, account: Option<&MockGoogleAccount>) -> Result<(), String> {
    let (header, claims) = verify_assertion(jwt, account.map(|a| a.public_key_der.as_slice()))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT: the algorithm must be RS256.".into());
    }
    if let Some(typ) = header.get("typ").and_then(Value::as_str)
        && typ != "JWT"
    {
        return Err("Invalid JWT: typ must be JWT.".into());
    }
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let iss = claim("iss");
    if iss.is_empty() {
        return Err("Invalid JWT: the iss claim is missing.".into());
    }
    if let Some(a) = account {
        if iss != a.client_email {
            return Err("Invalid JWT Signature.".into());
        }
        if a.key_id.is_some() && header.get("kid").and_then(Value::as_str) != a.key_id.as_deref() {
            return Err("Invalid JWT Signature.".into());
        }
    }
    if !claim("scope").split(' ').any(|s| s == SCOPE) {
        return Err(format!(
            "Invalid OAuth scope or ID token audience provided: scope must include {SCOPE}"
        ));
    }
    if !claim("aud").ends_with("/oauth2/token") && !claim("aud").ends_with("/token") {
        return Err("Invalid JWT: the aud claim must be the token endpoint.".into());
    }
    let now = unix_now();
    let iat = claims.get("iat").and_then(Value::as_u64).unwrap_or(0);
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if iat > now + 60 || exp <= now || exp < iat || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into());
    }
    Ok(())
}

/// `POST /oauth2/token`.
pub async fn token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    // The assertion is a credential: it is not kept in `/mock/requests`.
    state.record("/oauth2/token", &headers, None, None, &Bytes::new());
    let body = String::from_utf8_lossy(&body);
    let grant = form_field(&body, "grant_type").unwrap_or_default();
    if grant != JWT_BEARER_GRANT {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let Some(assertion) = form_field(&body, "assertion") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    if let Err(description) = check_assertion(&assertion, state.options.google_account.as_ref()) {
        return oauth_error(400, "invalid_grant", &description);
    }
    let token = state.google_tokens.issue();
    json_response(
        StatusCode::OK,
        &json!({"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        let body =
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c";
        assert_eq!(form_field(body, "grant_type").unwrap(), JWT_BEARER_GRANT);
        assert_eq!(form_field(body, "assertion").unwrap(), "a.b.c");
        assert_eq!(form_decode("a+b%2"), "a b%2");
    }
}
