//! The integration suite, one binary. Every contract test runs on both
//! backends: SQLite always, PostgreSQL when `DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Declares each listed `async fn(&TestDb)` as two tests, `sqlite::NAME` and
/// `postgres::NAME`, each on a fresh database.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let db = mediation_tests::TestDb::new(mediation_tests::Kind::Sqlite).await.unwrap();
                    mediation_tests::guard(super::$test(&db)).await;
                    db.cleanup().await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(db) = mediation_tests::TestDb::new(mediation_tests::Kind::Postgres).await else {
                        return;
                    };
                    mediation_tests::guard(super::$test(&db)).await;
                    db.cleanup().await;
                }
            )+
        }
    };
}

mod api_access;
mod api_flow;
mod api_sla;
mod board;
mod calendars;
mod details;
mod erasure;
mod export;
mod extensions;
mod history;
mod leases;
mod lifecycle;
mod operations;
mod outage;
mod read_models;
mod replay;
mod server;
mod sla;
mod statutes;
mod store_contract;
mod tls;
mod upcasting;
