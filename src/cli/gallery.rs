//! Gallery commands: enrol, identify, import, customers, open-set eval, reembed. Each goes
//! through the same engine as `greeter serve`: the same face reading, quality gate and rules.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{CustomersAction, Output};
use crate::config::Settings;
use crate::engine::{Claim, Engine, Enrolment, Outcome, Photo};
use crate::eval::open_set::{self, Person};
use crate::gallery::{GalleryError, NewCustomer, PortraitInput};
use crate::vision::{BBox, Pipeline, Purpose, embedder_identity};

pub struct EnrolArgs {
    pub name: String,
    pub consent: String,
    pub by: String,
    pub force: bool,
    pub images: Vec<PathBuf>,
}

pub(super) fn engine(settings: &Settings) -> Result<Engine> {
    Engine::load(settings.engine())
}

pub fn enrol(settings: &Settings, e: EnrolArgs, out: Output) -> Result<()> {
    let engine = engine(settings)?;
    let photos = e
        .images
        .iter()
        .map(|p| Photo::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let name = e.name.trim().to_owned();
    let enrolment = Enrolment {
        name: e.name,
        gender: None,
        birth_year: None,
        body_type: None,
        consent: e.consent,
        consent_by: e.by,
        external_ref: None,
        force: e.force,
        photos,
    };
    // nobody waits on the other side of a command line: the claim is never given up
    let enrolled = engine.customers.enrol(enrolment, &Claim::default())?;
    engine.flush()?;
    if out.json {
        out.print_json(&enrolled);
    } else {
        println!(
            "enrolled customer {} ({name}) with {} portrait(s)",
            enrolled.customer_id,
            enrolled.portrait_ids.len()
        );
    }
    Ok(())
}

pub fn identify(settings: &Settings, image: &Path, out: Output) -> Result<()> {
    let engine = engine(settings)?;
    let photo = Photo::read(image)?;
    let recognition = engine
        .recognizer
        .recognize_bytes(&photo.bytes, "cli", Purpose::Still)?;
    if recognition.faces.is_empty() {
        anyhow::bail!("no face found in {}", image.display());
    }
    #[derive(Serialize)]
    struct Identified {
        #[serde(rename = "box")]
        bbox: BBox,
        quality_passed: bool,
        customer_id: Option<i64>,
        name: Option<String>,
        score: Option<f32>,
        /// why nobody was named
        reason: Option<String>,
    }
    let results: Vec<Identified> = recognition
        .faces
        .into_iter()
        .map(|face| {
            let (card, reason) = match face.outcome {
                Outcome::Known { card } => (Some(card), None),
                Outcome::Unknown { reason } => (None, Some(reason)),
            };
            Identified {
                bbox: face.bbox,
                quality_passed: face.quality.passed,
                customer_id: card.as_ref().map(|c| c.customer_id),
                name: card.as_ref().map(|c| c.name.clone()),
                score: card.as_ref().map(|c| c.score),
                reason,
            }
        })
        .collect();
    if out.json {
        out.print_json(&results);
        return Ok(());
    }
    for (i, r) in results.iter().enumerate() {
        let b = r.bbox;
        let what = match (&r.customer_id, &r.reason) {
            (Some(id), _) => format!(
                "customer {id} {} (similarity {:.3})",
                r.name.as_deref().unwrap_or(""),
                r.score.unwrap_or_default()
            ),
            (None, reason) => format!("unknown: {}", reason.as_deref().unwrap_or("")),
        };
        println!(
            "#{i} box {:.0},{:.0} {:.0}×{:.0}: {what}",
            b.x, b.y, b.width, b.height
        );
    }
    Ok(())
}

#[derive(Default, Serialize)]
struct ImportSummary {
    enrolled: usize,
    already_in: usize,
    refused: Vec<(String, String)>,
    portraits: usize,
    /// photos of enrolled customers that were not usable (no face, low quality)
    photos_not_used: Vec<String>,
}

/// Every sub-folder of `dir` is one customer. A customer is enrolled with all their good
/// portraits in one transaction, so an interrupted import leaves no half-enrolled customer and
/// a second run skips the folders already in.
pub fn import(settings: &Settings, dir: &Path, consent: &str, by: &str, out: Output) -> Result<()> {
    let engine = engine(settings)?;
    let folders = super::sub_folders(dir, "one folder of portraits per customer")?;
    let progress = if out.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(folders.len() as u64)
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} customers {msg} [{elapsed_precise}, eta {eta}]",
        )
        .expect("static template"),
    );
    let mut summary = ImportSummary::default();
    for (n, folder) in folders.iter().enumerate() {
        progress.inc(1);
        let name = folder
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let external_ref = format!("import:{name}");
        if engine.gallery.customer_by_ref(&external_ref)?.is_some() {
            summary.already_in += 1;
            continue;
        }
        let mut portraits = Vec::new();
        let mut problems = Vec::new();
        for file in super::image_files(folder)? {
            match Photo::read(&file).and_then(|photo| engine.faces.portrait(&photo)) {
                Ok(p) if p.face.quality.passed => portraits.push(p),
                Ok(p) => problems.push(format!(
                    "{}: {}",
                    file.display(),
                    p.face.quality.reasons.join("; ")
                )),
                Err(e) => problems.push(crate::telemetry::chain(&e)),
            }
        }
        if portraits.is_empty() {
            let why = if problems.is_empty() {
                "no photos".to_string()
            } else {
                problems.join(" | ")
            };
            summary.refused.push((name, why));
            continue;
        }
        let customer = NewCustomer {
            name: name.clone(),
            external_ref: Some(external_ref),
            consent_how: consent.to_owned(),
            consent_by: by.to_owned(),
            portraits,
            force: false,
        };
        match engine.gallery.enrol(customer) {
            Ok(enrolled) => {
                summary.enrolled += 1;
                summary.portraits += enrolled.portrait_ids.len();
                summary.photos_not_used.extend(problems);
            }
            Err(GalleryError::Refused(why)) => summary.refused.push((name, why.to_string())),
            Err(e) => return Err(e.into()),
        }
        if n % 50 == 49 {
            engine.gallery.save_index()?;
        }
    }
    progress.finish_and_clear();
    engine.gallery.save_index()?;
    if out.json {
        out.print_json(&summary);
        return Ok(());
    }
    println!(
        "enrolled {} customers ({} portraits), {} already in, {} refused",
        summary.enrolled,
        summary.portraits,
        summary.already_in,
        summary.refused.len()
    );
    for (name, why) in &summary.refused {
        println!("  refused {name}: {why}");
    }
    for problem in &summary.photos_not_used {
        println!("  photo not used: {problem}");
    }
    Ok(())
}

