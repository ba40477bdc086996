//! The inference gate: CPU-bound work runs on blocking threads, at most `workers` at a time,
//! with at most `queue` requests waiting and "overloaded" beyond that.
//!
//! The worker permit travels *into* the blocking job and is released when the job ends, not
//! when the request that asked for it goes away: a request answered 408, or whose client hung
//! up, can no longer leave CPU work running outside the limit. A job that has not started when
//! its request is abandoned never starts; one that has started finishes, but before it commits
//! anything (an enrolment, a sale) it claims its request through [`Claim::commit`], so a request
//! is either answered with the outcome or was abandoned before any write: never both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::EngineError;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GateSettings {
    /// frames or enrolments analysed at once
    pub workers: usize,
    /// requests waiting for a worker before new ones are refused as overloaded
    pub queue: usize,
}

/// Who is asking: a request (refused when the queue is full, given up at its deadline) or a
/// camera (always waits: its own slot already drops stale frames).
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    Request { deadline: Option<Instant> },
    Camera,
}

pub struct Gate {
    settings: GateSettings,
    workers: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    running: Arc<AtomicUsize>,
}

const PENDING: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

/// The link between a job and the request waiting for it.
#[derive(Clone, Default)]
pub struct Claim(Arc<AtomicU8>);

impl Claim {
    /// Call right before the first write that must not happen for an abandoned request. After
    /// it succeeds the request waits for the outcome, past its deadline if need be.
    pub fn commit(&self) -> Result<(), EngineError> {
        match self
            .0
            .compare_exchange(PENDING, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(COMMITTING) => Ok(()),
            Err(_) => Err(EngineError::Abandoned),
        }
    }

    pub fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }

    /// True when the job had not committed: it will not.
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self.is_abandoned()
    }
}

/// Abandons the claim when the request's future is dropped (timeout layer, client gone).
struct AbandonOnDrop(Claim);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Counts a job as running for as long as it holds its worker permit.
struct Running {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let now = self.running.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("greeter_inference_running").set(now as f64);
    }
}

impl Gate {
    pub fn new(settings: GateSettings) -> Self {
        Gate {
            workers: Arc::new(Semaphore::new(settings.workers.max(1))),
            admitted: Arc::new(Semaphore::new(settings.workers.max(1) + settings.queue)),
            running: Arc::new(AtomicUsize::new(0)),
            settings,
        }
    }

    /// Jobs running on blocking threads right now (never more than `workers`).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Runs `job` on a blocking thread as one of the workers, keeping the caller's span.
    pub async fn run<T: Send + 'static>(
        &self,
        caller: Caller,
        job: impl FnOnce(&Claim) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let (_admission, deadline) = match caller {
            Caller::Request { deadline } => {
                let permit = self.admitted.clone().try_acquire_owned().map_err(|_| {
                    metrics::counter!("greeter_overloaded_total").increment(1);
                    EngineError::Overloaded
                })?;
                self.record_queue_depth();
                (Some(permit), deadline)
            }
            Caller::Camera => (None, None),
        };
        let claim = Claim::default();
        let _abandon_on_drop = AbandonOnDrop(claim.clone());
        let work = self.start(claim.clone(), job);
        tokio::pin!(work);
        let outcome = match deadline {
            None => work.await,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), &mut work).await {
                    Ok(outcome) => outcome,
                    // not committed: it never will be, the request is over
                    Err(_) if claim.abandon() => Err(EngineError::TimedOut),
                    // committing: the caller gets the outcome, a little late
                    Err(_) => work.await,
                }
            }
        };
        drop(_admission);
        self.record_queue_depth();
        outcome
    }

    async fn start<T: Send + 'static>(
        &self,
        claim: Claim,
        job: impl FnOnce(&Claim) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let permit = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed");
        let running = self.running.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            if claim.is_abandoned() {
                return Err(EngineError::Abandoned);
            }
            let now = running.fetch_add(1, Ordering::AcqRel) + 1;
            metrics::gauge!("greeter_inference_running").set(now as f64);
            let _running = Running {
                _permit: permit,
                running,
            };
            span.in_scope(|| job(&claim))
        })
        .await
        .map_err(EngineError::Panicked)?
    }

    fn record_queue_depth(&self) {
        let capacity = self.settings.workers.max(1) + self.settings.queue;
        let in_use = capacity - self.admitted.available_permits();
        metrics::gauge!("greeter_requests_in_flight").set(in_use as f64);
    }
}

/// Quick store work (a query, a delete) on a blocking thread, keeping the span: not inference,
/// so not counted against the workers.
pub async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(job))
        .await
        .map_err(EngineError::Panicked)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate(workers: usize, queue: usize) -> Arc<Gate> {
        Arc::new(Gate::new(GateSettings { workers, queue }))
    }

    fn busy(ms: u64) -> impl FnOnce(&Claim) -> Result<(), EngineError> + Send + 'static {
        move |_| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_past_their_deadline_leave_no_work_beyond_the_workers() {
        let gate = gate(1, 8);
        let deadline = Some(Instant::now() + Duration::from_millis(50));
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let gate = gate.clone();
            jobs.push(tokio::spawn(async move {
                gate.run(Caller::Request { deadline }, busy(200)).await
            }));
        }
        let mut timed_out = 0;
        for job in jobs {
            match job.await.unwrap() {
                Err(EngineError::TimedOut) => timed_out += 1,
                other => panic!("expected a time-out, got {:?}", other.err()),
            }
            assert!(gate.running() <= 1);
        }
        assert_eq!(timed_out, 8);
        // the one job that started finishes within its own time; none of the others starts
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(gate.running(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_committed_is_answered_even_past_the_deadline() {
        let gate = gate(1, 1);
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        let outcome = gate
            .run(Caller::Request { deadline }, |claim| {
                claim.commit()?;
                std::thread::sleep(Duration::from_millis(100));
                Ok(7)
            })
            .await;
        assert_eq!(outcome.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_job_cannot_commit() {
        let gate = gate(1, 1);
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        let (tx, rx) = std::sync::mpsc::channel();
        let outcome = gate
            .run(Caller::Request { deadline }, move |claim| {
                std::thread::sleep(Duration::from_millis(100));
                tx.send(claim.commit().is_ok()).unwrap();
                Ok(())
            })
            .await;
        assert!(matches!(outcome, Err(EngineError::TimedOut)));
        assert!(!rx.recv().unwrap(), "the job saw its request abandoned");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once() {
        let gate = gate(1, 0);
        let first = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.run(Caller::Request { deadline: None }, busy(200))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = gate.run(Caller::Request { deadline: None }, busy(1)).await;
        assert!(matches!(second, Err(EngineError::Overloaded)));
        first.await.unwrap().unwrap();
        // cameras always wait
        gate.run(Caller::Camera, busy(1)).await.unwrap();
    }
}
