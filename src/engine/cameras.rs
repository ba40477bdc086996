//! The cameras runner: each configured camera's source feeds its slot (newest frame wins), and
//! one loop per camera follows the faces of the frames it takes (tracks, one decision each) and
//! tells the terminals bound to the camera about the customers named.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use super::follow::Follower;
use super::gate::{Caller, Gate};
use super::recognize::Recognizer;
use crate::capture::{self, CameraHealth, CameraSettings, Frame, FrameSlot, Offer, Pixels};
use crate::terminals::Terminals;
use crate::vision::{TrackSettings, decode};

pub struct Cameras {
    settings: Vec<CameraSettings>,
    slots: BTreeMap<String, Arc<FrameSlot>>,
    tracking: TrackSettings,
    max_pixels: u64,
    cooldown: Duration,
}

impl Cameras {
    pub fn new(
        settings: Vec<CameraSettings>,
        tracking: TrackSettings,
        max_pixels: u64,
        cooldown: Duration,
    ) -> Self {
        let slots = settings
            .iter()
            .map(|c| (c.id.clone(), Arc::new(FrameSlot::new(c))))
            .collect();
        Cameras {
            settings,
            slots,
            tracking,
            max_pixels,
            cooldown,
        }
    }

    pub fn health(&self) -> Vec<CameraHealth> {
        self.slots.values().map(|c| c.health()).collect()
    }

    /// A frame pushed over HTTP into a push camera's queue; what is not an image is refused
    /// now rather than accepted and dropped at decoding.
    pub fn push(&self, camera: &str, bytes: Bytes) -> Result<Offer, EngineError> {
        let slot = self
            .slots
            .get(camera)
            .ok_or_else(|| EngineError::UnknownCamera(camera.to_owned()))?;
        decode::sniff(&bytes).map_err(|source| EngineError::Decode {
            origin: format!("camera {camera}"),
            source,
        })?;
        Ok(slot.offer(Frame::new(Pixels::Encoded(bytes))))
    }

    /// Starts every camera's source and its recognition loop; both end with `stop`.
    pub fn start(
        &self,
        gate: &Arc<Gate>,
        recognizer: &Arc<Recognizer>,
        terminals: &Arc<Terminals>,
        stop: &CancellationToken,
    ) {
        for camera in &self.settings {
            let slot = self.slots[&camera.id].clone();
            capture::spawn_source(camera, self.max_pixels, slot.clone(), stop.child_token());
            tokio::spawn(watch(
                Follower::new(self.tracking.clone(), camera.id.clone(), self.cooldown),
                camera.id.clone(),
                slot,
                gate.clone(),
                recognizer.clone(),
                terminals.clone(),
                stop.child_token(),
            ));
        }
    }
}

async fn watch(
    follower: Follower,
    camera: String,
    slot: Arc<FrameSlot>,
    gate: Arc<Gate>,
    recognizer: Arc<Recognizer>,
    terminals: Arc<Terminals>,
    stop: CancellationToken,
) {
    let started = std::time::Instant::now();
    // one frame of a camera at a time: the lock is never contended, it only lets the
    // tracks outlive each job
    let follower = Arc::new(std::sync::Mutex::new(follower));
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return,
            frame = slot.take() => frame,
        };
        let (arrived, arrived_at) = (frame.arrived, frame.arrived_at);
        let t = arrived.duration_since(started).as_secs_f64();
        let (follower, recognizer) = (follower.clone(), recognizer.clone());
        let followed = gate
            .run(Caller::Camera, move |_| {
                let mut follower = follower.lock().unwrap_or_else(|p| p.into_inner());
                match frame.pixels {
                    Pixels::Encoded(bytes) => {
                        let image = recognizer.faces.decode("frame", &bytes)?;
                        follower.step(&recognizer, &image, t)
                    }
                    Pixels::Rgb(image) => follower.step(&recognizer, &image, t),
                }
            })
            .await;
        slot.analysed();
        let followed = match followed {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(camera = %camera, error = %crate::telemetry::chain(&e), "camera frame not analysed");
                continue;
            }
        };
        // terminals are told once per visit; a track seen again reaches glasses that came on late
        for greeting in followed.greetings.iter().chain(&followed.in_view) {
            let told =
                terminals.announce(&camera, &greeting.card, greeting.bbox, arrived_at, arrived);
            if told > 0 {
                metrics::counter!("greeter_announcements_total").increment(told as u64);
                metrics::histogram!("greeter_frame_to_push_seconds")
                    .record(arrived.elapsed().as_secs_f64());
            }
        }
    }
}
