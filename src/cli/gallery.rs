//! Gallery commands: enrol, identify, import, customers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{CustomersAction, Output};
use crate::config::Settings;
use crate::gallery::{Decision, Gallery, GalleryError, NewCustomer, PortraitInput, Store};
use crate::vision::{BBox, Pipeline, decode, embedder_identity};

pub struct Enrolment {
    pub name: String,
    pub consent: String,
    pub by: String,
    pub force: bool,
    pub images: Vec<PathBuf>,
}

pub(super) fn open_gallery(settings: &Settings) -> Result<Gallery> {
    let (model_id, dimensions) = embedder_identity(settings)?;
    let (gallery, _report) = Gallery::open(
        settings.gallery.clone(),
        settings.matching.clone(),
        &model_id,
        dimensions,
    )
    .with_context(|| {
        format!(
            "cannot open the gallery in {}",
            settings.gallery.data_dir.display()
        )
    })?;
    Ok(gallery)
}

/// The largest face of a photo as a portrait, with its face crop.
fn portrait(pipeline: &Pipeline, settings: &Settings, path: &Path) -> Result<PortraitInput> {
    let frame = decode::load(path, settings.vision.max_image_pixels)?;
    let analysis = pipeline.process(&frame)?;
    let face = analysis
        .largest()
        .cloned()
        .with_context(|| format!("no face found in {}", path.display()))?;
    Ok(PortraitInput::from_frame(
        &frame,
        face,
        path.display().to_string(),
    ))
}

pub fn enrol(pipeline: &Pipeline, settings: &Settings, e: Enrolment, out: Output) -> Result<()> {
    let gallery = open_gallery(settings)?;
    let portraits = e
        .images
        .iter()
        .map(|p| portrait(pipeline, settings, p))
        .collect::<Result<Vec<_>>>()?;
    let enrolled = gallery.enrol(NewCustomer {
        name: e.name.clone(),
        external_ref: None,
        consent_how: e.consent,
        consent_by: e.by,
        portraits,
        force: e.force,
    })?;
    gallery.save_index()?;
    if out.json {
        out.print_json(&enrolled);
    } else {
        println!(
            "enrolled customer {} ({}) with {} portrait(s)",
            enrolled.customer_id,
            e.name.trim(),
            enrolled.portrait_ids.len()
        );
    }
    Ok(())
}

