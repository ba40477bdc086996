//! `greeter import` killed with SIGKILL half-way: the store and the index still agree, no
//! customer is half-enrolled, and running the import again finishes the job.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn greeter(data: &Path) -> Command {
    greeter_on(data)
}

fn import(data: &Path, photos: &Path) -> serde_json::Value {
    ok_json(
        greeter(data)
            .args([
                "--json",
                "import",
                photos.to_str().unwrap(),
                "--consent",
                "signed",
            ])
            .output()
            .unwrap(),
    )
}

fn customers(data: &Path) -> Vec<serde_json::Value> {
    serde_json::from_value(ok_json(
        greeter(data)
            .args(["--json", "customers", "list"])
            .output()
            .unwrap(),
    ))
    .unwrap()
}

fn enrolled_so_far(data: &Path) -> i64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        data.join("greeter.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    conn.query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn killed_import_resumes_without_half_enrolled_customers() {
    let photos = tempfile::tempdir().unwrap();
    let folders = make_import_dir(photos.path());
    assert!(folders >= 20);

    // The same import, uninterrupted, for comparison.
    let clean = tempfile::tempdir().unwrap();
    let clean_summary = import(clean.path(), photos.path());
    let clean_names: Vec<String> = customers(clean.path())
        .iter()
        .map(|c| c["display_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(clean_names.len() >= 10, "{clean_summary}");

    let data = tempfile::tempdir().unwrap();
    let mut child = greeter(data.path())
        .args([
            "import",
            photos.path().to_str().unwrap(),
            "--consent",
            "signed",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while enrolled_so_far(data.path()) < 3 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted = customers(data.path());
    assert!(
        !interrupted.is_empty() && interrupted.len() < clean_names.len(),
        "killed too late to test anything: {}",
        interrupted.len()
    );
    for c in &interrupted {
        assert!(c["portraits"].as_u64().unwrap() >= 1, "half-enrolled: {c}");
    }

    // Store and index agree after the restart (the index is rebuilt if it was behind).
    let (gallery, _) = open_gallery_with_model(data.path());
    let portraits: u64 = interrupted
        .iter()
        .map(|c| c["portraits"].as_u64().unwrap())
        .sum();
    assert_eq!(gallery.portrait_count(), portraits);
    drop(gallery);

    let resumed = import(data.path(), photos.path());
    assert_eq!(
        resumed["already_in"].as_u64().unwrap() as usize,
        interrupted.len(),
        "{resumed}"
    );
    let names: Vec<String> = customers(data.path())
        .iter()
        .map(|c| c["display_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.iter().collect::<std::collections::BTreeSet<_>>(),
        clean_names.iter().collect(),
        "{resumed}"
    );
}

/// The gallery as the binary opens it (same model identity).
fn open_gallery_with_model(
    dir: &Path,
) -> (greeter::gallery::Gallery, greeter::gallery::OpenReport) {
    let settings = settings();
    let (id, dimensions) = greeter::vision::embedder_identity(&settings.vision).unwrap();
    let mut g = settings.gallery.clone();
    g.data_dir = dir.to_owned();
    g.key_file = key_file(dir);
    greeter::gallery::Gallery::open(g, settings.matching.clone(), &id, dimensions).unwrap()
}
