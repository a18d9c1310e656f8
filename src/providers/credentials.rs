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

    /// A stable fingerprint of the secret material (never shown), so that health kept under a
    /// key's identity starts fresh when the key's value changes.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.secrets().hash(&mut h);
        h.finish()
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
    let _ = (name, api);
    if let Some(c) = config
        && !c.keys.is_empty()
    {
        let keys = c
            .keys
            .iter()
            .map(|k| NamedKey {
                weight: k.weight,
                models: k.models.clone(),
                ..NamedKey::api_key(&k.name, k.value.clone())
            })
            .collect();
        return Ok((keys, false));
    }
    if let Some(secret) = config.and_then(|c| c.api_key.clone()) {
        return Ok((vec![NamedKey::api_key("default", secret)], false));
    }
    if let Some((var, value)) = preset.and_then(|p| first_var(env, p.key_vars)) {
        return Ok((vec![NamedKey::api_key(var, Secret::new(value))], true));
    }
    Ok((Vec::new(), false))
}
