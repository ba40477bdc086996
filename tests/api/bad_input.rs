use serde_json::{Value, json};

use crate::common::huge_png_header;
use crate::helpers::*;

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn bad_frames_get_a_clear_4xx() {
    let app = spawn_app(|s| s.server.max_body_bytes = 2_000_000).await;
    let jpeg = demo("sample1.jpg");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty", vec![], 400, "empty image"),
        (
            "not an image",
            b"hello, world".to_vec(),
            400,
            "not a JPEG, PNG or WebP",
        ),
        (
            "truncated JPEG",
            jpeg[..jpeg.len() / 2].to_vec(),
            400,
            "truncated",
        ),
        ("huge image", huge_png_header(), 413, "above the limit"),
        ("body above the limit", vec![0xFF; 3_000_000], 413, ""),
    ];
    for (what, body, status, message) in cases {
        let response = app.recognize(body, TERMINAL_KEY).await;
        assert_eq!(response.status().as_u16(), status, "{what}");
        if !message.is_empty() {
            let (_, error) = error_of(response).await;
            assert!(error.contains(message), "{what}: {error}");
        }
    }
    // a frame without faces is not an error: no faces
    let blank = {
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(320, 240)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        png.into_inner()
    };
    let body: Value = app
        .recognize(blank, TERMINAL_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["faces"], json!([]));
}

#[tokio::test]
async fn bad_enrolments_are_refused_and_change_nothing() {
    let app = spawn_app(|_| {}).await;
    let form = || reqwest::multipart::Form::new();
    let blank_png = {
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(200, 200)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        png.into_inner()
    };
    let cases = vec![
        (
            "no consent",
            form()
                .text("name", "Zhou Min")
                .part("p", image_part(zhou_portrait(), "p.png")),
            400,
            "consent",
        ),
        (
            "no name",
            form()
                .text("consent", "signed")
                .part("p", image_part(zhou_portrait(), "p.png")),
            400,
            "name",
        ),
        (
            "no portrait",
            form().text("name", "Zhou Min").text("consent", "signed"),
            400,
            "no portraits",
        ),
        (
            "broken portrait",
            form()
                .text("name", "Zhou Min")
                .text("consent", "signed")
                .part("p", image_part(b"GIF89a....".to_vec(), "p.gif")),
            400,
            "p.gif",
        ),
        (
            "no face",
            form()
                .text("name", "Zhou Min")
                .text("consent", "signed")
                .part("p", image_part(blank_png, "wall.png")),
            422,
            "no face",
        ),
    ];
    for (what, form, status, message) in cases {
        let (got, error) = error_of(app.enrol(form, POS_KEY).await).await;
        assert_eq!(got, status, "{what}: {error}");
        assert!(error.contains(message), "{what}: {error}");
    }
    let listed: Value = app.get_json("/v1/customers", POS_KEY).await;
    assert_eq!(listed, json!([]), "nothing was enrolled");

    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let duplicate = form()
        .text("name", "Someone Else")
        .text("consent", "signed")
        .part("p", image_part(zhou_portrait(), "p.png"));
    let (status, error) = error_of(app.enrol(duplicate, POS_KEY).await).await;
    assert_eq!(status, 409);
    assert!(error.contains(&format!("customer {id}")), "{error}");
    let listed: Value = app.get_json("/v1/customers", POS_KEY).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_ids_are_404_and_bad_checkouts_400() {
    let app = spawn_app(|_| {}).await;
    assert_eq!(app.get("/v1/customers/999", POS_KEY).await.status(), 404);
    assert_eq!(
        app.delete("/v1/customers/999", ADMIN_KEY).await.status(),
        404
    );
    let portraits = app
        .client
        .post(app.url("/v1/customers/999/portraits"))
        .bearer_auth(POS_KEY)
        .multipart(reqwest::multipart::Form::new().part("p", image_part(zhou_portrait(), "p.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(portraits.status(), 404);
    assert_eq!(
        app.get("/v1/terminals/nobody/events", TERMINAL_KEY)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.push_frame("roof", demo("sample1.jpg"), CAMERA_KEY)
            .await
            .status(),
        404
    );
    let unknown = app
        .checkout_json(json!({"customer_id": 999, "basket": []}), POS_KEY)
        .await;
    assert_eq!(unknown.status(), 404);
    let (status, error) = error_of(app.checkout_json(json!({"basket": []}), POS_KEY).await).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("customer_id"), "{error}");
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let (status, error) = error_of(
        app.checkout_json(
            json!({"customer_id": id, "basket": [{"sku": "", "quantity": 0, "unit_price_cents": 1}]}),
            POS_KEY,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error.contains("basket item"), "{error}");
    let (status, error) = error_of(
        app.checkout_form(
            reqwest::multipart::Form::new()
                .text("customer_id", id.to_string())
                .text("basket", "[{oops"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error.contains("basket"), "{error}");
    let shown: Value = app.get_json(&format!("/v1/customers/{id}"), POS_KEY).await;
    assert_eq!(
        shown["card"]["visits"], 0,
        "no refused checkout was recorded"
    );
}

/// A portrait as an Adobe-style CMYK JPEG (black at full, each ink its colour), as print
/// workflows and some checkout cameras write them.
fn as_cmyk_jpeg(png: &[u8]) -> Vec<u8> {
    let rgb = image::load_from_memory(png).unwrap().into_rgb8();
    let pixels: Vec<u8> = rgb.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let cmyk = turbojpeg::Image {
        pixels: pixels.as_slice(),
        width: rgb.width() as usize,
        pitch: rgb.width() as usize * 4,
        height: rgb.height() as usize,
        format: turbojpeg::PixelFormat::CMYK,
    };
    turbojpeg::compress(cmyk, 95, turbojpeg::Subsamp::None)
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn refusals_that_say_what_is_wrong_and_a_cmyk_portrait_that_is_read() {
    let app = spawn_app(|_| {}).await;
    // a non-image pushed to a camera is refused now, not accepted and dropped later
    let (status, error) = error_of(
        app.push_frame("entrance", b"hello".to_vec(), CAMERA_KEY)
            .await,
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("not a JPEG, PNG or WebP"), "{error}");
    let enrol = |name: String, consent: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("name", name)
            .text("consent", consent)
            .part("portrait", image_part(zhou_portrait(), "zhou.png"));
        app.enrol(form, POS_KEY)
    };
    let (status, error) = error_of(enrol("Zhou Min".into(), "no").await).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("says no"), "{error}");
    let (status, error) = error_of(enrol("x".repeat(1 << 20), "signed").await).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("too long"), "{error}");
    let threshold_zero = app
        .client
        .put(app.url("/v1/settings/matching"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"threshold": 0.0, "margin": 0.0}))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(threshold_zero).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("any face would be named"), "{error}");
    let customers: Value = app.get_json("/v1/customers", ADMIN_KEY).await;
    assert_eq!(
        customers.as_array().unwrap().len(),
        0,
        "nothing was enrolled"
    );

    // a CMYK frame (some checkout cameras write them) is read, and its faces recognised
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let response = app
        .recognize(as_cmyk_jpeg(&demo("sample5.jpg")), TERMINAL_KEY)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let named: Vec<Value> = body["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["card"]["customer_id"].clone())
        .filter(|id| !id.is_null())
        .collect();
    assert_eq!(named, [Value::from(id)], "{body}");
}
