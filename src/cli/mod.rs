//! Command-line interface: argument parsing, dispatch, and the human/JSON output helpers.

mod calibrate;
mod crm;
mod faces;
mod gallery;
mod models;
mod video;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Settings;
use crate::vision::{AlignmentKind, Analysis, Family, Pipeline};

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
    /// Embedder, or a weighted fusion "a*0.7 + b*0.3" (overrides vision.embedder)
    #[arg(long, global = true)]
    pub embedder: Option<String>,
    /// Face alignment before embedding (overrides vision.alignment)
    #[arg(long, global = true, value_parser = alignment)]
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
    /// Accuracy on labelled folders (DIR/<person>/<photos>), reported per folder
    Eval {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Instead of pairs: enrol the first N photos of each person (all folders together) in a scratch gallery,
        /// identify the rest, and identify each person's photos again with them removed
        /// (strangers) — rank-1, false accepts and unknowns at the configured threshold
        #[arg(long, value_name = "N")]
        gallery: Option<usize>,
    },
    /// The camera path on a video file, as fast as it decodes, against a scratch gallery
    /// enrolled from labelled folders (DIR/<person>/<photos>): tracks, announcements, speed
    EvalVideo {
        video: PathBuf,
        #[arg(long, required = true, num_args = 1..)]
        gallery: Vec<PathBuf>,
        /// `name,start_s,end_s` lines: who is in view when; adds right, wrong, missed
        #[arg(long)]
        truth: Option<PathBuf>,
        /// frames analysed per second of video (default: the first camera's sample_fps)
        #[arg(long)]
        fps: Option<f32>,
    },
    /// Enrol a new customer from one or more portraits (the largest face of each photo)
    Enrol {
        #[arg(long)]
        name: String,
        /// How the customer gave consent, e.g. "signed at till 3" (required)
        #[arg(long)]
        consent: String,
        /// Who recorded the consent
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
        /// Enrol even if a portrait looks like another customer
        #[arg(long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Who is in this photo: every face against the gallery
    Identify { image: PathBuf },
    /// Enrol every sub-folder of DIR as a customer named after it (resumable)
    Import {
        dir: PathBuf,
        #[arg(long)]
        consent: String,
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// List, show or delete customers
    Customers {
        #[command(subcommand)]
        action: CustomersAction,
    },
    /// Run the store service: HTTP API, cameras, live push to the terminals
    Serve {
        /// Address to listen on (overrides server.bind)
        #[arg(long)]
        bind: Option<String>,
        /// Also replay the images in DIR as a camera bound to every terminal (a demo)
        #[arg(long, value_name = "DIR")]
        replay: Option<PathBuf>,
    },
    /// How strict matching should be: score distributions, FAR/FRR, the wrong-name rate per
    /// stranger for this gallery, from the enrolled customers and labelled folders
    /// DIR/<person>/<photos> (each folder also reported on its own)
    Calibrate {
        dirs: Vec<PathBuf>,
        /// acceptable chance that a stranger is greeted by some customer's name
        #[arg(long, default_value_t = 1e-4)]
        target: f64,
        /// write the histograms and curves as an SVG
        #[arg(long)]
        plot: Option<PathBuf>,
        /// gallery size to estimate for (default: the enrolled customers)
        #[arg(long)]
        customers: Option<usize>,
    },
    /// The product catalogue
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Past sales from the till: CSV customer,visited_at,sku,quantity,unit_price
    History {
        #[command(subcommand)]
        action: HistoryAction,
    },
    /// A demo store: catalogue, customers with histories, the demo photos' faces enrolled
    Demo {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Offline quality of the suggestions: hold out each customer's last purchase, hit-rate@5/10
    /// against popularity and random
    Suggestions {
        #[command(subcommand)]
        action: SuggestionsAction,
    },
    /// Gallery maintenance
    Gallery {
        #[command(subcommand)]
        action: GalleryAction,
    },
    /// The face models: list them, or install a recognizer the store holds a licence for
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Every model in models/models.toml and models/local-models.toml (* = in use)
    List,
    /// Install an ONNX face recognizer: copied into the models folder, run once to check it
    /// loads and tells faces apart, recorded with its sha256 in local-models.toml
    Add {
        file: PathBuf,
        /// name to use in vision.embedder
        #[arg(long)]
        name: String,
        /// arcface112: chips aligned on the ArcFace 5-point template (InsightFace-style nets);
        /// embedding: dlib-style chips
        #[arg(long, value_parser = family)]
        family: Family,
        #[arg(long, default_value_t = 112)]
        input_size: u32,
        /// subtracted from the 0-255 pixels: one value or three (in the model's channel order)
        #[arg(long, value_delimiter = ',', default_value = "127.5")]
        mean: Vec<f32>,
        /// then divided by: one value or three
        #[arg(long, value_delimiter = ',', default_value = "127.5")]
        std: Vec<f32>,
        /// the model takes BGR planes (OpenCV-trained), not RGB
        #[arg(long)]
        bgr: bool,
        /// the licence under which the store holds these weights (recorded with them)
        #[arg(long)]
        licence: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogAction {
    /// Import products from CSV (header row) or JSON (array); bad rows are reported by line
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// Import sales (customer = id or external ref); one visit per customer and time
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DemoAction {
    /// Create the demo store in an empty data dir (reproducible from the seed)
    Seed {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 300)]
        customers: usize,
        #[arg(long, default_value_t = 300)]
        items: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum SuggestionsAction {
    /// Hit-rate@5 and @10 of the held-out last purchase
    Eval,
}

#[derive(Debug, Subcommand)]
pub enum GalleryAction {
    /// Recompute every portrait's embedding with the configured model, from the kept face crops
    Reembed,
}

#[derive(Debug, Subcommand)]
pub enum CustomersAction {
    /// Customers whose name contains QUERY (all without it)
    List { query: Option<String> },
    /// One customer, consent and portraits
    Show { id: i64 },
    /// Erase a customer: profile, portraits, face crops, visits, purchases
    Delete { id: i64 },
}

/// A value spelled as in the config file and manifest ("face-api", "arcface112").
fn config_word<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    T::deserialize(name.into_deserializer()).map_err(|e: serde::de::value::Error| e.to_string())
}

fn alignment(name: &str) -> Result<AlignmentKind, String> {
    config_word(name)
}

fn family(name: &str) -> Result<Family, String> {
    config_word(name)
}

pub fn run(cli: Cli) -> Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(detector) = cli.detector {
        settings.vision.detector = detector;
    }
    if let Some(embedder) = cli.embedder {
        settings.vision.embedder = embedder;
    }
    if let Some(alignment) = cli.alignment {
        settings.vision.alignment = alignment;
    }
    let out = Output { json: cli.json };
    // Loaded only by the commands that look at faces: listing or erasing customers needs no model.
    let models = || Pipeline::load(&settings.vision, &settings.runtime);
    match cli.command {
        Command::Detect { images } => {
            faces::each_image(&models()?, &settings, &images, |path, analysis| {
                out.faces(path, analysis, false);
            })
        }
        Command::Embed { images } => {
            faces::each_image(&models()?, &settings, &images, |path, analysis| {
                out.faces(path, analysis, true);
            })
        }
        Command::Compare { a, b } => faces::compare(&models()?, &settings, &a, &b, out),
        Command::Eval {
            dirs,
            gallery: None,
        } => faces::evaluate(&models()?, &settings, &dirs, out),
        Command::Eval {
            dirs,
            gallery: Some(n),
        } => gallery::evaluate(&settings, &dirs, n, out),
        Command::EvalVideo {
            video,
            gallery,
            truth,
            fps,
        } => {
            let args = video::EvalVideoArgs {
                video,
                gallery,
                truth,
                fps,
            };
            video::eval_video(&settings, args, out)
        }
        Command::Enrol {
            name,
            consent,
            by,
            force,
            images,
        } => {
            let enrolment = gallery::EnrolArgs {
                name,
                consent,
                by,
                force,
                images,
            };
            gallery::enrol(&settings, enrolment, out)
        }
        Command::Identify { image } => gallery::identify(&settings, &image, out),
        Command::Import { dir, consent, by } => {
            gallery::import(&settings, &dir, &consent, &by, out)
        }
        Command::Customers { action } => gallery::customers(&settings, action, out),
        Command::Serve { bind, replay } => serve(settings, bind, replay),
        Command::Calibrate {
            dirs,
            target,
            plot,
            customers,
        } => calibrate::calibrate(
            &settings,
            calibrate::CalibrateArgs {
                dirs,
                target,
                plot,
                customers,
            },
            out,
        ),
        Command::Catalog {
            action: CatalogAction::Import { file },
        } => crm::import(&settings, crm::Import::Catalog, &file, out),
        Command::History {
            action: HistoryAction::Import { file },
        } => crm::import(&settings, crm::Import::History, &file, out),
        Command::Demo {
            action:
                DemoAction::Seed {
                    seed,
                    customers,
                    items,
                },
        } => crm::seed_demo(
            &settings,
            crm::DemoOptions {
                seed,
                customers,
                items,
            },
            out,
        ),
        Command::Suggestions {
            action: SuggestionsAction::Eval,
        } => crm::evaluate(&settings, out),
        Command::Gallery {
            action: GalleryAction::Reembed,
        } => gallery::reembed(&settings, out),
        Command::Models { action } => models::run(&settings, action, out),
    }
}

fn serve(mut settings: Settings, bind: Option<String>, replay: Option<PathBuf>) -> Result<()> {
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    if let Some(path) = replay {
        settings.cameras.push(crate::capture::CameraSettings {
            id: "replay".into(),
            source: crate::capture::SourceSettings::Replay {
                path,
                fps: 1.0,
                repeat: true,
            },
            sample_fps: 0.0,
        });
        for terminal in &mut settings.terminals {
            terminal.cameras.push("replay".into());
        }
    }
    let host = settings
        .server
        .bind
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| settings.server.bind.clone());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let app = crate::startup::Application::build(settings).await?;
        let stop = app.stop_token();
        let scheme = if app.tls() { "https" } else { "http" };
        eprintln!(
            "greeter: serving on {scheme}://{host}:{} (Ctrl-C stops)",
            app.port()
        );
        // Ctrl-C, or SIGTERM from systemd or docker
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping");
            stop.cancel();
        });
        app.run_until_stopped().await?;
        anyhow::Ok(())
    })
}

/// The sub-folders of `dir`, sorted; an error names what each folder should hold when none.
pub(crate) fn sub_folders(dir: &Path, expected: &str) -> Result<Vec<PathBuf>> {
    let folders = sorted_entries(dir, |p| p.is_dir())?;
    if folders.is_empty() {
        anyhow::bail!("{} has no sub-folders: expected {expected}", dir.display());
    }
    Ok(folders)
}

/// The image files directly inside `dir`, sorted.
pub(crate) fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    use anyhow::Context;
    crate::files::image_files(dir).with_context(|| format!("cannot read {}", dir.display()))
}

fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    use anyhow::Context;
    crate::files::sorted_entries(dir, keep)
        .with_context(|| format!("cannot read {}", dir.display()))
}

#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub json: bool,
}

impl Output {
    pub fn print_json(&self, value: &impl Serialize) {
        println!(
            "{}",
            serde_json::to_string(value).expect("plain data serialises")
        );
    }

    pub fn faces(&self, path: &Path, analysis: &Analysis, with_embeddings: bool) {
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
