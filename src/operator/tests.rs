//! Reconcile scenarios against a mocked API server (tower-test): every request the controller
//! makes is checked in order, with the body it sends, and answered.
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::{Context, FINALIZER, backup};
use crate::api::KafkaBackup;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    (
        Arc::new(Context::new(client, "/tmp/kbo-test-pvc".into())),
        handle,
    )
}

fn kb(spec_extra: Value, status: Value, finalizer: bool) -> Value {
    let mut spec = json!({
        "kafkaCluster": {"bootstrapServers": ["127.0.0.1:1"], "connection": {"connectTimeoutMs": 500}},
        "topics": ["orders"],
        "storage": {"storageType": "filesystem", "filesystem": {"path": "/tmp/kbo-mock-never-written"}}
    });
    spec.as_object_mut()
        .unwrap()
        .extend(spec_extra.as_object().unwrap().clone());
    json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaBackup",
        "metadata": {
            "name": "b", "namespace": "default", "uid": "u-1", "generation": 2, "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": if finalizer { json!([FINALIZER]) } else { json!([]) }
        },
        "spec": spec,
        "status": status
    })
}

/// Takes the next request, checks method and path, hands its body to `check`, answers `reply`.
async fn expect(
    h: &mut Handle,
    method: Method,
    path: &str,
    check: impl FnOnce(&Value),
    reply: Value,
) {
    expect_code(h, method, path, check, 200, reply).await
}

async fn expect_code(
    h: &mut Handle,
    method: Method,
    path: &str,
    check: impl FnOnce(&Value),
    code: u16,
    reply: Value,
) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), h.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
        .expect("the client is gone");
    assert_eq!(req.method(), method, "{}", req.uri());
    assert!(
        req.uri().path().ends_with(path),
        "expected {method} …{path}, got {}",
        req.uri()
    );
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    check(&body);
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
}

/// A status write: the fresh GET of the status (answered `reply`), then the server-side apply
/// PATCH, whose body `check` inspects.
async fn expect_status_patch(h: &mut Handle, path: &str, check: impl FnOnce(&Value), reply: Value) {
    expect(h, Method::GET, path, |_| {}, reply.clone()).await;
    expect(h, Method::PATCH, path, check, reply).await
}

fn obj(v: &Value) -> Arc<KafkaBackup> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

const KB_PATH: &str = "/apis/kafka.oso.sh/v1alpha1/namespaces/default/kafkabackups/b";

#[tokio::test]
async fn a_new_resource_gets_the_finalizer_first() {
    let (ctx, mut h) = context();
    let o = kb(json!({}), json!(null), false);
    let reply = kb(json!({}), json!(null), true);
    let server = tokio::spawn(async move {
        expect(
            &mut h,
            Method::PATCH,
            KB_PATH,
            |b| assert!(b.to_string().contains(FINALIZER), "{b}"),
            reply,
        )
        .await;
    });
    backup::reconcile(obj(&o), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_malformed_schedule_fails_with_the_field_named_and_a_warning_event() {
    let (ctx, mut h) = context();
    let o = kb(json!({"schedule": "every day please"}), json!(null), true);
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{KB_PATH}/status"),
            |b| {
                assert_eq!(b["status"]["phase"], "Failed", "{b}");
                assert!(
                    b["status"]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("spec.schedule:"),
                    "{b}"
                );
                assert_eq!(b["status"]["observedGeneration"], 2);
                assert_eq!(b["status"]["conditions"][0]["reason"], "InvalidSpec");
            },
            o2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| assert_eq!(b["reason"], "InvalidSpec", "{b}"),
            json!({}),
        )
        .await;
    });
    backup::reconcile(obj(&o), ctx).await.unwrap();
    server.await.unwrap();
}

