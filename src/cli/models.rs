//! `greeter models`: what is installed, and installing a store's own recognizer.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{ModelsAction, Output};
use crate::config::Settings;
use crate::vision::install::{NewModel, install};
use crate::vision::manifest::{Channels, LocalManifest, Manifest};
use crate::vision::{Family, Mix};

pub fn run(settings: &Settings, action: ModelsAction, out: Output) -> Result<()> {
    match action {
        ModelsAction::List => list(settings, out),
        ModelsAction::Add {
            file,
            name,
            family,
            input_size,
            mean,
            std,
            bgr,
            licence,
        } => {
            let new = NewModel {
                name,
                family,
                input_size,
                mean: three(&mean)?,
                std: three(&std)?,
                channels: if bgr { Channels::Bgr } else { Channels::Rgb },
                licence,
            };
            add(settings, &file, new, out)
        }
    }
}

fn three(values: &[f32]) -> Result<[f32; 3]> {
    match values {
        [v] => Ok([*v; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => anyhow::bail!(
            "give one value or three (per channel), got {}",
            values.len()
        ),
    }
}

fn add(settings: &Settings, file: &Path, new: NewModel, out: Output) -> Result<()> {
    let installed = install(&settings.vision.models_dir, &settings.runtime, file, new)?;
    if out.json {
        out.print_json(&installed);
        return Ok(());
    }
    println!(
        "installed {} ({}): sha256 {}, {} dimensions, {}, {:.1} ms a face",
        installed.name,
        installed.file.display(),
        installed.sha256,
        installed.dimensions,
        match installed.fixed_batch {
            Some(n) => format!("batch fixed at {n}"),
            None => "any batch".to_owned(),
        },
        installed.ms_per_face
    );
    println!(
        "to use it: set vision.embedder = \"{0}\" (or GREETER_VISION__EMBEDDER={0}), then run \
         `greeter gallery reembed` to redo the gallery from its kept face crops",
        installed.name
    );
    Ok(())
}

fn list(settings: &Settings, out: Output) -> Result<()> {
    #[derive(Serialize)]
    struct Row {
        name: String,
        family: Family,
        input_size: u32,
        dimensions: Option<usize>,
        installed_by_store: bool,
        in_use: bool,
        licence: String,
    }
    let dir = &settings.vision.models_dir;
    let manifest = Manifest::load(dir)?;
    let local = LocalManifest::load(dir)?;
    let mix = Mix::parse(&settings.vision.embedder)?;
    let vision = &settings.vision;
    let rows: Vec<Row> = manifest
        .models
        .into_iter()
        .map(|(name, spec)| Row {
            installed_by_store: local.models.contains_key(&name),
            in_use: mix.names().any(|n| n == name)
                || [&vision.detector, &vision.landmarks].contains(&&name),
            name,
            family: spec.family,
            input_size: spec.input_size,
            dimensions: spec.dimensions,
            licence: spec.licence,
        })
        .collect();
    if out.json {
        out.print_json(&rows);
        return Ok(());
    }
    for r in rows {
        println!(
            "{}{:<22} {:<20} {:>4}px {:>5}  {}{}",
            if r.in_use { "* " } else { "  " },
            r.name,
            format!("{:?}", r.family),
            r.input_size,
            r.dimensions.map(|d| d.to_string()).unwrap_or_default(),
            r.licence,
            if r.installed_by_store {
                "  (added by the store)"
            } else {
                ""
            }
        );
    }
    println!("embedder in use: {mix}");
    Ok(())
}
