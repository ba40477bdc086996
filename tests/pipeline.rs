//! Pipeline behaviour beyond face-api parity, on the real models.

mod common;

use common::*;
use greeter::vision::AlignmentKind;

#[test]
fn face_filling_the_frame_is_found_by_the_padded_retry() {
    let reference = reference();
    let crop = reference
        .crops
        .iter()
        .find(|c| c.descriptor_crop.contains("sample5_face0"))
        .unwrap();
    let frame = load_png(&fixtures().join(&crop.descriptor_crop));
    let mut pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::Similarity);

    pipeline.options.retry_padding = 0.0;
    assert!(
        pipeline.process(&frame).unwrap().faces.is_empty(),
        "the detector alone misses it"
    );

    pipeline.options.retry_padding = 1.0;
    let analysis = pipeline.process(&frame).unwrap();
    assert_eq!(analysis.faces.len(), 1);
    let face = &analysis.faces[0];
    // Coordinates come back in the original frame, not the padded one.
    let (cx, cy) = (
        face.bbox.x + face.bbox.width / 2.0,
        face.bbox.y + face.bbox.height / 2.0,
    );
    assert!(
        cx > 0.0 && cx < frame.width() as f32 && cy > 0.0 && cy < frame.height() as f32,
        "{:?}",
        face.bbox
    );
    assert!(
        face.landmarks
            .iter()
            .all(|p| p.x > -5.0 && p.x < frame.width() as f32 + 5.0)
    );
    // And it is that face: close to face-api's descriptor of the same crop.
    let cos = cosine(&face.embedding, &crop.descriptor);
    assert!(cos > 0.95, "cosine {cos}");
}

#[test]
fn both_alignments_embed_the_same_person_alike_and_strangers_apart() {
    let frame = greeter::vision::decode::load(&demo_photo("sample1.jpg"), 50_000_000).unwrap();
    for alignment in [AlignmentKind::FaceApi, AlignmentKind::Similarity] {
        let pipeline = pipeline("ssd_mobilenetv1", alignment);
        let faces = pipeline.process(&frame).unwrap().faces;
        assert_eq!(faces.len(), 3);
        for (i, a) in faces.iter().enumerate() {
            let norm: f32 = a.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
            for b in &faces[i + 1..] {
                let s = greeter::vision::similarity(&a.embedding, &b.embedding);
                assert!(
                    s < 0.93,
                    "{alignment:?}: two people in one photo scored {s}"
                );
            }
        }
    }
}
