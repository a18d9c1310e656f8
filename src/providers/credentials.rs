//! What a provider authenticates with. Most APIs take a key; AWS signs each request with an access
//! key (SigV4); Vertex AI exchanges a service account for short-lived OAuth tokens. Rotation,
//! weights and health work on [`crate::router::keys::NamedKey`]s whatever their credential is.

use std::sync::Arc;

use super::{ApiKind, EnvSource, Preset, first_var};
use crate::config::{ConfigError, ProviderConfig};
use crate::router::keys::NamedKey;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub enum Credential {
    /// An API key, sent the way the API wants it (`Authorization: Bearer`, `x-api-key`, ...).
    ApiKey(Secret),
    /// AWS credentials for SigV4 request signing.
    Aws(AwsCredential),
    /// A Google service account, exchanged for OAuth access tokens.
    ServiceAccount(Arc<dyn TokenSource>),
}

#[derive(Debug, Clone)]
pub struct AwsCredential {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// Something that hands out bearer tokens (cached until shortly before they expire).
pub trait TokenSource: std::fmt::Debug + Send + Sync {
    fn token(
        &self,
        client: &reqwest::Client,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = crate::error::Result<Secret>> + Send + '_>,
    >;
    /// Secret material to scrub from error messages.
    fn secrets(&self) -> Vec<String>;
    /// The cloud project the credentials belong to, when they name one.
    fn project_id(&self) -> Option<&str> {
        None
    }
    /// The upstream refused the current token: forget it so the next call fetches a new one.
    fn invalidate(&self) {}
}

impl Credential {
    pub fn api_key(&self) -> Option<&Secret> {
        match self {
            Credential::ApiKey(s) => Some(s),
            _ => None,
        }
    }

    /// Every secret string this credential holds, for scrubbing error messages.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Credential::ApiKey(s) => vec![s.expose().to_string()],
            Credential::Aws(a) => {
                let mut v = vec![
                    a.access_key_id.expose().to_string(),
                    a.secret_access_key.expose().to_string(),
                ];
                if let Some(t) = &a.session_token {
                    v.push(t.expose().to_string());
                }
                v
            }
            Credential::ServiceAccount(s) => s.secrets(),
        }
    }

    /// What kind of credential this is, for messages ("an API key", "AWS credentials").
    pub fn describe(&self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "an API key",
            Credential::Aws(_) => "AWS credentials",
            Credential::ServiceAccount(_) => "a service account",
        }
    }
}

/// A provider's keys from its config, else from the environment. The flag says whether any came
/// from the environment (which makes the provider "active" without a config entry).
pub fn resolve(
    name: &str,
    api: ApiKind,
    config: Option<&ProviderConfig>,
    preset: Option<&Preset>,
    env: &dyn EnvSource,
) -> Result<(Vec<NamedKey>, bool), ConfigError> {
    if api == ApiKind::Vertex {
        if let Some(found) = service_account(name, config, env)? {
            return Ok(found);
        }
    }
    if let Some(secret) = config.and_then(|c| c.api_key.clone()) {
        return Ok((vec![NamedKey::api_key("default", secret)], false));
    }
    if let Some((var, value)) = preset.and_then(|p| first_var(env, p.key_vars)) {
        return Ok((vec![NamedKey::api_key(var, Secret::new(value))], true));
    }
    Ok((Vec::new(), false))
}

/// Vertex AI's service account: `credentials_file` in the config, else the file named by
/// `GOOGLE_APPLICATION_CREDENTIALS`. A config `api_key` (Vertex AI express mode) wins over both.
/// An unusable file is a config error naming where it came from; one found only through the
/// environment for a provider the config does not mention is skipped with a warning, so a stale
/// variable does not stop a gateway that does not use Vertex AI.
fn service_account(
    name: &str,
    config: Option<&ProviderConfig>,
    env: &dyn EnvSource,
) -> Result<Option<(Vec<NamedKey>, bool)>, ConfigError> {
    use super::google_auth::{ServiceAccount, ServiceAccountTokenSource};
    if config.is_some_and(|c| c.api_key.is_some()) {
        return Ok(None);
    }
    let (path, source, from_env) = match config.and_then(|c| c.credentials_file.as_ref()) {
        Some(p) => (
            p.expose().to_string(),
            format!("providers.{name}.credentials_file"),
            false,
        ),
        None => match env.var(GOOGLE_APPLICATION_CREDENTIALS) {
            Some(p) => (p, GOOGLE_APPLICATION_CREDENTIALS.to_string(), true),
            None => return Ok(None),
        },
    };
    match ServiceAccount::from_file(&path) {
        Ok(account) => {
            let key_name = if from_env {
                GOOGLE_APPLICATION_CREDENTIALS
            } else {
                "credentials_file"
            };
            let source: Arc<dyn TokenSource> = ServiceAccountTokenSource::new(account);
            Ok(Some((
                vec![NamedKey::new(key_name, Credential::ServiceAccount(source))],
                from_env,
            )))
        }
        Err(e) if from_env && config.is_none() => {
            tracing::warn!(
                provider = name,
                "ignoring {GOOGLE_APPLICATION_CREDENTIALS} for provider `{name}`: {e}"
            );
            Ok(Some((Vec::new(), false)))
        }
        Err(e) => Err(ConfigError(format!("{source}: {e}"))),
    }
}

pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
