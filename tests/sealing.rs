//! Encryption at rest on a real data dir: without its key it shows no face and no vector, a
//! wrong or missing key is refused without harm, and a data dir an older version wrote in the
//! clear is sealed at the next open.

mod common;

use std::path::Path;

use common::*;
use greeter::gallery::{Gallery, GalleryError};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn clear_bytes(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Ms Zhou enrolled with a kept crop in `data` (key outside it, in `keys`), the index saved;
/// her id and her embedding.
fn enrolled(data: &Path, key: &Path) -> (i64, Vec<f32>) {
    let (gallery, _) = open_gallery(data, |g| {
        g.keep_crops = true;
        g.key_file = key.to_owned();
    });
    let pipeline = pipeline(
        "ssd_mobilenetv1",
        greeter::vision::AlignmentKind::Similarity,
    );
    let photo = demo_photo("sample1.jpg");
    let frame = greeter::vision::decode::load(&photo, 50_000_000).unwrap();
    let face = pipeline
        .process(&frame)
        .unwrap()
        .largest()
        .cloned()
        .unwrap();
    let portrait = greeter::gallery::PortraitInput::from_frame(&frame, face, "till".into());
    let id = gallery
        .enrol(new_customer("Ms Zhou", vec![portrait]))
        .unwrap()
        .customer_id;
    gallery.save_index().unwrap();
    let (_, portraits) = gallery.customer(id).unwrap();
    (id, portraits[0].embedding.clone())
}

fn reopen(data: &Path, key: &Path) -> Result<Gallery, GalleryError> {
    let settings = settings();
    let mut g = settings.gallery.clone();
    g.data_dir = data.to_owned();
    g.key_file = key.to_owned();
    g.keep_crops = true;
    // the identity `open_gallery` gives
    Gallery::open(g, settings.matching.clone(), "face_recognition@test", 128)
        .map(|(gallery, _)| gallery)
}

#[test]
fn without_its_key_the_data_dir_shows_no_face_and_no_vector() {
    let root = tempfile::tempdir().unwrap();
    let (data, key) = (root.path().join("data"), root.path().join("keys/data.key"));
    let (id, embedding) = enrolled(&data, &key);
    assert!(
        key.exists() && !key.starts_with(&data),
        "the key lives apart"
    );
    // no whole vector, nor any 4-float run of it, in any file of the data dir (WAL included)
    let clear = clear_bytes(&embedding);
    let files = files_under(&data);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "crop"))
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for run in clear.chunks(16) {
            assert!(
                !contains(&bytes, run),
                "{} holds the vector",
                file.display()
            );
        }
        assert!(
            !contains(&bytes, b"JFIF"),
            "{} holds a JPEG",
            file.display()
        );
        assert!(
            image::load_from_memory(&bytes).is_err(),
            "{} is an image",
            file.display()
        );
    }
    // with the key, everything is there: the crop comes back as the JPEG it was
    let gallery = reopen(&data, &key).unwrap();
    let export = gallery.export(id, "test").unwrap();
    let crop = export.portraits[0].1.as_ref().expect("a kept crop");
    assert!(image::load_from_memory(crop).is_ok());
    assert_eq!(gallery.customer(id).unwrap().1[0].embedding, embedding);
}

#[test]
fn a_missing_or_wrong_key_is_refused_and_no_new_key_is_made() {
    let root = tempfile::tempdir().unwrap();
    let (data, key) = (root.path().join("data"), root.path().join("keys/data.key"));
    let (id, _) = enrolled(&data, &key);
    let elsewhere = root.path().join("missing/data.key");
    let err = reopen(&data, &elsewhere).err().expect("no key, no gallery");
    assert!(matches!(err, GalleryError::KeyMissing { .. }), "{err}");
    assert!(err.to_string().contains("restore the key"), "{err}");
    assert!(!elsewhere.exists(), "a new key would not open the old data");
    let other = root.path().join("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    let err = reopen(&data, &other).err().expect("the wrong key");
    assert!(matches!(err, GalleryError::WrongKey { .. }), "{err}");
    // refused without harm: the right key still opens it all
    let gallery = reopen(&data, &key).unwrap();
    assert_eq!(gallery.customer(id).unwrap().1.len(), 1);
}

#[test]
fn a_data_dir_written_in_the_clear_is_sealed_at_the_next_open() {
    let root = tempfile::tempdir().unwrap();
    let (data, key) = (root.path().join("data"), root.path().join("keys/data.key"));
    let (id, embedding) = enrolled(&data, &key);
    let jpeg = reopen(&data, &key)
        .unwrap()
        .export(id, "test")
        .unwrap()
        .portraits[0]
        .1
        .clone()
        .unwrap();
    // what a version before sealing kept: a clear embedding and crop, no key check, no key
    {
        let db = rusqlite::Connection::open(data.join("greeter.sqlite3")).unwrap();
        let (portrait, file): (i64, String) = db
            .query_row("SELECT id, crop_file FROM portraits", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        db.execute(
            "UPDATE portraits SET embedding = ?1 WHERE id = ?2",
            rusqlite::params![clear_bytes(&embedding), portrait],
        )
        .unwrap();
        db.execute("DELETE FROM meta WHERE key = 'key_check'", [])
            .unwrap();
        std::fs::write(data.join("crops").join(file), &jpeg).unwrap();
        std::fs::remove_file(&key).unwrap();
    }
    let gallery = reopen(&data, &key).unwrap();
    assert!(key.exists(), "a key for the data dir that had none");
    assert_eq!(gallery.customer(id).unwrap().1[0].embedding, embedding);
    assert_eq!(
        gallery.export(id, "test").unwrap().portraits[0].1.as_ref(),
        Some(&jpeg)
    );
    drop(gallery);
    let clear = clear_bytes(&embedding);
    for file in files_under(&data) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, &clear),
            "{} is still clear",
            file.display()
        );
        assert!(
            !contains(&bytes, &jpeg[..64]),
            "{} is still clear",
            file.display()
        );
    }
}
