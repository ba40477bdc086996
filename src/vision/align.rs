//! Face alignment: landmarks → the embedder's input chip.

use std::ops::Range;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::geometry::{BBox, Point};
use super::landmarks::points;
use super::manifest::{Family, ModelSpec};
use super::preprocess::{normalise_chip, square_input};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlignmentKind {
    /// face-api.js: an axis-aligned square around eyes and mouth; no rotation.
    FaceApi,
    /// dlib's face chip: a least-squares similarity (rotation, scale, shift) taking five
    /// landmarks onto a fixed template, so tilted heads come out upright.
    Similarity,
    /// The same least-squares similarity onto InsightFace's ArcFace template (eye centres,
    /// nose tip, mouth corners), which recognizers of that family were trained on.
    Arcface,
}

impl AlignmentKind {
    /// How a model's chip is cut: the manifest's word, else its family's, else `default`.
    pub fn for_model(spec: &ModelSpec, default: AlignmentKind) -> AlignmentKind {
        match (spec.alignment, spec.family) {
            (Some(kind), _) => kind,
            (None, Family::Arcface112) => AlignmentKind::Arcface,
            (None, _) => default,
        }
    }
}

/// Writes the aligned, normalised chip for one face into `out` (the embedder's input slot).
/// Returns `false` when the face has no pixels inside the frame.
pub fn align_into(
    frame: &RgbImage,
    landmarks: &[Point],
    kind: AlignmentKind,
    spec: &ModelSpec,
    out: &mut [f32],
) -> bool {
    match kind {
        AlignmentKind::FaceApi => {
            match face_api_box(landmarks).pixel_region(frame.width(), frame.height()) {
                Some(region) => {
                    square_input(frame, region, spec, out);
                    true
                }
                None => false,
            }
        }
        AlignmentKind::Similarity | AlignmentKind::Arcface => {
            let size = spec.input_size as usize;
            let transform = chip_transform(landmarks, kind, size as f32);
            let chip = sample_chip(frame, &transform, size);
            normalise_chip(&chip, spec, out);
            true
        }
    }
}

/// face-api's `alignDlib` box: side = mean eye-to-mouth distance / 0.45, placed at 0.5 and
/// 0.43 of the side around the centre of the eyes and the mouth.
pub fn face_api_box(landmarks: &[Point]) -> BBox {
    let centers = [
        Point::mean(&landmarks[points::LEFT_EYE]),
        Point::mean(&landmarks[points::RIGHT_EYE]),
        Point::mean(&landmarks[points::MOUTH]),
    ];
    let eye_to_mouth = (centers[2].distance(centers[0]) + centers[2].distance(centers[1])) / 2.0;
    let size = (eye_to_mouth / 0.45).floor();
    let reference = Point::mean(&centers);
    let x = (reference.x - 0.5 * size).max(0.0).floor();
    let y = (reference.y - 0.43 * size).max(0.0).floor();
    BBox {
        x,
        y,
        width: size,
        height: size,
    }
}

/// dlib's 5-point face-chip template (`get_face_chip_details`), unit square, with the landmark
/// of the 68-point scheme each point corresponds to.
const TEMPLATE: [(usize, f32, f32); 5] = [
    (points::RIGHT_EYE_OUTER, 0.859_567_45, 0.213_498_15),
    (points::RIGHT_EYE_INNER, 0.646_060_5, 0.228_967_44),
    (points::LEFT_EYE_OUTER, 0.120_575_06, 0.213_727_45),
    (points::LEFT_EYE_INNER, 0.334_085_06, 0.229_064_24),
    (points::NOSE_TIP, 0.490_112_3, 0.627_797_5),
];
/// The border dlib's `face_recognition` adds around the template (`padding=0.25`).
const CHIP_PADDING: f32 = 0.25;

/// InsightFace's ArcFace template in pixels of a 112×112 chip: eye centres, nose tip, mouth
/// corners (image left first), with the landmarks of the 68-point scheme behind each.
const ARCFACE_TEMPLATE: [(Range<usize>, f32, f32); 5] = [
    (points::LEFT_EYE, 38.2946, 51.6963),
    (points::RIGHT_EYE, 73.5318, 51.5014),
    (points::NOSE_APEX..points::NOSE_APEX + 1, 56.0252, 71.7366),
    (points::MOUTH_LEFT..points::MOUTH_LEFT + 1, 41.5493, 92.3655),
    (
        points::MOUTH_RIGHT..points::MOUTH_RIGHT + 1,
        70.7299,
        92.2041,
    ),
];
const ARCFACE_SIZE: f32 = 112.0;

