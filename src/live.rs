//! What store IT watches on the console: each recognition of a known customer, with its score
//! and a small face crop. Crops live in memory only, the last few, and only while a console is
//! watching: nothing of a sighting reaches the disk, and with no console open nothing is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use image::RgbImage;

use crate::crm::Card;
use crate::vision::{BBox, face_crop_jpeg};

/// A customer who stays in view is shown again after this long, not on every frame.
const REPEAT: Duration = Duration::from_secs(60);
/// Crops kept for the console; older ones are forgotten.
const KEPT_CROPS: usize = 64;
/// Cards a slow console may fall behind by before it misses some.
const BACKLOG: usize = 64;
/// Large enough to tell who it is on a console, small enough to keep many.
const CROP_SIDE: u32 = 160;

/// One recognition as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRecognition {
    pub id: u64,
    /// the camera id, or who sent the frame to `/v1/recognize`
    pub source: String,
    pub at: DateTime<Utc>,
    pub card: Card,
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// the face's track on its source, when it was followed across frames
    pub track: Option<u64>,
    /// where the face crop can be fetched while it is kept (`None`: no crop could be made)
    pub crop: Option<String>,
}

/// A recognition to show: where, who, and the face in its frame.
pub struct Seen<'a> {
    pub source: &'a str,
    pub card: &'a Card,
    pub frame: &'a RgbImage,
    pub bbox: BBox,
    pub track: Option<u64>,
}

pub struct LiveFeed {
    sender: broadcast::Sender<Arc<LiveRecognition>>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    next_id: u64,
    /// (recognition id, customer id, JPEG)
    crops: VecDeque<(u64, i64, Bytes)>,
    shown: HashMap<(String, i64), Instant>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed {
            sender: broadcast::channel(BACKLOG).0,
            kept: Mutex::new(Kept::default()),
        }
    }
}

impl LiveFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveRecognition>> {
        self.sender.subscribe()
    }

    /// Shows a recognition to every watching console, unless nobody watches or the same
    /// customer was shown from the same source within `REPEAT`. Returns its id when shown.
    pub fn show(&self, seen: Seen) -> Option<u64> {
        let Seen {
            source,
            card,
            frame,
            bbox,
            track,
        } = seen;
        if self.sender.receiver_count() == 0 {
            return None;
        }
        let now = Instant::now();
        let id = {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.shown.retain(|_, at| now.duration_since(*at) < REPEAT);
            let key = (source.to_owned(), card.customer_id);
            if kept.shown.contains_key(&key) {
                return None;
            }
            kept.shown.insert(key, now);
            kept.next_id += 1;
            kept.next_id
        };
        // encoded outside the lock: other frames need not wait for this one's JPEG
        let jpeg = face_crop_jpeg(frame, bbox, Some(CROP_SIDE)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, source, "no face crop for the console");
            None
        });
        let crop = jpeg.map(|jpeg| {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            if kept.crops.len() == KEPT_CROPS {
                kept.crops.pop_front();
            }
            kept.crops
                .push_back((id, card.customer_id, Bytes::from(jpeg)));
            format!("/v1/live/{id}/crop")
        });
        let recognition = LiveRecognition {
            id,
            source: source.to_owned(),
            at: Utc::now(),
            card: card.clone(),
            bbox,
            track,
            crop,
        };
        // the last console may have closed since the check above: then nobody misses it
        let _ = self.sender.send(Arc::new(recognition));
        Some(id)
    }

    /// The face crop of a recognition, while it is kept.
    pub fn crop(&self, id: u64) -> Option<Bytes> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.crops
            .iter()
            .find(|(kept_id, _, _)| *kept_id == id)
            .map(|(_, _, jpeg)| jpeg.clone())
    }

    /// Drops every kept crop of an erased customer.
    pub fn forget(&self, customer_id: i64) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.crops
            .retain(|(_, customer, _)| *customer != customer_id);
        kept.shown
            .retain(|(_, customer), _| *customer != customer_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACE: BBox = BBox {
        x: 100.0,
        y: 100.0,
        width: 200.0,
        height: 200.0,
    };

    fn show(feed: &LiveFeed, source: &str, customer: i64) -> Option<u64> {
        let frame = RgbImage::from_pixel(640, 360, image::Rgb([customer as u8, 90, 60]));
        feed.show(Seen {
            source,
            card: &Card::example(customer),
            frame: &frame,
            bbox: FACE,
            track: Some(7),
        })
    }

    #[test]
    fn with_no_console_watching_nothing_is_shown_or_kept() {
        let feed = LiveFeed::default();
        assert_eq!(show(&feed, "door", 1), None);
        assert!(feed.kept.lock().unwrap().crops.is_empty());
    }

    #[test]
    fn a_customer_is_shown_once_per_source_until_the_repeat_interval() {
        let feed = LiveFeed::default();
        let mut console = feed.subscribe();
        let first = show(&feed, "door", 1).expect("shown");
        assert_eq!(show(&feed, "door", 1), None, "still in view");
        let other_camera = show(&feed, "till", 1).expect("another source");
        let other_customer = show(&feed, "door", 2).expect("another customer");
        let ids: Vec<u64> = std::iter::from_fn(|| console.try_recv().ok())
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![first, other_camera, other_customer]);
    }

    #[test]
    fn the_crop_is_the_face_with_some_room_and_small() {
        let feed = LiveFeed::default();
        let mut console = feed.subscribe();
        let id = show(&feed, "door", 7).unwrap();
        assert_eq!(
            console.try_recv().unwrap().crop.as_deref(),
            Some(format!("/v1/live/{id}/crop").as_str())
        );
        let crop = image::load_from_memory(&feed.crop(id).unwrap()).unwrap();
        // the face and half its size around it, clipped to the frame: 400×360, then scaled down
        assert_eq!(crop.width(), CROP_SIDE);
        assert_eq!(crop.height(), CROP_SIDE * 360 / 400);
        assert!(crop.to_rgb8().get_pixel(10, 10)[0].abs_diff(7) < 6);
    }

    #[test]
    fn a_face_outside_the_frame_is_shown_without_a_crop() {
        let feed = LiveFeed::default();
        let mut console = feed.subscribe();
        let frame = RgbImage::new(64, 64);
        let beyond = BBox { x: 500.0, ..FACE };
        let id = feed
            .show(Seen {
                source: "door",
                card: &Card::example(1),
                frame: &frame,
                bbox: beyond,
                track: None,
            })
            .unwrap();
        assert_eq!(console.try_recv().unwrap().crop, None);
        assert_eq!(feed.crop(id), None);
    }

    #[test]
    fn an_erased_customer_s_crops_are_forgotten() {
        let feed = LiveFeed::default();
        let _console = feed.subscribe();
        let (erased, kept) = (
            show(&feed, "door", 1).unwrap(),
            show(&feed, "door", 2).unwrap(),
        );
        feed.forget(1);
        assert_eq!(feed.crop(erased), None);
        assert!(feed.crop(kept).is_some());
    }

    #[test]
    fn only_the_newest_crops_are_kept() {
        let feed = LiveFeed::default();
        let _console = feed.subscribe();
        let ids: Vec<u64> = (0..KEPT_CROPS as i64 + 1)
            .map(|customer| show(&feed, "door", customer).unwrap())
            .collect();
        assert_eq!(feed.crop(ids[0]), None, "the oldest is forgotten");
        assert!(feed.crop(ids[1]).is_some());
        assert!(feed.crop(*ids.last().unwrap()).is_some());
    }
}
