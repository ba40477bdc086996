//! The store's one SQLite database: its schema for the gallery (customers, consent, portraits)
//! and the CRM (visits, purchases, catalogue), its migrations, and how a connection is opened.
//! The gallery and the CRM each hold a connection; WAL lets one read while the other writes.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// `dir` (and its parents) created if need be, readable by this user only: faces and names
/// are nobody else's business on a shared machine.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A new file (or an existing one truncated) readable by this user only.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
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
        private_dir(data_dir).map_err(|source| DbError::DataDir {
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
            .mode(0o600)
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
    // Ids are never reused: a deleted customer's or portrait's id (and so a crop's file name)
    // is never given to someone else, so a till still holding an old id cannot record a sale
    // on a stranger. SQLite's AUTOINCREMENT needs the tables rebuilt (its 12-step ALTER,
    // foreign keys off around it: see `connect`).
    M::up(
        "CREATE TABLE customers_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        display_name TEXT NOT NULL,
        external_ref TEXT UNIQUE,
        consent_how TEXT NOT NULL,
        consent_by TEXT NOT NULL,
        consent_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        gender TEXT,
        birth_year INTEGER,
        body_type TEXT
     );
     INSERT INTO customers_new(id, display_name, external_ref, consent_how, consent_by,
        consent_at, created_at, gender, birth_year, body_type)
        SELECT id, display_name, external_ref, consent_how, consent_by, consent_at, created_at,
            gender, birth_year, body_type FROM customers;
     DROP TABLE customers;
     ALTER TABLE customers_new RENAME TO customers;
     CREATE TABLE portraits_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        embedding BLOB NOT NULL,
        model_id TEXT NOT NULL,
        quality REAL NOT NULL,
        quality_detail TEXT NOT NULL,
        source TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        crop_file TEXT
     );
     INSERT INTO portraits_new SELECT id, customer_id, embedding, model_id, quality,
        quality_detail, source, captured_at, crop_file FROM portraits;
     DROP TABLE portraits;
     ALTER TABLE portraits_new RENAME TO portraits;
     CREATE INDEX portraits_by_customer ON portraits(customer_id);",
    )
    .foreign_key_check(),
    // Answers to requests sent with an Idempotency-Key, so that a retry gets the first answer
    // instead of doing the work again (see engine/idempotency.rs).
    M::up(
        "CREATE TABLE idempotency (
        caller TEXT NOT NULL,
        key TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        -- an answer names a customer (a card): it goes when they are erased
        customer_id INTEGER REFERENCES customers(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        PRIMARY KEY (caller, key)
     );",
    ),
];

/// A connection to the store's database under `data_dir` (both created and migrated if new).
pub fn connect(data_dir: &Path) -> Result<Connection, DbError> {
    private_dir(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let path = data_dir.join("greeter.sqlite3");
    let mut conn = Connection::open(&path).map_err(DbError::Open)?;
    // SQLite gives its -wal and -shm files the database file's mode
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        DbError::DataDir {
            path: path.clone(),
            source,
        }
    })?;
    // erased rows are overwritten with zeros, not just unlinked from the b-tree
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(DbError::Open)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(DbError::Open)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(DbError::Open)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(DbError::Open)?;
    // off while tables are rebuilt (dropping a parent would cascade to its children); the
    // migrations that rebuild check the keys themselves before they commit
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(DbError::Open)?;
    Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(DbError::Open)?;
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
    fn a_store_from_before_autoincrement_keeps_its_rows_and_never_reuses_an_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut old = Connection::open(dir.path().join("greeter.sqlite3")).unwrap();
            old.pragma_update(None, "foreign_keys", "ON").unwrap();
            Migrations::from_slice(MIGRATIONS)
                .to_version(&mut old, 3)
                .unwrap();
            old.execute_batch(
                "INSERT INTO customers(id, display_name, consent_how, consent_by, consent_at, created_at)
                     VALUES (1, 'A', 'signed', 't', '2026-01-01', '2026-01-01'),
                            (2, 'B', 'signed', 't', '2026-01-01', '2026-01-01');
                 INSERT INTO portraits(id, customer_id, embedding, model_id, quality, quality_detail, source, captured_at)
                     VALUES (5, 2, x'00', 'm', 1, '{}', 's', '2026-01-01');
                 INSERT INTO visits(customer_id, visited_at) VALUES (2, '2026-01-02');",
            )
            .unwrap();
        }
        let conn = connect(dir.path()).unwrap();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM customers"), 2);
        assert_eq!(
            count("SELECT COUNT(*) FROM portraits WHERE customer_id = 2"),
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM visits WHERE customer_id = 2"),
            1
        );
        // the newest customer erased (with what cascades from it), then someone new
        conn.execute("DELETE FROM customers WHERE id = 2", [])
            .unwrap();
        assert_eq!(
            count("SELECT COUNT(*) FROM portraits"),
            0,
            "cascade still holds"
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM visits"),
            0,
            "cascade still holds"
        );
        conn.execute(
            "INSERT INTO customers(display_name, consent_how, consent_by, consent_at, created_at)
             VALUES ('C', 'signed', 't', '2026-01-01', '2026-01-01')",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 3, "id 2 is not given again");
    }

    #[test]
    fn migrations_are_valid() {
        rusqlite_migration::Migrations::from_slice(super::MIGRATIONS)
            .validate()
            .unwrap();
    }
}
