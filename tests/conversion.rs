//! The converted ONNX networks against face-api.js itself (fixtures from scripts/make-fixtures.sh).

mod common;

use common::*;
use greeter::vision::geometry::PixelRegion;
use greeter::vision::preprocess::square_input;
use greeter::vision::{AlignmentKind, BBox, decode};

fn whole(image: &image::RgbImage) -> BBox {
    BBox {
        x: 0.0,
        y: 0.0,
        width: image.width() as f32,
        height: image.height() as f32,
    }
}

/// The whole image as the network's input (a fixture crop already is the net's input region).
fn net_input(image: &image::RgbImage, spec: &greeter::vision::ModelSpec) -> Vec<f32> {
    let size = spec.input_size as usize;
    let mut input = vec![0.0; 3 * size * size];
    let region = PixelRegion {
        x: 0,
        y: 0,
        width: image.width(),
        height: image.height(),
    };
    square_input(image, region, spec, &mut input);
    input
}

#[test]
fn descriptor_net_matches_faceapi_on_identical_crops() {
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::FaceApi);
    let embedder = pipeline.embedder();
    let reference = reference();
    assert!(!reference.crops.is_empty());
    for crop in &reference.crops {
        let image = load_png(&fixtures().join(&crop.descriptor_crop));
        let input = net_input(&image, embedder.spec());
        let embedding = &embedder.embed(1, &input).unwrap()[0];
        let cos = cosine(embedding, &crop.descriptor);
        assert!(cos >= 0.9999, "{}: cosine {cos}", crop.descriptor_crop);
    }
}

#[test]
fn landmark_net_matches_faceapi_on_identical_crops() {
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::FaceApi);
    for crop in &reference().crops {
        let image = load_png(&fixtures().join(&crop.landmark_crop));
        let points = pipeline
            .landmarker()
            .landmarks(&image, &[whole(&image)])
            .unwrap()
            .remove(0)
            .unwrap();
        // face-api's reading of the net's output: fractions of the square, padding split evenly.
        let (w, h) = (image.width() as f32, image.height() as f32);
        let side = w.max(h);
        let worst = points
            .iter()
            .zip(crop.landmark_net_output.chunks_exact(2))
            .map(|(p, r)| {
                let (rx, ry) = (
                    r[0] * side - (side - w) / 2.0,
                    r[1] * side - (side - h) / 2.0,
                );
                (p.x - rx).abs().max((p.y - ry).abs())
            })
            .fold(0.0f32, f32::max);
        assert!(worst <= 0.1, "{}: {worst} px", crop.landmark_crop);
    }
}

/// End to end from the JPEG: our decoder differs slightly from face-api's libjpeg-turbo.
#[test]
fn ssd_pipeline_matches_faceapi_end_to_end() {
    let pipeline = pipeline("ssd_mobilenetv1", AlignmentKind::FaceApi);
    let mut cosines = Vec::new();
    for image in reference().images {
        let frame = decode::load(&demo_photo(&image.file), 50_000_000).unwrap();
        assert_eq!(frame.dimensions(), (image.width, image.height));
        let analysis = pipeline.process(&frame).unwrap();
        assert_eq!(
            analysis.faces.len(),
            image.ssd.len(),
            "{}: face count",
            image.file
        );
        for want in &image.ssd {
            let want_box = BBox {
                x: want.bbox[0],
                y: want.bbox[1],
                width: want.bbox[2],
                height: want.bbox[3],
            };
            let got = analysis
                .faces
                .iter()
                .max_by(|a, b| a.bbox.iou(&want_box).total_cmp(&b.bbox.iou(&want_box)))
                .unwrap();
            let iou = got.bbox.iou(&want_box);
            assert!(iou >= 0.95, "{}: IoU {iou}", image.file);
            let worst = got
                .landmarks
                .iter()
                .zip(&want.landmarks)
                .map(|(p, r)| (p.x - r[0]).abs().max((p.y - r[1]).abs()))
                .fold(0.0f32, f32::max);
            assert!(worst <= 2.0, "{}: landmarks off by {worst} px", image.file);
            let cos = cosine(&got.embedding, &want.descriptor);
            assert!(cos >= 0.999, "{}: descriptor cosine {cos}", image.file);
            cosines.push(cos);
        }
    }
    assert!(
        cosines.len() >= 10,
        "too few faces compared: {}",
        cosines.len()
    );
}

#[test]
fn tiny_detector_matches_faceapi_end_to_end() {
    let pipeline = pipeline("tiny_face_detector", AlignmentKind::FaceApi);
    for image in reference().images {
        let frame = decode::load(&demo_photo(&image.file), 50_000_000).unwrap();
        let found = pipeline
            .detector()
            .detect(&frame, pipeline.options.detection_threshold)
            .unwrap();
        assert_eq!(found.len(), image.tiny.len(), "{}: face count", image.file);
        for want in &image.tiny {
            let want_box = BBox {
                x: want.bbox[0],
                y: want.bbox[1],
                width: want.bbox[2],
                height: want.bbox[3],
            };
            let best = found
                .iter()
                .map(|d| d.bbox.iou(&want_box))
                .fold(0.0f32, f32::max);
            assert!(best >= 0.95, "{}: IoU {best}", image.file);
        }
    }
}

#[derive(serde::Deserialize)]
struct FaceresReference {
    chips: Vec<FaceresChip>,
}

#[derive(serde::Deserialize)]
struct FaceresChip {
    file: String,
    descriptor: Vec<f32>,
}

/// HSE faceres, converted from its TF.js graph model, against TF.js itself on the same
/// 224×224 pixels (fixtures from tools/reference/faceres_reference.js).
#[test]
fn faceres_matches_tfjs_on_identical_chips() {
    let mut settings = settings();
    settings.vision.embedder = "faceres".into();
    let pipeline = greeter::vision::Pipeline::load(&settings.vision, &settings.runtime)
        .expect("models load (run scripts/setup.sh first)");
    let embedder = pipeline.embedder();
    let dir = root().join("tests/fixtures/faceres");
    let reference: FaceresReference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    assert_eq!(reference.chips.len(), 3);
    let mut embeddings = Vec::new();
    for chip in &reference.chips {
        let image = load_png(&dir.join(&chip.file));
        let size = embedder.spec().input_size;
        assert_eq!((image.width(), image.height()), (size, size));
        let input = net_input(&image, embedder.spec());
        let embedding = embedder.embed(1, &input).unwrap().remove(0);
        assert_eq!(embedding.len(), chip.descriptor.len());
        let cos = cosine(&embedding, &chip.descriptor);
        assert!(cos >= 0.9999, "{}: cosine {cos}", chip.file);
        embeddings.push(embedding);
    }
    // three different people: the net tells them apart
    assert!(cosine(&embeddings[0], &embeddings[1]) < 0.99);
}
