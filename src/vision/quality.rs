//! Is this face good enough to enrol or to trust a match on? Measures and a verdict with reasons.

use serde::{Deserialize, Serialize};

use super::geometry::{BBox, Point};
use super::landmarks::points;
use super::manifest::ModelSpec;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QualityRules {
    pub min_face_px: f32,
    pub min_detector_score: f32,
    pub min_sharpness: f32,
    pub min_frontalness: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    /// shorter side of the detection box, frame pixels
    pub face_px: f32,
    pub detector_score: f32,
    /// variance of the Laplacian of the aligned chip, grey levels²
    pub sharpness: f32,
    /// 1 = frontal, 0 = profile
    pub frontalness: f32,
    /// in-plane tilt of the eye line, degrees
    pub roll_degrees: f32,
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// `chip` is the embedder's normalised NCHW input for this face.
pub fn assess(
    rules: &QualityRules,
    bbox: &BBox,
    score: f32,
    landmarks: &[Point],
    chip: &[f32],
    spec: &ModelSpec,
) -> Quality {
    let face_px = bbox.width.min(bbox.height);
    let sharpness = laplacian_variance(chip, spec);
    let (frontalness, roll_degrees) = pose(landmarks);
    let mut reasons = Vec::new();
    if face_px < rules.min_face_px {
        reasons.push(format!(
            "face too small: {:.1} px < {} px",
            // floored: a 47.96 px face must not read as "48 px < 48 px"
            (face_px * 10.0).floor() / 10.0,
            rules.min_face_px
        ));
    }
    if score < rules.min_detector_score {
        reasons.push(format!(
            "unsure detection: score {score:.2} < {:.2}",
            rules.min_detector_score
        ));
    }
    if sharpness < rules.min_sharpness {
        reasons.push(format!(
            "blurred: sharpness {sharpness:.1} < {:.1}",
            rules.min_sharpness
        ));
    }
    if frontalness < rules.min_frontalness {
        reasons.push(format!(
            "turned away: frontalness {frontalness:.2} < {:.2}",
            rules.min_frontalness
        ));
    }
    Quality {
        face_px,
        detector_score: score,
        sharpness,
        frontalness,
        roll_degrees,
        passed: reasons.is_empty(),
        reasons,
    }
}

/// Frontalness from where the nose tip falls between the outer eye corners (0.5 = centred),
/// and the eye line's tilt.
fn pose(landmarks: &[Point]) -> (f32, f32) {
    let (left, right) = (
        landmarks[points::LEFT_EYE_OUTER],
        landmarks[points::RIGHT_EYE_OUTER],
    );
    let nose = landmarks[points::NOSE_TIP];
    let (ex, ey) = (right.x - left.x, right.y - left.y);
    let len2 = ex * ex + ey * ey;
    if len2 <= f32::EPSILON {
        return (0.0, 0.0);
    }
    let t = ((nose.x - left.x) * ex + (nose.y - left.y) * ey) / len2;
    let frontalness = (1.0 - 2.0 * (t - 0.5).abs()).clamp(0.0, 1.0);
    (frontalness, ey.atan2(ex).to_degrees())
}

fn laplacian_variance(chip: &[f32], spec: &ModelSpec) -> f32 {
    let size = spec.input_size as usize;
    let plane = size * size;
    let grey: Vec<f32> = (0..plane)
        .map(|i| {
            (0..3)
                .map(|c| chip[c * plane + i] * spec.std[c] + spec.mean[c])
                .sum::<f32>()
                / 3.0
        })
        .collect();
    let mut values = Vec::with_capacity(plane);
    for y in 1..size - 1 {
        for x in 1..size - 1 {
            let i = y * size + x;
            values
                .push(grey[i - 1] + grey[i + 1] + grey[i - size] + grey[i + size] - 4.0 * grey[i]);
        }
    }
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::manifest::Padding;

    fn spec(size: u32) -> ModelSpec {
        ModelSpec::plain(size, Padding::Centered)
    }

    fn face(nose_x: f32) -> Vec<Point> {
        let mut lm = vec![Point::default(); 68];
        lm[points::LEFT_EYE_OUTER] = Point::new(0.0, 0.0);
        lm[points::RIGHT_EYE_OUTER] = Point::new(100.0, 0.0);
        lm[points::NOSE_TIP] = Point::new(nose_x, 50.0);
        lm
    }

    fn rules() -> QualityRules {
        QualityRules {
            min_face_px: 48.0,
            min_detector_score: 0.5,
            min_sharpness: 20.0,
            min_frontalness: 0.45,
        }
    }

    fn checkerboard(size: usize) -> Vec<f32> {
        let plane: Vec<f32> = (0..size * size)
            .map(|i| {
                if (i / size + i % size).is_multiple_of(2) {
                    0.0
                } else {
                    255.0
                }
            })
            .collect();
        plane.repeat(3)
    }

    #[test]
    fn frontal_face_is_centred_profile_is_not() {
        assert_eq!(pose(&face(50.0)).0, 1.0);
        assert!((pose(&face(90.0)).0 - 0.2).abs() < 1e-5);
    }

    #[test]
    fn flat_chip_is_blurred_and_a_checkerboard_is_sharp() {
        let s = spec(8);
        assert_eq!(laplacian_variance(&vec![0.5; 3 * 64], &s), 0.0);
        assert!(laplacian_variance(&checkerboard(8), &s) > 1000.0);
    }

    #[test]
    fn verdict_lists_every_failed_rule() {
        let s = spec(8);
        let small = BBox {
            x: 0.0,
            y: 0.0,
            width: 30.0,
            height: 40.0,
        };
        let q = assess(&rules(), &small, 0.9, &face(95.0), &vec![0.0; 3 * 64], &s);
        assert!(!q.passed);
        assert_eq!(q.reasons.len(), 3, "{:?}", q.reasons);
        let good = BBox {
            x: 0.0,
            y: 0.0,
            width: 120.0,
            height: 140.0,
        };
        let q = assess(&rules(), &good, 0.9, &face(50.0), &checkerboard(8), &s);
        assert!(q.passed, "{:?}", q.reasons);
    }
}