/// `kubectl get` tells the truth from the first second (issue 10): a scheduled KafkaBackup
/// waiting for its first tick is Ready (phase), with a Ready=True/Scheduled condition,
/// observedGeneration and the next run time.
#[tokio::test]
async fn a_scheduled_backup_waiting_for_its_first_tick_says_so() {
    let (ctx, mut h) = context();
    let mut o = kb(json!({"schedule": "0 0 0 1 1 *"}), json!(null), true);
    // created now: the yearly tick is far ahead
    o["metadata"]["creationTimestamp"] = json!(jiff::Timestamp::now().to_string());
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{KB_PATH}/status"),
            |b| {
                let st = &b["status"];
                assert_eq!(st["phase"], "Ready", "{b}");
                assert_eq!(st["observedGeneration"], 2, "{b}");
                assert!(st["nextScheduledBackup"].is_string(), "{b}");
                let c = &st["conditions"][0];
                assert_eq!(
                    (
                        c["type"].as_str(),
                        c["status"].as_str(),
                        c["reason"].as_str()
                    ),
                    (Some("Ready"), Some("True"), Some("Scheduled")),
                    "{b}"
                );
                assert!(
                    c["message"]
                        .as_str()
                        .unwrap()
                        .contains("first scheduled run"),
                    "{b}"
                );
            },
            o2,
        )
        .await;
    });
    backup::reconcile(obj(&o), ctx).await.unwrap();
    server.await.unwrap();
}

/// Paused clock: the run's backoff between attempts (5 s, 15 s) passes at once.
#[tokio::test(start_paused = true)]
async fn a_due_tick_starts_one_run_records_the_tick_and_retries_then_reports_the_failure() {
    let (ctx, mut h) = context();
    // every 10 s; the last acted-on tick is long past, so the latest tick is due now
    let o = kb(
        json!({"schedule": "*/10 * * * * *"}),
        json!({"lastScheduleTime": "2026-01-01T00:00:00Z"}),
        true,
    );
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect(
            &mut h,
            Method::GET,
            &format!("{KB_PATH}/status"),
            |_| {},
            o2.clone(),
        )
        .await;
        let mut tick = String::new();
        expect(
            &mut h,
            Method::PATCH,
            &format!("{KB_PATH}/status"),
            |b| {
                assert_eq!(b["status"]["phase"], "Running", "{b}");
                tick = b["status"]["lastScheduleTime"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(
                    tick.ends_with("0Z") && tick != "2026-01-01T00:00:00Z",
                    "{tick}"
                );
            },
            o2.clone(),
        )
        .await;
        // The Scheduled Event, then the run in the pool: the broker is unreachable, which is
        // transient, so each failed attempt is retried (a Retried Event) until the last one
        // fails and the status says why. The run's first Event may overtake Scheduled.
        let mut reasons = Vec::new();
        let mut failed_message = None;
        while !reasons.contains(&"Failed".to_string()) {
            let (req, send) = tokio::time::timeout(Duration::from_secs(120), h.next_request())
                .await
                .expect("the run goes on to fail")
                .expect("the client is gone");
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reply = if path.contains("/events") {
                if method == Method::PATCH {
                    // kube's Recorder sends a repeated Event as a series update of the first
                    reasons.push("Retried".into());
                    json!({"metadata": {"name": path.rsplit('/').next().unwrap()}})
                } else {
                    assert_eq!(method, Method::POST);
                    reasons.push(body["reason"].as_str().unwrap().to_string());
                    if body["reason"] == "Retried" {
                        let note = body["note"].as_str().unwrap();
                        assert!(
                            note.contains("127.0.0.1:1") && note.contains("resumes"),
                            "{note}"
                        );
                    }
                    body.clone()
                }
            } else {
                assert!(
                    path.ends_with(&format!("{KB_PATH}/status")),
                    "{method} {path}"
                );
                if method == Method::PATCH {
                    assert_eq!(body["status"]["phase"], "Failed", "{body}");
                    failed_message = body["status"]["message"].as_str().map(str::to_string);
                }
                o2.clone()
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        let mut sorted = reasons.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["Failed", "Retried", "Retried", "Scheduled"],
            "events in order: {reasons:?}"
        );
        assert_eq!(reasons.last().unwrap(), "Failed");
        let m = failed_message.expect("the final status was written");
        assert!(
            m.contains("127.0.0.1:1")
                && m.contains("bootstrapServers")
                && m.contains("gave up after 3 attempts"),
            "{m}"
        );
        tick
    });
    let action = backup::reconcile(obj(&o), ctx.clone()).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(5))
    );
    let tick = server.await.unwrap();

    // reconciling again with the tick recorded fires nothing: no Start, no event (and no
    // backup sync: its window is in status)
    let (ctx2, mut h2) = context();
    let after = kb(
        json!({"schedule": "*/10 * * * * *"}),
        json!({"lastScheduleTime": tick, "nextScheduledBackup": null, "recoverableRuns": 0}),
        true,
    );
    let a2 = after.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h2,
            &format!("{KB_PATH}/status"),
            |b| {
                assert_ne!(
                    b["status"]["phase"], "Running",
                    "no second run for the same tick: {b}"
                );
                assert!(b["status"]["nextScheduledBackup"].is_string(), "{b}");
            },
            a2,
        )
        .await;
        // no further request (no Event, no run): either nothing comes, or the client is gone
        let more = tokio::time::timeout(Duration::from_millis(300), h2.next_request()).await;
        assert!(
            !matches!(more, Ok(Some(_))),
            "no further request (no Event, no run)"
        );
    });
    let action = backup::reconcile(obj(&after), ctx2).await.unwrap();
    assert!(matches!(action, a if a != kube::runtime::controller::Action::await_change()));
    server.await.unwrap();
}

