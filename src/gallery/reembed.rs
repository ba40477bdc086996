//! Moving a gallery to another embedding model, from the face crops it kept.

use std::path::Path;

use super::GalleryError;
use super::store::Store;

/// Recomputes every portrait's embedding with the model `model_id` from its kept face crop,
/// all in one transaction: nothing changes unless every portrait can be redone. The index is
/// rebuilt from the store at the next open. Returns how many portraits were redone.
pub fn reembed<E: std::fmt::Display>(
    data_dir: &Path,
    model_id: &str,
    mut embed: impl FnMut(&Path) -> Result<Vec<f32>, E>,
) -> Result<usize, GalleryError> {
    let mut store = Store::open_any_model(data_dir)?;
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
        match embed(&store.crop_path(file)) {
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
