//! The face pipeline: frame → detect → 68 landmarks → align → embed (+ quality).
//!
//! Each model family sits behind a small trait (`Detector`, `Landmarker`, `Embedder`) and owns
//! its pre- and post-processing; the manifest (`models/models.toml`) says which file is which.

pub mod align;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod fusion;
pub mod geometry;
pub mod install;
pub mod landmarks;
pub mod manifest;
pub mod preprocess;
pub mod quality;
pub mod session;
pub mod track;

use std::path::PathBuf;

use serde::Deserialize;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Serialize;

pub use align::AlignmentKind;
pub use detect::{BoxScoreDetector, Detection, Detector};
pub use embed::{Embedder, Embedding, EmbeddingNet, similarity};
pub use fusion::Mix;
pub use geometry::{BBox, Point};
pub use landmarks::{Landmark68Net, Landmarker};
pub use manifest::{Family, Manifest, ModelSpec};
pub use quality::{Quality, QualityRules};
pub use track::{Evidence, Track, TrackSettings, Tracker, Verdict};

use session::ModelLoader;

/// Where the runtime is and how many threads each network may use.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RuntimeSettings {
    pub onnxruntime: PathBuf,
    pub intra_threads: usize,
}

/// Which networks, and the rules applied to what they find.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VisionSettings {
    pub models_dir: PathBuf,
    pub detector: String,
    pub landmarks: String,
    /// one model, or a weighted fusion: `face_recognition*0.7 + faceres*0.3`
    pub embedder: String,
    /// for embedders whose manifest entry does not say how to cut their chip
    pub alignment: AlignmentKind,
    pub detection_threshold: f32,
    pub retry_padding: f32,
    pub max_image_pixels: u64,
    /// rules for portraits and uploaded stills
    pub quality: QualityRules,
    /// rules for camera and glasses frames
    pub camera_quality: QualityRules,
    /// how camera faces are followed across frames and decided on
    pub tracking: TrackSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error(
        "onnxruntime library not found at {path}: run `scripts/setup.sh` (or set ORT_DYLIB_PATH)"
    )]
    RuntimeMissing { path: PathBuf },
    #[error("cannot load onnxruntime from {path}")]
    RuntimeLoad {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("cannot read {path}: run `scripts/setup.sh` to fetch and convert the models")]
    ModelFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model manifest {path}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("no model {name:?} in the manifest (known: {known:?})")]
    UnknownModel { name: String, known: Vec<String> },
    #[error("model {name:?} is a {actual} model, not {expected}")]
    WrongFamily {
        name: String,
        expected: Family,
        actual: Family,
    },
    #[error(
        "model file {path} has sha256 {actual}, the manifest expects {expected}: re-run `scripts/setup.sh`"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("vision.embedder {text:?}: {why} (write `name` or `name*weight + name*weight`)")]
    Mix { text: String, why: String },
    #[error(
        "model {name:?} is in both models.toml and local-models.toml: give the local one another name"
    )]
    ShadowedModel { name: String },
    #[error("model {model} gave {got} values per face, the manifest says {expected}")]
    OutputSize {
        model: String,
        expected: usize,
        got: usize,
    },
    #[error("inference failed in model {model}")]
    Ort {
        model: String,
        #[source]
        source: ort::Error,
    },
}

/// The configured embedders' identity (names, checksums, weights) and fused length, from the
/// manifest alone: a gallery holds one mix's vectors and checks it without loading any network.
pub fn embedder_identity(vision: &VisionSettings) -> Result<(String, u32), VisionError> {
    Mix::parse(&vision.embedder)?.identity(&Manifest::load(&vision.models_dir)?)
}

