//! Forgetting a person (PIPL Art 47) end to end: through the real gRPC
//! server on each backend, identities sealed in the stored log, then
//! erased from every read path (Get, List, the event stream, the case read
//! model, snapshots, a rebuild and an export) while the cases go on.

use mediation_export::{Format, Identities, Options};
use mediation_projections::petitioners::PetitionerSecret;
use mediation_projections::replay::{REBUILD_BATCH, rebuild_together};
use mediation_proto::v1 as pb;
use mediation_proto::v1::privacy_service_client::PrivacyServiceClient;
use mediation_store::{Backend, Store};
use mediation_tests::TestDb;
use mediation_tests::requests::{register_village_dispute, rid, town_letter};
use mediation_tests::server::{ANALYST, Agency, Bearer, DISTRICT_SUPERVISOR, TOWN_102, TestServer};
use tonic::Code;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

on_both_backends!(
    identities_are_sealed_in_the_log_and_read_back_in_clear,
    cases_naming_one_new_person_at_once_all_get_the_same_key,
    a_forgotten_person_is_erased_everywhere_while_the_cases_go_on,
);

/// A village of town 101, and one of town 102.
const VILLAGE_101: &str = "990101101201";
const VILLAGE_102: &str = "990101102201";
const TOWN_101_CODE: &str = "990101101000";

fn privacy(
    server: &TestServer,
    agency: &Agency,
) -> PrivacyServiceClient<InterceptedService<Channel, Bearer>> {
    PrivacyServiceClient::with_interceptor(server.channel(), Bearer::of(agency))
}

fn forget_named(name: &str, contact: &str) -> pb::ForgetPersonRequest {
    pb::ForgetPersonRequest {
        request_id: rid(),
        actor_id: "privacy-officer".into(),
        person: Some(pb::forget_person_request::Person::Named(pb::PersonName {
            name: name.into(),
            contact: contact.into(),
        })),
    }
}

/// How many stored rows of `table` hold `needle` in `column`.
async fn stored(store: &Store, table: &str, column: &str, needle: &str) -> i64 {
    let pattern = format!("%{needle}%");
    match store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE CAST({column} AS TEXT) LIKE $1"
        ))
        .bind(pattern)
        .fetch_one(pool)
        .await
        .unwrap(),
        Backend::Sqlite(pool) => sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE CAST({column} AS TEXT) LIKE ?1"
        ))
        .bind(pattern)
        .fetch_one(pool)
        .await
        .unwrap(),
    }
}

