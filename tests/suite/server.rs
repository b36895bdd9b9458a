//! The server, started as `serve` starts it, on port 0, spoken to over gRPC.

use std::sync::Arc;

use mediation_api::auth::Authenticator;
use mediation_domain::services::{Services, SystemClock};
use mediation_tests::TestDb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

on_both_backends!(health_and_reflection_answer_and_shutdown_is_clean);

async fn health_and_reflection_answer_and_shutdown_is_clean(db: &TestDb) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let settings = mediation_api::Settings {
        services: Services::shipped_defaults(Arc::new(SystemClock)),
        auth: Authenticator::disabled(),
        tls: None,
        timer_interval: None,
        case_cache: mediation_store::DEFAULT_CACHE_CAPACITY,
        petitioner_secret: mediation_projections::petitioners::PetitionerSecret::development(),
        http: None,
    };
    let server = tokio::spawn(mediation_api::serve(
        listener,
        db.store.clone(),
        settings,
        async {
            let _ = stopped.await;
        },
    ));

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status(), ServingStatus::Serving);

    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "grpc.health.v1.Health",
        "mediation.v1.DisputeService",
        "mediation.v1.PetitionService",
        "mediation.v1.EventService",
    ] {
        assert!(names.contains(&service), "{service} missing from {names:?}");
    }

    // The engine's own wire types are described too.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "mediation.v1.Event".into(),
        )),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("expected a file descriptor, got {reply:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .is_err(),
        "the listener is closed after shutdown"
    );
}
