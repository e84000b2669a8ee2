//! The session state machine, step by step, without sockets: each fault once found in the
//! async session (results lost at its end, hand-backs that bounce for ever, modules copied
//! on every request, late answers counted twice) has a test here.

use super::*;
use crate::module::ModuleSource;
use crate::scheduler::lanes::Owner;
use crate::scheduler::slot::JobSlot;
use crate::scheduler::task::{test_task, test_task_of};
use std::sync::Arc;
use std::time::Instant;
use wasp_proto::codec::FrameDecoder;
use wasp_proto::error::WireError;

const RTT: Duration = Duration::from_micros(100);

fn info(workers: u32) -> NodeInfo {
    NodeInfo {
        id: "node".into(),
        arch: "x86_64".into(),
        os: "linux".into(),
        workers,
        version: "test".into(),
        max_module_size: 64 << 20,
        pulls_from: Vec::new(),
    }
}

fn session(workers: u32, max_retries: u32) -> SessionState {
    SessionState::new("node 10.0.0.1:7878".into(), &info(workers), max_retries)
}

/// Sends tasks `ids` and returns their slots, and the frames written.
fn send(state: &mut SessionState, ids: &[u64]) -> (Vec<Arc<JobSlot>>, Vec<ToNode>) {
    let mut out = BytesMut::new();
    let slots = ids
        .iter()
        .map(|&id| {
            let task = test_task(id, Owner::LOCAL);
            let slot = task.slot().clone();
            state.send(task, &mut out, Instant::now());
            slot
        })
        .collect();
    (slots, frames(&out))
}

fn frames(out: &BytesMut) -> Vec<ToNode> {
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    decoder.extend(out);
    std::iter::from_fn(|| decoder.decode().expect("valid frames")).collect()
}

fn done(job: WireJobId, value: u8) -> ToClient {
    ToClient::Done(JobDone {
        job,
        result: Ok(serde_bytes::ByteBuf::from(vec![value])),
        stdout: b"out".to_vec(),
        stderr: Vec::new(),
        duration_ns: 1_000,
        fuel_used: None,
        deterministic: true,
    })
}

#[expect(
    clippy::vec_box,
    reason = "tasks stay boxed from submission to completion"
)]
/// Carries out the session's actions as the driver would, with nothing but the tasks:
/// returns the tasks requeued, the modules and values shipped, and answers each finished
/// task.
fn act(state: &mut SessionState) -> (Vec<Box<Task>>, Vec<WireHash>) {
    let (mut requeued, mut shipped) = (Vec::new(), Vec::new());
    while let Some(action) = state.poll_action() {
        match action {
            Action::Finish(task, finished) => task.answer_for_test(finished),
            Action::Requeue(task, _) => requeued.push(task),
            Action::Ship(hash, _) => shipped.push(hash),
            Action::ShipData(data) => shipped.push(data.hash),
            Action::Refer(hash, source) => panic!("told the node to pull {hash:?} from {source}"),
        }
    }
    (requeued, shipped)
}

fn result_of(slot: &JobSlot) -> Result<Vec<u8>, JobError> {
    slot.wait_until(None)
        .expect("answered")
        .outcome
        .result
        .clone()
}

#[test]
fn jobs_go_within_the_window_and_results_answer_them() {
    let mut state = session(2, 3);
    assert_eq!(state.room(RTT), 4, "two per worker before the first result");
    let (slots, frames) = send(&mut state, &[0, 1]);
    assert_eq!(frames.len(), 2);
    assert!(matches!(&frames[0], ToNode::Run(run) if run.job == 0 && run.function == "f"));
    assert_eq!(state.room(RTT), 2);
    state.handle(done(1, 42)).unwrap();
    let (requeued, _) = act(&mut state);
    assert!(requeued.is_empty());
    assert_eq!(result_of(&slots[1]), Ok(vec![42]));
    assert!(!slots[0].is_finished());
    let delta = state.take_delta();
    assert_eq!((delta.jobs, delta.failed), (1, 0));
    assert_eq!(state.take_delta(), Delta::default(), "taken once");
}

