//! `greeter eval-video`: the camera path of `serve` (ffmpeg source, tracks, one decision per
//! track) run on a file as fast as it goes, with a scratch gallery enrolled from labelled
//! folders; announcements, speed and, with a truth file, what was right, wrong and missed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Output;
use super::gallery::{engine, labelled_people, scratch_settings};
use crate::capture::video::{VideoOptions, VideoStream};
use crate::config::Settings;
use crate::engine::Follower;
use crate::eval::open_set;
use crate::vision::{StageTimes, Track, Verdict};

pub struct EvalVideoArgs {
    pub video: PathBuf,
    pub gallery: Vec<PathBuf>,
    pub truth: Option<PathBuf>,
    /// frames analysed per second of video (default: the first camera's sample_fps)
    pub fps: Option<f32>,
}

/// Who is in view when: `name,start_s,end_s` lines.
struct Truth {
    name: String,
    start: f64,
    end: f64,
}

fn read_truth(path: &Path) -> Result<Vec<Truth>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut truth = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = match fields[..] {
            [name, start, end] => start
                .parse::<f64>()
                .ok()
                .zip(end.parse::<f64>().ok())
                .filter(|(s, e)| s <= e)
                .map(|(start, end)| Truth {
                    name: name.to_owned(),
                    start,
                    end,
                }),
            _ => None,
        };
        truth.push(parsed.with_context(|| {
            format!(
                "{} line {}: expected `name,start_s,end_s` (start ≤ end), got {line:?}",
                path.display(),
                n + 1
            )
        })?);
    }
    Ok(truth)
}

#[derive(Serialize)]
struct Announcement {
    t: f64,
    name: String,
    score: f32,
    track: u64,
    /// frame read from the decoder → card ready, milliseconds
    arrival_to_card_ms: f64,
}

#[derive(Serialize)]
struct TrackReport {
    track: u64,
    first_seen: f64,
    last_seen: f64,
    frames: u32,
    embedded: u32,
    /// the name given and its fused score, or null: unknown
    name: Option<String>,
    score: Option<f32>,
    /// false for a customer already announced on this source within the cool-down
    announced: bool,
}

#[derive(Serialize, Default)]
struct StageMs {
    decode_wait: f64,
    detect: f64,
    landmarks: f64,
    align: f64,
    embed: f64,
}

#[derive(Serialize)]
struct Report {
    video: String,
    width: u32,
    height: u32,
    duration_s: f64,
    source_fps: f64,
    frames_analysed: u64,
    analysed_fps: f64,
    decoded_fps: f64,
    realtime_factor: f64,
    wall_s: f64,
    /// CPU seconds of this process and the decoder per wall second
    cpu_cores_used: f64,
    faces: usize,
    faces_passed: usize,
    /// faces of at least 60 px (large enough to recognise) and how many pass the camera rules
    large_faces: usize,
    large_faces_passed: usize,
    embedded: usize,
    /// mean per analysed frame
    stage_ms: StageMs,
    tracks: Vec<TrackReport>,
    announcements: Vec<Announcement>,
    arrival_to_card_ms_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    right: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wrong: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<Vec<String>>,
    /// per truth name: seconds from its start_s to its first right announcement
    #[serde(skip_serializing_if = "Option::is_none")]
    first_announcement_s: Option<BTreeMap<String, Option<f64>>>,
}

/// CPU seconds used by this process and its waited-for children (the decoder).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // fields after the command name, which is in parentheses and may hold spaces
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the name and state
    let ticks: f64 = fields.get(11..15).map_or(0.0, |f| f.iter().sum());
    ticks / 100.0
}

pub fn eval_video(settings: &Settings, args: EvalVideoArgs, out: Output) -> Result<()> {
    let truth = args.truth.as_deref().map(read_truth).transpose()?;
    let per_person = settings.gallery.max_portraits_per_customer;
    let (settings, scratch) = scratch_settings(settings, per_person);
    let result = run(&settings, &args, per_person);
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = result?;
    if let Some(truth) = truth {
        score(&mut report, &truth);
    }
    if out.json {
        out.print_json(&report);
    } else {
        print(&report);
    }
    Ok(())
}

