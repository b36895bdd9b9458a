//! `mediation export` read back by an independent reader: DuckDB's Python
//! package (`tests/support/export_check.py`), over a history written
//! through the real store on each backend.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mediation_domain::dispute::{
    Dispute, DisputeAction, DisputeCommand, DisputeStatus, Party, PartyRole,
};
use mediation_domain::petition::{Petition, PetitionAction, PetitionCommand, Petitioner};
use mediation_domain::services::{ManualClock, Services};
use mediation_domain::values::{
    Actor, DisputeCategory, DivisionCode, Level, Name, PetitionChannel, Risk, Text,
};
use mediation_export::{ExportError, Exported, Format, Identities, Options};
use mediation_projections::petitioners::{PetitionerSecret, petitioner_key};
use mediation_projections::replay::{REBUILD_BATCH, rebuild_together};
use mediation_store::{Cases, Store};
use mediation_tests::{TestDb, read_all};
use serde_json::Value;

on_both_backends!(
    the_export_reads_back_in_duckdb_without_identities,
    a_second_export_appends_only_new_events_and_repairs_a_killed_run,
);

const VILLAGE: &str = "990101001201";
/// Names that must never leave in clear without `--with-identities`.
const PARTIES: [&str; 2] = ["Qian Duoduo", "Sun Xiaomei"];
const PETITIONER: &str = "Ouyang Lanfang";
const CONTACT: &str = "13912345678";

fn secret() -> PetitionerSecret {
    PetitionerSecret::new(b"export-test-secret-0123456789abcdef").unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn officer() -> Actor {
    Actor::parse("officer-1", "990101001201-committee").unwrap()
}

/// Disputes and petitions from late March into April 2026 (UTC), so the
/// log spans two months of each case type; `tag` keeps case ids apart
/// between calls.
async fn write_history(store: &Store, tag: &str, start: DateTime<Utc>, cases: u32) {
    let clock = ManualClock::new(start);
    let services = Services::shipped_defaults(Arc::new(clock.clone()));
    let disputes = Cases::<Dispute>::new(store, services.clone());
    let petitions = Cases::<Petition>::new(store, services);
    let village = DivisionCode::parse(VILLAGE).unwrap();
    for i in 0..cases {
        clock.set(start + Duration::days(i64::from(i) * 3));
        let id = format!("D-{tag}-{i}");
        for action in [
            DisputeAction::Report {
                division: village.clone(),
                grid: None,
                summary: Text::parse("Water runs from one yard into the next").unwrap(),
            },
            DisputeAction::Register {
                division: village.clone(),
                level: Level::Village,
                category: DisputeCategory::Neighbourhood,
                risk: Risk::Green,
                summary: Text::parse("Drainage between two yards").unwrap(),
                parties: vec![
                    Party {
                        role: PartyRole::Applicant,
                        name: name(PARTIES[0]),
                    },
                    Party {
                        role: PartyRole::Respondent,
                        name: name(PARTIES[1]),
                    },
                ],
            },
        ] {
            let command = DisputeCommand {
                by: officer(),
                action,
            };
            disputes
                .execute(&id, command, HashMap::new())
                .await
                .unwrap();
        }
        let receive = PetitionAction::Receive {
            channel: PetitionChannel::Online,
            matter_type: None,
            petitioner: Petitioner {
                name: name(PETITIONER),
                contact: Some(name(CONTACT)),
            },
            complained_unit: Some(name("Liu'an Village Committee")),
            complained_unit_id: None,
            facts: Text::parse("The village road has not been repaired.").unwrap(),
            division: village.clone(),
            competent_level: Level::Village,
            visited_level: None,
            representatives: 1,
            repeat_of: None,
        };
        let command = PetitionCommand {
            by: officer(),
            action: receive,
        };
        petitions
            .execute(&format!("P-{tag}-{i}"), command, HashMap::new())
            .await
            .unwrap();
    }
    let (dispute, _) = disputes.load(&format!("D-{tag}-0")).await.unwrap().unwrap();
    assert_eq!(dispute.status(), DisputeStatus::Registered);
}

/// Rebuilds every read model, so that the case index has every case.
async fn rebuild_read_models(store: &Store) {
    let all = mediation_projections::all(&secret());
    rebuild_together(store, &all, REBUILD_BATCH, |_| {})
        .await
        .unwrap();
}

/// Events per (type, UTC month they happened in), as the store holds them,
/// once the log holds `events` (on PostgreSQL another test's transaction
/// may hold readers back for a moment; the export would stop there too).
async fn expected_counts(store: &Store, events: usize) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for event in read_all(store, events).await {
        let at: DateTime<Utc> = event.payload["at"].as_str().unwrap().parse().unwrap();
        *counts
            .entry((event.event_type.clone(), at.format("%Y-%m").to_string()))
            .or_default() += 1;
    }
    counts
}

