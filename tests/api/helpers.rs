//! `TestApp`: the real service (real models, SQLite, faiss) on a random port, and one method
//! per endpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use greeter::config::Settings;
use greeter::engine::Engine;
use greeter::startup::Application;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common;

pub const TERMINAL_KEY: &str = "terminal-key-for-tests-0001";
pub const CAMERA_KEY: &str = "camera-key-for-tests-00002";
pub const POS_KEY: &str = "pos-key-for-tests-000000003";
pub const ADMIN_KEY: &str = "admin-key-for-tests-0000004";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub data: tempfile::TempDir,
    /// the engine behind the port, to look inside (the gate's running jobs)
    pub engine: Arc<Engine>,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Settings for a test: a fresh data dir, known keys, a push camera "entrance" bound to the
/// terminal "glasses-1"; `tweak` changes the rest.
pub fn test_settings(data: &Path, tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = common::settings();
    settings.server.bind = "127.0.0.1:0".into();
    settings.gallery.data_dir = data.to_owned();
    settings.gallery.key_file = common::key_file(data);
    settings.auth = greeter::api::AuthSettings {
        terminal: vec![TERMINAL_KEY.into()],
        camera: vec![CAMERA_KEY.into()],
        pos: vec![POS_KEY.into()],
        admin: vec![ADMIN_KEY.into()],
    };
    tweak(&mut settings);
    settings
}

pub async fn spawn_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let settings = test_settings(data.path(), tweak);
    start(settings, Some(data)).await
}

/// The service on settings the test made (and a data dir it owns).
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    start(settings, None).await
}

async fn start(settings: Settings, data: Option<tempfile::TempDir>) -> TestApp {
    let data = data.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let app = Application::build(settings)
        .await
        .expect("the service starts (run scripts/setup.sh first)");
    let port = app.port();
    let engine = app.engine().clone();
    let stop = app.stop_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        data,
        engine,
        stop,
        server: Some(server),
    }
}

pub fn demo(name: &str) -> Vec<u8> {
    std::fs::read(common::demo_photo(name)).unwrap()
}

/// A tight crop of sample5.jpg's first face (a portrait from the checkout camera).
pub fn zhou_portrait() -> Vec<u8> {
    std::fs::read(common::fixtures().join("crops/sample5_face0_descriptor.png")).unwrap()
}

pub fn image_part(bytes: Vec<u8>, file: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes).file_name(file.to_owned())
}

impl TestApp {
    /// Stops the service as Ctrl-C does, and waits until it has (and its port is free).
    pub async fn stop(mut self) {
        self.stop.cancel();
        let server = self.server.take().expect("running");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the service stops within 10 s")
            .unwrap()
            .expect("the server ends cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn recognize(&self, image: Vec<u8>, key: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/recognize"))
            .bearer_auth(key)
            .header("content-type", "image/jpeg")
            .body(image)
            .send()
            .await
            .unwrap()
    }

    /// The names on the cards of a frame's faces, and how many faces were unknown.
    pub async fn names_in(&self, image: Vec<u8>) -> (Vec<String>, usize) {
        let response = self.recognize(image, TERMINAL_KEY).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let faces = body["faces"].as_array().unwrap();
        let names = faces
            .iter()
            .filter(|f| f["status"] == "known")
            .map(|f| f["card"]["name"].as_str().unwrap().to_owned())
            .collect();
        let unknown = faces.iter().filter(|f| f["status"] == "unknown").count();
        (names, unknown)
    }

    pub async fn enrol(&self, form: reqwest::multipart::Form, key: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/customers"))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Enrols `name` from one photo; returns the customer id.
    pub async fn enrol_ok(&self, name: &str, photo: Vec<u8>) -> i64 {
        let form = reqwest::multipart::Form::new()
            .text("name", name.to_owned())
            .text("consent", "signed at till 3")
            .part("portrait", image_part(photo, "portrait.jpg"));
        let response = self.enrol(form, POS_KEY).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["customer_id"].as_i64().unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// A GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str, key: &str) -> Value {
        let response = self.get(path, key).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn delete(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn checkout_json(&self, body: Value, key: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/checkout"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn checkout_form(&self, form: reqwest::multipart::Form) -> reqwest::Response {
        self.client
            .post(self.url("/v1/checkout"))
            .bearer_auth(POS_KEY)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn push_frame(&self, camera: &str, image: Vec<u8>, key: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/cameras/{camera}/frames")))
            .bearer_auth(key)
            .body(image)
            .send()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Subscribes to a terminal's events and waits for the `ready` event.
    pub async fn subscribe(&self, terminal: &str) -> Events {
        let (events, ready) = self
            .open_events(&format!("/v1/terminals/{terminal}/events"), TERMINAL_KEY)
            .await;
        assert_eq!(ready, terminal);
        events
    }

    /// Opens an event stream and waits for its `ready` event; returns the stream and the
    /// `ready` event's data.
    pub async fn open_events(&self, path: &str, key: &str) -> (Events, String) {
        let response = self.get(path, key).await;
        assert_eq!(response.status(), 200);
        let mut events = Events {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        };
        let (kind, data) = events.next(Duration::from_secs(5)).await.expect("ready");
        assert_eq!(kind, "ready");
        (events, data)
    }
}

type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A Server-Sent Events reader: (event, data) pairs.
pub struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    pub async fn next(&mut self, within: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut kind, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() && kind == "message" {
                    continue; // a keep-alive comment
                }
                return Some((kind, data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(
                &chunk.expect("the stream stays up"),
            ));
        }
    }

    /// Every card announced within `within`, as parsed JSON.
    pub async fn cards_within(&mut self, within: Duration) -> Vec<Value> {
        self.events_within("card", within).await
    }

    /// Every event of this kind within `within`, as parsed JSON.
    pub async fn events_within(&mut self, wanted: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut cards = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return cards;
            }
            match self.next(left).await {
                Some((kind, data)) if kind == wanted => {
                    cards.push(serde_json::from_str(&data).unwrap())
                }
                Some(_) => {}
                None => return cards,
            }
        }
    }
}

/// Another crop of the same face (the one face-api's landmark net saw).
pub fn zhou_second_portrait() -> Vec<u8> {
    std::fs::read(common::fixtures().join("crops/sample5_face0_landmarks.png")).unwrap()
}
