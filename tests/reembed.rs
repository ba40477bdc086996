//! A gallery made by another model is refused until `greeter gallery reembed` redoes every
//! embedding from the kept face crops.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn greeter(data: &Path, args: &[&str]) -> Output {
    greeter_on(data).args(args).output().unwrap()
}

/// A data dir with the demo photos' faces imported as customers: the import summary, and who
/// `identify` finds in sample5.jpg.
fn imported_gallery() -> (tempfile::TempDir, serde_json::Value, serde_json::Value) {
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
    (data, summary, before)
}

/// The name given to each face of an `identify --json` answer.
fn names(identified: &serde_json::Value) -> Vec<serde_json::Value> {
    identified
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect()
}

#[test]
fn reembed_recovers_a_gallery_from_another_model() {
    let (data, summary, before) = imported_gallery();
    let probe = demo_photo("sample5.jpg");

    // Pretend the embeddings came from an older model.
    let conn = rusqlite::Connection::open(data.path().join("greeter.sqlite3")).unwrap();
    conn.execute(
        "UPDATE meta SET value = 'older-model@0000' WHERE key = 'model_id'",
        [],
    )
    .unwrap();
    // whatever the old vectors were, reembed needs only the crops
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
    assert_eq!(names(&after), names(&before));
    assert!(
        names(&after).iter().any(|n| !n.is_null()),
        "someone in sample5 was enrolled: {after}"
    );
}

/// A store moving to a fused recognizer (another net, another vector length): the old
/// gallery is refused under the new mix until reembed redoes it, then the same people are
/// named; the vectors now hold both nets' pieces.
#[test]
fn reembed_moves_a_gallery_to_a_fused_recognizer() {
    let (data, _, before) = imported_gallery();
    let probe = demo_photo("sample5.jpg");
    let mix = ["--embedder", "face_recognition*0.7 + faceres*0.3"];
    let refused = greeter(
        data.path(),
        &[&mix[..], &["identify", probe.to_str().unwrap()]].concat(),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("gallery reembed"));

    ok_json(greeter(
        data.path(),
        &[&["--json"], &mix[..], &["gallery", "reembed"]].concat(),
    ));
    let after = ok_json(greeter(
        data.path(),
        &[
            &["--json"],
            &mix[..],
            &["identify", probe.to_str().unwrap()],
        ]
        .concat(),
    ));
    assert_eq!(names(&after), names(&before));
    let conn = rusqlite::Connection::open(data.path().join("greeter.sqlite3")).unwrap();
    let (model, bytes): (String, i64) = conn
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'model_id'), length(embedding) FROM portraits LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        model.contains("faceres@") && model.contains("*0.300"),
        "{model}"
    );
    // sealed: the vector's bytes and the seal's own
    assert_eq!(
        bytes as usize,
        4 * (128 + 1024) + greeter::gallery::seal::OVERHEAD
    );
}
