//! API keys per role, compared in constant time, and what each role may do.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// Keys per role. Debug shows how many, never the keys.
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct AuthSettings {
    #[serde(default)]
    pub terminal: Vec<String>,
    #[serde(default)]
    pub camera: Vec<String>,
    #[serde(default)]
    pub pos: Vec<String>,
    #[serde(default)]
    pub admin: Vec<String>,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("terminal", &self.terminal.len())
            .field("camera", &self.camera.len())
            .field("pos", &self.pos.len())
            .field("admin", &self.admin.len())
            .finish()
    }
}

impl AuthSettings {
    fn is_empty(&self) -> bool {
        self.terminal.is_empty()
            && self.camera.is_empty()
            && self.pos.is_empty()
            && self.admin.is_empty()
    }

    fn generated() -> Result<Self, getrandom::Error> {
        let key = || -> Result<Vec<String>, getrandom::Error> {
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes)?;
            Ok(vec![hex::encode(bytes)])
        };
        Ok(AuthSettings {
            terminal: key()?,
            camera: key()?,
            pos: key()?,
            admin: key()?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Terminal,
    Camera,
    Pos,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Recognize,
    PushFrames,
    Subscribe,
    ReadCustomers,
    Enrol,
    DeleteCustomer,
    Checkout,
    ReadCameras,
    ManageCatalog,
    Calibrate,
    WatchLive,
    ReadAudit,
}

impl Action {
    /// The one table of who may do what.
    pub fn allowed(self, role: Role) -> bool {
        use Role::*;
        match self {
            Action::Recognize | Action::Subscribe => matches!(role, Terminal | Admin),
            Action::PushFrames => matches!(role, Camera | Terminal | Admin),
            Action::ReadCustomers | Action::Enrol | Action::Checkout => matches!(role, Pos | Admin),
            Action::DeleteCustomer
            | Action::ReadCameras
            | Action::ManageCatalog
            | Action::Calibrate
            | Action::WatchLive
            | Action::ReadAudit => role == Admin,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read or write the API key file {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid API key file {path}")]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("no randomness to generate API keys")]
    Random(#[source] getrandom::Error),
    #[error("API keys must be at least 16 characters (a {0:?} key is shorter)")]
    TooShort(Role),
    #[error(
        "the API key file {path} has no keys: add some, or delete it to have one per role generated"
    )]
    NoKeys { path: std::path::PathBuf },
}

/// The keys as SHA-256 digests: comparing digests takes the same time whatever the key's
/// length, and the keys themselves are not kept in memory.
pub struct Keys {
    digests: Vec<([u8; 32], Role)>,
}

impl Keys {
    /// The configured keys; with none configured, the ones in `<data_dir>/api-keys.toml`,
    /// generated there on first start.
    pub fn load(settings: &AuthSettings, data_dir: &Path) -> Result<Keys, KeysError> {
        if !settings.is_empty() {
            return Keys::from_settings(settings);
        }
        let path = data_dir.join("api-keys.toml");
        let io = |source| KeysError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            let generated = AuthSettings::generated().map_err(KeysError::Random)?;
            std::fs::create_dir_all(data_dir).map_err(io)?;
            write_private(&path, &toml::to_string(&generated).expect("plain data")).map_err(io)?;
            tracing::warn!(path = %path.display(), "no API keys configured: generated one per role");
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let stored: AuthSettings = toml::from_str(&text).map_err(|source| KeysError::Parse {
            path: path.clone(),
            source,
        })?;
        if stored.is_empty() {
            // a service nobody can call is not a working service
            return Err(KeysError::NoKeys { path });
        }
        let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the API key file is readable by other users: chmod 600 it");
        }
        tracing::info!(path = %path.display(), "API keys read");
        Keys::from_settings(&stored)
    }

    fn from_settings(settings: &AuthSettings) -> Result<Keys, KeysError> {
        let roles = [
            (&settings.terminal, Role::Terminal),
            (&settings.camera, Role::Camera),
            (&settings.pos, Role::Pos),
            (&settings.admin, Role::Admin),
        ];
        let mut digests = Vec::new();
        for (keys, role) in roles {
            for key in keys {
                if key.len() < 16 {
                    return Err(KeysError::TooShort(role));
                }
                digests.push((digest(key), role));
            }
        }
        Ok(Keys { digests })
    }

    /// The role of a presented key. Every configured key is compared, in constant time.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        self.caller(presented).map(|c| c.role)
    }

    fn caller(&self, presented: &str) -> Option<Caller> {
        let presented = digest(presented);
        let mut found = None;
        for (key, role) in &self.digests {
            if bool::from(key.ct_eq(&presented)) {
                found = Some(Caller {
                    role: *role,
                    // names the key in audit entries without revealing it
                    key_id: hex::encode(&key[..4]),
                });
            }
        }
        found
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The authenticated caller: a request without a known key never reaches a handler.
pub struct Caller {
    pub role: Role,
    /// the first bytes of the key's SHA-256, in hex
    pub key_id: String,
}

impl Caller {
    pub fn may(&self, action: Action) -> Result<(), ApiError> {
        if action.allowed(self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.role,
                action,
            })
        }
    }

    /// "admin:3f2a9c1b": who did it, for records and audit entries.
    pub fn who(&self) -> String {
        let role = serde_json::to_value(self.role).expect("a role serialises");
        format!("{}:{}", role.as_str().unwrap_or("?"), self.key_id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        state
            .keys
            .caller(presented.trim())
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings {
            terminal: vec!["terminal-key-0123456789".into()],
            admin: vec!["admin-key-0123456789".into()],
            ..Default::default()
        }
    }

    #[test]
    fn keys_map_to_their_role_and_nothing_else_matches() {
        let keys = Keys::from_settings(&settings()).unwrap();
        assert_eq!(
            keys.role_of("terminal-key-0123456789"),
            Some(Role::Terminal)
        );
        assert_eq!(keys.role_of("admin-key-0123456789"), Some(Role::Admin));
        assert_eq!(keys.role_of("admin-key-012345678"), None);
        assert_eq!(keys.role_of(""), None);
    }

    #[test]
    fn a_terminal_cannot_enrol_or_delete_and_admin_can_do_everything() {
        for action in [
            Action::Enrol,
            Action::DeleteCustomer,
            Action::Checkout,
            Action::WatchLive,
        ] {
            assert!(!action.allowed(Role::Terminal), "{action:?}");
        }
        assert!(Action::Recognize.allowed(Role::Terminal));
        assert!(!Action::Recognize.allowed(Role::Camera));
        for action in [
            Action::Recognize,
            Action::PushFrames,
            Action::Subscribe,
            Action::ReadCustomers,
            Action::Enrol,
            Action::DeleteCustomer,
            Action::Checkout,
            Action::ReadCameras,
            Action::ManageCatalog,
            Action::Calibrate,
            Action::WatchLive,
            Action::ReadAudit,
        ] {
            assert!(action.allowed(Role::Admin), "{action:?}");
        }
    }

    #[test]
    fn an_empty_key_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api-keys.toml"), "").unwrap();
        let err = Keys::load(&AuthSettings::default(), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("has no keys"), "{err}");
    }

    #[test]
    fn keys_are_generated_once_privately_and_never_shown_by_debug() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::load(&AuthSettings::default(), dir.path()).unwrap();
        let path = dir.path().join("api-keys.toml");
        let stored: AuthSettings =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(first.role_of(&stored.pos[0]), Some(Role::Pos));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Keys::load(&AuthSettings::default(), dir.path()).unwrap();
        assert_eq!(again.role_of(&stored.admin[0]), Some(Role::Admin));
        assert!(!format!("{stored:?}").contains(&stored.admin[0]));
    }

    #[test]
    fn short_keys_are_refused() {
        let settings = AuthSettings {
            pos: vec!["short".into()],
            ..Default::default()
        };
        assert!(matches!(
            Keys::from_settings(&settings),
            Err(KeysError::TooShort(Role::Pos))
        ));
    }
}
