use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn calibration_evidence_and_a_live_audited_threshold_change_that_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let settings = test_settings(data.path(), |_| {});
    let app = spawn_app_with(settings.clone()).await;
    let zhou = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let form =
        reqwest::multipart::Form::new().part("p", image_part(zhou_second_portrait(), "p.png"));
    let added = app
        .client
        .post(app.url(&format!("/v1/customers/{zhou}/portraits")))
        .bearer_auth(POS_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    app.enrol_ok("Sam Lee", demo("sample1.jpg")).await;

    assert_eq!(app.get("/v1/calibration", POS_KEY).await.status(), 403);
    let calibration: Value = app
        .get_json("/v1/calibration?target=0.001", ADMIN_KEY)
        .await;
    assert_eq!(calibration["genuine_pairs"], 1, "{calibration}");
    assert_eq!(calibration["impostor_comparisons"], 3);
    assert_eq!(calibration["customers"], 2);
    assert_eq!(calibration["current"]["right_name"], 2);
    assert!(
        calibration["warnings"].as_array().unwrap().len() >= 2,
        "too few pairs is said"
    );
    assert_eq!(
        app.get("/v1/calibration?target=7", ADMIN_KEY)
            .await
            .status(),
        400
    );

    let put = |key: &'static str, body: Value| {
        let request = app
            .client
            .put(app.url("/v1/settings/matching"))
            .bearer_auth(key)
            .json(&body)
            .send();
        async { request.await.unwrap() }
    };
    assert_eq!(
        put(TERMINAL_KEY, json!({"threshold": 0.5, "margin": 0.0}))
            .await
            .status(),
        403
    );
    assert_eq!(
        put(ADMIN_KEY, json!({"threshold": 1.5, "margin": 0.0}))
            .await
            .status(),
        400
    );
    assert_eq!(
        put(ADMIN_KEY, json!({"threshold": "high"})).await.status(),
        400
    );
    // stricter than any real match: Zhou Min is no longer named, at once
    let changed: Value = put(ADMIN_KEY, json!({"threshold": 0.9999, "margin": 0.05}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["threshold"].as_f64().unwrap() as f32, 0.9999);
    let entry = &changed["audit"][0];
    assert!(
        entry["who"].as_str().unwrap().starts_with("admin:"),
        "{entry}"
    );
    assert!(entry["old"].as_str().unwrap().contains("0.93"), "{entry}");
    assert!(entry["new"].as_str().unwrap().contains("0.9999"), "{entry}");
    assert!(app.names_in(demo("sample5.jpg")).await.0.is_empty());
    app.stop().await;

    // a restart keeps IT's choice over the config file
    let app = spawn_app_with(settings).await;
    let view: Value = app.get_json("/v1/settings/matching", ADMIN_KEY).await;
    assert_eq!(view["threshold"].as_f64().unwrap() as f32, 0.9999);
    assert!(app.names_in(demo("sample5.jpg")).await.0.is_empty());
    drop(data);
}

/// Logins are audited with who (the key's name, never the key) and from where; a wrong key
/// is refused and leaves no entry.
#[tokio::test]
async fn logins_are_in_the_audit_log_with_who_and_from_where() {
    let app = spawn_app(|_| {}).await;
    let login = |key: &'static str| {
        app.client
            .post(app.url("/v1/login"))
            .bearer_auth(key)
            .header("user-agent", "store-console-test")
            .send()
    };
    let wrong = login("not-a-key-of-this-store-000").await.unwrap();
    assert_eq!(wrong.status(), 401);
    let session: Value = login(ADMIN_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(session["role"], "admin", "{session}");
    let audit: Value = app.get_json("/v1/audit?what=login", ADMIN_KEY).await;
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["who"], session["who"]);
    let from = entries[0]["new"].as_str().unwrap();
    assert!(
        from.contains("127.0.0.1") && from.contains("store-console-test"),
        "{from}"
    );
    assert!(
        !audit.to_string().contains(ADMIN_KEY),
        "the key itself is never logged"
    );
}