/// The face in `bbox` with half its size around it, as a JPEG of at most `max_side` pixels a
/// side (`None`: as large as it is): enough for a detector to find the face again, and for a
/// person to see who it is. `None` when the box lies outside the frame.
pub fn face_crop_jpeg(
    frame: &RgbImage,
    bbox: BBox,
    max_side: Option<u32>,
) -> Result<Option<Vec<u8>>, image::ImageError> {
    let grown = BBox {
        x: bbox.x - bbox.width / 2.0,
        y: bbox.y - bbox.height / 2.0,
        width: bbox.width * 2.0,
        height: bbox.height * 2.0,
    };
    let Some(region) = grown.pixel_region(frame.width(), frame.height()) else {
        return Ok(None);
    };
    let crop = image::imageops::crop_imm(frame, region.x, region.y, region.width, region.height)
        .to_image();
    let crop = match max_side {
        Some(side) if region.width.max(region.height) > side => {
            image::DynamicImage::ImageRgb8(crop)
                .thumbnail(side, side)
                .into_rgb8()
        }
        _ => crop,
    };
    let mut jpeg = std::io::Cursor::new(Vec::new());
    crop.write_to(&mut jpeg, image::ImageFormat::Jpeg)?;
    Ok(Some(jpeg.into_inner()))
}

/// One face found in a frame.
#[derive(Debug, Clone, Serialize)]
pub struct FaceObservation {
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: Vec<Point>,
    pub embedding: Embedding,
    pub quality: Quality,
}

/// Wall time per stage for one frame.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    pub detect: Duration,
    pub landmarks: Duration,
    pub align: Duration,
    pub embed: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// best detector score first
    pub faces: Vec<FaceObservation>,
    pub times: StageTimes,
}

impl Analysis {
    /// The largest face: the subject of a portrait.
    pub fn largest(&self) -> Option<&FaceObservation> {
        self.faces
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
    }
}

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub detection_threshold: f32,
    /// border added on each side, as a fraction of the frame, when nothing is found in a still
    /// (0 = off)
    pub retry_padding: f32,
    pub alignment: AlignmentKind,
    pub quality: QualityRules,
    pub camera_quality: QualityRules,
}

/// What a frame is, which decides the rules it is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// a photo taken to be a portrait (enrolment, an uploaded photo, the command line): the
    /// face may fill it (padding retry), and the still-photo quality rules hold
    Still,
    /// a frame of a camera or of glasses: small, moving faces; no padding retry (an empty
    /// frame is the common case), and the camera quality rules
    Camera,
}

/// A face found, before any embedding: enough to track it and to judge it.
#[derive(Debug, Clone)]
pub struct FoundFace {
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: Vec<Point>,
    pub quality: Quality,
}

/// The faces of one frame, and the border the frame was given if the detector needed one.
pub struct Found {
    pub faces: Vec<FoundFace>,
    pub times: StageTimes,
    padded: Option<(RgbImage, Point)>,
}

pub struct Pipeline {
    detector: Box<dyn Detector>,
    landmarker: Box<dyn Landmarker>,
    /// in the mix's order, each with how its chip is cut; the first one's chip is the one
    /// whose quality is judged
    embedders: Vec<(Box<dyn Embedder>, AlignmentKind)>,
    mix: Mix,
    pub options: PipelineOptions,
}

impl Pipeline {
    /// Loads the three networks named in the settings (sha256-checked) once; the pipeline is
    /// `Send + Sync` and meant to be shared.
    pub fn load(vision: &VisionSettings, runtime: &RuntimeSettings) -> Result<Self, VisionError> {
        let manifest = Manifest::load(&vision.models_dir)?;
        let mix = Mix::parse(&vision.embedder)?;
        let loader = ModelLoader {
            library: &runtime.onnxruntime,
            models_dir: &vision.models_dir,
            manifest: &manifest,
            intra_threads: runtime.intra_threads,
        };
        Ok(Self {
            detector: Box::new(BoxScoreDetector::new(
                loader.load(&vision.detector, Family::BoxScoreDetector)?,
            )),
            landmarker: Box::new(Landmark68Net::new(
                loader.load(&vision.landmarks, Family::Landmarks68)?,
            )),
            embedders: mix
                .names()
                .map(|name| {
                    let net = EmbeddingNet::new(loader.load(name, Family::Embedding)?);
                    let alignment = AlignmentKind::for_model(net.spec(), vision.alignment);
                    Ok((Box::new(net) as Box<dyn Embedder>, alignment))
                })
                .collect::<Result<_, VisionError>>()?,
            mix,
            options: PipelineOptions {
                detection_threshold: vision.detection_threshold,
                retry_padding: vision.retry_padding,
                alignment: vision.alignment,
                quality: vision.quality.clone(),
                camera_quality: vision.camera_quality.clone(),
            },
        })
    }

