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

#[tokio::test]
async fn requests_that_time_out_stop_their_work_and_commit_nothing() {
    let app = spawn_app(|s| {
        s.server.inference_workers = 1;
        s.server.inference_queue = 32;
        // shorter than analysing one portrait on these machines: most requests time out
        s.server.request_timeout_ms = 60;
    })
    .await;
    let enrolments = (0..8).map(|i| {
        let form = reqwest::multipart::Form::new()
            .text("name", format!("Burst {i}"))
            .text("consent", "signed")
            .text("force", "true")
            .part("portrait", image_part(zhou_portrait(), "zhou.png"));
        let request = app.enrol(form, POS_KEY);
        async move { (format!("Burst {i}"), request.await) }
    });
    let frames = (0..12).map(|_| app.recognize(demo("sample1.jpg"), TERMINAL_KEY));
    let (enrolled, recognized) = tokio::join!(
        futures_util::future::join_all(enrolments),
        futures_util::future::join_all(frames)
    );
    let mut answered = Vec::new();
    let mut timed_out = 0;
    for (name, response) in enrolled {
        match response.status().as_u16() {
            201 => answered.push(name),
            408 => {
                timed_out += 1;
                let body: Value = response.json().await.unwrap();
                assert!(
                    body["error"]
                        .as_str()
                        .unwrap()
                        .contains("nothing was changed"),
                    "{body}"
                );
            }
            other => panic!("{name}: status {other}"),
        }
    }
    for response in recognized {
        assert!(
            [200, 408].contains(&response.status().as_u16()),
            "{}",
            response.status()
        );
    }
    assert!(timed_out > 0, "some enrolments time out at 60 ms");
    // the work a timed-out request had started ends with it: never more than the one worker,
    // and idle within a second
    let idle_by = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let running = app.engine.gate.running();
        assert!(
            running <= 1,
            "{running} inference jobs with 1 worker configured"
        );
        if running == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < idle_by,
            "still busy a second after the burst"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // only the enrolments answered 201 exist
    let customers: Value = app.get_json("/v1/customers", ADMIN_KEY).await;
    let mut names: Vec<String> = customers
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["display_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    answered.sort();
    assert_eq!(names, answered);
}

#[tokio::test]
async fn every_error_is_json() {
    let app = spawn_app(|_| {}).await;
    for (path, status) in [
        ("/v1/customers/not-a-number", 400),
        ("/v1/customers?query=a&query=b", 400),
        ("/v1/nowhere", 404),
    ] {
        let response = app.get(path, ADMIN_KEY).await;
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let wrong_method = app
        .client
        .patch(app.url("/v1/customers"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: Value = wrong_method.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let not_json = app
        .client
        .put(app.url("/v1/settings/matching"))
        .bearer_auth(ADMIN_KEY)
        .body("threshold=1")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let body: Value = not_json.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Content-Type"),
        "{body}"
    );
}

/// The response schemas in `/openapi.json` (api/views.rs) name exactly the fields the real
/// answers carry: a field added to the engine's answer and not to its view fails here.
#[tokio::test]
async fn the_openapi_schemas_describe_the_real_answers() {
    let app = spawn_app(|_| {}).await;
    let enrolled = app
        .enrol(
            reqwest::multipart::Form::new()
                .text("name", "Zhou Min")
                .text("consent", "signed")
                .part("portrait", image_part(zhou_portrait(), "zhou.png")),
            POS_KEY,
        )
        .await;
    let enrolled: Value = enrolled.json().await.unwrap();
    let recognition: Value = app
        .recognize(demo("sample5.jpg"), TERMINAL_KEY)
        .await
        .json()
        .await
        .unwrap();
    let receipt: Value = app
        .checkout_json(
            serde_json::json!({"customer_id": enrolled["customer_id"], "basket": []}),
            POS_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    let described = |schema: &str, answer: &Value| {
        let properties = schemas[schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema} in {schemas}"));
        let fields = answer.as_object().unwrap();
        for field in fields.keys() {
            assert!(
                properties.contains_key(field),
                "{schema} lacks {field:?}: {answer}"
            );
        }
        for required in schemas[schema]["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            assert!(
                fields.contains_key(required),
                "{schema}.{required} missing in {answer}"
            );
        }
    };
    described("Enrolled", &enrolled);
    described("Recognition", &recognition);
    let faces = recognition["faces"].as_array().unwrap();
    assert!(
        faces.iter().any(|f| f["status"] == "known"),
        "{recognition}"
    );
    assert!(
        faces.iter().any(|f| f["status"] == "unknown"),
        "{recognition}"
    );
    for face in faces {
        described("Sighting", face);
    }
    let card = &faces.iter().find(|f| f["status"] == "known").unwrap()["card"];
    described("Card", card);
    described("CheckoutReceipt", &receipt);
    for camera in app
        .get_json("/v1/cameras", ADMIN_KEY)
        .await
        .as_array()
        .unwrap()
    {
        described("CameraHealth", camera);
    }
    for terminal in app
        .get_json("/v1/terminals", ADMIN_KEY)
        .await
        .as_array()
        .unwrap()
    {
        described("TerminalHealth", terminal);
    }
    let calibration = app.get_json("/v1/calibration", ADMIN_KEY).await;
    described("Calibration", &calibration);
    described("Current", &calibration["current"]);
    for point in calibration["curve"].as_array().unwrap() {
        described("Point", point);
    }
    let changed: Value = app
        .client
        .put(app.url("/v1/settings/matching"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({"threshold": 0.95, "margin": 0.03}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    described("MatchingView", &changed);
    described("AuditEntry", &changed["audit"][0]);
    let report: Value = app
        .client
        .post(app.url("/v1/catalog"))
        .bearer_auth(ADMIN_KEY)
        .body("sku,name,category,price,arrival_date,stock\nS1,dress,dress,100,2026-01-01,3\nS2,bad")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    described("ImportReport", &report);
    described("RowError", &report["errors"][0]);
}

#[tokio::test]
async fn a_second_process_on_the_data_dir_is_refused_and_changes_nothing() {
    let app = spawn_app(|_| {}).await;
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let delete = crate::common::greeter_on(app.data.path())
        .args(["customers", "delete", &id.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&delete.stderr);
    assert!(!delete.status.success(), "{err}");
    assert!(err.contains("in use by another greeter process"), "{err}");
    let second = greeter::startup::Application::build(test_settings(app.data.path(), |_| {})).await;
    let err = format!(
        "{:#}",
        second.err().expect("a second service on the same data dir")
    );
    assert!(err.contains("in use by another greeter process"), "{err}");
    // the customer is still there and still greeted
    assert_eq!(
        app.get(&format!("/v1/customers/{id}"), ADMIN_KEY)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.names_in(demo("sample5.jpg")).await.0,
        vec!["Zhou Min".to_owned()]
    );
}

#[tokio::test]
async fn pages_carry_a_content_policy_and_customer_data_is_never_cached() {
    let app = spawn_app(|_| {}).await;
    for (page, framed_by) in [("/console", "'none'"), ("/terminal/glasses-1", "'self'")] {
        let response = app.client.get(app.url(page)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(
            policy.contains(&format!("frame-ancestors {framed_by}")),
            "{page}: {policy}"
        );
        assert!(
            policy.contains("script-src 'self' 'sha256-"),
            "{page}: {policy}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    for path in [
        format!("/v1/customers/{id}"),
        "/v1/customers".into(),
        "/v1/customers/999".into(),
    ] {
        let response = app.get(&path, ADMIN_KEY).await;
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_and_the_cap_holds() {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(|s| {
        s.server.header_read_timeout_ms = 500;
        s.server.max_connections = 20;
        s.server.keepalive_s = 1;
    })
    .await;
    // a pair of glasses listening: its stream holds a slot and outlives the header timeout
    let events = app
        .get("/v1/terminals/glasses-1/events", TERMINAL_KEY)
        .await;
    assert_eq!(events.status(), 200);
    let mut stream = events.bytes_stream();

    // 40 clients that connect and say nothing, 10 that stop halfway through their headers
    let address = format!("127.0.0.1:{}", app.port);
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i >= 40 {
            // refused ones may already be closed: a failed write is fine
            let _ = socket
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: greeter\r\n")
                .await;
        }
        clients.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {} // a 408 or 400 before the close is fine
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "a silent client was never cut off");
            started.elapsed()
        }));
    }
    let mut closed_after = Vec::new();
    for client in clients {
        closed_after.push(client.await.unwrap());
    }
    let at_once = closed_after
        .iter()
        .filter(|d| **d < Duration::from_millis(400))
        .count();
    let timed_out = closed_after.len() - at_once;
    // 19 slots were left beside the event stream: those clients were cut off by the timeout,
    // the rest at once
    assert!((25..=31).contains(&at_once), "{closed_after:?}");
    assert!(timed_out >= 19, "{closed_after:?}");

    // slots are free again; the event stream is still alive (keep-alives arrive)
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // keep-alives come every second: one arriving well after the header timeout proves it
    while started.elapsed() < Duration::from_millis(1500) {
        let chunk = tokio::time::timeout(Duration::from_secs(3), stream.next())
            .await
            .expect("the event stream still sends");
        assert!(chunk.unwrap().is_ok());
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("greeter_connections_refused_total"),
        "{metrics}"
    );
}

/// The service and the CLI open a sealed data dir only with its key, from the key file or
/// from GREETER_DATA_KEY; without it they stop with what to do, and the data is unharmed.
#[tokio::test]
async fn a_sealed_data_dir_opens_only_with_its_key_from_the_file_or_the_environment() {
    let data = tempfile::tempdir().unwrap();
    let settings = test_settings(data.path(), |_| {});
    let app = spawn_app_with(settings.clone()).await;
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    app.stop().await;

    let mut keyless = settings.clone();
    keyless.gallery.key_file = data.path().join("elsewhere/data.key");
    let err = format!(
        "{:#}",
        greeter::startup::Application::build(keyless)
            .await
            .err()
            .expect("no key, no service")
    );
    assert!(err.contains("restore the key it was sealed with"), "{err}");

    // the key in the environment instead of a file (a secret store, systemd credentials)
    let key = std::fs::read_to_string(&settings.gallery.key_file).unwrap();
    let listed = crate::common::greeter_on(data.path())
        .env(
            "GREETER_GALLERY__KEY_FILE",
            data.path().join("elsewhere/data.key"),
        )
        .env("GREETER_DATA_KEY", key.trim())
        .args(["--json", "customers", "list"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Zhou Min"));
    let bad = crate::common::greeter_on(data.path())
        .env("GREETER_DATA_KEY", "0123")
        .args(["customers", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("64 hex digits"),
        "{err}"
    );

    // with its key the service greets her as before
    let app = spawn_app_with(settings).await;
    assert_eq!(
        app.get(&format!("/v1/customers/{id}"), ADMIN_KEY)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.names_in(demo("sample5.jpg")).await.0,
        vec!["Zhou Min".to_owned()]
    );
}
