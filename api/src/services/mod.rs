//! The gRPC services.
//!
//! Only the server mounts them; outside this crate they are reachable as
//! trait objects over an [`App`], for callers that put the services' code
//! under load in their own process without the network (`mediation-bench`).
//! A request made that way must carry the caller (`Arc<Caller>`) in its
//! extensions, as the server's authentication puts it there.
pub(crate) mod dispute;
pub(crate) mod events;
pub(crate) mod petition;
pub(crate) mod privacy;
pub(crate) mod sla;

use std::sync::Arc;

use mediation_app::App;
use mediation_app::access::Agencies;
use mediation_proto::v1::dispute_service_server::DisputeService;
use mediation_proto::v1::petition_service_server::PetitionService;
use mediation_proto::v1::sla_service_server::SlaService;

/// The dispute service over `app`.
pub fn dispute_service(app: App) -> Arc<dyn DisputeService> {
    Arc::new(dispute::DisputeApi::new(app))
}

/// The petition service over `app`, with authentication off: any agency id
/// may be named as a complained unit.
pub fn petition_service(app: App) -> Arc<dyn PetitionService> {
    Arc::new(petition::PetitionApi::new(app, Agencies::disabled()))
}

/// The SLA and statistics service over `app`.
pub fn sla_service(app: App) -> Arc<dyn SlaService> {
    Arc::new(sla::SlaApi::new(app))
}

/// Writes a service whose command RPCs are all alike, from one line per
/// RPC: `method(Request) -> Response = "Rpc", new|existing, convert;`.
///
/// For each it implements `TryFrom<&pb::Request>` for
/// [`Parsed`](crate::convert::common::Parsed)`<Action>`, which parses
/// every field of the request once into an envelope, and the tonic method,
/// which hands that conversion to the [`App`] method `$command` (the
/// application authorises the RPC before it converts, so a caller without
/// the role learns nothing about its fields) and answers the outcome. The
/// service's other methods follow after `;` verbatim, inside the same
/// `#[tonic::async_trait]` impl.
macro_rules! command_service {
    (
        $api:ident: $service:ident, $action:ty, $command:ident;
        $($method:ident($request:ident) -> $response:ident = $rpc:literal, $case:ident, $convert:path;)+
        ; $($rest:tt)*
    ) => {
        $(
            impl TryFrom<&::mediation_proto::v1::$request> for $crate::convert::common::Parsed<$action> {
                type Error = ::mediation_app::AppError;

                fn try_from(r: &::mediation_proto::v1::$request) -> Result<Self, Self::Error> {
                    $crate::convert::common::envelope(
                        r,
                        $rpc,
                        $crate::convert::common::Case::$case,
                        $convert,
                    )
                    .map($crate::convert::common::Parsed)
                }
            }
        )+

        #[tonic::async_trait]
        impl $service for $api {
            $(
                #[tracing::instrument(skip_all, fields(rpc = $rpc))]
                async fn $method(
                    &self,
                    request: ::tonic::Request<::mediation_proto::v1::$request>,
                ) -> Result<::tonic::Response<::mediation_proto::v1::$response>, ::tonic::Status> {
                    let caller = $crate::auth::caller(&request)?;
                    let r = request.get_ref();
                    let outcome = self
                        .app
                        .$command(&caller, $rpc, || {
                            $crate::convert::common::Parsed::<$action>::try_from(r).map(|p| p.0)
                        })
                        .await
                        .map_err($crate::error::status)?;
                    Ok(::tonic::Response::new(::mediation_proto::v1::$response {
                        outcome: Some($crate::convert::common::outcome_to_pb(outcome)),
                    }))
                }
            )+

            $($rest)*
        }
    };
}
pub(crate) use command_service;
