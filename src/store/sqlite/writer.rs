//! The writer thread: the one connection that changes the database, and group commit.
//!
//! Callers hand it their change as a job and block until it answers. The thread runs jobs back to
//! back: every job waiting when a transaction starts (up to `MAX_BATCH`) joins that transaction,
//! each in its own savepoint, so a failing job rolls back to its savepoint and changes nothing,
//! and every job is answered only after the transaction holding it has committed. One thread
//! running the jobs avoids the chain of thread wake-ups a mutex hand-off per call would cost.

use std::sync::mpsc;

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// Jobs in one transaction at most; bounds how long the first of them waits.
const MAX_BATCH: usize = 256;

/// Answers one job once its transaction has ended: `Ok` if it committed, else the reason.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A change for the writer thread, run inside a savepoint of the shared transaction. It gets
/// `None` when the transaction could not begin. It returns how to answer its caller, and whether
/// its savepoint could not be closed (then the whole batch must roll back).
type Job = Box<dyn FnOnce(Option<&Connection>) -> (Answer, bool) + Send>;

/// The handle callers use; the thread ends when the last handle is dropped.
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<WriterHandle> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("certbind-sqlite-writer".into())
            .spawn(move || run(conn, queue))?;
        Ok(WriterHandle { jobs })
    }

    /// Runs `body` as one atomic change and returns its result once committed.
    pub fn write<T: Send + 'static>(
        &self,
        body: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = mpsc::sync_channel::<StoreResult<T>>(1);
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            let (result, poisoned) = match conn {
                Some(conn) => in_savepoint(conn, body),
                None => (Err(backend("the write transaction could not begin")), false),
            };
            let answer: Answer = Box::new(move |committed: Result<(), String>| {
                let result = match (result, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(reason)) => Err(backend(&format!("commit failed: {reason}"))),
                    (Err(err), _) => Err(err),
                };
                // The caller may be gone (it panicked); nothing is owed to it then.
                let _ = reply.send(result);
            });
            (answer, poisoned)
        });
        self.jobs
            .send(job)
            .map_err(|_| backend("the writer thread has stopped"))?;
        answer
            .recv()
            .unwrap_or_else(|_| Err(backend("the writer thread dropped the call")))
    }
}

fn backend(reason: &str) -> StoreError {
    StoreError::Backend(anyhow::anyhow!("{reason}"))
}

/// Runs `body` in a savepoint; returns its result and whether the savepoint could not be
/// opened or closed cleanly (which poisons the batch).
fn in_savepoint<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> StoreResult<T>,
) -> (StoreResult<T>, bool) {
    if let Err(err) = conn.execute_batch("SAVEPOINT call") {
        return (Err(err.into()), true);
    }
    // A panicking call must not take the writer thread (and every later write) down with it.
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(conn))) {
        Ok(result) => result,
        Err(_) => Err(backend("the store call panicked")),
    };
    let close = match result {
        Ok(_) => "RELEASE call",
        Err(_) => "ROLLBACK TO call; RELEASE call",
    };
    match conn.execute_batch(close) {
        Ok(()) => (result, false),
        Err(err) => (Err(err.into()), true),
    }
}

/// The writer thread's loop: one transaction per batch of waiting jobs.
fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = Batch::default();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            batch.run(&conn, job);
            if batch.answers.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        batch.end(&conn);
    }
}

/// The transaction being filled.
#[derive(Default)]
struct Batch {
    open: bool,
    poisoned: bool,
    answers: Vec<Answer>,
}

impl Batch {
    fn run(&mut self, conn: &Connection, change: Job) {
        if !self.open {
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => self.open = true,
                Err(err) => {
                    tracing::error!(error = %err, "write transaction could not begin");
                    let (answer, _) = change(None);
                    answer(Err(err.to_string()));
                    return;
                }
            }
        }
        let (answer, poisoned) = change(Some(conn));
        self.poisoned |= poisoned;
        self.answers.push(answer);
    }

    /// Commits (or, if poisoned or COMMIT fails, rolls back) and answers every job.
    fn end(&mut self, conn: &Connection) {
        if !self.open {
            return;
        }
        let committed = if self.poisoned {
            Err("a savepoint of the batch failed".to_string())
        } else {
            conn.execute_batch("COMMIT").map_err(|err| err.to_string())
        };
        if let Err(reason) = &committed {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(%reason, jobs = self.answers.len(), "write transaction failed");
        }
        for answer in self.answers.drain(..) {
            answer(committed.clone());
        }
        self.open = false;
        self.poisoned = false;
    }
}
