//! Helpers shared by the bench binaries.
#![allow(dead_code)]

use std::time::Duration;

/// A memory figure of this process from /proc/self/status, in MB: "VmRSS" (now) or "VmHWM"
/// (peak).
pub fn memory_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The p-th quantile of sorted durations, in ms.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// An environment variable parsed, or the default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn jpeg(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A 640×480 window around one face of the demo photo sample1.
pub fn one_face_vga() -> image::RgbImage {
    let demo = greeter::config::home().join(".cache/face-api/package/demo/sample1.jpg");
    let photo = greeter::vision::decode::decode(
        &std::fs::read(demo).expect("run scripts/setup.sh first"),
        u64::MAX,
    )
    .unwrap();
    image::imageops::crop_imm(&photo, 100, 200, 640, 480).to_image()
}

/// The default settings on a free local port, a data dir of the bench's own and one admin key.
pub fn bench_settings(data: &std::path::Path, admin_key: &str) -> greeter::config::Settings {
    let mut settings = greeter::config::Settings::load(None).expect("settings");
    settings.server.bind = "127.0.0.1:0".into();
    settings.gallery.data_dir = data.to_owned();
    settings.gallery.key_file = data.join("bench-data.key");
    settings.auth = greeter::api::AuthSettings {
        admin: vec![admin_key.into()],
        ..Default::default()
    };
    settings
}

/// The service running on `settings`: its base URL, and the token that stops it.
pub async fn start(
    settings: greeter::config::Settings,
) -> (String, tokio_util::sync::CancellationToken) {
    let app = greeter::startup::Application::build(settings)
        .await
        .expect("service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = app.stop_token();
    tokio::spawn(app.run_until_stopped());
    (base, stop)
}
