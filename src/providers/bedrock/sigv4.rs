//! Request signing for Bedrock: AWS Signature Version 4 with the `aws-sigv4` crate (service name
//! `bedrock`, not `bedrock-runtime`), and the model id encoding of the URL path.
//!
//! The model id is a URI label: everything but the unreserved characters is percent-encoded, so
//! `anthropic.claude-3-haiku-20240307-v1:0` travels as `...-v1%3A0` and an ARN's `/` as `%2F`.
//! The signer encodes that path once more for the canonical request (`%3A` -> `%253A`), as AWS
//! does for every service but S3; the request is sent with exactly the path that was signed.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{GatewayError, Result};
use crate::providers::credentials::AwsCredential;

/// The signing name of the Bedrock Runtime API.
pub const SERVICE: &str = "bedrock";

/// Everything but `A-Z a-z 0-9 - . _ ~`.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A model id, inference profile id or ARN as one URL path segment.
pub fn encode_model_id(model: &str) -> String {
    utf8_percent_encode(model, LABEL).to_string()
}

/// The headers that sign a request: `x-amz-date`, `authorization` and, with temporary
/// credentials, `x-amz-security-token`. `url` must be the exact (already encoded) URL that is
/// sent; `headers` are the headers to sign, and must be sent exactly as given. `host` is taken
/// from the URL (its port only when not the scheme's default), as HTTP clients send it.
pub fn sign_request(
    credential: &AwsCredential,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>> {
    let identity: Identity = Credentials::new(
        credential.access_key_id.expose(),
        credential.secret_access_key.expose(),
        credential
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "ferrogate",
    )
    .into();
    // The crate's errors describe the request, never the credentials.
    let failed = |e: &dyn std::fmt::Display| {
        GatewayError::internal(format!("cannot sign the Bedrock request: {e}"))
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_one_path_segment() {
        assert_eq!(
            encode_model_id("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            "us.anthropic.claude-3-5-haiku-20241022-v1%3A0"
        );
        assert_eq!(
            encode_model_id(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-8b-instruct-v1:0"
            ),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-1-8b-instruct-v1%3A0"
        );
        assert_eq!(encode_model_id("a b~c"), "a%20b~c");
    }
}
