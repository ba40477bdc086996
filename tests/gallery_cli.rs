//! Bad gallery input through the real binary: one clear error line, a non-zero exit, and
//! nothing lost.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn greeter(data: &Path, args: &[&str]) -> Output {
    greeter_on(data).args(args).output().unwrap()
}

fn fails_with(out: &Output, expected: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_gallery_requests_are_refused_and_lose_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let crop = fixtures().join("crops/sample5_face0_descriptor.png");
    let crop = crop.to_str().unwrap();
    let out = greeter(
        d,
        &[
            "enrol",
            "--name",
            "Ms Zhou",
            "--consent",
            "signed at till 3",
            crop,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    fails_with(
        &greeter(d, &["enrol", "--name", "X", "--consent", " ", crop]),
        "no consent",
    );
    fails_with(&greeter(d, &["enrol", "--name", "X", crop]), "--consent");
    fails_with(
        &greeter(d, &["enrol", "--name", "Copy", "--consent", "ok", crop]),
        "looks like existing customer 1 (Ms Zhou)",
    );
    fails_with(
        &greeter(
            d,
            &[
                "enrol",
                "--name",
                "X",
                "--consent",
                "ok",
                "/nonexistent.jpg",
            ],
        ),
        "cannot read",
    );
    fails_with(
        &greeter(d, &["customers", "show", "42"]),
        "no customer with id 42",
    );
    fails_with(
        &greeter(d, &["customers", "delete", "42"]),
        "no customer with id 42",
    );
    fails_with(
        &greeter(d, &["import", "/nonexistent-dir", "--consent", "ok"]),
        "cannot read /nonexistent-dir",
    );

    let list = greeter(d, &["--json", "customers", "list"]);
    let customers: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(customers.len(), 1, "only the one good enrolment is there");
    assert_eq!(customers[0]["portraits"], 1);
}

/// Two populations: every portrait of the demo photos plus its mirror image (a second photo
/// of the same person), split into two folders.
fn two_populations(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let all = root.join("all");
    make_import_dir(&all);
    let (a, b) = (root.join("a"), root.join("b"));
    let mut people: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    people.sort();
    for (i, person) in people.iter().enumerate() {
        let into = if i % 2 == 0 { &a } else { &b }.join(person.file_name().unwrap());
        std::fs::create_dir_all(&into).unwrap();
        let photo = image::open(person.join("portrait.jpg")).unwrap();
        photo.save(into.join("1.jpg")).unwrap();
        photo.fliph().save(into.join("2.jpg")).unwrap();
    }
    (a, b)
}

#[test]
fn eval_and_calibrate_report_each_population_apart() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = two_populations(root.path());
    let data = tempfile::tempdir().unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let report = ok_json(greeter(
        data.path(),
        &["--json", "eval", a, b, "--gallery", "1"],
    ));
    let folders = report["folders"].as_array().unwrap();
    assert_eq!(folders.len(), 2, "{report}");
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    let mut probes = 0;
    for (folder, dir) in folders.iter().zip([a, b]) {
        assert_eq!(folder["folder"], dir);
        // one enrolled photo per person, the mirror image is the probe
        assert!(n(folder, "probes") > 0 && n(folder, "probes") <= n(folder, "people"));
        assert_eq!(
            n(folder, "right") + n(folder, "unknown") + n(folder, "wrong"),
            n(folder, "probes")
        );
        assert!(n(folder, "right") > 0, "nobody named in {folder}");
        assert_eq!(n(folder, "strangers_probes"), n(folder, "probes"));
        probes += n(folder, "probes");
    }
    assert_eq!(n(&report["total"], "probes"), probes);

    let calibration = ok_json(greeter(data.path(), &["--json", "calibrate", a, b]));
    let folders = calibration["folders"].as_array().unwrap();
    assert_eq!(folders.len(), 2);
    let people: u64 = folders.iter().map(|f| n(&f["calibration"], "people")).sum();
    assert_eq!(people, n(&calibration, "people"), "{calibration}");
}
