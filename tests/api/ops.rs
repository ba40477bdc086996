use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_metrics_and_the_openapi_document() {
    let app = spawn_app(|_| {}).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["portraits"], 0);
    app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ready["portraits"].as_u64(), ready["indexed"].as_u64()),
        (Some(1), Some(1))
    );

    app.names_in(demo("sample5.jpg")).await;
    let metrics = app.metrics().await;
    for stage in ["decode", "detect", "landmarks", "align", "embed", "match"] {
        let line = format!("greeter_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}}");
        assert!(
            metrics.contains(&line),
            "no {stage} histogram in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("greeter_faces_total{outcome=\"known\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("greeter_recognize_seconds_bucket"),
        "{metrics}"
    );

    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/recognize",
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/customers/{id}/portraits",
        "/v1/checkout",
        "/v1/terminals/{id}/events",
        "/v1/live/events",
        "/v1/live/{id}/crop",
        "/v1/cameras/{id}/frames",
        "/v1/cameras",
        "/v1/terminals",
        "/v1/catalog",
        "/v1/calibration",
        "/v1/settings/matching",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn overload_is_answered_503_with_retry_after_not_queued() {
    let app = spawn_app(|s| {
        s.server.inference_workers = 1;
        s.server.inference_queue = 1;
    })
    .await;
    let requests = (0..6).map(|_| app.recognize(demo("sample1.jpg"), TERMINAL_KEY));
    let responses = futures_util::future::join_all(requests).await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|&&s| s == 200).count() >= 2,
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");
    let busy = responses.iter().find(|r| r.status() == 503).unwrap();
    assert_eq!(busy.headers()["retry-after"], "1");
    // and it recovers
    assert_eq!(
        app.recognize(demo("sample1.jpg"), TERMINAL_KEY)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn tls_is_served_when_a_certificate_is_configured() {
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app(|s| {
        s.server.tls_cert = Some(cert_path.clone());
        s.server.tls_key = Some(key_path.clone());
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "plain HTTP is not served on a TLS port"
    );
}

#[tokio::test]
async fn the_service_stops_promptly_with_glasses_and_a_console_connected() {
    let app = spawn_app(|_| {}).await;
    let mut glasses = app.subscribe("glasses-1").await;
    let (mut console, _) = app.open_events("/v1/live/events", ADMIN_KEY).await;
    app.stop().await;
    // the streams end rather than hang: the glasses see the drop and reconnect
    assert!(glasses.next(Duration::from_secs(5)).await.is_none());
    assert!(console.next(Duration::from_secs(5)).await.is_none());
}