fn options(out: &Path, format: Format, identities: Identities) -> Options {
    Options {
        out: out.to_owned(),
        format,
        since_position: None,
        until: None,
        with_read_models: true,
        identities,
        // Small batches, so that a run writes several parts per partition.
        batch_size: 7,
    }
}

async fn export(store: &Store, options: &Options) -> Result<Exported, ExportError> {
    mediation_export::export(store, options, |_| {}).await
}

/// Whether DuckDB's Python package can be imported; without it the test
/// skips with a message, except in CI, where it fails.
fn duckdb_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `python3 -c \"import duckdb\"` fails: install it with \
             `python3 -m pip install duckdb` (.ci/run does)"
        );
        eprintln!("skipping the DuckDB read-back: `python3 -c \"import duckdb\"` fails");
    }
    ok
}

/// What DuckDB reads in `out` (see `export_check.py`).
fn duckdb_reads(out: &Path, format: Format) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/export_check.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(out).arg(format.as_str());
    command.args(PARTIES).args([PETITIONER, CONTACT]);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "export_check.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn counts_of(read: &Value) -> BTreeMap<(String, String), u64> {
    read["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                (
                    row[0].as_str().unwrap().to_owned(),
                    row[1].as_str().unwrap().to_owned(),
                ),
                row[2].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn the_export_reads_back_in_duckdb_without_identities(db: &TestDb) {
    if !duckdb_available() {
        return;
    }
    let start: DateTime<Utc> = "2026-03-20T02:00:00Z".parse().unwrap();
    write_history(&db.store, "a", start, 6).await;
    rebuild_read_models(&db.store).await;
    let expected = expected_counts(&db.store, 18).await;
    let months: Vec<&str> = expected.keys().map(|(_, m)| m.as_str()).collect();
    assert!(months.contains(&"2026-03") && months.contains(&"2026-04"));
    let total: u64 = expected.values().sum();

    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Parquet, Format::Jsonl] {
        let out = dir.path().join(format.as_str());
        let exported = export(
            &db.store,
            &options(&out, format, Identities::Pseudonymised(secret())),
        )
        .await
        .unwrap();
        assert_eq!(exported.events, total);
        assert!(exported.read_model_rows > 0);
        let read = duckdb_reads(&out, format);
        assert_eq!(counts_of(&read), expected, "{format}");
        assert_eq!(read["total"], total);
        assert_eq!(read["distinct_positions"], total);
        assert_eq!(read["misplaced"], 0, "rows in the wrong month's folder");
        assert_eq!(
            read["found"],
            serde_json::json!([]),
            "identities left in clear"
        );
        // Every case has its row in the case index, and the events join it.
        assert_eq!(read["cases"], 12);
        assert_eq!(read["joined_cases"], 12);
    }
    // The petitioner's pseudonym is the petitioner history's key.
    let key = petitioner_key(
        &secret(),
        &Petitioner {
            name: name(PETITIONER),
            contact: Some(name(CONTACT)),
        },
    );
    let jsonl = std::fs::read_to_string(
        dir.path()
            .join("jsonl/events/case_type=Petition/month=2026-03")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(
        jsonl.contains(&key),
        "the petitioner's key is in the export"
    );

    // With identities, the names are there.
    let clear = dir.path().join("clear");
    export(
        &db.store,
        &options(&clear, Format::Parquet, Identities::Clear),
    )
    .await
    .unwrap();
    let read = duckdb_reads(&clear, Format::Parquet);
    assert_eq!(counts_of(&read), expected);
    let mut names: Vec<&str> = PARTIES.to_vec();
    names.extend([PETITIONER, CONTACT]);
    names.sort_unstable();
    assert_eq!(read["found"], serde_json::json!(names));
}

