//! From nearest portraits to a decision about a customer: best portrait per customer, then
//! accept only a clear winner (score ≥ threshold and ahead of the runner-up by the margin).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MatchRules {
    /// cosine similarity at or above which a face is that customer
    pub threshold: f32,
    /// how far the best customer must lead the next one
    pub margin: f32,
    /// portraits fetched from the index per query
    pub top_k: usize,
    /// how far a face must score above the customer's closest other customer (the neighbour
    /// rule, gallery/neighbours.rs); from the config file, like `top_k`
    #[serde(default)]
    pub neighbour_gap: f32,
}

/// Rules that cannot be right whatever the model: the caller's to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadRules {
    #[error(
        "matching.threshold = {0} is not within {MIN_THRESHOLD}..=1: below that any face would be named"
    )]
    Threshold(f32),
    #[error("matching.margin = {0} is not within 0..=1")]
    Margin(f32),
    #[error("matching.neighbour_gap = {0} is not within 0..=0.5")]
    NeighbourGap(f32),
}

/// The lowest threshold any supported net can use: ArcFace-class nets put unrelated faces
/// near 0 and the same person from about 0.3 (the dlib-style net: 0.83 and 0.93), so below
/// 0.2 every net names strangers. Each net's own threshold comes from `greeter calibrate`.
pub const MIN_THRESHOLD: f32 = 0.2;

/// Whether the neighbour rule's gap can be right at all (0: a face only has to beat the bar).
pub fn check_neighbour_gap(gap: f32) -> Result<(), BadRules> {
    if !(0.0..=0.5).contains(&gap) {
        return Err(BadRules::NeighbourGap(gap));
    }
    Ok(())
}

/// Whether `threshold` and `margin` can be the rules at all.
pub fn check_rules(threshold: f32, margin: f32) -> Result<(), BadRules> {
    if !(MIN_THRESHOLD..=1.0).contains(&threshold) {
        return Err(BadRules::Threshold(threshold));
    }
    if !(0.0..=1.0).contains(&margin) {
        return Err(BadRules::Margin(margin));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    pub customer_id: i64,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Known {
        best: Candidate,
        runner_up: Option<Candidate>,
    },
    Unknown {
        reason: String,
        best: Option<Candidate>,
        runner_up: Option<Candidate>,
    },
}

impl Decision {
    pub fn customer_id(&self) -> Option<i64> {
        match self {
            Decision::Known { best, .. } => Some(best.customer_id),
            Decision::Unknown { .. } => None,
        }
    }
}

/// Best score per customer, best customer first.
pub fn rank_customers(
    hits: &[(i64, f32)],
    owner_of: impl Fn(i64) -> Option<i64>,
) -> Vec<Candidate> {
    let mut best: HashMap<i64, f32> = HashMap::new();
    for &(portrait, score) in hits {
        if let Some(customer) = owner_of(portrait) {
            let entry = best.entry(customer).or_insert(f32::NEG_INFINITY);
            *entry = entry.max(score);
        }
    }
    let mut ranked: Vec<Candidate> = best
        .into_iter()
        .map(|(customer_id, score)| Candidate { customer_id, score })
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.customer_id.cmp(&b.customer_id))
    });
    ranked
}

pub fn decide(ranked: &[Candidate], rules: &MatchRules) -> Decision {
    let best = ranked.first().copied();
    let runner_up = ranked.get(1).copied();
    let unknown = |reason: String| Decision::Unknown {
        reason,
        best,
        runner_up,
    };
    let Some(top) = best else {
        return unknown("no enrolled customers".into());
    };
    if top.score < rules.threshold {
        return unknown(format!(
            "best score {:.3} is below the threshold {:.3}",
            top.score, rules.threshold
        ));
    }
    if let Some(second) = runner_up
        && top.score - second.score < rules.margin
    {
        return unknown(format!(
            "ambiguous: customer {} scores {:.3}, customer {} {:.3} (margin {:.3})",
            top.customer_id, top.score, second.customer_id, second.score, rules.margin
        ));
    }
    Decision::Known {
        best: top,
        runner_up,
    }
}

/// The neighbour rule on a decision: a known face must score `gap` above `bar`, the best
/// score of that customer's portraits against another customer's.
pub fn beyond_neighbours(decision: Decision, bar: Option<f32>, gap: f32) -> Decision {
    match (decision, bar) {
        (Decision::Known { best, runner_up }, Some(bar)) if best.score < bar + gap => {
            Decision::Unknown {
                reason: format!(
                    "customer {} scores {:.3}, but their portraits score {:.3} with another customer's (needs {:.3})",
                    best.customer_id,
                    best.score,
                    bar,
                    bar + gap
                ),
                best: Some(best),
                runner_up,
            }
        }
        (decision, _) => decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> MatchRules {
        MatchRules {
            threshold: 0.9,
            margin: 0.05,
            top_k: 10,
            neighbour_gap: 0.01,
        }
    }

    #[test]
    fn portraits_are_grouped_per_customer_by_their_best_score() {
        let owners = |p: i64| Some(p / 10);
        let ranked = rank_customers(&[(11, 0.7), (12, 0.95), (21, 0.8), (99, 0.1)], owners);
        assert_eq!(
            ranked[0],
            Candidate {
                customer_id: 1,
                score: 0.95
            }
        );
        assert_eq!(
            ranked[1],
            Candidate {
                customer_id: 2,
                score: 0.8
            }
        );
        assert_eq!(ranked.len(), 3);
    }

    #[test]
    fn clear_winner_is_known() {
        let ranked = [
            Candidate {
                customer_id: 1,
                score: 0.96,
            },
            Candidate {
                customer_id: 2,
                score: 0.5,
            },
        ];
        assert_eq!(decide(&ranked, &rules()).customer_id(), Some(1));
    }

    #[test]
    fn below_threshold_ambiguous_and_empty_are_unknown_with_reasons() {
        let low = [Candidate {
            customer_id: 1,
            score: 0.85,
        }];
        let close = [
            Candidate {
                customer_id: 1,
                score: 0.95,
            },
            Candidate {
                customer_id: 2,
                score: 0.93,
            },
        ];
        for (ranked, why) in [
            (&low[..], "below the threshold"),
            (&close[..], "ambiguous"),
            (&[][..], "no enrolled"),
        ] {
            match decide(ranked, &rules()) {
                Decision::Unknown { reason, .. } => assert!(reason.contains(why), "{reason}"),
                known => panic!("expected unknown, got {known:?}"),
            }
        }
    }

    #[test]
    fn a_face_must_beat_the_customers_closest_neighbour() {
        let known = || Decision::Known {
            best: Candidate {
                customer_id: 1,
                score: 0.95,
            },
            runner_up: None,
        };
        assert_eq!(beyond_neighbours(known(), None, 0.01), known());
        assert_eq!(beyond_neighbours(known(), Some(0.93), 0.01), known());
        match beyond_neighbours(known(), Some(0.945), 0.01) {
            Decision::Unknown { reason, best, .. } => {
                assert!(reason.contains("another customer"), "{reason}");
                assert_eq!(best.unwrap().customer_id, 1);
            }
            known => panic!("expected unknown, got {known:?}"),
        }
    }
}
