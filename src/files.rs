//! Walking photo folders (import, eval, replay cameras), and writing files that a crash
//! cannot leave half-written.

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

/// Writes `bytes` to a private temporary file beside `path`, syncs it, renames it into place
/// and syncs the folder: after a crash `path` holds the old bytes or the new ones.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = crate::db::private_file(&tmp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
