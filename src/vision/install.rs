//! `greeter models add`: a store installs a recognizer it holds a licence for. The file is
//! copied into the models folder, checked by running it, and recorded with its sha256 in
//! `local-models.toml`, so it is verified on every load like the shipped models.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::embed::{Embedder, EmbeddingNet, similarity};
use super::manifest::{
    Channels, Family, LOCAL_MANIFEST_FILE, LocalManifest, Manifest, ModelSpec, Padding,
};
use super::session::ModelLoader;
use super::{RuntimeSettings, VisionError};

/// What the store says about the model; the rest is measured.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub name: String,
    pub family: Family,
    pub input_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub channels: Channels,
    pub licence: String,
}

#[derive(Debug, Serialize)]
pub struct Installed {
    pub name: String,
    pub file: PathBuf,
    pub sha256: String,
    pub dimensions: usize,
    /// `None`: the graph takes any batch
    pub fixed_batch: Option<usize>,
    pub ms_per_face: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("model name {0:?}: use letters, digits, '_' or '-'")]
    BadName(String),
    #[error("a model named {0:?} is already installed")]
    Exists(String),
    #[error("only embedders can be added (family embedding or arcface112), not {0}")]
    NotAnEmbedder(Family),
    #[error("std must be non-zero")]
    ZeroStd,
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the model does not run as an embedder of family {family} with {size}x{size} input")]
    DoesNotRun {
        family: Family,
        size: u32,
        #[source]
        source: VisionError,
    },
    #[error(
        "the model gives the same vector for different faces (cosine {0:.4}): it is broken or its input settings are wrong"
    )]
    Collapsed(f32),
    #[error("cannot write {LOCAL_MANIFEST_FILE}")]
    Manifest(#[source] toml::ser::Error),
    #[error(transparent)]
    Vision(#[from] VisionError),
}

pub fn install(
    models_dir: &Path,
    runtime: &RuntimeSettings,
    source: &Path,
    new: NewModel,
) -> Result<Installed, InstallError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if new.name.is_empty() || !new.name.chars().all(valid) {
        return Err(InstallError::BadName(new.name));
    }
    if !new.family.embeds() {
        return Err(InstallError::NotAnEmbedder(new.family));
    }
    if new.std.contains(&0.0) {
        return Err(InstallError::ZeroStd);
    }
    let mut manifest = Manifest::load(models_dir)?;
    if manifest.models.contains_key(&new.name) {
        return Err(InstallError::Exists(new.name));
    }
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| InstallError::Io {
            action,
            path,
            source,
        }
    };
    let bytes = std::fs::read(source).map_err(io("read", source))?;
    let mut spec = ModelSpec {
        file: format!("{}.onnx", new.name),
        sha256: hex::encode(Sha256::digest(&bytes)),
        family: new.family,
        input_size: new.input_size,
        mean: new.mean,
        std: new.std,
        channels: new.channels,
        alignment: None,
        padding: Padding::Centered,
        output: "descriptor [N,D]; greeter L2-normalises it".into(),
        licence: new.licence,
        nms_iou: None,
        max_detections: None,
        dimensions: None,
    };
    let target = models_dir.join(&spec.file);
    crate::files::write_atomically(&target, &bytes).map_err(io("write", &target))?;
    let checked = check(models_dir, runtime, &mut manifest, &new.name, &spec);
    let (dimensions, fixed_batch, ms_per_face) = match checked {
        Ok(found) => found,
        Err(e) => {
            let _ = std::fs::remove_file(&target);
            return Err(e);
        }
    };
    spec.dimensions = Some(dimensions);
    let mut local = LocalManifest::load(models_dir)?;
    local.models.insert(new.name.clone(), spec.clone());
    let text = toml::to_string_pretty(&local).map_err(InstallError::Manifest)?;
    let path = models_dir.join(LOCAL_MANIFEST_FILE);
    crate::files::write_atomically(&path, text.as_bytes()).map_err(io("write", &path))?;
    Ok(Installed {
        name: new.name,
        file: target,
        sha256: spec.sha256,
        dimensions,
        fixed_batch,
        ms_per_face,
    })
}

/// Runs the model on two different synthetic chips: it must load, give vectors of one length,
/// and tell the chips apart.
fn check(
    models_dir: &Path,
    runtime: &RuntimeSettings,
    manifest: &mut Manifest,
    name: &str,
    spec: &ModelSpec,
) -> Result<(usize, Option<usize>, f64), InstallError> {
    manifest.models.insert(name.to_owned(), spec.clone());
    let does_not_run = |source| InstallError::DoesNotRun {
        family: spec.family,
        size: spec.input_size,
        source,
    };
    let loader = ModelLoader {
        library: &runtime.onnxruntime,
        models_dir,
        manifest,
        intra_threads: runtime.intra_threads,
    };
    let model = loader.load(name, Family::Embedding).map_err(does_not_run)?;
    let fixed_batch = model.max_batch;
    let net = EmbeddingNet::new(model);
    let size = spec.input_size as usize;
    let plane = size * size;
    // a left-to-right ramp and a top-to-bottom one, normalised as the model expects
    let chip = |vertical: bool| -> Vec<f32> {
        (0..3 * plane)
            .map(|i| {
                let (c, p) = (i / plane, i % plane);
                let t = if vertical { p / size } else { p % size } as f32 / size as f32;
                (255.0 * t - spec.mean[c]) / spec.std[c]
            })
            .collect()
    };
    let input = [chip(false), chip(true)].concat();
    let started = Instant::now();
    let vectors = net.embed(2, &input).map_err(does_not_run)?;
    let ms_per_face = started.elapsed().as_secs_f64() * 1000.0 / 2.0;
    let cosine = similarity(&vectors[0], &vectors[1]);
    if !cosine.is_finite() || cosine > 0.9999 {
        return Err(InstallError::Collapsed(cosine));
    }
    Ok((vectors[0].len(), fixed_batch, ms_per_face))
}
