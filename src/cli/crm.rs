//! CRM commands: catalogue import, the demo store, the suggestion evaluation.

use std::path::Path;

use anyhow::{Context, Result};

use super::Output;
use crate::config::Settings;
use crate::crm::Crm;
use crate::db::DataDirLock;
use crate::engine::{FaceReader, Photo};
use crate::gallery::{NewCustomer, PortraitInput};
use crate::vision::Purpose;

/// The CRM alone (no models), holding the data dir's lock while it is used.
fn open_crm(settings: &Settings) -> Result<(Crm, DataDirLock)> {
    let lock = DataDirLock::acquire(&settings.gallery.data_dir)?;
    let crm = Crm::open(&settings.gallery.data_dir, settings.crm.clone()).with_context(|| {
        format!(
            "cannot open the store in {}",
            settings.gallery.data_dir.display()
        )
    })?;
    Ok((crm, lock))
}

pub enum Import {
    Catalog,
    History,
}

/// Imports a catalogue or sales history file: what was imported, and each bad row by line.
pub fn import(settings: &Settings, what: Import, file: &Path, out: Output) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (crm, _lock) = open_crm(settings)?;
    let (report, unit) = match what {
        Import::Catalog => (crm.import_catalog(&text)?, "products"),
        Import::History => (crm.import_history(&text)?, "sales"),
    };
    if out.json {
        out.print_json(&report);
        return Ok(());
    }
    println!("{} {unit} imported", report.imported);
    for e in &report.errors {
        println!("  {}: {}", e.at, e.error);
    }
    if !report.errors.is_empty() {
        println!(
            "{} rows not imported (fix them and import them again)",
            report.errors.len()
        );
    }
    Ok(())
}

pub struct DemoOptions {
    pub seed: u64,
    pub customers: usize,
    pub items: usize,
}

/// Every face of the face-api demo photos that passes the quality gate, as a portrait.
fn demo_faces(faces: &FaceReader) -> Result<Vec<PortraitInput>> {
    let dir = crate::config::home().join(".cache/face-api/package/demo");
    let mut found = Vec::new();
    for photo in super::image_files(&dir)?.into_iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sample"))
    }) {
        let frame = faces.decode(&photo.display().to_string(), &Photo::read(&photo)?.bytes)?;
        for (i, face) in faces
            .analyse(&frame, Purpose::Still)?
            .into_iter()
            .enumerate()
        {
            if face.quality.passed {
                let source = format!("{}#{i}", photo.display());
                found.push(PortraitInput::from_frame(&frame, face, source));
            }
        }
    }
    Ok(found)
}

/// A demo store: catalogue, customers with histories, and the demo photos' faces enrolled as
/// the first customers. Refuses a data dir that already has customers.
pub fn seed_demo(settings: &Settings, options: DemoOptions, out: Output) -> Result<()> {
    let engine = super::gallery::engine(settings)?;
    let gallery = &engine.gallery;
    if !gallery.customers("")?.is_empty() {
        anyhow::bail!(
            "{} already has customers: seed the demo into an empty data dir (GREETER_GALLERY__DATA_DIR)",
            settings.gallery.data_dir.display()
        );
    }
    let crm = &engine.crm;
    let store = crate::crm::demo::generate(
        options.seed,
        options.items,
        options.customers,
        chrono::Utc::now(),
    );
    let faces = demo_faces(&engine.faces)?;
    let mut enrolled = Vec::with_capacity(faces.len());
    for (customer, face) in store.customers.iter().zip(faces) {
        let new = NewCustomer {
            name: customer.name.clone(),
            external_ref: None,
            consent_how: "demo data".into(),
            consent_by: "greeter demo seed".into(),
            // demo photos hold look-alikes; each face is its own customer
            force: true,
            portraits: vec![face],
        };
        enrolled.push(gallery.enrol(new)?.customer_id);
    }
    gallery.save_index()?;
    let ids = crm.write_demo(&store, &enrolled)?;
    let enrolled_faces = enrolled.len();
    let purchases = store.purchases();
    let summary = serde_json::json!({
        "products": store.products.len(),
        "customers": ids.len(),
        "customers_with_faces": enrolled_faces,
        "purchases": purchases,
        "seed": options.seed,
    });
    if out.json {
        out.print_json(&summary);
        return Ok(());
    }
    println!(
        "demo store: {} products, {} customers ({} with a face from the demo photos, customer ids {}..={}), {} purchases (seed {})",
        store.products.len(),
        ids.len(),
        enrolled_faces,
        ids.first().copied().unwrap_or(0),
        ids.get(enrolled_faces.saturating_sub(1))
            .copied()
            .unwrap_or(0),
        purchases,
        options.seed
    );
    Ok(())
}

pub fn evaluate(settings: &Settings, out: Output) -> Result<()> {
    let evaluation = open_crm(settings)?.0.evaluate()?;
    if out.json {
        out.print_json(&evaluation);
        return Ok(());
    }
    println!(
        "hold out each customer's last purchase, suggest from the rest ({} customers)",
        evaluation.customers
    );
    println!("{:<14} {:>8} {:>8}", "method", "hit@5", "hit@10");
    for (name, rates) in [
        ("suggestions", evaluation.suggestions),
        ("popularity", evaluation.popularity),
        ("random", evaluation.random),
    ] {
        println!("{name:<14} {:>8.3} {:>8.3}", rates.at5, rates.at10);
    }
    Ok(())
}
