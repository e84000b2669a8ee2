//! What one client holds on a node: its jobs, from the frame read to the answer written,
//! and their bytes (arguments until the job ends, answers until written to the network).
//!
//! Answers count until written, not until computed: a client that stops reading its
//! results cannot make the node pile them up, since it can send no more jobs past its
//! limit, and the node stops reading its jobs while its bytes are over budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;
use wasp_proto::message::ToClient;

/// A client's holdings, shared by its reader, its jobs' callbacks and its writer.
#[derive(Debug, Default)]
pub(super) struct Holdings {
    jobs: AtomicUsize,
    bytes: AtomicUsize,
    /// Signalled when the writer frees something.
    freed: Notify,
}

impl Holdings {
    /// A job read from the client, with `args` bytes of arguments.
    pub(super) fn job_read(&self, args: usize) {
        self.jobs.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(args, Ordering::AcqRel);
    }

    /// The answer to a job (or to several: a `Returned`), whose arguments (`args` bytes,
    /// in all) are freed; the answer's own bytes count until it is written.
    pub(super) fn answered(&self, args: usize, answer: &ToClient) {
        self.bytes.fetch_add(weight(answer), Ordering::AcqRel);
        self.release_bytes(args);
    }

    /// `message` was handed to the network: the jobs it answers and its bytes are freed.
    pub(super) fn written(&self, message: &ToClient) {
        self.jobs
            .fetch_sub(jobs_answered(message), Ordering::AcqRel);
        self.release_bytes(weight(message));
    }

    fn release_bytes(&self, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.freed.notify_waiters();
    }

    /// Jobs held now.
    pub(super) fn jobs(&self) -> usize {
        self.jobs.load(Ordering::Acquire)
    }

    /// Waits until the bytes held are at most `budget`.
    pub(super) async fn within(&self, budget: usize) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check: a release in between still wakes this wait.
            freed.as_mut().enable();
            if self.bytes.load(Ordering::Acquire) <= budget {
                return;
            }
            freed.await;
        }
    }
}

/// How many jobs `message` answers.
fn jobs_answered(message: &ToClient) -> usize {
    match message {
        ToClient::Done(_) => 1,
        ToClient::Returned { jobs } => jobs.len(),
        _ => 0,
    }
}

/// The bytes a message holds until written: a result and its captured output.
fn weight(message: &ToClient) -> usize {
    match message {
        ToClient::Done(done) => {
            let result = done.result.as_ref().map_or(0, |bytes| bytes.len());
            result + done.stdout.len() + done.stderr.len()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_proto::message::JobDone;

    fn done(job: u64, result: usize, output: usize) -> ToClient {
        ToClient::Done(JobDone {
            job,
            result: Ok(serde_bytes::ByteBuf::from(vec![0; result])),
            stdout: vec![0; output],
            stderr: Vec::new(),
            duration_ns: 0,
            fuel_used: None,
            deterministic: false,
        })
    }

    #[test]
    fn a_job_is_held_from_its_frame_to_its_written_answer() {
        let holdings = Holdings::default();
        holdings.job_read(100);
        assert_eq!(
            (holdings.jobs(), holdings.bytes.load(Ordering::Acquire)),
            (1, 100)
        );
        let answer = done(0, 30, 20);
        holdings.answered(100, &answer);
        assert_eq!(
            (holdings.jobs(), holdings.bytes.load(Ordering::Acquire)),
            (1, 50)
        );
        holdings.written(&answer);
        assert_eq!(
            (holdings.jobs(), holdings.bytes.load(Ordering::Acquire)),
            (0, 0)
        );
    }

    #[test]
    fn a_hand_back_answers_every_job_it_names() {
        let holdings = Holdings::default();
        for _ in 0..3 {
            holdings.job_read(10);
        }
        let back = ToClient::Returned {
            jobs: vec![0, 1, 2],
        };
        holdings.answered(30, &back);
        holdings.written(&back);
        assert_eq!(
            (holdings.jobs(), holdings.bytes.load(Ordering::Acquire)),
            (0, 0)
        );
        // Messages that answer no job free nothing.
        holdings.written(&ToClient::Draining);
        assert_eq!(holdings.jobs(), 0);
    }

    #[tokio::test]
    async fn waiting_for_room_ends_when_the_writer_frees_enough() {
        let holdings = std::sync::Arc::new(Holdings::default());
        holdings.job_read(0);
        let answer = done(0, 1000, 0);
        holdings.answered(0, &answer);
        let mut over = Box::pin(holdings.within(500));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            over.as_mut().poll(&mut cx).is_pending(),
            "1000 bytes held is over a 500-byte budget"
        );
        drop(over);
        let waiter = tokio::spawn({
            let holdings = holdings.clone();
            async move { holdings.within(500).await }
        });
        holdings.written(&answer);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the wait ends")
            .unwrap();
    }
}
