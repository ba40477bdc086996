//! Streams and video files (`rtsp://`, `http(s)://` HLS or MJPEG, local files) decoded by
//! ffmpeg in a child process that writes raw RGB frames to a pipe, as NVRs such as Frigate do:
//! Debian's ffmpeg is a well-kept decoder for every codec a camera sends, and a crash in it
//! cannot take the service down. ffprobe reads the frame size first; ffmpeg's `fps` filter
//! samples the stream, so frames that are not analysed are never converted or copied.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Backoff, Frame, FrameSlot, Pixels};

/// ffprobe must answer within this; a stream that sends no frame for this long is restarted.
const STALL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot run {program}: install ffmpeg (scripts/setup.sh does)")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("ffprobe found no video in {url}: {why}")]
    Probe { url: String, why: String },
    #[error("{url}: frames of {width}×{height} are above the {max} pixel limit")]
    TooLarge {
        url: String,
        width: u32,
        height: u32,
        max: u64,
    },
    #[error("reading frames from ffmpeg: {0}")]
    Read(#[source] std::io::Error),
}

/// How a stream is read.
#[derive(Debug, Clone)]
pub struct VideoOptions {
    /// frames per second handed on (0: every frame)
    pub sample_fps: f32,
    /// play files at their own frame rate (a camera); `false`: as fast as they decode (eval)
    pub realtime: bool,
    /// start a file again at its end
    pub repeat: bool,
    pub max_pixels: u64,
}

/// What ffprobe says about the first video stream.
#[derive(Debug, Clone, Copy)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// the stream's own frame rate
    pub fps: f64,
    /// files only
    pub duration_s: Option<f64>,
}

/// The URL's password, if it has one (`rtsp://user:password@host/…`).
fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (credentials, _) = authority.rsplit_once('@')?;
    let (_, password) = credentials.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `text` (the URL, or a line ffmpeg wrote about it) without the URL's password: logs and
/// `GET /v1/cameras` are read by more people than the config file.
pub fn hide_password(text: &str, url: &str) -> String {
    match password(url) {
        Some(password) => text.replace(password, "***"),
        None => text.to_owned(),
    }
}

fn is_file(url: &str) -> bool {
    !url.contains("://") || url.starts_with("file:")
}

fn input_args(url: &str) -> Vec<&str> {
    let mut args = Vec::new();
    if url.starts_with("rtsp://") || url.starts_with("rtsps://") {
        // UDP loses packets on busy store networks and smears frames; TCP does not
        args.extend(["-rtsp_transport", "tcp"]);
    }
    args.extend(["-i", url]);
    args
}

/// Waits for a child (stdout and stderr piped) to end, killed after `timeout`; its stdout, or
/// the last line of its stderr.
fn output_within(mut child: Child, timeout: Duration) -> Result<Vec<u8>, String> {
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = out.join().ok().and_then(Result::ok).unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let why = stderr.lines().last().unwrap_or("failed").trim().to_owned();
        return Err(why);
    }
    Ok(stdout)
}

pub fn probe(url: &str) -> Result<VideoInfo, VideoError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        streams: Vec<Stream>,
        format: Option<Format>,
    }
    #[derive(Deserialize)]
    struct Stream {
        width: u32,
        height: u32,
        avg_frame_rate: Option<String>,
        r_frame_rate: Option<String>,
    }
    #[derive(Deserialize)]
    struct Format {
        duration: Option<String>,
    }
    let mut command = Command::new("ffprobe");
    command.args(["-v", "error", "-select_streams", "v:0"]);
    command.args([
        "-show_entries",
        "stream=width,height,avg_frame_rate,r_frame_rate:format=duration",
        "-of",
        "json",
    ]);
    command.args(input_args(url));
    let bad = |why: String| VideoError::Probe {
        url: hide_password(url, url),
        why: hide_password(&why, url),
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| VideoError::Spawn {
            program: "ffprobe",
            source,
        })?;
    let stdout = output_within(child, STALL).map_err(bad)?;
    let probe: Probe = serde_json::from_slice(&stdout).map_err(|e| bad(e.to_string()))?;
    let stream = probe
        .streams
        .into_iter()
        .next()
        .ok_or_else(|| bad("no video stream".into()))?;
    let rate = |text: &Option<String>| {
        let (n, d) = text.as_deref()?.split_once('/')?;
        let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
        (n > 0.0 && d > 0.0).then(|| n / d)
    };
    Ok(VideoInfo {
        width: stream.width,
        height: stream.height,
        fps: rate(&stream.avg_frame_rate)
            .or_else(|| rate(&stream.r_frame_rate))
            .unwrap_or(25.0),
        duration_s: probe
            .format
            .and_then(|f| f.duration)
            .and_then(|d| d.parse().ok()),
    })
}

/// One running ffmpeg; killed when dropped.
pub struct VideoStream {
    child: Arc<Mutex<Child>>,
    stdout: ChildStdout,
    pub info: VideoInfo,
    sample_fps: f64,
    index: u64,
    last_error: Arc<Mutex<Option<String>>>,
    progress: Arc<AtomicU64>,
    started: Instant,
    done: Arc<AtomicBool>,
}

