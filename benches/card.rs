//! Card assembly (profile, segment, suggestions, greeting) for a demo store of CARD_ITEMS items
//! (default 300) and CARD_CUSTOMERS customers (default 100 000): p50/p99 over 2 000 cards of
//! random customers. Also the time to refresh the store statistics.
//!
//! cargo bench --bench card
#[path = "support.rs"]
mod support;

use std::time::{Duration, Instant};

use greeter::config::Settings;
use greeter::crm::Crm;
use support::percentile;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (items, customers) = (env_or("CARD_ITEMS", 300), env_or("CARD_CUSTOMERS", 100_000));
    let settings = Settings::load(None).expect("settings");
    let data = tempfile::tempdir().unwrap();
    let crm = Crm::open(data.path(), settings.crm.clone()).unwrap();
    let started = Instant::now();
    let store = greeter::crm::demo::generate(1, items, customers, chrono::Utc::now());
    let generated = started.elapsed();
    let started = Instant::now();
    let ids = crm.write_demo(&store, &[]).unwrap();
    let written = started.elapsed();
    let purchases = store.purchases();
    println!(
        "demo store: {items} items, {customers} customers, {purchases} purchases (generated in {:.1} s, written in {:.1} s)",
        generated.as_secs_f64(),
        written.as_secs_f64()
    );
    let started = Instant::now();
    crm.refresh_stats().unwrap();
    println!(
        "store statistics refresh: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let now = chrono::Utc::now();
    let mut times: Vec<Duration> = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..2000 {
        let id = ids[(next() % ids.len() as u64) as usize];
        let started = Instant::now();
        let card = crm.card(id, 0.97, now).unwrap();
        times.push(started.elapsed());
        sizes.push(serde_json::to_vec(&card).unwrap().len());
    }
    times.sort();
    sizes.sort();
    println!(
        "card assembly: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; card JSON p50 {} B, max {} B (budget {} B)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1],
        settings.crm.card_budget_bytes
    );
    let card = crm.card(ids[0], 0.97, now).unwrap();
    println!(
        "example card:\n{}",
        serde_json::to_string_pretty(&card).unwrap()
    );
}
