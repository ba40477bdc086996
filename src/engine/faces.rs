//! From bytes to faces: decoding under the pixel limit, the pipeline, per-stage timings, and the
//! largest face of a photo as a portrait. Every path that reads a face (recognition, enrolment,
//! the till, the CLI) reads it here, with the same limits.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use image::RgbImage;

use super::EngineError;
use crate::gallery::PortraitInput;
use crate::vision::decode;
use crate::vision::{Embedding, FaceObservation, Found, Pipeline, Purpose, StageTimes};

/// An image and where it came from (a form field's file name, a camera, a path).
pub struct Photo {
    pub origin: String,
    pub bytes: Bytes,
}

impl Photo {
    /// A file from disk, named by its path.
    pub fn read(path: &Path) -> Result<Photo, EngineError> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Photo {
            origin: path.display().to_string(),
            bytes: bytes.into(),
        })
    }
}

pub struct FaceReader {
    pipeline: Pipeline,
    max_image_pixels: u64,
}

impl FaceReader {
    pub fn new(pipeline: Pipeline, max_image_pixels: u64) -> Self {
        FaceReader {
            pipeline,
            max_image_pixels,
        }
    }

    pub fn decode(&self, origin: &str, bytes: &[u8]) -> Result<RgbImage, EngineError> {
        let started = Instant::now();
        let frame =
            decode::decode(bytes, self.max_image_pixels).map_err(|source| EngineError::Decode {
                origin: origin.to_owned(),
                source,
            })?;
        record_stage("decode", started.elapsed());
        Ok(frame)
    }

    /// Every face in the frame, largest first.
    pub fn analyse(
        &self,
        frame: &RgbImage,
        purpose: Purpose,
    ) -> Result<Vec<FaceObservation>, EngineError> {
        let analysis = self.pipeline.process_as(frame, purpose)?;
        record_times(&analysis.times);
        let mut faces = analysis.faces;
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(faces)
    }

    /// Faces, landmarks and quality, no embedding yet (see `Pipeline::find`).
    pub fn find(&self, frame: &RgbImage, purpose: Purpose) -> Result<Found, EngineError> {
        Ok(self.pipeline.find(frame, purpose)?)
    }

    /// Embeddings of the chosen faces; the frame's stage times are recorded.
    pub fn embed(
        &self,
        frame: &RgbImage,
        found: &mut Found,
        which: &[usize],
    ) -> Result<Vec<Option<Embedding>>, EngineError> {
        let embeddings = self.pipeline.embed(frame, found, which)?;
        record_times(&found.times);
        Ok(embeddings)
    }

    /// The largest face of a photo, and the decoded photo.
    pub fn largest_face(&self, photo: &Photo) -> Result<(RgbImage, FaceObservation), EngineError> {
        let frame = self.decode(&photo.origin, &photo.bytes)?;
        let face = self
            .analyse(&frame, Purpose::Still)?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::NoFace {
                origin: photo.origin.clone(),
            })?;
        Ok((frame, face))
    }

    /// The largest face of a photo as a portrait, with its crop kept for re-embedding.
    pub fn portrait(&self, photo: &Photo) -> Result<PortraitInput, EngineError> {
        let (frame, face) = self.largest_face(photo)?;
        Ok(PortraitInput::from_frame(
            &frame,
            face,
            photo.origin.clone(),
        ))
    }

    /// Each photo's largest face; at least one photo.
    pub fn portraits(&self, photos: &[Photo]) -> Result<Vec<PortraitInput>, EngineError> {
        if photos.is_empty() {
            return Err(crate::gallery::Refusal::NoPortraits.into());
        }
        photos.iter().map(|p| self.portrait(p)).collect()
    }
}

fn record_times(times: &StageTimes) {
    record_stage("detect", times.detect);
    record_stage("landmarks", times.landmarks);
    record_stage("align", times.align);
    record_stage("embed", times.embed);
}

pub(super) fn record_stage(stage: &'static str, elapsed: Duration) {
    metrics::histogram!("greeter_stage_seconds", "stage" => stage).record(elapsed.as_secs_f64());
}
