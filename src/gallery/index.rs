//! The vector index: faiss, inner product over L2-normalised embeddings, ids = portrait ids.
//! Derived from the store and rebuildable; persisted atomically with the store's change counter.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use faiss::index::IndexImpl;
use faiss::index::TryClone;
use faiss::selector::IdSelector;
use faiss::{Idx, Index, MetricType};
use serde::{Deserialize, Serialize};

use super::GalleryError;
use super::seal::{SealError, Sealer};

/// What the sealed index file is bound to.
const SEALED_AS: &str = "vector index";

const INDEX_FILE: &str = "index.faiss";
const META_FILE: &str = "index.json";

/// What the saved index was built from; a mismatch with the store means "rebuild".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub change_counter: u64,
    pub model_id: String,
    pub factory: String,
    pub count: u64,
}

pub struct VectorIndex {
    index: IndexImpl,
    factory: String,
    dimensions: u32,
    /// Removed ids still inside an index that cannot remove (HNSW): filtered from results.
    tombstones: HashSet<i64>,
}

unsafe extern "C" {
    /// The OpenMP runtime faiss is linked with.
    fn omp_set_num_threads(threads: std::os::raw::c_int);
}

/// Threads faiss may use per search. One query at a time gains nothing from more, and waking
/// idle OpenMP threads costs milliseconds at the tail (measured at 10k vectors: p99 8 ms with
/// 2 threads, 0.43 ms with 1).
pub fn set_search_threads(threads: usize) {
    SEARCH_THREADS.store(threads.clamp(1, 64), Ordering::Relaxed);
}

static SEARCH_THREADS: AtomicUsize = AtomicUsize::new(1);

/// OpenMP's thread count is a per-thread setting: each thread that searches applies it.
fn apply_search_threads() {
    let threads = SEARCH_THREADS.load(Ordering::Relaxed) as std::os::raw::c_int;
    // SAFETY: sets the calling thread's OpenMP setting; no memory is shared with Rust.
    unsafe { omp_set_num_threads(threads) }
}

fn faiss_err(source: faiss::error::Error) -> GalleryError {
    GalleryError::Index(source)
}

/// The message of the C API's last failure on this thread.
fn last_faiss_error(code: std::os::raw::c_int) -> GalleryError {
    // SAFETY: called right after a failed C API call on this thread; the string it points to
    // lives until the next faiss call on this thread and is copied here.
    let message = unsafe {
        let e = faiss_sys::faiss_get_last_error();
        if e.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    };
    GalleryError::Search { code, message }
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("factory", &self.factory)
            .field("len", &self.len())
            .finish()
    }
}

impl VectorIndex {
    /// An empty index from a faiss factory string, e.g. "IDMap,Flat" or "IDMap,HNSW32".
    pub fn new(dimensions: u32, factory: &str) -> Result<Self, GalleryError> {
        let index = faiss::index_factory(dimensions, factory, MetricType::InnerProduct)
            .map_err(faiss_err)?;
        Ok(Self {
            index,
            factory: factory.to_owned(),
            dimensions,
            tombstones: HashSet::new(),
        })
    }

