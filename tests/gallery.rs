//! The gallery on the real models and a real SQLite file and faiss index.

mod common;

use common::*;
use greeter::gallery::{Decision, GalleryError, Refusal};
use greeter::vision::{AlignmentKind, decode};

/// The same person twice: a tight crop of sample5's first face, and the whole photo.
fn person_a_crop() -> std::path::PathBuf {
    fixtures().join("crops/sample5_face0_descriptor.png")
}

/// Ms Zhou and someone else; Ms Zhou's id.
fn enrol_zhou_and_other(
    gallery: &greeter::gallery::Gallery,
    pipeline: &greeter::vision::Pipeline,
) -> i64 {
    let zhou = gallery
        .enrol(new_customer(
            "Ms Zhou",
            vec![portrait_of(pipeline, &person_a_crop())],
        ))
        .unwrap();
    gallery
        .enrol(new_customer(
            "Other",
            vec![portrait_of(pipeline, &demo_photo("sample1.jpg"))],
        ))
        .unwrap();
    zhou.customer_id
}

fn decisions_for_photo(
    gallery: &greeter::gallery::Gallery,
    pipeline: &greeter::vision::Pipeline,
    photo: &str,
) -> Vec<Decision> {
    let frame = decode::load(&demo_photo(photo), 50_000_000).unwrap();
    let faces = pipeline.process(&frame).unwrap().faces;
    faces
        .iter()
        .map(|f| gallery.identify(&f.embedding).unwrap())
        .collect()
}

#[test]
fn enrol_identify_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let (gallery, _) = open_gallery(dir.path(), |_| {});
    let enrolled = gallery
        .enrol(new_customer(
            "Ms Zhou",
            vec![portrait_of(&pipeline, &person_a_crop())],
        ))
        .unwrap();

    // In the full photo she is recognised, and nobody else is taken for her.
    let decisions = decisions_for_photo(&gallery, &pipeline, "sample5.jpg");
    assert_eq!(decisions.len(), 5);
    let known: Vec<_> = decisions.iter().filter_map(|d| d.customer_id()).collect();
    assert_eq!(known, vec![enrolled.customer_id], "{decisions:?}");

    gallery
        .delete_customer(enrolled.customer_id, "test")
        .unwrap();
    assert!(
        decisions_for_photo(&gallery, &pipeline, "sample5.jpg")
            .iter()
            .all(|d| d.customer_id().is_none())
    );
    assert!(gallery.customers("").unwrap().is_empty());
    assert!(matches!(
        gallery.delete_customer(enrolled.customer_id, "test"),
        Err(GalleryError::UnknownCustomer(_))
    ));
}

#[test]
fn refusals_name_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let (gallery, _) = open_gallery(dir.path(), |_| {});
    let a = || portrait_of(&pipeline, &person_a_crop());

    let mut no_consent = new_customer("X", vec![a()]);
    no_consent.consent_how = "  ".into();
    assert!(matches!(
        gallery.enrol(no_consent),
        Err(GalleryError::Refused(Refusal::NoConsent))
    ));
    assert!(matches!(
        gallery.enrol(new_customer(" ", vec![a()])),
        Err(GalleryError::Refused(Refusal::EmptyName))
    ));
    assert!(matches!(
        gallery.enrol(new_customer("X", vec![])),
        Err(GalleryError::Refused(Refusal::NoPortraits))
    ));

    let first = gallery.enrol(new_customer("Ms Zhou", vec![a()])).unwrap();
    match gallery.enrol(new_customer("Someone else", vec![a()])) {
        Err(GalleryError::Refused(Refusal::Duplicate {
            customer_id, name, ..
        })) => {
            assert_eq!((customer_id, name.as_str()), (first.customer_id, "Ms Zhou"));
        }
        other => panic!("expected a duplicate refusal, got {other:?}"),
    }
    let mut forced = new_customer("Twin", vec![a()]);
    forced.force = true;
    assert!(gallery.enrol(forced).is_ok());

    pipeline.options.quality.min_face_px = 10_000.0;
    match gallery.enrol(new_customer(
        "Tiny",
        vec![portrait_of(&pipeline, &demo_photo("sample1.jpg"))],
    )) {
        Err(GalleryError::Refused(Refusal::Quality { reasons, .. })) => {
            assert!(reasons[0].contains("too small"), "{reasons:?}")
        }
        other => panic!("expected a quality refusal, got {other:?}"),
    }
    assert_eq!(
        gallery.customers("").unwrap().len(),
        2,
        "refused enrolments leave nothing behind"
    );
}

