//! A camera's frames as a stream: faces tracked across frames, the costly embedding spent on
//! the best faces of undecided tracks, and one decision per track. `serve`'s camera loops and
//! `greeter eval-video` both go through `Follower::step`, so what is measured is what runs.

use std::collections::HashMap;
use std::time::Duration;

use image::RgbImage;
use serde::Serialize;

use super::EngineError;
use super::recognize::Recognizer;
use crate::crm::Card;
use crate::gallery::Decision;
use crate::vision::{BBox, Evidence, Purpose, StageTimes, Track, TrackSettings, Tracker, Verdict};

/// A track named: the card for the terminals.
#[derive(Debug, Clone, Serialize)]
pub struct Greeting {
    pub track: u64,
    pub card: Card,
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// seconds into the source
    pub t: f64,
}

#[derive(Debug, Default)]
pub struct Followed {
    pub greetings: Vec<Greeting>,
    /// named tracks seen again in this frame, with their card: a terminal that was not told
    /// yet (its glasses were off) can still be told while the customer is in view
    pub in_view: Vec<Greeting>,
    /// faces found in the frame, and how many of them passed the camera quality rules
    pub faces: usize,
    pub faces_passed: usize,
    /// faces of at least `RECOGNISABLE_PX`, and how many of them passed
    pub large_faces: usize,
    pub large_faces_passed: usize,
    pub embedded: usize,
    pub times: StageTimes,
    /// tracks that ended with this frame (their person left view)
    pub ended: Vec<Track>,
}

/// How often an undecided track in view is decided again without new faces, seconds.
const REDECIDE_S: f64 = 1.0;

/// Shorter side at which a face is large enough to recognise, for the quality report.
pub const RECOGNISABLE_PX: f32 = 60.0;

pub struct Follower {
    tracker: Tracker,
    source: String,
    /// a customer named again on this source within this many seconds is not announced again
    /// (a track broken by a turned head is still the same visit)
    cooldown_s: f64,
    last_named: HashMap<i64, f64>,
    /// the card of each named track in view
    cards: HashMap<u64, Card>,
}

impl Follower {
    pub fn new(settings: TrackSettings, source: impl Into<String>, cooldown: Duration) -> Self {
        Follower {
            tracker: Tracker::new(settings),
            source: source.into(),
            cooldown_s: cooldown.as_secs_f64(),
            last_named: HashMap::new(),
            cards: HashMap::new(),
        }
    }

    /// One frame at `t` seconds into the source.
    pub fn step(
        &mut self,
        recognizer: &Recognizer,
        frame: &RgbImage,
        t: f64,
    ) -> Result<Followed, EngineError> {
        let mut found = recognizer.faces.find(frame, Purpose::Camera)?;
        let boxes: Vec<BBox> = found.faces.iter().map(|f| f.bbox).collect();
        let (ids, ended) = self.tracker.update(t, &boxes);
        for track in &ended {
            self.cards.remove(&track.id);
        }
        let mut followed = Followed {
            faces: found.faces.len(),
            ended,
            ..Followed::default()
        };
        for face in &found.faces {
            let large = face.quality.face_px >= RECOGNISABLE_PX;
            followed.faces_passed += face.quality.passed as usize;
            followed.large_faces += large as usize;
            followed.large_faces_passed += (large && face.quality.passed) as usize;
        }

        // the budget goes to the tracks with the least evidence, their best faces first
        let settings = self.tracker.settings().clone();
        let mut wanted: Vec<(usize, usize)> = (0..found.faces.len())
            .filter_map(|i| {
                let quality = &found.faces[i].quality;
                let track = self.tracker.get(ids[i])?;
                (quality.passed && track.wants(quality.weight, &settings))
                    .then_some((i, track.evidence.len()))
            })
            .collect();
        wanted.sort_by(|a, b| {
            a.1.cmp(&b.1).then(
                found.faces[b.0]
                    .quality
                    .weight
                    .total_cmp(&found.faces[a.0].quality.weight),
            )
        });
        wanted.truncate(settings.embed_budget);
        let which: Vec<usize> = wanted.into_iter().map(|(i, _)| i).collect();
        let embeddings = recognizer.faces.embed(frame, &mut found, &which)?;
        followed.times = found.times;

        let mut touched = Vec::new();
        for (&i, embedding) in which.iter().zip(embeddings) {
            let Some(embedding) = embedding else { continue };
            followed.embedded += 1;
            let evidence = Evidence {
                named: named_as(recognizer, &embedding)?,
                embedding,
                weight: found.faces[i].quality.weight,
            };
            touched.push(self.tracker.add(ids[i], evidence));
        }
        // Tracks with new faces are decided again now; the others in view once a second, since
        // the gallery may have changed under them (a customer enrolled while in view).
        let due = ids.iter().copied().filter(|id| {
            self.tracker
                .get(*id)
                .is_some_and(|track| t - track.last_decided >= REDECIDE_S)
        });
        let mut candidates: Vec<u64> = touched.into_iter().chain(due).collect();
        candidates.sort_unstable();
        candidates.dedup();
        for id in candidates {
            let Some(bbox) = self.tracker.get(id).map(|track| track.bbox) else {
                continue;
            };
            if let Some(greeting) = self.decide(recognizer, id, frame, bbox, t)? {
                followed.greetings.push(greeting);
            }
        }
        // named tracks in view, decided now or before, that were not greeted in this frame
        for (&id, face) in ids.iter().zip(&found.faces) {
            let greeted = followed.greetings.iter().any(|g| g.track == id);
            if let (Some(card), false) = (self.cards.get(&id), greeted) {
                followed.in_view.push(Greeting {
                    track: id,
                    card: card.clone(),
                    bbox: face.bbox,
                    t,
                });
            }
        }
        Ok(followed)
    }

