//! What the fuzz targets (`fuzz/`, cargo-fuzz) feed with arbitrary bytes, and what
//! `tests/fuzz_regressions.rs` replays on every `cargo test`: each function takes bytes the way
//! the service takes them from the network, a file or a camera, through the same code. Any
//! answer is fine, an error included; a panic, a hang or unbounded memory is a bug. Each tells
//! what it got to, so a test can check that valid input reaches the deep paths.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

/// The boundary of the forms `enrolment_form` and `checkout_body` build around their input.
pub const BOUNDARY: &str = "fuzzBoundary";

/// Frames above this many pixels are refused before decoding (the service's default is 40M; a
/// smaller bar keeps each run fast without skipping any code).
const MAX_PIXELS: u64 = 4_000_000;

/// A photo or frame from a client, a camera or a file, decoded as every path decodes it.
/// The decoded size.
pub fn image(data: &[u8]) -> Result<(u32, u32), String> {
    crate::vision::decode::decode(data, MAX_PIXELS)
        .map(|image| image.dimensions())
        .map_err(|e| e.to_string())
}

/// The body of `POST /v1/customers` (multipart), read into an enrolment: its name and photos.
pub fn enrolment_form(data: &[u8]) -> Result<(String, usize), String> {
    let request = request(&format!("multipart/form-data; boundary={BOUNDARY}"), data);
    run(async {
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| e.to_string())?;
        let enrolment = crate::api::customers::read_enrolment(multipart, "fuzz".into())
            .await
            .map_err(|e| e.to_string())?;
        Ok((enrolment.name, enrolment.photos.len()))
    })
}

/// The body of `POST /v1/checkout`: JSON when the first byte is even, else multipart (the
/// rest of the input is the body). The basket's lines.
pub fn checkout_body(data: &[u8]) -> Result<usize, String> {
    let Some((&first, body)) = data.split_first() else {
        return Err("empty".into());
    };
    let content_type = if first % 2 == 0 {
        "application/json".to_owned()
    } else {
        format!("multipart/form-data; boundary={BOUNDARY}")
    };
    let request = request(&content_type, body);
    run(async {
        crate::api::customers::read_checkout(request, "fuzz".into())
            .await
            .map(|checkout| checkout.basket.len())
            .map_err(|e| e.to_string())
    })
}

/// A catalogue upload (CSV or JSON), parsed as `POST /v1/catalog` parses it: products read and
/// rows refused.
pub fn catalogue(data: &[u8]) -> Result<(usize, usize), String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    crate::crm::catalog::parse(text)
        .map(|(products, errors)| (products.len(), errors.len()))
        .map_err(|e| e.to_string())
}

/// An MJPEG camera stream arriving in chunks: the first byte sets the chunk size, so the same
/// stream is also tried cut at other places.
/// The frames found.
pub fn mjpeg_stream(data: &[u8]) -> usize {
    let Some((&first, stream)) = data.split_first() else {
        return 0;
    };
    let mut parser = crate::capture::mjpeg::MjpegParser::default();
    let mut frames = 0;
    for chunk in stream.chunks(usize::from(first).max(1)) {
        parser.push(chunk);
        while let Ok(Some(frame)) = parser.next_frame() {
            assert!(frame.starts_with(&[0xFF, 0xD8]), "a frame is a JPEG");
            frames += 1;
        }
    }
    frames
}

fn request(content_type: &str, body: &[u8]) -> Request {
    Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .expect("a valid request")
}

fn run<T>(work: impl Future<Output = T>) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
        })
        .block_on(work)
}