pub fn identify(pipeline: &Pipeline, settings: &Settings, image: &Path, out: Output) -> Result<()> {
    let gallery = open_gallery(settings)?;
    let frame = decode::load(image, settings.vision.max_image_pixels)?;
    let analysis = pipeline.process(&frame)?;
    if analysis.faces.is_empty() {
        bail!("no face found in {}", image.display());
    }
    #[derive(Serialize)]
    struct Identified {
        #[serde(rename = "box")]
        bbox: BBox,
        quality_passed: bool,
        name: Option<String>,
        #[serde(flatten)]
        decision: Decision,
    }
    let mut results = Vec::new();
    for face in &analysis.faces {
        let decision = gallery.identify(&face.embedding)?;
        let name = match decision.customer_id() {
            Some(id) => Some(gallery.customer(id)?.0.display_name),
            None => None,
        };
        results.push(Identified {
            bbox: face.bbox,
            quality_passed: face.quality.passed,
            name,
            decision,
        });
    }
    if out.json {
        out.print_json(&results);
        return Ok(());
    }
    for (i, r) in results.iter().enumerate() {
        let b = r.bbox;
        let what = match &r.decision {
            Decision::Known { best, runner_up } => format!(
                "customer {} {} (similarity {:.3}{})",
                best.customer_id,
                r.name.as_deref().unwrap_or(""),
                best.score,
                runner_up
                    .map(|c| format!(", next customer {} at {:.3}", c.customer_id, c.score))
                    .unwrap_or_default()
            ),
            Decision::Unknown { reason, .. } => format!("unknown: {reason}"),
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
pub fn import(
    pipeline: &Pipeline,
    settings: &Settings,
    dir: &Path,
    consent: &str,
    by: &str,
    out: Output,
) -> Result<()> {
    let gallery = open_gallery(settings)?;
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
        if gallery.customer_by_ref(&external_ref)?.is_some() {
            summary.already_in += 1;
            continue;
        }
        let files = super::image_files(folder)?;
        let mut portraits = Vec::new();
        let mut problems = Vec::new();
        for file in &files {
            match portrait(pipeline, settings, file) {
                Ok(p) if p.face.quality.passed => portraits.push(p),
                Ok(p) => problems.push(format!(
                    "{}: {}",
                    file.display(),
                    p.face.quality.reasons.join("; ")
                )),
                Err(e) => problems.push(format!("{e:#}")),
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
        match gallery.enrol(customer) {
            Ok(enrolled) => {
                summary.enrolled += 1;
                summary.portraits += enrolled.portrait_ids.len();
            }
            Err(GalleryError::Refused(why)) => summary.refused.push((name, why.to_string())),
            Err(e) => return Err(e.into()),
        }
        if n % 50 == 49 {
            gallery.save_index()?;
        }
    }
    progress.finish_and_clear();
    gallery.save_index()?;
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
    let gallery = open_gallery(settings)?;
    match action {
        CustomersAction::List { query } => {
            let customers = gallery.customers(query.as_deref().unwrap_or(""))?;
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
            let (customer, portraits) = gallery.customer(id)?;
            if out.json {
                out.print_json(
                    &serde_json::json!({ "customer": customer, "portraits": portraits }),
                );
            } else {
                println!("customer {}: {}", customer.id, customer.display_name);
                println!(
                    "  consent: {} (recorded by {} at {})",
                    customer.consent.how, customer.consent.by, customer.consent.at
                );
                for p in &portraits {
                    println!(
                        "  portrait {} quality {:.3} from {} at {}",
                        p.id, p.quality, p.source, p.captured_at
                    );
                }
            }
        }
        CustomersAction::Delete { id } => {
            gallery.delete_customer(id)?;
            gallery.save_index()?;
            if out.json {
                out.print_json(&serde_json::json!({ "deleted": id }));
            } else {
                println!("deleted customer {id} and all their data");
            }
        }
    }
    Ok(())
}

#[derive(Default, Serialize)]
struct GalleryEval {
    people: usize,
    enrolled_portraits: usize,
    /// probes of enrolled people
    probes: usize,
    correct: usize,
    /// an enrolled person taken for someone else
    wrong_name: usize,
    unknown: usize,
    /// probes of people removed from the gallery (strangers)
    stranger_probes: usize,
    /// a stranger greeted by someone's name
    stranger_false_accepts: usize,
    faces_not_found: usize,
}

/// Open-set identification through a real (scratch) gallery: enrol the first `per_person`
/// photos of each person, identify the rest; then each person once more as a stranger (their
/// customer deleted) to count wrong-name greetings.
pub fn evaluate(
    pipeline: &Pipeline,
    settings: &Settings,
    dir: &Path,
    per_person: usize,
    out: Output,
) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("greeter-eval-{}", std::process::id()));
    let mut settings = settings.clone();
    settings.gallery.data_dir = scratch.clone();
    settings.gallery.keep_crops = false;
    settings.gallery.max_portraits_per_customer =
        settings.gallery.max_portraits_per_customer.max(per_person);
    let result = run_gallery_eval(pipeline, &settings, dir, per_person);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    if out.json {
        out.print_json(&report);
        return Ok(());
    }
    let rate = |n: usize, of: usize| {
        if of == 0 {
            f64::NAN
        } else {
            n as f64 / of as f64
        }
    };
    println!(
        "threshold {:.3}, margin {:.3}, {} portrait(s) per person enrolled",
        settings.matching.threshold, settings.matching.margin, per_person
    );
    println!(
        "people {}  enrolled portraits {}  faces not found {}",
        report.people, report.enrolled_portraits, report.faces_not_found
    );
    println!(
        "enrolled people: {} probes, rank-1 correct {:.4}, wrong name {}, unknown {:.4}",
        report.probes,
        rate(report.correct, report.probes),
        report.wrong_name,
        rate(report.unknown, report.probes)
    );
    println!(
        "strangers: {} probes, greeted by a wrong name {}",
        report.stranger_probes, report.stranger_false_accepts
    );
    Ok(())
}

fn run_gallery_eval(
    pipeline: &Pipeline,
    settings: &Settings,
    dir: &Path,
    per_person: usize,
) -> Result<GalleryEval> {
    let gallery = open_gallery(settings)?;
    let mut report = GalleryEval::default();
    let mut by_person: Vec<(String, Vec<PortraitInput>)> = Vec::new();
    for (person, file) in super::faces::labelled_photos(dir)? {
        if by_person.last().is_none_or(|(p, _)| *p != person) {
            by_person.push((person.clone(), Vec::new()));
        }
        match portrait(pipeline, settings, &file) {
            Ok(p) => by_person.last_mut().expect("pushed above").1.push(p),
            Err(_) => report.faces_not_found += 1,
        }
    }
    report.people = by_person.len();
    let mut customers = Vec::new();
    let mut probes = Vec::new();
    for (person, mut photos) in by_person {
        let rest = photos.split_off(per_person.min(photos.len()));
        let enrolled_faces: Vec<_> = photos.iter().map(|p| p.face.clone()).collect();
        if photos.is_empty() {
            continue;
        }
        report.enrolled_portraits += photos.len();
        let mut customer = NewCustomer {
            name: person.clone(),
            external_ref: None,
            consent_how: "evaluation".into(),
            consent_by: "greeter eval".into(),
            portraits: photos,
            force: true,
        };
        // Measure matching, not enrolment rules: every portrait goes in.
        for p in &mut customer.portraits {
            p.face.quality.passed = true;
        }
        let id = gallery.enrol(customer)?.customer_id;
        customers.push((id, person, enrolled_faces));
        probes.push((id, rest));
    }
    for (id, rest) in &probes {
        for probe in rest {
            report.probes += 1;
            match gallery.identify(&probe.face.embedding)?.customer_id() {
                Some(found) if found == *id => report.correct += 1,
                Some(_) => report.wrong_name += 1,
                None => report.unknown += 1,
            }
        }
    }
    // Each person as a stranger: remove them, try their photos, put them back.
    for ((id, person, enrolled), (_, rest)) in customers.into_iter().zip(&probes) {
        gallery.delete_customer(id)?;
        for probe in rest {
            report.stranger_probes += 1;
            if gallery
                .identify(&probe.face.embedding)?
                .customer_id()
                .is_some()
            {
                report.stranger_false_accepts += 1;
            }
        }
        let portraits = enrolled
            .into_iter()
            .map(|mut face| {
                face.quality.passed = true;
                PortraitInput {
                    face,
                    source: "eval".into(),
                    crop_jpeg: None,
                }
            })
            .collect();
        let back = NewCustomer {
            name: person,
            external_ref: None,
            consent_how: "evaluation".into(),
            consent_by: "greeter eval".into(),
            portraits,
            force: true,
        };
        // A new id; later people keep theirs, so their deletion below still hits them.
        gallery.enrol(back)?;
    }
    Ok(report)
}

/// Re-embeds every portrait from its kept face crop with the configured model, all in one
/// transaction (nothing changes unless every portrait can be redone); the index is rebuilt
/// at the next open.
pub fn reembed(pipeline: &Pipeline, settings: &Settings, out: Output) -> Result<()> {
    let (model_id, _) = embedder_identity(settings)?;
    let mut store = Store::open_any_model(&settings.gallery.data_dir)?;
    let portraits = store.all_portraits()?;
    let mut redone = Vec::with_capacity(portraits.len());
    let mut problems = Vec::new();
    for p in &portraits {
        let Some(file) = &p.crop_file else {
            problems.push(format!(
                "portrait {} (customer {}) has no kept crop",
                p.id, p.customer_id
            ));
            continue;
        };
        match portrait(pipeline, settings, &store.crop_path(file)) {
            Ok(new) => redone.push((p.id, new.face.embedding)),
            Err(e) => problems.push(format!(
                "portrait {} (customer {}): {e:#}",
                p.id, p.customer_id
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "nothing changed, {} of {} portraits cannot be re-embedded: {}",
            problems.len(),
            portraits.len(),
            problems.join("; ")
        );
    }
    store.replace_embeddings(&model_id, &redone)?;
    drop(store);
    let gallery = open_gallery(settings)?;
    if out.json {
        out.print_json(&serde_json::json!({ "model_id": model_id, "portraits": redone.len() }));
    } else {
        println!(
            "re-embedded {} portraits with {model_id}; index holds {}",
            redone.len(),
            gallery.portrait_count()
        );
    }
    Ok(())
}