    pub fn detector(&self) -> &dyn Detector {
        self.detector.as_ref()
    }

    pub fn landmarker(&self) -> &dyn Landmarker {
        self.landmarker.as_ref()
    }

    /// The first of the configured embedders.
    pub fn embedder(&self) -> &dyn Embedder {
        self.embedders[0].0.as_ref()
    }

    pub fn mix(&self) -> &Mix {
        &self.mix
    }

    /// Every face in a still, with landmarks, embedding and quality.
    pub fn process(&self, frame: &RgbImage) -> Result<Analysis, VisionError> {
        self.process_as(frame, Purpose::Still)
    }

    /// Every face in the frame, read as `purpose` says, each embedded.
    pub fn process_as(&self, frame: &RgbImage, purpose: Purpose) -> Result<Analysis, VisionError> {
        let _span =
            tracing::debug_span!("frame", width = frame.width(), height = frame.height()).entered();
        let mut found = self.find(frame, purpose)?;
        let all: Vec<usize> = (0..found.faces.len()).collect();
        let embeddings = self.embed(frame, &mut found, &all)?;
        let faces = found
            .faces
            .into_iter()
            .zip(embeddings)
            .filter_map(|(face, embedding)| {
                Some(FaceObservation {
                    bbox: face.bbox,
                    score: face.score,
                    landmarks: face.landmarks,
                    embedding: embedding?,
                    quality: face.quality,
                })
            })
            .collect::<Vec<_>>();
        tracing::debug!(faces = faces.len(), times = ?found.times, "frame processed");
        Ok(Analysis {
            faces,
            times: found.times,
        })
    }

    /// Detection, landmarks and quality: the cheap half, run on every analysed frame. Boxes
    /// and landmarks are in the frame's coordinates.
    pub fn find(&self, frame: &RgbImage, purpose: Purpose) -> Result<Found, VisionError> {
        let mut times = StageTimes::default();
        let started = Instant::now();
        let threshold = self.options.detection_threshold;
        let mut detections = self.detector.detect(frame, threshold)?;
        let mut padded = None;
        if detections.is_empty() && purpose == Purpose::Still && self.options.retry_padding > 0.0 {
            // A face filling the whole frame is invisible to these detectors; give it a border.
            let border = |extent: u32| (extent as f32 * self.options.retry_padding).round() as u32;
            let (pad_x, pad_y) = (border(frame.width()), border(frame.height()));
            let bordered = pad(frame, pad_x, pad_y);
            detections = self.detector.detect(&bordered, threshold)?;
            padded = Some((bordered, Point::new(pad_x as f32, pad_y as f32)));
        }
        times.detect = started.elapsed();
        let seen = padded.as_ref().map_or(frame, |(image, _)| image);

        let started = Instant::now();
        let boxes: Vec<BBox> = detections.iter().map(|d| d.bbox).collect();
        let landmarks = self.landmarker.landmarks(seen, &boxes)?;
        times.landmarks = started.elapsed();

        let started = Instant::now();
        let (net, alignment) = &self.embedders[0];
        let mut chip = vec![0.0; 3 * (net.spec().input_size as usize).pow(2)];
        let shift = padded.as_ref().map_or(Point::default(), |(_, s)| *s);
        let mut faces = Vec::with_capacity(detections.len());
        for (detection, points) in detections.into_iter().zip(landmarks) {
            let Some(points) = points else { continue };
            let quality = match purpose {
                Purpose::Still => {
                    if !align::align_into(seen, &points, *alignment, net.spec(), &mut chip) {
                        continue;
                    }
                    quality::assess(
                        &self.options.quality,
                        &detection.bbox,
                        detection.score,
                        &points,
                        quality::Sharpness::Chip(&chip, net.spec()),
                    )
                }
                Purpose::Camera => quality::assess(
                    &self.options.camera_quality,
                    &detection.bbox,
                    detection.score,
                    &points,
                    quality::Sharpness::Native(frame),
                ),
            };
            faces.push(FoundFace {
                bbox: detection.bbox.translate(-shift.x, -shift.y),
                score: detection.score,
                landmarks: points
                    .iter()
                    .map(|p| Point::new(p.x - shift.x, p.y - shift.y))
                    .collect(),
                quality,
            });
        }
        times.align = started.elapsed();
        Ok(Found {
            faces,
            times,
            padded,
        })
    }

