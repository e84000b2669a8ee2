//! The node's connection state, step by step, without sockets.

use super::*;
use crate::data::Data;
use crate::module::test_module_with_job;
use crate::node::data::DataStore;
use crate::scheduler::JobId;
use crate::scheduler::books::{Books, Group};
use std::time::Duration;
use wasp_proto::error::WireError;
use wasp_proto::message::WireLimits;

fn job(id: WireJobId, module: &Module) -> RunJob {
    RunJob {
        job: id,
        module: *module.hash().as_bytes(),
        function: module.jobs()[0].clone(),
        // A MessagePack array of one 8-byte string: 10 bytes.
        args: [b"\x91\xa8".as_slice(), b"argument"].concat(),
        limits: WireLimits::default(),
    }
}

/// A node's stores, for tests.
struct TestStores {
    modules: ModuleStore,
    data: DataStore,
}

impl TestStores {
    fn get(&self) -> Stores<'_> {
        Stores {
            modules: &self.modules,
            data: &self.data,
        }
    }

    fn insert(&self, module: Module) {
        self.modules.insert(module);
    }
}

fn store() -> TestStores {
    TestStores {
        modules: ModuleStore::new(16, 1 << 20),
        data: DataStore::new(1 << 20),
    }
}

/// A connection whose jobs `ids` were submitted (actions taken), and their stored module.
fn submitted(ids: &[WireJobId]) -> (ConnectionState, Module, TestStores) {
    let (policy, store) = (NodePolicy::default(), store());
    let module = test_module_with_job("f");
    store.insert(module.clone());
    let mut state = ConnectionState::default();
    for &id in ids {
        state
            .run(job(id, &module), 1, &policy, store.get())
            .unwrap();
    }
    drain(&mut state);
    (state, module, store)
}

/// Takes the actions: the messages sent, and the jobs submitted (with their limits); jobs
/// to stop are stopped.
fn drain(state: &mut ConnectionState) -> (Vec<ToClient>, Vec<(WireJobId, Asked)>) {
    let (mut sent, mut submitted) = (Vec::new(), Vec::new());
    while let Some(action) = state.poll_action() {
        match action {
            Action::Send(message, _) => sent.push(message),
            Action::Submit(job) => submitted.push((job.id, job.asked)),
            Action::Stop(slot) => {
                slot.cancel("by the test");
            }
        }
    }
    (sent, submitted)
}

fn slot(id: u64) -> Arc<JobSlot> {
    JobSlot::new(
        JobId(id),
        Group::from("default"),
        Arc::new(Books::default()),
    )
}

fn done_with(result: Result<Vec<u8>, JobError>) -> Finished {
    Finished {
        outcome: crate::sandbox::RawOutcome {
            result,
            ..crate::sandbox::RawOutcome::failed(JobError::Internal(String::new()))
        },
        worker: "local/0".into(),
    }
}