pub fn customers(settings: &Settings, action: CustomersAction, out: Output) -> Result<()> {
    let engine = engine(settings)?;
    match action {
        CustomersAction::List { query } => {
            let customers = engine.customers.search(query.as_deref().unwrap_or(""))?;
            if out.json {
                out.print_json(&customers);
            } else {
                for c in &customers {
                    println!(
                        "{:>6}  {:<30} {} portrait(s)  consent: {}",
                        c.id, c.display_name, c.portraits, c.consent.how
                    );
                }
                println!("{} customer(s)", customers.len());
            }
        }
        CustomersAction::Show { id } => {
            let record = engine.customers.show(id)?;
            if out.json {
                out.print_json(&record);
            } else {
                let customer = &record.customer;
                println!("customer {}: {}", customer.id, customer.display_name);
                println!(
                    "  consent: {} (recorded by {} at {})",
                    customer.consent.how, customer.consent.by, customer.consent.at
                );
                for p in &record.portraits {
                    println!(
                        "  portrait {} quality {:.3} from {} at {}",
                        p.id, p.quality, p.source, p.captured_at
                    );
                }
            }
        }
        CustomersAction::Delete { id } => {
            let who = format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            );
            engine.customers.delete(id, &who)?;
            engine.flush()?;
            if out.json {
                out.print_json(&serde_json::json!({ "deleted": id }));
            } else {
                println!("deleted customer {id} and all their data");
            }
        }
    }
    Ok(())
}

/// Open-set identification through a scratch gallery (see `eval::open_set`).
pub fn evaluate(
    settings: &Settings,
    dirs: &[PathBuf],
    per_person: usize,
    out: Output,
) -> Result<()> {
    let (settings, scratch) = scratch_settings(settings, per_person);
    let result = run_open_set(&settings, dirs, per_person);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    if out.json {
        out.print_json(&report);
        return Ok(());
    }
    let rate = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    println!(
        "embedder {}, threshold {:.3}, margin {:.3}, {} portrait(s) per person enrolled, all folders in one gallery",
        settings.vision.embedder, settings.matching.threshold, settings.matching.margin, per_person
    );
    println!(
        "{:<28} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6}  {:>9} {:>7}",
        "folder", "people", "probes", "right%", "unknwn%", "wrong", "no face", "strangers", "wrong"
    );
    let rows = report
        .folders
        .iter()
        .map(|f| (f.folder.as_str(), &f.counts))
        .chain([("all", &report.total)]);
    for (folder, c) in rows {
        println!(
            "{:<28} {:>6} {:>6} {:>7.1} {:>7.1} {:>7} {:>6}  {:>9} {:>7}",
            folder,
            c.people,
            c.probes,
            rate(c.right, c.probes),
            rate(c.unknown, c.probes),
            c.wrong,
            c.faces_not_found,
            c.strangers_probes,
            c.strangers_wrong
        );
    }
    Ok(())
}