    /// Embeddings of the faces at `which` (indices into `found.faces`), in that order, batched
    /// per embedder: the costly half, which a camera spends on the best faces of its tracks.
    /// `None` for a face with no pixels to cut a chip from.
    pub fn embed(
        &self,
        frame: &RgbImage,
        found: &mut Found,
        which: &[usize],
    ) -> Result<Vec<Option<Embedding>>, VisionError> {
        let started = Instant::now();
        let (seen, shift) = found
            .padded
            .as_ref()
            .map_or((frame, Point::default()), |(image, s)| (image, *s));
        // one batch of chips per embedder, face i at slot i of each
        let per_face: Vec<usize> = self
            .embedders
            .iter()
            .map(|(net, _)| 3 * (net.spec().input_size as usize).pow(2))
            .collect();
        let mut chips: Vec<Vec<f32>> = vec![Vec::new(); self.embedders.len()];
        let mut cut: Vec<bool> = Vec::with_capacity(which.len());
        let mut slots = 0;
        for &i in which {
            let points: Vec<Point> = found.faces[i]
                .landmarks
                .iter()
                .map(|p| Point::new(p.x + shift.x, p.y + shift.y))
                .collect();
            let mut ok = true;
            for (((net, alignment), batch), &n) in
                self.embedders.iter().zip(&mut chips).zip(&per_face)
            {
                batch.resize(n * (slots + 1), 0.0);
                ok &= align::align_into(
                    seen,
                    &points,
                    *alignment,
                    net.spec(),
                    &mut batch[n * slots..],
                );
            }
            cut.push(ok);
            if ok {
                slots += 1;
            }
        }
        found.times.align += started.elapsed();

        let started = Instant::now();
        let mut pieces = Vec::with_capacity(self.embedders.len());
        for (((net, _), batch), &n) in self.embedders.iter().zip(&mut chips).zip(&per_face) {
            batch.truncate(n * slots);
            pieces.push(if slots == 0 {
                Vec::new()
            } else {
                net.embed(slots, batch)?
            });
        }
        let mut slot = 0;
        let embeddings = cut
            .into_iter()
            .map(|ok| {
                ok.then(|| {
                    let parts: Vec<&[f32]> = pieces.iter().map(|p| p[slot].as_slice()).collect();
                    slot += 1;
                    self.mix.fuse(&parts)
                })
            })
            .collect();
        found.times.embed += started.elapsed();
        Ok(embeddings)
    }
}

fn pad(frame: &RgbImage, pad_x: u32, pad_y: u32) -> RgbImage {
    let mut out = RgbImage::new(frame.width() + 2 * pad_x, frame.height() + 2 * pad_y);
    image::imageops::replace(&mut out, frame, pad_x as i64, pad_y as i64);
    out
}
