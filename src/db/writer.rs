//! The hot writes, one after another on a thread of their own.
//!
//! SQLite has one writer at a time, so the process queues its writes (`Db::write_turn`). A write
//! that runs on a request's own task holds that turn across every round trip to its connection's
//! thread, and after each one its continuation waits in the server worker's run queue behind
//! other requests' work — while every other writer waits for the turn. Under load that wait, not
//! SQLite, was most of the time a write held the turn. Here the write's continuations are all
//! this thread has to run, so the turn is held for what the statements cost.
//!
//! A job runs to its end even when the request that asked for it goes away, so a transaction
//! here is never abandoned half-way.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt;

use tokio::sync::{mpsc, oneshot};

type Run = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Job<B> {
    /// Any write, run on its own.
    One(Run),
    /// A write of the kind `B` that the thread writes together with the others of its kind
    /// queued at the same moment (one transaction, one fsync, for all of them).
    Batched(B),
}

/// Writes a batch; each item carries its own way to answer.
pub type WriteBatch<B> = fn(Vec<B>) -> Run;

pub struct Writer<B> {
    jobs: mpsc::UnboundedSender<Job<B>>,
}

/// The most jobs taken from the queue at once.
const MAX_BATCH: usize = 64;

impl<B: Send + 'static> Writer<B> {
    /// Starts the thread; it ends when the last `Writer` handle is dropped and the queue is done.
    pub fn start(write_batch: WriteBatch<B>) -> std::io::Result<Self> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job<B>>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("db-writer".to_owned()).spawn(move || {
            runtime.block_on(async move {
                while let Some(first) = queue.recv().await {
                    let (mut ones, mut batch) = (Vec::new(), Vec::new());
                    let mut next = Some(first);
                    while let Some(job) = next.take() {
                        match job {
                            Job::One(run) => ones.push(run),
                            Job::Batched(item) => batch.push(item),
                        }
                        if ones.len() + batch.len() < MAX_BATCH {
                            next = queue.try_recv().ok();
                        }
                    }
                    // A job that panics loses its own answer, not the thread.
                    if !batch.is_empty() {
                        let _ = AssertUnwindSafe(write_batch(batch)).catch_unwind().await;
                    }
                    for run in ones {
                        let _ = AssertUnwindSafe(run).catch_unwind().await;
                    }
                }
            });
        })?;
        Ok(Self { jobs })
    }

    /// Queues `job` on the writer thread at once; the returned future gives its result.
    pub fn run<T: Send + 'static>(
        &self,
        job: impl Future<Output = sqlx::Result<T>> + Send + 'static,
    ) -> impl Future<Output = sqlx::Result<T>> {
        let (answer, result) = oneshot::channel();
        let run: Run = Box::pin(async move {
            // The asker may have gone away; the write is done all the same.
            let _ = answer.send(job.await);
        });
        let queued = self.jobs.send(Job::One(run)).is_ok();
        Self::answer(queued, result)
    }

    /// Queues `item` to be written with the others of its kind; `make` gives it the sender its
    /// batch answers on.
    pub fn batched<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<sqlx::Result<T>>) -> B,
    ) -> impl Future<Output = sqlx::Result<T>> {
        let (answer, result) = oneshot::channel();
        let queued = self.jobs.send(Job::Batched(make(answer))).is_ok();
        Self::answer(queued, result)
    }

    async fn answer<T>(queued: bool, result: oneshot::Receiver<sqlx::Result<T>>) -> sqlx::Result<T> {
        if !queued {
            return Err(sqlx::Error::PoolClosed);
        }
        result.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Item(usize, oneshot::Sender<sqlx::Result<usize>>);

    /// Answers each item with its number and the size of the batch it came in.
    fn write_batch(batch: Vec<Item>) -> Run {
        Box::pin(async move {
            let size = batch.len();
            for Item(n, answer) in batch {
                let _ = answer.send(Ok(n * 100 + size));
            }
        })
    }

    #[tokio::test]
    async fn items_queued_together_are_written_together() {
        let writer = Writer::start(write_batch).unwrap();
        // Hold the thread with a job, so that the items queue up behind it.
        let (release, hold) = oneshot::channel::<()>();
        let held = writer.run(async move {
            let _ = hold.await;
            Ok(())
        });
        let asks: Vec<_> = (1..=3).map(|n| writer.batched(move |answer| Item(n, answer))).collect();
        release.send(()).unwrap();
        held.await.unwrap();
        let mut answers = Vec::new();
        for ask in asks {
            answers.push(ask.await.unwrap());
        }
        assert_eq!(answers, vec![103, 203, 303], "one batch of three");
        assert_eq!(writer.batched(|answer| Item(4, answer)).await.unwrap(), 401, "alone when alone");
    }

    #[tokio::test]
    async fn jobs_run_one_at_a_time_in_order_and_to_the_end() {
        let writer = Writer::<Item>::start(write_batch).unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let mut asks = Vec::new();
        for i in 0..5 {
            let (log, running) = (log.clone(), running.clone());
            asks.push(writer.run(async move {
                assert_eq!(running.fetch_add(1, Ordering::SeqCst), 0, "one job at a time");
                tokio::task::yield_now().await;
                log.lock().unwrap().push(i);
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(i)
            }));
        }
        // The first asker gives up before its answer; its job still runs.
        let mut asks = asks.into_iter();
        drop(asks.next());
        for (i, ask) in asks.enumerate() {
            assert_eq!(ask.await.unwrap(), i + 1);
        }
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_job_that_panics_loses_its_answer_not_the_thread() {
        let writer = Writer::<Item>::start(write_batch).unwrap();
        let crashed = writer.run(async { panic!("a bug in a write") }).await;
        assert!(matches!(crashed, Err::<(), _>(sqlx::Error::WorkerCrashed)));
        assert_eq!(writer.run(async { Ok(7) }).await.unwrap(), 7);
        assert_eq!(writer.batched(|answer| Item(1, answer)).await.unwrap(), 101);
    }
}