/// chip pixel → frame pixel: `(a·x − b·y + tx, b·x + a·y + ty)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    pub fn apply(&self, p: Point) -> Point {
        Point::new(
            self.a * p.x - self.b * p.y + self.tx,
            self.b * p.x + self.a * p.y + self.ty,
        )
    }

    /// Frame pixels per chip pixel.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }

    /// Least-squares similarity taking `from[i]` onto `to[i]`.
    pub fn fit(from: &[Point], to: &[Point]) -> Similarity {
        let (mf, mt) = (Point::mean(from), Point::mean(to));
        let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
        for (f, t) in from.iter().zip(to) {
            let (fx, fy, tx, ty) = (f.x - mf.x, f.y - mf.y, t.x - mt.x, t.y - mt.y);
            num_a += fx * tx + fy * ty;
            num_b += fx * ty - fy * tx;
            den += fx * fx + fy * fy;
        }
        let (a, b) = (num_a / den, num_b / den);
        Similarity {
            a,
            b,
            tx: mt.x - (a * mf.x - b * mf.y),
            ty: mt.y - (b * mf.x + a * mf.y),
        }
    }
}

/// chip pixel → frame pixel for a `size`-px chip on the template of `kind` (a similarity kind).
pub fn chip_transform(landmarks: &[Point], kind: AlignmentKind, size: f32) -> Similarity {
    let (chip, frame): (Vec<Point>, Vec<Point>) = if kind == AlignmentKind::Arcface {
        let s = size / ARCFACE_SIZE;
        ARCFACE_TEMPLATE
            .iter()
            .map(|(range, x, y)| {
                (
                    Point::new(x * s, y * s),
                    Point::mean(&landmarks[range.clone()]),
                )
            })
            .unzip()
    } else {
        let s = size / (2.0 * CHIP_PADDING + 1.0);
        TEMPLATE
            .iter()
            .map(|&(i, x, y)| {
                (
                    Point::new((CHIP_PADDING + x) * s, (CHIP_PADDING + y) * s),
                    landmarks[i],
                )
            })
            .unzip()
    };
    Similarity::fit(&chip, &frame)
}

/// Bilinear samples of the frame under each chip pixel (zero outside the frame). When a chip
/// pixel covers several frame pixels, several samples are averaged so that large faces are
/// not aliased (dlib downsamples with a pyramid for the same reason).
fn sample_chip(frame: &RgbImage, t: &Similarity, size: usize) -> Vec<[f32; 3]> {
    let taps = (t.scale().ceil() as usize).clamp(1, 6);
    let offsets: Vec<f32> = (0..taps)
        .map(|i| (i as f32 + 0.5) / taps as f32 - 0.5)
        .collect();
    let weight = 1.0 / (taps * taps) as f32;
    let mut chip = vec![[0.0f32; 3]; size * size];
    for r in 0..size {
        for c in 0..size {
            let mut acc = [0.0f32; 3];
            for &oy in &offsets {
                for &ox in &offsets {
                    let p = t.apply(Point::new(c as f32 + ox, r as f32 + oy));
                    let v = bilinear(frame, p.x, p.y);
                    for k in 0..3 {
                        acc[k] += v[k];
                    }
                }
            }
            chip[r * size + c] = acc.map(|v| v * weight);
        }
    }
    chip
}

