//! The gRPC server.

use std::future::Future;
use std::time::Duration;

use mediation_store::Store;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often the health service re-checks the store.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (the listener broke, for instance).
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The embedded descriptor sets could not be served for reflection.
    #[error("server reflection could not be set up: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves the gRPC API on `listener` until `shutdown` completes, then stops
/// accepting calls, lets calls in flight finish and stops background work.
///
/// The standard `grpc.health.v1.Health` service reports `SERVING` for the
/// whole server (service name `""`) while the store answers, and
/// `NOT_SERVING` while it does not. Server reflection (v1 and v1alpha)
/// describes every service, so that grpcurl, grpcui or Postman work without
/// the `.proto` files.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(mediation_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(mediation_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    report_store_health(&reporter, &store).await;
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(watch_store(reporter, store, stop.clone()));

    let result = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;

    stop.cancel();
    if let Err(e) = watcher.await {
        tracing::error!(error = %e, "the health watcher panicked");
    }
    result.map_err(ServeError::from)
}

async fn report_store_health(reporter: &HealthReporter, store: &Store) {
    let status = match store.ping().await {
        Ok(()) => ServingStatus::Serving,
        Err(e) => {
            tracing::warn!(error = %e, "store unreachable: reporting NOT_SERVING");
            ServingStatus::NotServing
        }
    };
    reporter.set_service_status("", status).await;
}

async fn watch_store(reporter: HealthReporter, store: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => report_store_health(&reporter, &store).await,
        }
    }
}
