//! An MJPEG-over-HTTP camera: a `multipart/x-mixed-replace` response whose parts are JPEGs.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Backoff, Frame, FrameSlot, Pixels};

/// A part bigger than this is not a camera frame: drop the connection rather than grow forever.
const MAX_PART_BYTES: usize = 32 << 20;

/// Splits an MJPEG byte stream into JPEG frames. It walks each JPEG's own segments rather than
/// trusting part headers, which cameras get wrong (missing or stale Content-Length, boundaries
/// with or without leading dashes), and so is not fooled by an EXIF thumbnail's end marker.
#[derive(Default)]
pub struct MjpegParser {
    buf: BytesMut,
}

#[derive(Debug, thiserror::Error)]
#[error("no JPEG end marker within {MAX_PART_BYTES} bytes: not an MJPEG stream")]
pub struct Oversized;

impl MjpegParser {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete JPEG, if the buffer holds one. A loop, not recursion: a stream of
    /// false start markers costs time, never stack.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, Oversized> {
        loop {
            let Some(start) = find(&self.buf, &[0xFF, 0xD8, 0xFF]) else {
                // keep a possible partial marker at the end
                let keep = self.buf.len().min(2);
                self.buf.advance(self.buf.len() - keep);
                return Ok(None);
            };
            self.buf.advance(start);
            match jpeg_length(&self.buf) {
                Jpeg::Complete(length) => return Ok(Some(self.buf.split_to(length).freeze())),
                // not a JPEG after all: look for the next start marker
                Jpeg::Malformed => self.buf.advance(2),
                Jpeg::Incomplete if self.buf.len() > MAX_PART_BYTES => return Err(Oversized),
                Jpeg::Incomplete => return Ok(None),
            }
        }
    }
}

enum Jpeg {
    Complete(usize),
    Incomplete,
    Malformed,
}

/// The length of the JPEG at the start of `buf`: its segments are walked by their lengths,
/// and entropy-coded data (where 0xFF is escaped as 0xFF00) is scanned for the next marker.
fn jpeg_length(buf: &[u8]) -> Jpeg {
    let mut at = 2;
    loop {
        let (Some(&ff), Some(&marker)) = (buf.get(at), buf.get(at + 1)) else {
            return Jpeg::Incomplete;
        };
        if ff != 0xFF {
            return Jpeg::Malformed;
        }
        match marker {
            0xFF => at += 1, // fill byte
            0xD9 => return Jpeg::Complete(at + 2),
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let Some(length) = buf.get(at + 2..at + 4) else {
                    return Jpeg::Incomplete;
                };
                at += 2 + u16::from_be_bytes([length[0], length[1]]) as usize;
                if marker == 0xDA {
                    // scan data runs up to the next marker that is not an escape or restart
                    loop {
                        let Some(next) = buf.get(at..).and_then(|rest| find(rest, &[0xFF])) else {
                            return Jpeg::Incomplete;
                        };
                        at += next;
                        match buf.get(at + 1) {
                            None => return Jpeg::Incomplete,
                            Some(0x00 | 0xD0..=0xD7) => at += 2,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("cannot connect")]
    Connect(#[source] reqwest::Error),
    #[error("the camera answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("stream broken")]
    Read(#[source] reqwest::Error),
    #[error("stream ended")]
    Ended,
    #[error(transparent)]
    Oversized(#[from] Oversized),
}

pub(super) async fn run(id: String, url: String, slot: Arc<FrameSlot>, stop: CancellationToken) {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("a plain HTTP client builds");
    let mut backoff = Backoff::default();
    loop {
        slot.set_state("connecting", None);
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = stream(&client, &url, &slot, &mut backoff) => outcome,
        };
        let error = outcome.unwrap_err();
        let delay = backoff.next_delay();
        // the URL may carry credentials: log the camera id, not the URL
        tracing::warn!(camera = %id, error = %crate::telemetry::chain(&error), retry_in_s = delay.as_secs(), "MJPEG camera unavailable");
        slot.set_state("retrying", Some(crate::telemetry::chain(&error)));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn stream(
    client: &reqwest::Client,
    url: &str,
    slot: &FrameSlot,
    backoff: &mut Backoff,
) -> Result<(), StreamError> {
    let response = client.get(url).send().await.map_err(StreamError::Connect)?;
    if !response.status().is_success() {
        return Err(StreamError::Status(response.status()));
    }
    let mut body = response.bytes_stream();
    let mut parser = MjpegParser::default();
    while let Some(chunk) = body.next().await {
        parser.push(&chunk.map_err(StreamError::Read)?);
        while let Some(jpeg) = parser.next_frame()? {
            backoff.reset();
            slot.offer(Frame::new(Pixels::Encoded(jpeg)));
        }
    }
    Err(StreamError::Ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_false_start_markers_is_skipped_without_deep_recursion() {
        // each unit starts like a JPEG (SOI, an empty APP0) and then is not one: the old
        // recursive splitter used a stack frame per unit and overflowed
        let mut parser = MjpegParser::default();
        let junk: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0x00].repeat(1_000_000);
        parser.push(&junk);
        parser.push(&jpeg(7));
        let frame = parser
            .next_frame()
            .unwrap()
            .expect("the real frame after the junk");
        assert_eq!(&frame[..], &jpeg(7)[..]);
    }

    /// SOI, an APP1 segment holding a whole thumbnail JPEG, SOS with escaped and restart
    /// bytes in its data, EOI.
    fn jpeg(tag: u8) -> Vec<u8> {
        let thumbnail = [0xFF, 0xD8, 0xFF, 0xD9];
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 2 + thumbnail.len() as u8];
        out.extend_from_slice(&thumbnail);
        out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, tag]);
        out.extend_from_slice(&[tag, 0xFF, 0x00, 0xFF, 0xD3, tag, 0xFF, 0xD9]);
        out
    }

    #[test]
    fn frames_are_cut_at_their_markers_whatever_the_chunking() {
        let mut stream = Vec::new();
        for tag in 1..=3 {
            stream.extend_from_slice(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n");
            stream.extend_from_slice(&jpeg(tag));
            stream.extend_from_slice(b"\r\n");
        }
        for chunk_size in [1, 3, 7, stream.len()] {
            let mut parser = MjpegParser::default();
            let mut frames = Vec::new();
            for chunk in stream.chunks(chunk_size) {
                parser.push(chunk);
                while let Some(frame) = parser.next_frame().unwrap() {
                    frames.push(frame.to_vec());
                }
            }
            assert_eq!(
                frames,
                vec![jpeg(1), jpeg(2), jpeg(3)],
                "chunks of {chunk_size}"
            );
        }
    }

    #[test]
    fn a_stream_without_jpegs_does_not_grow_the_buffer() {
        let mut parser = MjpegParser::default();
        for _ in 0..1000 {
            parser.push(&[0u8; 1024]);
            assert!(parser.next_frame().unwrap().is_none());
        }
        assert!(parser.buf.len() <= 2);
    }
}
