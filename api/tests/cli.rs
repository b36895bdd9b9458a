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

/// Reads the rest of a server's stderr in the background, as a service
/// manager does: a server whose stderr pipe fills blocks on its next log
/// line (a slow-statement warning under load is enough).
fn drain(mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>) {
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

#[tokio::test]
async fn serve_opens_a_new_sqlite_file_answers_health_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--http", "off", "--listen", "127.0.0.1:0"])
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
    drain(lines);
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
        .args([
            "serve",
            "--http",
            "off",
            "--listen",
            "127.0.0.1:0",
            "--jurisdiction",
        ])
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
        .args(["serve", "--http", "off", "--listen", "0.0.0.0:0"])
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
        mediation_app::access::token_hash(token)
    );
    assert_eq!(lines[3], expected, "{stdout}");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--http", "off", "--listen", "127.0.0.1:0"])
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

/// A server killed (SIGKILL) while its case projection catches up with a
/// backlog, then restarted: the read model ends exactly as the cases are,
/// nothing lost and nothing applied twice.
#[tokio::test]
async fn a_server_killed_while_projecting_resumes_without_loss_or_repeat() {
    use std::sync::Arc;

    use mediation_domain::dispute::{
        Dispute, DisputeAction, DisputeCommand, MediationBody, Party, PartyRole,
    };
    use mediation_domain::services::{Services, SystemClock};
    use mediation_domain::values::{
        Actor, AgencyId, DisputeCategory, DivisionCode, Level, MediationKind, Name, Risk, Text,
    };
    use mediation_proto::v1 as pb;
    use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
    use mediation_store::{Cases, Store};

    const CASES: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let cases: Cases<Dispute> =
        Cases::new(&store, Services::shipped_defaults(Arc::new(SystemClock)));
    let by = Actor::parse("clerk", "local").unwrap();
    for i in 0..CASES {
        let id = format!("d-{i:05}");
        let register = DisputeAction::Register {
            division: DivisionCode::parse("990101101201").unwrap(),
            level: Level::Village,
            category: DisputeCategory::Family,
            risk: Risk::Green,
            summary: Text::parse("backlog").unwrap(),
            parties: vec![
                Party {
                    role: PartyRole::Applicant,
                    name: Name::parse("A").unwrap(),
                },
                Party {
                    role: PartyRole::Respondent,
                    name: Name::parse("B").unwrap(),
                },
            ],
        };
        let dispatch = DisputeAction::Dispatch {
            body: MediationBody {
                id: AgencyId::parse("committee").unwrap(),
                name: Name::parse("Committee").unwrap(),
                kind: MediationKind::Peoples,
            },
            mediator: None,
        };
        for action in [register, dispatch] {
            let command = DisputeCommand {
                by: by.clone(),
                action,
            };
            cases
                .execute(&id, command, Default::default())
                .await
                .unwrap();
        }
    }
    let head = store.log_head().await.unwrap();

    // First run: killed as soon as the projection has started.
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--http",
            "off",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("projection running in this process") {
            break;
        }
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let checkpoint = store.checkpoint("case_index").await.unwrap();
    assert!(
        checkpoint < head,
        "the projection finished before it was killed"
    );

    // Second run: it resumes from its checkpoint. A list that must reflect
    // the head waits until the projection has caught up.
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--http",
            "off",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("server exited");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    drain(lines);
    let mut client = DisputeServiceClient::new(channel);
    let mut listed = Vec::new();
    let mut token = String::new();
    // The server says UNAVAILABLE ("retry shortly") while the projection
    // has not caught up within its wait; a client retries, and so does
    // this test: what it checks is what is listed, not how fast.
    let retry_until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let request = pb::ListDisputesRequest {
            page_size: 1000,
            page_token: token.clone(),
            min_position: head,
            ..Default::default()
        };
        let page = match client.list_disputes(request).await {
            Ok(page) => page.into_inner(),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && std::time::Instant::now() < retry_until =>
            {
                continue;
            }
            Err(status) => panic!("{status:?}"),
        };
        listed.extend(page.disputes);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed.len(), CASES);
    for (i, dispute) in listed.iter().enumerate() {
        assert_eq!(dispute.dispute_id, format!("d-{i:05}"));
        // Two events each: applied once, not twice, not lost.
        assert_eq!(dispute.version, 2, "{}", dispute.dispute_id);
        assert_eq!(dispute.status(), pb::DisputeStatus::Dispatched);
    }
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn export_writes_a_manifest_and_refuses_another_format_in_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("m.db").display());
    let out = dir.path().join("out");
    let run = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .arg("export")
            .arg("--out")
            .arg(&out)
            .args(["--database-url", &url])
            .args(args)
            .env_remove("MEDIATION_PETITIONER_SECRET")
            .env_remove("MEDIATION_PETITIONER_SECRET_FILE")
            .env("RUST_LOG", "warn");
        command.output()
    };
    let first = run(&["--with-read-models"]).await.unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let line = String::from_utf8(first.stdout).unwrap();
    assert!(
        line.starts_with("exported 0 events") && line.contains("read-model rows to 4 files"),
        "{line}"
    );
    assert!(out.join("manifest.json").exists());
    assert!(out.join("read_models/cases.parquet").exists());

    let refused = run(&["--format", "jsonl"]).await.unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("holds a parquet export"), "{message}");

    let clear = run(&["--with-identities"]).await.unwrap();
    assert!(
        !clear.status.success(),
        "identities are not mixed in one folder"
    );
    let message = String::from_utf8_lossy(&clear.stderr);
    assert!(
        message.contains("--with-identities"),
        "the flag warns: {message}"
    );
}

