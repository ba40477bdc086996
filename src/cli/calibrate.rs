//! `greeter calibrate [DIR]`: the matching threshold with evidence, as a table and a plot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Output;
use crate::calibration::{self, Person};
use crate::config::Settings;
use crate::engine::{FaceReader, Photo};

pub struct CalibrateArgs {
    pub dir: Option<PathBuf>,
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
    let extra = match &args.dir {
        Some(dir) => labelled_people(&engine.faces, dir)?,
        None => Vec::new(),
    };
    let labelled = extra.len();
    let c = engine
        .admin
        .calibration(args.target, extra, args.customers)?;
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
        out.print_json(&c);
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
    if let Some(plot) = &args.plot {
        println!("plot: {}", plot.display());
    }
    Ok(())
}
