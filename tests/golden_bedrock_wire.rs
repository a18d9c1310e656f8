//! Golden tests of Bedrock's wire mechanics: the AWS event-stream framing (the worked examples,
//! checksum and length failures, frames split at every byte) and SigV4 (the worked examples
//! computed with botocore, for the gateway's signer and the mock's verifier).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::read_fixture;
use ferrogate::ErrorKind;
use ferrogate::mock::sigv4::{self, Received, Rejection};
use ferrogate::providers::bedrock::sigv4::sign_request;
use ferrogate::providers::bedrock::{BedrockFrames, BedrockStreamTranslator};
use ferrogate::providers::credentials::AwsCredential;
use ferrogate::providers::stream::translate_all;
use ferrogate::secret::Secret;
use ferrogate::sse::eventstream::{EventStreamDecoder, Frame};
use http::HeaderMap;

/// A `.hex` fixture: hex bytes separated by whitespace, `#` starts a comment.
fn hex_fixture(name: &str) -> Vec<u8> {
    let text = String::from_utf8(read_fixture(&format!("bedrock/{name}"))).unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(str::split_whitespace)
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn worked_frame_examples() {
    // Research example 1: every field of a contentBlockDelta frame.
    let bytes = hex_fixture("frame_content_block_delta.hex");
    assert_eq!(bytes.len(), 148);
    let mut d = EventStreamDecoder::new();
    d.push(&bytes);
    let frame = d.next_frame().unwrap().unwrap();
    assert_eq!(frame.header(":event-type"), Some("contentBlockDelta"));
    assert_eq!(frame.header(":content-type"), Some("application/json"));
    assert_eq!(frame.header(":message-type"), Some("event"));
    assert_eq!(
        &frame.payload[..],
        br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#
    );
    assert_eq!(frame.encode(), bytes, "the encoder writes the same bytes");
    assert!(!d.finish());

    let stop = Frame::new(&br#"{"stopReason":"end_turn"}"#[..])
        .with_header(":event-type", "messageStop")
        .with_header(":content-type", "application/json")
        .with_header(":message-type", "event")
        .encode();
    assert_eq!(stop, hex_fixture("frame_message_stop.hex"));
    assert_eq!(
        stop[..12],
        [0, 0, 0, 0x7a, 0, 0, 0, 0x51, 0xca, 0x2c, 0x46, 0x65]
    );
    assert_eq!(stop[stop.len() - 4..], [0x5f, 0xbf, 0x09, 0xfc]);

    let throttle = hex_fixture("frame_throttling_exception.hex");
    assert_eq!(throttle.len(), 178);
    assert_eq!(throttle[throttle.len() - 4..], [0xe8, 0xff, 0xb2, 0x6a]);
    let mut d = EventStreamDecoder::new();
    d.push(&throttle);
    let frame = d.next_frame().unwrap().unwrap();
    assert_eq!(frame.header(":exception-type"), Some("throttlingException"));
    assert_eq!(frame.header(":message-type"), Some("exception"));
}

#[test]
fn checksum_and_length_failures() {
    let good = hex_fixture("frame_content_block_delta.hex");
    let decode = |bytes: &[u8]| {
        let mut d = EventStreamDecoder::new();
        d.push(bytes);
        d.next_frame()
    };
    let mut bad_prelude = good.clone();
    bad_prelude[3] ^= 0x01; // the total length no longer matches the prelude CRC
    assert!(
        decode(&bad_prelude)
            .unwrap_err()
            .0
            .contains("prelude checksum")
    );
    // A bad prelude fails as soon as the prelude is in, without waiting for the rest.
    assert!(decode(&bad_prelude[..12]).is_err());
    let mut bad_crc = good.clone();
    bad_crc[9] ^= 0xff;
    assert!(decode(&bad_crc).unwrap_err().0.contains("prelude checksum"));
    let mut bad_payload = good.clone();
    bad_payload[120] ^= 0x20;
    assert!(
        decode(&bad_payload)
            .unwrap_err()
            .0
            .contains("message checksum")
    );
    let mut bad_message_crc = good.clone();
    let n = bad_message_crc.len();
    bad_message_crc[n - 1] ^= 0x01;
    assert!(
        decode(&bad_message_crc)
            .unwrap_err()
            .0
            .contains("message checksum")
    );

    // Lengths that cannot be: shorter than a frame, headers longer than the frame, huge.
    let prelude = |total: u32, headers: u32| {
        let mut p = Vec::new();
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&headers.to_be_bytes());
        let crc = crc32(&p);
        p.extend_from_slice(&crc.to_be_bytes());
        p
    };
    assert!(
        decode(&prelude(12, 0))
            .unwrap_err()
            .0
            .contains("frame length")
    );
    assert!(
        decode(&prelude(40, 30))
            .unwrap_err()
            .0
            .contains("headers length")
    );
    assert!(
        decode(&prelude(u32::MAX, 0))
            .unwrap_err()
            .0
            .contains("frame length")
    );
    // An HTML page is not mistaken for a frame to wait for.
    assert!(decode(b"<html><body>502 Bad Gateway</body></html>").is_err());

    // Through the stream translation, these are upstream errors naming the provider.
    let translator = BedrockStreamTranslator::new(Arc::from("bedrock"), "m", "id", None);
    let e = translate_all(
        BedrockFrames::new(Arc::from("bedrock")),
        translator,
        &bad_payload,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadUpstreamResponse);
    assert!(
        e.message
            .contains("provider `bedrock` sent an invalid event stream")
    );
}

/// The standard CRC-32 (what the event-stream prelude uses), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn frames_split_at_every_byte_boundary() {
    let bytes = hex_fixture("stream_tool_use.hex");
    let decode_all = |parts: &[&[u8]]| {
        let mut d = EventStreamDecoder::new();
        let mut frames = Vec::new();
        for p in parts {
            d.push(p);
            while let Some(f) = d.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert!(!d.finish());
        frames
    };
    let whole = decode_all(&[&bytes]);
    assert_eq!(whole.len(), 11);
    for cut in 1..bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(decode_all(&[a, b]), whole, "split at byte {cut}");
    }
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(decode_all(&one_by_one), whole);
}