/// Reads `path` from an HTTP/1.1 server with a bare request, as a scraper
/// would, and returns the status line and the body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_metrics_are_served_beside_the_board() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--log-format",
            "json",
            "serve",
            "--http",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Every line the server writes is a JSON object; the event's fields
    // (here the bound addresses) are at its top level.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut grpc, mut board) = (None, None);
    while grpc.is_none() || board.is_none() {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server exited before it started serving");
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["level"].is_string(), "{line}");
        let addr = object["addr"].as_str().map(str::to_owned);
        match object["message"].as_str() {
            Some("serving gRPC") => grpc = addr,
            Some("serving the web board") => board = addr,
            _ => {}
        }
    }
    let (grpc, board) = (grpc.unwrap(), board.unwrap());
    drain(lines);

    // One call, so that the gRPC series exist.
    let channel = Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    let (status, body) = http_get(&board, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("grpc_server_handled_total{")
                && l.contains("grpc_method=\"Check\"")
                && l.contains("grpc_code=\"OK\"")),
        "{body}"
    );
    assert!(
        body.contains("mediation_projection_position{projection=\"case_index\"}"),
        "{body}"
    );

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn forget_erases_a_person_the_server_recorded_and_says_where() {
    use mediation_proto::v1 as pb;
    use mediation_proto::v1::dispute_service_client::DisputeServiceClient;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("m.db").display());
    let mut child = Command::new(BIN)
        .args(["serve", "--http", "off", "--listen", "127.0.0.1:0"])
        .args(["--database-url", &url])
        .env_remove("MEDIATION_PETITIONER_SECRET")
        .env_remove("MEDIATION_PETITIONER_SECRET_FILE")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("the server exited");
        if let Some(rest) = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("serving gRPC"))
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    drain(lines);
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    DisputeServiceClient::new(channel)
        .register_dispute(pb::RegisterDisputeRequest {
            request_id: "r-1".into(),
            dispute_id: "D1".into(),
            actor_id: "clerk-1".into(),
            division_code: "990101101201".into(),
            level: pb::Level::Village.into(),
            category: pb::DisputeCategory::Neighbourhood.into(),
            risk: pb::Risk::Green.into(),
            summary: "A wall between two yards".into(),
            parties: vec![
                pb::Party {
                    role: pb::PartyRole::Applicant.into(),
                    name: "Zhang San".into(),
                },
                pb::Party {
                    role: pb::PartyRole::Respondent.into(),
                    name: "Li Si".into(),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(child.wait().await.unwrap().success());

    let run = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(["--database-url", &url])
            .env_remove("MEDIATION_PETITIONER_SECRET")
            .env_remove("MEDIATION_PETITIONER_SECRET_FILE")
            .env("RUST_LOG", "warn");
        command.output()
    };
    let forgot = run(&["forget", "--name", "Zhang San"]).await.unwrap();
    assert!(
        forgot.status.success(),
        "{}",
        String::from_utf8_lossy(&forgot.stderr)
    );
    let line = String::from_utf8(forgot.stdout).unwrap();
    assert_eq!(line.trim(), "forgot 2 pseudonyms in 1 cases: Dispute D1");
    let again = run(&["forget", "--name", "Zhang San"]).await.unwrap();
    assert_eq!(
        String::from_utf8(again.stdout).unwrap().trim(),
        "forgot 2 pseudonyms in 0 cases"
    );
    let missing = run(&["forget"]).await.unwrap();
    assert!(!missing.status.success(), "a person must be named");

    // Even an export with identities in clear has the person erased.
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let exported = run(&[
        "export",
        "--out",
        out,
        "--format",
        "jsonl",
        "--with-identities",
    ])
    .await
    .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let mut text = String::new();
    for case_type in std::fs::read_dir(format!("{out}/events")).unwrap() {
        for month in std::fs::read_dir(case_type.unwrap().path()).unwrap() {
            for file in std::fs::read_dir(month.unwrap().path()).unwrap() {
                text.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
            }
        }
    }
    assert!(
        text.contains("PartiesErased") && text.contains("Li Si"),
        "{text}"
    );
    assert!(!text.contains("Zhang San"), "{text}");
}
