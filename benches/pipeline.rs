//! Per-stage latency of the face pipeline (decode, detect, landmarks, align, embed, total) for
//! a 640×480 one-face frame and the 1920-wide demo photos, with both detectors; and peak RSS.
//!
//! cargo bench --bench pipeline            (after scripts/setup.sh)
//! GREETER_RUNTIME__INTRA_THREADS=1 cargo bench --bench pipeline
#[path = "support.rs"]
mod support;

use std::io::Cursor;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use greeter::config::Settings;
use greeter::vision::{Pipeline, decode};

struct Input {
    name: String,
    jpeg: Vec<u8>,
}

fn demo_dir() -> PathBuf {
    greeter::config::home().join(".cache/face-api/package/demo")
}

fn inputs() -> Vec<Input> {
    let sample1 =
        std::fs::read(demo_dir().join("sample1.jpg")).expect("run scripts/setup.sh first");
    // A 640×480 window around one face of sample1 (face at about 414,354, 177×239).
    let frame = decode::decode(&sample1, u64::MAX).unwrap();
    let window = image::imageops::crop_imm(&frame, 100, 200, 640, 480).to_image();
    let mut vga = Cursor::new(Vec::new());
    window.write_to(&mut vga, image::ImageFormat::Jpeg).unwrap();
    let mut inputs = vec![Input {
        name: "640x480 (1 face)".into(),
        jpeg: vga.into_inner(),
    }];
    for i in 1..=6 {
        let name = format!("sample{i}.jpg");
        inputs.push(Input {
            jpeg: std::fs::read(demo_dir().join(&name)).unwrap(),
            name,
        });
    }
    inputs
}

use support::percentile;

fn peak_rss_mb() -> f64 {
    support::memory_mb("VmHWM")
}

fn main() {
    let settings = Settings::load(None).expect("settings");
    let inputs = inputs();
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!(
        "greeter pipeline bench: {} iterations per input, intra_threads {}, alignment {:?}, embedder {}",
        iterations,
        settings.runtime.intra_threads,
        settings.vision.alignment,
        settings.vision.embedder
    );
    for detector in ["ssd_mobilenetv1", "tiny_face_detector"] {
        let mut settings = settings.clone();
        settings.vision.detector = detector.into();
        let pipeline = Pipeline::load(&settings.vision, &settings.runtime).expect("models load");
        println!("\n== detector {detector} == (ms: p50 / p90)");
        println!(
            "{:<18} {:>5} {:>13} {:>13} {:>13} {:>13} {:>13} {:>13}",
            "input", "faces", "decode", "detect", "landmarks", "align", "embed", "total"
        );
        let mut all_totals = Vec::new();
        for input in &inputs {
            let mut stages: [Vec<Duration>; 6] = Default::default();
            let mut faces = 0;
            for i in 0..iterations + 2 {
                let started = Instant::now();
                let frame = decode::decode(&input.jpeg, settings.vision.max_image_pixels).unwrap();
                let decoded = started.elapsed();
                let analysis = pipeline.process(&frame).unwrap();
                let total = started.elapsed();
                faces = analysis.faces.len();
                if i < 2 {
                    continue; // warm-up
                }
                let t = analysis.times;
                for (stage, d) in
                    stages
                        .iter_mut()
                        .zip([decoded, t.detect, t.landmarks, t.align, t.embed, total])
                {
                    stage.push(d);
                }
            }
            for s in &mut stages {
                s.sort();
            }
            let cell = |s: &Vec<Duration>| {
                format!("{:>6.1}/{:<6.1}", percentile(s, 0.5), percentile(s, 0.9))
            };
            println!(
                "{:<18} {:>5} {} {} {} {} {} {}",
                input.name,
                faces,
                cell(&stages[0]),
                cell(&stages[1]),
                cell(&stages[2]),
                cell(&stages[3]),
                cell(&stages[4]),
                cell(&stages[5])
            );
            if input.name.starts_with("sample") {
                all_totals.extend(stages[5].iter().copied());
            }
        }
        all_totals.sort();
        println!(
            "demo photos, all faces, total p50 {:.1} ms",
            percentile(&all_totals, 0.5)
        );
    }
    println!("\npeak RSS {:.0} MB", peak_rss_mb());
}
