//! The real server, started as `mediation serve` starts it, on port 0, with
//! a clock the test controls and (optionally) the test agencies below.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use mediation_api::Settings;
use mediation_api::auth::Authenticator;
use mediation_app::access::token_hash;
use mediation_domain::services::{ManualClock, Services};
use mediation_projections::petitioners::PetitionerSecret;
use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
use mediation_proto::v1::event_service_client::EventServiceClient;
use mediation_proto::v1::petition_service_client::PetitionServiceClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::TestDb;

/// A test agency: its id, token, scope and roles.
#[derive(Debug, Clone, Copy)]
pub struct Agency {
    /// The agency id.
    pub id: &'static str,
    /// Its name (what a petition's complained unit is matched against).
    pub name: &'static str,
    /// Its bearer token.
    pub token: &'static str,
    /// The division whose subtree it sees.
    pub scope: &'static str,
    /// Its roles, as in the agencies file.
    pub roles: &'static [&'static str],
    /// The division whose government it is, if any (a petition may name
    /// that division as the unit complained about).
    pub government_of: Option<&'static str>,
}

/// The district's supervisor: sees the whole example district.
pub const DISTRICT_SUPERVISOR: Agency = Agency {
    id: "district-990101",
    name: "Example District Mediation Centre",
    token: "token-district-supervisor",
    scope: "990101000000",
    roles: &["supervisor"],
    government_of: None,
};
/// Town 101's registrar and mediator: sees town 990101101000 and its villages.
pub const TOWN_101: Agency = Agency {
    id: "town-101",
    name: "Town 101 Government",
    token: "token-town-101",
    scope: "990101101000",
    roles: &["registrar", "mediator"],
    government_of: Some("990101101000"),
};
/// Town 102, with every writing role: sees town 990101102000 only.
pub const TOWN_102: Agency = Agency {
    id: "town-102",
    name: "Town 102 Government",
    token: "token-town-102",
    scope: "990101102000",
    roles: &["registrar", "mediator", "supervisor"],
    government_of: Some("990101102000"),
};
/// A district analyst: reads everything, without identities.
pub const ANALYST: Agency = Agency {
    id: "analyst",
    name: "District Statistics Office",
    token: "token-analyst",
    scope: "990101000000",
    roles: &["analyst"],
    government_of: None,
};
/// A read-only partner in town 101.
pub const PARTNER: Agency = Agency {
    id: "partner-101",
    name: "Town 101 Legal Aid",
    token: "token-partner",
    scope: "990101101000",
    roles: &["partner"],
    government_of: None,
};

/// Every test agency.
pub const AGENCIES: &[Agency] = &[DISTRICT_SUPERVISOR, TOWN_101, TOWN_102, ANALYST, PARTNER];

/// The agencies file for [`AGENCIES`].
pub fn agencies_toml() -> String {
    AGENCIES
        .iter()
        .map(|a| {
            let roles: Vec<String> = a.roles.iter().map(|r| format!("{r:?}")).collect();
            let government = a
                .government_of
                .map(|d| format!("government_of = {d:?}\n"))
                .unwrap_or_default();
            format!(
                "[[agency]]\nid = {:?}\nname = {:?}\nscope = {:?}\nroles = [{}]\ntoken_sha256 = {:?}\n{government}\n",
                a.id,
                a.name,
                a.scope,
                roles.join(", "),
                token_hash(a.token)
            )
        })
        .collect()
}

/// Monday 2 March 2026, 09:00 Beijing time: a working day far from holidays.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Where the web board listens, if the test asked for it.
    pub board: Option<std::net::SocketAddr>,
    /// The clock its aggregates read; tests move it.
    pub clock: ManualClock,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), mediation_api::ServeError>>>,
}

impl TestServer {
    /// Starts the server on `db`; with `auth`, callers must present one of
    /// the [`AGENCIES`]' tokens, without it authentication is off.
    pub async fn start(db: &TestDb, auth: bool) -> Self {
        Self::start_with(db, auth, None, |endpoint| endpoint).await
    }

