//! The gRPC services.
//!
//! Only the server mounts them; outside this crate they are reachable as
//! trait objects over an [`App`], for callers that put the services' code
//! under load in their own process without the network (`mediation-bench`).
//! A request made that way must carry the caller (`Arc<auth::Caller>`) in
//! its extensions, as the server's authentication puts it there.
pub(crate) mod dispute;
pub(crate) mod events;
pub(crate) mod petition;
pub(crate) mod sla;

use std::sync::Arc;

use mediation_proto::v1::dispute_service_server::DisputeService;
use mediation_proto::v1::petition_service_server::PetitionService;
use mediation_proto::v1::sla_service_server::SlaService;

use crate::app::App;

/// The dispute service over `app`.
pub fn dispute_service(app: App) -> Arc<dyn DisputeService> {
    Arc::new(dispute::DisputeApi::new(app))
}

/// The petition service over `app`.
pub fn petition_service(app: App) -> Arc<dyn PetitionService> {
    Arc::new(petition::PetitionApi::new(app))
}

/// The SLA and statistics service over `app`.
pub fn sla_service(app: App) -> Arc<dyn SlaService> {
    Arc::new(sla::SlaApi::new(app))
}