#[test]
fn a_module_is_asked_for_once_and_its_jobs_run_when_it_arrives() {
    let (policy, store) = (NodePolicy::default(), store());
    let module = test_module_with_job("f");
    let mut state = ConnectionState::default();
    state.run(job(0, &module), 1, &policy, store.get()).unwrap();
    state.run(job(1, &module), 1, &policy, store.get()).unwrap();
    let (sent, submitted) = drain(&mut state);
    let hash = *module.hash().as_bytes();
    assert_eq!(sent, [ToClient::NeedModule { hash }]);
    assert!(submitted.is_empty());
    assert!(state.awaits(&hash));
    state
        .module_arrived(hash, Ok(module.clone()), store.get())
        .unwrap();
    let (sent, submitted) = drain(&mut state);
    assert!(sent.is_empty());
    assert_eq!(
        submitted.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(
        state.module_arrived(hash, Ok(module), store.get()).is_err(),
        "not asked again"
    );
}

/// Limits the client did not set take the node's maxima, also for a job that waited for
/// its module.
#[test]
fn jobs_run_with_the_limits_they_were_admitted_with() {
    let policy = NodePolicy {
        max_memory: 64 << 20,
        ..NodePolicy::default()
    };
    let store = store();
    let module = test_module_with_job("f");
    let mut state = ConnectionState::default();
    state.run(job(0, &module), 1, &policy, store.get()).unwrap();
    drain(&mut state);
    state
        .module_arrived(*module.hash().as_bytes(), Ok(module), store.get())
        .unwrap();
    let (_, submitted) = drain(&mut state);
    assert_eq!(submitted[0].1.max_memory, Some(64 << 20));
    assert_eq!(submitted[0].1.timeout, Some(Duration::from_secs(600)));
}

/// A job asking for reuse gets it where the operator allows reuse, and runs in a fresh
/// instance (reuse not asked) where the operator refuses it.
#[test]
fn reuse_is_given_only_where_the_operator_allows_it() {
    let store = store();
    let module = test_module_with_job("f");
    store.insert(module.clone());
    let mut reusing = job(0, &module);
    reusing.limits.reuse_instance = Some(true);
    for (instance_reuse, given) in [(true, true), (false, false)] {
        let policy = NodePolicy {
            instance_reuse,
            ..NodePolicy::default()
        };
        let mut state = ConnectionState::default();
        state.run(reusing.clone(), 1, &policy, store.get()).unwrap();
        let (_, submitted) = drain(&mut state);
        assert_eq!(
            submitted[0].1.reuse, given,
            "instance_reuse: {instance_reuse}"
        );
    }
}

#[test]
fn refused_jobs_are_answered_at_once() {
    let policy = NodePolicy {
        max_memory: 1 << 20,
        ..NodePolicy::default()
    };
    let store = store();
    let module = test_module_with_job("f");
    store.insert(module.clone());
    let mut state = ConnectionState::default();
    let mut greedy = job(0, &module);
    greedy.limits.max_memory = Some(2 << 20);
    state.run(greedy, 1, &policy, store.get()).unwrap();
    let (sent, submitted) = drain(&mut state);
    assert!(submitted.is_empty());
    assert!(matches!(
        &sent[..],
        [ToClient::Done(JobDone { job: 0, result: Err(WireError::LimitRefused { limit, .. }), .. })]
            if limit == "memory"
    ));
    assert_eq!(state.jobs(), 0);
}

#[test]
fn a_client_past_its_job_limit_or_reusing_an_id_is_cut_off() {
    let policy = NodePolicy {
        max_jobs_per_client: 2,
        ..NodePolicy::default()
    };
    let store = store();
    let module = test_module_with_job("f");
    let mut state = ConnectionState::default();
    state.run(job(0, &module), 1, &policy, store.get()).unwrap();
    assert!(state.run(job(0, &module), 2, &policy, store.get()).is_err());
    state.run(job(1, &module), 2, &policy, store.get()).unwrap();
    assert!(state.run(job(2, &module), 3, &policy, store.get()).is_err());
}

/// The client cancels a job waiting for its module (answered at once) and a submitted one
/// (stopped, answered as cancelled when it ends); the module then still arrives.
#[test]
fn cancelled_jobs_are_answered_once_as_cancelled() {
    let (policy, store) = (NodePolicy::default(), store());
    let module = test_module_with_job("f");
    let hash = *module.hash().as_bytes();
    let mut state = ConnectionState::default();
    state.run(job(0, &module), 1, &policy, store.get()).unwrap();
    drain(&mut state);
    state.cancel(&[0, 77]);
    let (sent, _) = drain(&mut state);
    assert!(matches!(
        &sent[..],
        [ToClient::Done(JobDone {
            job: 0,
            result: Err(WireError::Cancelled(_)),
            ..
        })]
    ));
    // A new job of the same module does not ask for it again: it is on its way.
    state.run(job(1, &module), 1, &policy, store.get()).unwrap();
    let (sent, _) = drain(&mut state);
    assert!(sent.is_empty(), "{sent:?}");
    state.module_arrived(hash, Ok(module), store.get()).unwrap();
    let (_, submitted) = drain(&mut state);
    assert_eq!(submitted.len(), 1);
    let slot = slot(1);
    state.attach(1, slot.clone());
    state.cancel(&[1]);
    drain(&mut state);
    assert!(slot.cancel_flag().is_cancelled(), "stopped where it runs");
    let finished = slot.wait_until(None).unwrap();
    assert!(state.finished(1, &finished), "answered once");
    let (answer, args) = state.poll_send().expect("its answer");
    assert!(matches!(
        answer,
        ToClient::Done(JobDone {
            result: Err(WireError::Cancelled(_)),
            ..
        })
    ));
    assert_eq!(args, 10);
    assert!(!state.finished(1, &finished));
    assert!(state.poll_send().is_none());
    assert_eq!(state.jobs(), 0);
}

#[test]
fn a_cancel_before_the_slot_is_attached_still_stops_the_job() {
    let (mut state, ..) = submitted(&[0]);
    state.cancel(&[0]);
    let slot = slot(0);
    state.attach(0, slot.clone());
    drain(&mut state);
    assert!(slot.cancel_flag().is_cancelled());
}

/// Draining: the client is told, parked jobs come back at once, new ones too; jobs the
/// node gives up (queued, or stopped at the end of the drain) come back as handed back,
/// while finished ones are reported.
#[test]
fn a_draining_node_hands_back_what_it_will_not_run() {
    let (policy, store) = (NodePolicy::default(), store());
    let stored = test_module_with_job("stored");
    store.insert(stored.clone());
    let missing = test_module_with_job("missing");
    let mut state = ConnectionState::default();
    state.run(job(0, &stored), 1, &policy, store.get()).unwrap();
    state.run(job(1, &stored), 1, &policy, store.get()).unwrap();
    state
        .run(job(2, &missing), 1, &policy, store.get())
        .unwrap();
    drain(&mut state);
    state.drain();
    let (sent, _) = drain(&mut state);
    assert_eq!(
        sent,
        [ToClient::Draining, ToClient::Returned { jobs: vec![2] }]
    );
    state.run(job(3, &stored), 1, &policy, store.get()).unwrap();
    let (sent, submitted) = drain(&mut state);
    assert_eq!(sent, [ToClient::Returned { jobs: vec![3] }]);
    assert!(submitted.is_empty());
    let given_up = Finished::failed(JobError::Cancelled("the server shut down".into()));
    assert!(state.finished(0, &given_up));
    let (sent, _) = drain(&mut state);
    assert_eq!(sent, [ToClient::Returned { jobs: vec![0] }]);
    assert!(state.finished(1, &done_with(Ok(vec![1]))));
    let (answer, _) = state.poll_send().unwrap();
    assert!(matches!(
        answer,
        ToClient::Done(JobDone {
            job: 1,
            result: Ok(_),
            ..
        })
    ));
    // The missing module, still on its way, is taken without complaint.
    assert!(
        state
            .module_arrived(*missing.hash().as_bytes(), Ok(missing), store.get())
            .is_ok()
    );
    assert_eq!(state.jobs(), 0);
}

/// The fault: a job given up by a shutting-down server was handed back before the client
/// was told that the node drains, when the job's callback ran before the driver saw the
/// shutdown. The hand-back now says so first, and the driver's own drain says it once.
#[test]
fn a_job_handed_back_before_the_drain_is_seen_comes_after_the_notice() {
    let (mut state, ..) = submitted(&[0, 1]);
    let given_up = Finished::failed(JobError::Cancelled("the server shut down".into()));
    assert!(state.finished(0, &given_up));
    let sent: Vec<_> = std::iter::from_fn(|| state.poll_send()).collect();
    assert_eq!(
        sent.iter().map(|(message, _)| message).collect::<Vec<_>>(),
        [&ToClient::Draining, &ToClient::Returned { jobs: vec![0] }]
    );
    state.drain();
    assert!(state.finished(1, &given_up));
    let (sent, _) = drain(&mut state);
    assert_eq!(sent, [ToClient::Returned { jobs: vec![1] }]);
}

/// A job's callback sends only the messages at the front: jobs queued for the reader to
/// submit stay with it, and so does an answer behind them (the reader sends it next).
#[test]
fn a_callback_leaves_the_readers_actions_to_the_reader() {
    let (mut state, module, store) = submitted(&[0]);
    state.attach(0, slot(0));
    let policy = NodePolicy::default();
    state.run(job(1, &module), 1, &policy, store.get()).unwrap();
    assert!(state.finished(0, &done_with(Ok(vec![1]))));
    assert!(state.poll_send().is_none(), "a submit is first");
    let (sent, submitted) = drain(&mut state);
    assert_eq!(submitted.len(), 1);
    assert!(matches!(
        &sent[..],
        [ToClient::Done(JobDone { job: 0, .. })]
    ));
}

#[test]
fn a_module_that_does_not_load_fails_its_jobs() {
    let (policy, store) = (NodePolicy::default(), store());
    let module = test_module_with_job("f");
    let hash = *module.hash().as_bytes();
    let mut state = ConnectionState::default();
    state.run(job(0, &module), 1, &policy, store.get()).unwrap();
    drain(&mut state);
    state
        .module_arrived(hash, Err("not wasm".into()), store.get())
        .unwrap();
    let (sent, _) = drain(&mut state);
    assert!(matches!(
        &sent[..],
        [ToClient::Done(JobDone { result: Err(WireError::Module(why)), .. })] if why == "not wasm"
    ));
    assert!(
        state
            .module_arrived([9; 32], Err("x".into()), store.get())
            .is_err()
    );
}

/// The client is told of the preparation of the modules its jobs use, and only those.
#[test]
fn the_preparation_of_a_clients_module_is_told_to_it() {
    let (mut state, module, _) = submitted(&[0]);
    let hash = *module.hash().as_bytes();
    state.preparation([9; 32], Preparation::Started);
    state.preparation(hash, Preparation::Started);
    state.preparation(hash, Preparation::Ended);
    let (sent, _) = drain(&mut state);
    assert_eq!(
        sent,
        [ToClient::Preparing { hash }, ToClient::Prepared { hash }]
    );
}

/// A job of a module the node has, taking `values` by reference.
fn job_taking(id: WireJobId, module: &Module, values: &[&Data]) -> RunJob {
    let mut args = vec![0x90 | values.len() as u8];
    for value in values {
        args.extend_from_slice(&value.reference());
    }
    RunJob {
        args,
        ..job(id, module)
    }
}

fn value(text: &str) -> Data {
    Data::of(bytes::Bytes::from(rmp_serde::to_vec(text).unwrap()))
}

/// Keeps `data` in the store, as the uploader does when it arrives.
fn arrive(store: &TestStores, data: &Data) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let room = runtime
        .block_on(store.data.reserve(data.bytes.len() as u64))
        .unwrap();
    store.data.insert(room, data);
}

