//! Operations: `/metrics` on the board's listener, read back by a
//! Prometheus text-format parser of its own, after real calls over gRPC.

use std::collections::HashMap;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
use mediation_tests::TestDb;
use mediation_tests::requests::register_village_dispute;
use mediation_tests::server::{Bearer, TOWN_101, TestServer};
use prometheus_parse::{Sample, Scrape, Value};

on_both_backends!(metrics_count_and_time_every_call_and_report_the_projections);

const VILLAGE_101: &str = "990101101201";

/// `GET /metrics` over HTTP/1.1, parsed.
async fn scrape(server: &TestServer) -> Scrape {
    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let uri = format!("http://{}/metrics", server.board.unwrap());
    let response = client.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap()
}

/// The samples of `metric` whose labels include every pair of `labels`.
fn matching<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(n) | Value::Gauge(n) | Value::Untyped(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}

/// The one sample of a counter or gauge, 0 when it has none yet.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = matching(scrape, metric, labels);
    assert!(found.len() <= 1, "{metric} {labels:?}: {found:?}");
    found.first().map_or(0.0, |s| number(s))
}

const REPORT: [(&str, &str); 3] = [
    ("grpc_service", "mediation.v1.DisputeService"),
    ("grpc_method", "RegisterDispute"),
    ("grpc_type", "unary"),
];

fn with<'a>(base: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut labels = base.to_vec();
    labels.push(extra);
    labels
}

async fn metrics_count_and_time_every_call_and_report_the_projections(db: &TestDb) {
    let server = TestServer::start_with_board(db, true).await;
    // The recorder is the process's: other tests of this binary count into
    // it too, so every check is on how a series moved.
    let before = scrape(&server).await;

    let mut town = server.disputes(&TOWN_101);
    let committed = town
        .register_dispute(register_village_dispute(
            "D-metrics",
            VILLAGE_101,
            "clerk-1",
        ))
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let mut bad = register_village_dispute("D-metrics-bad", VILLAGE_101, "clerk-1");
    bad.division_code = "not a division".into();
    let refused = town.register_dispute(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let unauthenticated = DisputeServiceClient::with_interceptor(server.channel(), Bearer::none())
        .register_dispute(register_village_dispute("D-metrics-anon", VILLAGE_101, "x"))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    // The case projection reaches the command's position; the gauge says so.
    let mut after = scrape(&server).await;
    for _ in 0..100 {
        if value(
            &after,
            "mediation_projection_position",
            &[("projection", "case_index")],
        ) >= committed.position as f64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape(&server).await;
    }
    assert!(
        value(
            &after,
            "mediation_projection_position",
            &[("projection", "case_index")]
        ) >= committed.position as f64
    );
    assert_eq!(
        value(
            &after,
            "mediation_projection_active",
            &[("projection", "case_index")]
        ),
        1.0
    );
    assert!(value(&after, "mediation_log_committed_position", &[]) >= committed.position as f64);
    assert_eq!(value(&after, "mediation_store_up", &[]), 1.0);
    for projection in [
        "statistics",
        "caseload",
        "petitioner_history",
        "petition_statistics",
    ] {
        assert_eq!(
            matching(
                &after,
                "mediation_projection_lag_seconds",
                &[("projection", projection)]
            )
            .len(),
            1,
            "{projection}"
        );
    }

    // Each call counted once under its status, as the client saw it.
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    assert!(
        moved(
            "grpc_server_handled_total",
            &with(&REPORT, ("grpc_code", "OK"))
        ) >= 1.0
    );
    assert!(
        moved(
            "grpc_server_handled_total",
            &with(&REPORT, ("grpc_code", "InvalidArgument"))
        ) >= 1.0
    );
    assert!(
        moved(
            "grpc_server_handled_total",
            &with(&REPORT, ("grpc_code", "Unauthenticated"))
        ) >= 1.0
    );
    assert!(moved("grpc_server_started_total", &REPORT) >= 3.0);
    let started = value(&after, "grpc_server_started_total", &REPORT);
    let handled: f64 = matching(&after, "grpc_server_handled_total", &REPORT)
        .into_iter()
        .map(number)
        .sum();
    assert!(handled <= started, "{handled} handled of {started} started");

    // Latency: a histogram with the calls in it, cumulative buckets.
    let histogram = matching(&after, "grpc_server_handling_seconds", &REPORT);
    assert_eq!(histogram.len(), 1, "{histogram:?}");
    let Value::Histogram(buckets) = &histogram[0].value else {
        panic!("not a histogram: {:?}", histogram[0]);
    };
    let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    let total = counts.last().copied().unwrap_or(0.0);
    assert!(total >= 3.0, "{buckets:?}");
    let seconds: HashMap<String, f64> = buckets
        .iter()
        .map(|b| (b.less_than.to_string(), b.count))
        .collect();
    assert!(seconds.contains_key("10"), "{seconds:?}");

    server.stop().await;
}
