use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use greeter::capture::{CameraSettings, SourceSettings};
use greeter::terminals::TerminalSettings;
use serde_json::Value;

use crate::helpers::*;

fn names(cards: &[Value]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for card in cards {
        *seen
            .entry(card["card"]["name"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn a_pushed_frame_reaches_the_bound_terminal_once_per_visit() {
    let app = spawn_app(|_| {}).await;
    app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let mut events = app.subscribe("glasses-1").await;
    for _ in 0..3 {
        let response = app
            .push_frame("entrance", demo("sample5.jpg"), CAMERA_KEY)
            .await;
        assert_eq!(response.status(), 202);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let cards = events.cards_within(Duration::from_secs(4)).await;
    assert_eq!(
        names(&cards),
        HashMap::from([("Zhou Min".to_owned(), 1)]),
        "{cards:?}"
    );
    let card = &cards[0];
    assert_eq!(
        (card["terminal"].as_str(), card["camera"].as_str()),
        (Some("glasses-1"), Some("entrance"))
    );
    assert!(card["box"]["width"].as_f64().unwrap() > 0.0);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("greeter_frame_to_push_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_console_preview_does_not_use_up_the_glasses_greeting() {
    let app = spawn_app(|_| {}).await;
    app.enrol_ok("Zhou Min", zhou_portrait()).await;
    // store IT previews glasses-1 while the glasses themselves are off
    let (mut preview, _) = app
        .open_events("/v1/terminals/glasses-1/events", ADMIN_KEY)
        .await;
    let push = || async {
        let response = app
            .push_frame("entrance", demo("sample5.jpg"), CAMERA_KEY)
            .await;
        assert_eq!(response.status(), 202);
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
    push().await;
    push().await;
    let seen = preview.cards_within(Duration::from_secs(3)).await;
    assert_eq!(names(&seen), HashMap::from([("Zhou Min".to_owned(), 1)]));

    // the glasses come on while the customer is still in view: they are greeted all the same
    let mut glasses = app.subscribe("glasses-1").await;
    let terminals = app.get_json("/v1/terminals", ADMIN_KEY).await;
    assert_eq!(
        (&terminals[0]["glasses"], &terminals[0]["previews"]),
        (&Value::from(1), &Value::from(1)),
        "{terminals}"
    );
    push().await;
    push().await;
    let heard = glasses.cards_within(Duration::from_secs(3)).await;
    assert_eq!(names(&heard), HashMap::from([("Zhou Min".to_owned(), 1)]));
}

#[tokio::test]
async fn a_replayed_camera_announces_each_customer_exactly_once() {
    let frames = tempfile::tempdir().unwrap();
    // Zhou Min, someone else, then Zhou Min again and again
    for (i, photo) in ["sample5.jpg", "sample1.jpg", "sample5.jpg", "sample5.jpg"]
        .iter()
        .enumerate()
    {
        std::fs::write(frames.path().join(format!("{i}.jpg")), demo(photo)).unwrap();
    }
    let dir = frames.path().to_owned();
    let app = spawn_app(move |s| {
        s.cameras.push(CameraSettings {
            id: "door".into(),
            source: SourceSettings::Replay {
                path: dir,
                fps: 4.0,
                repeat: true,
            },
            sample_fps: 0.0,
        });
        s.terminals = vec![TerminalSettings {
            id: "glasses-1".into(),
            cameras: vec!["door".into()],
        }];
    })
    .await;
    let mut events = app.subscribe("glasses-1").await;
    app.enrol_ok("Zhou Min", zhou_portrait()).await;
    app.enrol_ok("Sam Lee", demo("sample1.jpg")).await;
    // several passes over the folder
    let cards = events.cards_within(Duration::from_secs(8)).await;
    assert_eq!(
        names(&cards),
        HashMap::from([("Zhou Min".to_owned(), 1), ("Sam Lee".to_owned(), 1)]),
        "{cards:?}"
    );
    let cameras: Value = app.get_json("/v1/cameras", ADMIN_KEY).await;
    let door = cameras
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "door")
        .unwrap();
    assert_eq!(door["state"], "streaming");
    assert!(door["frames_in"].as_u64().unwrap() >= 8, "{door}");
}

/// An IP camera: `multipart/x-mixed-replace` JPEG parts, one every 200 ms, forever.
async fn serve_mjpeg(jpeg: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/video", listener.local_addr().unwrap());
    let handler = move || {
        let jpeg = jpeg.clone();
        async move {
            let parts = futures_util::stream::unfold(jpeg, |jpeg| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut part = format!(
                    "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    jpeg.len()
                )
                .into_bytes();
                part.extend_from_slice(&jpeg);
                part.extend_from_slice(b"\r\n");
                Some((Ok::<_, std::io::Error>(part), jpeg))
            });
            axum::response::Response::builder()
                .header("content-type", "multipart/x-mixed-replace; boundary=frame")
                .body(Body::from_stream(parts))
                .unwrap()
        }
    };
    let router = axum::Router::new().route("/video", axum::routing::get(handler));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// The service watching a working camera "live" and a dead one "dead", both bound to
/// glasses-1, with Zhou Min enrolled: the glasses hear of Zhou Min once, from "live"; "dead"
/// is retried with an error that mentions `dead_error`; the rest of the service works. The
/// live camera's health, for more checks.
async fn watch_working_and_dead(
    working: SourceSettings,
    dead: SourceSettings,
    sample_fps: f32,
    dead_error: &str,
) -> Value {
    let app = spawn_app(move |s| {
        s.cameras = [("live", working), ("dead", dead)]
            .into_iter()
            .map(|(id, source)| CameraSettings {
                id: id.into(),
                source,
                sample_fps,
            })
            .collect();
        s.terminals = vec![TerminalSettings {
            id: "glasses-1".into(),
            cameras: vec!["live".into(), "dead".into()],
        }];
    })
    .await;
    let mut events = app.subscribe("glasses-1").await;
    app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let cards = events.cards_within(Duration::from_secs(6)).await;
    assert_eq!(
        names(&cards),
        HashMap::from([("Zhou Min".to_owned(), 1)]),
        "{cards:?}"
    );
    assert_eq!(cards[0]["camera"], "live");
    let cameras: Value = app.get_json("/v1/cameras", ADMIN_KEY).await;
    let camera = |id: &str| {
        cameras
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(camera("live")["state"], "streaming", "{cameras}");
    assert_eq!(camera("dead")["state"], "retrying", "{cameras}");
    assert!(
        camera("dead")["error"]
            .as_str()
            .unwrap()
            .contains(dead_error),
        "{cameras}"
    );
    assert_eq!(app.names_in(demo("sample5.jpg")).await.0, vec!["Zhou Min"]);
    camera("live")
}

#[tokio::test]
async fn an_mjpeg_camera_is_watched_and_an_unreachable_one_does_not_stop_the_service() {
    let url = serve_mjpeg(demo("sample5.jpg")).await;
    // a port nobody listens on
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/video", listener.local_addr().unwrap())
    };
    let live = watch_working_and_dead(
        SourceSettings::Mjpeg { url },
        SourceSettings::Mjpeg { url: dead },
        0.0,
        "connect",
    )
    .await;
    assert_eq!(live["source"], "mjpeg");
}

#[tokio::test]
async fn a_video_camera_is_tracked_and_a_dead_stream_is_retried_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    // Zhou Min (sample5) in a clip played at its own frame rate, again and again: one track
    // after another, one greeting per visit
    let clip = crate::common::make_clip(dir.path(), "sample5.jpg", 2);
    let dead = dir.path().join("unplugged.mp4").display().to_string();
    let live = watch_working_and_dead(
        SourceSettings::Video {
            url: clip.display().to_string(),
            repeat: true,
        },
        SourceSettings::Video {
            url: dead,
            repeat: false,
        },
        5.0,
        "unplugged.mp4",
    )
    .await;
    assert_eq!(live["source"], "video");
    assert!(live["frames_analysed"].as_u64().unwrap() >= 10, "{live}");
    let fps = live["fps_in"].as_f64().unwrap();
    assert!((3.0..=7.0).contains(&fps), "sampled at 5 a second: {live}");
}
