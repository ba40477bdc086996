//! Soak: the real service under a mix of work for SOAK_SECONDS (default 600): recognise (60%),
//! enrol (15%), checkout (10%) and erase (15%, the oldest beyond 20 customers) from
//! SOAK_CLIENTS clients (default 4). Per kind of request: throughput, p50/p99 and statuses;
//! then errors (anything but success, and 503 under overload), and the process's memory and
//! open files once warm (a tenth into the run) and at the end.
//!
//! cargo bench --bench soak                        (after scripts/setup.sh)
//! SOAK_SECONDS=60 SOAK_CLIENTS=8 cargo bench --bench soak
//!
//! The server and the clients share this process; the clients keep their connections, so
//! open files measure the server.
#[path = "support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{bench_settings, env_or, jpeg, memory_mb, one_face_vga, percentile, start};
use tokio::sync::Mutex;

const KEY: &str = "soak-bench-admin-key-000000";
/// Customers kept enrolled: erasure takes the oldest beyond these, so the gallery stays small
/// and checkouts find live customers.
const KEPT_CUSTOMERS: usize = 20;

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[derive(Default)]
struct Kind {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    transport_errors: usize,
}

/// What one request was, and whether its status is one the service may give under load.
async fn one(
    client: &reqwest::Client,
    base: &str,
    roll: u64,
    frame: &[u8],
    enrolled: &Mutex<Vec<i64>>,
) -> (&'static str, Option<u16>, bool) {
    let send = |request: reqwest::RequestBuilder| async move {
        match request.bearer_auth(KEY).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await.unwrap_or_default();
                (Some(status), body)
            }
            Err(_) => (None, Default::default()),
        }
    };
    match roll % 20 {
        0..12 => {
            let (status, _) = send(
                client
                    .post(format!("{base}/v1/recognize"))
                    .body(frame.to_vec()),
            )
            .await;
            ("recognise", status, status == Some(200))
        }
        12..15 => {
            let form = reqwest::multipart::Form::new()
                .text("name", format!("Soak {roll}"))
                .text("consent", "soak bench")
                .text("force", "true")
                .part(
                    "portrait",
                    reqwest::multipart::Part::bytes(frame.to_vec()).file_name("p.jpg"),
                );
            let (status, body) =
                send(client.post(format!("{base}/v1/customers")).multipart(form)).await;
            if status == Some(201)
                && let Some(id) = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["customer_id"].as_i64())
            {
                enrolled.lock().await.push(id);
            }
            ("enrol", status, status == Some(201))
        }
        15..17 => {
            let id = enrolled.lock().await.last().copied();
            let Some(id) = id else {
                return ("checkout", Some(0), true);
            };
            let basket = json!({"customer_id": id, "basket": [{"sku": "DR-0042", "quantity": 1, "unit_price_cents": 59900}]});
            let (status, _) = send(client.post(format!("{base}/v1/checkout")).json(&basket)).await;
            // an erased customer's checkout is refused: a race this mix makes on purpose
            ("checkout", status, matches!(status, Some(200 | 404)))
        }
        _ => {
            let id = {
                let mut ids = enrolled.lock().await;
                // the oldest, once there are enough to check out others meanwhile
                (ids.len() > KEPT_CUSTOMERS).then(|| ids.remove(0))
            };
            let Some(id) = id else {
                return ("erase", Some(0), true);
            };
            let (status, _) = send(client.delete(format!("{base}/v1/customers/{id}"))).await;
            ("erase", status, status == Some(204))
        }
    }
}

fn main() {
    let seconds: u64 = env_or("SOAK_SECONDS", 600);
    let clients: usize = env_or("SOAK_CLIENTS", 4);
    let data = tempfile::tempdir().unwrap();
    let settings = bench_settings(data.path(), KEY);
    // a frame with one face, and the portrait enrolled from it
    let frame = Arc::new(jpeg(&one_face_vga()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (base, stop) = start(settings).await;
        let client = reqwest::Client::new();
        let enrolled = Arc::new(Mutex::new(Vec::new()));
        let rolls = Arc::new(AtomicU64::new(0));
        // warm up: models, pools, one enrolment
        let _ = one(&client, &base, 12, &frame, &enrolled).await;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let warm = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds) / 10).await;
            (memory_mb("VmRSS"), open_files())
        });
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                let (client, base, frame, enrolled, rolls) = (
                    client.clone(),
                    base.clone(),
                    frame.clone(),
                    enrolled.clone(),
                    rolls.clone(),
                );
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while Instant::now() < deadline {
                        let roll = rolls.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let (kind, status, fine) = one(&client, &base, roll, &frame, &enrolled).await;
                        seen.push((kind, status, fine, sent.elapsed()));
                        if status == Some(503) {
                            // what a well-behaved client does with Retry-After (scaled down)
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut kinds: BTreeMap<&str, Kind> = BTreeMap::new();
        let mut errors = 0;
        for worker in workers {
            for (kind, status, fine, latency) in worker.await.unwrap() {
                let k = kinds.entry(kind).or_default();
                match status {
                    Some(0) => continue, // nothing to do yet
                    Some(s) => *k.statuses.entry(s).or_default() += 1,
                    None => k.transport_errors += 1,
                }
                if fine {
                    k.latencies.push(latency);
                } else if status != Some(503) {
                    errors += 1;
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (rss_start, files_start) = warm.await.unwrap();
        let (rss_end, files_end) = (memory_mb("VmRSS"), open_files());
        println!("soak: {seconds} s, {clients} clients, mixed recognise/enrol/checkout/erase");
        println!(
            "{:<10} {:>8} {:>8} {:>8} {:>8}  statuses",
            "request", "n", "per s", "p50 ms", "p99 ms"
        );
        for (name, k) in &mut kinds {
            k.latencies.sort();
            let n: usize = k.statuses.values().sum::<usize>() + k.transport_errors;
            println!(
                "{:<10} {:>8} {:>8.1} {:>8.1} {:>8.1}  {:?} io-errors {}",
                name,
                n,
                n as f64 / elapsed,
                percentile(&k.latencies, 0.5),
                percentile(&k.latencies, 0.99),
                k.statuses,
                k.transport_errors
            );
        }
        println!("errors (not success, not 503): {errors}");
        println!(
            "RSS MB warm {rss_start:.0} end {rss_end:.0} ({:+.1}%); open files warm {files_start} end {files_end} ({:+.1}%); customers left {}",
            100.0 * (rss_end - rss_start) / rss_start,
            100.0 * (files_end as f64 - files_start as f64) / files_start as f64,
            enrolled.lock().await.len()
        );
        stop.cancel();
    });
}
