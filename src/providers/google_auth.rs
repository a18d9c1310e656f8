//! Google service-account authentication (Vertex AI): a JWT signed with the account's RSA key
//! (RS256) is exchanged at the account's `token_uri` for an OAuth access token
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`), which is cached until shortly
//! before it expires. One refresh runs at a time; requests arriving meanwhile wait for it.
//!
//! The private key, the signed assertion and the tokens are secrets: they never appear in `Debug`
//! output, and [`TokenSource::secrets`] lists them for scrubbing error messages.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::{Value, json};

use super::credentials::TokenSource;
use super::http_client::{self, HttpClient};
use super::transport::{redact_url, send_error_detail};
use crate::error::{ErrorKind, GatewayError, Result};
use crate::secret::Secret;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for the assertion (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
/// A token is refreshed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Bound on one token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The fields of a service-account key file the gateway uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    project_id: Option<String>,
}

/// A parsed service-account key.
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub token_uri: String,
    pub project_id: Option<String>,
    key: RsaKeyPair,
    private_key_pem: Secret,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Parses a key file's JSON. Errors say what is wrong without quoting the key.
    pub fn from_json(text: &str) -> Result<ServiceAccount, String> {
        let file: KeyFile =
            serde_json::from_str(text).map_err(|e| format!("not a JSON key file: {e}"))?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(format!(
                    "credentials of type {other:?} are not supported; use a service-account key \
                     (type \"service_account\")"
                ));
            }
            None => return Err("missing `type` (expected \"service_account\")".into()),
        }
        let client_email = file
            .client_email
            .filter(|e| !e.is_empty())
            .ok_or("missing `client_email`")?;
        let pem = file
            .private_key
            .filter(|k| !k.is_empty())
            .ok_or("missing `private_key`")?;
        let key = rsa_key(&pem)?;
        Ok(ServiceAccount {
            client_email,
            private_key_id: file.private_key_id.filter(|k| !k.is_empty()),
            token_uri: file
                .token_uri
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            project_id: file.project_id.filter(|p| !p.is_empty()),
            key,
            private_key_pem: Secret::new(pem),
        })
    }

    pub fn from_file(path: &str) -> Result<ServiceAccount, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        ServiceAccount::from_json(&text).map_err(|e| format!("{path}: {e}"))
    }

    /// The RSA public key (PKCS#1 `RSAPublicKey` DER), to verify assertions (the mock does).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public().as_ref().to_vec()
    }

    /// The JWT claims of an assertion issued at `iat` (seconds since the epoch).
    pub fn claims(&self, iat: u64) -> Value {
        json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        })
    }

    pub fn header(&self) -> Value {
        let mut h = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            h["kid"] = Value::String(kid.clone());
        }
        h
    }

    /// The signed assertion `base64url(header).base64url(claims).base64url(signature)`. RS256
    /// signatures are deterministic, so the same `iat` gives the same JWT.
    pub fn assertion(&self, iat: u64) -> Result<String, String> {
        let mut jwt = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(self.header().to_string()),
            URL_SAFE_NO_PAD.encode(self.claims(iat).to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut sig,
            )
            .map_err(|_| {
                "cannot sign the token request with the service-account key".to_string()
            })?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(jwt)
    }

    /// Every secret string of the key, for scrubbing: the PEM and each line of its body.
    fn secrets(&self) -> Vec<String> {
        let pem = self.private_key_pem.expose();
        let mut out = vec![pem.to_string()];
        out.extend(
            pem.lines()
                .map(str::trim)
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                .map(str::to_string),
        );
        out
    }
}

fn rsa_key(pem: &str) -> Result<RsaKeyPair, String> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "`private_key` is not a PEM private key".to_string())?;
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err("`private_key` is not an RSA key".into()),
    };
    parsed.map_err(|e| format!("`private_key` is not a usable RSA key ({e})"))
}

/// Verifies an RS256 JWT against a PKCS#1 public key and returns its header and claims.
pub fn verify_assertion(
    jwt: &str,
    public_key_der: Option<&[u8]>,
) -> Result<(Value, Value), String> {
    let mut pieces = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return Err("the assertion is not a JWT (header.claims.signature)".into());
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| format!("the JWT {what} is not base64url"))
    };
    let header: Value = serde_json::from_slice(&decode(h, "header")?)
        .map_err(|_| "the JWT header is not JSON".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(c, "claims")?)
        .map_err(|_| "the JWT claims are not JSON".to_string())?;
    let sig = decode(s, "signature")?;
    if let Some(der) = public_key_der {
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "Invalid JWT Signature.".to_string())?;
    }
    Ok((header, claims))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// A [`TokenSource`] for one service account.
pub struct ServiceAccountTokenSource {
    account: ServiceAccount,
    cached: Mutex<Option<Cached>>,
    /// The last assertion sent, kept only to scrub it from messages.
    last_assertion: Mutex<Option<Secret>>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ServiceAccountTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokenSource")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<String>,
    error_description: Option<String>,
}

impl ServiceAccountTokenSource {
    pub fn new(account: ServiceAccount) -> Arc<ServiceAccountTokenSource> {
        Arc::new(ServiceAccountTokenSource {
            account,
            cached: Mutex::new(None),
            last_assertion: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    fn fresh(&self) -> Option<Secret> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    fn error(&self, kind: ErrorKind, message: String) -> GatewayError {
        GatewayError::new(kind, message)
            .with_code("oauth_token_error")
            .scrub(self.secrets().iter().map(String::as_str))
    }

    async fn fetch(&self, client: &HttpClient) -> Result<Secret> {
        let email = &self.account.client_email;
        let assertion = self
            .account
            .assertion(unix_now())
            .map_err(|e| self.error(ErrorKind::Internal, e))?;
        *self
            .last_assertion
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Secret::new(assertion.as_str()));
        // The grant type is percent-encoded; a JWT is base64url and dots, safe in a form.
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let send = client
            .post(&self.account.token_uri)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send();
        let endpoint = redact_url(&self.account.token_uri);
        let resp = match tokio::time::timeout(TOKEN_TIMEOUT, send).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(self.error(
                    ErrorKind::UpstreamConnection,
                    format!(
                        "cannot reach the OAuth token endpoint {endpoint} for service account \
                         {email}: {}",
                        send_error_detail(&e)
                    ),
                ));
            }
            Err(_) => {
                return Err(self.error(
                    ErrorKind::Timeout,
                    format!("the OAuth token endpoint {endpoint} did not answer in time"),
                ));
            }
        };
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(TOKEN_TIMEOUT, http_client::body_bytes(resp.into_body()))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        if !(200..300).contains(&status) {
            let detail = serde_json::from_slice::<TokenError>(&bytes)
                .ok()
                .map(|e| {
                    [e.error, e.error_description]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("HTTP {status}"));
            let kind = match status {
                400 | 401 | 403 => ErrorKind::Authentication,
                429 => ErrorKind::RateLimited,
                _ => ErrorKind::UpstreamServer,
            };
            let mut err = self.error(
                kind,
                format!(
                    "the OAuth token endpoint {endpoint} refused service account {email}: {detail}"
                ),
            );
            if kind == ErrorKind::UpstreamServer {
                err = err.with_status(status);
            }
            return Err(err);
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(
                ErrorKind::BadUpstreamResponse,
                format!(
                    "the OAuth token endpoint {endpoint} answered without an access token: {e}"
                ),
            )
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let token = Secret::new(answer.access_token);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }
}

impl TokenSource for ServiceAccountTokenSource {
    fn token(
        &self,
        client: &HttpClient,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Secret>> + Send + '_>> {
        let client = client.clone();
        Box::pin(async move {
            if let Some(t) = self.fresh() {
                return Ok(t);
            }
            let _one_at_a_time = self.refresh.lock().await;
            // Another request may have refreshed while this one waited.
            if let Some(t) = self.fresh() {
                return Ok(t);
            }
            self.fetch(&client).await
        })
    }

    fn secrets(&self) -> Vec<String> {
        let mut out = self.account.secrets();
        if let Some(c) = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            out.push(c.token.expose().to_string());
        }
        if let Some(a) = self
            .last_assertion
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            out.push(a.expose().to_string());
        }
        out
    }

    fn project_id(&self) -> Option<&str> {
        self.account.project_id.as_deref()
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
