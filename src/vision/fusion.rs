//! Several embedders at once: `vision.embedder = "face_recognition*0.7 + faceres*0.3"`.
//!
//! Each net's L2-normalised vector is scaled by √weight and the pieces are concatenated. With
//! weights summing to 1 the result has unit length again, and its inner product with another
//! fused vector is the weighted sum of the nets' cosines: one faiss inner-product index scores
//! the fusion, and every piece can be recovered (divide by √weight).

use std::fmt;

use super::VisionError;
use super::embed::Embedding;
use super::manifest::Manifest;

#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// model name and weight; weights are positive and sum to 1
    pub parts: Vec<(String, f32)>,
}

impl Mix {
    /// `name` or `name*weight + name*weight …`; weights are rescaled to sum to 1.
    pub fn parse(text: &str) -> Result<Self, VisionError> {
        let bad = |why: &str| VisionError::Mix {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let mut parts = Vec::new();
        for term in text.split('+') {
            let (name, weight) = match term.split_once('*') {
                Some((name, weight)) => (
                    name.trim(),
                    weight
                        .trim()
                        .parse::<f32>()
                        .map_err(|_| bad("a weight is not a number"))?,
                ),
                None => (term.trim(), 1.0),
            };
            if name.is_empty() {
                return Err(bad("a model name is empty"));
            }
            if !(weight.is_finite() && weight > 0.0) {
                return Err(bad("weights must be positive"));
            }
            if parts.iter().any(|(n, _)| n == name) {
                return Err(bad("a model is named twice"));
            }
            parts.push((name.to_owned(), weight));
        }
        let total: f32 = parts.iter().map(|(_, w)| w).sum();
        for (_, w) in &mut parts {
            *w /= total;
        }
        Ok(Self { parts })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|(n, _)| n.as_str())
    }

    /// What made a gallery's vectors, from the manifest alone: `name@sha` for one net (so a
    /// gallery made before fusion existed still opens), `name@sha*w + …` for several; and the
    /// fused length.
    pub fn identity(&self, manifest: &Manifest) -> Result<(String, u32), VisionError> {
        let mut ids = Vec::new();
        let mut dimensions = 0;
        for (name, weight) in &self.parts {
            let spec = manifest.get(name)?;
            let id = format!("{name}@{}", &spec.sha256[..spec.sha256.len().min(16)]);
            ids.push(if self.parts.len() == 1 {
                id
            } else {
                format!("{id}*{weight:.3}")
            });
            dimensions += spec.dimensions.unwrap_or(128) as u32;
        }
        Ok((ids.join("+"), dimensions))
    }

    /// One fused vector from each net's normalised vector, in the mix's order.
    pub fn fuse(&self, pieces: &[&[f32]]) -> Embedding {
        pieces
            .iter()
            .zip(&self.parts)
            .flat_map(|(piece, (_, w))| {
                let scale = w.sqrt();
                piece.iter().map(move |v| v * scale)
            })
            .collect()
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .parts
            .iter()
            .map(|(n, w)| format!("{n}*{w:.2}"))
            .collect();
        f.write_str(&terms.join(" + "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::embed::{l2_normalised, similarity};

    #[test]
    fn one_name_is_a_mix_of_one() {
        let mix = Mix::parse("face_recognition").unwrap();
        assert_eq!(mix.parts, vec![("face_recognition".to_owned(), 1.0)]);
    }

    #[test]
    fn weights_are_rescaled_and_bad_mixes_refused() {
        let mix = Mix::parse(" a*3 + b * 1 ").unwrap();
        assert_eq!(mix.parts, vec![("a".into(), 0.75), ("b".into(), 0.25)]);
        for bad in ["", "a*x", "a*0", "a*-1", "a + a", "a + "] {
            assert!(Mix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_fused_inner_product_is_the_weighted_sum_of_cosines() {
        let mix = Mix::parse("a*0.7 + b*0.3").unwrap();
        let (a1, a2) = (
            l2_normalised(&[1.0, 2.0, 3.0]),
            l2_normalised(&[3.0, 1.0, 0.0]),
        );
        let (b1, b2) = (l2_normalised(&[1.0, -1.0]), l2_normalised(&[2.0, 1.0]));
        let (f1, f2) = (mix.fuse(&[&a1, &b1]), mix.fuse(&[&a2, &b2]));
        let want = 0.7 * similarity(&a1, &a2) + 0.3 * similarity(&b1, &b2);
        assert!((similarity(&f1, &f2) - want).abs() < 1e-6);
        assert!((similarity(&f1, &f1) - 1.0).abs() < 1e-6, "not unit length");
    }
}
