//! Load on the real service: `/v1/recognize` with a 1920-wide one-face photo and a 640×480
//! frame, at 1, 4 and 16 concurrent clients, for LOAD_SECONDS each (default 60): throughput,
//! p50/p99, statuses, and the process's memory over the run. Then the time from a frame
//! entering a camera to its card arriving on a terminal's event stream.
//!
//! cargo bench --bench load                    (after scripts/setup.sh)
//! LOAD_SECONDS=10 LOAD_CLIENTS=1,4 cargo bench --bench load
//!
//! The server and the clients share this process (and the machine's cores); the clients are
//! cheap next to face analysis.
#[path = "support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::{bench_settings, env_or, jpeg, memory_mb, one_face_vga, percentile, start};

const KEY: &str = "load-bench-admin-key-000000";

/// A 640×480 window around one face of sample1, and the same window scaled to 1920 wide.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let vga = one_face_vga();
    let wide = image::imageops::resize(&vga, 1920, 1440, image::imageops::FilterType::Triangle);
    vec![("640x480", jpeg(&vga)), ("1920x1440", jpeg(&wide))]
}

struct Run {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    transport_errors: usize,
    elapsed: Duration,
    rss_start: f64,
    rss_max: f64,
    rss_end: f64,
}

async fn load(url: &str, body: &[u8], clients: usize, seconds: u64) -> Run {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let rss_start = memory_mb("VmRSS");
    let sampler = tokio::spawn(async move {
        let mut max = 0f64;
        while Instant::now() < deadline {
            max = max.max(memory_mb("VmRSS"));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        max
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.to_vec());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(KEY)
                        .body(body.clone())
                        .send()
                        .await;
                    let status = match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            Some(status)
                        }
                        Err(_) => None,
                    };
                    seen.push((sent.elapsed(), status));
                    if status == Some(503) {
                        // what a well-behaved client does with Retry-After (scaled down)
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut run = Run {
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
        transport_errors: 0,
        elapsed: Duration::ZERO,
        rss_start,
        rss_max: 0.0,
        rss_end: 0.0,
    };
    for worker in workers {
        for (latency, status) in worker.await.unwrap() {
            match status {
                Some(s) => {
                    *run.statuses.entry(s).or_default() += 1;
                    if s == 200 {
                        run.latencies.push(latency);
                    }
                }
                None => run.transport_errors += 1,
            }
        }
    }
    run.elapsed = started.elapsed();
    run.rss_max = sampler.await.unwrap();
    run.rss_end = memory_mb("VmRSS");
    run.latencies.sort();
    run
}

/// A face appearing in the "entrance" camera: frames pushed at 5 a second until its card
/// arrives on the terminal's stream (a track is named on its second agreeing face), then a
/// pause longer than a track's gap, so the next round is a new track. Per round, the time from
/// the first frame to the card.
async fn frame_to_card(base: &str, body: &[u8], rounds: usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/v1/terminals/glasses-1/events"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut next_card = async move || -> bool {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if block.contains("event: card") {
                    return true;
                }
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
    };
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        let sent = Instant::now();
        let pusher = tokio::spawn({
            let (client, base, body) = (client.clone(), base.to_owned(), body.to_vec());
            async move {
                loop {
                    let pushed = client
                        .post(format!("{base}/v1/cameras/entrance/frames"))
                        .bearer_auth(KEY)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(pushed.status(), 202);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        let carded = next_card().await;
        pusher.abort();
        if !carded {
            eprintln!("no card within 10 s");
            break;
        }
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    latencies.sort();
    latencies
}

fn main() {
    let seconds: u64 = env_or("LOAD_SECONDS", 60);
    let clients: Vec<usize> = std::env::var("LOAD_CLIENTS")
        .unwrap_or_else(|_| "1,4,16".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let data = tempfile::tempdir().unwrap();
    let mut settings = bench_settings(data.path(), KEY);
    // every pushed frame is analysed and gets its own card
    settings.server.announce_cooldown_s = 0;
    for camera in &mut settings.cameras {
        camera.sample_fps = 0.0;
    }
    let (workers, queue) = (
        settings.server.inference_workers,
        settings.server.inference_queue,
    );
    let frames = frames();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (base, stop) = start(settings).await;
        let form = reqwest::multipart::Form::new()
            .text("name", "Load Test")
            .text("consent", "bench")
            .part(
                "portrait",
                reqwest::multipart::Part::bytes(frames[0].1.clone()).file_name("p.jpg"),
            );
        let enrolled = reqwest::Client::new()
            .post(format!("{base}/v1/customers"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(enrolled.status(), 201, "{}", enrolled.text().await.unwrap());

        println!(
            "POST /v1/recognize, {seconds} s per row ({workers} inference worker(s), queue {queue})"
        );
        println!(
            "{:<10} {:>7} {:>9} {:>8} {:>8} {:>8}  {:<22} {:>24}",
            "frame",
            "clients",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "statuses",
            "RSS MB start/max/end"
        );
        for (name, body) in &frames {
            for &n in &clients {
                let run = load(&format!("{base}/v1/recognize"), body, n, seconds).await;
                let ok = run.statuses.get(&200).copied().unwrap_or(0);
                println!(
                    "{:<10} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>8.1}  {:<22} {:>8.0}/{:.0}/{:.0}",
                    name,
                    n,
                    ok as f64 / run.elapsed.as_secs_f64(),
                    percentile(&run.latencies, 0.5),
                    percentile(&run.latencies, 0.99),
                    percentile(&run.latencies, 1.0),
                    format!("{:?} io-errors {}", run.statuses, run.transport_errors),
                    run.rss_start,
                    run.rss_max,
                    run.rss_end,
                );
            }
        }
        let rounds = env_or("LOAD_PUSH_ROUNDS", 50);
        for (name, body) in &frames {
            let latencies = frame_to_card(&base, body, rounds).await;
            println!(
                "face appears (frames at 5/s) → card on the event stream, {name}: n={} p50 {:.1} ms, p99 {:.1} ms",
                latencies.len(),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            );
        }
        stop.cancel();
    });
}
