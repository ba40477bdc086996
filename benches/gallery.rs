//! Gallery numbers: search latency and memory for synthetic galleries (Flat vs HNSW, with
//! HNSW recall@1 against Flat), and start-up time with 100k enrolled portraits (index present /
//! rebuilt from the store).
//!
//! Then identify latency at 100k portraits, idle and while enrolments and index saves run.
//! First, what sealing at rest costs per embedding and per crop.
//!
//! cargo bench --bench gallery                      (all sizes: 10k, 100k, 1M)
//! GALLERY_SIZES=10000,100000 cargo bench --bench gallery
#[path = "support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use greeter::gallery::index::VectorIndex;
use greeter::gallery::{Gallery, GallerySettings, MatchRules, NewCustomer, PortraitInput};
use greeter::vision::{BBox, FaceObservation, Quality};

const DIM: usize = 128;

/// xorshift: reproducible vectors without another dependency.
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn unit_vectors(&mut self, n: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n * DIM).map(|_| self.next_f32()).collect();
        for chunk in v.chunks_exact_mut(DIM) {
            let norm = chunk.iter().map(|x| x * x).sum::<f32>().sqrt();
            chunk.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

fn rss_mb() -> f64 {
    support::memory_mb("VmRSS")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

use support::percentile;

/// Near-duplicates of enrolled vectors (a returning customer), so recall@1 is meaningful.
fn queries(rng: &mut Rng, base: &[f32], n: usize) -> Vec<f32> {
    let count = base.len() / DIM;
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let i = ((rng.next_f32() + 0.5) * count as f32) as usize % count;
        let mut q: Vec<f32> = base[i * DIM..(i + 1) * DIM]
            .iter()
            .map(|x| x + 0.05 * rng.next_f32())
            .collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        q.iter_mut().for_each(|x| *x /= norm);
        out.extend(q);
    }
    out
}

fn search_bench(size: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size as u64);
    let vectors = rng.unit_vectors(size);
    let ids: Vec<i64> = (1..=size as i64).collect();
    let queries = queries(&mut rng, &vectors, 1000);
    let raw_mb = (size * DIM * 4) as f64 / 1048576.0;
    let mut flat_top1 = Vec::new();
    for (factory, params) in [
        ("IDMap,Flat", vec![]),
        ("IDMap,HNSW32", vec![("efSearch", 128.0)]),
    ] {
        let before = rss_mb();
        let started = Instant::now();
        let mut index = VectorIndex::new(DIM as u32, factory).unwrap();
        index.add(&ids, &vectors).unwrap();
        let build = started.elapsed();
        let parameters: BTreeMap<String, f64> =
            params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        index.set_parameters(&parameters).unwrap();
        let memory = rss_mb() - before;
        let mut times = Vec::with_capacity(1000);
        let mut top1 = Vec::with_capacity(1000);
        for q in queries.chunks_exact(DIM) {
            let t = Instant::now();
            let hits = index.search(q, 10).unwrap();
            times.push(t.elapsed());
            top1.push(hits.first().map(|h| h.0));
        }
        times.sort();
        let recall = if factory.contains("Flat") {
            flat_top1 = top1;
            String::from("exact")
        } else {
            let same = top1.iter().zip(&flat_top1).filter(|(a, b)| a == b).count();
            format!("recall@1 {:.4}", same as f64 / top1.len() as f64)
        };
        println!(
            "{size:>8} {factory:<13} build {:>8.0} ms  search p50 {:>7.3} ms  p99 {:>7.3} ms  memory {:>7.1} MB ({:.2}x raw {:.1} MB)  {recall}",
            ms(build),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            memory,
            memory / raw_mb,
            raw_mb
        );
    }
}

fn passing_face(embedding: Vec<f32>) -> FaceObservation {
    FaceObservation {
        bbox: BBox {
            x: 0.0,
            y: 0.0,
            width: 120.0,
            height: 120.0,
        },
        score: 0.99,
        landmarks: Vec::new(),
        embedding,
        quality: Quality {
            face_px: 120.0,
            detector_score: 0.99,
            sharpness: 100.0,
            frontalness: 0.9,
            weight: 0.8,
            roll_degrees: 0.0,
            passed: true,
            reasons: Vec::new(),
        },
    }
}

