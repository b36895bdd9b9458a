//! Read models derived from the event log. They only read the log; they
//! never write events.
#![forbid(unsafe_code)]

pub mod case_index;
pub mod history;
pub mod records;
pub mod runner;
