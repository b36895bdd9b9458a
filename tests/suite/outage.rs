//! A database outage under a running server, on a PostgreSQL server of the
//! test's own that it stops and starts: health says so at once, calls fail
//! fast with UNAVAILABLE (which clients retry) instead of hanging until
//! their deadline, nothing acknowledged is lost, and the server recovers by
//! itself when the database is back.

use std::time::{Duration, Instant};

use mediation_proto::v1 as pb;
use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
use mediation_tests::cluster::Cluster;
use mediation_tests::server::TestServer;
use mediation_tests::{TestDb, guard};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const VILLAGE: &str = "990101101201";

/// The deadline a careful partner sets on each call.
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);

fn report(n: usize) -> Request<pb::ReportDisputeRequest> {
    let mut request = Request::new(pb::ReportDisputeRequest {
        request_id: format!("outage-{n}"),
        dispute_id: format!("d-{n}"),
        actor_id: "grid-7".into(),
        division_code: VILLAGE.into(),
        grid: String::new(),
        summary: "Neighbours quarrel over a wall".into(),
    });
    request.set_timeout(CLIENT_DEADLINE);
    request
}

/// Reads the health stream until it reports `wanted`.
async fn until(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: ServingStatus,
) {
    while let Some(update) = stream.message().await.unwrap() {
        if update.status() == wanted {
            return;
        }
    }
    panic!("the health stream ended before reporting {wanted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_reported_failed_fast_and_recovered_from() {
    let Some(cluster) = Cluster::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the outage test: PostgreSQL's initdb and pg_ctl were not found"
        );
        eprintln!("skipping the outage test: PostgreSQL's initdb and pg_ctl are not installed");
        return;
    };
    guard(async {
        let db = TestDb::on_cluster(&cluster, "outage").await;
        let server = TestServer::start(&db, false).await;
        let mut disputes = DisputeServiceClient::new(server.channel());
        let mut health = HealthClient::new(server.channel());
        let mut watch = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        until(&mut watch, ServingStatus::Serving).await;

        // Several calls at once, so that the pool holds several connections
        // that the outage will leave dead.
        let before: Vec<_> = (0..12)
            .map(|n| {
                let mut client = disputes.clone();
                tokio::spawn(async move { client.report_dispute(report(n)).await })
            })
            .collect();
        for call in before {
            call.await.unwrap().unwrap();
        }
        cluster.halt();
        let halted = Instant::now();
        until(&mut watch, ServingStatus::NotServing).await;
        // Printed, not asserted: the bound is the engine's (about 2 s), and
        // a loaded test machine must not fail the test for being slow.
        eprintln!(
            "health NOT_SERVING {} ms after the database stopped",
            halted.elapsed().as_millis()
        );
        for n in 100..103 {
            let called = Instant::now();
            let refused = disputes.report_dispute(report(n)).await.unwrap_err();
            eprintln!("UNAVAILABLE after {} ms", called.elapsed().as_millis());
            assert_eq!(
                refused.code(),
                Code::Unavailable,
                "a call while the database is away must fail with UNAVAILABLE, which clients \
                 retry, before a {CLIENT_DEADLINE:?} deadline: {refused:?}"
            );
        }
        let mut get = Request::new(pb::GetDisputeRequest {
            dispute_id: "d-0".into(),
        });
        get.set_timeout(CLIENT_DEADLINE);
        let refused = disputes.get_dispute(get).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        cluster.resume();
        let resumed = Instant::now();
        until(&mut watch, ServingStatus::Serving).await;
        eprintln!(
            "health SERVING {} ms after the database was back",
            resumed.elapsed().as_millis()
        );
        // Once health says SERVING again, calls go through: none of them
        // meets a connection that died with the old server.
        for n in 200..230 {
            disputes
                .report_dispute(report(n))
                .await
                .unwrap_or_else(|e| panic!("call {n} after the database came back: {e:?}"));
        }
        // Nothing acknowledged before the outage was lost.
        for n in 0..12 {
            let found = disputes
                .get_dispute(pb::GetDisputeRequest {
                    dispute_id: format!("d-{n}"),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(found.dispute.unwrap().version, 1);
        }
        check_channel_is_usable(server.channel()).await;
        server.stop().await;
        db.cleanup().await;
    })
    .await;
}

/// The same channel still works for other services after the outage.
async fn check_channel_is_usable(channel: Channel) {
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}
