//! Idempotency keys: a client that did not get the answer to an enrolment or a checkout (a
//! dropped connection, a crash) sends the same request again with the same `Idempotency-Key`,
//! and gets the first answer instead of a second customer or a second sale. Answers are kept
//! per caller for a day. The same key sent again while the first is still running is refused.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use super::EngineError;

/// How long an answer is kept for a retry.
const KEPT_FOR: Duration = Duration::hours(24);

/// A key the caller chose: printable, at most 200 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    caller: String,
    key: String,
}

impl Key {
    pub fn new(caller: &str, key: &str) -> Result<Key, EngineError> {
        let key = key.trim();
        if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control()) {
            return Err(EngineError::BadIdempotencyKey);
        }
        Ok(Key {
            caller: caller.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// A stored answer: its HTTP-agnostic status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

pub enum Begun {
    /// the first answer to this key
    Replay(Answer),
    /// no answer yet: do the work, then `finish`
    Fresh(Pending),
}

/// A key being worked on; dropping it without `finish` (an error) frees the key for a retry.
pub struct Pending {
    key: Key,
    endpoint: String,
    keys: Arc<Keys>,
}

struct Keys {
    conn: Mutex<Connection>,
    in_flight: Mutex<HashSet<Key>>,
}

#[derive(Clone)]
pub struct Idempotency {
    keys: Arc<Keys>,
}

impl Idempotency {
    pub fn open(data_dir: &Path) -> Result<Self, EngineError> {
        let conn = crate::db::connect(data_dir).map_err(crate::gallery::GalleryError::from)?;
        Ok(Idempotency {
            keys: Arc::new(Keys {
                conn: Mutex::new(conn),
                in_flight: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The stored answer for `key`, or the right to produce it.
    pub fn begin(&self, key: Key, endpoint: &str) -> Result<Begun, EngineError> {
        if !self.keys.in_flight.lock().insert(key.clone()) {
            return Err(EngineError::KeyInFlight);
        }
        let pending = Pending {
            key,
            endpoint: endpoint.to_owned(),
            keys: self.keys.clone(),
        };
        let stored = pending.stored()?;
        match stored {
            Some((stored_endpoint, _)) if stored_endpoint != endpoint => {
                Err(EngineError::KeyReused {
                    endpoint: stored_endpoint,
                })
            }
            Some((_, answer)) => Ok(Begun::Replay(answer)),
            None => Ok(Begun::Fresh(pending)),
        }
    }
}

impl Pending {
    fn stored(&self) -> Result<Option<(String, Answer)>, EngineError> {
        let conn = self.keys.conn.lock();
        let since: DateTime<Utc> = Utc::now() - KEPT_FOR;
        let row = conn
            .query_row(
                "SELECT endpoint, status, body FROM idempotency
                 WHERE caller = ?1 AND key = ?2 AND created_at >= ?3",
                params![self.key.caller, self.key.key, since],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Answer {
                            status: r.get(1)?,
                            body: r.get(2)?,
                        },
                    ))
                },
            )
            .optional()
            .map_err(crate::gallery::GalleryError::from)?;
        Ok(row)
    }

    /// Keeps the answer for retries (and forgets answers older than a day).
    pub fn finish(self, answer: &Answer) -> Result<(), EngineError> {
        let conn = self.keys.conn.lock();
        let now = Utc::now();
        conn.execute(
            "DELETE FROM idempotency WHERE created_at < ?1",
            params![now - KEPT_FOR],
        )
        .and_then(|_| {
            conn.execute(
                "INSERT OR REPLACE INTO idempotency(caller, key, endpoint, status, body, customer_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    self.key.caller,
                    self.key.key,
                    self.endpoint,
                    answer.status,
                    answer.body,
                    customer_of(&answer.body),
                    now
                ],
            )
        })
        .map_err(crate::gallery::GalleryError::from)?;
        Ok(())
    }
}

/// The customer an answer is about (its top-level `customer_id`), so that erasing them erases
/// the answer too.
fn customer_of(body: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("customer_id")?
        .as_i64()
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.keys.in_flight.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_answered_once_then_replayed_and_is_per_caller_and_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Idempotency::open(dir.path()).unwrap();
        let key = || Key::new("pos:1", "sale-42").unwrap();
        let Begun::Fresh(pending) = keys.begin(key(), "checkout").unwrap() else {
            panic!("a new key has no answer")
        };
        assert!(matches!(
            keys.begin(key(), "checkout"),
            Err(EngineError::KeyInFlight)
        ));
        let answer = Answer {
            status: 200,
            body: "{\"visit_id\":7}".into(),
        };
        pending.finish(&answer).unwrap();
        match keys.begin(key(), "checkout").unwrap() {
            Begun::Replay(replayed) => assert_eq!(replayed, answer),
            Begun::Fresh(_) => panic!("the answer was kept"),
        }
        assert!(matches!(
            keys.begin(key(), "enrol"),
            Err(EngineError::KeyReused { .. })
        ));
        assert!(matches!(
            keys.begin(Key::new("pos:2", "sale-42").unwrap(), "checkout"),
            Ok(Begun::Fresh(_))
        ));
        assert!(Key::new("pos:1", "  ").is_err());
    }

    #[test]
    fn a_failed_attempt_frees_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Idempotency::open(dir.path()).unwrap();
        let key = || Key::new("pos:1", "enrol-zhou").unwrap();
        let Begun::Fresh(pending) = keys.begin(key(), "enrol").unwrap() else {
            panic!("new")
        };
        drop(pending);
        assert!(matches!(keys.begin(key(), "enrol"), Ok(Begun::Fresh(_))));
    }
}
