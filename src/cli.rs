//! Command-line interface: argument parsing and the commands' human/JSON output.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Settings;
use crate::eval::{self, Sample};
use crate::vision::{AlignmentKind, Analysis, FaceObservation, Pipeline, decode, similarity};

#[derive(Debug, Parser)]
#[command(name = "greeter", version, about = "Edge face recognition for stores")]
pub struct Cli {
    /// Configuration file (default: edge-config/greeter.toml under GREETER_HOME)
    #[arg(long, global = true, env = "GREETER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON output
    #[arg(long, global = true)]
    pub json: bool,
    /// Face detector from models/models.toml (overrides vision.detector)
    #[arg(long, global = true)]
    pub detector: Option<String>,
    /// Face alignment before embedding (overrides vision.alignment)
    #[arg(long, global = true, value_enum)]
    pub alignment: Option<AlignmentKind>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find faces: box, score, quality
    Detect {
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Print the embedding of every face
    Embed {
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Similarity of the largest faces of two photos, and the verdict at the configured threshold
    Compare { a: PathBuf, b: PathBuf },
    /// Accuracy on a labelled folder: DIR/<person>/<photos>
    Eval { dir: PathBuf },
}

pub fn run(cli: Cli) -> Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(detector) = cli.detector {
        settings.vision.detector = detector;
    }
    if let Some(alignment) = cli.alignment {
        settings.vision.alignment = alignment;
    }
    let pipeline = Pipeline::load(&settings)?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Detect { images } => {
            each_image(&pipeline, &settings, &images, |path, analysis| {
                out.faces(path, analysis, false);
            })
        }
        Command::Embed { images } => each_image(&pipeline, &settings, &images, |path, analysis| {
            out.faces(path, analysis, true);
        }),
        Command::Compare { a, b } => compare(&pipeline, &settings, &a, &b, out),
        Command::Eval { dir } => evaluate(&pipeline, &settings, &dir, out),
    }
}

fn analyse(pipeline: &Pipeline, settings: &Settings, path: &Path) -> Result<Analysis> {
    let frame = decode::load(path, settings.vision.max_image_pixels)?;
    Ok(pipeline.process(&frame)?)
}

/// Runs every image, reporting each failure on its own line; fails if any image failed or
/// had no face.
fn each_image(
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

fn largest_face(pipeline: &Pipeline, settings: &Settings, path: &Path) -> Result<FaceObservation> {
    let analysis = analyse(pipeline, settings, path)?;
    analysis
        .largest()
        .cloned()
        .with_context(|| format!("no face found in {}", path.display()))
}

fn compare(
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

fn evaluate(pipeline: &Pipeline, settings: &Settings, dir: &Path, out: Output) -> Result<()> {
    let mut people: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    if people.is_empty() {
        bail!(
            "{} has no sub-folders: expected one folder of photos per person",
            dir.display()
        );
    }
    let mut samples = Vec::new();
    for person_dir in &people {
        let person = person_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(person_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && decode::is_image_name(p))
            .collect();
        files.sort();
        for file in files {
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
                person: person.clone(),
                file,
                embedding,
            });
        }
    }
    let report = eval::evaluate(&samples, &[1e-2, 1e-3]);
    if out.json {
        out.print_json(&report);
        return Ok(());
    }
    println!(
        "detector {}, alignment {:?}, embedder {}",
        pipeline.detector().name(),
        pipeline.options.alignment,
        pipeline.embedder().name()
    );
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
    Ok(())
}

#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn print_json(&self, value: &impl Serialize) {
        println!(
            "{}",
            serde_json::to_string(value).expect("plain data serialises")
        );
    }

    fn faces(&self, path: &Path, analysis: &Analysis, with_embeddings: bool) {
        if self.json {
            #[derive(Serialize)]
            struct Faces<'a> {
                image: &'a Path,
                faces: Vec<serde_json::Value>,
            }
            let faces = analysis
                .faces
                .iter()
                .map(|f| {
                    let mut v = serde_json::json!({ "box": f.bbox, "score": f.score, "quality": f.quality });
                    if with_embeddings {
                        v["landmarks"] = serde_json::json!(f.landmarks);
                        v["embedding"] = serde_json::json!(f.embedding);
                    }
                    v
                })
                .collect();
            self.print_json(&Faces { image: path, faces });
            return;
        }
        println!("{}: {} face(s)", path.display(), analysis.faces.len());
        for (i, f) in analysis.faces.iter().enumerate() {
            let b = f.bbox;
            let q = &f.quality;
            let verdict = if q.passed {
                "ok".to_string()
            } else {
                q.reasons.join("; ")
            };
            println!(
                "  #{i} box {:.0},{:.0} {:.0}×{:.0}  score {:.3}  sharpness {:.0}  frontal {:.2}  roll {:.0}°  quality: {verdict}",
                b.x, b.y, b.width, b.height, f.score, q.sharpness, q.frontalness, q.roll_degrees
            );
            if with_embeddings {
                let values: Vec<String> = f.embedding.iter().map(|v| format!("{v:.5}")).collect();
                println!("    embedding [{}]", values.join(", "));
            }
        }
    }
}
