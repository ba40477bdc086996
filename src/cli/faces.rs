//! Face commands: detect, embed, compare, eval.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::Output;
use crate::config::Settings;
use crate::eval::{self, Sample};
use crate::vision::{Analysis, FaceObservation, Pipeline, decode, similarity};

pub fn analyse(pipeline: &Pipeline, settings: &Settings, path: &Path) -> Result<Analysis> {
    let frame = decode::load(path, settings.vision.max_image_pixels)?;
    Ok(pipeline.process(&frame)?)
}

/// Runs every image, reporting each failure on its own line; fails if any image failed or
/// had no face.
pub fn each_image(
    pipeline: &Pipeline,
    settings: &Settings,
    images: &[PathBuf],
    mut show: impl FnMut(&Path, &Analysis),
) -> Result<()> {
    let mut failed = 0;
    for path in images {
        match analyse(pipeline, settings, path) {
            Ok(analysis) if analysis.faces.is_empty() => {
                eprintln!("error: no face found in {}", path.display());
                failed += 1;
            }
            Ok(analysis) => show(path, &analysis),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images failed", images.len());
    }
    Ok(())
}

pub fn largest_face(
    pipeline: &Pipeline,
    settings: &Settings,
    path: &Path,
) -> Result<FaceObservation> {
    let analysis = analyse(pipeline, settings, path)?;
    analysis
        .largest()
        .cloned()
        .with_context(|| format!("no face found in {}", path.display()))
}

pub fn compare(
    pipeline: &Pipeline,
    settings: &Settings,
    a: &Path,
    b: &Path,
    out: Output,
) -> Result<()> {
    let (fa, fb) = (
        largest_face(pipeline, settings, a)?,
        largest_face(pipeline, settings, b)?,
    );
    let score = similarity(&fa.embedding, &fb.embedding);
    let threshold = settings.matching.threshold;
    let same = score >= threshold;
    #[derive(Serialize)]
    struct Verdict {
        similarity: f32,
        threshold: f32,
        same_person: bool,
    }
    if out.json {
        out.print_json(&Verdict {
            similarity: score,
            threshold,
            same_person: same,
        });
    } else {
        let verdict = if same {
            "same person"
        } else {
            "different people"
        };
        println!("similarity {score:.4} (threshold {threshold:.4}): {verdict}");
    }
    Ok(())
}

/// (person, photo) for every photo of DIR/<person>/, sorted.
pub fn labelled_photos(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut photos = Vec::new();
    for person_dir in super::sub_folders(dir, "one folder of photos per person")? {
        let person = person_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        photos.extend(
            super::image_files(&person_dir)?
                .into_iter()
                .map(|f| (person.clone(), f)),
        );
    }
    Ok(photos)
}

/// Pair statistics per folder: each population on its own, never only a mean.
pub fn evaluate(
    pipeline: &Pipeline,
    settings: &Settings,
    dirs: &[PathBuf],
    out: Output,
) -> Result<()> {
    #[derive(Serialize)]
    struct Folder {
        folder: String,
        #[serde(flatten)]
        report: eval::Report,
    }
    let mut folders = Vec::new();
    for dir in dirs {
        folders.push(Folder {
            folder: dir.display().to_string(),
            report: evaluate_folder(pipeline, settings, dir)?,
        });
    }
    if out.json {
        out.print_json(&folders);
        return Ok(());
    }
    println!(
        "detector {}, alignment {:?}, embedder {}",
        pipeline.detector().name(),
        pipeline.options.alignment,
        pipeline.mix()
    );
    for Folder { folder, report } in &folders {
        println!("\n{folder}");
        print_report(report);
    }
    Ok(())
}

fn evaluate_folder(pipeline: &Pipeline, settings: &Settings, dir: &Path) -> Result<eval::Report> {
    let mut samples = Vec::new();
    for (person, file) in labelled_photos(dir)? {
        let embedding = match analyse(pipeline, settings, &file) {
            Ok(analysis) => analysis.largest().map(|f| f.embedding.clone()),
            Err(e) => {
                eprintln!("warning: skipping {e:#}");
                None
            }
        };
        let file = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        samples.push(Sample {
            person,
            file,
            embedding,
        });
    }
    Ok(eval::evaluate(&samples, &[1e-2, 1e-3]))
}

fn print_report(report: &eval::Report) {
    println!(
        "people {}  images {}  faces not found {}",
        report.people,
        report.images,
        report.faces_not_found.len()
    );
    for file in &report.faces_not_found {
        println!("  no face: {file}");
    }
    println!(
        "genuine pairs {}  impostor pairs {}",
        report.genuine_pairs, report.impostor_pairs
    );
    println!("ROC AUC {:.4}", report.roc_auc);
    println!(
        "EER     {:.4} at threshold {:.4}",
        report.eer, report.eer_threshold
    );
    for op in &report.operating_points {
        println!(
            "TAR {:.4} at FAR {:.0e} (threshold {:.4})",
            op.tar, op.far, op.threshold
        );
    }
    println!(
        "rank-1  {:.4} over {} probes",
        report.rank1, report.rank1_probes
    );
}