/// Jobs taking a value the node lacks wait for it, asked for once; when it arrives they run
/// with it in their arguments' place.
#[test]
fn a_value_is_asked_for_once_and_its_jobs_run_when_it_arrives() {
    let (policy, store) = (NodePolicy::default(), store());
    let module = test_module_with_job("f");
    store.insert(module.clone());
    let (a, b) = (value("a"), value("b"));
    let mut state = ConnectionState::default();
    state
        .run(job_taking(0, &module, &[&a]), 1, &policy, store.get())
        .unwrap();
    state
        .run(job_taking(1, &module, &[&a, &b]), 2, &policy, store.get())
        .unwrap();
    let (sent, submitted) = drain(&mut state);
    assert_eq!(
        sent,
        [
            ToClient::NeedData { hash: a.hash },
            ToClient::NeedData { hash: b.hash }
        ]
    );
    assert!(submitted.is_empty());
    assert!(state.expects_data(&a.hash, a.bytes.len() as u64).is_ok());
    assert!(state.expects_data(&a.hash, 1).is_err(), "another length");
    assert!(state.expects_data(&[7; 32], 1).is_err(), "not asked for");
    arrive(&store, &a);
    state.data_arrived(a.hash, store.get());
    let (_, submitted) = drain(&mut state);
    assert_eq!(submitted.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [0]);
    arrive(&store, &b);
    state.data_arrived(b.hash, store.get());
    let mut submissions = Vec::new();
    while let Some(action) = state.poll_action() {
        if let Action::Submit(submission) = action {
            submissions.push(submission);
        }
    }
    assert_eq!(submissions.len(), 1);
    let args: Vec<u8> = submissions[0].args.segments().concat();
    let taken: (String, String) = rmp_serde::from_slice(&args).unwrap();
    assert_eq!(taken, ("a".to_string(), "b".to_string()));
}

