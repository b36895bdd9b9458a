//! The web board in a real browser: headless Chromium against the real
//! server (gRPC and the board on ports of their own), with cases made over
//! gRPC and the numbers on each page checked against the read models.
//!
//! With `BOARD_SCREENSHOTS=DIR` set, each page is also saved as a PNG in
//! DIR (how docs/screenshots/ is made).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use fantoccini::{Client, Locator};
use mediation_domain::values::DivisionCode;
use mediation_projections::sla::{self, ClockQuery, ClockStatus};
use mediation_store::Store;
use mediation_tests::TestDb;
use mediation_tests::browser::Browser;
use mediation_tests::requests::{register_village_dispute, town_letter};
use mediation_tests::server::{DISTRICT_SUPERVISOR, TOWN_101, TOWN_102, TestServer, start_time};
use serde_json::Value;

on_both_backends!(the_board_shows_the_read_models_follows_the_log_and_keeps_to_the_scope);

const DISTRICT: &str = "990101000000";
const TOWN_101_CODE: &str = "990101101000";
const VILLAGE_101: &str = "990101101201";
const VILLAGE_102: &str = "990101102201";

/// How long the browser may take to show what a test waits for.
const PATIENCE: StdDuration = StdDuration::from_secs(20);

macro_rules! outcome {
    ($call:expr) => {{
        let outcome = $call.await.unwrap().into_inner().outcome.unwrap();
        assert!(outcome.position > 0, "{outcome:?}");
        outcome
    }};
}

fn css(selector: &str) -> Locator<'_> {
    Locator::Css(selector)
}

async fn text(client: &Client, selector: &str) -> String {
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector} not on the page: {e}"))
        .text()
        .await
        .unwrap()
        .trim()
        .to_owned()
}

async fn number(client: &Client, selector: &str) -> usize {
    let shown = text(client, selector).await;
    shown
        .parse()
        .unwrap_or_else(|_| panic!("{selector} shows {shown:?}, not a number"))
}

async fn cases_listed(client: &Client) -> Vec<String> {
    let mut cases = Vec::new();
    for row in client.find_all(css("#clocks tbody tr")).await.unwrap() {
        cases.push(row.attr("data-case").await.unwrap().unwrap_or_default());
    }
    cases.sort();
    cases
}

async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("BOARD_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// No script error, nor anything else the console calls severe.
async fn console_is_clean(browser: &Browser, page: &str) {
    let severe: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e.get("level").and_then(Value::as_str) == Some("SEVERE"))
        .collect();
    assert!(severe.is_empty(), "console errors on {page}: {severe:?}");
}

async fn clocks(store: &Store, query: ClockQuery) -> Vec<sla::ClockRow> {
    sla::clocks(store, &query).await.unwrap()
}

fn in_district(now: DateTime<Utc>, overdue: bool) -> ClockQuery {
    let district = DivisionCode::parse(DISTRICT).unwrap().subtree_bounds();
    ClockQuery {
        division: None,
        scope: Some(district),
        overdue_at: overdue.then_some(now),
        due_between: None,
        body: None,
        status: (!overdue).then_some(ClockStatus::Breached),
        after: None,
        limit: 10_000,
        provisional: None,
        stage: None,
    }
}

