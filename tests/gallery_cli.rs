//! Bad gallery input through the real binary: one clear error line, a non-zero exit, and
//! nothing lost.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn greeter(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greeter"))
        .env("GREETER_GALLERY__DATA_DIR", data)
        .args(args)
        .output()
        .unwrap()
}

fn fails_with(out: &Output, expected: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_gallery_requests_are_refused_and_lose_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let crop = fixtures().join("crops/sample5_face0_descriptor.png");
    let crop = crop.to_str().unwrap();
    let out = greeter(
        d,
        &[
            "enrol",
            "--name",
            "Ms Zhou",
            "--consent",
            "signed at till 3",
            crop,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    fails_with(
        &greeter(d, &["enrol", "--name", "X", "--consent", " ", crop]),
        "no consent",
    );
    fails_with(&greeter(d, &["enrol", "--name", "X", crop]), "--consent");
    fails_with(
        &greeter(d, &["enrol", "--name", "Copy", "--consent", "ok", crop]),
        "looks like existing customer 1 (Ms Zhou)",
    );
    fails_with(
        &greeter(
            d,
            &[
                "enrol",
                "--name",
                "X",
                "--consent",
                "ok",
                "/nonexistent.jpg",
            ],
        ),
        "cannot read",
    );
    fails_with(
        &greeter(d, &["customers", "show", "42"]),
        "no customer with id 42",
    );
    fails_with(
        &greeter(d, &["customers", "delete", "42"]),
        "no customer with id 42",
    );
    fails_with(
        &greeter(d, &["import", "/nonexistent-dir", "--consent", "ok"]),
        "cannot read /nonexistent-dir",
    );

    let list = greeter(d, &["--json", "customers", "list"]);
    let customers: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(customers.len(), 1, "only the one good enrolment is there");
    assert_eq!(customers[0]["portraits"], 1);
}
