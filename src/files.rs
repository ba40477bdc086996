//! Walking photo folders (import, eval, replay cameras).

use std::path::{Path, PathBuf};

/// The entries of `dir` that `keep` accepts, sorted by path.
pub fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    entries.sort();
    Ok(entries)
}

/// The image files directly inside `dir`, sorted.
pub fn image_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    sorted_entries(dir, |p| {
        p.is_file() && crate::vision::decode::is_image_name(p)
    })
}
