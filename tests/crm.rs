//! The CRM through the binary: catalogue import with bad rows, the demo store, and the
//! offline evaluation of the suggestions on it.

mod common;

use std::process::Command;

use common::ok_json;

fn greeter(data: &std::path::Path) -> Command {
    common::greeter_on(data)
}

#[test]
fn catalogue_import_reports_bad_rows_by_line_and_imports_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("catalogue.csv");
    std::fs::write(
        &file,
        "sku,name,category,price,arrival_date,stock,styles,colours\n\
         DR-1,White simple dress,dress,599,2026-09-01,3,simple,white\n\
         DR-2,Bad price,dress,free,2026-09-01,3,simple,white\n\
         DR-3,Black dress,dress,699,2026-09-02,0,elegant,black\n",
    )
    .unwrap();
    let report = ok_json(
        greeter(data.path())
            .args(["--json", "catalog", "import"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert_eq!(report["imported"], 2);
    assert_eq!(report["errors"][0]["at"], "line 3");
    let missing = greeter(data.path())
        .args(["catalog", "import", "/nonexistent.csv"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent.csv"));
}

#[test]
fn the_demo_store_is_reproducible_and_suggestions_beat_popularity() {
    let run = |data: &std::path::Path| {
        ok_json(
            greeter(data)
                .args([
                    "--json",
                    "demo",
                    "seed",
                    "--customers",
                    "200",
                    "--items",
                    "200",
                ])
                .output()
                .unwrap(),
        )
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let summary = run(a.path());
    assert_eq!(summary, run(b.path()), "same seed, same store");
    assert_eq!(summary["customers"], 200);
    assert!(
        summary["customers_with_faces"].as_u64().unwrap() >= 15,
        "{summary}"
    );
    let again = greeter(a.path()).args(["demo", "seed"]).output().unwrap();
    assert!(
        !again.status.success(),
        "a store with customers is not seeded over"
    );

    let eval = ok_json(
        greeter(a.path())
            .args(["--json", "suggestions", "eval"])
            .output()
            .unwrap(),
    );
    let rate = |method: &str, k: &str| eval[method][k].as_f64().unwrap();
    assert!(eval["customers"].as_u64().unwrap() >= 100, "{eval}");
    assert!(
        rate("suggestions", "at10") > rate("popularity", "at10"),
        "{eval}"
    );
    assert!(
        rate("popularity", "at10") > rate("random", "at10"),
        "{eval}"
    );
}
