//! `mediation-bench` as CI runs it: a real process, every phase, on the
//! embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mediation-bench");

#[tokio::test]
async fn bench_quick_runs_every_phase_and_reports_against_the_ceiling() {
    // The embedded store, so that the test needs nothing installed; CI also
    // runs `mediation-bench --quick` on PostgreSQL beside pgbench.
    let output = Command::new(BIN)
        .args(["--quick", "--sqlite"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for section in [
        "## In-process, 4 clients",
        "ceiling (bare insert loop, WAL)",
        "## gRPC, 8 clients",
        "## gRPC, 200 requests/s offered",
        "## Rebuild: `mediation replay`",
        "## SLA queries over",
        "server peak memory with 2000 cases",
        "## Targets",
    ] {
        assert!(report.contains(section), "no {section:?} in:\n{report}");
    }
    // The workload went through whole lifecycles without being refused.
    for rpc in [
        "| CloseDispute |",
        "| IssueOpinion |",
        "| EscalateDispute |",
    ] {
        assert!(report.contains(rpc), "no {rpc} in:\n{report}");
    }
    assert!(!report.contains("errors:"), "{report}");
}