/// A value whose waiting jobs were all cancelled is asked for again by a new job; if the
/// first transfer comes after all, it is welcome.
#[test]
fn a_value_nobody_waits_for_is_asked_again_and_still_welcome() {
    let (policy, store) = (NodePolicy::default(), store());
    let module = test_module_with_job("f");
    store.insert(module.clone());
    let a = value("a");
    let mut state = ConnectionState::default();
    state
        .run(job_taking(0, &module, &[&a]), 1, &policy, store.get())
        .unwrap();
    drain(&mut state);
    state.cancel(&[0]);
    drain(&mut state);
    assert!(
        state.expects_data(&a.hash, a.bytes.len() as u64).is_ok(),
        "abandoned, welcome"
    );
    state
        .run(job_taking(1, &module, &[&a]), 1, &policy, store.get())
        .unwrap();
    let (sent, _) = drain(&mut state);
    assert_eq!(sent, [ToClient::NeedData { hash: a.hash }], "asked again");
}

/// A value larger than the store, or a job reference (which a client never sends), fails
/// the job at once.
#[test]
fn values_too_large_and_job_references_are_refused() {
    let store = TestStores {
        data: DataStore::new(4),
        ..store()
    };
    let policy = NodePolicy::default();
    let module = test_module_with_job("f");
    store.insert(module.clone());
    let mut state = ConnectionState::default();
    state
        .run(
            job_taking(0, &module, &[&value("too long")]),
            1,
            &policy,
            store.get(),
        )
        .unwrap();
    let mut reference = vec![0x91];
    reference.extend_from_slice(&refs::job_ref(1, 2));
    let job_ref = RunJob {
        args: reference,
        ..job(1, &module)
    };
    state.run(job_ref, 2, &policy, store.get()).unwrap();
    let (sent, submitted) = drain(&mut state);
    assert!(submitted.is_empty());
    assert!(
        matches!(
            &sent[..],
            [
                ToClient::Done(JobDone {
                    job: 0,
                    result: Err(WireError::DataTooLarge { limit: 4, .. }),
                    ..
                }),
                ToClient::Done(JobDone {
                    job: 1,
                    result: Err(WireError::BadArguments(_)),
                    ..
                }),
            ]
        ),
        "{sent:?}"
    );
}
