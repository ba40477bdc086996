//! A V4L2/USB camera through nokhwa, read on its own thread (nokhwa's calls block).

use std::sync::Arc;

use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{CameraIndex, RequestedFormat, RequestedFormatType};
use tokio_util::sync::CancellationToken;

use super::{Backoff, Frame, FrameSlot, Pixels};

pub(super) fn spawn(id: String, index: u32, slot: Arc<FrameSlot>, stop: CancellationToken) {
    let thread = std::thread::Builder::new()
        .name(format!("camera-{id}"))
        .spawn(move || run(&id, index, &slot, &stop));
    if let Err(e) = thread {
        tracing::error!(error = %e, "cannot start a camera thread");
    }
}

fn run(id: &str, index: u32, slot: &FrameSlot, stop: &CancellationToken) {
    let mut backoff = Backoff::default();
    while !stop.is_cancelled() {
        slot.set_state("connecting", None);
        let error = match stream(index, slot, stop, &mut backoff) {
            Ok(()) => return,
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        tracing::warn!(camera = %id, device = index, error = %error, retry_in_s = delay.as_secs(), "camera device unavailable");
        slot.set_state("retrying", Some(format!("/dev/video{index}: {error}")));
        // wake up early when the service stops
        let deadline = std::time::Instant::now() + delay;
        while std::time::Instant::now() < deadline && !stop.is_cancelled() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn stream(
    index: u32,
    slot: &FrameSlot,
    stop: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), nokhwa::NokhwaError> {
    let requested =
        RequestedFormat::new::<RgbFormat>(RequestedFormatType::AbsoluteHighestFrameRate);
    let mut camera = Camera::new(CameraIndex::Index(index), requested)?;
    camera.open_stream()?;
    while !stop.is_cancelled() {
        let frame = camera.frame()?.decode_image::<RgbFormat>()?;
        backoff.reset();
        slot.offer(Frame::new(Pixels::Rgb(frame)));
    }
    camera.stop_stream()
}
