//! The model registry as data: `models/models.toml` says, for every ONNX file, what it is,
//! its checksum and how its input is normalised. Nothing is guessed from tensor shapes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::VisionError;
use super::align::AlignmentKind;

pub const MANIFEST_FILE: &str = "models.toml";
/// Models a store added itself (`greeter models add`): same entries, no `[source]`.
pub const LOCAL_MANIFEST_FILE: &str = "local-models.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub source: Source,
    /// further npm packages that some models are converted from
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    pub models: BTreeMap<String, ModelSpec>,
}

/// `local-models.toml`: the models a store installed, each with its own licence line.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LocalManifest {
    #[serde(default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Outputs `boxes [1,N,4]` (x0,y0,x1,y1 relative to the padded square) and `scores [1,N]`.
    BoxScoreDetector,
    /// Outputs `[N,136]`: 68 (x,y) pairs as fractions of the padded square crop.
    Landmarks68,
    /// Outputs `[N,D]` face descriptors from a chip aligned as `vision.alignment` says
    /// (face-api's descriptor net).
    Embedding,
    /// Outputs `[N,D]` face descriptors from a chip aligned on the standard ArcFace 5-point
    /// template (eye centres, nose tip, mouth corners; defined at 112 px, scaled to
    /// `input_size`): InsightFace-style recognizers.
    #[serde(rename = "arcface112")]
    Arcface112,
}

impl Family {
    pub fn embeds(self) -> bool {
        matches!(self, Family::Embedding | Family::Arcface112)
    }
}

/// As spelled in the manifest and on the command line.
impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::BoxScoreDetector => "box-score-detector",
            Family::Landmarks68 => "landmarks68",
            Family::Embedding => "embedding",
            Family::Arcface112 => "arcface112",
        })
    }
}

/// The order of the colour planes a network expects (mean and std are in that order too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channels {
    #[default]
    Rgb,
    /// OpenCV-trained nets (caffe-style preprocessing)
    Bgr,
}

impl Channels {
    /// The input plane that RGB channel `rgb` goes to (a swap is its own inverse).
    pub fn plane_of(self, rgb: usize) -> usize {
        match self {
            Channels::Rgb => rgb,
            Channels::Bgr => 2 - rgb,
        }
    }
}

/// How a non-square image region becomes the network's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// zeros after the image (bottom/right), as face-api's detectors do
    BottomRight,
    /// zeros on both sides, the larger half after, as face-api's face nets do
    Centered,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelSpec {
    pub file: String,
    pub sha256: String,
    pub family: Family,
    /// Input is `[batch, 3, input_size, input_size]`, NCHW, `(pixel - mean) / std`, planes in
    /// `channels` order.
    pub input_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default)]
    pub channels: Channels,
    /// Embedders: how the chip is cut (default: the family's, or `vision.alignment`).
    #[serde(default)]
    pub alignment: Option<AlignmentKind>,
    pub padding: Padding,
    pub output: String,
    pub licence: String,
    /// Detectors: IoU above which the lower-scored box is suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nms_iou: Option<f32>,
    /// Detectors: most boxes kept after NMS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_detections: Option<usize>,
    /// Embedders: length of the descriptor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
}

impl Manifest {
    /// The shipped manifest plus the store's own models, if it added any.
    pub fn load(models_dir: &Path) -> Result<Self, VisionError> {
        let mut manifest: Manifest = read_toml(&models_dir.join(MANIFEST_FILE))?;
        let local = LocalManifest::load(models_dir)?;
        for (name, spec) in local.models {
            if manifest.models.contains_key(&name) {
                return Err(VisionError::ShadowedModel { name });
            }
            manifest.models.insert(name, spec);
        }
        Ok(manifest)
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

impl LocalManifest {
    pub fn load(models_dir: &Path) -> Result<Self, VisionError> {
        let path = models_dir.join(LOCAL_MANIFEST_FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        read_toml(&path)
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, VisionError> {
    let text = std::fs::read_to_string(path).map_err(|source| VisionError::ModelFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| VisionError::Manifest {
        path: path.to_owned(),
        source,
    })
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

    /// An embedder spec with identity normalisation, for tests of the pixel paths.
    #[cfg(test)]
    pub(crate) fn plain(input_size: u32, padding: Padding) -> ModelSpec {
        ModelSpec {
            file: String::new(),
            sha256: String::new(),
            family: Family::Embedding,
            input_size,
            mean: [0.0; 3],
            std: [1.0; 3],
            channels: Channels::Rgb,
            alignment: None,
            padding,
            output: String::new(),
            licence: String::new(),
            nms_iou: None,
            max_detections: None,
            dimensions: None,
        }
    }

    pub fn require_family(&self, name: &str, family: Family) -> Result<(), VisionError> {
        // Any embedder family fits an embedder slot: the family only says how to align.
        if self.family == family || (self.family.embeds() && family.embeds()) {
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
