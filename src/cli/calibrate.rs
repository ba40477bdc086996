//! `greeter calibrate [DIR]`: the matching threshold with evidence, as a table and a plot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Output;
use crate::calibration::{self, Person};
use crate::config::Settings;
use crate::engine::{FaceReader, Photo};

pub struct CalibrateArgs {
    pub dirs: Vec<PathBuf>,
    pub target: f64,
    pub plot: Option<PathBuf>,
    pub customers: Option<usize>,
}

/// One person per sub-folder, with the largest face of each photo.
fn labelled_people(faces: &FaceReader, dir: &Path) -> Result<Vec<Person>> {
    let mut people: Vec<Person> = Vec::new();
    for (label, file) in super::faces::labelled_photos(dir)? {
        let embedding = Photo::read(&file)
            .and_then(|photo| faces.largest_face(&photo))
            .ok()
            .map(|(_, face)| face.embedding);
        let Some(embedding) = embedding else {
            eprintln!("warning: no face in {}", file.display());
            continue;
        };
        match people.last_mut() {
            Some(p) if p.label == label => p.embeddings.push(embedding),
            _ => people.push(Person {
                label,
                embeddings: vec![embedding],
            }),
        }
    }
    Ok(people)
}

pub fn calibrate(settings: &Settings, args: CalibrateArgs, out: Output) -> Result<()> {
    let engine = super::gallery::engine(settings)?;
    let mut folders = Vec::new();
    for dir in &args.dirs {
        folders.push((
            dir.display().to_string(),
            labelled_people(&engine.faces, dir)?,
        ));
    }
    let extra: Vec<Person> = folders.iter().flat_map(|(_, p)| p.clone()).collect();
    let labelled = extra.len();
    let c = engine
        .admin
        .calibration(args.target, extra, args.customers)?;
    // each population alone, for the same gallery size: one mean would hide the one that
    // matters
    let per_folder: Vec<Folder> = folders
        .iter()
        .map(|(folder, people)| Folder {
            folder: folder.clone(),
            calibration: calibration::calibrate(
                people,
                &engine.admin.rules(),
                c.customers,
                c.target_wrong_name,
            ),
        })
        .collect();
    let enrolled = c.people - labelled;
    if c.people < 2 {
        anyhow::bail!(
            "calibration needs faces of at least two people: enrol customers, or give a folder with one sub-folder of photos per person"
        );
    }
    let customers = c.customers;
    if let Some(plot) = &args.plot {
        std::fs::write(plot, calibration::svg(&c))
            .with_context(|| format!("cannot write {}", plot.display()))?;
    }
    if out.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            all: &'a calibration::Calibration,
            folders: &'a [Folder],
        }
        out.print_json(&Report {
            all: &c,
            folders: &per_folder,
        });
        return Ok(());
    }
    println!(
        "{} people ({} enrolled customers, {} with 2+ faces): {} genuine pairs, {} impostor comparisons",
        c.people, enrolled, c.people_with_pairs, c.genuine_pairs, c.impostor_comparisons
    );
    println!("wrong-name rate per stranger for a gallery of {customers} customers\n");
    println!(
        "{:>9} {:>10} {:>8} {:>12}",
        "threshold", "FAR", "FRR", "wrong name"
    );
    for p in c
        .curve
        .iter()
        .filter(|p| (p.threshold * 1000.0).round() as i32 % 20 == 0)
    {
        println!(
            "{:>9.3} {:>10.2e} {:>8.3} {:>12.2e}",
            p.threshold, p.far, p.frr, p.wrong_name
        );
    }
    if let Some(eer) = &c.eer {
        println!(
            "\nEER {:.3} at threshold {:.3}",
            (eer.far + eer.frr) / 2.0,
            eer.threshold
        );
    }
    let now = &c.current;
    println!(
        "current: threshold {:.3}, margin {:.3}: FAR {:.2e}, FRR {:.3}, wrong name {:.2e}",
        now.threshold,
        now.margin,
        now.at_threshold.far,
        now.at_threshold.frr,
        now.at_threshold.wrong_name
    );
    println!(
        "  each face with its own other faces enrolled ({} probes): {} right name, {} below threshold, {} refused by the margin, {} wrong name",
        now.probes, now.right_name, now.below_threshold, now.ambiguous, now.wrong_name
    );
    match c.recommended_threshold {
        Some(t) => println!(
            "for at most {:.0e} wrong names per stranger: threshold {t:.3}",
            c.target_wrong_name
        ),
        None => println!(
            "no threshold up to 1.0 reaches {:.0e} wrong names per stranger",
            c.target_wrong_name
        ),
    }
    for w in &c.warnings {
        println!("warning: {w}");
    }
    if per_folder.len() > 1 {
        println!("\nper folder (its people alone):");
        for f in &per_folder {
            let c = &f.calibration;
            println!(
                "  {}: {} people, EER {}, at the current rules FAR {:.2e} FRR {:.3}, recommended threshold {}",
                f.folder,
                c.people,
                c.eer
                    .as_ref()
                    .map(|e| format!("{:.3} at {:.3}", (e.far + e.frr) / 2.0, e.threshold))
                    .unwrap_or_else(|| "-".into()),
                c.current.at_threshold.far,
                c.current.at_threshold.frr,
                c.recommended_threshold
                    .map(|t| format!("{t:.3}"))
                    .unwrap_or_else(|| "none".into())
            );
        }
    }
    if let Some(plot) = &args.plot {
        println!("plot: {}", plot.display());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Folder {
    folder: String,
    calibration: calibration::Calibration,
}
