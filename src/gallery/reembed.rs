//! Moving a gallery to another embedding model, from the face crops it kept.

use std::path::Path;

use super::GalleryError;
use super::store::Store;

/// Recomputes every portrait's embedding with the model `model_id` from its kept face crop,
/// all in one transaction: nothing changes unless every portrait can be redone. The index is
/// rebuilt from the store at the next open. Returns how many portraits were redone.
pub fn reembed<E: std::fmt::Display>(
    data_dir: &Path,
    key_file: &Path,
    model_id: &str,
    mut embed: impl FnMut(&str, Vec<u8>) -> Result<Vec<f32>, E>,
) -> Result<usize, GalleryError> {
    let mut store = Store::open_any_model(data_dir, key_file)?;
    // ids and crops only: the old vectors may not even open (another model's, or damaged)
    let portraits = store.portrait_crops()?;
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
        let embedded = match store.read_crop(file) {
            Ok(jpeg) => embed(file, jpeg).map_err(|e| e.to_string()),
            Err(e) => Err(crate::telemetry::chain(&e)),
        };
        match embedded {
            Ok(embedding) => redone.push((p.id, embedding)),
            Err(e) => problems.push(format!(
                "portrait {} (customer {}): {e}",
                p.id, p.customer_id
            )),
        }
    }
    if !problems.is_empty() {
        return Err(GalleryError::NotReembedded {
            total: portraits.len(),
            problems,
        });
    }
    store.replace_embeddings(model_id, &redone)?;
    Ok(redone.len())
}