fn startup_bench(portraits: usize) -> (tempfile::TempDir, GallerySettings, MatchRules) {
    let dir = tempfile::tempdir().unwrap();
    let settings = GallerySettings {
        min_portrait_agreement: 0.8,
        data_dir: dir.path().to_owned(),
        key_file: dir.path().join("bench-data.key"),
        index_factory: "IDMap,Flat".into(),
        index_parameters: BTreeMap::new(),
        max_portraits_per_customer: 100,
        search_threads: 1,
        index_save_s: 5.0,
        keep_crops: false,
        portrait_retention_days: 0,
        visit_retention_days: 0,
    };
    let rules = MatchRules {
        threshold: 0.93,
        margin: 0.01,
        top_k: 20,
        neighbour_gap: 0.01,
    };
    let per_customer = 100;
    let mut rng = Rng(42);
    let started = Instant::now();
    {
        let (gallery, _) =
            Gallery::open(settings.clone(), rules.clone(), "bench", DIM as u32).unwrap();
        for c in 0..portraits / per_customer {
            let vectors = rng.unit_vectors(per_customer);
            let portraits = vectors
                .chunks_exact(DIM)
                .map(|v| PortraitInput {
                    face: passing_face(v.to_vec()),
                    source: "bench".into(),
                    crop_jpeg: None,
                })
                .collect();
            gallery
                .enrol(NewCustomer {
                    name: format!("customer {c}"),
                    external_ref: None,
                    consent_how: "bench".into(),
                    consent_by: "bench".into(),
                    portraits,
                    force: true,
                })
                .unwrap();
        }
        gallery.save_index().unwrap();
    }
    println!(
        "\nstore of {portraits} portraits written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (_, report) = Gallery::open(settings.clone(), rules.clone(), "bench", DIM as u32).unwrap();
    println!(
        "start-up, index present:  {:>7.0} ms (rebuilt: {:?})",
        ms(t.elapsed()),
        report.rebuilt.is_some()
    );
    std::fs::remove_file(dir.path().join("index.faiss")).unwrap();
    let t = Instant::now();
    let (_, report) = Gallery::open(settings.clone(), rules.clone(), "bench", DIM as u32).unwrap();
    println!(
        "start-up, index rebuilt:  {:>7.0} ms (rebuilt: {:?})",
        ms(t.elapsed()),
        report.rebuilt.is_some()
    );
    (dir, settings, rules)
}

/// How writers disturb matching: identify latency on the gallery `startup_bench` wrote, idle
/// and while another thread enrols customers (each with a duplicate check, a synced SQLite
/// transaction and an index add) and index snapshots are saved — every second (more often than
/// the service's 5 s), then after every enrolment (the worst case).
fn contention_bench(settings: GallerySettings, rules: MatchRules) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let (gallery, _) = Gallery::open(settings, rules, "bench", DIM as u32).unwrap();
    let gallery = Arc::new(gallery);
    let portraits = gallery.counts().0;
    let mut rng = Rng(7);
    let probes = rng.unit_vectors(2000);
    let identify_all = |gallery: &Gallery| {
        let mut times: Vec<Duration> = probes
            .chunks_exact(DIM)
            .map(|q| {
                let t = Instant::now();
                gallery.identify(q).unwrap();
                t.elapsed()
            })
            .collect();
        times.sort();
        times
    };
    println!(
        "
identify with {portraits} portraits enrolled, 2000 probes:"
    );
    let idle = identify_all(&gallery);
    println!(
        "  idle:                              p50 {:>6.2} ms  p99 {:>6.2} ms",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99)
    );
    // Faces of enrolled customers (their portrait plus noise, cosine about 0.97) are named, so
    // the neighbour rule's bar is computed: searched the first time, cached after.
    let known: Vec<f32> = gallery
        .embeddings_by_customer()
        .unwrap()
        .values()
        .take(1000)
        .flat_map(|portraits| {
            let noise = rng.unit_vectors(1);
            let v: Vec<f32> = portraits[0]
                .iter()
                .zip(&noise)
                .map(|(a, n)| a + 0.25 * n)
                .collect();
            greeter::vision::embed::l2_normalised(&v)
        })
        .collect();
    for label in ["known faces, bars searched:", "known faces, bars cached:"] {
        let mut times: Vec<Duration> = known
            .chunks_exact(DIM)
            .map(|q| {
                let t = Instant::now();
                assert!(gallery.identify(q).unwrap().customer_id().is_some());
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "  {label:<34} p50 {:>6.2} ms  p99 {:>6.2} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    for (label, save_every_enrolment) in [
        ("enrolling, index saved every 1 s:", false),
        ("enrolling, index saved each time:", true),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let (enrolled, saved) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let writer = {
            let (gallery, stop, enrolled, saved) = (
                gallery.clone(),
                stop.clone(),
                enrolled.clone(),
                saved.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(0xBEEF ^ save_every_enrolment as u64);
                let mut last_save = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let portrait = PortraitInput {
                        face: passing_face(rng.unit_vectors(1)),
                        source: "bench".into(),
                        crop_jpeg: None,
                    };
                    gallery
                        .enrol(NewCustomer {
                            name: "walk-in".into(),
                            external_ref: None,
                            consent_how: "bench".into(),
                            consent_by: "bench".into(),
                            portraits: vec![portrait],
                            force: std::env::var("BENCH_FORCE").is_ok(),
                        })
                        .unwrap();
                    enrolled.fetch_add(1, Ordering::Relaxed);
                    if save_every_enrolment || last_save.elapsed() >= Duration::from_secs(1) {
                        gallery.save_index().unwrap();
                        saved.fetch_add(1, Ordering::Relaxed);
                        last_save = Instant::now();
                    }
                }
            })
        };
        let started = Instant::now();
        let busy = identify_all(&gallery);
        let seconds = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        println!(
            "  {label:<34} p50 {:>6.2} ms  p99 {:>6.2} ms  ({:.1}x idle p99; {:.0} enrolments/s, {} saves)",
            percentile(&busy, 0.5),
            percentile(&busy, 0.99),
            percentile(&busy, 0.99) / percentile(&idle, 0.99),
            enrolled.load(Ordering::Relaxed) as f64 / seconds,
            saved.load(Ordering::Relaxed)
        );
    }
}