/// The names of dispute `id`'s parties, as the district's supervisor gets
/// them.
async fn party_names(server: &TestServer, id: &str) -> Vec<String> {
    server
        .disputes(&DISTRICT_SUPERVISOR)
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap()
        .parties
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// Registers D1 (village of town 101) and D2 (town 102), both Zhang San
/// against Li Si, and receives P1, Zhang San's letter with his phone;
/// returns the last position.
async fn cases(server: &TestServer) -> u64 {
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    disputes
        .register_dispute(register_village_dispute("D1", VILLAGE_101, "clerk-1"))
        .await
        .unwrap();
    disputes
        .register_dispute(register_village_dispute("D2", VILLAGE_102, "clerk-1"))
        .await
        .unwrap();
    let mut letter = town_letter("P1", TOWN_101_CODE, "office-1", "Zhang San");
    letter.petitioner.as_mut().unwrap().contact = "13800000000".into();
    server
        .petitions(&DISTRICT_SUPERVISOR)
        .receive_petition(letter)
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
        .position
}

async fn identities_are_sealed_in_the_log_and_read_back_in_clear(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let last = cases(&server).await;
    // Stored sealed: no name or phone in the log's rows, or in snapshots.
    for needle in ["Zhang San", "Li Si", "13800000000"] {
        assert_eq!(
            stored(&db.store, "events", "payload", needle).await,
            0,
            "{needle}"
        );
    }
    assert!(stored(&db.store, "events", "payload", "\"sealed\"").await >= 3);
    // Read in clear by whoever may see identities.
    assert_eq!(party_names(&server, "D1").await, ["Zhang San", "Li Si"]);
    let page = server
        .events(&DISTRICT_SUPERVISOR)
        .read_events(pb::ReadEventsRequest {
            min_position: last,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.events.iter().any(|e| e.position == last));
    let text = format!("{:?}", page.events);
    assert!(
        text.contains("Zhang San") && text.contains("13800000000"),
        "{text}"
    );
    assert!(!text.contains("sealed"), "{text}");
    server.stop().await;
}

/// The first cases to name a person race to create their key: each must
/// get through, sealed under the one key that won, and open again.
async fn cases_naming_one_new_person_at_once_all_get_the_same_key(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let calls: Vec<_> = (0..8)
        .map(|n| {
            let mut client = server.disputes(&DISTRICT_SUPERVISOR);
            tokio::spawn(async move {
                client
                    .register_dispute(register_village_dispute(&format!("R{n}"), VILLAGE_101, "c"))
                    .await
                    .map(|r| r.into_inner().outcome.unwrap().position)
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let keys = match db.store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar::<_, i64>("SELECT count(*) FROM person_keys")
            .fetch_one(pool)
            .await
            .unwrap(),
        Backend::Sqlite(pool) => sqlx::query_scalar::<_, i64>("SELECT count(*) FROM person_keys")
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    assert_eq!(keys, 2, "Zhang San and Li Si, once each");
    for n in 0..8 {
        assert_eq!(
            party_names(&server, &format!("R{n}")).await,
            ["Zhang San", "Li Si"]
        );
    }
    server.stop().await;
}

async fn a_forgotten_person_is_erased_everywhere_while_the_cases_go_on(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    cases(&server).await;

    // Only supervisors may forget, and only where every case naming the
    // person lies in their jurisdiction: town 102's does not cover D1.
    let denied = privacy(&server, &ANALYST)
        .forget_person(forget_named("Zhang San", "13800000000"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let denied = privacy(&server, &TOWN_102)
        .forget_person(forget_named("Zhang San", "13800000000"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("990101101201"), "{denied:?}");
    let bad = privacy(&server, &DISTRICT_SUPERVISOR)
        .forget_person(pb::ForgetPersonRequest {
            person: None,
            ..forget_named("x", "")
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    // Nothing was erased by the refusals.
    assert!(stored(&db.store, "events", "payload", "Erased").await == 0);

    let forgotten = privacy(&server, &DISTRICT_SUPERVISOR)
        .forget_person(forget_named("Zhang San", "13800000000"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        forgotten.person_keys.len(),
        2,
        "as a party and as a petitioner"
    );
    let mut erased: Vec<(&str, i32)> = forgotten
        .cases
        .iter()
        .map(|c| (c.case_id.as_str(), c.aggregate_type))
        .collect();
    erased.sort();
    assert_eq!(
        erased,
        [
            ("D1", pb::AggregateType::Dispute as i32),
            ("D2", pb::AggregateType::Dispute as i32),
            ("P1", pb::AggregateType::Petition as i32),
        ]
    );
    let last = forgotten.cases.iter().map(|c| c.position).max().unwrap();

    // Get: the person erased, the other party as before.
    assert_eq!(party_names(&server, "D1").await, ["(erased)", "Li Si"]);
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let petition = server
        .petitions(&DISTRICT_SUPERVISOR)
        .get_petition(pb::GetPetitionRequest {
            petition_id: "P1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .petition
        .unwrap();
    let petitioner = petition.petitioner.unwrap();
    assert_eq!(
        (petitioner.name.as_str(), petitioner.contact.as_str()),
        ("(erased)", "")
    );
    // List, read from the case read model once it has the erasure.
    let listed = disputes
        .list_disputes(pb::ListDisputesRequest {
            min_position: last,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{listed:?}").contains("Zhang San"), "{listed:?}");
    // The stream: the registration reads with the person erased, and the
    // erasure is a step of the history.
    let page = server
        .events(&DISTRICT_SUPERVISOR)
        .read_events(pb::ReadEventsRequest {
            min_position: last,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let text = format!("{:?}", page.events);
    assert!(
        !text.contains("Zhang San") && !text.contains("13800000000"),
        "{text}"
    );
    assert!(text.contains("Li Si"), "{text}");
    for event_type in ["PartiesErased", "PetitionerErased"] {
        assert!(
            page.events.iter().any(|e| e.event_type == event_type),
            "{event_type}"
        );
    }
    // No name left in the key table, the read model or the snapshots.
    for (table, column) in [("case_index", "state"), ("case_snapshots", "payload")] {
        assert_eq!(
            stored(&db.store, table, column, "Zhang San").await,
            0,
            "{table}"
        );
    }

    // The case goes on: a dispatch after the erasure is decided on the
    // erased state, and the history replays.
    disputes
        .dispatch_dispute(pb::DispatchDisputeRequest {
            request_id: rid(),
            dispute_id: "D1".into(),
            actor_id: "clerk-1".into(),
            body: Some(pb::MediationBody {
                body_id: "committee-101201".into(),
                name: "Village Mediation Committee".into(),
                kind: pb::MediationKind::Peoples.into(),
            }),
            mediator: "Mediator Wu".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Forgetting again finds nothing left to erase.
    let again = privacy(&server, &DISTRICT_SUPERVISOR)
        .forget_person(forget_named("Zhang San", "13800000000"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.cases.is_empty(), "{again:?}");
    server.stop().await;

    // A rebuild of every read model, and an export even with identities
    // in clear, find the person erased.
    let secret = PetitionerSecret::development();
    let all = mediation_projections::all(&secret);
    rebuild_together(&db.store, &all, REBUILD_BATCH, |_| {})
        .await
        .unwrap();
    assert_eq!(
        stored(&db.store, "case_index", "state", "Zhang San").await,
        0
    );
    assert!(stored(&db.store, "case_index", "state", "Li Si").await > 0);
    let dir = tempfile::tempdir().unwrap();
    mediation_export::export(
        &db.store,
        &Options {
            out: dir.path().to_owned(),
            format: Format::Jsonl,
            since_position: None,
            until: None,
            with_read_models: false,
            identities: Identities::Clear,
            batch_size: 100,
        },
        |_| {},
    )
    .await
    .unwrap();
    let mut text = String::new();
    for entry in walk(dir.path()) {
        text.push_str(&std::fs::read_to_string(entry).unwrap());
    }
    assert!(
        text.contains("Li Si") && text.contains("(erased)"),
        "{text}"
    );
    assert!(!text.contains("Zhang San") && !text.contains("13800000000"));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
