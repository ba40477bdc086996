//! A store installs its own recognizer: `greeter models add` on small ONNX nets made here
//! (random weights, the right inputs and outputs), then the real pipeline uses it alone or
//! fused with the shipped net. With the evaluation model from ../shared present, its accuracy
//! through the slot is checked too.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{demo_photo, root};

/// A models folder holding links to the shipped models and their manifest, so that what a
/// test installs stays out of the checkout.
fn models_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("models")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name != "local-models.toml" {
            std::os::unix::fs::symlink(&path, dir.path().join(name)).unwrap();
        }
    }
    dir
}

fn greeter(models: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greeter"))
        .args(args)
        .env("GREETER_VISION__MODELS_DIR", models)
        .output()
        .expect("binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An ONNX net [batch,3,size,size] → [batch,dims] (a strided convolution and a dense layer
/// with seeded random weights), written by the set-up's Python onnx.
fn make_onnx(dir: &Path, name: &str, size: u32, dims: u32, batch: &str, constant: bool) -> PathBuf {
    let path = dir.join(format!("{name}.onnx"));
    let script = r#"
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
path, size, dims, batch, constant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
rng = np.random.default_rng(7)
k = size // 8
w = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
g = rng.standard_normal((4 * 8 * 8, dims)).astype(np.float32)
if constant:
    w[:] = 0
b = rng.standard_normal(dims).astype(np.float32)
b_dim = int(batch) if batch.isdigit() else batch
nodes = [
    helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[8, 8], strides=[k, k]),
    helper.make_node("Flatten", ["c"], ["f"]),
    helper.make_node("Gemm", ["f", "g", "b"], ["output"]),
]
graph = helper.make_graph(
    nodes, "tiny",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [b_dim, 3, size, size])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [b_dim, dims])],
    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(g, "g"), numpy_helper.from_array(b, "b")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, path)
"#;
    let out = Command::new(root().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(&path)
        .args([
            size.to_string(),
            dims.to_string(),
            batch.to_owned(),
            (constant as u8).to_string(),
        ])
        .output()
        .expect("the set-up's python runs");
    assert!(out.status.success(), "{}", text(&out));
    path
}

fn add(models: &Path, file: &Path, name: &str, family: &str) -> Output {
    greeter(
        models,
        &[
            "models",
            "add",
            file.to_str().unwrap(),
            "--name",
            name,
            "--family",
            family,
            "--licence",
            "test weights",
            "--json",
        ],
    )
}

