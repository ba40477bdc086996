//! How strict should matching be? Genuine and impostor score distributions from people with
//! several portraits, FAR and FRR at every threshold, and — because a stranger is compared with
//! every enrolled customer — the chance that a stranger is greeted by someone's name for this
//! gallery's size: 1 − (1 − FAR)^N, with FAR measured per customer (a stranger's best score
//! over each customer's portraits).

use serde::Serialize;

use crate::gallery::matching::{beyond_neighbours, decide, rank_customers};
use crate::gallery::{Decision, Gallery, GalleryError, MatchRules};
use crate::vision::similarity;

/// One person's embeddings (portraits, or photos of a labelled folder).
#[derive(Clone)]
pub struct Person {
    pub label: String,
    pub embeddings: Vec<Vec<f32>>,
}

/// The enrolled customers who have portraits, each as a person.
pub fn enrolled_people(gallery: &Gallery) -> Result<Vec<Person>, GalleryError> {
    Ok(gallery
        .embeddings_by_customer()?
        .into_iter()
        .map(|(id, embeddings)| Person {
            label: format!("customer {id}"),
            embeddings,
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub threshold: f32,
    /// impostor comparisons at or above the threshold (probe vs one other customer)
    pub far: f64,
    /// genuine comparisons below the threshold
    pub frr: f64,
    /// chance a stranger is greeted by some customer's name, for `customers` customers
    pub wrong_name: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub people: usize,
    /// people with 2+ embeddings: the genuine scores come from them
    pub people_with_pairs: usize,
    pub genuine_pairs: usize,
    pub impostor_comparisons: usize,
    /// the gallery size the wrong-name rate is for
    pub customers: usize,
    /// histogram bins of width `bin_width` from `bin_start`
    pub bin_start: f32,
    pub bin_width: f32,
    pub genuine_histogram: Vec<u32>,
    pub impostor_histogram: Vec<u32>,
    pub curve: Vec<Point>,
    pub eer: Option<Point>,
    /// the target wrong-name rate per stranger
    pub target_wrong_name: f64,
    /// the lowest threshold whose estimated wrong-name rate is at or under the target
    pub recommended_threshold: Option<f32>,
    pub current: Current,
    /// what the estimates cannot tell, in words
    pub warnings: Vec<String>,
}

/// The configured rules applied to each genuine probe (one embedding against everyone,
/// its own left out): how often the right name, no name, or a wrong name.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub threshold: f32,
    pub margin: f32,
    pub at_threshold: Point,
    pub probes: usize,
    pub right_name: usize,
    pub below_threshold: usize,
    /// above the threshold but refused by the margin rule or the neighbour rule
    pub ambiguous: usize,
    pub wrong_name: usize,
}

const BIN_START: f32 = -0.2;
const BIN_WIDTH: f32 = 0.02;
const BINS: usize = 60;
/// below this many impostor comparisons per required FAR step, an estimate rests on too little
const RULE_OF_THREE: f64 = 3.0;

fn bin(score: f32) -> usize {
    (((score - BIN_START) / BIN_WIDTH).floor().max(0.0) as usize).min(BINS - 1)
}

/// The neighbour rule's bar for person `c` as the matcher would see it with the face
/// `left_out` (person, index) not enrolled: the best score of c's faces against anyone else's.
fn neighbour_bar(people: &[Person], c: usize, left_out: (usize, usize)) -> Option<f32> {
    let enrolled = |p: usize| {
        people[p]
            .embeddings
            .iter()
            .enumerate()
            .filter(move |&(j, _)| (p, j) != left_out)
            .map(|(_, e)| e)
    };
    enrolled(c)
        .flat_map(|mine| {
            (0..people.len())
                .filter(|&b| b != c)
                .flat_map(enrolled)
                .map(move |theirs| similarity(mine, theirs))
        })
        .reduce(f32::max)
}

/// `customers`: the gallery size to estimate the wrong-name rate for (the store's, or more).
pub fn calibrate(
    people: &[Person],
    rules: &MatchRules,
    customers: usize,
    target_wrong_name: f64,
) -> Calibration {
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    let (mut genuine_histogram, mut impostor_histogram) = (vec![0u32; BINS], vec![0u32; BINS]);
    let mut current = Current {
        threshold: rules.threshold,
        margin: rules.margin,
        at_threshold: Point {
            threshold: rules.threshold,
            far: 0.0,
            frr: 0.0,
            wrong_name: 0.0,
        },
        probes: 0,
        right_name: 0,
        below_threshold: 0,
        ambiguous: 0,
        wrong_name: 0,
    };
    for (a, person) in people.iter().enumerate() {
        let me = a as i64;
        for (i, probe) in person.embeddings.iter().enumerate() {
            for e in person.embeddings.iter().skip(i + 1) {
                let s = similarity(probe, e);
                genuine.push(s);
                genuine_histogram[bin(s)] += 1;
            }
            // the probe as the matcher sees it: every other face, best per person (its own
            // other faces included), each person an enrolled customer
            let hits: Vec<(i64, f32)> = people
                .iter()
                .enumerate()
                .flat_map(|(b, other)| {
                    other
                        .embeddings
                        .iter()
                        .enumerate()
                        .filter(move |&(j, _)| (b, j) != (a, i))
                        .map(move |(_, e)| (b as i64, similarity(probe, e)))
                })
                .collect();
            let ranked = rank_customers(&hits, Some);
            for other in ranked.iter().filter(|c| c.customer_id != me) {
                impostor.push(other.score);
                impostor_histogram[bin(other.score)] += 1;
            }
            if person.embeddings.len() >= 2 {
                current.probes += 1;
                let decision = decide(&ranked, rules);
                let bar = decision
                    .customer_id()
                    .and_then(|c| neighbour_bar(people, c as usize, (a, i)));
                match beyond_neighbours(decision, bar, rules.neighbour_gap) {
                    Decision::Known { best, .. } if best.customer_id == me => {
                        current.right_name += 1
                    }
                    Decision::Known { .. } => current.wrong_name += 1,
                    Decision::Unknown { best, .. }
                        if best.is_some_and(|b| b.score >= rules.threshold) =>
                    {
                        current.ambiguous += 1
                    }
                    Decision::Unknown { .. } => current.below_threshold += 1,
                }
            }
        }
    }
    genuine.sort_by(f32::total_cmp);
    impostor.sort_by(f32::total_cmp);
    let point = |t: f32| {
        let far = fraction_at_or_above(&impostor, t);
        Point {
            threshold: t,
            far,
            frr: 1.0 - fraction_at_or_above(&genuine, t),
            wrong_name: 1.0 - (1.0 - far).powf(customers as f64),
        }
    };
    // from the lowest threshold any supported net can use (ArcFace-class nets decide near
    // 0.3–0.5, the dlib-style one near 0.93) to 1, in steps of 0.005
    let lowest = crate::gallery::matching::MIN_THRESHOLD;
    let steps = ((1.0 - lowest) / 0.005).round() as usize;
    let curve: Vec<Point> = (0..=steps)
        .map(|i| point(lowest + i as f32 * 0.005))
        .collect();
    let eer = (!genuine.is_empty() && !impostor.is_empty())
        .then(|| {
            curve
                .iter()
                .min_by(|a, b| (a.far - a.frr).abs().total_cmp(&(b.far - b.frr).abs()))
                .cloned()
        })
        .flatten();
    // with no impostor scores every threshold "meets" the target: recommend nothing
    let recommended_threshold = curve
        .iter()
        .find(|p| !impostor.is_empty() && p.wrong_name <= target_wrong_name)
        .map(|p| p.threshold);
    current.at_threshold = point(rules.threshold);
    let mut warnings = Vec::new();
    let people_with_pairs = people.iter().filter(|p| p.embeddings.len() >= 2).count();
    if genuine.is_empty() {
        warnings.push(
            "no genuine pairs yet (they need a customer with 2+ portraits): the false-reject rates are unknown".into(),
        );
    } else if genuine.len() < 50 {
        warnings.push(format!(
            "only {} genuine pairs (from {people_with_pairs} people with 2+ portraits): the false-reject rates are rough",
            genuine.len()
        ));
    }
    // the per-customer FAR that keeps the wrong-name rate under the target for N customers
    let needed_far = 1.0 - (1.0 - target_wrong_name).powf(1.0 / customers.max(1) as f64);
    let resolvable = RULE_OF_THREE / impostor.len().max(1) as f64;
    if impostor.is_empty() {
        warnings.push(
            "no impostor comparisons yet (they need 2+ enrolled people): the false-accept and wrong-name rates are unknown".into(),
        );
    } else if needed_far < resolvable {
        warnings.push(format!(
            "the target needs a per-customer false-accept rate of {needed_far:.1e}, but {} impostor comparisons can only show rates down to about {resolvable:.1e}: the recommended threshold is where no impostor scored, not a verified rate — add labelled photos of more people",
            impostor.len()
        ));
    }
    Calibration {
        people: people.len(),
        people_with_pairs,
        genuine_pairs: genuine.len(),
        impostor_comparisons: impostor.len(),
        customers,
        bin_start: BIN_START,
        bin_width: BIN_WIDTH,
        genuine_histogram,
        impostor_histogram,
        curve,
        eer,
        target_wrong_name,
        recommended_threshold,
        current,
        warnings,
    }
}

/// The evidence as a picture: both score histograms (each scaled to its own peak), FAR and FRR
/// against the threshold, the current threshold (solid) and the recommended one (dashed).
pub fn svg(c: &Calibration) -> String {
    let (width, height, left, right, top, bottom) = (900.0, 420.0, 60.0, 880.0, 30.0, 370.0);
    let x =
        |score: f32| left + (score - BIN_START) as f64 / (1.0 - BIN_START) as f64 * (right - left);
    let y = |fraction: f64| bottom - fraction.clamp(0.0, 1.0) * (bottom - top);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>
"#
    );
    for (histogram, colour) in [
        (&c.impostor_histogram, "crimson"),
        (&c.genuine_histogram, "forestgreen"),
    ] {
        let peak = histogram.iter().copied().max().unwrap_or(0).max(1) as f64;
        for (i, &count) in histogram.iter().enumerate() {
            let from = x(BIN_START + i as f32 * BIN_WIDTH);
            let bar = count as f64 / peak * (bottom - top);
            out += &format!(
                r#"<rect x="{from:.1}" y="{:.1}" width="{:.1}" height="{bar:.1}" fill="{colour}" fill-opacity="0.35"/>
"#,
                bottom - bar,
                x(BIN_START + BIN_WIDTH) - x(BIN_START)
            );
        }
    }
    for (name, colour, value) in [
        ("FAR", "crimson", (|p: &Point| p.far) as fn(&Point) -> f64),
        ("FRR", "forestgreen", |p: &Point| p.frr),
    ] {
        let points: Vec<String> = c
            .curve
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.threshold), y(value(p))))
            .collect();
        out += &format!(
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"><title>{name}</title></polyline>
"#,
            points.join(" ")
        );
    }
    let mut marker = |t: f32, dash: &str, label: String| {
        out += &format!(
            r#"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{bottom}" stroke="steelblue" stroke-width="2" stroke-dasharray="{dash}"/>
<text x="{1:.1}" y="{2:.1}" fill="steelblue">{label}</text>
"#,
            x(t),
            x(t) - 150.0,
            top - 8.0 + if dash.is_empty() { 0.0 } else { 14.0 },
        );
    };
    marker(
        c.current.threshold,
        "",
        format!("current {:.3}", c.current.threshold),
    );
    if let Some(t) = c.recommended_threshold {
        marker(
            t,
            "6 4",
            format!("for {:.0e} wrong names: {t:.3}", c.target_wrong_name),
        );
    }
    for tick in [-0.2f32, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0] {
        out += &format!(
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{tick:.1}</text>
"#,
            x(tick),
            bottom + 16.0
        );
    }
    out += &format!(
        r#"<text x="{left}" y="{}">similarity — bars: impostor (red) and genuine (green) scores; lines: FAR (red), FRR (green)</text>
</svg>
"#,
        bottom + 40.0
    );
    out
}

