//! Open-set identification through a real gallery: enrol the first `per_person` portraits of
//! each person, identify the rest; then each person once more as a stranger (their customer
//! deleted) to count wrong-name greetings. The same matcher and rules as the service.

use serde::Serialize;

use crate::gallery::{Gallery, GalleryError, NewCustomer, PortraitInput};

#[derive(Debug, Default, Serialize)]
pub struct OpenSetReport {
    pub people: usize,
    pub enrolled_portraits: usize,
    /// probes of enrolled people
    pub probes: usize,
    pub correct: usize,
    /// an enrolled person taken for someone else
    pub wrong_name: usize,
    pub unknown: usize,
    /// probes of people removed from the gallery (strangers)
    pub stranger_probes: usize,
    /// a stranger greeted by someone's name
    pub stranger_false_accepts: usize,
    pub faces_not_found: usize,
}

/// One person's portraits, in the order they were found.
pub struct Person {
    pub name: String,
    pub portraits: Vec<PortraitInput>,
}

/// Runs the protocol on an empty `gallery`; `faces_not_found` is carried into the report.
pub fn run(
    gallery: &Gallery,
    people: Vec<Person>,
    per_person: usize,
    faces_not_found: usize,
) -> Result<OpenSetReport, GalleryError> {
    let mut report = OpenSetReport {
        people: people.len(),
        faces_not_found,
        ..Default::default()
    };
    let mut enrolled = Vec::new();
    for person in people {
        let mut photos = person.portraits;
        let rest = photos.split_off(per_person.min(photos.len()));
        if photos.is_empty() {
            continue;
        }
        report.enrolled_portraits += photos.len();
        let faces: Vec<_> = photos.iter().map(|p| p.face.clone()).collect();
        let id = enrol(gallery, &person.name, photos)?;
        enrolled.push((id, person.name, faces, rest));
    }
    for (id, _, _, rest) in &enrolled {
        for probe in rest {
            report.probes += 1;
            match gallery.identify(&probe.face.embedding)?.customer_id() {
                Some(found) if found == *id => report.correct += 1,
                Some(_) => report.wrong_name += 1,
                None => report.unknown += 1,
            }
        }
    }
    // Each person as a stranger: remove them, try their photos, put them back (a new id;
    // later people keep theirs, so their deletion still hits them).
    for (id, name, faces, rest) in enrolled {
        gallery.delete_customer(id, "greeter eval")?;
        for probe in &rest {
            report.stranger_probes += 1;
            if gallery
                .identify(&probe.face.embedding)?
                .customer_id()
                .is_some()
            {
                report.stranger_false_accepts += 1;
            }
        }
        let portraits = faces
            .into_iter()
            .map(|face| PortraitInput {
                face,
                source: "eval".into(),
                crop_jpeg: None,
            })
            .collect();
        enrol(gallery, &name, portraits)?;
    }
    Ok(report)
}

/// Measures matching, not enrolment rules: every portrait goes in, look-alikes included.
fn enrol(
    gallery: &Gallery,
    name: &str,
    mut portraits: Vec<PortraitInput>,
) -> Result<i64, GalleryError> {
    for p in &mut portraits {
        p.face.quality.passed = true;
    }
    Ok(gallery
        .enrol(NewCustomer {
            name: name.to_owned(),
            external_ref: None,
            consent_how: "evaluation".into(),
            consent_by: "greeter eval".into(),
            portraits,
            force: true,
        })?
        .customer_id)
}