#[tokio::test]
async fn a_restore_whose_backup_does_not_exist_yet_waits_pending_naming_backup_ref() {
    // GitOps applies a KafkaRestore with (or before) its KafkaBackup: the restore waits in
    // Pending, saying for what, instead of failing; deleting it cancels the wait.
    let (ctx, mut h) = context();
    let kr = json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaRestore",
        "metadata": {"name": "r", "namespace": "default", "uid": "u-2", "generation": 1, "resourceVersion": "3", "finalizers": [FINALIZER]},
        "spec": {"backupRef": {"name": "production-backup"}, "kafkaCluster": {"bootstrapServers": ["127.0.0.1:1"]}, "pitr": {"endTime": "2024-12-01T12:00:00Z"}}
    });
    let k2 = kr.clone();
    let path = "/apis/kafka.oso.sh/v1alpha1/namespaces/default/kafkarestores/r";
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{path}/status"),
            |b| assert_eq!(b["status"]["phase"], "Running", "{b}"),
            k2.clone(),
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| assert_eq!(b["reason"], "Started", "{b}"),
            json!({}),
        )
        .await;
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
        expect_code(
            &mut h,
            Method::GET,
            "/kafkabackups/production-backup",
            |_| {},
            404,
            not_found,
        )
        .await;
        expect_status_patch(
            &mut h,
            &format!("{path}/status"),
            |b| {
                let st = &b["status"];
                assert_eq!(st["phase"], "Pending", "{b}");
                assert!(
                    st["message"]
                        .as_str()
                        .unwrap()
                        .contains("spec.backupRef.name: no KafkaBackup \"production-backup\""),
                    "{b}"
                );
                let conds = st["conditions"].as_array().unwrap();
                assert!(
                    conds.iter().any(|c| c["type"] == "Ready"
                        && c["status"] == "False"
                        && c["reason"] == "WaitingForBackup"),
                    "{b}"
                );
            },
            k2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| {
                assert_eq!(b["reason"], "Waiting", "{b}");
                assert_eq!(b["type"], "Normal", "{b}");
            },
            json!({}),
        )
        .await;
        h
    });
    let r: Arc<crate::api::KafkaRestore> = Arc::new(serde_json::from_value(kr).unwrap());
    super::restore::reconcile(r.clone(), ctx.clone())
        .await
        .unwrap();
    let mut h = server.await.unwrap();
    // still waiting (the next look is WAIT_EVERY away), not failed
    let key = super::obj_key(&*r);
    assert!(
        matches!(ctx.pool.state(&key), super::decide::PoolState::Running(_)),
        "{:?}",
        ctx.pool.state(&key)
    );
    ctx.pool.cancel_all().await;
    assert!(
        ctx.pool.state(&key) == super::decide::PoolState::Idle,
        "cancel ends the wait (and waits for the task)"
    );
    // a cancelled wait writes nothing more (no Failed status)
    let more = tokio::time::timeout(Duration::from_millis(300), h.next_request()).await;
    assert!(more.is_err(), "unexpected request after cancel");
}

