//! What a provider authenticates with. Most APIs take a key; AWS signs each request with an access
//! key (SigV4); Vertex AI exchanges a service account for short-lived OAuth tokens. Rotation,
//! weights and health work on [`crate::router::keys::NamedKey`]s whatever their credential is.

use std::sync::Arc;

use super::http_client::HttpClient;
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
        client: &HttpClient,
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

/// What configures Bedrock, for the "no credentials" error.
pub const AWS_KEY_HINT: &str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK)";

/// A provider's keys from its config, else from the environment. The flag says whether any came
/// from the environment (which makes the provider "active" without a config entry).
pub fn resolve(
    name: &str,
    api: ApiKind,
    config: Option<&ProviderConfig>,
    preset: Option<&Preset>,
    env: &dyn EnvSource,
) -> Result<(Vec<NamedKey>, bool), ConfigError> {
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
    if api == ApiKind::Vertex
        && let Some(found) = service_account(name, config, env)?
    {
        return Ok(found);
    }
    if let Some(secret) = config.and_then(|c| c.api_key.clone()) {
        return Ok((vec![NamedKey::api_key("default", secret)], false));
    }
    if api == ApiKind::Bedrock
        && let Some(aws) = aws_from_config(name, config)?
    {
        return Ok((vec![NamedKey::new("default", Credential::Aws(aws))], false));
    }
    // For Bedrock this is the API key (AWS_BEARER_TOKEN_BEDROCK), which the AWS SDKs also prefer
    // over access keys when it is set.
    if let Some((var, value)) = preset.and_then(|p| first_var(env, p.key_vars)) {
        return Ok((vec![NamedKey::api_key(var, Secret::new(value))], true));
    }
    if api == ApiKind::Bedrock
        && let (Some(id), Some(secret)) = (
            env.var("AWS_ACCESS_KEY_ID"),
            env.var("AWS_SECRET_ACCESS_KEY"),
        )
    {
        let aws = AwsCredential {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: env.var("AWS_SESSION_TOKEN").map(Secret::new),
        };
        return Ok((
            vec![NamedKey::new("AWS_ACCESS_KEY_ID", Credential::Aws(aws))],
            true,
        ));
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
/// `aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`) from a provider's config.
fn aws_from_config(
    name: &str,
    config: Option<&ProviderConfig>,
) -> Result<Option<AwsCredential>, ConfigError> {
    let Some(c) = config else {
        return Ok(None);
    };
    match (&c.aws_access_key_id, &c.aws_secret_access_key) {
        (Some(id), Some(secret)) => Ok(Some(AwsCredential {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: c.aws_session_token.clone(),
        })),
        (Some(_), None) => Err(ConfigError(format!(
            "providers.{name}.aws_secret_access_key: required with aws_access_key_id"
        ))),
        (None, Some(_)) => Err(ConfigError(format!(
            "providers.{name}.aws_access_key_id: required with aws_secret_access_key"
        ))),
        (None, None) if c.aws_session_token.is_some() => Err(ConfigError(format!(
            "providers.{name}.aws_session_token: needs aws_access_key_id and aws_secret_access_key"
        ))),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bedrock(
        config: Option<&str>,
        e: &[(&str, &str)],
    ) -> Result<(Vec<NamedKey>, bool), ConfigError> {
        let config: Option<ProviderConfig> = config.map(|c| serde_json::from_str(c).unwrap());
        resolve(
            "bedrock",
            ApiKind::Bedrock,
            config.as_ref(),
            super::super::presets::find("bedrock"),
            &env(e),
        )
    }

    #[test]
    fn bedrock_credentials() {
        let aws_env = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret-env"),
            ("AWS_SESSION_TOKEN", "token-env"),
        ];
        let (keys, from_env) = bedrock(None, &aws_env).unwrap();
        assert!(from_env);
        assert_eq!(&*keys[0].name, "AWS_ACCESS_KEY_ID");
        let Credential::Aws(aws) = &keys[0].credential else {
            panic!("expected AWS credentials");
        };
        assert_eq!(aws.session_token.as_ref().unwrap().expose(), "token-env");

        // The API key wins over access keys in the environment, as in the AWS SDKs.
        let mut with_token = aws_env.to_vec();
        with_token.push(("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key"));
        let (keys, _) = bedrock(None, &with_token).unwrap();
        assert_eq!(
            keys[0].credential.api_key().unwrap().expose(),
            "bedrock-api-key"
        );

        // The config wins over the environment.
        let (keys, from_env) = bedrock(
            Some(r#"{"aws_access_key_id": "AKIDCFG", "aws_secret_access_key": "s"}"#),
            &with_token,
        )
        .unwrap();
        assert!(!from_env);
        assert!(
            matches!(&keys[0].credential, Credential::Aws(a) if a.access_key_id.expose() == "AKIDCFG" && a.session_token.is_none())
        );

        let e = bedrock(Some(r#"{"aws_access_key_id": "AKIDCFG"}"#), &[]).unwrap_err();
        assert!(
            e.0.contains("providers.bedrock.aws_secret_access_key"),
            "{e}"
        );
        // Half a pair in the environment is no credential.
        assert!(
            bedrock(None, &[("AWS_ACCESS_KEY_ID", "x")])
                .unwrap()
                .0
                .is_empty()
        );
    }
}
