//! The store's side of sealing: which key opens this data dir, embeddings and crops sealed on
//! the way in and opened on the way out, and a data dir from before sealing sealed once.

use std::path::Path;

use rusqlite::{Connection, params};

use super::{Store, meta, write_synced};
use crate::gallery::GalleryError;
use crate::gallery::seal::{Sealer, is_sealed};

/// Meta row holding a value sealed with the data key: tells a wrong key from damaged data.
const KEY_CHECK: &str = "key_check";

/// The data key for this database, and whether the database was never sealed (new, or written
/// by a version that did not seal). A new key is generated only then: a sealed data dir whose
/// key is missing is refused, never given a new key that would not open it.
pub(super) fn unlock(
    conn: &Connection,
    data_dir: &Path,
    key_file: &Path,
) -> Result<(Sealer, bool), GalleryError> {
    let check = meta(conn, KEY_CHECK)?;
    let (sealer, source) = match (Sealer::find(key_file)?, &check) {
        (Some(found), _) => found,
        (None, None) => Sealer::generate(key_file)?,
        (None, Some(_)) => {
            return Err(GalleryError::KeyMissing {
                data_dir: data_dir.to_owned(),
                key_file: key_file.to_owned(),
            });
        }
    };
    let Some(check) = check else {
        return Ok((sealer, true));
    };
    let opened = hex::decode(check)
        .ok()
        .and_then(|sealed| sealer.open(&sealed, KEY_CHECK).ok());
    if opened.is_none() {
        return Err(GalleryError::WrongKey {
            data_dir: data_dir.to_owned(),
            key: source.to_string(),
        });
    }
    tracing::debug!(key = %source, "data dir unlocked");
    Ok((sealer, false))
}

pub(super) fn seal_embedding(
    sealer: &Sealer,
    portrait: i64,
    embedding: &[f32],
) -> Result<Vec<u8>, GalleryError> {
    let clear: Vec<u8> = embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(sealer.seal(&clear, &format!("portrait {portrait}"))?)
}

pub(super) fn open_embedding(
    sealer: &Sealer,
    portrait: i64,
    sealed: &[u8],
) -> Result<Vec<f32>, GalleryError> {
    Ok(floats(
        &sealer.open(sealed, &format!("portrait {portrait}"))?,
    ))
}

/// An embedding's little-endian bytes as floats.
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub(super) fn seal_crop(sealer: &Sealer, file: &str, jpeg: &[u8]) -> Result<Vec<u8>, GalleryError> {
    Ok(sealer.seal(jpeg, &format!("crop {file}"))?)
}

/// A portrait's ids and kept crop, without its embedding.
pub struct PortraitCrop {
    pub id: i64,
    pub customer_id: i64,
    pub crop_file: Option<String>,
}

impl Store {
    pub fn portrait_crops(&self) -> Result<Vec<PortraitCrop>, GalleryError> {
        Ok(self
            .conn
            .prepare("SELECT id, customer_id, crop_file FROM portraits ORDER BY id")?
            .query_map([], |r| {
                Ok(PortraitCrop {
                    id: r.get(0)?,
                    customer_id: r.get(1)?,
                    crop_file: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    /// A kept face crop, as the JPEG it was.
    pub fn read_crop(&self, file: &str) -> Result<Vec<u8>, GalleryError> {
        let path = self.crops_dir.join(file);
        let sealed = std::fs::read(&path).map_err(|source| GalleryError::Io { path, source })?;
        Ok(self.sealer.open(&sealed, &format!("crop {file}"))?)
    }

    /// Seals the embeddings and crops that a version before sealing wrote in the clear, then
    /// records the key check, in one transaction (crops first, each atomically; a crash in
    /// between leaves some crops sealed, which the next open skips).
    pub(super) fn seal_what_is_clear(&mut self) -> Result<(), GalleryError> {
        let rows: Vec<(i64, Vec<u8>, Option<String>)> = self
            .conn
            .prepare("SELECT id, embedding, crop_file FROM portraits")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut sealed_crops = 0;
        for file in rows.iter().filter_map(|(_, _, file)| file.as_deref()) {
            let path = self.crops_dir.join(file);
            match std::fs::read(&path) {
                Ok(bytes) if !is_sealed(&bytes) => {
                    write_synced(&path, &seal_crop(&self.sealer, file, &bytes)?)?;
                    sealed_crops += 1;
                }
                Ok(_) => {}
                // a crop lost before this version is not ours to invent; reembed reports it
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(GalleryError::Io { path, source }),
            }
        }
        let tx = self.conn.transaction()?;
        let mut sealed_embeddings = 0;
        for (id, blob, _) in &rows {
            if !is_sealed(blob) {
                tx.execute(
                    "UPDATE portraits SET embedding = ?1 WHERE id = ?2",
                    params![seal_embedding(&self.sealer, *id, &floats(blob))?, id],
                )?;
                sealed_embeddings += 1;
            }
        }
        let check = hex::encode(self.sealer.seal(b"greeter", KEY_CHECK)?);
        Store::set_meta(&tx, KEY_CHECK, &check)?;
        tx.commit()?;
        if sealed_embeddings + sealed_crops > 0 {
            tracing::warn!(
                embeddings = sealed_embeddings,
                crops = sealed_crops,
                "sealed what an older version kept in the clear"
            );
            // the clear blobs were overwritten (secure_delete); fold the log in so no copy lingers
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}