#[tokio::test]
async fn a_follower_never_writes_or_runs() {
    let (svc, mut h) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut ctx = Context::new(Client::new(svc, "default"), "/tmp/kbo-test-pvc".into());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    ctx.leader = rx;
    let o = kb(
        json!({"schedule": "*/10 * * * * *"}),
        json!({"lastScheduleTime": "2026-01-01T00:00:00Z"}),
        false,
    );
    let action = backup::reconcile(obj(&o), Arc::new(ctx)).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(5))
    );
    let more = tokio::time::timeout(Duration::from_millis(200), h.next_request()).await;
    assert!(!matches!(more, Ok(Some(_))), "a follower sent a request");
}

#[tokio::test]
async fn a_tick_that_comes_while_a_run_is_going_is_recorded_as_skipped() {
    let (ctx, mut h) = context();
    let o = kb(
        json!({"schedule": "*/10 * * * * *"}),
        json!({"phase": "Running", "lastScheduleTime": "2026-01-01T00:00:00Z"}),
        true,
    );
    // the previous tick's run is still executing in this operator's pool
    let key = super::obj_key(&*obj(&o));
    assert!(ctx.pool.start(
        key.clone(),
        "20260101T000000.000Z".into(),
        |cancel, _| async move { cancel.cancelled().await }
    ));
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{KB_PATH}/status"),
            |b| {
                assert_eq!(
                    b["status"]["phase"], "Running",
                    "the run's phase is untouched: {b}"
                );
                let tick = b["status"]["lastScheduleTime"].as_str().unwrap();
                assert_ne!(tick, "2026-01-01T00:00:00Z", "the skipped tick is recorded");
            },
            o2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| {
                assert_eq!(b["reason"], "Skipped", "{b}");
                assert!(b["note"].as_str().unwrap().contains("still going"), "{b}");
            },
            json!({}),
        )
        .await;
    });
    backup::reconcile(obj(&o), ctx.clone()).await.unwrap();
    server.await.unwrap();
    assert_eq!(
        ctx.pool.state(&key),
        super::decide::PoolState::Running("20260101T000000.000Z".into()),
        "the running run is neither replaced nor doubled"
    );
    ctx.pool.cancel(&key).await;
}

#[tokio::test]
async fn a_run_left_running_by_a_restart_is_started_again_with_a_retried_event() {
    let (ctx, mut h) = context();
    // a one-shot backup whose status says Running, in an operator with an empty pool
    let o = kb(
        json!({}),
        json!({"phase": "Running", "observedGeneration": 2, "backupId": "20260101T000000.000Z"}),
        true,
    );
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{KB_PATH}/status"),
            |b| assert_eq!(b["status"]["phase"], "Running", "{b}"),
            o2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| {
                assert_eq!(b["reason"], "Retried", "{b}");
                assert!(
                    b["note"]
                        .as_str()
                        .unwrap()
                        .contains("resumes from its checkpoint"),
                    "{b}"
                );
            },
            json!({}),
        )
        .await;
    });
    backup::reconcile(obj(&o), ctx.clone()).await.unwrap();
    server.await.unwrap();
    let key = super::obj_key(&*obj(&o));
    assert_eq!(
        ctx.pool.state(&key),
        super::decide::PoolState::Running("generation-2".into()),
        "exactly one run was started again"
    );
    ctx.pool.cancel(&key).await;
}

