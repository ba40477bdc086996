//! Shared helpers for the integration tests: the real models (made by scripts/setup.sh), the
//! face-api demo photos and the fixtures written by face-api.js itself.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use greeter::config::Settings;
use greeter::vision::{AlignmentKind, Pipeline};
use serde::Deserialize;

pub fn settings() -> Settings {
    Settings::load(None).expect("default settings load (run scripts/setup.sh first)")
}

pub fn pipeline(detector: &str, alignment: AlignmentKind) -> Pipeline {
    let mut settings = settings();
    settings.vision.detector = detector.to_owned();
    settings.vision.alignment = alignment;
    Pipeline::load(&settings.vision, &settings.runtime)
        .expect("models load (run scripts/setup.sh first)")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The face-api package's demo photos, unpacked by scripts/setup.sh.
pub fn demo_photo(name: &str) -> PathBuf {
    root().join(".cache/face-api/package/demo").join(name)
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures/faceapi")
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub images: Vec<ReferenceImage>,
    pub crops: Vec<ReferenceCrop>,
}

#[derive(Debug, Deserialize)]
pub struct ReferenceImage {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub ssd: Vec<ReferenceFace>,
    pub tiny: Vec<ReferenceBox>,
}

#[derive(Debug, Deserialize)]
pub struct ReferenceFace {
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub landmarks: Vec<[f32; 2]>,
    pub descriptor: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct ReferenceBox {
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

#[derive(Debug, Deserialize)]
pub struct ReferenceCrop {
    pub landmark_crop: String,
    pub landmark_net_output: Vec<f32>,
    pub descriptor_crop: String,
    pub descriptor: Vec<f32>,
}

pub fn reference() -> Reference {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("fixtures exist");
    serde_json::from_str(&text).expect("fixtures parse")
}

pub fn load_png(path: &Path) -> image::RgbImage {
    image::open(path)
        .expect("fixture image decodes")
        .into_rgb8()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The data key of a test's data dir. A store keeps it outside the data dir; a test's data
/// dir is its own temporary folder, so the key stays inside it and goes with it.
pub fn key_file(data: &Path) -> PathBuf {
    data.join("test-data.key")
}

/// The binary, on a test's data dir.
pub fn greeter_on(data: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_greeter"));
    command
        .env("GREETER_GALLERY__DATA_DIR", data)
        .env("GREETER_GALLERY__KEY_FILE", key_file(data));
    command
}

/// A gallery in a fresh directory, with the default rules and the real model's identity.
pub fn open_gallery(
    dir: &Path,
    tweak: impl FnOnce(&mut greeter::gallery::GallerySettings),
) -> (greeter::gallery::Gallery, greeter::gallery::OpenReport) {
    let settings = settings();
    let mut gallery = settings.gallery.clone();
    gallery.data_dir = dir.to_owned();
    gallery.key_file = key_file(dir);
    tweak(&mut gallery);
    greeter::gallery::Gallery::open(
        gallery,
        settings.matching.clone(),
        "face_recognition@test",
        128,
    )
    .expect("gallery opens")
}

/// The largest face of an image file as a portrait.
pub fn portrait_of(pipeline: &Pipeline, path: &Path) -> greeter::gallery::PortraitInput {
    let frame = greeter::vision::decode::load(path, 50_000_000).unwrap();
    let face = pipeline
        .process(&frame)
        .unwrap()
        .largest()
        .cloned()
        .expect("a face");
    greeter::gallery::PortraitInput {
        face,
        source: path.display().to_string(),
        crop_jpeg: None,
    }
}

/// The largest face of an image file as a portrait that keeps its face crop, as the till's.
pub fn portrait_with_crop(pipeline: &Pipeline, path: &Path) -> greeter::gallery::PortraitInput {
    let frame = greeter::vision::decode::load(path, 50_000_000).unwrap();
    let face = pipeline
        .process(&frame)
        .unwrap()
        .largest()
        .cloned()
        .expect("a face");
    greeter::gallery::PortraitInput::from_frame(&frame, face, path.display().to_string())
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

pub fn new_customer(
    name: &str,
    portraits: Vec<greeter::gallery::PortraitInput>,
) -> greeter::gallery::NewCustomer {
    greeter::gallery::NewCustomer {
        name: name.into(),
        external_ref: None,
        consent_how: "signed at till 3".into(),
        consent_by: "test".into(),
        portraits,
        force: false,
    }
}

/// One folder per face of the demo photos (22 people), each with a portrait crop.
pub fn make_import_dir(dir: &Path) -> usize {
    let mut count = 0;
    for image in reference().images {
        let frame = greeter::vision::decode::load(&demo_photo(&image.file), 50_000_000).unwrap();
        for (i, face) in image.ssd.iter().enumerate() {
            let [x, y, w, h] = face.bbox;
            let (x0, y0) = ((x - w / 2.0).max(0.0) as u32, (y - h / 2.0).max(0.0) as u32);
            let (x1, y1) = (
                ((x + 1.5 * w) as u32).min(frame.width()),
                ((y + 1.5 * h) as u32).min(frame.height()),
            );
            let crop = image::imageops::crop_imm(&frame, x0, y0, x1 - x0, y1 - y0).to_image();
            let folder = dir.join(format!("{}_{i}", image.file.trim_end_matches(".jpg")));
            std::fs::create_dir_all(&folder).unwrap();
            crop.save(folder.join("portrait.jpg")).unwrap();
            count += 1;
        }
    }
    count
}

/// The JSON a successful `greeter --json …` run printed.
pub fn ok_json(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A PNG whose header claims 30000×30000: refused from the header alone.
pub fn huge_png_header() -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut ihdr = 30000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&30000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    // The start of a zlib stream: enough for a decoder to reach the pixel data.
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// A short H.264-free (MPEG-4 part 2) clip made by ffmpeg from a still photo: `seconds` long at
/// 25 fps, scaled to 960 px wide and panning slowly, so faces move between frames.
pub fn make_clip(dir: &Path, photo: &str, seconds: u32) -> PathBuf {
    let clip = dir.join(format!("{}.mp4", photo.trim_end_matches(".jpg")));
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-loop", "1", "-framerate", "25", "-t", &seconds.to_string()])
        .arg("-i")
        .arg(demo_photo(photo))
        .args([
            "-vf",
            "scale=960:-2,crop=880:iw*0.6:'40+30*sin(n/15)':0",
            "-c:v",
            "mpeg4",
            "-q:v",
            "3",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made no clip from {photo}");
    clip
}

/// A folder of labelled portraits (DIR/<name>/portrait.jpg): the face at `face` of a demo
/// photo's face-api reference boxes, cropped with a margin, for each (name, photo, face).
pub fn make_people_dir(dir: &Path, people: &[(&str, &str, usize)]) {
    let reference = reference();
    for &(name, photo, face) in people {
        let image = reference
            .images
            .iter()
            .find(|i| i.file == photo)
            .expect("a demo photo");
        let frame = greeter::vision::decode::load(&demo_photo(photo), 50_000_000).unwrap();
        let [x, y, w, h] = image.ssd[face].bbox;
        let (x0, y0) = ((x - w / 2.0).max(0.0) as u32, (y - h / 2.0).max(0.0) as u32);
        let (x1, y1) = (
            ((x + 1.5 * w) as u32).min(frame.width()),
            ((y + 1.5 * h) as u32).min(frame.height()),
        );
        let crop = image::imageops::crop_imm(&frame, x0, y0, x1 - x0, y1 - y0).to_image();
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        crop.save(folder.join("portrait.jpg")).unwrap();
    }
}
