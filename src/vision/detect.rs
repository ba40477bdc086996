//! Face detectors. Both face-api detectors (SSD MobileNetV1 and the tiny YOLOv2) were
//! converted to one output contract, so one implementation runs either; a detector with
//! another contract (YuNet, SCRFD) is one more `Detector` impl.

use image::RgbImage;
use serde::Serialize;

use super::VisionError;
use super::geometry::{BBox, PixelRegion};
use super::preprocess::square_input;
use super::session::Model;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
}

pub trait Detector: Send + Sync {
    fn name(&self) -> &str;
    /// Faces in `frame` scoring above `threshold`, best first, in frame pixels.
    fn detect(&self, frame: &RgbImage, threshold: f32) -> Result<Vec<Detection>, VisionError>;
}

/// A network whose outputs are `boxes [1,N,4]` (x0,y0,x1,y1 relative to the bottom/right
/// padded square) and `scores [1,N]`.
pub struct BoxScoreDetector {
    model: Model,
    nms_iou: f32,
    max_detections: usize,
}

impl BoxScoreDetector {
    pub fn new(model: Model) -> Self {
        let nms_iou = model.spec.nms_iou.unwrap_or(0.5);
        let max_detections = model.spec.max_detections.unwrap_or(100);
        Self {
            model,
            nms_iou,
            max_detections,
        }
    }
}

impl Detector for BoxScoreDetector {
    fn name(&self) -> &str {
        &self.model.name
    }

    fn detect(&self, frame: &RgbImage, threshold: f32) -> Result<Vec<Detection>, VisionError> {
        let size = self.model.spec.input_size as usize;
        let mut input = vec![0.0; 3 * size * size];
        let whole = PixelRegion {
            x: 0,
            y: 0,
            width: frame.width(),
            height: frame.height(),
        };
        let layout = square_input(frame, whole, &self.model.spec, &mut input);
        // face-api maps fractions back through the frame's size at the net's input, rounded
        // (exact on the long side, within 0.2% on the short one); kept for parity with it.
        let (w, h) = (frame.width() as f32, frame.height() as f32);
        let at_input = |extent: f32| (extent * size as f32 / layout.side as f32).round();
        let (scale_x, scale_y) = (size as f32 / at_input(w) * w, size as f32 / at_input(h) * h);
        let candidates = self.model.run(1, &input, |outputs| {
            let (_, boxes) = outputs["boxes"].try_extract_tensor::<f32>()?;
            let (_, scores) = outputs["scores"].try_extract_tensor::<f32>()?;
            Ok(scores
                .iter()
                .zip(boxes.chunks_exact(4))
                .filter(|(score, _)| **score > threshold)
                .map(|(&score, b)| {
                    // Boxes beyond the square's edges are clipped to it (face-api does so for SSD).
                    let (x, y) = (
                        |v: f32| v.clamp(0.0, 1.0) * scale_x,
                        |v: f32| v.clamp(0.0, 1.0) * scale_y,
                    );
                    Detection {
                        bbox: BBox::from_corners(x(b[0]), y(b[1]), x(b[2]), y(b[3])),
                        score,
                    }
                })
                .collect::<Vec<_>>())
        })?;
        let frame_box = BBox {
            x: 0.0,
            y: 0.0,
            width: w,
            height: h,
        };
        Ok(
            non_max_suppression(candidates, self.nms_iou, self.max_detections)
                .into_iter()
                .filter(|d| d.bbox.iou(&frame_box) > 0.0)
                .collect(),
        )
    }
}

/// Greedy NMS: best score first, dropping any box overlapping a kept one by more than `iou`.
pub fn non_max_suppression(mut candidates: Vec<Detection>, iou: f32, max: usize) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for c in candidates {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|k| k.bbox.iou(&c.bbox) <= iou) {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y: 0.0,
                width: 10.0,
                height: 10.0,
            },
            score,
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let kept = non_max_suppression(vec![det(1.0, 0.7), det(0.0, 0.9), det(50.0, 0.8)], 0.5, 10);
        let xs: Vec<f32> = kept.iter().map(|d| d.bbox.x).collect();
        assert_eq!(xs, vec![0.0, 50.0]);
    }

    #[test]
    fn nms_keeps_boxes_overlapping_at_most_the_threshold() {
        // IoU of boxes shifted by 5 is 1/3.
        assert_eq!(
            non_max_suppression(vec![det(0.0, 0.9), det(5.0, 0.8)], 0.4, 10).len(),
            2
        );
        assert_eq!(
            non_max_suppression(vec![det(0.0, 0.9), det(5.0, 0.8)], 0.3, 10).len(),
            1
        );
    }

    #[test]
    fn nms_caps_the_number_of_boxes() {
        let many = (0..10).map(|i| det(i as f32 * 100.0, 0.9)).collect();
        assert_eq!(non_max_suppression(many, 0.5, 3).len(), 3);
    }
}