fn bilinear(frame: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (x0, y0) = (x.floor(), y.floor());
    let (dx, dy) = (x - x0, y - y0);
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    let (xi, yi) = (x0 as i64, y0 as i64);
    let raw = frame.as_raw();
    let stride = w as usize * 3;
    let at = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            return [0.0; 3];
        }
        let i = yi as usize * stride + xi as usize * 3;
        [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
    };
    let (tl, tr, bl, br) = (
        at(xi, yi),
        at(xi + 1, yi),
        at(xi, yi + 1),
        at(xi + 1, yi + 1),
    );
    std::array::from_fn(|k| {
        let top = tl[k] + (tr[k] - tl[k]) * dx;
        let bottom = bl[k] + (br[k] - bl[k]) * dx;
        top + (bottom - top) * dy
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_fit_recovers_a_known_transform() {
        let truth = Similarity {
            a: 1.5 * 0.3f32.cos(),
            b: 1.5 * 0.3f32.sin(),
            tx: 40.0,
            ty: -7.0,
        };
        let from: Vec<Point> = [(0.0, 0.0), (10.0, 0.0), (3.0, 8.0), (7.0, 2.0)]
            .iter()
            .map(|&(x, y)| Point::new(x, y))
            .collect();
        let to: Vec<Point> = from.iter().map(|&p| truth.apply(p)).collect();
        let fit = Similarity::fit(&from, &to);
        for (got, want) in [
            (fit.a, truth.a),
            (fit.b, truth.b),
            (fit.tx, truth.tx),
            (fit.ty, truth.ty),
        ] {
            assert!((got - want).abs() < 1e-4, "{fit:?} vs {truth:?}");
        }
        assert!((fit.scale() - 1.5).abs() < 1e-5);
    }

    #[test]
    fn chip_of_template_landmarks_is_the_identity() {
        // Landmarks placed exactly on the template give a chip transform that maps onto itself.
        let size = 150.0;
        let mut landmarks = vec![Point::default(); 68];
        let s = size / (2.0 * CHIP_PADDING + 1.0);
        for &(i, x, y) in &TEMPLATE {
            landmarks[i] = Point::new((CHIP_PADDING + x) * s, (CHIP_PADDING + y) * s);
        }
        let t = chip_transform(&landmarks, AlignmentKind::Similarity, size);
        assert!(
            (t.a - 1.0).abs() < 1e-5 && t.b.abs() < 1e-5 && t.tx.abs() < 1e-3 && t.ty.abs() < 1e-3,
            "{t:?}"
        );
    }

    #[test]
    fn tilted_face_comes_out_upright() {
        // Rotate template landmarks by 30° in the frame: the fitted transform rotates by 30° too.
        let angle = 30f32.to_radians();
        let rot = Similarity {
            a: 2.0 * angle.cos(),
            b: 2.0 * angle.sin(),
            tx: 300.0,
            ty: 100.0,
        };
        let mut landmarks = vec![Point::default(); 68];
        let s = 150.0 / (2.0 * CHIP_PADDING + 1.0);
        for &(i, x, y) in &TEMPLATE {
            landmarks[i] = rot.apply(Point::new((CHIP_PADDING + x) * s, (CHIP_PADDING + y) * s));
        }
        let t = chip_transform(&landmarks, AlignmentKind::Similarity, 150.0);
        assert!((t.b.atan2(t.a) - angle).abs() < 1e-4);
        assert!((t.scale() - 2.0).abs() < 1e-4);
    }

    #[test]
    fn arcface_template_landmarks_map_onto_the_template_at_any_chip_size() {
        // Every landmark of a group placed on its template point, in a frame twice the scale:
        // the 224-px chip maps back with scale 1 (112 · 2 = 224), the 112-px one with 2.
        let mut landmarks = vec![Point::default(); 68];
        for (range, x, y) in &ARCFACE_TEMPLATE {
            for i in range.clone() {
                landmarks[i] = Point::new(2.0 * x + 10.0, 2.0 * y - 4.0);
            }
        }
        let t = chip_transform(&landmarks, AlignmentKind::Arcface, 224.0);
        assert!((t.scale() - 1.0).abs() < 1e-4 && t.b.abs() < 1e-5, "{t:?}");
        assert!(
            (t.tx - 10.0).abs() < 1e-3 && (t.ty + 4.0).abs() < 1e-3,
            "{t:?}"
        );
        let t = chip_transform(&landmarks, AlignmentKind::Arcface, 112.0);
        assert!((t.scale() - 2.0).abs() < 1e-4, "{t:?}");
    }

    #[test]
    fn bilinear_interpolates_and_is_black_outside() {
        let frame = RgbImage::from_fn(2, 1, |x, _| image::Rgb([(100 * x) as u8, 0, 0]));
        assert_eq!(bilinear(&frame, 0.25, 0.0)[0], 25.0);
        assert_eq!(bilinear(&frame, -5.0, 0.0), [0.0; 3]);
    }
}
