//! Prometheus metrics: the recorder every crate's `metrics::counter!` lands
//! in, the gRPC layer that counts and times every call, and `/metrics`.
//!
//! The gRPC series follow the names and labels that go-grpc-prometheus made
//! the common ones, so existing dashboards and alerts fit:
//! `grpc_server_started_total`, `grpc_server_handled_total` (with
//! `grpc_code`) and the histogram `grpc_server_handling_seconds`, each
//! labelled `grpc_service`, `grpc_method` and `grpc_type` (`unary` or
//! `server_stream`). A path that names no method of this server counts
//! under `grpc_service="unknown"`, so that made-up paths cannot grow the
//! number of series. The engine's own series begin with `mediation_`; the
//! README lists them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use http_body::{Body, Frame};
use mediation_app::App;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// The latency buckets of `grpc_server_handling_seconds`, in seconds: from
/// a cached command's millisecond to a long wait for a position.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are folded into their buckets between scrapes, so
/// that an unscraped server does not keep every sample.
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on first use. `None` when
/// another recorder was installed first (by a program embedding the
/// server): its metrics then go there, and `/metrics` says so.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("grpc_server_handling_seconds".to_owned()),
                    &LATENCY_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Folds histogram samples into buckets every few seconds until `stop`.
pub(crate) async fn upkeep(stop: CancellationToken) {
    let Some(handle) = handle() else { return };
    let mut tick = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// `GET /metrics`: the Prometheus text format, with the projections' and
/// the log's gauges read fresh from the store.
pub(crate) fn router(app: App) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(app)
}

async fn scrape(State(app): State<App>) -> axum::response::Response {
    let Some(handle) = handle() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n",
        )
            .into_response();
    };
    match app.projection_report().await {
        Ok(report) => {
            for status in &report.projections {
                let name = status.name;
                metrics::gauge!("mediation_projection_position", "projection" => name)
                    .set(status.position as f64);
                metrics::gauge!("mediation_projection_lag_seconds", "projection" => name)
                    .set(status.lag.as_secs_f64());
                metrics::gauge!("mediation_projection_active", "projection" => name)
                    .set(if status.active { 1.0 } else { 0.0 });
            }
            let horizon = report.horizon;
            metrics::gauge!("mediation_log_readable_position").set(horizon.readable as f64);
            metrics::gauge!("mediation_log_committed_position").set(horizon.committed as f64);
            let held = horizon
                .holder
                .and_then(|h| h.age)
                .map_or(0.0, |age| age.as_secs_f64());
            metrics::gauge!("mediation_log_horizon_held_seconds").set(held);
            metrics::gauge!("mediation_store_up").set(1.0);
        }
        // The counters still tell what happened; the gauges keep their last
        // values and `mediation_store_up` says they are stale.
        Err(e) => {
            tracing::warn!(error = %e, "metrics: projection status not read");
            metrics::gauge!("mediation_store_up").set(0.0);
        }
    }
    handle.run_upkeep();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}

/// One method of the server, as its labels.
#[derive(Debug)]
struct Method {
    service: &'static str,
    method: &'static str,
    kind: &'static str,
}

const UNKNOWN: Method = Method {
    service: "unknown",
    method: "unknown",
    kind: "unknown",
};

/// Every method the server offers, by its HTTP/2 path, read once from the
/// descriptor sets that reflection serves.
fn methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = HashMap::new();
        for set in [
            mediation_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in set.file {
                let package = file.package().to_owned();
                for service in &file.service {
                    let full = if package.is_empty() {
                        service.name().to_owned()
                    } else {
                        format!("{package}.{}", service.name())
                    };
                    // A few dozen short names, leaked once per process, so
                    // that every call's labels are static.
                    let full: &'static str = Box::leak(full.into_boxed_str());
                    for method in &service.method {
                        let name: &'static str =
                            Box::leak(method.name().to_owned().into_boxed_str());
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (false, true) => "server_stream",
                            (true, false) => "client_stream",
                            (true, true) => "bidi_stream",
                        };
                        methods.insert(
                            format!("/{full}/{name}"),
                            Method {
                                service: full,
                                method: name,
                                kind,
                            },
                        );
                    }
                }
            }
        }
        methods
    })
}

/// A status code by the name go-grpc-prometheus gives it (Go's
/// `codes.Code.String()`), which dashboards match on.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The status in a header map (trailers, or the headers of a trailers-only
/// response), if it has one.
fn status_in(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse::<i32>().ok().map(Code::from_i32)
}

/// A call being counted: recorded once, when its status is known.
#[derive(Debug)]
struct Call {
    method: &'static Method,
    started: Instant,
}

impl Call {
    fn finish(self, code: Code) {
        let Method {
            service,
            method,
            kind,
        } = *self.method;
        metrics::counter!(
            "grpc_server_handled_total",
            "grpc_service" => service,
            "grpc_method" => method,
            "grpc_type" => kind,
            "grpc_code" => code_name(code)
        )
        .increment(1);
        metrics::histogram!(
            "grpc_server_handling_seconds",
            "grpc_service" => service,
            "grpc_method" => method,
            "grpc_type" => kind
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// The tower layer that counts and times every gRPC call of the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = methods().get(request.uri().path()).unwrap_or(&UNKNOWN);
        metrics::counter!(
            "grpc_server_started_total",
            "grpc_service" => method.service,
            "grpc_method" => method.method,
            "grpc_type" => method.kind
        )
        .increment(1);
        ResponseFuture {
            inner: self.inner.call(request),
            call: Some(Call {
                method,
                started: Instant::now(),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of a counted call.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<Counted<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only response (every refusal before the
                // handler ran, and most errors) has its status in the
                // headers; otherwise the status comes in the trailers.
                let call = match (call, status_in(response.headers())) {
                    (Some(call), Some(code)) => {
                        call.finish(code);
                        None
                    }
                    (call, _) => call,
                };
                Ok(response.map(|inner| Counted { inner, call }))
            }
            Err(e) => {
                if let Some(call) = call {
                    call.finish(Code::Unknown);
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call's status from the trailers,
    /// or as `Canceled` when it is dropped before its end (the client went
    /// away, or the server stopped the stream).
    #[derive(Debug)]
    pub struct Counted<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.finish(Code::Cancelled);
            }
        }
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    call.finish(status_in(trailers).unwrap_or(Code::Unknown));
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown);
                }
            }
            None => {
                // Ended without a status: not a valid gRPC response.
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_api_is_known_with_its_kind() {
        let methods = methods();
        let report = &methods["/mediation.v1.DisputeService/ReportDispute"];
        assert_eq!(
            (report.service, report.method, report.kind),
            ("mediation.v1.DisputeService", "ReportDispute", "unary")
        );
        let subscribe = &methods["/mediation.v1.EventService/SubscribeEvents"];
        assert_eq!(subscribe.kind, "server_stream");
        assert!(methods.contains_key("/grpc.health.v1.Health/Check"));
        assert!(!methods.contains_key("/mediation.v1.DisputeService/Nonsense"));
    }

    #[test]
    fn codes_are_named_as_dashboards_expect() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_in(&headers), Some(Code::NotFound));
    }
}
