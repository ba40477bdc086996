//! A file or a folder of images played as a camera, for demos and tests. Each photo stays in
//! view for 1/fps seconds, sent as several frames (at least `FRAMES_PER_PHOTO` a second): a
//! camera names a face on its second agreeing frame, so a photo shown once would never be.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Backoff, Frame, FrameSlot, Pixels};

/// Frames a second at least, while a photo is in view.
const FRAMES_PER_PHOTO: f32 = 5.0;

fn frames_of(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let files = crate::files::image_files(path)?;
    if files.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no JPEG, PNG or WebP files in it",
        ));
    }
    Ok(files)
}

pub(super) async fn run(
    id: String,
    path: PathBuf,
    fps: f32,
    repeat: bool,
    slot: Arc<FrameSlot>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let files = loop {
        match frames_of(&path) {
            Ok(files) => break files,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(camera = %id, path = %path.display(), error = %e, retry_in_s = delay.as_secs(), "replay camera cannot read its frames");
                slot.set_state("retrying", Some(format!("{}: {e}", path.display())));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    tracing::info!(camera = %id, frames = files.len(), fps, repeat, "replay camera started");
    let fps = fps.max(0.01);
    let copies = (FRAMES_PER_PHOTO / fps).ceil().max(1.0);
    let mut ticker = tokio::time::interval(Duration::from_secs_f32(1.0 / (fps * copies)));
    loop {
        for file in &files {
            let bytes = match tokio::fs::read(file).await {
                Ok(bytes) => bytes::Bytes::from(bytes),
                Err(e) => {
                    tracing::warn!(camera = %id, file = %file.display(), error = %e, "replay frame unreadable, skipped");
                    continue;
                }
            };
            for _ in 0..copies as usize {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                slot.offer(Frame::new(Pixels::Encoded(bytes.clone())));
            }
        }
        if !repeat {
            slot.set_state("finished", None);
            return;
        }
    }
}
