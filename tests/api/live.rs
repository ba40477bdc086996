use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_console_sees_each_recognition_once_with_its_score_and_face_crop() {
    let app = spawn_app(|_| {}).await;
    let zhou = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    assert_eq!(app.get("/v1/live/events", TERMINAL_KEY).await.status(), 403);
    let (mut live, watcher) = app.open_events("/v1/live/events", ADMIN_KEY).await;
    assert!(watcher.starts_with("admin:"), "{watcher}");

    // a camera's frames (a track is named on its second agreeing face), then a terminal's own
    // frame twice: two sources, one sighting each
    for _ in 0..2 {
        let pushed = app
            .push_frame("entrance", demo("sample5.jpg"), CAMERA_KEY)
            .await;
        assert_eq!(pushed.status(), 202);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    for _ in 0..2 {
        assert_eq!(app.names_in(demo("sample5.jpg")).await.0, vec!["Zhou Min"]);
    }
    let seen = live
        .events_within("recognition", Duration::from_secs(4))
        .await;
    let sources: BTreeSet<&str> = seen.iter().map(|r| r["source"].as_str().unwrap()).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(sources.contains("entrance"), "{sources:?}");
    assert!(
        sources.iter().any(|s| s.starts_with("terminal:")),
        "{sources:?}"
    );

    let matching: Value = app.get_json("/v1/settings/matching", ADMIN_KEY).await;
    let threshold = matching["threshold"].as_f64().unwrap();
    for recognition in &seen {
        assert_eq!(recognition["card"]["customer_id"], zhou);
        assert!(recognition["card"]["score"].as_f64().unwrap() >= threshold);
        // both sources follow their faces across frames
        assert!(recognition["track"].as_u64().is_some(), "{recognition}");
        let crop_path = recognition["crop"].as_str().unwrap();
        let crop = app.get(crop_path, ADMIN_KEY).await;
        assert_eq!(crop.status(), 200);
        assert_eq!(crop.headers()["content-type"], "image/jpeg");
        assert_eq!(crop.headers()["cache-control"], "no-store");
        let face = image::load_from_memory(&crop.bytes().await.unwrap()).unwrap();
        assert!(face.width().max(face.height()) <= 160, "small");
        assert!(face.width().min(face.height()) >= 32, "still a face");
        // faces are for store IT only
        assert_eq!(app.get(crop_path, TERMINAL_KEY).await.status(), 403);
        assert_eq!(app.get(crop_path, "").await.status(), 401);
    }
    assert_eq!(
        app.get("/v1/live/999999/crop", ADMIN_KEY).await.status(),
        404
    );

    // the console's stream is not a terminal's: glasses-1 still has nobody listening
    let terminals: Value = app.get_json("/v1/terminals", ADMIN_KEY).await;
    assert_eq!(
        (&terminals[0]["glasses"], &terminals[0]["previews"]),
        (&Value::from(0), &Value::from(0)),
        "{terminals}"
    );

    // erasing the customer erases the crops the console could still fetch
    assert_eq!(
        app.delete(&format!("/v1/customers/{zhou}"), ADMIN_KEY)
            .await
            .status(),
        204
    );
    for recognition in &seen {
        let crop = app
            .get(recognition["crop"].as_str().unwrap(), ADMIN_KEY)
            .await;
        assert_eq!(crop.status(), 404);
    }
}

#[tokio::test]
async fn a_terminals_frames_carry_track_ids_that_follow_each_face() {
    let app = spawn_app(|_| {}).await;
    let boxes_and_tracks = |body: Value| -> Vec<(f64, u64)> {
        body["faces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["box"]["x"].as_f64().unwrap(),
                    f["track"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let mut frames = Vec::new();
    for photo in ["sample5.jpg", "sample5.jpg", "sample1.jpg"] {
        let response = app.recognize(demo(photo), TERMINAL_KEY).await;
        assert_eq!(response.status(), 200);
        let mut faces = boxes_and_tracks(response.json().await.unwrap());
        faces.sort_by(|a, b| a.0.total_cmp(&b.0));
        frames.push(faces);
    }
    // the same five faces again: the same five tracks, in the same places
    assert_eq!(frames[0].len(), 5);
    assert_eq!(frames[0], frames[1]);
    let mut ids: Vec<u64> = frames[0].iter().map(|f| f.1).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    // other people elsewhere: new tracks
    assert!(
        frames[2].iter().all(|(_, id)| !ids.contains(id)),
        "{frames:?}"
    );
    // another caller's tracks are its own
    let response = app.recognize(demo("sample5.jpg"), ADMIN_KEY).await;
    let other = boxes_and_tracks(response.json().await.unwrap());
    assert!(other.iter().all(|(_, id)| *id <= 5), "{other:?}");
}
