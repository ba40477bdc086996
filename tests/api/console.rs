use serde_json::Value;

use crate::common;
use crate::helpers::*;

/// The console and terminal page in Debian's headless Chromium (scripts/test.sh installs it
/// and playwright-core); screenshots land in target/screenshots.
#[tokio::test]
async fn the_console_and_the_terminal_page_work_in_a_real_browser() {
    let app = spawn_app(|s| s.cameras[0].sample_fps = 0.0).await;
    let shots = common::root().join("target/screenshots");
    let mut node = std::process::Command::new("node");
    node.arg(common::root().join("tests/browser/console.mjs"))
        .env("BASE", &app.address)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("TERMINAL_KEY", TERMINAL_KEY)
        .env(
            "PORTRAIT",
            common::fixtures().join("crops/sample5_face0_descriptor.png"),
        )
        .env("FRAME", common::demo_photo("sample5.jpg"))
        .env("SHOTS", &shots);
    // off the runtime: the server under test runs on it
    let browser = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node runs (scripts/test.sh installs it)");
    assert!(
        browser.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&browser.stdout),
        String::from_utf8_lossy(&browser.stderr)
    );
    // what the browser did, seen over the API
    let customers: Value = app.get_json("/v1/customers?query=Browser", ADMIN_KEY).await;
    assert_eq!(customers.as_array().unwrap().len(), 1);
    let matching: Value = app.get_json("/v1/settings/matching", ADMIN_KEY).await;
    assert_eq!(matching["threshold"].as_f64().unwrap() as f32, 0.95);
    for shot in [
        "live",
        "customers",
        "threshold",
        "cameras",
        "terminal",
        "preview",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "no {shot}.png");
    }
    // the pages themselves hold nothing: every call needs a key
    assert_eq!(app.get("/v1/customers", "").await.status(), 401);
}