#[test]
fn portraits_are_capped_keeping_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let (gallery, _) = open_gallery(dir.path(), |g| g.max_portraits_per_customer = 2);
    let sources = [
        person_a_crop(),
        fixtures().join("crops/sample5_face0_landmarks.png"),
    ];
    let portraits: Vec<_> = sources.iter().map(|p| portrait_of(&pipeline, p)).collect();
    let enrolled = gallery.enrol(new_customer("Ms Zhou", portraits)).unwrap();
    assert_eq!(enrolled.portrait_ids.len(), 2);

    let frame = decode::load(&demo_photo("sample5.jpg"), 50_000_000).unwrap();
    let mut third = portrait_of(&pipeline, &person_a_crop());
    third.face = pipeline
        .process(&frame)
        .unwrap()
        .faces
        .into_iter()
        .max_by(|a, b| a.quality.face_px.total_cmp(&b.quality.face_px))
        .unwrap();
    let before = gallery.customer(enrolled.customer_id).unwrap().1;
    let added = gallery
        .add_portraits(enrolled.customer_id, vec![third], false)
        .unwrap();
    let after = gallery.customer(enrolled.customer_id).unwrap().1;
    assert_eq!(after.len(), 2, "never more than the cap");
    let worst_before = before
        .iter()
        .map(|p| p.quality)
        .fold(f32::INFINITY, f32::min);
    let worst_after = after
        .iter()
        .map(|p| p.quality)
        .fold(f32::INFINITY, f32::min);
    assert!(
        worst_after >= worst_before,
        "the weakest portrait goes first"
    );
    assert_eq!(
        added.portrait_ids.len() + before.len() - added.dropped_portraits.len(),
        2
    );
    assert_eq!(gallery.portrait_count(), 2);
}

#[test]
fn index_is_rebuilt_when_missing_or_corrupt_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let probe = portrait_of(&pipeline, &demo_photo("sample5.jpg"))
        .face
        .embedding;
    let before = {
        let (gallery, _) = open_gallery(dir.path(), |_| {});
        enrol_zhou_and_other(&gallery, &pipeline);
        gallery.save_index().unwrap();
        gallery.identify(&probe).unwrap()
    };
    let (gallery, report) = open_gallery(dir.path(), |_| {});
    assert!(
        report.rebuilt.is_none(),
        "a current index is reused: {report:?}"
    );
    assert_eq!(gallery.identify(&probe).unwrap(), before);
    drop(gallery);

    std::fs::remove_file(dir.path().join("index.faiss")).unwrap();
    let (gallery, report) = open_gallery(dir.path(), |_| {});
    assert!(report.rebuilt.is_some());
    assert_eq!(report.portraits, 2);
    assert_eq!(gallery.identify(&probe).unwrap(), before);
    drop(gallery);

    std::fs::write(dir.path().join("index.faiss"), b"not an index").unwrap();
    let (gallery, report) = open_gallery(dir.path(), |_| {});
    assert!(report.rebuilt.is_some());
    assert_eq!(gallery.identify(&probe).unwrap(), before);
}

#[test]
fn a_gallery_from_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_gallery(dir.path(), |_| {}));
    let settings = settings();
    let mut g = settings.gallery.clone();
    g.data_dir = dir.path().to_owned();
    g.key_file = key_file(dir.path());
    let err = greeter::gallery::Gallery::open(g, settings.matching.clone(), "another-model", 128)
        .err()
        .unwrap();
    assert!(matches!(err, GalleryError::ModelMismatch { .. }));
    assert!(err.to_string().contains("reembed"), "{err}");
}

#[test]
fn hnsw_gallery_never_returns_a_deleted_customer_even_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let hnsw = |g: &mut greeter::gallery::GallerySettings| {
        g.index_factory = "IDMap,HNSW32".into();
        g.index_parameters = [("efSearch".to_string(), 64.0)].into_iter().collect();
    };
    // Ms Zhou again, framed differently.
    let probe = portrait_of(
        &pipeline,
        &fixtures().join("crops/sample5_face0_landmarks.png"),
    )
    .face
    .embedding;
    {
        let (gallery, _) = open_gallery(dir.path(), hnsw);
        let zhou = enrol_zhou_and_other(&gallery, &pipeline);
        assert_eq!(gallery.identify(&probe).unwrap().customer_id(), Some(zhou));
        gallery.delete_customer(zhou, "test").unwrap();
        assert_eq!(gallery.identify(&probe).unwrap().customer_id(), None);
        assert_eq!(gallery.portrait_count(), 1);
        gallery.save_index().unwrap();
    }
    let (gallery, report) = open_gallery(dir.path(), hnsw);
    assert!(
        report.rebuilt.is_some(),
        "the saved graph still held the removed vector"
    );
    assert_eq!(report.portraits, 1);
    assert_eq!(gallery.identify(&probe).unwrap().customer_id(), None);
}