impl VideoStream {
    /// Probes and starts decoding. `stop` (and a stall) kill the decoder, which ends the
    /// stream: a blocked read never outlives either.
    pub fn open(
        url: &str,
        options: &VideoOptions,
        stop: &CancellationToken,
    ) -> Result<Self, VideoError> {
        let info = probe(url)?;
        if info.width as u64 * info.height as u64 > options.max_pixels {
            return Err(VideoError::TooLarge {
                url: hide_password(url, url),
                width: info.width,
                height: info.height,
                max: options.max_pixels,
            });
        }
        let mut command = Command::new("ffmpeg");
        command.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
        if is_file(url) {
            if options.realtime {
                command.arg("-re");
            }
            if options.repeat {
                command.args(["-stream_loop", "-1"]);
            }
        }
        command.args(input_args(url));
        command.arg("-an");
        let sample_fps = if options.sample_fps > 0.0 {
            command.args(["-vf", &format!("fps={}", options.sample_fps)]);
            options.sample_fps as f64
        } else {
            info.fps
        };
        command.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| VideoError::Spawn {
                program: "ffmpeg",
                source,
            })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let last_error = Arc::new(Mutex::new(None));
        std::thread::spawn({
            let last_error = last_error.clone();
            let raw = url.to_owned();
            let url = hide_password(url, url);
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let line = hide_password(&line, &raw);
                    tracing::warn!(url = %url, decoder = %line, "ffmpeg");
                    *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
                }
            }
        });
        let stream = VideoStream {
            child: Arc::new(Mutex::new(child)),
            stdout,
            info,
            sample_fps,
            index: 0,
            last_error,
            progress: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            done: Arc::new(AtomicBool::new(false)),
        };
        stream.watch(stop.clone());
        Ok(stream)
    }

    /// Kills the decoder when `stop` is cancelled or no frame came for `STALL`.
    fn watch(&self, stop: CancellationToken) {
        let (child, progress, done, started) = (
            self.child.clone(),
            self.progress.clone(),
            self.done.clone(),
            self.started,
        );
        let last_error = self.last_error.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(100));
                let idle =
                    started.elapsed() - Duration::from_millis(progress.load(Ordering::Acquire));
                let stalled = idle > STALL;
                if stop.is_cancelled() || stalled {
                    if stalled {
                        *last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("no frame for {} s", STALL.as_secs()));
                    }
                    let _ = child.lock().unwrap_or_else(|p| p.into_inner()).kill();
                    return;
                }
            }
        });
    }

    /// The next sampled frame and its time in the stream (seconds); `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<(RgbImage, f64)>, VideoError> {
        let (w, h) = (self.info.width, self.info.height);
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        let mut filled = 0;
        while filled < buf.len() {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(VideoError::Read(std::io::Error::from(
                        std::io::ErrorKind::UnexpectedEof,
                    )));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VideoError::Read(e)),
            }
        }
        self.progress
            .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
        let t = self.index as f64 / self.sample_fps;
        self.index += 1;
        let image = RgbImage::from_raw(w, h, buf).expect("buffer sized for the frame");
        Ok(Some((image, t)))
    }

    /// The decoder's last complaint (its stderr), if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether ffmpeg ended with success (a file played to its end).
    fn finished_cleanly(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        matches!(child.wait(), Ok(status) if status.success())
    }
}

impl Drop for VideoStream {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A camera reading a stream or file: frames into the slot (newest wins), restarted with
/// back-off when the stream drops; a file that is not repeated ends as "finished".
pub(super) fn spawn(
    id: String,
    url: String,
    options: VideoOptions,
    slot: Arc<FrameSlot>,
    stop: CancellationToken,
) {
    std::thread::spawn(move || {
        let shown = hide_password(&url, &url);
        let mut backoff = Backoff::default();
        loop {
            slot.set_state("connecting", None);
            let error = match VideoStream::open(&url, &options, &stop) {
                Ok(mut stream) => {
                    tracing::info!(camera = %id, url = %shown, width = stream.info.width, height = stream.info.height, fps = stream.info.fps, "video camera started");
                    let mut frames = 0u64;
                    let ended = loop {
                        match stream.next_frame() {
                            Ok(Some((image, _))) => {
                                frames += 1;
                                if frames == 1 {
                                    backoff.reset();
                                }
                                slot.offer(Frame::new(Pixels::Rgb(image)));
                            }
                            Ok(None) => break Ok(()),
                            Err(e) => break Err(e.to_string()),
                        }
                    };
                    if stop.is_cancelled() {
                        return;
                    }
                    match ended {
                        Ok(()) if is_file(&url) && !options.repeat && stream.finished_cleanly() => {
                            slot.set_state("finished", None);
                            tracing::info!(camera = %id, frames, "video file played to its end");
                            return;
                        }
                        Ok(()) => stream
                            .last_error()
                            .unwrap_or_else(|| "the stream ended".into()),
                        Err(e) => stream.last_error().unwrap_or(e),
                    }
                }
                Err(e) => crate::telemetry::chain(&e),
            };
            let delay = backoff.next_delay();
            tracing::warn!(camera = %id, url = %shown, error = %error, retry_in_s = delay.as_secs(), "video camera lost its stream");
            slot.set_state("retrying", Some(error));
            let until = Instant::now() + delay;
            while Instant::now() < until {
                if stop.is_cancelled() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cameras_password_is_never_shown() {
        let url = "rtsp://admin:s3cret@192.168.1.64:554/Streaming/Channels/101";
        assert_eq!(
            hide_password(url, url),
            "rtsp://admin:***@192.168.1.64:554/Streaming/Channels/101"
        );
        let line = format!("{url}: Connection refused");
        assert!(!hide_password(&line, url).contains("s3cret"));
        for plain in [
            "rtsp://192.168.1.64/live",
            "/videos/door.mp4",
            "http://cam/a@b",
        ] {
            assert_eq!(hide_password(plain, plain), plain);
        }
    }

    #[test]
    fn files_are_told_from_streams() {
        assert!(is_file("/videos/door.mp4"));
        assert!(is_file("file:door.mp4"));
        assert!(!is_file("rtsp://cam/live"));
        assert_eq!(
            input_args("rtsp://cam/live"),
            ["-rtsp_transport", "tcp", "-i", "rtsp://cam/live"]
        );
    }
}
