//! The real `greeter` binary on good and bad inputs: each bad input is one clear line on
//! stderr and a non-zero exit, never a panic.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{demo_photo, huge_png_header};

fn greeter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greeter"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clear_failure(out: &Output, expected: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let error_lines = err.lines().filter(|l| l.starts_with("error:")).count();
    assert!(error_lines >= 1, "{err}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn detect_prints_every_face_of_a_demo_photo() {
    let out = greeter(&["detect", demo_photo("sample1.jpg").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 face(s)"), "{text}");
}

#[test]
fn embed_json_gives_unit_length_embeddings() {
    let out = greeter(&[
        "--json",
        "embed",
        demo_photo("sample2.jpg").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 3);
    for f in faces {
        let e: Vec<f64> = f["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), 128);
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(f["landmarks"].as_array().unwrap().len(), 68);
    }
}

#[test]
fn compare_same_photo_is_same_person_and_strangers_differ() {
    let a = demo_photo("sample1.jpg");
    let out = greeter(&[
        "--json",
        "compare",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["similarity"].as_f64().unwrap() > 0.999);
    assert_eq!(v["same_person"], true);
}

#[test]
fn bad_inputs_fail_with_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jpeg = std::fs::read(demo_photo("sample1.jpg")).unwrap();
    let mut grey = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]))
        .write_to(&mut grey, image::ImageFormat::Png)
        .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (d.join("missing.jpg").display().to_string(), "cannot read"),
        (write(d, "empty.jpg", b""), "empty image"),
        (
            write(d, "notes.jpg", b"these are not pixels"),
            "not a JPEG, PNG or WebP",
        ),
        (
            write(d, "cut.jpg", &jpeg[..jpeg.len() / 2]),
            "truncated JPEG",
        ),
        (write(d, "huge.png", &huge_png_header()), "above the limit"),
        (write(d, "grey.png", grey.get_ref()), "no face found"),
    ];
    for (path, expected) in &cases {
        assert_clear_failure(&greeter(&["detect", path]), expected);
    }
    // One bad file among good ones: the good one is still reported, the run still fails.
    let out = greeter(&[
        "detect",
        demo_photo("sample1.jpg").to_str().unwrap(),
        &cases[1].0,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 face(s)"));
    assert_clear_failure(&out, "1 of 2 images failed");
    assert_clear_failure(
        &greeter(&[
            "compare",
            &cases[5].0,
            demo_photo("sample1.jpg").to_str().unwrap(),
        ]),
        "no face found",
    );
}

#[test]
fn unknown_detector_and_missing_runtime_are_explained() {
    let photo = demo_photo("sample1.jpg");
    let out = greeter(&["--detector", "yolo9000", "detect", photo.to_str().unwrap()]);
    assert_clear_failure(&out, "no model \"yolo9000\"");
    let out = Command::new(env!("CARGO_BIN_EXE_greeter"))
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["detect", photo.to_str().unwrap()])
        .output()
        .unwrap();
    assert_clear_failure(&out, "scripts/setup.sh");
}
