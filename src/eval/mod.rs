//! Verification and identification accuracy on a labelled folder (one sub-folder per person).

pub mod open_set;

use serde::Serialize;

use crate::vision::{Embedding, similarity};

/// One labelled photo and the embedding of its largest face (`None`: no face found).
pub struct Sample {
    pub person: String,
    pub file: String,
    pub embedding: Option<Embedding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    pub far: f64,
    pub tar: f64,
    /// accept when similarity ≥ threshold
    pub threshold: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub people: usize,
    pub images: usize,
    pub faces_not_found: Vec<String>,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    pub roc_auc: f64,
    pub eer: f64,
    pub eer_threshold: f32,
    pub operating_points: Vec<OperatingPoint>,
    /// nearest other photo is the same person (probes whose person has another found photo)
    pub rank1: f64,
    pub rank1_probes: usize,
}

pub fn evaluate(samples: &[Sample], fars: &[f64]) -> Report {
    let found: Vec<(&str, &Embedding)> = samples
        .iter()
        .filter_map(|s| Some((s.person.as_str(), s.embedding.as_ref()?)))
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, (pa, ea)) in found.iter().enumerate() {
        for (pb, eb) in &found[i + 1..] {
            let score = similarity(ea, eb);
            if pa == pb {
                genuine.push(score)
            } else {
                impostor.push(score)
            }
        }
    }
    genuine.sort_by(f32::total_cmp);
    impostor.sort_by(f32::total_cmp);
    let (eer, eer_threshold) = equal_error_rate(&genuine, &impostor);
    let (rank1, rank1_probes) = rank1(&found);
    let mut people: Vec<&str> = samples.iter().map(|s| s.person.as_str()).collect();
    people.dedup();
    Report {
        people: people.len(),
        images: samples.len(),
        faces_not_found: samples
            .iter()
            .filter(|s| s.embedding.is_none())
            .map(|s| s.file.clone())
            .collect(),
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        roc_auc: roc_auc(&genuine, &impostor),
        eer,
        eer_threshold,
        operating_points: fars
            .iter()
            .map(|&far| operating_point(&genuine, &impostor, far))
            .collect(),
        rank1,
        rank1_probes,
    }
}

/// Fraction of `sorted` scores at or above `t`.
fn fraction_at_least(sorted: &[f32], t: f32) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let below = sorted.partition_point(|&s| s < t);
    (sorted.len() - below) as f64 / sorted.len() as f64
}

/// P(genuine > impostor), ties counting half (the Mann–Whitney statistic).
pub fn roc_auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    let mut wins = 0.0;
    for &g in genuine {
        let below = impostor.partition_point(|&s| s < g);
        let ties = impostor[below..].partition_point(|&s| s <= g);
        wins += below as f64 + 0.5 * ties as f64;
    }
    wins / (genuine.len() as f64 * impostor.len() as f64)
}

/// The threshold among observed scores where false accepts and false rejects are closest,
/// and their mean there. Inputs sorted ascending.
pub fn equal_error_rate(genuine: &[f32], impostor: &[f32]) -> (f64, f32) {
    let mut best = (f64::INFINITY, f64::NAN, f32::NAN);
    for &t in genuine.iter().chain(impostor) {
        let far = fraction_at_least(impostor, t);
        let frr = 1.0 - fraction_at_least(genuine, t);
        let gap = (far - frr).abs();
        if gap < best.0 {
            best = (gap, (far + frr) / 2.0, t);
        }
    }
    (best.1, best.2)
}

/// The lowest threshold whose false-accept rate is at most `far`, and the true-accept rate
/// there. Inputs sorted ascending.
pub fn operating_point(genuine: &[f32], impostor: &[f32], far: f64) -> OperatingPoint {
    let allowed = (far * impostor.len() as f64).floor() as usize;
    let threshold = if allowed >= impostor.len() {
        f32::NEG_INFINITY
    } else {
        // Just above the (allowed+1)-th highest impostor score.
        let score = impostor[impostor.len() - 1 - allowed];
        f32::from_bits(if score >= 0.0 {
            score.to_bits() + 1
        } else {
            score.to_bits() - 1
        })
    };
    OperatingPoint {
        far,
        tar: fraction_at_least(genuine, threshold),
        threshold,
    }
}

