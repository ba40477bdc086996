use crate::helpers::*;

#[tokio::test]
async fn keys_and_roles_are_enforced() {
    let app = spawn_app(|_| {}).await;
    let no_key = app
        .client
        .post(app.url("/v1/recognize"))
        .body(demo("sample1.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        app.recognize(demo("sample1.jpg"), "not-a-key-at-all-000000")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.recognize(demo("sample1.jpg"), CAMERA_KEY)
            .await
            .status(),
        403
    );

    // a terminal cannot enrol, read or delete customers
    let form = reqwest::multipart::Form::new()
        .text("name", "Mallory")
        .text("consent", "none really")
        .part("portrait", image_part(zhou_portrait(), "p.png"));
    assert_eq!(app.enrol(form, TERMINAL_KEY).await.status(), 403);
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    for key in [TERMINAL_KEY, CAMERA_KEY] {
        assert_eq!(
            app.get(&format!("/v1/customers/{id}"), key).await.status(),
            403
        );
    }
    for key in [TERMINAL_KEY, CAMERA_KEY, POS_KEY] {
        assert_eq!(
            app.delete(&format!("/v1/customers/{id}"), key)
                .await
                .status(),
            403
        );
    }
    assert_eq!(
        app.delete(&format!("/v1/customers/{id}"), "")
            .await
            .status(),
        401
    );
    assert_eq!(app.get("/v1/cameras", POS_KEY).await.status(), 403);
    // nothing was lost by the refused calls
    assert_eq!(app.names_in(demo("sample5.jpg")).await.0, vec!["Zhou Min"]);
    // a camera may push frames, and so may a terminal
    for key in [CAMERA_KEY, TERMINAL_KEY] {
        assert_eq!(
            app.push_frame("entrance", demo("sample1.jpg"), key)
                .await
                .status(),
            202
        );
    }
    assert_eq!(
        app.push_frame("entrance", demo("sample1.jpg"), POS_KEY)
            .await
            .status(),
        403
    );
}
