use std::io::BufRead;
use std::process::Stdio;

use serde_json::Value;

use crate::common;
use crate::helpers::*;

/// The console and terminal page in Debian's headless Chromium (scripts/test.sh installs it
/// and playwright-core); screenshots land in target/screenshots. Midway the service restarts on
/// the same port and the pages must find it again by themselves.
#[tokio::test]
async fn the_console_and_the_terminal_page_work_in_a_real_browser() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data.path(), |s| s.cameras[0].sample_fps = 0.0);
    let mut app = spawn_app_with(settings.clone()).await;
    settings.server.bind = format!("127.0.0.1:{}", app.port);

    let shots = common::root().join("target/screenshots");
    let mut node = std::process::Command::new("node")
        .arg(common::root().join("tests/browser/console.mjs"))
        .env("BASE", &app.address)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("TERMINAL_KEY", TERMINAL_KEY)
        .env(
            "PORTRAIT",
            common::fixtures().join("crops/sample5_face0_descriptor.png"),
        )
        .env("FRAME", common::demo_photo("sample5.jpg"))
        .env("SHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test.sh installs it)");
    // the script's progress, line by line, off the runtime (the server under test runs on it)
    let stdout = node.stdout.take().unwrap();
    let (lines, mut progress) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut log = String::new();
    while let Some(line) = progress.recv().await {
        if line == "restart the service" {
            app.stop().await;
            app = spawn_app_with(settings.clone()).await;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let browser = tokio::task::spawn_blocking(move || node.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        browser.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&browser.stderr)
    );
    assert!(log.contains("restart the service"), "{log}");

    // what the browser did, seen over the API of the restarted service: the customer it
    // enrolled (and was greeted across the restart) is erased, the threshold it set is kept
    let customers: Value = app.get_json("/v1/customers?query=Browser", ADMIN_KEY).await;
    assert_eq!(customers, Value::Array(vec![]));
    assert!(app.names_in(demo("sample5.jpg")).await.0.is_empty());
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
    drop(data);
}