async fn sign_in(client: &Client, base: &str, token: &str, page: &str) {
    client.goto(&format!("{base}{page}")).await.unwrap();
    // Not signed in: the board asks for the token first.
    let field = client
        .wait()
        .at_most(PATIENCE)
        .for_element(css("#token"))
        .await
        .unwrap();
    field.send_keys(token).await.unwrap();
    client
        .find(css("#signin-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(css("#agency"))
        .await
        .unwrap();
}

async fn the_board_shows_the_read_models_follows_the_log_and_keeps_to_the_scope(db: &TestDb) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start_with_board(db, true).await;
    let base = format!("http://{}", server.board.unwrap());
    let client = browser.client.clone();

    // Two disputes in two towns and a petition, then past the villages'
    // 30 days and the petition's 15 days of triage: the three clocks go
    // overdue and the server's timers record the breaches.
    let mut town_101 = server.disputes(&TOWN_101);
    let mut town_102 = server.disputes(&TOWN_102);
    outcome!(town_101.register_dispute(register_village_dispute("D-101", VILLAGE_101, "clerk-1")));
    outcome!(town_102.register_dispute(register_village_dispute("D-102", VILLAGE_102, "clerk-2")));
    outcome!(server.petitions(&TOWN_101).receive_petition(town_letter(
        "P-101",
        TOWN_101_CODE,
        "clerk-1",
        "Wang Wu"
    )));
    server.clock.advance(Duration::days(31));
    let now = start_time() + Duration::days(31);
    let mut breached = Vec::new();
    for _ in 0..500 {
        breached = clocks(&db.store, in_district(now, false)).await;
        if breached.len() >= 3 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(
        breached.len(),
        3,
        "the timers never recorded both breaches: {:?}",
        clocks(
            &db.store,
            ClockQuery {
                limit: 100,
                ..ClockQuery::default()
            }
        )
        .await
    );

    // Sign in as the district's supervisor: the SLA board.
    sign_in(&client, &base, DISTRICT_SUPERVISOR.token, "/sla").await;
    let overdue = clocks(&db.store, in_district(now, true)).await;
    assert_eq!(overdue.len(), 3);
    assert_eq!(number(&client, "#overdue-count").await, overdue.len());
    assert_eq!(cases_listed(&client).await, ["D-101", "D-102", "P-101"]);
    assert_eq!(text(&client, "h1").await, "时限看板");
    screenshot(&client, "sla").await;
    console_is_clean(&browser, "/sla").await;

    // Filter by division: town 101 alone.
    client
        .find(css("#division"))
        .await
        .unwrap()
        .select_by_value(TOWN_101_CODE)
        .await
        .unwrap();
    client
        .find(css("#apply"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(css(&format!(
            "#division option[value='{TOWN_101_CODE}'][selected]"
        )))
        .await
        .unwrap();
    assert_eq!(cases_listed(&client).await, ["D-101", "P-101"]);
    // Drill down from the town to its village holding the case.
    let village = text(
        &client,
        &format!("#drilldown a[data-division='{VILLAGE_101}'] .num"),
    )
    .await;
    assert_eq!(village, "1");
    console_is_clean(&browser, "/sla?division=…").await;

    // Live: a dispute registered now appears among the open clocks
    // without a reload.
    client.goto(&format!("{base}/sla?view=open")).await.unwrap();
    let open_now = |now: DateTime<Utc>| ClockQuery {
        overdue_at: None,
        status: None,
        due_between: Some((DateTime::UNIX_EPOCH, now + Duration::days(3650))),
        ..in_district(now, false)
    };
    let before = clocks(&db.store, open_now(now)).await.len();
    assert_eq!(number(&client, "#listed-count").await, before);
    assert!(!cases_listed(&client).await.contains(&"D-live".to_owned()));
    client
        .execute("window.boardNotReloaded = true; return null;", vec![])
        .await
        .unwrap();
    outcome!(town_101.register_dispute(register_village_dispute("D-live", VILLAGE_101, "clerk-1")));
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(css("#clocks tr[data-case='D-live']"))
        .await
        .expect("the new dispute never appeared on the board");
    let stayed = client
        .execute("return window.boardNotReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(stayed, Value::Bool(true), "the page was reloaded");
    let after = clocks(&db.store, open_now(now)).await.len();
    assert_eq!(after, before + 1);
    assert_eq!(number(&client, "#listed-count").await, after);
    screenshot(&client, "sla-live").await;
    console_is_clean(&browser, "/sla?view=open").await;

    // The case page: every event of the case, and the breach with who
    // held the case then.
    let history = db.store.case_events("Dispute", "D-101").await.unwrap();
    client
        .goto(&format!("{base}/case/dispute/D-101"))
        .await
        .unwrap();
    assert_eq!(number(&client, "#event-count").await, history.len());
    let steps = client.find_all(css("#timeline li")).await.unwrap();
    assert_eq!(steps.len(), history.len());
    let breach_rows = client
        .find_all(css("#case-breaches tbody tr"))
        .await
        .unwrap();
    assert_eq!(breach_rows.len(), 1);
    screenshot(&client, "case").await;
    console_is_clean(&browser, "/case/dispute/D-101").await;

    // Breaches per body, from the kept counts.
    let bodies = sla::breaches_by_body(
        &db.store,
        Some(DivisionCode::parse(DISTRICT).unwrap().subtree_bounds()),
        DateTime::UNIX_EPOCH,
    )
    .await
    .unwrap();
    client.goto(&format!("{base}/breaches")).await.unwrap();
    let shown: i64 = {
        let mut sum = 0;
        for cell in client.find_all(css("#by-body td.breached")).await.unwrap() {
            sum += cell.text().await.unwrap().trim().parse::<i64>().unwrap();
        }
        sum
    };
    assert_eq!(shown, bodies.iter().map(|b| b.breached).sum::<i64>());
    assert_eq!(shown, 3);
    screenshot(&client, "breaches").await;
    console_is_clean(&browser, "/breaches").await;

    // The overview: three open disputes, each at village level.
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(number(&client, "#open-count").await, 3);
    let per_level = client
        .find_all(css("#chart-levels text[data-value]"))
        .await
        .unwrap();
    let village_bar = per_level[0].attr("data-value").await.unwrap();
    assert_eq!(village_bar.as_deref(), Some("3"));
    let funnel = client
        .find(css("#chart-funnel text[data-value]"))
        .await
        .unwrap()
        .attr("data-value")
        .await
        .unwrap();
    // This month's disputes taken in at village level, from the statistics.
    let this = mediation_projections::statistics::Period::of(now);
    let stats = mediation_projections::statistics::query(
        &db.store,
        &DivisionCode::parse(DISTRICT).unwrap(),
        this,
        this,
        None,
        mediation_projections::statistics::Grouping::Level,
    )
    .await
    .unwrap();
    let taken_in: u64 = stats
        .iter()
        .filter(|r| r.level == Some(mediation_domain::values::Level::Village))
        .map(|r| r.counts.registered + r.counts.moved_in)
        .sum();
    assert_eq!(funnel, Some(taken_in.to_string()));
    screenshot(&client, "overview").await;
    console_is_clean(&browser, "/").await;

    // Petitions: the one petition is in its triage window.
    client.goto(&format!("{base}/petitions")).await.unwrap();
    assert_eq!(
        number(&client, "#windows tr[data-stage='petition_triage'] td.open").await,
        1
    );
    screenshot(&client, "petitions").await;
    console_is_clean(&browser, "/petitions").await;

    // English on request.
    client.goto(&format!("{base}/sla?lang=en")).await.unwrap();
    assert_eq!(text(&client, "h1").await, "SLA board");

    // Sign out (a form with its CSRF token), then in as town 101: the
    // other town's division and case are refused.
    client
        .find(css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sign_in(&client, &base, TOWN_101.token, "/sla?view=open").await;
    let town = DivisionCode::parse(TOWN_101_CODE).unwrap().subtree_bounds();
    let mut open_in_town: Vec<String> = clocks(
        &db.store,
        ClockQuery {
            scope: Some(town),
            due_between: Some((DateTime::UNIX_EPOCH, now + Duration::days(3650))),
            limit: 10_000,
            ..ClockQuery::default()
        },
    )
    .await
    .into_iter()
    .map(|c| c.case_id)
    .collect();
    open_in_town.sort();
    let listed = cases_listed(&client).await;
    assert_eq!(listed, open_in_town);
    assert!(listed.contains(&"D-101".to_owned()) && listed.contains(&"D-live".to_owned()));
    assert!(!listed.contains(&"D-102".to_owned()), "{listed:?}");
    console_is_clean(&browser, "/sla as town 101").await;
    client
        .goto(&format!("{base}/sla?division=990101102000"))
        .await
        .unwrap();
    assert!(text(&client, "#status").await.starts_with("403"));
    client
        .goto(&format!("{base}/case/dispute/D-102"))
        .await
        .unwrap();
    assert!(text(&client, "#status").await.starts_with("404"));
    // The refusals are the only complaints: network errors for their
    // statuses, no script error.
    let scripts: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e.get("source").and_then(Value::as_str) != Some("network"))
        .filter(|e| e.get("level").and_then(Value::as_str) == Some("SEVERE"))
        .collect();
    assert!(scripts.is_empty(), "script errors: {scripts:?}");

    // Signed out again, a wrong token is refused at the form.
    client.goto(&format!("{base}/sla")).await.unwrap();
    client
        .find(css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let field = client
        .wait()
        .at_most(PATIENCE)
        .for_element(css("#token"))
        .await
        .unwrap();
    field.send_keys("not-a-real-token").await.unwrap();
    client
        .find(css("#signin-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(!text(&client, "#signin-error").await.is_empty());
    client.goto(&format!("{base}/sla")).await.unwrap();
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(css("#token"))
        .await
        .expect("the board shows nothing without a session");
    browser.close().await;
    server.stop().await;
}
