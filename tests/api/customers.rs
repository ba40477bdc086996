use serde_json::{Value, json};

use crate::common::files_under;
use crate::helpers::*;

#[tokio::test]
async fn enrol_recognise_checkout_delete() {
    let app = spawn_app(|_| {}).await;
    assert_eq!(
        app.names_in(demo("sample5.jpg")).await.0,
        Vec::<String>::new()
    );

    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let response = app.recognize(demo("sample5.jpg"), TERMINAL_KEY).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let faces = body["faces"].as_array().unwrap();
    assert!(faces.len() >= 3, "{body}");
    let known: Vec<&Value> = faces.iter().filter(|f| f["status"] == "known").collect();
    assert_eq!(known.len(), 1, "exactly one face is Zhou Min: {body}");
    let card = &known[0]["card"];
    assert_eq!(card["customer_id"], id);
    assert_eq!(card["name"], "Zhou Min");
    assert_eq!(card["visits"], 0);
    assert!(card["last_visit"].is_null());
    assert!(card["score"].as_f64().unwrap() >= 0.93);
    assert!(known[0]["box"]["width"].as_f64().unwrap() > 20.0);
    for stranger in faces.iter().filter(|f| f["status"] == "unknown") {
        assert!(!stranger["reason"].as_str().unwrap().is_empty());
        assert!(stranger.get("card").is_none());
    }

    // a sale at the till: the visit shows on the next card
    let response = app
        .checkout_json(
            json!({"customer_id": id, "basket": [{"sku": "DR-0042", "quantity": 1, "unit_price_cents": 59900}]}),
            POS_KEY,
        )
        .await;
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["recorded"], true, "{receipt}");
    assert_eq!(receipt["card"]["visits"], 1);
    let shown: Value = app.get_json(&format!("/v1/customers/{id}"), POS_KEY).await;
    assert_eq!(shown["card"]["visits"], 1);
    assert_eq!(shown["card"]["days_since_last_visit"], 0);
    assert_eq!(shown["customer"]["display_name"], "Zhou Min");
    assert_eq!(shown["portraits"].as_array().unwrap().len(), 1);
    let listed: Value = app.get_json("/v1/customers?query=Zhou", POS_KEY).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let response = app.delete(&format!("/v1/customers/{id}"), ADMIN_KEY).await;
    assert_eq!(response.status(), 204);
    let (names, unknown) = app.names_in(demo("sample5.jpg")).await;
    assert!(names.is_empty() && unknown >= 3, "{names:?}");
    assert_eq!(
        app.get(&format!("/v1/customers/{id}"), POS_KEY)
            .await
            .status(),
        404
    );
    assert_eq!(
        std::fs::read_dir(app.data.path().join("crops"))
            .unwrap()
            .count(),
        0,
        "the face crop went with the customer"
    );
}

#[tokio::test]
async fn checkout_enrols_a_consenting_stranger_and_adds_portraits_to_a_known_one() {
    let app = spawn_app(|_| {}).await;
    let basket = r#"[{"sku": "TS-7", "quantity": 2, "unit_price_cents": 9900}]"#;

    // no consent: nothing recorded, nobody enrolled
    let form = reqwest::multipart::Form::new()
        .text("basket", basket)
        .part("portrait", image_part(zhou_portrait(), "till.png"));
    let receipt: Value = app.checkout_form(form).await.json().await.unwrap();
    assert_eq!(receipt["recorded"], false, "{receipt}");
    assert_eq!(app.names_in(demo("sample5.jpg")).await.0.len(), 0);

    let form = reqwest::multipart::Form::new()
        .text("basket", basket)
        .text("consent", "ticked the box on the till screen")
        .text("name", "Zhou Min")
        .part("portrait", image_part(zhou_portrait(), "till.png"));
    let receipt: Value = app.checkout_form(form).await.json().await.unwrap();
    assert_eq!(
        (receipt["recorded"].clone(), receipt["enrolled"].clone()),
        (json!(true), json!(true)),
        "{receipt}"
    );
    let id = receipt["customer_id"].as_i64().unwrap();
    assert_eq!(app.names_in(demo("sample5.jpg")).await.0, vec!["Zhou Min"]);

    // next visit: found by face, portrait added with consent
    let form = reqwest::multipart::Form::new()
        .text("basket", basket)
        .text("consent", "ticked the box on the till screen")
        .part("portrait", image_part(zhou_second_portrait(), "till.png"));
    let receipt: Value = app.checkout_form(form).await.json().await.unwrap();
    assert_eq!(receipt["customer_id"], id, "{receipt}");
    assert_eq!(receipt["portrait"], "added");
    assert_eq!(receipt["card"]["visits"], 2);
}

