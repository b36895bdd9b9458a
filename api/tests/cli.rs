//! The `mediation` command as a newcomer runs it: a real process, a real
//! SQLite file, a real gRPC health check, a real Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BIN: &str = env!("CARGO_BIN_EXE_mediation");

#[tokio::test]
async fn serve_opens_a_new_sqlite_file_answers_health_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The server logs the address it bound; port 0 means the OS chose it.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server exited before it started serving");
        if line.contains("serving gRPC") {
            let addr = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            break addr.to_owned();
        }
    };
    assert!(
        dir.path().join("mediation.db").exists(),
        "with no --database-url the store is ./mediation.db"
    );

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().await.unwrap();
    assert!(status.success(), "Ctrl-C is a clean shutdown, got {status}");
}

#[tokio::test]
async fn migrate_creates_the_schema_and_refuses_unknown_urls() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", &url])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("events.db").exists());

    let out = Command::new(BIN)
        .args(["migrate", "--database-url", "mysql://localhost/x"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
}

#[tokio::test]
async fn serve_refuses_an_invalid_jurisdiction_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jurisdiction.toml");
    std::fs::write(
        &file,
        "[[districts]]\ncode = \"990101001000\"\nname = \"not a district\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--jurisdiction"])
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jurisdiction.toml"), "{stderr}");
    assert!(stderr.contains("denotes a town"), "{stderr}");
}

#[tokio::test]
async fn serve_refuses_a_public_address_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("MEDIATION_AGENCIES")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without authentication") && stderr.contains("--agencies"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("mediation.db").exists(),
        "refused before opening the store"
    );
}

#[tokio::test]
async fn token_prints_a_token_and_the_hash_the_agencies_file_keeps() {
    let out = Command::new(BIN).arg("token").output().await.unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let token = lines[1];
    assert_eq!(token.len(), 64, "{stdout}");
    let expected = format!(
        "token_sha256 = \"{}\"",
        mediation_api::auth::token_hash(token)
    );
    assert_eq!(lines[3], expected, "{stdout}");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("serving gRPC") {
            break;
        }
    }
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut said_so = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        said_so |= line.contains("shutting down");
    }
    let status = child.wait().await.unwrap();
    assert!(
        status.success(),
        "SIGTERM is a clean shutdown, got {status}"
    );
    assert!(said_so, "the server says it is shutting down");
}
