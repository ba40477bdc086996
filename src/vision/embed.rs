//! Face embedders: an aligned chip → an L2-normalised descriptor.

use super::VisionError;
use super::manifest::ModelSpec;
use super::session::Model;

pub type Embedding = Vec<f32>;

pub trait Embedder: Send + Sync {
    fn name(&self) -> &str;
    /// Input size and normalisation the aligner must produce.
    fn spec(&self) -> &ModelSpec;
    /// One embedding per chip of the NCHW `input` (`batch` chips), L2-normalised.
    fn embed(&self, batch: usize, input: &[f32]) -> Result<Vec<Embedding>, VisionError>;
}

/// Any descriptor net the manifest lists: face-api's ResNet (dlib's
/// `dlib_face_recognition_resnet_model_v1`), or an ArcFace-class recognizer a store installed.
pub struct EmbeddingNet {
    model: Model,
}

impl EmbeddingNet {
    pub fn new(model: Model) -> Self {
        Self { model }
    }
}

impl Embedder for EmbeddingNet {
    fn name(&self) -> &str {
        &self.model.name
    }

    fn spec(&self) -> &ModelSpec {
        &self.model.spec
    }

    fn embed(&self, batch: usize, input: &[f32]) -> Result<Vec<Embedding>, VisionError> {
        if batch == 0 {
            return Ok(Vec::new());
        }
        let per_chip = input.len() / batch;
        let step = self.model.max_batch.unwrap_or(batch).min(batch);
        let mut embeddings = Vec::with_capacity(batch);
        for chips in input.chunks(per_chip * step) {
            let n = chips.len() / per_chip;
            let raw = self.model.run(n, chips, |outputs| {
                let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
                Ok(values.to_vec())
            })?;
            let got = raw.len() / n;
            if let Some(expected) = self.model.spec.dimensions
                && expected != got
            {
                return Err(VisionError::OutputSize {
                    model: self.model.name.clone(),
                    expected,
                    got,
                });
            }
            embeddings.extend(raw.chunks_exact(got).map(l2_normalised));
        }
        Ok(embeddings)
    }
}

pub fn l2_normalised(v: &[f32]) -> Embedding {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter().map(|x| x / norm).collect()
}

/// Cosine similarity of two L2-normalised embeddings.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_vectors_have_unit_length_and_cosine() {
        let a = l2_normalised(&[3.0, 4.0]);
        assert_eq!(a, vec![0.6, 0.8]);
        assert!((similarity(&a, &a) - 1.0).abs() < 1e-6);
        assert!(similarity(&a, &l2_normalised(&[-4.0, 3.0])).abs() < 1e-6);
    }
}