/// What sealing adds per write and per read: an embedding (the shipped net's 128-d and the
/// fused 1152-d) and a kept face crop (~20 KB JPEG).
fn sealing_bench() {
    let dir = tempfile::tempdir().unwrap();
    let (sealer, _) =
        greeter::gallery::seal::Sealer::generate(&dir.path().join("bench.key")).unwrap();
    println!("sealing (AES-256-GCM, one value at a time, 10000 rounds):");
    for (what, bytes) in [
        ("128-d embedding", 128 * 4),
        ("1152-d embedding", 1152 * 4),
        ("20 KB crop", 20_000),
    ] {
        let plain = vec![7u8; bytes];
        let rounds = 10_000;
        let t = Instant::now();
        let sealed: Vec<Vec<u8>> = (0..rounds)
            .map(|i| sealer.seal(&plain, &format!("portrait {i}")).unwrap())
            .collect();
        let seal_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        let t = Instant::now();
        for (i, s) in sealed.iter().enumerate() {
            sealer.open(s, &format!("portrait {i}")).unwrap();
        }
        let open_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        println!("  {what:<17} seal {seal_us:>6.2} µs, open {open_us:>6.2} µs");
    }
}

fn main() {
    sealing_bench();
    let sizes: Vec<usize> = std::env::var("GALLERY_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let threads: usize = std::env::var("SEARCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    greeter::gallery::index::set_search_threads(threads);
    println!(
        "search: 1000 queries, k=10, 128-d unit vectors (near-duplicates of enrolled ones), {threads} faiss thread(s)"
    );
    for size in sizes {
        search_bench(size);
    }
    let (_dir, settings, rules) = startup_bench(100_000);
    contention_bench(settings, rules);
}
