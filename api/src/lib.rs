//! The mediation server: configuration, the gRPC server, telemetry.
//!
//! `main.rs` only parses the command line and hands over; everything it
//! runs lives here so that tests start the same server on port 0.
#![forbid(unsafe_code)]

pub mod config;
pub mod server;
pub mod telemetry;

pub use server::{ServeError, serve};
