//! The mediation server: configuration, the gRPC services over the
//! application layer (`mediation-app`), telemetry.
//!
//! `main.rs` only parses the command line and hands over; everything it
//! runs lives here so that tests start the same server on port 0.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
mod convert;
pub mod error;
pub mod metrics;
pub mod server;
pub mod services;
pub mod telemetry;

pub use server::{ServeError, Settings, serve};
