//! Frame pixels → a network's normalised NCHW input, in one pass: pad to a square, resize with
//! TF's legacy bilinear (align_corners = false, no half-pixel offset: what face-api's tfjs
//! `resizeBilinear` does), normalise with the manifest's mean and std.

use image::RgbImage;

use super::geometry::PixelRegion;
use super::manifest::{ModelSpec, Padding};

/// Where the region lies inside the padded square: the zeros before it on each axis, and the
/// square's side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquareLayout {
    pub offset_x: u32,
    pub offset_y: u32,
    pub side: u32,
}

impl SquareLayout {
    pub fn new(width: u32, height: u32, padding: Padding) -> Self {
        let side = width.max(height);
        let before = |extent: u32| match padding {
            Padding::BottomRight => 0,
            // face-api (padToSquare): round(diff / 2) goes after, the rest before.
            Padding::Centered => {
                let diff = side - extent;
                diff - diff.div_ceil(2)
            }
        };
        Self {
            offset_x: before(width),
            offset_y: before(height),
            side,
        }
    }
}

/// Writes `region` of `frame` into `out` (3·size·size floats, planar RGB) as the network with
/// `spec` expects it, and returns where the region sits in the padded square.
pub fn square_input(
    frame: &RgbImage,
    region: PixelRegion,
    spec: &ModelSpec,
    out: &mut [f32],
) -> SquareLayout {
    let layout = SquareLayout::new(region.width, region.height, spec.padding);
    let size = spec.input_size as usize;
    debug_assert_eq!(out.len(), 3 * size * size);
    let scale = layout.side as f32 / size as f32;
    let last = layout.side as usize - 1;

    // Per output row and column: the two source rows/columns (as byte offsets into the frame,
    // `None` inside the padding) and the weight, computed once per call.
    let taps = |extent: u32,
                offset: u32,
                origin: u32,
                stride: usize|
     -> Vec<(Option<usize>, Option<usize>, f32)> {
        let at = |s: usize| {
            let i = s as i64 - offset as i64;
            (i >= 0 && i < extent as i64).then(|| (origin as usize + i as usize) * stride)
        };
        (0..size)
            .map(|o| {
                let src = o as f32 * scale;
                let s0 = src.floor() as usize;
                (at(s0), at((s0 + 1).min(last)), src - s0 as f32)
            })
            .collect()
    };
    let row_bytes = frame.width() as usize * 3;
    let columns = taps(region.width, layout.offset_x, region.x, 3);
    let rows = taps(region.height, layout.offset_y, region.y, row_bytes);
    let raw = frame.as_raw();
    let pixel = |row: Option<usize>, col: Option<usize>| -> [f32; 3] {
        match (row, col) {
            (Some(r), Some(c)) => [
                raw[r + c] as f32,
                raw[r + c + 1] as f32,
                raw[r + c + 2] as f32,
            ],
            _ => [0.0; 3],
        }
    };
    let plane = size * size;
    for (oy, &(r0, r1, dy)) in rows.iter().enumerate() {
        for (ox, &(c0, c1, dx)) in columns.iter().enumerate() {
            let (tl, tr, bl, br) = (pixel(r0, c0), pixel(r0, c1), pixel(r1, c0), pixel(r1, c1));
            for c in 0..3 {
                let top = tl[c] + (tr[c] - tl[c]) * dx;
                let bottom = bl[c] + (br[c] - bl[c]) * dx;
                let value = top + (bottom - top) * dy;
                let plane_index = spec.channels.plane_of(c);
                out[plane_index * plane + oy * size + ox] =
                    (value - spec.mean[plane_index]) / spec.std[plane_index];
            }
        }
    }
    layout
}

/// Normalises an RGB chip that already has the network's input size (the similarity aligner
/// samples straight into it).
pub fn normalise_chip(chip: &[[f32; 3]], spec: &ModelSpec, out: &mut [f32]) {
    let plane = chip.len();
    for (i, rgb) in chip.iter().enumerate() {
        for (c, value) in rgb.iter().enumerate() {
            let p = spec.channels.plane_of(c);
            out[p * plane + i] = (value - spec.mean[p]) / spec.std[p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: u32, padding: Padding) -> ModelSpec {
        ModelSpec::plain(size, padding)
    }

    #[test]
    fn centered_padding_puts_the_larger_half_after() {
        let l = SquareLayout::new(10, 15, Padding::Centered);
        assert_eq!((l.offset_x, l.offset_y, l.side), (2, 0, 15));
        let l = SquareLayout::new(10, 15, Padding::BottomRight);
        assert_eq!((l.offset_x, l.offset_y), (0, 0));
    }

    #[test]
    fn legacy_bilinear_samples_at_scaled_integer_coordinates() {
        // A 4x4 ramp (value = 10·x) halved to 2x2 samples source columns 0 and 2 exactly.
        let frame = RgbImage::from_fn(4, 4, |x, _| image::Rgb([(10 * x) as u8, 0, 0]));
        let region = PixelRegion {
            x: 0,
            y: 0,
            width: 4,
            height: 4,
        };
        let mut out = vec![0.0; 3 * 2 * 2];
        square_input(&frame, region, &spec(2, Padding::Centered), &mut out);
        assert_eq!(&out[0..4], &[0.0, 20.0, 0.0, 20.0]);
        // Upscaling 4 → 8 puts output column 1 halfway between source columns 0 and 1.
        let mut out = vec![0.0; 3 * 8 * 8];
        square_input(&frame, region, &spec(8, Padding::Centered), &mut out);
        assert_eq!(&out[0..4], &[0.0, 5.0, 10.0, 15.0]);
        // The last column repeats the edge (no sample beyond the image).
        assert_eq!(out[7], 30.0);
    }

    #[test]
    fn bgr_models_get_their_planes_and_means_swapped() {
        let mut s = spec(1, Padding::Centered);
        s.channels = crate::vision::manifest::Channels::Bgr;
        s.mean = [1.0, 2.0, 3.0];
        let mut out = vec![0.0; 3];
        normalise_chip(&[[10.0, 20.0, 30.0]], &s, &mut out);
        // plane 0 is blue (30) minus the first mean
        assert_eq!(out, vec![29.0, 18.0, 7.0]);
    }

    #[test]
    fn padding_is_zero_and_normalisation_applies() {
        let frame = RgbImage::from_pixel(2, 1, image::Rgb([100, 100, 100]));
        let region = PixelRegion {
            x: 0,
            y: 0,
            width: 2,
            height: 1,
        };
        let mut s = spec(2, Padding::BottomRight);
        s.mean = [50.0; 3];
        s.std = [2.0; 3];
        let mut out = vec![0.0; 12];
        square_input(&frame, region, &s, &mut out);
        // Row 0 is the image ((100-50)/2 = 25), row 1 is padding ((0-50)/2 = -25).
        assert_eq!(&out[0..4], &[25.0, 25.0, -25.0, -25.0]);
    }
}