/// `/readyz` stayed 503 for ever on a real cluster: the controller's runner and the readiness
/// task both waited on one store, and kube-runtime's one-shot readiness signal wakes only its
/// last waiter. `store_synced` must resolve however many tasks wait.
#[tokio::test]
async fn readiness_resolves_while_the_controller_also_waits_on_the_store() {
    use kube::runtime::{reflector, watcher};
    let (reader, mut writer) = reflector::store::<crate::api::KafkaBackup>();
    // the readiness task starts waiting first, then the controller's runner
    let r1 = reader.clone();
    let readiness = tokio::spawn(async move { super::store_synced(&r1).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r2 = reader.clone();
    let runner = tokio::spawn(async move { r2.wait_until_ready().await.is_ok() });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let ok = tokio::time::timeout(std::time::Duration::from_secs(3), readiness)
        .await
        .expect("readiness resolves after InitDone although another task waits too")
        .unwrap();
    assert!(ok);
    assert!(runner.await.unwrap());
}

fn kor(spec_extra: Value, status: Value) -> Value {
    let mut spec = json!({
        "kafkaCluster": {"bootstrapServers": ["127.0.0.1:1"], "connection": {"connectTimeoutMs": 500}},
        "consumerGroups": ["orders-app"],
        "resetStrategy": "to-earliest"
    });
    spec.as_object_mut()
        .unwrap()
        .extend(spec_extra.as_object().unwrap().clone());
    json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaOffsetReset",
        "metadata": {
            "name": "r", "namespace": "default", "uid": "u-2", "generation": 3, "resourceVersion": "9",
            "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": [FINALIZER]
        },
        "spec": spec,
        "status": status
    })
}

const KOR_PATH: &str = "/apis/kafka.oso.sh/v1alpha1/namespaces/default/kafkaoffsetresets/r";

/// The generic one-shot controller: an invalid KafkaOffsetReset fails with the field named,
/// once, and a Warning Event.
#[tokio::test]
async fn an_invalid_offset_reset_fails_with_the_field_named() {
    let (ctx, mut h) = context();
    let o = kor(json!({"resetStrategy": "to-offset"}), json!(null));
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{KOR_PATH}/status"),
            |b| {
                assert_eq!(b["status"]["phase"], "Failed", "{b}");
                assert!(
                    b["status"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("spec.resetOffset"),
                    "{b}"
                );
                assert_eq!(b["status"]["observedGeneration"], 3);
            },
            o2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| assert_eq!(b["reason"], "InvalidSpec", "{b}"),
            json!({}),
        )
        .await;
    });
    let r: crate::api::KafkaOffsetReset = serde_json::from_value(o).unwrap();
    super::oneshot::reconcile(Arc::new(r), ctx).await.unwrap();
    server.await.unwrap();
}

/// A KafkaOffsetReset that completed for its generation is left alone: no request at all.
#[tokio::test]
async fn a_completed_offset_reset_is_not_run_again() {
    let (ctx, mut h) = context();
    let o = kor(
        json!({}),
        json!({"phase": "Completed", "observedGeneration": 3, "groupsTotal": 1}),
    );
    let r: crate::api::KafkaOffsetReset = serde_json::from_value(o).unwrap();
    super::oneshot::reconcile(Arc::new(r), ctx).await.unwrap();
    // closed (None) or silent (timeout): either way no request came
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_millis(200), h.next_request()).await,
            Ok(Some(_))
        ),
        "no request"
    );
}

/// A new generation starts a run: the status goes Running with observedGeneration, and a
/// Started Event is published.
#[tokio::test]
async fn a_valid_offset_reset_starts_running_its_generation() {
    let (ctx, mut h) = context();
    let o = kor(json!({}), json!(null));
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        expect_status_patch(
            &mut h,
            &format!("{KOR_PATH}/status"),
            |b| {
                assert_eq!(b["status"]["phase"], "Running", "{b}");
                assert_eq!(b["status"]["observedGeneration"], 3);
                assert_eq!(b["status"]["conditions"][0]["type"], "Progressing");
            },
            o2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| assert_eq!(b["reason"], "Started", "{b}"),
            json!({}),
        )
        .await;
    });
    let r: crate::api::KafkaOffsetReset = serde_json::from_value(o).unwrap();
    let ctx2 = ctx.clone();
    super::oneshot::reconcile(Arc::new(r), ctx).await.unwrap();
    server.await.unwrap();
    ctx2.pool.cancel_all().await;
}

fn kbv(spec_extra: Value, status: Value) -> Value {
    let mut spec = json!({"backupRef": {"name": "vb"}});
    spec.as_object_mut()
        .unwrap()
        .extend(spec_extra.as_object().unwrap().clone());
    json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaBackupValidation",
        "metadata": {
            "name": "v", "namespace": "default", "uid": "u-3", "generation": 1, "resourceVersion": "11",
            "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": [FINALIZER]
        },
        "spec": spec,
        "status": status
    })
}

