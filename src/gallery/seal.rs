//! Encryption at rest of what identifies a face: embeddings, kept face crops and the saved
//! vector index are sealed (AES-256-GCM) with a key that never lives in the data dir or the
//! config file. A copied data dir, a backup or a stolen disk holds names and visits, but no
//! face and no vector.
//!
//! The key is 32 random bytes in hex, from `GREETER_DATA_KEY` or from `gallery.key_file`
//! (generated there, mode 0600, on the first start of an empty data dir). Each sealed value is
//! bound to what it is (its portrait id, its file name), so a value copied onto another row
//! does not open.

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The environment variable that, when set, holds the key (and wins over the key file).
pub const KEY_ENV: &str = "GREETER_DATA_KEY";

/// The first bytes of every sealed value: a plaintext embedding or JPEG never starts so.
const MAGIC: &[u8; 4] = b"GSL1";

/// Bytes a sealed value has beyond its plaintext: the marker, the nonce and the tag.
pub const OVERHEAD: usize = MAGIC.len() + NONCE_LEN + 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "the data key in {0} must be 64 hex digits (32 bytes, e.g. from `openssl rand -hex 32`)"
    )]
    BadKey(String),
    #[error("cannot read or write the data key {path}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no randomness for a key or nonce")]
    Random,
    #[error(
        "{what} does not open with this data key: the key is not the one it was sealed with, or the data was changed"
    )]
    WrongKey { what: String },
}

/// The key, ready to seal and open.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Where the key came from, for the log and for errors.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => write!(f, "${KEY_ENV}"),
            KeySource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Sealer {
    /// The key from the environment or `key_file`; `None` when neither holds one.
    pub fn find(key_file: &Path) -> Result<Option<(Sealer, KeySource)>, SealError> {
        if let Some(hex) = std::env::var_os(KEY_ENV) {
            let hex = hex.to_string_lossy();
            let sealer =
                Sealer::from_hex(&hex).ok_or_else(|| SealError::BadKey(format!("${KEY_ENV}")))?;
            return Ok(Some((sealer, KeySource::Env)));
        }
        Sealer::from_file(key_file)
    }

    fn from_file(key_file: &Path) -> Result<Option<(Sealer, KeySource)>, SealError> {
        match std::fs::read_to_string(key_file) {
            Ok(text) => {
                warn_if_shared(key_file);
                let sealer = Sealer::from_hex(&text)
                    .ok_or_else(|| SealError::BadKey(key_file.display().to_string()))?;
                Ok(Some((sealer, KeySource::File(key_file.to_owned()))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SealError::KeyFile {
                path: key_file.to_owned(),
                source,
            }),
        }
    }

    /// A new random key in `key_file` (0600; its folder made 0700 if missing). The key is
    /// written whole beside it and linked into place, so a key file is never half-written and
    /// never replaced: if another process made one first, that one is used.
    pub fn generate(key_file: &Path) -> Result<(Sealer, KeySource), SealError> {
        let io = |source| SealError::KeyFile {
            path: key_file.to_owned(),
            source,
        };
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| SealError::Random)?;
        let parent = key_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.exists() {
            crate::db::private_dir(parent).map_err(io)?;
        }
        let tmp = key_file.with_extension(format!("new-{}", std::process::id()));
        crate::db::private_file(&tmp)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(key)).as_bytes())?;
                file.sync_all()
            })
            .map_err(io)?;
        let linked = std::fs::hard_link(&tmp, key_file);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Sealer::from_file(key_file)?.ok_or_else(|| io(e));
            }
            Err(e) => return Err(io(e)),
        }
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        tracing::warn!(
            path = %key_file.display(),
            "generated the data key that seals faces and embeddings: back it up apart from the data dir (without it they cannot be read)"
        );
        Ok((
            Sealer::from_bytes(&key),
            KeySource::File(key_file.to_owned()),
        ))
    }

    fn from_hex(text: &str) -> Option<Sealer> {
        let bytes = hex::decode(text.trim()).ok()?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Sealer::from_bytes(&key))
    }

    fn from_bytes(key: &[u8; 32]) -> Sealer {
        let key = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is an AES-256 key");
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    /// `plain` encrypted and authenticated, bound to `what` (a random nonce per value).
    pub fn seal(&self, plain: &[u8], what: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.as_bytes()),
                &mut out[MAGIC.len() + NONCE_LEN..],
            )
            .map_err(|_| SealError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// What `seal(plain, what)` sealed; an error if the key or `what` differ or a byte changed.
    pub fn open(&self, sealed: &[u8], what: &str) -> Result<Vec<u8>, SealError> {
        let wrong = || SealError::WrongKey {
            what: what.to_owned(),
        };
        let rest = sealed.strip_prefix(MAGIC.as_slice()).ok_or_else(wrong)?;
        if rest.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut body = body.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(what.as_bytes()), &mut body)
            .map_err(|_| wrong())?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

/// Whether `bytes` is a sealed value (rather than a plaintext one left by an older version).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the data key is readable by other users: chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let (sealer, source) = Sealer::generate(&dir.path().join("keys/data.key")).unwrap();
        assert_eq!(source, KeySource::File(dir.path().join("keys/data.key")));
        let plain = b"an embedding's bytes".to_vec();
        let sealed = sealer.seal(&plain, "portrait 7").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(plain.len()).any(|w| w == plain.as_slice()));
        assert_eq!(sealer.open(&sealed, "portrait 7").unwrap(), plain);
        // the same value twice seals differently (a fresh nonce each time)
        assert_ne!(sealer.seal(&plain, "portrait 7").unwrap(), sealed);
        assert!(matches!(
            sealer.open(&sealed, "portrait 8"),
            Err(SealError::WrongKey { .. })
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&flipped, "portrait 7").is_err());
        let (other, _) = Sealer::generate(&dir.path().join("other.key")).unwrap();
        assert!(other.open(&sealed, "portrait 7").is_err());
        assert!(sealer.open(&plain, "portrait 7").is_err());
    }

    #[test]
    fn the_key_file_is_private_reused_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/data.key");
        assert!(Sealer::find(&path).unwrap().is_none());
        let (sealer, _) = Sealer::generate(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let sealed = sealer.seal(b"x", "t").unwrap();
        let (found, _) = Sealer::find(&path).unwrap().unwrap();
        assert_eq!(found.open(&sealed, "t").unwrap(), b"x");
        let (again, _) = Sealer::generate(&path).unwrap();
        assert_eq!(
            again.open(&sealed, "t").unwrap(),
            b"x",
            "an existing key is kept, never replaced"
        );
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left beside the key");
        std::fs::write(dir.path().join("short.key"), "abcd").unwrap();
        assert!(matches!(
            Sealer::find(&dir.path().join("short.key")),
            Err(SealError::BadKey(_))
        ));
    }
}
