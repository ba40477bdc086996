//! One factory for every model: loads onnxruntime once, verifies the file, builds the session.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use super::VisionError;
use super::manifest::{Family, Manifest, ModelSpec};

/// onnxruntime can be loaded once per process; every pipeline shares it.
static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

fn environment(library: &Path) -> Result<&'static Environment, VisionError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    if !library.is_file() {
        return Err(VisionError::RuntimeMissing {
            path: library.to_owned(),
        });
    }
    let env = ort::init_from(library)
        .map_err(|source| VisionError::RuntimeLoad {
            path: library.to_owned(),
            source,
        })?
        .with_name("greeter")
        .build()
        .map_err(|e| VisionError::Ort {
            model: "environment".into(),
            source: e,
        })?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// A loaded network. `ort`'s `Session::run` needs `&mut`, so calls are serialised per model;
/// different models (stages) still run in parallel across threads.
pub struct Model {
    pub name: String,
    pub spec: ModelSpec,
    /// Graphs exported with a fixed batch size take that many chips per run (most ArcFace
    /// exports are fixed at 1); `None`: any batch.
    pub max_batch: Option<usize>,
    session: Mutex<Session>,
}

pub struct ModelLoader<'a> {
    pub library: &'a Path,
    pub models_dir: &'a Path,
    pub manifest: &'a Manifest,
    pub intra_threads: usize,
}

impl ModelLoader<'_> {
    pub fn load(&self, name: &str, family: Family) -> Result<Model, VisionError> {
        let spec = self.manifest.get(name)?.clone();
        spec.require_family(name, family)?;
        let bytes = spec.read_verified(self.models_dir)?;
        let env = environment(self.library)?;
        let ort_err = |e: ort::Error| VisionError::Ort {
            model: name.to_owned(),
            source: e,
        };
        let session = Session::builder(env)
            .map_err(ort_err)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| ort_err(e.into()))?
            .with_intra_threads(self.intra_threads)
            .map_err(|e| ort_err(e.into()))?
            // Each model has its own thread pool; spinning idle pools would starve the stage
            // that is running (measured: 2 threads slower than 1 with spinning on).
            .with_intra_op_spinning(false)
            .map_err(|e| ort_err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| ort_err(e.into()))?
            .commit_from_memory(&bytes)
            .map_err(ort_err)?;
        let max_batch = session
            .inputs()
            .first()
            .and_then(|input| input.dtype().tensor_shape())
            .and_then(|shape| shape.first().copied())
            .and_then(|batch| usize::try_from(batch).ok())
            .filter(|&batch| batch > 0);
        Ok(Model {
            name: name.to_owned(),
            spec,
            max_batch,
            session: Mutex::new(session),
        })
    }
}

impl Model {
    /// Runs the network on one NCHW batch and hands the outputs to `read` while the session
    /// is held (the outputs borrow it).
    pub fn run<R>(
        &self,
        batch: usize,
        input: &[f32],
        read: impl FnOnce(&SessionOutputs<'_>) -> Result<R, ort::Error>,
    ) -> Result<R, VisionError> {
        let size = self.spec.input_size as usize;
        let ort_err = |e: ort::Error| VisionError::Ort {
            model: self.name.clone(),
            source: e,
        };
        let tensor =
            TensorRef::from_array_view(([batch, 3, size, size], input)).map_err(ort_err)?;
        // A poisoned lock only means another thread panicked mid-run; the session itself is fine.
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs![tensor]).map_err(ort_err)?;
        read(&outputs).map_err(ort_err)
    }
}