#[tokio::test]
async fn the_card_greets_and_suggests_from_the_catalogue() {
    let app = spawn_app(|_| {}).await;
    let catalogue = "sku,name,category,price,arrival_date,stock,gender,styles,colours\n\
                     DR-1,White simple dress,dress,599,2026-01-10,5,female,simple,white\n\
                     DR-2,Ivory simple dress,dress,629,2026-02-01,4,female,simple;elegant,white\n\
                     DR-3,Sold-out simple dress,dress,629,2026-02-01,0,female,simple,white\n\
                     JE-1,Street jeans,jeans,359,2025-05-01,9,unisex,street,blue\n\
                     SU-1,Navy suit,suit,1599,2026-02-01,9,male,simple,white\n";
    let import = |key: &'static str| {
        app.client
            .post(app.url("/v1/catalog"))
            .bearer_auth(key)
            .header("content-type", "text/csv")
            .body(catalogue)
            .send()
    };
    assert_eq!(import(TERMINAL_KEY).await.unwrap().status(), 403);
    let report: Value = import(ADMIN_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(report["imported"], 5, "{report}");

    let form = reqwest::multipart::Form::new()
        .text("name", "Zhou Min")
        .text("consent", "signed at till 3")
        .text("gender", "female")
        .text("birth_year", "1992")
        .part("portrait", image_part(zhou_portrait(), "portrait.png"));
    let enrolled: Value = app.enrol(form, POS_KEY).await.json().await.unwrap();
    let id = enrolled["customer_id"].as_i64().unwrap();
    let receipt: Value = app
        .checkout_json(
            json!({"customer_id": id, "basket": [{"sku": "DR-1", "quantity": 1, "unit_price_cents": 59900}]}),
            POS_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["recorded"], true);

    let body: Value = app
        .recognize(demo("sample5.jpg"), TERMINAL_KEY)
        .await
        .json()
        .await
        .unwrap();
    let card = body["faces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] == "known")
        .map(|f| f["card"].clone())
        .unwrap();
    assert_eq!(card["segment"], "first_return", "{card}");
    assert_eq!(card["greeting"], "Zhou Min，欢迎再次光临！");
    let suggested: Vec<&str> = card["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sku"].as_str().unwrap())
        .collect();
    assert_eq!(suggested.first(), Some(&"DR-2"), "{card}");
    for never in ["DR-1", "DR-3", "SU-1"] {
        assert!(!suggested.contains(&never), "{never} suggested: {card}");
    }
    let reason = card["suggestions"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("White simple dress"), "{reason}");
    assert!(serde_json::to_vec(&card).unwrap().len() <= 1024);
}

#[tokio::test]
async fn an_erased_customer_leaves_no_name_face_or_vector_on_disk_and_the_data_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(|_| {}).await;
    let id = app.enrol_ok("Secretname Zhang", zhou_portrait()).await;
    // a sale sent with an idempotency key: its kept answer holds the card, and the name
    let sale = app
        .client
        .post(app.url("/v1/checkout"))
        .bearer_auth(POS_KEY)
        .header("Idempotency-Key", "sale-7")
        .json(&json!({"customer_id": id, "basket": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(sale.status(), 200);
    let data = app.data.path();
    let embedding: Vec<u8> = {
        let db = rusqlite::Connection::open_with_flags(
            data.join("greeter.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(
            "SELECT embedding FROM portraits WHERE customer_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data), 0o700);
    assert_eq!(mode(&data.join("crops")), 0o700);
    let files = files_under(data);
    assert!(
        files.iter().any(|f| f.parent().unwrap().ends_with("crops")),
        "a crop is kept: {files:?}"
    );
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    assert_eq!(
        app.delete(&format!("/v1/customers/{id}"), ADMIN_KEY)
            .await
            .status(),
        204
    );
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for file in files_under(data) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, b"Secretname"),
            "the name is still in {}",
            file.display()
        );
        assert!(
            !contains(&bytes, &embedding[..64]),
            "the embedding is still in {}",
            file.display()
        );
        assert!(
            !file.parent().unwrap().ends_with("crops"),
            "{} is left",
            file.display()
        );
    }
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_first_answer() {
    let app = spawn_app(|_| {}).await;
    let enrol = |key: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("name", "Zhou Min")
            .text("consent", "signed at till 3")
            .part("portrait", image_part(zhou_portrait(), "zhou.png"));
        app.client
            .post(app.url("/v1/customers"))
            .bearer_auth(POS_KEY)
            .header("Idempotency-Key", key)
            .multipart(form)
            .send()
    };
    let first = enrol("enrol-zhou-1").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = enrol("enrol-zhou-1").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same answer, not a second customer");
    let customers: Value = app.get_json("/v1/customers", ADMIN_KEY).await;
    assert_eq!(customers.as_array().unwrap().len(), 1);

    let sale = |key: &'static str| {
        app.client
            .post(app.url("/v1/checkout"))
            .bearer_auth(POS_KEY)
            .header("Idempotency-Key", key)
            .json(&json!({"customer_id": first["customer_id"], "basket": [{"sku": "DR-1", "quantity": 1, "unit_price_cents": 100}]}))
            .send()
    };
    let receipt: Value = sale("sale-1").await.unwrap().json().await.unwrap();
    let replayed: Value = sale("sale-1").await.unwrap().json().await.unwrap();
    assert_eq!(replayed["visit_id"], receipt["visit_id"]);
    let shown: Value = app
        .get_json(&format!("/v1/customers/{}", first["customer_id"]), POS_KEY)
        .await;
    assert_eq!(shown["card"]["visits"], 1, "one sale recorded, not two");
    // a key is for one request: the enrolment's key on a checkout is refused
    let reused = sale("enrol-zhou-1").await.unwrap();
    assert_eq!(reused.status(), 409);
    let body: Value = reused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("POST /v1/customers"),
        "{body}"
    );
}