fn run(settings: &Settings, args: &EvalVideoArgs, per_person: usize) -> Result<Report> {
    let engine = engine(settings)?;
    let (_, people) = labelled_people(&engine, &args.gallery)?;
    let mut names = HashMap::new();
    for mut person in people {
        person.portraits.truncate(per_person);
        if !person.portraits.is_empty() {
            let id = open_set::enrol(&engine.gallery, &person.name, person.portraits)?;
            names.insert(id, person.name);
        }
    }
    let sample_fps = args
        .fps
        .or(settings.cameras.first().map(|c| c.sample_fps))
        .filter(|f| *f > 0.0)
        .unwrap_or(5.0);
    let options = VideoOptions {
        sample_fps,
        realtime: false,
        repeat: false,
        max_pixels: settings.vision.max_image_pixels,
    };
    let url = args.video.display().to_string();
    let cooldown = Duration::from_secs(settings.server.announce_cooldown_s);
    let mut follower = Follower::new(settings.vision.tracking.clone(), "eval-video", cooldown);
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let mut stream = VideoStream::open(&url, &options, &CancellationToken::new())
        .with_context(|| format!("cannot play {url}"))?;
    let info = stream.info;
    let mut report = Report {
        video: url.clone(),
        width: info.width,
        height: info.height,
        duration_s: 0.0,
        source_fps: info.fps,
        frames_analysed: 0,
        analysed_fps: 0.0,
        decoded_fps: 0.0,
        realtime_factor: 0.0,
        wall_s: 0.0,
        cpu_cores_used: 0.0,
        faces: 0,
        faces_passed: 0,
        large_faces: 0,
        large_faces_passed: 0,
        embedded: 0,
        stage_ms: StageMs::default(),
        tracks: Vec::new(),
        announcements: Vec::new(),
        arrival_to_card_ms_p50: None,
        right: None,
        wrong: None,
        missed: None,
        first_announcement_s: None,
    };
    let (mut times, mut waiting) = (StageTimes::default(), Duration::ZERO);
    let mut ended: Vec<Track> = Vec::new();
    loop {
        let asked = Instant::now();
        let Some((frame, t)) = stream.next_frame()? else {
            break;
        };
        let arrived = Instant::now();
        waiting += arrived - asked;
        let followed = follower.step(&engine.recognizer, &frame, t)?;
        report.frames_analysed += 1;
        report.faces += followed.faces;
        report.faces_passed += followed.faces_passed;
        report.large_faces += followed.large_faces;
        report.large_faces_passed += followed.large_faces_passed;
        report.embedded += followed.embedded;
        times.detect += followed.times.detect;
        times.landmarks += followed.times.landmarks;
        times.align += followed.times.align;
        times.embed += followed.times.embed;
        ended.extend(followed.ended);
        for g in followed.greetings {
            report.announcements.push(Announcement {
                t: g.t,
                name: g.card.name,
                score: g.card.score,
                track: g.track,
                arrival_to_card_ms: arrived.elapsed().as_secs_f64() * 1e3,
            });
        }
    }
    drop(stream);
    let wall = started.elapsed().as_secs_f64();
    ended.extend(follower.finish());
    ended.sort_by_key(|t| t.id);
    report.tracks = ended
        .into_iter()
        .map(|t| {
            let (name, score, announced) = match t.verdict {
                Verdict::Known {
                    customer_id,
                    score,
                    announced,
                } => (names.get(&customer_id).cloned(), Some(score), announced),
                Verdict::Undecided => (None, None, false),
            };
            TrackReport {
                track: t.id,
                first_seen: t.first_seen,
                last_seen: t.last_seen,
                frames: t.frames,
                embedded: t.embedded,
                name,
                score,
                announced,
            }
        })
        .collect();
    let n = report.frames_analysed.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / n;
    report.stage_ms = StageMs {
        decode_wait: ms(waiting),
        detect: ms(times.detect),
        landmarks: ms(times.landmarks),
        align: ms(times.align),
        embed: ms(times.embed),
    };
    report.duration_s = info
        .duration_s
        .unwrap_or(report.frames_analysed as f64 / sample_fps as f64);
    report.wall_s = wall;
    report.realtime_factor = report.duration_s / wall;
    report.analysed_fps = report.frames_analysed as f64 / wall;
    report.decoded_fps = info.fps * report.duration_s / wall;
    report.cpu_cores_used = (cpu_seconds() - cpu_start) / wall;
    let mut latencies: Vec<f64> = report
        .announcements
        .iter()
        .map(|a| a.arrival_to_card_ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    report.arrival_to_card_ms_p50 = latencies.get(latencies.len() / 2).copied();
    Ok(report)
}

fn score(report: &mut Report, truth: &[Truth]) {
    let is_right = |a: &Announcement| {
        truth
            .iter()
            .any(|w| w.name == a.name && (w.start..=w.end).contains(&a.t))
    };
    let right = report.announcements.iter().filter(|a| is_right(a)).count();
    let mut first = BTreeMap::new();
    for w in truth {
        let seen = report
            .announcements
            .iter()
            .filter(|a| a.name == w.name && (w.start..=w.end).contains(&a.t))
            .map(|a| a.t - w.start)
            .reduce(f64::min);
        let entry = first.entry(w.name.clone()).or_insert(None);
        *entry = match (*entry, seen) {
            (Some(a), Some(b)) => Some(f64::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    report.right = Some(right);
    report.wrong = Some(report.announcements.len() - right);
    report.missed = Some(
        first
            .iter()
            .filter(|(_, t)| t.is_none())
            .map(|(name, _)| name.clone())
            .collect(),
    );
    report.first_announcement_s = Some(first);
}

fn print(r: &Report) {
    println!(
        "{}: {}×{}, {:.1} s at {:.2} fps; {} frames analysed ({:.1}/s), {:.0} decoded/s, {:.2}× real time, {:.2} cores",
        r.video,
        r.width,
        r.height,
        r.duration_s,
        r.source_fps,
        r.frames_analysed,
        r.analysed_fps,
        r.decoded_fps,
        r.realtime_factor,
        r.cpu_cores_used
    );
    let share = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    println!(
        "faces {} ({:.0}% pass the camera rules); ≥60 px: {} ({:.0}% pass); {} embedded",
        r.faces,
        share(r.faces_passed, r.faces),
        r.large_faces,
        share(r.large_faces_passed, r.large_faces),
        r.embedded
    );
    let s = &r.stage_ms;
    println!(
        "per frame: decoder wait {:.1} ms, detect {:.1}, landmarks {:.1}, align {:.1}, embed {:.1}",
        s.decode_wait, s.detect, s.landmarks, s.align, s.embed
    );
    for t in &r.tracks {
        println!(
            "track {:>3}: {:>6.2}–{:<6.2} s, {:>3} frames, {} embedded: {}{}",
            t.track,
            t.first_seen,
            t.last_seen,
            t.frames,
            t.embedded,
            t.name.as_deref().unwrap_or("unknown"),
            if t.name.is_some() && !t.announced {
                " (announced earlier in the cool-down)"
            } else {
                ""
            }
        );
    }
    for a in &r.announcements {
        println!(
            "announced at {:>6.2} s: {} (score {:.3}, track {}, {:.0} ms after the frame arrived)",
            a.t, a.name, a.score, a.track, a.arrival_to_card_ms
        );
    }
    if let (Some(right), Some(wrong), Some(missed)) = (r.right, r.wrong, &r.missed) {
        println!("right {right}, wrong {wrong}, missed {missed:?}");
        for (name, t) in r.first_announcement_s.iter().flatten() {
            match t {
                Some(t) => println!("  {name}: first announced {t:.2} s after its start"),
                None => println!("  {name}: never announced"),
            }
        }
    }
}
