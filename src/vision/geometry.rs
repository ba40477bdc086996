//! Points and boxes in frame pixel coordinates.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    pub fn distance(self, other: Point) -> f32 {
        (self.x - other.x).hypot(self.y - other.y)
    }

    pub fn mean(points: &[Point]) -> Point {
        let n = points.len() as f32;
        let (sx, sy) = points
            .iter()
            .fold((0.0, 0.0), |(sx, sy), p| (sx + p.x, sy + p.y));
        Point::new(sx / n, sy / n)
    }
}

/// An axis-aligned box: top-left corner and size, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl BBox {
    pub fn from_corners(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }

    pub fn right(&self) -> f32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f32 {
        self.y + self.height
    }

    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    pub fn iou(&self, other: &BBox) -> f32 {
        let w = (self.right().min(other.right()) - self.x.max(other.x)).max(0.0);
        let h = (self.bottom().min(other.bottom()) - self.y.max(other.y)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    pub fn translate(&self, dx: f32, dy: f32) -> BBox {
        BBox {
            x: self.x + dx,
            y: self.y + dy,
            ..*self
        }
    }

    /// The whole-pixel region of this box inside a `width`×`height` frame (face-api's
    /// `clipAtImageBorders`: clip, then floor). `None` when nothing of it is inside.
    pub fn pixel_region(&self, width: u32, height: u32) -> Option<PixelRegion> {
        let x0 = self.x.max(0.0);
        let y0 = self.y.max(0.0);
        let x1 = self.right().min(width as f32);
        let y1 = self.bottom().min(height as f32);
        let (x, y) = (x0.floor() as u32, y0.floor() as u32);
        let (w, h) = ((x1 - x0).floor(), (y1 - y0).floor());
        if w < 1.0 || h < 1.0 || x >= width || y >= height {
            return None;
        }
        Some(PixelRegion {
            x,
            y,
            width: (w as u32).min(width - x),
            height: (h as u32).min(height - y),
        })
    }
}

/// A rectangle of whole pixels inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRegion {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&a.translate(20.0, 0.0)), 0.0);
        let half = a.iou(&a.translate(5.0, 0.0));
        assert!((half - 50.0 / 150.0).abs() < 1e-6, "{half}");
    }

    #[test]
    fn pixel_region_clips_and_floors() {
        let b = BBox {
            x: -3.5,
            y: 2.7,
            width: 20.0,
            height: 200.0,
        };
        let r = b.pixel_region(100, 50).unwrap();
        assert_eq!(
            r,
            PixelRegion {
                x: 0,
                y: 2,
                width: 16,
                height: 47
            }
        );
        assert!(
            BBox {
                x: 200.0,
                y: 0.0,
                width: 5.0,
                height: 5.0
            }
            .pixel_region(100, 50)
            .is_none()
        );
    }
}
