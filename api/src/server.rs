//! The gRPC server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mediation_domain::services::Services;
use mediation_projections::petitioners::PetitionerSecret;
use mediation_projections::records::LogPetitionRecords;
use mediation_proto::v1::dispute_service_server::DisputeServiceServer;
use mediation_proto::v1::event_service_server::EventServiceServer;
use mediation_proto::v1::petition_service_server::PetitionServiceServer;
use mediation_proto::v1::privacy_service_server::PrivacyServiceServer;
use mediation_proto::v1::sla_service_server::SlaServiceServer;
use mediation_store::{Probe, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::util::MapResponseLayer;

use crate::auth::Authenticator;
use crate::metrics::GrpcMetricsLayer;
use crate::services::dispute::DisputeApi;
use crate::services::events::EventApi;
use crate::services::petition::PetitionApi;
use crate::services::privacy::PrivacyApi;
use crate::services::sla::SlaApi;
use mediation_app::App;

/// The largest request message the server decodes. Requests carry at most a
/// few texts of 10,000 characters; anything near this is a mistake or abuse.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How often the health service re-checks the store, and how long it waits
/// for an answer: together they bound how long `SERVING` outlives the
/// database (and how soon it returns) to under two seconds.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (the listener broke, for instance).
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The embedded descriptor sets could not be served for reflection.
    #[error("server reflection could not be set up: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The web board's listener failed.
    #[error("the web board failed: {0}")]
    Web(#[from] std::io::Error),
}

/// Serves the gRPC API on `listener` until `shutdown` completes, then stops
/// accepting calls, lets calls in flight finish and stops background work.
///
/// The standard `grpc.health.v1.Health` service reports `SERVING` for the
/// whole server (service name `""`) while the store answers, and
/// `NOT_SERVING` while it does not. Server reflection (v1 and v1alpha)
/// describes every service, so that grpcurl, grpcui or Postman work without
/// the `.proto` files.
///
/// `settings.services` decide the deadlines and the jurisdiction; the
/// petition records they use for the repeat check are replaced by the log's.
/// `settings.auth` checks every call to the mediation services (health and
/// reflection stay open, for load balancers and tools).
pub async fn serve(
    listener: TcpListener,
    store: Store,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Installed before anything records, so that no count is lost.
    crate::metrics::handle();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(mediation_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(mediation_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut probe = store.probe(HEALTH_TIMEOUT);
    let status = report_store_health(&reporter, &mut probe, None).await;
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(watch_store(reporter, probe, status, stop.clone()));

    let services = settings
        .services
        .with_petition_records(Arc::new(LogPetitionRecords::new(store.clone())));
    let (app, worker) = App::start_with(
        store,
        services,
        settings.case_cache,
        settings.petitioner_secret,
        stop.clone(),
    );
    let timers = settings
        .timer_interval
        .map(|interval| tokio::spawn(app.clone().run_timers(interval, stop.clone())));
    // Deadlines counted by guess over a year whose holiday file is loaded
    // now are re-timed in the background; the server does not wait.
    let recompute = tokio::spawn(app.clone().run_recompute(stop.clone()));
    let auth = settings.auth;
    // The web board shares the engine (same App, same agencies) on a
    // listener of its own, and stops when the gRPC server is asked to.
    let web = settings.http.map(|listener| {
        let app = app.clone();
        let agencies = auth.agencies().clone();
        let stop = stop.clone();
        let operations = crate::metrics::router(app.clone());
        tokio::spawn(mediation_web::serve(
            listener,
            app,
            agencies,
            operations,
            async move {
                stop.cancelled().await;
            },
        ))
    });
    let disputes = DisputeServiceServer::new(DisputeApi::new(app.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let petitions =
        PetitionServiceServer::new(PetitionApi::new(app.clone(), auth.agencies().clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES);
    let dashboards = SlaServiceServer::new(SlaApi::new(app.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let privacy = PrivacyServiceServer::new(PrivacyApi::new(app.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let events = EventServiceServer::new(EventApi::new(app, stop.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);

    // Live subscriptions end when `stop` is cancelled, which must happen as
    // soon as shutdown begins: the server waits for open streams to finish.
    let stop_streams = stop.clone();
    let shutdown = async move {
        shutdown.await;
        stop_streams.cancel();
    };
    // Layers run outermost first: the metrics see the status as the
    // client gets it, after the correction below.
    let upkeep = tokio::spawn(crate::metrics::upkeep(stop.clone()));
    let mut builder = tonic::transport::Server::builder()
        .layer(GrpcMetricsLayer)
        .layer(MapResponseLayer::new(oversized_is_exhausted));
    if let Some(tls) = settings.tls {
        builder = builder.tls_config(tls)?;
    }
    let result = builder
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(disputes, auth.clone()))
        .add_service(InterceptedService::new(petitions, auth.clone()))
        .add_service(InterceptedService::new(dashboards, auth.clone()))
        .add_service(InterceptedService::new(privacy, auth.clone()))
        .add_service(InterceptedService::new(events, auth))
        .serve_with_incoming_shutdown(
            // Small responses go out at once: without TCP_NODELAY a reply
            // to a lone request waits for the client's delayed ACK (40 ms
            // on Linux). Accepted sockets do not inherit it from the
            // listener, and a custom incoming stream gets no default.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;

    stop.cancel();
    let web = match web {
        Some(web) => match web.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "the web board panicked");
                Ok(())
            }
        },
        None => Ok(()),
    };
    if let Err(e) = upkeep.await {
        tracing::error!(error = %e, "the metrics upkeep panicked");
    }
    if let Err(e) = watcher.await {
        tracing::error!(error = %e, "the health watcher panicked");
    }
    if let Err(e) = worker.await {
        tracing::error!(error = %e, "the case projection panicked");
    }
    if let Some(timers) = timers
        && let Err(e) = timers.await
    {
        tracing::error!(error = %e, "the deadline timers panicked");
    }
    if let Err(e) = recompute.await {
        tracing::error!(error = %e, "the recount of provisional deadlines panicked");
    }
    result.map_err(ServeError::from)?;
    web.map_err(ServeError::from)
}

/// The status gRPC specifies for a request larger than the server's limit is
/// RESOURCE_EXHAUSTED; tonic sends OUT_OF_RANGE. Clients written against
/// other gRPC servers expect the former, so the status is corrected here.
fn oversized_is_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let oversized = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            // The message is percent-encoded on the wire.
            .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if oversized {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static("the request is larger than the server accepts (1 MiB)"),
        );
    }
    response
}

/// What the server needs besides the listener and the store.
#[derive(Debug)]
pub struct Settings {
    /// Deadline policy, calendar, jurisdiction and clock.
    pub services: Services,
    /// Who may call.
    pub auth: Authenticator,
    /// TLS, with client certificates required when it has a client CA
    /// (mutual TLS); `None` serves plaintext HTTP/2.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// How often the deadline timers look for clocks that reached a
    /// threshold; `None` runs no timers in this process.
    pub timer_interval: Option<Duration>,
    /// How many cases of each kind to keep in memory between commands
    /// ([`mediation_store::DEFAULT_CACHE_CAPACITY`] by default; 0: none).
    pub case_cache: usize,
    /// The deployment's secret under which read models key petitioners
    /// (`cli::petitioner_secret` says where `mediation serve` finds it).
    pub petitioner_secret: PetitionerSecret,
    /// Where the web board listens (`mediation_web`), sharing this
    /// server's engine and agencies; `None` serves no board.
    pub http: Option<TcpListener>,
}

/// Probes the store and reports what it found; returns whether it answered.
async fn report_store_health(
    reporter: &HealthReporter,
    probe: &mut Probe,
    was: Option<ServingStatus>,
) -> ServingStatus {
    let status = match probe.check().await {
        Ok(()) => ServingStatus::Serving,
        Err(e) => {
            if was != Some(ServingStatus::NotServing) {
                tracing::warn!(error = %e, "store unreachable: reporting NOT_SERVING");
            }
            ServingStatus::NotServing
        }
    };
    if was != Some(status) {
        if was.is_some() && status == ServingStatus::Serving {
            tracing::info!("store reachable again: reporting SERVING");
        }
        reporter.set_service_status("", status).await;
    }
    status
}

async fn watch_store(
    mut reporter: HealthReporter,
    mut probe: Probe,
    mut status: ServingStatus,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                // Shutting down: say so to load balancers, then end their
                // Watch streams, which the server would otherwise wait for
                // before it stops.
                reporter.set_service_status("", ServingStatus::NotServing).await;
                reporter.clear_service_status("").await;
                return;
            }
            _ = tick.tick() => {
                status = report_store_health(&reporter, &mut probe, Some(status)).await;
            }
        }
    }
}