async fn a_second_export_appends_only_new_events_and_repairs_a_killed_run(db: &TestDb) {
    if !duckdb_available() {
        return;
    }
    let start: DateTime<Utc> = "2026-03-25T02:00:00Z".parse().unwrap();
    write_history(&db.store, "a", start, 3).await;
    expected_counts(&db.store, 9).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut opts = options(&out, Format::Parquet, Identities::Pseudonymised(secret()));
    opts.with_read_models = false;
    let first = export(&db.store, &opts).await.unwrap();
    assert_eq!(first.events, 9);
    let manifest = mediation_export::read_manifest(&out).unwrap().unwrap();
    assert_eq!(manifest.position, first.position);

    // The second run exports only what was written since.
    write_history(&db.store, "b", start + Duration::days(10), 2).await;
    let expected = expected_counts(&db.store, 15).await;
    let second = export(&db.store, &opts).await.unwrap();
    assert_eq!(second.events, 6);
    assert_eq!(second.from, first.position);
    let read = duckdb_reads(&out, Format::Parquet);
    assert_eq!(counts_of(&read), expected);
    assert_eq!(read["total"], 15);
    assert_eq!(read["distinct_positions"], 15);

    // A run killed midway left a temporary file and a finished part
    // beyond the manifest (a copy of rows the manifest already counts).
    let manifest = mediation_export::read_manifest(&out).unwrap().unwrap();
    let partition = out.join("events/case_type=Dispute/month=2026-04");
    let existing = partition
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let beyond = manifest.position + 1;
    std::fs::copy(
        &existing,
        partition.join(format!("part-{beyond}-{}.parquet", beyond + 5)),
    )
    .unwrap();
    std::fs::write(
        partition.join(format!(".part-{beyond}.parquet.tmp")),
        b"half",
    )
    .unwrap();
    write_history(&db.store, "c", start + Duration::days(20), 1).await;
    let expected = expected_counts(&db.store, 18).await;
    let third = export(&db.store, &opts).await.unwrap();
    assert_eq!(third.repaired, 2);
    assert_eq!(third.events, 3);
    let read = duckdb_reads(&out, Format::Parquet);
    assert_eq!(counts_of(&read), expected);
    assert_eq!(read["total"], 18);
    assert_eq!(read["distinct_positions"], 18, "no row twice");

    // Another format, another choice of identities, or a position that
    // contradicts the manifest are refused.
    let mut jsonl = opts.clone();
    jsonl.format = Format::Jsonl;
    assert!(matches!(
        export(&db.store, &jsonl).await,
        Err(ExportError::FormatMismatch { .. })
    ));
    let mut clear = opts.clone();
    clear.identities = Identities::Clear;
    assert!(matches!(
        export(&db.store, &clear).await,
        Err(ExportError::IdentitiesMismatch { .. })
    ));
    let mut since = opts.clone();
    since.since_position = Some(1);
    assert!(matches!(
        export(&db.store, &since).await,
        Err(ExportError::SincePosition { .. })
    ));
    // The manifest's own position is no contradiction.
    since.since_position = Some(third.position);
    assert_eq!(export(&db.store, &since).await.unwrap().events, 0);

    // --until stops at the first event after it; the next run takes up there.
    let fresh = dir.path().join("until");
    let mut until = options(&fresh, Format::Parquet, Identities::Pseudonymised(secret()));
    until.with_read_models = false;
    until.until = Some("2026-04-01T00:00:00Z".parse().unwrap());
    let march = export(&db.store, &until).await.unwrap();
    let in_march: u64 = expected
        .iter()
        .filter(|((_, month), _)| month == "2026-03")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(march.events, in_march);
    until.until = None;
    let rest = export(&db.store, &until).await.unwrap();
    assert_eq!(march.events + rest.events, 18);
    let read = duckdb_reads(&fresh, Format::Parquet);
    assert_eq!(read["distinct_positions"], 18);
}
