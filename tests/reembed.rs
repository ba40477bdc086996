//! A gallery made by another model is refused until `greeter gallery reembed` redoes every
//! embedding from the kept face crops.

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

#[test]
fn reembed_recovers_a_gallery_from_another_model() {
    let photos = tempfile::tempdir().unwrap();
    make_import_dir(photos.path());
    let data = tempfile::tempdir().unwrap();
    let summary = ok_json(greeter(
        data.path(),
        &[
            "--json",
            "import",
            photos.path().to_str().unwrap(),
            "--consent",
            "signed",
        ],
    ));
    assert!(summary["enrolled"].as_u64().unwrap() >= 10, "{summary}");
    let probe = demo_photo("sample5.jpg");
    let before = ok_json(greeter(
        data.path(),
        &["--json", "identify", probe.to_str().unwrap()],
    ));

    // Pretend the embeddings came from an older model.
    let conn = rusqlite::Connection::open(data.path().join("greeter.sqlite3")).unwrap();
    conn.execute(
        "UPDATE meta SET value = 'older-model@0000' WHERE key = 'model_id'",
        [],
    )
    .unwrap();
    conn.execute("UPDATE portraits SET embedding = zeroblob(512)", [])
        .unwrap();
    drop(conn);

    let refused = greeter(data.path(), &["identify", probe.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("gallery reembed"));

    let redone = ok_json(greeter(data.path(), &["--json", "gallery", "reembed"]));
    assert_eq!(redone["portraits"].as_u64(), summary["portraits"].as_u64());
    let after = ok_json(greeter(
        data.path(),
        &["--json", "identify", probe.to_str().unwrap()],
    ));
    let names = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&after), names(&before));
    assert!(
        names(&after).iter().any(|n| !n.is_null()),
        "someone in sample5 was enrolled: {after}"
    );
}
