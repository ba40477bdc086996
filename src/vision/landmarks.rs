//! 68-point landmarks (iBUG 300-W order) from face-api's landmark net.

use image::RgbImage;

use super::VisionError;
use super::geometry::{BBox, Point};
use super::preprocess::square_input;
use super::session::Model;

pub const LANDMARK_COUNT: usize = 68;

pub type Landmarks = Vec<Point>;

pub trait Landmarker: Send + Sync {
    fn name(&self) -> &str;
    /// Landmarks for each box, in frame pixels; `None` for a box with no pixels in the frame.
    fn landmarks(
        &self,
        frame: &RgbImage,
        boxes: &[BBox],
    ) -> Result<Vec<Option<Landmarks>>, VisionError>;
}

pub struct Landmark68Net {
    model: Model,
}

impl Landmark68Net {
    pub fn new(model: Model) -> Self {
        Self { model }
    }
}

impl Landmarker for Landmark68Net {
    fn name(&self) -> &str {
        &self.model.name
    }

    fn landmarks(
        &self,
        frame: &RgbImage,
        boxes: &[BBox],
    ) -> Result<Vec<Option<Landmarks>>, VisionError> {
        let size = self.model.spec.input_size as usize;
        let per_face = 3 * size * size;
        let regions: Vec<_> = boxes
            .iter()
            .map(|b| b.pixel_region(frame.width(), frame.height()))
            .collect();
        let crops: Vec<_> = regions.iter().flatten().copied().collect();
        if crops.is_empty() {
            return Ok(vec![None; boxes.len()]);
        }
        let mut input = vec![0.0; per_face * crops.len()];
        for (region, out) in crops.iter().zip(input.chunks_exact_mut(per_face)) {
            square_input(frame, *region, &self.model.spec, out);
        }
        let raw = self.model.run(crops.len(), &input, |outputs| {
            let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
            Ok(values.to_vec())
        })?;
        // The net answers in fractions of the padded square. Mapped back exactly as face-api
        // does (an even split of the padding, shifted by the unrounded box), which is how its
        // outputs were meant to be read and keeps us checkable against face-api to the pixel.
        let origins = boxes
            .iter()
            .zip(&regions)
            .filter(|(_, r)| r.is_some())
            .map(|(b, _)| (b.x.max(0.0), b.y.max(0.0)));
        let mut faces = raw
            .chunks_exact(2 * LANDMARK_COUNT)
            .zip(crops.iter().zip(origins))
            .map(|(values, (region, (x0, y0)))| {
                let side = region.width.max(region.height) as f32;
                let (pad_x, pad_y) = (
                    (side - region.width as f32) / 2.0,
                    (side - region.height as f32) / 2.0,
                );
                values
                    .chunks_exact(2)
                    .map(|xy| Point::new(xy[0] * side - pad_x + x0, xy[1] * side - pad_y + y0))
                    .collect::<Landmarks>()
            });
        Ok(regions
            .iter()
            .map(|r| r.and_then(|_| faces.next()))
            .collect())
    }
}

/// Named landmark groups of the 68-point scheme (image left/right, not the subject's).
pub mod points {
    use std::ops::Range;

    pub const LEFT_EYE: Range<usize> = 36..42;
    pub const RIGHT_EYE: Range<usize> = 42..48;
    pub const MOUTH: Range<usize> = 48..68;
    /// Below the nose, where dlib's 5-point template puts its nose point.
    pub const NOSE_TIP: usize = 33;
    /// The tip of the nose, ArcFace's nose point.
    pub const NOSE_APEX: usize = 30;
    pub const MOUTH_LEFT: usize = 48;
    pub const MOUTH_RIGHT: usize = 54;
    pub const LEFT_EYE_OUTER: usize = 36;
    pub const LEFT_EYE_INNER: usize = 39;
    pub const RIGHT_EYE_INNER: usize = 42;
    pub const RIGHT_EYE_OUTER: usize = 45;
}