    /// faiss search-time parameters, e.g. `efSearch` for HNSW (recall against speed).
    pub fn set_parameters(
        &mut self,
        parameters: &std::collections::BTreeMap<String, f64>,
    ) -> Result<(), GalleryError> {
        if parameters.is_empty() {
            return Ok(());
        }
        let space = faiss::index::autotune::ParameterSpace::new().map_err(faiss_err)?;
        for (name, value) in parameters {
            space
                .set_index_parameter(&self.index, name, *value)
                .map_err(faiss_err)?;
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.index.ntotal() - self.tombstones.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn add(&mut self, ids: &[i64], vectors: &[f32]) -> Result<(), GalleryError> {
        if ids.is_empty() {
            return Ok(());
        }
        if vectors.len() != ids.len() * self.dimensions as usize {
            return Err(GalleryError::Dimensions {
                expected: self.dimensions as usize,
                got: vectors.len() / ids.len(),
            });
        }
        if !self.index.is_trained() {
            // IVF-style indexes learn their partition from the first vectors they get (at a
            // rebuild: the whole store); too few of them is an error from faiss, passed on.
            self.index.train(vectors).map_err(faiss_err)?;
        }
        let ids: Vec<Idx> = ids.iter().map(|&id| Idx::new(id as u64)).collect();
        self.index.add_with_ids(vectors, &ids).map_err(faiss_err)
    }

    pub fn remove(&mut self, ids: &[i64]) -> Result<(), GalleryError> {
        if ids.is_empty() {
            return Ok(());
        }
        let selector = IdSelector::batch(
            &ids.iter()
                .map(|&id| Idx::new(id as u64))
                .collect::<Vec<_>>(),
        )
        .map_err(faiss_err)?;
        if self.index.remove_ids(&selector).is_err() {
            // e.g. HNSW: the graph cannot drop nodes; hide them until the next rebuild.
            self.tombstones.extend(ids);
        }
        Ok(())
    }

    /// The `k` nearest portraits: (portrait id, similarity), best first. Takes `&self`: any
    /// number of searches may run at once (the gallery holds the index under a read lock).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(i64, f32)>, GalleryError> {
        Ok(self.search_many(query, k)?.pop().unwrap_or_default())
    }

    /// `search` for several queries (`queries` holds them one after another) in one pass over
    /// the vectors, which costs little more than one query.
    pub fn search_many(
        &self,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(i64, f32)>>, GalleryError> {
        let dimensions = self.dimensions as usize;
        if queries.is_empty() || !queries.len().is_multiple_of(dimensions) {
            return Err(GalleryError::Dimensions {
                expected: dimensions,
                got: queries.len(),
            });
        }
        let n = queries.len() / dimensions;
        if self.index.ntotal() == 0 || k == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let fetch = (k + self.tombstones.len()).min(self.index.ntotal() as usize);
        let mut scores = vec![0f32; fetch * n];
        let mut labels = vec![-1i64; fetch * n];
        apply_search_threads();
        // SAFETY: the faiss crate's `IndexImpl::search` needs `&mut` only because an index
        // could live on a GPU; ours is always a CPU index (made by `index_factory` or
        // `read_index` here), whose search is const and documented safe to run concurrently.
        // `n` queries of `dimensions` floats in, `fetch` scores and labels each out, as sized
        // above.
        let code = unsafe {
            faiss_sys::faiss_Index_search(
                self.index.inner_ptr(),
                n as faiss_sys::idx_t,
                queries.as_ptr(),
                fetch as faiss_sys::idx_t,
                scores.as_mut_ptr(),
                labels.as_mut_ptr(),
            )
        };
        if code != 0 {
            return Err(last_faiss_error(code));
        }
        Ok(labels
            .chunks_exact(fetch)
            .zip(scores.chunks_exact(fetch))
            .map(|(labels, scores)| {
                labels
                    .iter()
                    .copied()
                    .zip(scores.iter().copied())
                    .filter(|&(id, _)| id >= 0 && !self.tombstones.contains(&id))
                    .take(k)
                    .collect()
            })
            .collect())
    }

    /// A copy to save while the original goes on serving searches.
    pub fn snapshot(&self) -> Result<VectorIndex, GalleryError> {
        Ok(VectorIndex {
            index: self.index.try_clone().map_err(faiss_err)?,
            factory: self.factory.clone(),
            dimensions: self.dimensions,
            tombstones: self.tombstones.clone(),
        })
    }

    /// Writes the index (sealed) and then its metadata, each to a temporary file that is
    /// synced and renamed into place: a crash leaves either the old pair, or a new index with
    /// old metadata (which reads as stale and is rebuilt), never a torn file.
    pub fn save(&self, dir: &Path, meta: &IndexMeta, sealer: &Sealer) -> Result<(), GalleryError> {
        let sealed = sealer.seal(&to_bytes(&self.index)?, SEALED_AS)?;
        write_synced(&dir.join(INDEX_FILE), &sealed)?;
        let json = serde_json::to_vec(meta).expect("plain data serialises");
        write_synced(&dir.join(META_FILE), &json)
    }

    /// The saved index if it is exactly what `expected` describes; why not when it is missing,
    /// unreadable or stale (the caller rebuilds it from the store).
    pub fn load(
        dir: &Path,
        expected: &IndexMeta,
        dimensions: u32,
        sealer: &Sealer,
    ) -> Result<VectorIndex, Unusable> {
        let text = std::fs::read(dir.join(META_FILE)).map_err(Unusable::NoMetadata)?;
        let meta: IndexMeta = serde_json::from_slice(&text).map_err(Unusable::CorruptMetadata)?;
        if meta != *expected {
            return Err(Unusable::Stale {
                saved: Box::new(meta),
                store: Box::new(expected.clone()),
            });
        }
        let sealed = std::fs::read(dir.join(INDEX_FILE)).map_err(Unusable::NoIndex)?;
        let bytes = sealer
            .open(&sealed, SEALED_AS)
            .map_err(Unusable::Unsealed)?;
        let index = from_bytes(&bytes).map_err(|e| Unusable::Unreadable(Box::new(e)))?;
        if index.ntotal() != expected.count || index.d() != dimensions {
            return Err(Unusable::WrongShape {
                vectors: index.ntotal(),
                dimensions: index.d(),
                expected_vectors: expected.count,
                expected_dimensions: dimensions,
            });
        }
        Ok(VectorIndex {
            index,
            factory: meta.factory,
            dimensions,
            tombstones: HashSet::new(),
        })
    }
}

/// Why a saved index cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("no index metadata")]
    NoMetadata(#[source] std::io::Error),
    #[error("corrupt index metadata")]
    CorruptMetadata(#[source] serde_json::Error),
    #[error("stale index (saved {saved:?}, store is {store:?})")]
    Stale {
        saved: Box<IndexMeta>,
        store: Box<IndexMeta>,
    },
    #[error("no saved index")]
    NoIndex(#[source] std::io::Error),
    #[error("the saved index does not open")]
    Unsealed(#[source] SealError),
    #[error("unreadable index")]
    Unreadable(#[source] Box<GalleryError>),
    #[error(
        "index holds {vectors} vectors of {dimensions} dimensions, expected {expected_vectors} of {expected_dimensions}"
    )]
    WrongShape {
        vectors: u64,
        dimensions: u32,
        expected_vectors: u64,
        expected_dimensions: u32,
    },
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), GalleryError> {
    crate::files::write_atomically(path, bytes).map_err(|source| GalleryError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The index in faiss's own format, in memory: written to a file it would be a copy of every
/// vector in the clear.
fn to_bytes(index: &IndexImpl) -> Result<Vec<u8>, GalleryError> {
    let mut buffer: *mut std::os::raw::c_char = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: open_memstream owns `buffer` until fclose, which leaves it holding `len` bytes
    // that we copy and then free; faiss only writes through the FILE.
    unsafe {
        let file = libc::open_memstream(&mut buffer, &mut len);
        if file.is_null() {
            return Err(GalleryError::Io {
                path: PathBuf::from("(memory)"),
                source: std::io::Error::last_os_error(),
            });
        }
        let code = faiss_sys::faiss_write_index(index.inner_ptr(), file.cast());
        libc::fclose(file);
        let bytes = if buffer.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(buffer.cast::<u8>(), len).to_vec()
        };
        libc::free(buffer.cast());
        if code != 0 {
            return Err(last_faiss_error(code));
        }
        Ok(bytes)
    }
}

fn from_bytes(bytes: &[u8]) -> Result<IndexImpl, GalleryError> {
    use faiss::index::FromInnerPtr;
    let unreadable = || GalleryError::Index(faiss::error::Error::IndexDescription);
    if bytes.is_empty() {
        return Err(unreadable());
    }
    // SAFETY: fmemopen reads `bytes` (alive for the whole call) through a read-only FILE; faiss
    // hands back a new index that `IndexImpl` then owns.
    unsafe {
        let file = libc::fmemopen(
            bytes.as_ptr() as *mut libc::c_void,
            bytes.len(),
            c"rb".as_ptr(),
        );
        if file.is_null() {
            return Err(unreadable());
        }
        let mut inner = std::ptr::null_mut();
        let code = faiss_sys::faiss_read_index(file.cast(), 0, &mut inner);
        libc::fclose(file);
        if code != 0 {
            return Err(last_faiss_error(code));
        }
        if inner.is_null() {
            return Err(unreadable());
        }
        Ok(IndexImpl::from_inner_ptr(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        crate::vision::embed::l2_normalised(v)
    }

    #[test]
    fn several_queries_at_once_answer_as_one_at_a_time() {
        let mut index = VectorIndex::new(2, "IDMap,Flat").unwrap();
        let vectors = [unit(&[1.0, 0.0]), unit(&[1.0, 1.0]), unit(&[0.0, 1.0])];
        index.add(&[1, 2, 3], &vectors.concat()).unwrap();
        let queries = [unit(&[1.0, 0.2]), unit(&[0.1, 1.0])];
        let together = index.search_many(&queries.concat(), 2).unwrap();
        let alone: Vec<_> = queries
            .iter()
            .map(|q| index.search(q, 2).unwrap())
            .collect();
        assert_eq!(together, alone);
        assert_eq!(together[0][0].0, 1);
        assert_eq!(together[1][0].0, 3);
        assert!(
            index.search_many(&[1.0, 0.0, 0.5], 2).is_err(),
            "not whole queries"
        );
    }

    #[test]
    fn flat_index_adds_searches_and_removes_in_place() {
        let mut index = VectorIndex::new(2, "IDMap,Flat").unwrap();
        index
            .add(&[10, 20], &[unit(&[1.0, 0.0]), unit(&[0.0, 1.0])].concat())
            .unwrap();
        let hits = index.search(&unit(&[0.9, 0.1]), 2).unwrap();
        assert_eq!(hits[0].0, 10);
        assert!(hits[0].1 > hits[1].1);
        index.remove(&[10]).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(
            index
                .search(&unit(&[0.9, 0.1]), 2)
                .unwrap()
                .iter()
                .map(|h| h.0)
                .collect::<Vec<_>>(),
            vec![20]
        );
    }

    #[test]
    fn hnsw_removals_are_hidden() {
        let mut index = VectorIndex::new(2, "IDMap,HNSW8").unwrap();
        index
            .add(
                &[1, 2, 3],
                &[unit(&[1.0, 0.0]), unit(&[0.0, 1.0]), unit(&[1.0, 1.0])].concat(),
            )
            .unwrap();
        index.remove(&[1]).unwrap();
        assert_eq!(index.len(), 2);
        let ids: Vec<i64> = index
            .search(&unit(&[1.0, 0.0]), 3)
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        assert!(!ids.contains(&1) && ids.len() == 2, "{ids:?}");
    }

    #[test]
    fn ivf_index_trains_on_its_first_vectors() {
        let vectors: Vec<f32> = (0..200)
            .flat_map(|i| unit(&[(i as f32).cos(), (i as f32).sin()]))
            .collect();
        let ids: Vec<i64> = (0..200).collect();
        let mut index = VectorIndex::new(2, "IDMap,IVF4,Flat").unwrap();
        index.add(&ids, &vectors).unwrap();
        assert_eq!(index.len(), 200);
        index
            .set_parameters(&[("nprobe".to_string(), 4.0)].into_iter().collect())
            .unwrap();
        assert_eq!(index.search(&vectors[20..22], 1).unwrap()[0].0, 10);
        index.remove(&[10]).unwrap();
        assert_eq!(index.len(), 199);
    }

    #[test]
    fn save_and_load_round_trip_sealed_and_stale_metadata_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (sealer, _) = Sealer::generate(&dir.path().join("data.key")).unwrap();
        let mut index = VectorIndex::new(2, "IDMap,Flat").unwrap();
        let vector = unit(&[0.6, 0.8]);
        index.add(&[7], &vector).unwrap();
        let meta = IndexMeta {
            change_counter: 3,
            model_id: "m".into(),
            factory: "IDMap,Flat".into(),
            count: 1,
        };
        index.save(dir.path(), &meta, &sealer).unwrap();
        let on_disk = std::fs::read(dir.path().join(INDEX_FILE)).unwrap();
        let clear: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(
            !on_disk.windows(clear.len()).any(|w| w == clear.as_slice()),
            "the vector is not on disk in the clear"
        );
        let loaded = VectorIndex::load(dir.path(), &meta, 2, &sealer).unwrap();
        assert_eq!(loaded.search(&vector, 1).unwrap()[0].0, 7);
        let newer = IndexMeta {
            change_counter: 4,
            ..meta.clone()
        };
        assert!(
            VectorIndex::load(dir.path(), &newer, 2, &sealer)
                .unwrap_err()
                .to_string()
                .contains("stale")
        );
        let (other, _) = Sealer::generate(&dir.path().join("other.key")).unwrap();
        assert!(matches!(
            VectorIndex::load(dir.path(), &meta, 2, &other),
            Err(Unusable::Unsealed(_))
        ));
        let garbage = sealer.seal(b"garbage", SEALED_AS).unwrap();
        std::fs::write(dir.path().join(INDEX_FILE), garbage).unwrap();
        assert!(matches!(
            VectorIndex::load(dir.path(), &meta, 2, &sealer),
            Err(Unusable::Unreadable(_))
        ));
    }
}