const SIGV4_BODY: &[u8] =
    br#"{"messages": [{"role": "user", "content": [{"text": "Hello"}]}], "inferenceConfig": {"maxTokens": 64}}"#;
const SIGV4_HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const SIGV4_TIME: u64 = 1_705_320_000; // 2024-01-15T12:00:00Z

fn example_credentials(token: Option<&str>) -> AwsCredential {
    AwsCredential {
        access_key_id: Secret::new("AKIDEXAMPLE"),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: token.map(Secret::new),
    }
}

/// Signs a Converse request of the worked examples; the signed headers plus content-type and host.
fn signed_example(path: &str, token: Option<&str>) -> HeaderMap {
    let signed = sign_request(
        &example_credentials(token),
        "us-east-1",
        "POST",
        &format!("https://{SIGV4_HOST}{path}"),
        &[("content-type", "application/json")],
        SIGV4_BODY,
        UNIX_EPOCH + Duration::from_secs(SIGV4_TIME),
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("host", SIGV4_HOST.parse().unwrap());
    for (k, v) in signed {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    headers
}

const EXAMPLE_PATH: &str = "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse";
const ARN_PATH: &str = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse";

#[test]
fn sigv4_worked_examples() {
    // Example 1: foundation-model id, long-term credentials (botocore 1.43.11 gives the same).
    let headers = signed_example(EXAMPLE_PATH, None);
    assert_eq!(headers["x-amz-date"], "20240115T120000Z");
    assert!(headers.get("x-amz-security-token").is_none());
    assert_eq!(
        headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=61a2bfa59d531bd61593357e945a19a3624ff1bb8790710d61282cee34ecae1d"
    );
    // Example 2: an inference-profile ARN in the path, temporary credentials.
    let headers = signed_example(ARN_PATH, Some("FQoGZXIvYXdzEXAMPLETOKEN"));
    assert_eq!(headers["x-amz-security-token"], "FQoGZXIvYXdzEXAMPLETOKEN");
    let auth = headers["authorization"].to_str().unwrap();
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
        "{auth}"
    );
    assert!(
        auth.ends_with(
            "Signature=b4a8fe3ecac0681be0f47e763608f7b50e6e3ee3c957f6eb07ccf3b08ba14b69"
        ),
        "{auth}"
    );
}

#[test]
fn sigv4_verifier_recomputes_the_worked_examples() {
    let headers = signed_example(EXAMPLE_PATH, None);
    let signed: Vec<String> = ["content-type", "host", "x-amz-date"]
        .map(String::from)
        .to_vec();
    let creq = sigv4::canonical_request(
        "POST",
        EXAMPLE_PATH,
        "",
        &headers,
        &signed,
        &sigv4::hex_sha256(SIGV4_BODY),
    );
    assert_eq!(
        creq,
        "POST\n/model/us.anthropic.claude-3-5-haiku-20241022-v1%253A0/converse\n\n\
         content-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\n\
         x-amz-date:20240115T120000Z\n\ncontent-type;host;x-amz-date\n\
         98644814032608171fc91ddee4ee8ca3b52243efaa0b89c4186738df69b40071"
    );
    let sts = sigv4::string_to_sign(
        "20240115T120000Z",
        "20240115/us-east-1/bedrock/aws4_request",
        &creq,
    );
    assert!(sts.ends_with("ff77befc66a2b28e9628690c89395d7d1ec44449e337bf472b8562cd8020f255"));
    let key = sigv4::signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "20240115",
        "us-east-1",
        "bedrock",
    );
    assert_eq!(
        hex::encode(key),
        "d4de7750f444a5199cbf173bfcceb1ef9613ceccaf3e489ccd1a1e1d5755047f"
    );
    assert_eq!(
        sigv4::signature(&key, &sts),
        "61a2bfa59d531bd61593357e945a19a3624ff1bb8790710d61282cee34ecae1d"
    );

    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let check = |path: &str, headers: &HeaderMap, creds: (&str, &str), now: SystemTime| {
        sigv4::verify(
            Received {
                method: "POST",
                raw_path: path,
                raw_query: "",
                headers,
                body: SIGV4_BODY,
            },
            creds,
            "bedrock",
            now,
        )
    };
    for (path, token) in [
        (EXAMPLE_PATH, None),
        (ARN_PATH, Some("FQoGZXIvYXdzEXAMPLETOKEN")),
    ] {
        let headers = signed_example(path, token);
        assert_eq!(
            check(path, &headers, ("AKIDEXAMPLE", secret), at(SIGV4_TIME + 60)),
            Ok(())
        );
        let wrong = check(
            path,
            &headers,
            ("AKIDEXAMPLE", "not-the-secret"),
            at(SIGV4_TIME),
        );
        let Err(Rejection::Mismatch(message)) = wrong else {
            panic!("{wrong:?}");
        };
        assert!(message.starts_with("The request signature we calculated does not match"));
        assert!(message.contains("%253A0/converse"), "{message}");
        // The path signed must be the path sent.
        let raw = path.replace("%3A", ":");
        assert!(check(&raw, &headers, ("AKIDEXAMPLE", secret), at(SIGV4_TIME)).is_err());
    }
    let headers = signed_example(EXAMPLE_PATH, None);
    let late = check(
        EXAMPLE_PATH,
        &headers,
        ("AKIDEXAMPLE", secret),
        at(SIGV4_TIME + 301),
    );
    assert!(
        matches!(&late, Err(Rejection::Expired(m)) if m.starts_with("Signature expired: 20240115T120000Z is now earlier than 20240115T120001Z")),
        "{late:?}"
    );
    let unknown = check(
        EXAMPLE_PATH,
        &headers,
        ("AKIDOTHER", secret),
        at(SIGV4_TIME),
    );
    assert_eq!(unknown, Err(Rejection::UnknownKey));
    assert_eq!(
        unknown.unwrap_err().error_type(),
        "UnrecognizedClientException"
    );
    let mut tampered = headers.clone();
    tampered.insert("content-type", "text/plain".parse().unwrap());
    assert!(
        check(
            EXAMPLE_PATH,
            &tampered,
            ("AKIDEXAMPLE", secret),
            at(SIGV4_TIME)
        )
        .is_err()
    );
    assert_eq!(
        check(
            EXAMPLE_PATH,
            &HeaderMap::new(),
            ("AKIDEXAMPLE", secret),
            at(SIGV4_TIME)
        ),
        Err(Rejection::Missing)
    );
}