    /// Names a track once its fused faces are known to the gallery and enough of its faces
    /// agree on who it is.
    fn decide(
        &mut self,
        recognizer: &Recognizer,
        id: u64,
        frame: &RgbImage,
        bbox: BBox,
        t: f64,
    ) -> Result<Option<Greeting>, EngineError> {
        let min_faces = self.tracker.settings().min_faces;
        let Some(track) = self.tracker.get_mut(id) else {
            return Ok(None);
        };
        if track.verdict != Verdict::Undecided || track.evidence.len() < min_faces {
            return Ok(None);
        }
        // each face was named when it came; a track last decided a while ago asks again, the
        // gallery may have changed since (a customer enrolled while in view)
        if t - track.last_decided >= REDECIDE_S {
            for evidence in &mut track.evidence {
                evidence.named = named_as(recognizer, &evidence.embedding)?;
            }
        }
        track.last_decided = t;
        let fused = track.fused().expect("has evidence");
        let Decision::Known { best, .. } = recognizer.gallery.identify(&fused)? else {
            return Ok(None);
        };
        // and `min_faces` of its faces must each, on their own, be named as that customer by
        // the same rules: fusion steadies a track's score, it must not lift a stranger whose
        // blurred faces all sit just under the threshold above it
        let agreeing = track
            .evidence
            .iter()
            .filter(|e| e.named == Some(best.customer_id))
            .count();
        if agreeing < min_faces {
            return Ok(None);
        }
        let seen_lately = self
            .last_named
            .insert(best.customer_id, t)
            .is_some_and(|last| t - last < self.cooldown_s);
        let seen = (frame, bbox, Some(id));
        let Some(card) = recognizer.greet(best.customer_id, best.score, seen, &self.source)? else {
            return Ok(None);
        };
        track.verdict = Verdict::Known {
            customer_id: best.customer_id,
            score: best.score,
            announced: !seen_lately,
        };
        self.cards.insert(id, card.clone());
        if seen_lately {
            return Ok(None);
        }
        metrics::counter!("greeter_tracks_named_total").increment(1);
        Ok(Some(Greeting {
            track: id,
            card,
            bbox,
            t,
        }))
    }

    /// Ends every track: the source ended.
    pub fn finish(&mut self) -> Vec<Track> {
        self.cards.clear();
        self.tracker.finish()
    }
}

/// The customer the gallery names a face as, on its own.
fn named_as(recognizer: &Recognizer, embedding: &[f32]) -> Result<Option<i64>, EngineError> {
    Ok(recognizer.gallery.identify(embedding)?.customer_id())
}