/// Settings for a gallery in a temporary directory that keeps no crops, and that directory
/// (the caller removes it).
pub(super) fn scratch_settings(settings: &Settings, per_person: usize) -> (Settings, PathBuf) {
    let scratch = std::env::temp_dir().join(format!("greeter-eval-{}", std::process::id()));
    let mut settings = settings.clone();
    settings.gallery.data_dir = scratch.clone();
    // a throwaway gallery: its throwaway key goes with it
    settings.gallery.key_file = scratch.join("eval-data.key");
    settings.gallery.keep_crops = false;
    settings.gallery.max_portraits_per_customer =
        settings.gallery.max_portraits_per_customer.max(per_person);
    (settings, scratch)
}

fn run_open_set(
    settings: &Settings,
    dirs: &[PathBuf],
    per_person: usize,
) -> Result<open_set::OpenSetReport> {
    let engine = engine(settings)?;
    let (folders, people) = labelled_people(&engine, dirs)?;
    Ok(open_set::run(&engine.gallery, folders, people, per_person)?)
}

/// Each folder's path and how many of its photos showed no face.
pub(super) type Folders = Vec<(String, usize)>;

/// Each person's photos in labelled folders (DIR/<person>/<photos>) read as portraits, and per
/// folder the number of photos where no face was found.
pub(super) fn labelled_people(engine: &Engine, dirs: &[PathBuf]) -> Result<(Folders, Vec<Person>)> {
    let mut folders = Vec::new();
    let mut people: Vec<Person> = Vec::new();
    for (population, dir) in dirs.iter().enumerate() {
        let mut faces_not_found = 0;
        for (person, file) in super::faces::labelled_photos(dir)? {
            if people
                .last()
                .is_none_or(|p| p.name != person || p.population != population)
            {
                people.push(Person {
                    name: person.clone(),
                    population,
                    portraits: Vec::new(),
                });
            }
            // no crop: a scratch gallery keeps none
            match Photo::read(&file).and_then(|photo| engine.faces.largest_face(&photo)) {
                Ok((_, face)) => {
                    people
                        .last_mut()
                        .expect("pushed above")
                        .portraits
                        .push(PortraitInput {
                            face,
                            source: file.display().to_string(),
                            crop_jpeg: None,
                        })
                }
                Err(_) => faces_not_found += 1,
            }
        }
        folders.push((dir.display().to_string(), faces_not_found));
    }
    Ok((folders, people))
}

/// Re-embeds every portrait from its kept face crop with the configured model (all or
/// nothing), then opens the gallery, which rebuilds its index from the new embeddings.
pub fn reembed(settings: &Settings, out: Output) -> Result<()> {
    let (model_id, _) = embedder_identity(&settings.vision)?;
    let lock = crate::db::DataDirLock::acquire(&settings.gallery.data_dir)?;
    let faces = crate::engine::FaceReader::new(
        Pipeline::load(&settings.vision, &settings.runtime)?,
        settings.vision.max_image_pixels,
    );
    let gallery = &settings.gallery;
    let redone = crate::gallery::reembed(
        &gallery.data_dir,
        &gallery.key_file,
        &model_id,
        |file, jpeg| {
            let photo = Photo {
                origin: file.to_owned(),
                bytes: jpeg.into(),
            };
            faces
                .largest_face(&photo)
                .map(|(_, face)| face.embedding)
                .map_err(|e| crate::telemetry::chain(&e))
        },
    )
    .with_context(|| {
        format!(
            "cannot re-embed the gallery in {}",
            settings.gallery.data_dir.display()
        )
    })?;
    lock.release();
    let engine = engine(settings)?;
    if out.json {
        out.print_json(&serde_json::json!({ "model_id": model_id, "portraits": redone }));
    } else {
        println!(
            "re-embedded {redone} portraits with {model_id}; index holds {}",
            engine.counts().1
        );
    }
    Ok(())
}