fn rank1(found: &[(&str, &Embedding)]) -> (f64, usize) {
    let (mut hits, mut probes) = (0, 0);
    for (i, (person, e)) in found.iter().enumerate() {
        if !found
            .iter()
            .enumerate()
            .any(|(j, (p, _))| j != i && p == person)
        {
            continue;
        }
        probes += 1;
        let nearest = found
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .max_by(|(_, (_, a)), (_, (_, b))| similarity(e, a).total_cmp(&similarity(e, b)))
            .map(|(_, (p, _))| *p);
        if nearest == Some(*person) {
            hits += 1;
        }
    }
    (
        if probes == 0 {
            f64::NAN
        } else {
            hits as f64 / probes as f64
        },
        probes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_give_auc_one_and_zero_eer() {
        let genuine = [0.8, 0.9, 0.95];
        let impostor = [0.1, 0.2, 0.3, 0.5];
        assert_eq!(roc_auc(&genuine, &impostor), 1.0);
        let (eer, t) = equal_error_rate(&genuine, &impostor);
        assert_eq!(eer, 0.0);
        assert!(t > 0.5 && t <= 0.8);
    }

    #[test]
    fn overlapping_scores() {
        let genuine = [0.3, 0.6, 0.9];
        let impostor = [0.1, 0.4, 0.7];
        // pairs won: 0.3>0.1, 0.6>0.1,0.4, 0.9>all → 6 of 9
        assert!((roc_auc(&genuine, &impostor) - 6.0 / 9.0).abs() < 1e-12);
        assert!((roc_auc(&[0.5], &[0.5]) - 0.5).abs() < 1e-12);
        let (eer, _) = equal_error_rate(&genuine, &impostor);
        assert!((eer - 1.0 / 3.0).abs() < 1e-9, "{eer}");
    }

    #[test]
    fn operating_point_never_exceeds_the_far() {
        let impostor: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let genuine = [0.5, 0.995, 0.9985];
        let op = operating_point(&genuine, &impostor, 1e-2);
        assert!(fraction_at_least(&impostor, op.threshold) <= 1e-2);
        assert!((op.threshold - 0.99).abs() < 1e-3, "{op:?}");
        assert!((op.tar - 2.0 / 3.0).abs() < 1e-12, "{op:?}");
        // FAR 1e-3 of 1000 impostors allows exactly one false accept.
        let op = operating_point(&genuine, &impostor, 1e-3);
        assert!((op.tar - 1.0 / 3.0).abs() < 1e-12, "{op:?}");
    }

    #[test]
    fn report_counts_pairs_rank1_and_missing_faces() {
        let s = |person: &str, file: &str, e: Option<[f32; 2]>| Sample {
            person: person.into(),
            file: file.into(),
            embedding: e.map(|v| crate::vision::embed::l2_normalised(&v)),
        };
        let samples = vec![
            s("a", "a1", Some([1.0, 0.0])),
            s("a", "a2", Some([0.9, 0.1])),
            s("b", "b1", Some([0.0, 1.0])),
            s("b", "b2", Some([0.85, 0.2])), // closer to a's photos: a rank-1 miss
            s("c", "c1", None),
        ];
        let r = evaluate(&samples, &[1e-2]);
        assert_eq!(
            (r.people, r.images, r.genuine_pairs, r.impostor_pairs),
            (3, 5, 2, 4)
        );
        assert_eq!(r.faces_not_found, vec!["c1".to_string()]);
        assert_eq!(r.rank1_probes, 4);
        // a1, a2 and b1 find their own person; b2's nearest is a2.
        assert_eq!(r.rank1, 0.75);
    }
}
