//! The gRPC wire format of the mediation service: package `mediation.v1`.
//!
//! This crate holds only the wire format: the prost messages and the tonic
//! clients and servers generated from the `.proto` files under `mediation/`, plus the encoded descriptor set for
//! server reflection. It contains no logic and no conversions to or from the
//! domain types; only the `api` crate (and the bench, a gRPC client)
//! depends on it.
//!
//! The `.proto` files are compiled by `build.rs` with [protox], a pure-Rust
//! protobuf compiler, so building this crate does not need `protoc`.
//!
//! [protox]: https://docs.rs/protox

#![forbid(unsafe_code)]

/// The encoded `google.protobuf.FileDescriptorSet` of every `.proto` file of
/// this crate and their imports (with source info, so comments included), for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mediation_descriptor.bin"));

/// Package `mediation.v1`: the code generated from `mediation/v1/*.proto`.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("mediation.v1");
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::{FileDescriptorSet, Timestamp};

    use super::FILE_DESCRIPTOR_SET;
    use super::v1::{AggregateType, Event};

    #[test]
    fn descriptor_set_decodes_and_describes_event() {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        let file = fds
            .file
            .iter()
            .find(|f| f.name() == "mediation/v1/event.proto")
            .expect("event.proto");
        assert_eq!(file.package(), "mediation.v1");
        let event = file
            .message_type
            .iter()
            .find(|m| m.name() == "Event")
            .expect("message Event");
        assert_eq!(event.field.len(), 11);
        // Imports are included, so reflection can resolve the Timestamp type.
        assert!(
            fds.file
                .iter()
                .any(|f| f.name() == "google/protobuf/timestamp.proto")
        );
    }

    #[test]
    fn event_round_trips() {
        let event = Event {
            position: 42,
            event_id: "5f0c6a43-8d8e-4c0e-9a53-2f1b7f3c9d10".to_owned(),
            record_time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789,
            }),
            aggregate_type: AggregateType::Dispute.into(),
            case_id: "case-1".to_owned(),
            sequence: 1,
            event_type: "Registered".to_owned(),
            event_version: "1".to_owned(),
            payload_json: r#"{"Registered":{}}"#.to_owned(),
            division_code: "990101001201".to_owned(),
            part: 1,
        };
        let bytes = event.encode_to_vec();
        let decoded = Event::decode(bytes.as_slice()).expect("event decodes");
        assert_eq!(decoded, event);
    }
}