    /// [`TestServer::start`] with TLS settings for the server, and a way to
    /// set up the client's endpoint (its own TLS settings).
    pub async fn start_with(
        db: &TestDb,
        auth: bool,
        tls: Option<tonic::transport::ServerTlsConfig>,
        client: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Self {
        Self::launch(db, auth, tls, client, None).await
    }

    /// [`TestServer::start`] with the deadline timers sweeping every few
    /// milliseconds, at the time of [`TestServer::clock`]: a test moves the
    /// clock past a deadline and waits for the breach to be recorded.
    pub async fn start_with_timers(db: &TestDb, auth: bool) -> Self {
        Self::launch(
            db,
            auth,
            None,
            |endpoint| endpoint,
            Some(std::time::Duration::from_millis(20)),
        )
        .await
    }

    async fn launch(
        db: &TestDb,
        auth: bool,
        tls: Option<tonic::transport::ServerTlsConfig>,
        client: impl FnOnce(Endpoint) -> Endpoint,
        timer_interval: Option<std::time::Duration>,
    ) -> Self {
        let clock = ManualClock::new(start_time());
        let services = Services::shipped_defaults(Arc::new(clock.clone()));
        Self::start_on(
            db,
            auth,
            tls,
            client,
            timer_interval,
            clock,
            services,
            false,
        )
        .await
    }

    /// [`TestServer::start_with_timers`] with the web board on a port of
    /// its own ([`TestServer::board`]).
    pub async fn start_with_board(db: &TestDb, auth: bool) -> Self {
        let clock = ManualClock::new(start_time());
        let services = Services::shipped_defaults(Arc::new(clock.clone()));
        Self::start_on(
            db,
            auth,
            None,
            |endpoint| endpoint,
            Some(std::time::Duration::from_millis(20)),
            clock,
            services,
            true,
        )
        .await
    }

    /// [`TestServer::start`] with the aggregates' `services` (a calendar or
    /// policy of the test's own), whose clock is `clock`.
    pub async fn start_with_services(
        db: &TestDb,
        auth: bool,
        clock: ManualClock,
        services: Services,
    ) -> Self {
        Self::start_on(
            db,
            auth,
            None,
            |endpoint| endpoint,
            None,
            clock,
            services,
            false,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_on(
        db: &TestDb,
        auth: bool,
        tls: Option<tonic::transport::ServerTlsConfig>,
        client: impl FnOnce(Endpoint) -> Endpoint,
        timer_interval: Option<std::time::Duration>,
        clock: ManualClock,
        services: Services,
        board: bool,
    ) -> Self {
        let auth = if auth {
            Authenticator::from_toml(&agencies_toml()).unwrap()
        } else {
            Authenticator::disabled()
        };
        let tls_on = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = if board {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let board = http.as_ref().map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(mediation_api::serve(
            listener,
            db.store.clone(),
            Settings {
                services,
                auth,
                tls,
                // Unless asked for, tests sweep no timers: they decide when.
                timer_interval,
                case_cache: mediation_store::DEFAULT_CACHE_CAPACITY,
                petitioner_secret: PetitionerSecret::development(),
                http,
            },
            async {
                let _ = stopped.await;
            },
        ));
        let scheme = if tls_on { "https" } else { "http" };
        let channel = client(Endpoint::from_shared(format!("{scheme}://{addr}")).unwrap())
            .connect()
            .await
            .unwrap();
        Self {
            addr,
            board,
            clock,
            channel,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// A channel to the server, without credentials.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A dispute client presenting `agency`'s token.
    pub fn disputes(
        &self,
        agency: &Agency,
    ) -> DisputeServiceClient<InterceptedService<Channel, Bearer>> {
        DisputeServiceClient::with_interceptor(self.channel(), Bearer::of(agency))
    }

    /// A petition client presenting `agency`'s token.
    pub fn petitions(
        &self,
        agency: &Agency,
    ) -> PetitionServiceClient<InterceptedService<Channel, Bearer>> {
        PetitionServiceClient::with_interceptor(self.channel(), Bearer::of(agency))
    }

    /// An event client presenting `agency`'s token.
    pub fn events(
        &self,
        agency: &Agency,
    ) -> EventServiceClient<InterceptedService<Channel, Bearer>> {
        EventServiceClient::with_interceptor(self.channel(), Bearer::of(agency))
    }

    /// Shuts the server down and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<String>);

impl Bearer {
    /// `agency`'s token.
    pub fn of(agency: &Agency) -> Self {
        Self(Some(format!("Bearer {}", agency.token)))
    }

    /// No credentials at all.
    pub fn none() -> Self {
        Self(None)
    }

    /// A token nobody holds.
    pub fn wrong() -> Self {
        Self(Some("Bearer not-a-real-token".to_owned()))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        Ok(request)
    }
}
