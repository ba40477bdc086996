//! The cameras runner: each configured camera's source feeds its slot (newest frame wins), and
//! one loop per camera takes the newest frame through recognition and tells the terminals bound
//! to the camera about known customers.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use super::gate::{Caller, Gate};
use super::recognize::{Outcome, Recognizer};
use crate::capture::{self, CameraHealth, CameraSettings, Frame, FrameSlot, Offer, Pixels};
use crate::terminals::Terminals;
use crate::vision::decode;

pub struct Cameras {
    settings: Vec<CameraSettings>,
    slots: BTreeMap<String, Arc<FrameSlot>>,
}

impl Cameras {
    pub fn new(settings: Vec<CameraSettings>) -> Self {
        let slots = settings
            .iter()
            .map(|c| (c.id.clone(), Arc::new(FrameSlot::new(c))))
            .collect();
        Cameras { settings, slots }
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
            capture::spawn_source(camera, slot.clone(), stop.child_token());
            tokio::spawn(watch(
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
    camera: String,
    slot: Arc<FrameSlot>,
    gate: Arc<Gate>,
    recognizer: Arc<Recognizer>,
    terminals: Arc<Terminals>,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return,
            frame = slot.take() => frame,
        };
        let (arrived, arrived_at) = (frame.arrived, frame.arrived_at);
        let (origin, recognizer) = (camera.clone(), recognizer.clone());
        let recognition = gate
            .run(Caller::Camera, move |_| match frame.pixels {
                Pixels::Encoded(bytes) => recognizer.recognize_bytes(&bytes, &origin),
                Pixels::Rgb(image) => recognizer.recognize(&image, &origin),
            })
            .await;
        let recognition = match recognition {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(camera = %camera, error = %crate::telemetry::chain(&e), "camera frame not analysed");
                continue;
            }
        };
        for face in recognition.faces {
            if let Outcome::Known { card } = face.outcome {
                let told = terminals.announce(&camera, &card, face.bbox, arrived_at, arrived);
                if told > 0 {
                    metrics::counter!("greeter_announcements_total").increment(told as u64);
                    metrics::histogram!("greeter_frame_to_push_seconds")
                        .record(arrived.elapsed().as_secs_f64());
                }
            }
        }
    }
}
