//! Is this face good enough to enrol or to trust a match on? Measures, a verdict with reasons,
//! and a weight for fusing a track's faces.
//!
//! Two sharpness measures, because stills and cameras fail differently. A portrait's is taken
//! on the aligned chip: a portrait is large, and the chip is what the embedder sees. A camera
//! face is often 40–100 px: enlarged to a 150 px chip, any small face reads as blurred (median
//! 4.9 on an entrance clip). There it is taken at the face's own resolution, shrunk (never
//! enlarged) to at most `NATIVE_SIDE` pixels, so a sharp small face and a sharp large face
//! score alike and motion blur still shows.

use image::RgbImage;

use serde::{Deserialize, Serialize};

use super::geometry::{BBox, Point};
use super::landmarks::points;
use super::manifest::ModelSpec;

/// Side, in pixels, at which a camera face's sharpness is measured (at most).
pub const NATIVE_SIDE: u32 = 64;

/// Where the sharpness is read from.
pub enum Sharpness<'a> {
    /// the embedder's normalised NCHW chip (portraits)
    Chip(&'a [f32], &'a ModelSpec),
    /// the face box in the frame, at its own resolution (camera frames)
    Native(&'a RgbImage),
}

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
    /// how much this face counts when a track's faces are fused, 0–1: frontal, sharp and
    /// large faces count most
    pub weight: f32,
    /// in-plane tilt of the eye line, degrees
    pub roll_degrees: f32,
    pub passed: bool,
    pub reasons: Vec<String>,
}

pub fn assess(
    rules: &QualityRules,
    bbox: &BBox,
    score: f32,
    landmarks: &[Point],
    sharpness: Sharpness,
) -> Quality {
    let face_px = bbox.width.min(bbox.height);
    let sharpness = match sharpness {
        Sharpness::Chip(chip, spec) => chip_sharpness(chip, spec),
        Sharpness::Native(frame) => native_sharpness(frame, bbox),
    };
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
    // each factor saturates at twice its gate (size: at a 112 px face, the ArcFace chip size)
    let weight = frontalness.clamp(0.0, 1.0)
        * (sharpness / (2.0 * rules.min_sharpness).max(f32::EPSILON)).min(1.0)
        * (face_px / 112.0).min(1.0);
    Quality {
        face_px,
        detector_score: score,
        sharpness,
        frontalness,
        weight,
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

fn chip_sharpness(chip: &[f32], spec: &ModelSpec) -> f32 {
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
    laplacian_variance(&grey, size, size)
}

/// The face box's grey pixels, shrunk to at most `NATIVE_SIDE` a side, never enlarged.
fn native_sharpness(frame: &RgbImage, bbox: &BBox) -> f32 {
    let Some(region) = bbox.pixel_region(frame.width(), frame.height()) else {
        return 0.0;
    };
    if region.width < 3 || region.height < 3 {
        return 0.0;
    }
    let face = image::imageops::crop_imm(frame, region.x, region.y, region.width, region.height);
    let grey = image::DynamicImage::ImageRgb8(face.to_image()).into_luma8();
    let longest = region.width.max(region.height);
    let grey = if longest > NATIVE_SIDE {
        let scale = NATIVE_SIDE as f32 / longest as f32;
        let (w, h) = (
            ((region.width as f32 * scale).round() as u32).max(3),
            ((region.height as f32 * scale).round() as u32).max(3),
        );
        image::imageops::resize(&grey, w, h, image::imageops::FilterType::Triangle)
    } else {
        grey
    };
    let values: Vec<f32> = grey.pixels().map(|p| p.0[0] as f32).collect();
    laplacian_variance(&values, grey.width() as usize, grey.height() as usize)
}

fn laplacian_variance(grey: &[f32], width: usize, height: usize) -> f32 {
    let mut values = Vec::with_capacity(width * height);
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            let i = y * width + x;
            values.push(
                grey[i - 1] + grey[i + 1] + grey[i - width] + grey[i + width] - 4.0 * grey[i],
            );
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
        assert_eq!(chip_sharpness(&vec![0.5; 3 * 64], &s), 0.0);
        assert!(chip_sharpness(&checkerboard(8), &s) > 1000.0);
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
        let flat = vec![0.0; 3 * 64];
        let q = assess(
            &rules(),
            &small,
            0.9,
            &face(95.0),
            Sharpness::Chip(&flat, &s),
        );
        assert!(!q.passed);
        assert_eq!(q.reasons.len(), 3, "{:?}", q.reasons);
        let good = BBox {
            x: 0.0,
            y: 0.0,
            width: 120.0,
            height: 140.0,
        };
        let sharp = checkerboard(8);
        let q = assess(
            &rules(),
            &good,
            0.9,
            &face(50.0),
            Sharpness::Chip(&sharp, &s),
        );
        assert!(q.passed, "{:?}", q.reasons);
        assert!(q.weight > 0.9, "{}", q.weight);
    }

    /// Stripes of a fixed width in frame pixels, smoothed by `blur` passes of a 3-tap box.
    fn stripes(side: u32, blur: usize) -> RgbImage {
        let mut row: Vec<f32> = (0..side)
            .map(|x| if (x / 2) % 2 == 0 { 40.0 } else { 200.0 })
            .collect();
        for _ in 0..blur {
            row = (0..row.len())
                .map(|i| {
                    let l = row[i.saturating_sub(1)];
                    let r = row[(i + 1).min(row.len() - 1)];
                    (l + row[i] + r) / 3.0
                })
                .collect();
        }
        RgbImage::from_fn(side, side, |x, _| {
            let v = row[x as usize] as u8;
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn native_sharpness_sees_blur_and_not_size() {
        let whole = |side: u32| BBox {
            x: 0.0,
            y: 0.0,
            width: side as f32,
            height: side as f32,
        };
        let small_sharp = native_sharpness(&stripes(60, 0), &whole(60));
        let small_blurred = native_sharpness(&stripes(60, 3), &whole(60));
        assert!(
            small_blurred < small_sharp / 4.0,
            "{small_blurred} vs {small_sharp}"
        );
        // a large sharp face is shrunk, not read at a scale where every face looks smooth
        let large_sharp = native_sharpness(&stripes(200, 0), &whole(200));
        assert!(large_sharp > small_blurred, "{large_sharp}");
        // a box outside the frame has nothing to measure
        let outside = BBox {
            x: 500.0,
            ..whole(10)
        };
        assert_eq!(native_sharpness(&stripes(60, 0), &outside), 0.0);
    }
}
