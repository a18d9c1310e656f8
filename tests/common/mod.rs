//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value;

pub fn fixture_path(rel: &str) -> String {
    format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

pub fn read_fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// Compares `actual` with the golden file `rel`. With `UPDATE_GOLDEN=1` the file is (re)written
/// instead, to be reviewed in the diff.
pub fn assert_golden(rel: &str, actual: &Value) {
    let path = fixture_path(rel);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_slice(
        &std::fs::read(&path)
            .unwrap_or_else(|e| panic!("golden {rel} missing ({e}); run with UPDATE_GOLDEN=1")),
    )
    .unwrap();
    assert_eq!(
        actual,
        &expected,
        "{rel} differs from the golden file:\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}
