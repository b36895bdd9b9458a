//! Conversions between the protobuf messages and the domain types.

pub(crate) mod common;
pub(crate) mod dispute;
pub(crate) mod petition;
