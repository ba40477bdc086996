//! Layered configuration: compiled-in defaults < edge-config/greeter.toml < GREETER_* env.
//! Each part's settings type belongs to the module it configures; this file only assembles
//! them, fills in paths and checks what spans parts.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use crate::api::{AuthSettings, ServerSettings};
use crate::capture::{CameraSettings, SourceSettings};
use crate::crm::CrmSettings;
use crate::engine::{EngineSettings, GateSettings};
use crate::gallery::{GallerySettings, MatchRules};
use crate::terminals::TerminalSettings;
use crate::vision::{RuntimeSettings, VisionSettings};

/// The shipped `edge-config/greeter.toml`, so the binary runs with no file on disk.
pub const DEFAULTS: &str = include_str!("../edge-config/greeter.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    pub runtime: RuntimeSettings,
    pub vision: VisionSettings,
    pub matching: MatchRules,
    pub gallery: GallerySettings,
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub crm: CrmSettings,
    #[serde(default)]
    pub cameras: Vec<CameraSettings>,
    #[serde(default)]
    pub terminals: Vec<TerminalSettings>,
}

impl Settings {
    /// The engine's part of the settings.
    pub fn engine(&self) -> EngineSettings {
        EngineSettings {
            runtime: self.runtime.clone(),
            vision: self.vision.clone(),
            matching: self.matching.clone(),
            gallery: self.gallery.clone(),
            crm: self.crm.clone(),
            gate: GateSettings {
                workers: self.server.inference_workers,
                queue: self.server.inference_queue,
            },
            cameras: self.cameras.clone(),
            terminals: self.terminals.clone(),
            announce_cooldown: std::time::Duration::from_secs(self.server.announce_cooldown_s),
            index_save_interval: std::time::Duration::from_secs_f64(self.gallery.index_save_s),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist")]
    MissingFile { path: PathBuf },
    #[error("invalid configuration")]
    Invalid(#[source] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    OutOfRange(String),
}

/// Where relative paths point: `GREETER_HOME`, else the source checkout the binary was built from.
pub fn home() -> PathBuf {
    std::env::var_os("GREETER_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

impl Settings {
    /// Loads the layered settings. `file` is an explicit config file (it must exist); without it,
    /// `<home>/edge-config/greeter.toml` is used when present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let home = home();
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile {
                    path: path.to_owned(),
                });
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file(home.join("edge-config/greeter.toml"))),
        }
        let mut settings: Settings = figment
            .merge(
                Env::prefixed("GREETER_")
                    .split("__")
                    // GREETER_DATA_KEY is the key itself, read by gallery::seal, never a setting
                    .ignore(&["home", "config", "data_key"]),
            )
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        if let Some(lib) = std::env::var_os("ORT_DYLIB_PATH") {
            settings.runtime.onnxruntime = PathBuf::from(lib);
        }
        settings.runtime.onnxruntime = home.join(&settings.runtime.onnxruntime);
        settings.vision.models_dir = home.join(&settings.vision.models_dir);
        settings.gallery.data_dir = home.join(&settings.gallery.data_dir);
        settings.gallery.key_file = home.join(&settings.gallery.key_file);
        for path in [&mut settings.server.tls_cert, &mut settings.server.tls_key]
            .into_iter()
            .flatten()
        {
            *path = home.join(&*path);
        }
        for camera in &mut settings.cameras {
            match &mut camera.source {
                SourceSettings::Replay { path, .. } => *path = home.join(&*path),
                SourceSettings::Video { url, .. } if !url.contains("://") => {
                    *url = home.join(&*url).display().to_string();
                }
                _ => {}
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let unit = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange(format!(
                    "{name} = {v} is not within 0..=1"
                )))
            }
        };
        unit(
            "vision.detection_threshold",
            self.vision.detection_threshold,
        )?;
        crate::gallery::matching::check_rules(self.matching.threshold, self.matching.margin)
            .and_then(|()| {
                crate::gallery::matching::check_neighbour_gap(self.matching.neighbour_gap)
            })
            .map_err(|bad| ConfigError::OutOfRange(bad.to_string()))?;
        if self.matching.top_k == 0 || self.gallery.max_portraits_per_customer == 0 {
            return Err(ConfigError::OutOfRange(
                "matching.top_k and gallery.max_portraits_per_customer must be at least 1".into(),
            ));
        }
        unit(
            "vision.quality.min_frontalness",
            self.vision.quality.min_frontalness,
        )?;
        unit(
            "vision.camera_quality.min_frontalness",
            self.vision.camera_quality.min_frontalness,
        )?;
        let tracking = &self.vision.tracking;
        if tracking.embed_budget == 0
            || tracking.min_faces == 0
            || tracking.max_faces < tracking.min_faces
            || tracking.max_gap_s <= 0.0
        {
            return Err(ConfigError::OutOfRange(
                "vision.tracking: embed_budget and min_faces must be at least 1, max_faces at least min_faces, max_gap_s positive".into(),
            ));
        }
        if !(0.0..=4.0).contains(&self.vision.retry_padding) {
            return Err(ConfigError::OutOfRange(
                "vision.retry_padding must be within 0..=4".into(),
            ));
        }
        if self.runtime.intra_threads == 0 {
            return Err(ConfigError::OutOfRange(
                "runtime.intra_threads must be at least 1".into(),
            ));
        }
        if !(self.gallery.index_save_s > 0.0 && self.gallery.index_save_s <= 3600.0) {
            return Err(ConfigError::OutOfRange(
                "gallery.index_save_s must be within 0 (excluded) and 3600 seconds".into(),
            ));
        }
        if self.vision.max_image_pixels == 0 {
            return Err(ConfigError::OutOfRange(
                "vision.max_image_pixels must be positive".into(),
            ));
        }
        self.validate_service()
    }

