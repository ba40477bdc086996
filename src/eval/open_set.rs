//! Open-set identification through a real gallery: enrol the first `per_person` portraits of
//! each person, identify the rest; then each person once more as a stranger (their customer
//! deleted) to count wrong-name greetings. The same matcher and rules as the service.

use serde::Serialize;

use crate::gallery::{Gallery, GalleryError, NewCustomer, PortraitInput};

/// What one population (a folder of people) got.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub people: usize,
    pub enrolled_portraits: usize,
    pub faces_not_found: usize,
    /// probes of enrolled people
    pub probes: usize,
    /// named right
    pub right: usize,
    /// an enrolled person taken for someone else
    pub wrong: usize,
    pub unknown: usize,
    /// probes of people removed from the gallery (strangers)
    pub strangers_probes: usize,
    /// a stranger greeted by someone's name
    pub strangers_wrong: usize,
}

impl Counts {
    fn plus(self, c: &Counts) -> Counts {
        Counts {
            people: self.people + c.people,
            enrolled_portraits: self.enrolled_portraits + c.enrolled_portraits,
            faces_not_found: self.faces_not_found + c.faces_not_found,
            probes: self.probes + c.probes,
            right: self.right + c.right,
            wrong: self.wrong + c.wrong,
            unknown: self.unknown + c.unknown,
            strangers_probes: self.strangers_probes + c.strangers_probes,
            strangers_wrong: self.strangers_wrong + c.strangers_wrong,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Population {
    pub folder: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// All populations enrolled in one gallery, reported apart: a mean would hide the one that
/// matters.
#[derive(Debug, Serialize)]
pub struct OpenSetReport {
    pub per_person: usize,
    pub folders: Vec<Population>,
    pub total: Counts,
}

/// One person's portraits, in the order they were found, and the population they belong to
/// (an index into the folders).
pub struct Person {
    pub name: String,
    pub population: usize,
    pub portraits: Vec<PortraitInput>,
}

/// Runs the protocol on an empty `gallery`; `faces_not_found` (per folder) is carried into
/// the report.
pub fn run(
    gallery: &Gallery,
    folders: Vec<(String, usize)>,
    people: Vec<Person>,
    per_person: usize,
) -> Result<OpenSetReport, GalleryError> {
    let mut counts: Vec<Counts> = folders
        .iter()
        .map(|&(_, faces_not_found)| Counts {
            faces_not_found,
            ..Default::default()
        })
        .collect();
    let mut enrolled = Vec::new();
    for person in people {
        let c = &mut counts[person.population];
        c.people += 1;
        let mut photos = person.portraits;
        let rest = photos.split_off(per_person.min(photos.len()));
        if photos.is_empty() {
            continue;
        }
        c.enrolled_portraits += photos.len();
        let faces: Vec<_> = photos.iter().map(|p| p.face.clone()).collect();
        let id = enrol(gallery, &person.name, photos)?;
        enrolled.push((id, person.name, person.population, faces, rest));
    }
    for (id, _, population, _, rest) in &enrolled {
        let c = &mut counts[*population];
        for probe in rest {
            c.probes += 1;
            match gallery.identify(&probe.face.embedding)?.customer_id() {
                Some(found) if found == *id => c.right += 1,
                Some(_) => c.wrong += 1,
                None => c.unknown += 1,
            }
        }
    }
    // Each person as a stranger: remove them, try their photos, put them back (a new id;
    // later people keep theirs, so their deletion still hits them).
    for (id, name, population, faces, rest) in enrolled {
        gallery.delete_customer(id, "greeter eval")?;
        let c = &mut counts[population];
        for probe in &rest {
            c.strangers_probes += 1;
            if gallery
                .identify(&probe.face.embedding)?
                .customer_id()
                .is_some()
            {
                c.strangers_wrong += 1;
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
    let total = counts.iter().fold(Counts::default(), |sum, c| sum.plus(c));
    Ok(OpenSetReport {
        per_person,
        folders: folders
            .into_iter()
            .zip(counts)
            .map(|((folder, _), counts)| Population { folder, counts })
            .collect(),
        total,
    })
}

/// Measures matching, not enrolment rules: every portrait goes in, look-alikes included.
pub fn enrol(
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