#[test]
fn ids_and_crop_files_are_never_given_again_after_an_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let first = {
        let (gallery, _) = open_gallery(dir.path(), |g| g.keep_crops = true);
        let first = gallery
            .enrol(new_customer(
                "Ms Zhou",
                vec![portrait_with_crop(&pipeline, &person_a_crop())],
            ))
            .unwrap();
        gallery.delete_customer(first.customer_id, "test").unwrap();
        first
    };
    // reopened, as after a restart: the next customer and portrait get new ids
    let (gallery, _) = open_gallery(dir.path(), |g| g.keep_crops = true);
    let second = gallery
        .enrol(new_customer(
            "Someone else",
            vec![portrait_with_crop(&pipeline, &demo_photo("sample1.jpg"))],
        ))
        .unwrap();
    assert!(
        second.customer_id > first.customer_id,
        "{second:?} after {first:?}"
    );
    assert!(
        second.portrait_ids[0] > first.portrait_ids[0],
        "{second:?} after {first:?}"
    );
    let (_, portraits) = gallery.customer(second.customer_id).unwrap();
    let crop = portraits[0].crop_file.clone().expect("a kept crop");
    assert_ne!(crop, format!("{}.crop", first.portrait_ids[0]));
}

#[test]
fn crops_that_no_portrait_keeps_are_swept_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let kept = {
        let (gallery, _) = open_gallery(dir.path(), |g| g.keep_crops = true);
        let portrait = portrait_with_crop(&pipeline, &person_a_crop());
        let id = gallery
            .enrol(new_customer("Ms Zhou", vec![portrait]))
            .unwrap()
            .customer_id;
        gallery.customer(id).unwrap().1[0]
            .crop_file
            .clone()
            .unwrap()
    };
    let crops = dir.path().join("crops");
    // what a crash or a full disk between the file and the commit leaves behind
    std::fs::write(crops.join("999.jpg"), b"a face nobody kept").unwrap();
    std::fs::write(crops.join("1000.tmp"), b"half a fa").unwrap();
    let _reopened = open_gallery(dir.path(), |g| g.keep_crops = true);
    let mut left: Vec<String> = std::fs::read_dir(&crops)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![kept]);
}

/// The neighbour rule through the real gallery: a face that scores above the threshold for a
/// customer, but not above how much that customer resembles another enrolled customer, is
/// not named; once the look-alike is erased, it is.
#[test]
fn a_customer_with_an_enrolled_look_alike_needs_a_closer_match() {
    let dir = tempfile::tempdir().unwrap();
    let (gallery, _) = open_gallery(dir.path(), |_| {});
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);
    let real = portrait_of(&pipeline, &person_a_crop());
    // unit vectors in the net's 128 dimensions: x·e1 + y·e2 + z·e3
    let unit = |x: f32, y: f32, z: f32| {
        let mut v = vec![0.0f32; 128];
        (v[0], v[1], v[2]) = (x, y, z);
        v
    };
    let portrait = |embedding: Vec<f32>| {
        let mut face = real.face.clone();
        face.embedding = embedding;
        greeter::gallery::PortraitInput {
            face,
            source: "synthetic".into(),
            crop_jpeg: None,
        }
    };
    let a = gallery
        .enrol(new_customer("A", vec![portrait(unit(1.0, 0.0, 0.0))]))
        .unwrap()
        .customer_id;
    let look_alike = 0.95f32;
    let mut b = new_customer(
        "B",
        vec![portrait(unit(
            look_alike,
            (1.0 - look_alike.powi(2)).sqrt(),
            0.0,
        ))],
    );
    b.force = true; // it does look like A
    let b = gallery.enrol(b).unwrap().customer_id;

    // 0.955 against A (above the 0.93 threshold), 0.907 against B (a clear lead)
    let near = unit(0.955, 0.0, (1.0 - 0.955f32.powi(2)).sqrt());
    let close = unit(0.99, 0.0, (1.0 - 0.99f32.powi(2)).sqrt());
    match gallery.identify(&near).unwrap() {
        Decision::Unknown { reason, best, .. } => {
            assert_eq!(best.unwrap().customer_id, a);
            assert!(reason.contains("another customer"), "{reason}");
        }
        known => panic!("named despite A's look-alike: {known:?}"),
    }
    assert_eq!(gallery.identify(&close).unwrap().customer_id(), Some(a));

    gallery.delete_customer(b, "test").unwrap();
    assert_eq!(gallery.identify(&near).unwrap().customer_id(), Some(a));
}