fn fraction_at_or_above(sorted: &[f32], t: f32) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let below = sorted.partition_point(|&s| s < t);
    (sorted.len() - below) as f64 / sorted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors at `angle` radians (plus a per-person offset) in a 2-d plane of 4-d space.
    fn person(label: &str, base: f32, spread: &[f32]) -> Person {
        Person {
            label: label.into(),
            embeddings: spread
                .iter()
                .map(|d| {
                    let a = base + d;
                    vec![a.cos(), a.sin(), 0.0, 0.0]
                })
                .collect(),
        }
    }

    fn rules(threshold: f32, margin: f32) -> MatchRules {
        MatchRules {
            threshold,
            margin,
            top_k: 10,
            neighbour_gap: 0.0,
        }
    }

    #[test]
    fn separated_people_give_a_clean_curve_and_the_wrong_name_rate_grows_with_the_gallery() {
        let people = vec![
            person("a", 0.0, &[0.0, 0.05, 0.1]),
            person("b", 1.0, &[0.0, 0.05]),
            person("c", 2.0, &[0.0, 0.1]),
        ];
        let small = calibrate(&people, &rules(0.9, 0.03), 3, 1e-3);
        assert_eq!(small.genuine_pairs, 3 + 1 + 1);
        assert_eq!(small.impostor_comparisons, 7 * 2);
        let at = |c: &Calibration, t: f32| {
            c.curve
                .iter()
                .find(|p| (p.threshold - t).abs() < 1e-4)
                .unwrap()
                .clone()
        };
        // the closest impostors are 0.9 rad apart (cos ≈ 0.62), the furthest genuine pair 0.1
        // rad (cos ≈ 0.995)
        assert_eq!(at(&small, 0.65).far, 0.0);
        assert_eq!(at(&small, 0.65).frr, 0.0);
        assert!(at(&small, 0.6).far > 0.0);
        assert!(at(&small, 0.5).far > 0.0);
        assert_eq!(small.current.probes, 7);
        assert_eq!(small.current.right_name, 7);
        let large = calibrate(&people, &rules(0.9, 0.03), 10_000, 1e-3);
        assert!(at(&large, 0.5).wrong_name > at(&small, 0.5).wrong_name);
        assert!(large.recommended_threshold.unwrap() >= small.recommended_threshold.unwrap());
        assert_warns(&large, "the target needs a per-customer false-accept rate");
    }

    fn assert_warns(calibration: &Calibration, start: &str) {
        assert!(
            calibration.warnings.iter().any(|w| w.starts_with(start)),
            "no warning {start:?} in {:?}",
            calibration.warnings
        );
    }

    #[test]
    fn one_person_alone_recommends_nothing_and_says_why() {
        let people = vec![person("a", 0.0, &[0.0, 0.05])];
        let alone = calibrate(&people, &rules(0.9, 0.03), 1, 1e-3);
        assert_eq!((alone.genuine_pairs, alone.impostor_comparisons), (1, 0));
        assert_eq!(alone.recommended_threshold, None);
        assert_warns(&alone, "no impostor comparisons yet");
        let nobody_twice = calibrate(&[person("b", 1.0, &[0.0])], &rules(0.9, 0.03), 1, 1e-3);
        assert_warns(&nobody_twice, "no genuine pairs yet");
    }

    #[test]
    fn the_margin_rule_turns_close_calls_into_no_name() {
        // b sits right next to a: a's probes are within the margin of b
        let people = vec![person("a", 0.0, &[0.0, 0.02]), person("b", 0.01, &[0.0])];
        let strict = calibrate(&people, &rules(0.5, 0.05), 2, 1e-3);
        assert_eq!(strict.current.probes, 2);
        assert_eq!(strict.current.ambiguous, 2);
        let loose = calibrate(&people, &rules(0.5, 0.0), 2, 1e-3);
        assert_eq!(loose.current.ambiguous, 0);
    }
}
