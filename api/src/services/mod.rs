//! The gRPC services.
pub(crate) mod dispute;
pub(crate) mod events;
pub(crate) mod petition;
pub(crate) mod sla;
