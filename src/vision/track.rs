//! Faces followed across the frames of one source, so that a person in view for ten seconds is
//! one track with one decision instead of fifty independent chances to be named wrongly.
//!
//! SORT-style: each track's box is predicted at constant velocity, detections are matched to
//! predictions greedily by overlap (IoU), unmatched detections start tracks, and a track not
//! seen for `max_gap_s` ends. Appearance joins in where it is known: an embedding that
//! disagrees with its track's faces (two people crossing) starts a new track. Each track keeps
//! its best faces by quality weight, which the caller fuses and decides on once.

use serde::{Deserialize, Serialize};

use super::embed::{Embedding, l2_normalised, similarity};
use super::geometry::BBox;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TrackSettings {
    /// overlap (IoU) of a predicted box and a detection to be the same face
    pub min_iou: f32,
    /// a track not seen for this long is over, seconds
    pub max_gap_s: f32,
    /// faces embedded per analysed frame, over all tracks: the costly step
    pub embed_budget: usize,
    /// faces kept per track, the best by quality weight
    pub max_faces: usize,
    /// agreeing faces needed before a track is named
    pub min_faces: usize,
    /// an embedding below this similarity to its track's faces starts a new track
    pub min_agreement: f32,
}

/// A face kept as evidence: its embedding, quality weight, and the customer the gallery names
/// it as on its own (when last asked).
#[derive(Debug, Clone)]
pub struct Evidence {
    pub embedding: Embedding,
    pub weight: f32,
    pub named: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    Undecided,
    Known {
        customer_id: i64,
        score: f32,
        /// false when the customer had been announced on this source within the cool-down
        announced: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Track {
    pub id: u64,
    pub bbox: BBox,
    /// box change per second: x, y, width, height
    velocity: [f32; 4],
    pub first_seen: f64,
    pub last_seen: f64,
    pub frames: u32,
    pub embedded: u32,
    pub evidence: Vec<Evidence>,
    pub verdict: Verdict,
    /// when a decision was last tried, seconds into the source
    pub last_decided: f64,
}

impl Track {
    fn new(id: u64, bbox: BBox, t: f64) -> Self {
        Track {
            id,
            bbox,
            velocity: [0.0; 4],
            first_seen: t,
            last_seen: t,
            frames: 1,
            embedded: 0,
            evidence: Vec::new(),
            verdict: Verdict::Undecided,
            last_decided: f64::NEG_INFINITY,
        }
    }

    fn predicted(&self, t: f64) -> BBox {
        let dt = (t - self.last_seen) as f32;
        let [vx, vy, vw, vh] = self.velocity;
        BBox {
            x: self.bbox.x + vx * dt,
            y: self.bbox.y + vy * dt,
            width: (self.bbox.width + vw * dt).max(1.0),
            height: (self.bbox.height + vh * dt).max(1.0),
        }
    }

    fn seen(&mut self, bbox: BBox, t: f64) {
        let dt = (t - self.last_seen) as f32;
        if dt > 0.0 {
            let b = &self.bbox;
            let now = [
                (bbox.x - b.x) / dt,
                (bbox.y - b.y) / dt,
                (bbox.width - b.width) / dt,
                (bbox.height - b.height) / dt,
            ];
            for (v, n) in self.velocity.iter_mut().zip(now) {
                *v = 0.5 * *v + 0.5 * n;
            }
        }
        self.bbox = bbox;
        self.last_seen = t;
        self.frames += 1;
    }

    /// Quality-weighted mean of the kept faces, unit length.
    pub fn fused(&self) -> Option<Embedding> {
        let first = self.evidence.first()?;
        let mut sum = vec![0.0f32; first.embedding.len()];
        for e in &self.evidence {
            let w = e.weight.max(1e-3);
            for (s, v) in sum.iter_mut().zip(e.embedding.iter()) {
                *s += w * v;
            }
        }
        Some(l2_normalised(&sum))
    }

    /// Whether a face of this weight would be kept: the track is undecided and the face is
    /// among its best.
    pub fn wants(&self, weight: f32, settings: &TrackSettings) -> bool {
        self.verdict == Verdict::Undecided
            && (self.evidence.len() < settings.max_faces
                || self.evidence.iter().any(|e| e.weight < weight))
    }

    fn keep(&mut self, evidence: Evidence, max_faces: usize) {
        self.embedded += 1;
        self.evidence.push(evidence);
        if self.evidence.len() > max_faces {
            let worst = self
                .evidence
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
                .map(|(i, _)| i)
                .expect("not empty");
            self.evidence.swap_remove(worst);
        }
    }
}

pub struct Tracker {
    settings: TrackSettings,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(settings: TrackSettings) -> Self {
        Tracker {
            settings,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    pub fn settings(&self) -> &TrackSettings {
        &self.settings
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    pub fn get(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.id == id)
    }

    fn start(&mut self, bbox: BBox, t: f64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.tracks.push(Track::new(id, bbox, t));
        id
    }

    /// Matches the frame's detections to tracks at time `t` (seconds): the track id of each
    /// detection, in order. Tracks unseen for `max_gap_s` end and are returned.
    pub fn update(&mut self, t: f64, boxes: &[BBox]) -> (Vec<u64>, Vec<Track>) {
        // a track gone too long is over before anything can match it: whoever stands there
        // now is a new visit
        let gap = self.settings.max_gap_s as f64;
        let (ended, live) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|track| t - track.last_seen > gap);
        self.tracks = live;
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, track) in self.tracks.iter().enumerate() {
            let predicted = track.predicted(t);
            for (di, b) in boxes.iter().enumerate() {
                let overlap = predicted.iou(b);
                if overlap >= self.settings.min_iou {
                    pairs.push((overlap, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut owner: Vec<Option<usize>> = vec![None; boxes.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, ti, di) in pairs {
            if owner[di].is_none() && !taken[ti] {
                owner[di] = Some(ti);
                taken[ti] = true;
            }
        }
        let ids = boxes
            .iter()
            .zip(owner)
            .map(|(b, owner)| match owner {
                Some(ti) => {
                    self.tracks[ti].seen(*b, t);
                    self.tracks[ti].id
                }
                None => self.start(*b, t),
            })
            .collect();
        (ids, ended)
    }

    /// Adds an embedded face to track `id`; the track it ends up in, which is a new one when
    /// the face disagrees with the track's faces (another person took its place).
    pub fn add(&mut self, id: u64, evidence: Evidence) -> u64 {
        let max_faces = self.settings.max_faces;
        let min_agreement = self.settings.min_agreement;
        let Some(track) = self.get_mut(id) else {
            return id;
        };
        let disagrees = track
            .fused()
            .is_some_and(|fused| similarity(&fused, &evidence.embedding) < min_agreement);
        if !disagrees {
            track.keep(evidence, max_faces);
            return id;
        }
        let (bbox, t) = (track.bbox, track.last_seen);
        // the old track keeps its faces and waits for its person to come back
        track.frames -= 1;
        let new = self.start(bbox, t);
        self.get_mut(new)
            .expect("just started")
            .keep(evidence, max_faces);
        new
    }

    /// Ends every track (the source ended).
    pub fn finish(&mut self) -> Vec<Track> {
        std::mem::take(&mut self.tracks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TrackSettings {
        TrackSettings {
            min_iou: 0.2,
            max_gap_s: 1.0,
            embed_budget: 2,
            max_faces: 3,
            min_faces: 2,
            min_agreement: 0.8,
        }
    }

    fn bbox(x: f32, y: f32) -> BBox {
        BBox {
            x,
            y,
            width: 50.0,
            height: 60.0,
        }
    }

    fn evidence(direction: [f32; 2], weight: f32) -> Evidence {
        let n = (direction[0].powi(2) + direction[1].powi(2)).sqrt();
        Evidence {
            embedding: vec![direction[0] / n, direction[1] / n],
            weight,
            named: None,
        }
    }

    #[test]
    fn a_moving_face_keeps_its_track_and_a_new_face_gets_another() {
        let mut tracker = Tracker::new(settings());
        let (first, _) = tracker.update(0.0, &[bbox(0.0, 0.0)]);
        // moving 30 px a frame: more than half its width, so only the prediction keeps it
        let (second, _) = tracker.update(0.2, &[bbox(30.0, 0.0)]);
        let (third, _) = tracker.update(0.4, &[bbox(60.0, 0.0), bbox(400.0, 300.0)]);
        assert_eq!(first, second);
        assert_eq!(third[0], first[0]);
        assert_ne!(third[1], first[0]);
        // the prediction carried the track forward
        let (fourth, _) = tracker.update(0.6, &[bbox(90.0, 0.0)]);
        assert_eq!(fourth[0], first[0]);
        assert_eq!(tracker.get(first[0]).unwrap().frames, 4);
    }

    #[test]
    fn a_track_unseen_for_the_gap_ends() {
        let mut tracker = Tracker::new(settings());
        let (ids, _) = tracker.update(0.0, &[bbox(0.0, 0.0)]);
        let (_, ended) = tracker.update(0.5, &[]);
        assert!(ended.is_empty());
        let (_, ended) = tracker.update(1.5, &[]);
        assert_eq!(ended.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
        assert!(tracker.tracks().is_empty());
        // back in the same place after the gap: a new track, not the old one
        let (_, _) = tracker.update(2.0, &[bbox(0.0, 0.0)]);
        let (again, ended) = tracker.update(4.0, &[bbox(0.0, 0.0)]);
        assert_ne!(again, ids);
        assert_eq!(ended.len(), 1);
    }

    #[test]
    fn a_disagreeing_face_starts_a_new_track() {
        let mut tracker = Tracker::new(settings());
        let (ids, _) = tracker.update(0.0, &[bbox(0.0, 0.0)]);
        assert_eq!(tracker.add(ids[0], evidence([1.0, 0.0], 1.0)), ids[0]);
        assert_eq!(tracker.add(ids[0], evidence([1.0, 0.1], 1.0)), ids[0]);
        let other = tracker.add(ids[0], evidence([0.0, 1.0], 1.0));
        assert_ne!(other, ids[0]);
        assert_eq!(tracker.get(ids[0]).unwrap().evidence.len(), 2);
        assert_eq!(tracker.get(other).unwrap().evidence.len(), 1);
    }

    #[test]
    fn the_best_faces_are_kept_and_fused_by_weight() {
        let mut tracker = Tracker::new(TrackSettings {
            min_agreement: -1.0,
            ..settings()
        });
        let (ids, _) = tracker.update(0.0, &[bbox(0.0, 0.0)]);
        let id = ids[0];
        for (direction, weight) in [([1.0, 0.0], 0.9), ([1.0, 1.0], 0.1), ([1.0, 0.2], 0.8)] {
            tracker.add(id, evidence(direction, weight));
        }
        let track = tracker.get(id).unwrap();
        assert!(track.wants(0.5, tracker.settings()));
        assert!(!track.wants(0.05, tracker.settings()));
        tracker.add(id, evidence([1.0, 0.1], 0.7));
        let track = tracker.get(id).unwrap();
        let mut weights: Vec<f32> = track.evidence.iter().map(|e| e.weight).collect();
        weights.sort_by(f32::total_cmp);
        assert_eq!(weights, [0.7, 0.8, 0.9]);
        let fused = track.fused().unwrap();
        assert!((fused.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(fused[1] > 0.0 && fused[1] < 0.2, "{fused:?}");
    }
}
