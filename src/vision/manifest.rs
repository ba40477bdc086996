//! The model registry as data: `models/models.toml` says, for every ONNX file, what it is,
//! its checksum and how its input is normalised. Nothing is guessed from tensor shapes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::VisionError;

pub const MANIFEST_FILE: &str = "models.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub source: Source,
    pub models: BTreeMap<String, ModelSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Source {
    pub package: String,
    pub version: String,
    pub integrity: String,
    pub licence: String,
}

/// What a network does decides which Rust module runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Outputs `boxes [1,N,4]` (x0,y0,x1,y1 relative to the padded square) and `scores [1,N]`.
    BoxScoreDetector,
    /// Outputs `[N,136]`: 68 (x,y) pairs as fractions of the padded square crop.
    Landmarks68,
    /// Outputs `[N,D]` face descriptors.
    Embedding,
}

/// How a non-square image region becomes the network's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// zeros after the image (bottom/right), as face-api's detectors do
    BottomRight,
    /// zeros on both sides, the larger half after, as face-api's face nets do
    Centered,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    pub file: String,
    pub sha256: String,
    pub family: Family,
    /// Input is `[batch, 3, input_size, input_size]`, RGB, NCHW, `(pixel - mean) / std`.
    pub input_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub padding: Padding,
    pub output: String,
    pub licence: String,
    /// Detectors: IoU above which the lower-scored box is suppressed.
    pub nms_iou: Option<f32>,
    /// Detectors: most boxes kept after NMS.
    pub max_detections: Option<usize>,
    /// Embedders: length of the descriptor.
    pub dimensions: Option<usize>,
}

impl Manifest {
    pub fn load(models_dir: &Path) -> Result<Self, VisionError> {
        let path = models_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| VisionError::ModelFile {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| VisionError::Manifest { path, source })
    }

    pub fn get(&self, name: &str) -> Result<&ModelSpec, VisionError> {
        self.models
            .get(name)
            .ok_or_else(|| VisionError::UnknownModel {
                name: name.to_owned(),
                known: self.models.keys().cloned().collect(),
            })
    }
}

impl ModelSpec {
    pub fn path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.file)
    }

    /// Reads the model file and refuses it unless its sha256 is the one in the manifest.
    pub fn read_verified(&self, models_dir: &Path) -> Result<Vec<u8>, VisionError> {
        let path = self.path(models_dir);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|source| VisionError::ModelFile {
                path: path.clone(),
                source,
            })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&self.sha256) {
            return Err(VisionError::Checksum {
                path,
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn require_family(&self, name: &str, family: Family) -> Result<(), VisionError> {
        if self.family == family {
            Ok(())
        } else {
            Err(VisionError::WrongFamily {
                name: name.to_owned(),
                expected: family,
                actual: self.family,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
        [source]
        package = "p"
        version = "1"
        integrity = "sha512-x"
        licence = "MIT"
        [models.m]
        file = "m.onnx"
        sha256 = "SHA"
        family = "embedding"
        input_size = 150
        mean = [1.0, 2.0, 3.0]
        std = [255.0, 255.0, 255.0]
        padding = "centered"
        output = "descriptor"
        licence = "MIT"
        dimensions = 128
    "#;

    fn manifest_with_file(content: &[u8]) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let sha = hex::encode(Sha256::digest(content));
        std::fs::write(dir.path().join("m.onnx"), content).unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), SPEC.replace("SHA", &sha)).unwrap();
        let manifest = Manifest::load(dir.path()).unwrap();
        (dir, manifest)
    }

    #[test]
    fn verified_read_accepts_matching_checksum() {
        let (dir, manifest) = manifest_with_file(b"model bytes");
        let bytes = manifest
            .get("m")
            .unwrap()
            .read_verified(dir.path())
            .unwrap();
        assert_eq!(bytes, b"model bytes");
    }

    #[test]
    fn tampered_file_is_named_in_the_error() {
        let (dir, manifest) = manifest_with_file(b"model bytes");
        std::fs::write(dir.path().join("m.onnx"), b"other bytes").unwrap();
        let err = manifest
            .get("m")
            .unwrap()
            .read_verified(dir.path())
            .unwrap_err();
        assert!(matches!(err, VisionError::Checksum { .. }));
        assert!(err.to_string().contains("m.onnx"), "{err}");
    }

    #[test]
    fn unknown_model_lists_the_known_ones() {
        let (_dir, manifest) = manifest_with_file(b"x");
        let err = manifest.get("nope").unwrap_err();
        assert!(err.to_string().contains("\"m\""), "{err}");
    }

    #[test]
    fn family_mismatch_is_refused() {
        let (_dir, manifest) = manifest_with_file(b"x");
        let spec = manifest.get("m").unwrap();
        assert!(spec.require_family("m", Family::Embedding).is_ok());
        assert!(spec.require_family("m", Family::Landmarks68).is_err());
    }
}
