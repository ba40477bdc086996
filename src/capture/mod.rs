//! Frame sources: a stream or video file decoded by ffmpeg, a V4L2/USB camera (nokhwa), an
//! MJPEG-over-HTTP camera, an image file or folder replayed at a frame rate, and frames pushed
//! over HTTP. Each camera feeds one `FrameSlot`
//! where the newest frame wins: a slow pipeline drops stale frames instead of falling behind.

mod device;
pub(crate) mod mjpeg;
mod replay;
pub mod video;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use mjpeg::MjpegParser;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CameraSettings {
    pub id: String,
    #[serde(flatten)]
    pub source: SourceSettings,
    /// frames per second taken from the source at most; the rest are skipped before decoding
    pub sample_fps: f32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SourceSettings {
    /// frames arrive over HTTP: `POST /v1/cameras/{id}/frames`
    Push,
    /// a file, or every image in a folder (sorted by name), at `fps`; again and again if `repeat`
    Replay {
        path: PathBuf,
        fps: f32,
        #[serde(default)]
        repeat: bool,
    },
    /// a stream or a video file decoded by ffmpeg: `rtsp://…`, `http(s)://…` (HLS, MJPEG), a
    /// path; a file plays at its own frame rate, again and again if `repeat`
    Video {
        url: String,
        #[serde(default)]
        repeat: bool,
    },
    /// a `multipart/x-mixed-replace` JPEG stream, as IP cameras serve
    Mjpeg { url: String },
    /// a V4L2/USB camera by index (/dev/videoN)
    Device { index: u32 },
}

/// A frame as it came from the source; decoding waits until the pipeline takes it, so frames
/// that are dropped cost nothing.
pub enum Pixels {
    Encoded(Bytes),
    Rgb(RgbImage),
}

pub struct Frame {
    pub pixels: Pixels,
    /// when the frame entered the service (for frame-to-card latency)
    pub arrived: Instant,
    pub arrived_at: DateTime<Utc>,
}

impl Frame {
    pub fn new(pixels: Pixels) -> Self {
        Frame {
            pixels,
            arrived: Instant::now(),
            arrived_at: Utc::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// queued, and an older frame nobody had taken yet was dropped
    Replaced,
    /// above the camera's sample rate
    Skipped,
}

/// What store IT sees about a camera.
#[derive(Debug, Clone, Serialize)]
pub struct CameraHealth {
    pub id: String,
    pub source: &'static str,
    /// "waiting" (push: no frame yet), "connecting", "streaming", "retrying", "finished"
    pub state: &'static str,
    /// the last error, when retrying
    pub error: Option<String>,
    pub frames_in: u64,
    pub frames_dropped: u64,
    pub frames_skipped: u64,
    /// frames through recognition
    pub frames_analysed: u64,
    /// frames per second from the source, and through recognition (recent average)
    pub fps_in: f32,
    pub fps_analysed: f32,
    pub last_frame_at: Option<DateTime<Utc>>,
}

/// A rate over the last few events: robust to a decoder's start-up or end-of-file burst.
#[derive(Default)]
struct Rate {
    recent: VecDeque<Instant>,
}

impl Rate {
    const WINDOW: usize = 10;

    fn tick(&mut self, now: Instant) -> f32 {
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        match (self.recent.front(), self.recent.len()) {
            (Some(first), n) if n > 1 && now > *first => {
                (n - 1) as f32 / now.duration_since(*first).as_secs_f32()
            }
            _ => 0.0,
        }
    }
}

struct SlotState {
    frame: Option<Frame>,
    last_taken: Option<Instant>,
    rate_in: Rate,
    rate_analysed: Rate,
    health: CameraHealth,
}

/// One camera's queue of depth one: the newest frame wins.
pub struct FrameSlot {
    min_interval: Duration,
    state: Mutex<SlotState>,
    ready: Notify,
}

impl FrameSlot {
    pub fn new(settings: &CameraSettings) -> Self {
        let (source, state) = match settings.source {
            SourceSettings::Push => ("push", "waiting"),
            SourceSettings::Replay { .. } => ("replay", "connecting"),
            SourceSettings::Video { .. } => ("video", "connecting"),
            SourceSettings::Mjpeg { .. } => ("mjpeg", "connecting"),
            SourceSettings::Device { .. } => ("device", "connecting"),
        };
        // a video's decoder samples the stream itself
        let samples_itself = matches!(settings.source, SourceSettings::Video { .. });
        let min_interval = if settings.sample_fps > 0.0 && !samples_itself {
            Duration::from_secs_f32(1.0 / settings.sample_fps)
        } else {
            Duration::ZERO
        };
        FrameSlot {
            min_interval,
            state: Mutex::new(SlotState {
                frame: None,
                last_taken: None,
                rate_in: Rate::default(),
                rate_analysed: Rate::default(),
                health: CameraHealth {
                    id: settings.id.clone(),
                    source,
                    state,
                    error: None,
                    frames_in: 0,
                    frames_dropped: 0,
                    frames_skipped: 0,
                    frames_analysed: 0,
                    fps_in: 0.0,
                    fps_analysed: 0.0,
                    last_frame_at: None,
                },
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers a frame: skipped above the sample rate, else it replaces any frame not yet taken.
    pub fn offer(&self, frame: Frame) -> Offer {
        let mut state = self.lock();
        let camera = state.health.id.clone();
        state.health.frames_in += 1;
        state.health.fps_in = state.rate_in.tick(frame.arrived);
        state.health.last_frame_at = Some(frame.arrived_at);
        state.health.state = "streaming";
        state.health.error = None;
        metrics::counter!("greeter_frames_in_total", "camera" => camera.clone()).increment(1);
        let due = state
            .last_taken
            .is_none_or(|t| frame.arrived.duration_since(t) >= self.min_interval);
        if !due && state.frame.is_none() {
            state.health.frames_skipped += 1;
            metrics::counter!("greeter_frames_skipped_total", "camera" => camera).increment(1);
            return Offer::Skipped;
        }
        let offer = match state.frame.replace(frame) {
            Some(_) => {
                state.health.frames_dropped += 1;
                metrics::counter!("greeter_frames_dropped_total", "camera" => camera.clone())
                    .increment(1);
                Offer::Replaced
            }
            None => Offer::Queued,
        };
        metrics::gauge!("greeter_frame_queue_depth", "camera" => camera).set(1.0);
        drop(state);
        self.ready.notify_one();
        offer
    }

    /// Waits for the newest frame.
    pub async fn take(&self) -> Frame {
        loop {
            if let Some(frame) = self.try_take() {
                return frame;
            }
            self.ready.notified().await;
        }
    }

    fn try_take(&self) -> Option<Frame> {
        let mut state = self.lock();
        let frame = state.frame.take()?;
        state.last_taken = Some(Instant::now());
        metrics::gauge!("greeter_frame_queue_depth", "camera" => state.health.id.clone()).set(0.0);
        Some(frame)
    }

    /// A taken frame went through recognition.
    pub fn analysed(&self) {
        let mut slot = self.lock();
        slot.health.frames_analysed += 1;
        slot.health.fps_analysed = slot.rate_analysed.tick(Instant::now());
    }

    pub fn set_state(&self, state: &'static str, error: Option<String>) {
        let mut slot = self.lock();
        slot.health.state = state;
        slot.health.error = error;
    }

    pub fn health(&self) -> CameraHealth {
        self.lock().health.clone()
    }
}

/// Starts the camera's source (none for push cameras); it runs until `stop` is cancelled,
/// retrying a missing device or unreachable URL with back-off. `max_pixels` bounds a decoded
/// video frame.
pub fn spawn_source(
    settings: &CameraSettings,
    max_pixels: u64,
    slot: Arc<FrameSlot>,
    stop: CancellationToken,
) {
    let id = settings.id.clone();
    match settings.source.clone() {
        SourceSettings::Push => {}
        SourceSettings::Replay { path, fps, repeat } => {
            tokio::spawn(replay::run(id, path, fps, repeat, slot, stop));
        }
        SourceSettings::Video { url, repeat } => {
            let options = video::VideoOptions {
                sample_fps: settings.sample_fps,
                realtime: true,
                repeat,
                max_pixels,
            };
            video::spawn(id, url, options, slot, stop);
        }
        SourceSettings::Mjpeg { url } => {
            tokio::spawn(mjpeg::run(id, url, slot, stop));
        }
        SourceSettings::Device { index } => device::spawn(id, index, slot, stop),
    }
}

/// Waits between reconnection attempts: 1 s, doubling to 30 s; reset after a success.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        delay
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(sample_fps: f32) -> FrameSlot {
        FrameSlot::new(&CameraSettings {
            id: "cam".into(),
            source: SourceSettings::Push,
            sample_fps,
        })
    }

    fn frame(tag: u8) -> Frame {
        Frame::new(Pixels::Encoded(Bytes::from(vec![tag])))
    }

    fn tag(frame: Frame) -> u8 {
        match frame.pixels {
            Pixels::Encoded(b) => b[0],
            Pixels::Rgb(_) => panic!("encoded frame expected"),
        }
    }

    #[tokio::test]
    async fn the_newest_frame_wins_and_the_dropped_ones_are_counted() {
        let slot = slot(0.0);
        assert_eq!(slot.offer(frame(1)), Offer::Queued);
        assert_eq!(slot.offer(frame(2)), Offer::Replaced);
        assert_eq!(slot.offer(frame(3)), Offer::Replaced);
        assert_eq!(tag(slot.take().await), 3);
        let health = slot.health();
        assert_eq!((health.frames_in, health.frames_dropped), (3, 2));
        assert!(slot.try_take().is_none());
    }

    #[tokio::test]
    async fn a_waiting_taker_gets_the_next_frame() {
        let slot = Arc::new(slot(0.0));
        let taker = tokio::spawn({
            let slot = slot.clone();
            async move { tag(slot.take().await) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        slot.offer(frame(7));
        assert_eq!(taker.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn frames_above_the_sample_rate_are_skipped() {
        let slot = slot(1.0);
        slot.offer(frame(1));
        assert_eq!(tag(slot.take().await), 1);
        // within a second of the last taken frame: skipped
        assert_eq!(slot.offer(frame(2)), Offer::Skipped);
        assert_eq!(slot.health().frames_skipped, 1);
    }

    #[test]
    fn the_rate_is_frames_over_the_recent_window() {
        let start = Instant::now();
        let mut rate = Rate::default();
        assert_eq!(rate.tick(start), 0.0);
        let mut last = 0.0;
        for i in 1..30 {
            last = rate.tick(start + Duration::from_millis(200 * i));
        }
        assert!((last - 5.0).abs() < 1e-3, "{last}");
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay().as_secs(), 1);
    }
}