fn embedding_of(models: &Path, embedder: &str, photo: &Path) -> Vec<f32> {
    let out = greeter(
        models,
        &[
            "--json",
            "--embedder",
            embedder,
            "embed",
            photo.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["faces"][0]["embedding"]
        .as_array()
        .expect("a face with an embedding")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn an_installed_recognizer_is_checked_recorded_and_used_alone_or_fused() {
    let models = models_dir();
    let work = tempfile::tempdir().unwrap();
    // fixed at batch 1, as most ArcFace exports are
    let file = make_onnx(work.path(), "store-net", 112, 64, "1", false);
    let out = add(models.path(), &file, "store_net", "arcface112");
    assert!(out.status.success(), "{}", text(&out));
    let installed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(installed["dimensions"], 64);
    assert_eq!(installed["fixed_batch"], 1);
    let sha = installed["sha256"].as_str().unwrap().to_owned();
    let manifest = std::fs::read_to_string(models.path().join("local-models.toml")).unwrap();
    assert!(
        manifest.contains(&sha) && manifest.contains("arcface112"),
        "{manifest}"
    );
    assert!(models.path().join("store_net.onnx").is_file());

    // sample3 has several faces: a batch-1 graph still embeds each of them
    let out = greeter(
        models.path(),
        &[
            "--json",
            "--embedder",
            "store_net",
            "embed",
            demo_photo("sample3.jpg").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let faces: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = faces["faces"].as_array().unwrap();
    assert!(faces.len() > 1, "{faces:?}");
    for face in faces {
        assert_eq!(face["embedding"].as_array().unwrap().len(), 64);
    }

    // fused: the shipped net's 128 values scaled by √0.75, then the store net's by √0.25
    let photo = demo_photo("sample1.jpg");
    let fused = embedding_of(models.path(), "face_recognition*3 + store_net*1", &photo);
    let shipped = embedding_of(models.path(), "face_recognition", &photo);
    let alone = embedding_of(models.path(), "store_net", &photo);
    assert_eq!(fused.len(), 128 + 64);
    let norm: f32 = fused.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "fused norm {norm}");
    for (got, want) in fused[..128].iter().zip(&shipped) {
        assert!((got - want * 0.75f32.sqrt()).abs() < 1e-5);
    }
    for (got, want) in fused[128..].iter().zip(&alone) {
        assert!((got - want * 0.5).abs() < 1e-5);
    }

    let out = greeter(models.path(), &["models", "list"]);
    assert!(text(&out).contains("store_net") && text(&out).contains("added by the store"));
}

#[test]
fn models_that_cannot_serve_are_refused_and_leave_nothing_behind() {
    let models = models_dir();
    let work = tempfile::tempdir().unwrap();
    let good = make_onnx(work.path(), "good", 112, 32, "N", false);
    let collapsed = make_onnx(work.path(), "flat", 112, 32, "N", true);
    let garbage = work.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not a model").unwrap();
    let wrong_size = make_onnx(work.path(), "big", 224, 32, "N", false);

    for (file, name, family, expected) in [
        (&garbage, "garbage", "arcface112", "does not run"),
        (&wrong_size, "big", "arcface112", "does not run"),
        (
            &collapsed,
            "flat",
            "arcface112",
            "same vector for different faces",
        ),
        (&good, "good", "landmarks68", "only embedders"),
        (&good, "bad name", "arcface112", "model name"),
        (&good, "face_recognition", "arcface112", "already installed"),
    ] {
        let out = add(models.path(), file, name, family);
        let said = text(&out);
        assert!(!out.status.success(), "{name} accepted: {said}");
        assert!(
            said.contains(expected),
            "{name}: expected {expected:?} in {said}"
        );
        assert!(!said.contains("panicked"), "{said}");
        if name != "face_recognition" {
            assert!(!models.path().join(format!("{name}.onnx")).exists());
        }
    }
    assert!(!models.path().join("local-models.toml").exists());

    // an embedder that is not installed, or a mix that makes no sense, is named
    let out = greeter(
        models.path(),
        &[
            "--embedder",
            "nope",
            "embed",
            demo_photo("sample1.jpg").to_str().unwrap(),
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("\"nope\""),
        "{}",
        text(&out)
    );
    let out = greeter(
        models.path(),
        &[
            "--embedder",
            "face_recognition*0",
            "embed",
            demo_photo("sample1.jpg").to_str().unwrap(),
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("weights must be positive"),
        "{}",
        text(&out)
    );
}

/// The evaluation-only ArcFace-class net in ../shared (never shipped), installed through the
/// slot: it must name East Asian customers that the shipped net cannot.
#[test]
fn the_evaluation_recognizer_names_east_asian_customers_through_the_slot() {
    let shared = root().join("../shared");
    let model = shared.join("models-eval/mobilefacenet/mobilefacenet.onnx");
    if !model.is_file() {
        eprintln!("skipped: {} is not here", model.display());
        return;
    }
    let models = models_dir();
    let out = greeter(
        models.path(),
        &[
            "models",
            "add",
            model.to_str().unwrap(),
            "--name",
            "eval_net",
            "--family",
            "arcface112",
            "--mean",
            "123.675,116.28,103.53",
            "--std",
            "58.395,57.12,57.375",
            "--licence",
            "evaluation only",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_greeter"))
        .args(["--json", "--embedder", "eval_net", "eval", "--gallery", "2"])
        .arg(shared.join("faces-dev"))
        .arg(shared.join("faces-eastasia"))
        .env("GREETER_VISION__MODELS_DIR", models.path())
        .env("GREETER_MATCHING__THRESHOLD", "0.5")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let folders = report["folders"].as_array().unwrap();
    assert_eq!(folders.len(), 2);
    for f in folders {
        let rate = |k: &str| f[k].as_f64().unwrap() / f["probes"].as_f64().unwrap();
        assert_eq!(f["wrong"], 0, "{f}");
        assert!(rate("right") >= 0.9, "{f}");
        assert!(
            f["strangers_wrong"].as_f64().unwrap()
                <= 0.01 * f["strangers_probes"].as_f64().unwrap(),
            "{f}"
        );
    }
}
