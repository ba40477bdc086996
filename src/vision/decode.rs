//! Encoded image bytes → an upright RGB frame, refusing decompression bombs before decoding.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty image (0 bytes)")]
    Empty,
    #[error("not a JPEG, PNG or WebP image")]
    UnknownFormat,
    #[error("image is {width}×{height} = {} pixels, above the limit of {budget} pixels", *width as u64 * *height as u64)]
    TooLarge {
        width: u32,
        height: u32,
        budget: u64,
    },
    #[error("truncated JPEG (no end-of-image marker)")]
    Truncated,
    #[error("corrupt {format:?} image")]
    Corrupt {
        format: ImageFormat,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Decodes a JPEG, PNG or WebP, applying its EXIF orientation. The size is read from the header
/// and checked against `max_pixels` before any pixel is decoded.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let format = sniff(bytes)?;
    // The JPEG decoder fills a cut-off file with grey instead of failing: check the end marker.
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        return Err(DecodeError::Truncated);
    }
    let corrupt = |source: image::ImageError| DecodeError::Corrupt {
        format,
        source: source.into(),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    // Decoders' own working memory, a second line of defence behind the pixel budget.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            budget: max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::Empty);
    }
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = if format == ImageFormat::Jpeg {
        drop(decoder);
        DynamicImage::ImageRgb8(decode_jpeg(bytes)?)
    } else {
        DynamicImage::from_decoder(decoder).map_err(corrupt)?
    };
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// The format of an image from its first bytes, if it is one this decoder takes: a cheap check
/// for frames that are queued now and decoded later.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match image::guess_format(bytes) {
        Ok(format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => Ok(format),
        _ => Err(DecodeError::UnknownFormat),
    }
}

/// libjpeg-turbo, so that pixels (and so embeddings) are the ones Pillow, OpenCV, browsers and
/// face-api.js see for the same file; Rust decoders differ by a few grey levels.
fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| DecodeError::Corrupt {
        format: ImageFormat::Jpeg,
        source,
    };
    let header = turbojpeg::read_header(bytes).map_err(|e| corrupt(e.into()))?;
    let cmyk = matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    );
    let format = if cmyk {
        // libjpeg-turbo converts CMYK to nothing else; print workflows (Photoshop) store it
        // inverted (Adobe), so each channel is the ink's complement times black's, as
        // Pillow reads it
        turbojpeg::PixelFormat::CMYK
    } else {
        turbojpeg::PixelFormat::RGB
    };
    let image = turbojpeg::decompress(bytes, format).map_err(|e| corrupt(e.into()))?;
    let pixels = if cmyk {
        image
            .pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = p[3] as u16;
                [0, 1, 2].map(|i| (p[i] as u16 * k / 255) as u8)
            })
            .collect()
    } else {
        image.pixels
    };
    RgbImage::from_raw(image.width as u32, image.height as u32, pixels)
        .ok_or_else(|| corrupt("decoded buffer does not match the image size".into()))
}

fn has_jpeg_end(bytes: &[u8]) -> bool {
    // Some writers pad after EOI; look for it near the end.
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// File names the decoder may understand (for walking photo folders).
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str()))
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode {path}")]
    Decode {
        path: std::path::PathBuf,
        #[source]
        source: DecodeError,
    },
}

/// Reads and decodes an image file; errors name the file.
pub fn load(path: &Path, max_pixels: u64) -> Result<RgbImage, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode(&bytes, max_pixels).map_err(|source| LoadError::Decode {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn encode(format: ImageFormat, image: &RgbImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]))
    }

    /// `image` as an Adobe-style (inverted) CMYK JPEG, as print workflows write them.
    pub(crate) fn cmyk_jpeg(image: &RgbImage) -> Vec<u8> {
        // inverted CMYK with black at full: each channel is the colour itself
        let pixels: Vec<u8> = image
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let cmyk = turbojpeg::Image {
            pixels: pixels.as_slice(),
            width: image.width() as usize,
            pitch: image.width() as usize * 4,
            height: image.height() as usize,
            format: turbojpeg::PixelFormat::CMYK,
        };
        turbojpeg::compress(cmyk, 95, turbojpeg::Subsamp::None)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn cmyk_jpegs_decode_to_their_colours() {
        let original = gradient(40, 30);
        let bytes = cmyk_jpeg(&original);
        let header = turbojpeg::read_header(&bytes).unwrap();
        assert!(
            matches!(
                header.colorspace,
                turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
            ),
            "{:?}",
            header.colorspace
        );
        let decoded = decode(&bytes, 10_000).unwrap();
        let worst = decoded
            .pixels()
            .zip(original.pixels())
            .flat_map(|(a, b)| (0..3).map(move |i| (a[i] as i32 - b[i] as i32).abs()))
            .max()
            .unwrap();
        assert!(worst <= 8, "a channel is off by {worst}");
    }

    #[test]
    fn decodes_png_jpeg_and_webp() {
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP] {
            let img = decode(&encode(format, &gradient(40, 30)), 10_000).unwrap();
            assert_eq!(img.dimensions(), (40, 30), "{format:?}");
        }
    }

    #[test]
    fn refuses_empty_unknown_and_oversized_images() {
        assert!(matches!(decode(&[], 100), Err(DecodeError::Empty)));
        assert!(matches!(
            decode(b"hello, not an image", 100),
            Err(DecodeError::UnknownFormat)
        ));
        let err = decode(&encode(ImageFormat::Png, &gradient(40, 30)), 1000).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLarge {
                    width: 40,
                    height: 30,
                    budget: 1000
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_truncated_jpeg_and_corrupt_png() {
        let jpeg = encode(ImageFormat::Jpeg, &gradient(64, 64));
        assert!(matches!(
            decode(&jpeg[..jpeg.len() / 2], 1 << 20),
            Err(DecodeError::Truncated)
        ));
        let png = encode(ImageFormat::Png, &gradient(64, 64));
        let err = decode(&png[..png.len() / 2], 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 40×30 JPEG tagged "rotate 90° clockwise" decodes as 30×40.
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(
                gradient(40, 30).as_raw(),
                40,
                30,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        let exif: &[u8] = &[
            0x45, 0x78, 0x69, 0x66, 0, 0, // "Exif\0\0"
            0x4D, 0x4D, 0, 0x2A, 0, 0, 0, 8, // big-endian TIFF header, IFD at 8
            0, 1, // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation (SHORT) = 6
            0, 0, 0, 0, // no next IFD
        ];
        let mut tagged = vec![0xFF, 0xD8, 0xFF, 0xE1];
        tagged.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        tagged.extend_from_slice(exif);
        tagged.extend_from_slice(&jpeg[2..]);
        assert_eq!(decode(&tagged, 1 << 20).unwrap().dimensions(), (30, 40));
    }
}
