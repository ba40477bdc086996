//! The store's one SQLite database: its schema for the gallery (customers, consent, portraits)
//! and the CRM (visits, purchases, catalogue), its migrations, and how a connection is opened.
//! The gallery and the CRM each hold a connection; WAL lets one read while the other writes.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database")]
    Open(#[source] rusqlite::Error),
    #[error("database migration failed")]
    Migration(#[from] rusqlite_migration::Error),
    #[error(
        "{path} is in use by another greeter process{}: stop it first, or use its HTTP API",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { path: PathBuf, pid: Option<u32> },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One process at a time writes a data dir: a second `serve`, or a CLI command while the
/// service runs, would change the store behind the service's index and id counters. An
/// exclusive lock on `greeter.lock`, held for the life of the engine and released by the
/// kernel if the process dies.
pub struct DataDirLock {
    file: Mutex<Option<File>>,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("greeter.lock");
        let lock_error = |source| DbError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(DbError::InUse {
                    path: data_dir.to_owned(),
                    pid: pid.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(lock_error(e)),
        }
        // who holds it, for the message the next one gets
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .map_err(lock_error)?;
        Ok(DataDirLock {
            file: Mutex::new(Some(file)),
        })
    }

    /// Lets another process in (the service stopped); nothing may be written after this.
    pub fn release(&self) {
        self.file.lock().take();
    }
}

const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        display_name TEXT NOT NULL,
        external_ref TEXT UNIQUE,
        consent_how TEXT NOT NULL,
        consent_by TEXT NOT NULL,
        consent_at TEXT NOT NULL,
        created_at TEXT NOT NULL
     );
     CREATE TABLE portraits (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        embedding BLOB NOT NULL,
        model_id TEXT NOT NULL,
        quality REAL NOT NULL,
        quality_detail TEXT NOT NULL,
        source TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        crop_file TEXT
     );
     CREATE INDEX portraits_by_customer ON portraits(customer_id);
     CREATE TABLE visits (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        visited_at TEXT NOT NULL,
        camera TEXT
     );
     CREATE INDEX visits_by_customer ON visits(customer_id, visited_at);
     CREATE TABLE purchases (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        visit_id INTEGER REFERENCES visits(id) ON DELETE SET NULL,
        sku TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        unit_price_cents INTEGER NOT NULL,
        purchased_at TEXT NOT NULL
     );
     CREATE INDEX purchases_by_customer ON purchases(customer_id, purchased_at);",
    ),
    // The CRM: the catalogue with the designers' keywords, and what is known about a customer
    // to suggest for them.
    M::up(
        "CREATE TABLE products (
        sku TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        arrived_on TEXT NOT NULL,
        stock INTEGER NOT NULL,
        gender TEXT,
        age_min INTEGER,
        age_max INTEGER,
        body_types TEXT NOT NULL,
        styles TEXT NOT NULL,
        colours TEXT NOT NULL,
        extra TEXT NOT NULL
     );
     ALTER TABLE customers ADD COLUMN gender TEXT;
     ALTER TABLE customers ADD COLUMN birth_year INTEGER;
     ALTER TABLE customers ADD COLUMN body_type TEXT;
     CREATE INDEX purchases_by_sku ON purchases(sku);",
    ),
    // Who changed what, when (matching rules so far).
    M::up(
        "CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        what TEXT NOT NULL,
        old TEXT NOT NULL,
        new TEXT NOT NULL
     );",
    ),
];

/// A connection to the store's database under `data_dir` (both created and migrated if new).
pub fn connect(data_dir: &Path) -> Result<Connection, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let mut conn = Connection::open(data_dir.join("greeter.sqlite3")).map_err(DbError::Open)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(DbError::Open)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(DbError::Open)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(DbError::Open)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(DbError::Open)?;
    Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_has_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).err().unwrap();
        let message = err.to_string();
        assert!(
            message.contains("in use by another greeter process"),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        held.release();
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn migrations_are_valid() {
        rusqlite_migration::Migrations::from_slice(super::MIGRATIONS)
            .validate()
            .unwrap();
    }
}
