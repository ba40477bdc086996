//! A file or a folder of images played as a camera, for demos and tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Backoff, Frame, FrameSlot, Pixels};

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
    let mut ticker = tokio::time::interval(Duration::from_secs_f32(1.0 / fps.max(0.01)));
    loop {
        for file in &files {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match tokio::fs::read(file).await {
                Ok(bytes) => {
                    slot.offer(Frame::new(Pixels::Encoded(bytes.into())));
                }
                Err(e) => {
                    tracing::warn!(camera = %id, file = %file.display(), error = %e, "replay frame unreadable, skipped")
                }
            }
        }
        if !repeat {
            slot.set_state("finished", None);
            return;
        }
    }
}