    fn validate_service(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::OutOfRange(m));
        if !(0.0..=1.0).contains(&self.crm.segments.vip_spend_quantile) {
            return bad("crm.segments.vip_spend_quantile must be within 0..=1".into());
        }
        if !self.crm.greetings.contains_key(&self.crm.language) {
            return bad(format!(
                "crm.language = {:?} has no [crm.greetings.{}] templates",
                self.crm.language, self.crm.language
            ));
        }
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!(
                "server.bind = {:?} is not an address:port",
                self.server.bind
            ));
        }
        if self.server.inference_workers == 0
            || self.server.max_body_bytes == 0
            || self.server.max_connections == 0
            || self.server.header_read_timeout_ms == 0
        {
            return bad(
                "server.inference_workers, max_body_bytes, max_connections and header_read_timeout_ms must be positive".into(),
            );
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return bad("TLS needs both server.tls_cert and server.tls_key".into());
        }
        let mut ids = std::collections::HashSet::new();
        for camera in &self.cameras {
            if !ids.insert(camera.id.as_str()) {
                return bad(format!("camera {:?} is configured twice", camera.id));
            }
            if let SourceSettings::Replay { fps, .. } = camera.source
                && fps <= 0.0
            {
                return bad(format!(
                    "camera {:?}: replay fps must be positive",
                    camera.id
                ));
            }
        }
        let mut terminals = std::collections::HashSet::new();
        for terminal in &self.terminals {
            if !terminals.insert(terminal.id.as_str()) {
                return bad(format!("terminal {:?} is configured twice", terminal.id));
            }
            if let Some(missing) = terminal.cameras.iter().find(|c| !ids.contains(c.as_str())) {
                return bad(format!(
                    "terminal {:?} is bound to camera {missing:?}, which is not configured",
                    terminal.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_defaults_parse_and_validate() {
        let settings: Settings = Figment::from(Toml::string(DEFAULTS)).extract().unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.vision.detector, "ssd_mobilenetv1");
        assert!(settings.vision.max_image_pixels >= 1920 * 1080);
        assert!(!settings.cameras.is_empty() && !settings.terminals.is_empty());
    }

    #[test]
    fn a_terminal_bound_to_an_unknown_camera_is_refused() {
        let mut settings: Settings = Figment::from(Toml::string(DEFAULTS)).extract().unwrap();
        settings.terminals[0].cameras.push("roof".into());
        let err = settings.validate().unwrap_err();
        assert!(err.to_string().contains("\"roof\""), "{err}");
    }

    #[test]
    fn out_of_range_threshold_is_refused() {
        let mut settings: Settings = Figment::from(Toml::string(DEFAULTS)).extract().unwrap();
        settings.matching.threshold = 1.5;
        let err = settings.validate().unwrap_err();
        assert!(err.to_string().contains("matching.threshold"), "{err}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Settings::load(Some(Path::new("/nonexistent/greeter.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }));
    }
}