#[test]
fn an_answer_for_a_job_it_does_not_have_is_a_violation() {
    let mut state = session(1, 3);
    assert!(state.handle(done(5, 0)).is_err());
    let returned = ToClient::Returned { jobs: vec![9] };
    assert!(state.handle(returned).is_err());
    assert!(state.handle(ToClient::Welcome(info(1))).is_err());
}

#[test]
fn node_errors_arrive_as_job_errors() {
    let mut state = session(1, 3);
    let (slots, _) = send(&mut state, &[0]);
    let failed = ToClient::Done(JobDone {
        job: 0,
        result: Err(WireError::FuelExhausted { limit: 10 }),
        stdout: Vec::new(),
        stderr: Vec::new(),
        duration_ns: 0,
        fuel_used: Some(10),
        deterministic: false,
    });
    state.handle(failed).unwrap();
    act(&mut state);
    assert_eq!(
        result_of(&slots[0]),
        Err(JobError::FuelExhausted { limit: 10 })
    );
    assert_eq!(state.take_delta().failed, 1);
}

/// The fault: a node that drains (or closes with `Shutdown`) got its jobs requeued with no
/// attempt counted, and was reconnected at once, so a job could bounce for ever. Now each
/// drained session counts a hand-back, and past the free ones, attempts.
#[test]
fn a_job_drained_again_and_again_runs_out_of_attempts() {
    let max_retries = 2;
    let mut task = test_task(0, Owner::LOCAL);
    let slot = task.slot().clone();
    let mut sessions = 0;
    loop {
        sessions += 1;
        assert!(sessions < 100, "the job bounces for ever");
        let mut state = session(1, max_retries);
        let mut out = BytesMut::new();
        state.send(task, &mut out, Instant::now());
        // Each node drains with the job in flight (alternately by handing it back and by
        // closing in order).
        if sessions % 2 == 0 {
            state.handle(ToClient::Returned { jobs: vec![0] }).unwrap();
        } else {
            state.end(Ending::Drained);
        }
        let (mut requeued, _) = act(&mut state);
        match requeued.pop() {
            Some(back) => task = back,
            None => break,
        }
    }
    let free = FREE_HAND_BACKS as usize;
    let expected = (free + 1) * (max_retries as usize + 1);
    assert_eq!(sessions, expected, "free hand-backs, then attempts");
    match result_of(&slot) {
        Err(JobError::NodeLost { attempts, .. }) => assert_eq!(attempts, max_retries + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lost_node_costs_its_jobs_an_attempt_in_order() {
    let mut state = session(4, 1);
    let (slots, _) = send(&mut state, &[0, 1, 2]);
    state.end(Ending::Lost);
    let (requeued, _) = act(&mut state);
    // Requeued at the head one by one, last first: they keep their order in the queue.
    let order: Vec<_> = requeued.iter().map(|task| task.id().0).collect();
    assert_eq!(order, [2, 1, 0]);
    assert!(requeued.iter().all(|task| task.attempts == 1));
    assert_eq!(state.take_delta().retries, 3);
    // Lost again, past the limit: the jobs fail.
    let mut next = session(4, 1);
    let mut out = BytesMut::new();
    for task in requeued.into_iter().rev() {
        next.send(task, &mut out, Instant::now());
    }
    next.end(Ending::Lost);
    let (requeued, _) = act(&mut next);
    assert!(requeued.is_empty());
    for slot in &slots {
        assert!(matches!(
            result_of(slot),
            Err(JobError::NodeLost { attempts: 2, .. })
        ));
    }
}

#[test]
fn a_stopping_client_requeues_without_counting() {
    let mut state = session(1, 0);
    send(&mut state, &[0]);
    state.end(Ending::Stopped);
    let (requeued, _) = act(&mut state);
    assert_eq!(requeued.len(), 1);
    assert_eq!((requeued[0].attempts, requeued[0].handed_back), (0, 0));
}

/// The fault: after a session ended, the driver took only the results queued before the
/// first other message; later results were lost and their jobs ran again. Every message
/// left is now handled before the jobs still in flight are handed back.
#[test]
fn results_after_other_messages_still_count_when_the_session_ends() {
    let mut state = session(2, 3);
    let (slots, _) = send(&mut state, &[0, 1, 2]);
    let leftovers = [
        done(0, 10),
        ToClient::Workers { workers: 3 },
        ToClient::Draining,
        done(2, 12),
    ];
    for message in leftovers {
        state.handle(message).unwrap();
    }
    state.end(Ending::Lost);
    let (requeued, _) = act(&mut state);
    assert_eq!(result_of(&slots[0]), Ok(vec![10]));
    assert_eq!(result_of(&slots[2]), Ok(vec![12]));
    let ids: Vec<_> = requeued.iter().map(|task| task.id().0).collect();
    assert_eq!(ids, [1], "only the unanswered job runs again");
}

/// The fault: every `NeedModule` made the client copy the module (twice) before waiting
/// to send it, so a node asking again and again made it hold many copies. A module is now
/// shipped once at a time, and never copied.
#[test]
fn a_module_asked_again_while_on_its_way_is_not_sent_twice() {
    let mut state = session(1, 3);
    let (_, frames) = send(&mut state, &[0]);
    let ToNode::Run(run) = &frames[0] else {
        panic!("a run frame")
    };
    let hash = run.module;
    for _ in 0..100 {
        state.handle(ToClient::NeedModule { hash }).unwrap();
    }
    let (_, shipped) = act(&mut state);
    assert_eq!(shipped, [hash]);
    state.module_sent(hash, true);
    // Evicted by the node and asked for again later: sent again.
    state.handle(ToClient::NeedModule { hash }).unwrap();
    let (_, shipped) = act(&mut state);
    assert_eq!(shipped, [hash]);
    assert_eq!(state.take_delta().module_transfers, 1);
    let unknown = ToClient::NeedModule { hash: [0; 32] };
    assert!(state.handle(unknown).is_err(), "a module no job uses");
}

/// A cancelled job is answered at once; the node is told, and its later answer (its
/// result, if it won the race) is taken without counting the job twice.
#[test]
fn a_cancelled_job_is_stopped_on_the_node_and_its_late_answer_is_ignored() {
    let mut state = session(2, 3);
    let (slots, _) = send(&mut state, &[0, 1]);
    let mut out = BytesMut::new();
    assert_eq!(state.check_cancels(&mut out), 0);
    assert!(out.is_empty(), "nothing cancelled, nothing sent");
    assert!(slots[1].cancel("by the caller"));
    assert_eq!(state.check_cancels(&mut out), 1);
    assert_eq!(frames(&out), [ToNode::Cancel { jobs: vec![1] }]);
    act(&mut state);
    assert_eq!(
        state.in_flight(),
        2,
        "the node still holds it until it answers"
    );
    state.handle(done(1, 99)).unwrap();
    act(&mut state);
    assert!(matches!(result_of(&slots[1]), Err(JobError::Cancelled(_))));
    assert_eq!(state.in_flight(), 1);
    let summary = slots[1].books().groups.summary(None);
    assert_eq!((summary.finished, summary.failed), (1, 1), "counted once");
    // Cancelled and then lost: nothing to hand back for it.
    assert!(slots[0].cancel("by the caller"));
    state.check_cancels(&mut BytesMut::new());
    state.end(Ending::Lost);
    let (requeued, _) = act(&mut state);
    assert!(requeued.is_empty());
}

#[test]
fn a_draining_node_gets_nothing_more_and_resizes_move_the_window() {
    let mut state = session(1, 3);
    state.handle(ToClient::Workers { workers: 3 }).unwrap();
    assert_eq!(state.room(RTT), 6);
    assert_eq!(state.take_delta().workers, Some(3));
    state.handle(ToClient::Draining).unwrap();
    assert_eq!(state.room(RTT), 0);
}

#[test]
fn a_module_too_large_for_the_node_fails_its_job_at_once() {
    let mut small = info(1);
    small.max_module_size = 10;
    let mut state = SessionState::new("node".into(), &small, 3);
    let module = crate::module::test_module_with_job("more than ten bytes");
    let task = test_task_of(0, Owner::LOCAL, module);
    let slot = task.slot().clone();
    let mut out = BytesMut::new();
    state.send(task, &mut out, Instant::now());
    assert!(out.is_empty());
    act(&mut state);
    assert!(matches!(result_of(&slot), Err(JobError::ModuleRefused(_))));
    assert_eq!(state.in_flight(), 0);
}

/// A node preparing this session's module is shown as preparing it until it says it is
/// done; a module of no job of the session is not counted (a node cannot grow the set).
#[test]
fn a_module_being_prepared_shows_in_the_delta_until_it_is_ready() {
    let mut state = session(1, 3);
    let (_, frames) = send(&mut state, &[0]);
    let ToNode::Run(run) = &frames[0] else {
        panic!("a run frame")
    };
    let hash = run.module;
    state.take_delta();
    state.handle(ToClient::Preparing { hash }).unwrap();
    state.handle(ToClient::Preparing { hash: [7; 32] }).unwrap();
    assert_eq!(state.take_delta().preparing, Some(1));
    state.handle(ToClient::Prepared { hash: [7; 32] }).unwrap();
    assert_eq!(state.take_delta().preparing, None, "nothing changed");
    state.handle(ToClient::Prepared { hash }).unwrap();
    assert_eq!(state.take_delta().preparing, Some(0));
}

/// A node that keeps its connection alive but never answers a job with a time limit
/// cannot hold it for ever: past twice the limit plus the grace, the job goes back to the
/// queue (an attempt), the node is told to cancel it, and a late answer is ignored. Jobs
/// without a limit have no deadline; while the node prepares a module, none passes.
#[test]
fn a_job_held_far_past_its_time_limit_is_taken_back() {
    let mut state = session(2, 3);
    let start = Instant::now();
    let mut out = BytesMut::new();
    let mut limited = test_task(0, Owner::LOCAL);
    limited.asked.timeout = Some(Duration::from_secs(1));
    let slot = limited.slot().clone();
    state.send(limited, &mut out, start);
    state.send(test_task(1, Owner::LOCAL), &mut out, start);
    let deadline = start + answer_deadline(Duration::from_secs(1));
    assert_eq!(deadline, start + Duration::from_secs(32));
    let mut cancels = BytesMut::new();
    assert_eq!(
        state.expire(deadline - Duration::from_millis(1), &mut cancels),
        0
    );
    // The node prepares a module of the session meanwhile: the deadline moves with it.
    let hash = first_module(&out);
    state.handle(ToClient::Preparing { hash }).unwrap();
    assert_eq!(
        state.expire(deadline + Duration::from_secs(5), &mut cancels),
        0
    );
    state.handle(ToClient::Prepared { hash }).unwrap();
    let moved = deadline + Duration::from_secs(5) + answer_deadline(Duration::from_secs(1));
    assert_eq!(
        state.expire(moved - Duration::from_millis(1), &mut cancels),
        0
    );
    assert!(cancels.is_empty());

    assert_eq!(
        state.expire(moved, &mut cancels),
        1,
        "only the job with a limit"
    );
    assert_eq!(frames(&cancels), [ToNode::Cancel { jobs: vec![0] }]);
    let (requeued, _) = act(&mut state);
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].attempts, 1, "it costs an attempt");
    assert_eq!(state.take_delta().retries, 1);
    state.handle(done(0, 7)).unwrap();
    let (requeued_again, _) = act(&mut state);
    assert!(requeued_again.is_empty(), "the late answer is ignored");
    assert!(!slot.is_finished(), "the job waits for its next run");
    assert_eq!(
        state.expire(moved + Duration::from_secs(3600), &mut cancels),
        0
    );
}

/// The module hash of the first `Run` frame in `out`.
fn first_module(out: &BytesMut) -> WireHash {
    match frames(out).into_iter().next() {
        Some(ToNode::Run(run)) => run.module,
        other => panic!("a run frame, not {other:?}"),
    }
}

/// A node asks for a value a job in flight takes: it is shipped once while on its way,
/// counted when it arrives; a value no job in flight takes (its jobs since cancelled) is
/// not sent, and not a violation.
#[test]
fn a_value_is_shipped_once_to_a_node_that_asks() {
    let mut state = session(2, 3);
    let data = Data::of(bytes::Bytes::from_static(b"\xa5value"));
    let mut task = test_task(0, Owner::LOCAL);
    let mut args = vec![0x91];
    args.extend_from_slice(&data.reference());
    let found = wasp_proto::refs::find(&args).unwrap();
    let resolved = vec![crate::data::Resolved::Data(data.clone(), None)];
    task.args = crate::data::build(args.clone(), &found, resolved);
    let mut out = BytesMut::new();
    state.send(task, &mut out, Instant::now());
    let [ToNode::Run(run)] = &frames(&out)[..] else {
        panic!("one job frame");
    };
    assert_eq!(run.args, args, "the value travels by reference");
    for _ in 0..2 {
        state
            .handle(ToClient::NeedData { hash: data.hash })
            .unwrap();
    }
    let shipped: Vec<_> = std::iter::from_fn(|| state.poll_action())
        .filter_map(|action| match action {
            Action::ShipData(shipped) => Some(shipped.hash),
            _ => None,
        })
        .collect();
    assert_eq!(shipped, [data.hash], "one transfer at a time");
    state.data_sent(data.hash, 6, true);
    assert_eq!((state.delta.data_transfers, state.delta.data_bytes), (1, 6));
    state.handle(ToClient::NeedData { hash: [9; 32] }).unwrap();
    assert!(state.poll_action().is_none());
}

/// What a client answers a node's `NeedModule` for a module pulled from `registry.example`,
/// when the node pulls from `scope`: the module's place, or its bytes.
fn answer_for_a_pulled_module(scope: &str) -> (WireHash, ModuleSource, Option<Action>) {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let source = ModuleSource::new("registry.example:5000", "team/jobs", &digest).unwrap();
    let mut pulling = info(1);
    pulling.pulls_from = vec![scope.to_string()];
    let mut state = SessionState::new("node".into(), &pulling, 3);
    let module = crate::module::test_module().with_source(source.clone());
    let hash = *module.hash().as_bytes();
    state.send(
        test_task_of(0, Owner::LOCAL, module),
        &mut BytesMut::new(),
        Instant::now(),
    );
    state.handle(ToClient::NeedModule { hash }).unwrap();
    (hash, source, state.poll_action())
}

#[test]
fn a_node_that_pulls_from_the_modules_registry_is_told_where_it_is_not_sent_it() {
    let (hash, source, action) = answer_for_a_pulled_module("registry.example:5000/team");
    match action {
        Some(Action::Refer(referred, at)) => assert_eq!((referred, at), (hash, source)),
        _ => panic!("the node is told where the module is"),
    }
    for scope in ["registry.example:5000/other", "elsewhere.example"] {
        let (hash, _, action) = answer_for_a_pulled_module(scope);
        assert!(
            matches!(action, Some(Action::Ship(shipped, _)) if shipped == hash),
            "a node that does not pull from {scope} gets the bytes"
        );
    }
}