const KBV_PATH: &str = "/apis/kafka.oso.sh/v1alpha1/namespaces/default/kafkabackupvalidations/v";

/// A 10-second validation schedule: the due tick starts one run (status Running with
/// lastScheduleTime = the tick and nextScheduledValidation = the tick + 10 s, a Started Event);
/// the run fails naming backupRef (the KafkaBackup does not exist) and is reported Failed; a
/// reconcile after it, in the same tick, starts nothing: never twice per tick.
#[tokio::test]
async fn a_scheduled_validation_runs_once_per_tick() {
    let (ctx, mut h) = context();
    let o = kbv(json!({"schedule": "*/10 * * * * *"}), json!(null));
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        let mut tick = String::new();
        expect_status_patch(
            &mut h,
            &format!("{KBV_PATH}/status"),
            |b| {
                assert_eq!(b["status"]["phase"], "Running", "{b}");
                tick = b["status"]["lastScheduleTime"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let t: jiff::Timestamp = tick.parse().unwrap();
                let next: jiff::Timestamp = b["status"]["nextScheduledValidation"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(t.as_second() % 10, 0, "a tick of */10: {t}");
                assert_eq!(next.as_second() - t.as_second(), 10, "{b}");
            },
            o2.clone(),
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| assert_eq!(b["reason"], "Started", "{b}"),
            json!({}),
        )
        .await;
        // the run: the KafkaBackup is missing
        expect_code(
            &mut h,
            Method::GET,
            "/kafkabackups/vb",
            |_| {},
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
        )
        .await;
        let mut reported = false;
        while !reported {
            let (req, send) = tokio::time::timeout(Duration::from_secs(10), h.next_request())
                .await
                .expect("the failure is reported")
                .expect("client alive");
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if method == Method::PATCH && path.ends_with("/status") {
                assert_eq!(body["status"]["phase"], "Failed", "{body}");
                assert!(
                    body["status"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("spec.backupRef.name"),
                    "{body}"
                );
                reported = true;
            }
            let reply = if path.ends_with("/events") {
                json!({})
            } else {
                o2.clone()
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        tick
    });
    let v: crate::api::validation::KafkaBackupValidation = serde_json::from_value(o).unwrap();
    super::oneshot::reconcile(Arc::new(v), ctx.clone())
        .await
        .unwrap();
    let tick = server.await.unwrap();
    // the pool task has finished; the same tick again: nothing starts
    for _ in 0..50 {
        if !matches!(
            ctx.pool
                .state(&("KafkaBackupValidation".into(), "default".into(), "v".into())),
            super::decide::PoolState::Running(_)
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = kbv(
        json!({"schedule": "*/10 * * * * *"}),
        json!({"phase": "Failed", "observedGeneration": 1, "lastScheduleTime": tick,
               "nextScheduledValidation": (tick.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(10)).to_string()}),
    );
    let v: crate::api::validation::KafkaBackupValidation = serde_json::from_value(after).unwrap();
    let started = ctx
        .pool
        .state(&("KafkaBackupValidation".into(), "default".into(), "v".into()));
    let action = super::oneshot::decide_scheduled(
        v.status.as_ref().map(|s| &s.common),
        Some(super::oneshot::Phase::Failed),
        Some(tick.parse().unwrap()),
        &started,
        Ok(()),
        false,
        &super::schedule::ScheduleState {
            due: Some(tick.parse().unwrap()),
            missed: 0,
            next: None,
        },
        Some(1),
    );
    assert!(
        matches!(action, super::oneshot::ScheduledAction::Sleep { .. }),
        "the tick that ran is never started again, even when a stale evaluation says it is due: {action:?}"
    );
}

/// Issue 15, class 12: a run task that panics (here as reqwest did in an image without CA
/// certificates) must not leave the resource Running for ever. Each attempt's panic is an
/// `internal` failure retried by the run policy (Retried Events); then the status is Failed
/// with category `internal` and the panic's message, a Failed Event is sent and the failure
/// metric counts the run. Paused clock: the backoff passes at once.
#[tokio::test(start_paused = true)]
async fn a_run_task_that_panics_ends_failed_internal_with_an_event_and_the_metric() {
    let (ctx, mut h) = context();
    let name = super::tests_hooks::PANICS;
    let mut o = kb(json!({}), json!(null), true);
    o["metadata"]["name"] = json!(name);
    let path = format!("/apis/kafka.oso.sh/v1alpha1/namespaces/default/kafkabackups/{name}/status");
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        let mut reasons = Vec::new();
        let mut phases = Vec::new();
        let mut failed_message = None;
        while !reasons.contains(&"Failed".to_string()) {
            let (req, send) = tokio::time::timeout(Duration::from_secs(120), h.next_request())
                .await
                .expect("the run goes on to fail: a panic must not hang it")
                .expect("the client is gone");
            let (method, p) = (req.method().clone(), req.uri().path().to_string());
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reply = if p.contains("/events") {
                if method == Method::PATCH {
                    reasons.push("Retried".into());
                    json!({"metadata": {"name": p.rsplit('/').next().unwrap()}})
                } else {
                    reasons.push(body["reason"].as_str().unwrap().to_string());
                    if body["reason"] == "Failed" {
                        let note = body["note"].as_str().unwrap();
                        assert!(note.starts_with("[internal]"), "{note}");
                    }
                    body.clone()
                }
            } else {
                assert!(p.ends_with(&path), "{method} {p}");
                if method == Method::PATCH
                    && let Some(ph) = body["status"]["phase"].as_str()
                {
                    phases.push(ph.to_string());
                    if ph == "Failed" {
                        failed_message = body["status"]["message"].as_str().map(str::to_string);
                    }
                }
                o2.clone()
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        (reasons, phases, failed_message)
    });
    backup::reconcile(obj(&o), ctx.clone()).await.unwrap();
    let (reasons, phases, failed) = server.await.unwrap();
    assert_eq!(
        phases.first().map(String::as_str),
        Some("Running"),
        "{phases:?}"
    );
    assert_eq!(
        phases.last().map(String::as_str),
        Some("Failed"),
        "{phases:?}"
    );
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["Failed", "Retried", "Retried", "Started"],
        "{reasons:?}"
    );
    let m = failed.expect("the final status was written");
    assert!(
        m.starts_with("[internal]")
            && m.contains("No CA certificates were loaded")
            && m.contains("gave up after 3 attempts"),
        "{m}"
    );
    // the failure metric counts the run
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &ctx.metrics.registry).unwrap();
    assert!(
        text.lines().any(|l| l.contains("result=\"failed\"")
            && l.contains("kind=\"KafkaBackup\"")
            && l.ends_with(" 1")),
        "{text}"
    );
    // the pool holds no running task: the next decision follows the status (Failed)
    let key = super::obj_key(&*obj(&o));
    assert!(
        !matches!(ctx.pool.state(&key), super::decide::PoolState::Running(_)),
        "{:?}",
        ctx.pool.state(&key)
    );
}

/// Answers every request (status reads and writes with `reply`, Events with their body) until
/// a Failed status and a Failed Event have both gone by; returns the Failed status message.
async fn serve_until_failed(h: &mut Handle, reply: Value) -> String {
    let (mut status_failed, mut event_failed) = (None, false);
    while status_failed.is_none() || !event_failed {
        let (req, send) = tokio::time::timeout(Duration::from_secs(120), h.next_request())
            .await
            .expect("the run goes on to fail")
            .expect("the client is gone");
        let (method, p) = (req.method().clone(), req.uri().path().to_string());
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let answer = if p.contains("/events") {
            event_failed |= body["reason"] == "Failed";
            if method == Method::PATCH {
                json!({"metadata": {"name": p.rsplit('/').next().unwrap()}})
            } else {
                body.clone()
            }
        } else {
            if method == Method::PATCH && body["status"]["phase"] == "Failed" {
                status_failed = body["status"]["message"].as_str().map(str::to_string);
            }
            reply.clone()
        };
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
    }
    status_failed.unwrap()
}

fn api_error(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

/// Issue 17: a status write that loses a race (409 Conflict) is made again from a fresh read,
/// and the reconcile goes on (its Event); nothing is counted as a failed write.
#[tokio::test(start_paused = true)]
async fn a_status_write_that_conflicts_is_retried_from_a_fresh_read() {
    let (ctx, mut h) = context();
    let o = kor(json!({"resetStrategy": "to-offset"}), json!(null));
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        let path = format!("{KOR_PATH}/status");
        expect(&mut h, Method::GET, &path, |_| {}, o2.clone()).await;
        expect_code(
            &mut h,
            Method::PATCH,
            &path,
            |_| {},
            409,
            api_error(409, "Conflict"),
        )
        .await;
        expect_status_patch(
            &mut h,
            &path,
            |b| assert_eq!(b["status"]["phase"], "Failed", "{b}"),
            o2,
        )
        .await;
        expect(
            &mut h,
            Method::POST,
            "/events",
            |b| assert_eq!(b["reason"], "InvalidSpec", "{b}"),
            json!({}),
        )
        .await;
    });
    let r: crate::api::KafkaOffsetReset = serde_json::from_value(o).unwrap();
    super::oneshot::reconcile(Arc::new(r), ctx.clone())
        .await
        .unwrap();
    server.await.unwrap();
    assert!(
        !ctx.metrics
            .encode()
            .contains("kbo_status_write_failures_total{"),
        "{}",
        ctx.metrics.encode()
    );
}

/// Issue 17: a status write that keeps failing (503) is retried a few times, then logged and
/// counted in `kbo_status_write_failures_total{kind}`; the reconcile fails, and its error is
/// counted with its category (`error="unavailable"`, next to the `category` label as before).
#[tokio::test(start_paused = true)]
async fn a_status_write_that_keeps_failing_is_counted_and_the_reconcile_error_has_its_category() {
    let (ctx, mut h) = context();
    let o = kor(json!({"resetStrategy": "to-offset"}), json!(null));
    let o2 = o.clone();
    let server = tokio::spawn(async move {
        let path = format!("{KOR_PATH}/status");
        for _ in 0..=super::status::WRITE_RETRIES {
            expect(&mut h, Method::GET, &path, |_| {}, o2.clone()).await;
            expect_code(
                &mut h,
                Method::PATCH,
                &path,
                |_| {},
                503,
                api_error(503, "ServiceUnavailable"),
            )
            .await;
        }
        // no Event for a status that was not written
        let more = tokio::time::timeout(Duration::from_millis(300), h.next_request()).await;
        assert!(
            !matches!(more, Ok(Some(_))),
            "a request after the last retry"
        );
    });
    let r: Arc<crate::api::KafkaOffsetReset> = Arc::new(serde_json::from_value(o).unwrap());
    let err = super::oneshot::reconcile(r.clone(), ctx.clone())
        .await
        .unwrap_err();
    server.await.unwrap();
    assert_eq!(err.category(), "unavailable", "{err}");
    super::error_policy(r, &err, ctx.clone());
    let text = ctx.metrics.encode();
    assert!(
        text.contains("kbo_status_write_failures_total{kind=\"KafkaOffsetReset\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kbo_reconcile_errors_total{kind=\"KafkaOffsetReset\",category=\"finalizer\",error=\"unavailable\"} 1"),
        "{text}"
    );
}

/// Issue 17: a failed run is counted in `kbo_runs_total` with the category of its failure
/// (here the broker is unreachable: retried, then failed), as `/metrics` shows it.
#[tokio::test(start_paused = true)]
async fn a_failed_run_is_counted_with_its_category_in_metrics() {
    let (ctx, mut h) = context();
    let o = kor(json!({}), json!(null));
    let o2 = o.clone();
    let server = tokio::spawn(async move { serve_until_failed(&mut h, o2).await });
    let r: crate::api::KafkaOffsetReset = serde_json::from_value(o).unwrap();
    super::oneshot::reconcile(Arc::new(r), ctx.clone())
        .await
        .unwrap();
    let message = server.await.unwrap();
    assert!(message.starts_with("[broker-unreachable]"), "{message}");
    let text = ctx.metrics.encode();
    assert!(
        text.contains("kbo_runs_total{kind=\"KafkaOffsetReset\",resource_namespace=\"default\",result=\"failed\",category=\"broker-unreachable\"} 1"),
        "{text}"
    );
}