#[tokio::test]
async fn enrolments_and_erasures_are_audited_by_id_and_who() {
    let app = spawn_app(|_| {}).await;
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    assert_eq!(
        app.delete(&format!("/v1/customers/{id}"), ADMIN_KEY)
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/v1/audit", POS_KEY).await.status(), 403);
    let audit: Value = app.get_json("/v1/audit", ADMIN_KEY).await;
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    let (erase, enrol) = (&entries[0], &entries[1]);
    assert_eq!(erase["what"], "erase");
    assert!(
        erase["who"].as_str().unwrap().starts_with("admin:"),
        "{erase}"
    );
    assert!(
        erase["old"]
            .as_str()
            .unwrap()
            .contains(&format!("customer {id}")),
        "{erase}"
    );
    assert_eq!(enrol["what"], "enrol");
    assert!(
        enrol["new"]
            .as_str()
            .unwrap()
            .contains(&format!("customer {id}")),
        "{enrol}"
    );
    assert!(
        !audit.to_string().contains("Zhou"),
        "the log keeps no names: {audit}"
    );
    let only: Value = app
        .get_json("/v1/audit?what=enrol&limit=5", ADMIN_KEY)
        .await;
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");
}

#[tokio::test]
async fn withdrawn_consent_erases_the_face_and_name_and_keeps_the_sales() {
    let app = spawn_app(|_| {}).await;
    let id = app.enrol_ok("Secretname Wang", zhou_portrait()).await;
    let sale = app
        .checkout_json(
            json!({"customer_id": id, "basket": [{"sku": "DR-1", "quantity": 2, "unit_price_cents": 500}]}),
            POS_KEY,
        )
        .await;
    assert_eq!(sale.status(), 200);
    let withdrawn = app
        .client
        .post(app.url(&format!("/v1/customers/{id}/withdraw-consent")))
        .bearer_auth(POS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 200);
    let withdrawn: Value = withdrawn.json().await.unwrap();
    assert_eq!(withdrawn["portraits_erased"], 1);
    // not recognised any more, and nobody else is named for the face
    assert!(app.names_in(demo("sample5.jpg")).await.0.is_empty());
    let shown: Value = app.get_json(&format!("/v1/customers/{id}"), POS_KEY).await;
    assert_eq!(
        shown["customer"]["display_name"],
        format!("withdrawn customer {id}")
    );
    assert_eq!(shown["portraits"].as_array().unwrap().len(), 0);
    assert_eq!(
        shown["card"]["visits"], 1,
        "the sale is kept for the accounts"
    );
    for file in files_under(app.data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(10).any(|w| w == b"Secretname"),
            "the name is still in {}",
            file.display()
        );
    }
    let audit: Value = app.get_json("/v1/audit?what=withdraw", ADMIN_KEY).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    let again = app
        .client
        .post(app.url("/v1/customers/999/withdraw-consent"))
        .bearer_auth(POS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn portraits_and_visits_past_their_retention_are_erased() {
    let app = spawn_app(|s| {
        s.gallery.portrait_retention_days = 730;
        s.gallery.visit_retention_days = 365;
    })
    .await;
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let sale = app
        .checkout_json(
            json!({"customer_id": id, "basket": [{"sku": "DR-1", "quantity": 1, "unit_price_cents": 500}]}),
            POS_KEY,
        )
        .await;
    assert_eq!(sale.status(), 200);
    // the same data, as if taken three years ago
    {
        let db = rusqlite::Connection::open(app.data.path().join("greeter.sqlite3")).unwrap();
        let long_ago = chrono::Utc::now() - chrono::Duration::days(3 * 365);
        db.execute("UPDATE portraits SET captured_at = ?1", [long_ago])
            .unwrap();
        db.execute("UPDATE visits SET visited_at = ?1", [long_ago])
            .unwrap();
        db.execute("UPDATE purchases SET purchased_at = ?1", [long_ago])
            .unwrap();
    }
    let engine = app.engine.clone();
    let purged = tokio::task::spawn_blocking(move || engine.purge_expired())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((purged.portraits, purged.visits), (1, 1));
    assert!(
        app.names_in(demo("sample5.jpg")).await.0.is_empty(),
        "the face is gone"
    );
    let shown: Value = app.get_json(&format!("/v1/customers/{id}"), POS_KEY).await;
    assert_eq!(shown["portraits"].as_array().unwrap().len(), 0);
    assert_eq!(shown["card"]["visits"], 0);
    let audit: Value = app.get_json("/v1/audit?what=purge", ADMIN_KEY).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    let ready: Value = app.get_json("/readyz", ADMIN_KEY).await;
    assert_eq!(
        (ready["portraits"].as_u64(), ready["indexed"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn a_customer_gets_a_copy_of_everything_kept_about_them() {
    use std::io::Read;
    let app = spawn_app(|_| {}).await;
    let id = app.enrol_ok("Zhou Min", zhou_portrait()).await;
    let sale = app
        .checkout_json(
            json!({"customer_id": id, "basket": [{"sku": "DR-0042", "quantity": 1, "unit_price_cents": 59900}]}),
            POS_KEY,
        )
        .await;
    assert_eq!(sale.status(), 200);
    assert_eq!(
        app.get(&format!("/v1/customers/{id}/export"), POS_KEY)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get("/v1/customers/999/export", ADMIN_KEY)
            .await
            .status(),
        404
    );
    let response = app
        .get(&format!("/v1/customers/{id}/export"), ADMIN_KEY)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let bytes = response.bytes().await.unwrap();
    let mut files = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        files.insert(path, content);
    }
    let profile: Value = serde_json::from_slice(&files["customer.json"]).unwrap();
    assert_eq!(profile["customer"]["display_name"], "Zhou Min");
    assert_eq!(profile["customer"]["consent"]["how"], "signed at till 3");
    let visits: Value = serde_json::from_slice(&files["visits.json"]).unwrap();
    assert_eq!(visits[0]["basket"][0]["sku"], "DR-0042", "{visits}");
    let portrait_id = profile["portraits"][0]["id"].as_i64().unwrap();
    let crop = &files[&format!("portraits/{portrait_id}.jpg")];
    assert!(
        image::load_from_memory(crop).unwrap().width() > 20,
        "a real face crop"
    );
    let audit: Value = app.get_json("/v1/audit?what=export", ADMIN_KEY).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test]
async fn portraits_of_two_people_are_not_one_customer() {
    let app = spawn_app(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    // the two least alike faces of the demo photos (0.80 with the shipped net)
    crate::common::make_people_dir(
        dir.path(),
        &[("one", "sample2.jpg", 0), ("other", "sample5.jpg", 4)],
    );
    let read = |who: &str| std::fs::read(dir.path().join(who).join("portrait.jpg")).unwrap();
    let form = |force: bool| {
        let form = reqwest::multipart::Form::new()
            .text("name", "Sam Lee")
            .text("consent", "signed at till 3")
            .part("portrait", image_part(read("one"), "sam.jpg"))
            .part("portrait", image_part(read("other"), "someone-else.jpg"));
        if force {
            form.text("force", "true")
        } else {
            form
        }
    };
    let refused = app.enrol(form(false), POS_KEY).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("sam.jpg")
            && error.contains("someone-else.jpg")
            && error.contains("do not look like the same person"),
        "{error}"
    );
    let customers: Value = app.get_json("/v1/customers", ADMIN_KEY).await;
    assert_eq!(customers.as_array().unwrap().len(), 0, "nothing enrolled");
    // the same person twice is one customer; two people only when the store insists
    let form_same = reqwest::multipart::Form::new()
        .text("name", "Zhou Min")
        .text("consent", "signed at till 3")
        .part("portrait", image_part(zhou_portrait(), "zhou.png"))
        .part(
            "portrait",
            image_part(
                std::fs::read(crate::common::fixtures().join("crops/sample5_face0_landmarks.png"))
                    .unwrap(),
                "zhou-again.png",
            ),
        );
    assert_eq!(app.enrol(form_same, POS_KEY).await.status(), 201);
    assert_eq!(app.enrol(form(true), POS_KEY).await.status(), 201);
}
