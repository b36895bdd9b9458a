//! The machine-readable details of an error status, decoded as a client in
//! any language decodes them: the standard `google.rpc` messages carried in
//! `grpc-status-details-bin`, read here with tonic-types' `StatusExt`.

use std::collections::HashMap;

use tonic::Status;
use tonic_types::StatusExt as _;

/// The `domain` of every `ErrorInfo` the server sends.
pub(crate) const DOMAIN: &str = "mediation.v1";

/// Fails unless `status` carries a `BadRequest` naming `field` (as the
/// `.proto` spells it) with a description.
#[track_caller]
pub(crate) fn assert_bad_field(status: &Status, field: &str) {
    let details = status
        .check_error_details()
        .unwrap_or_else(|e| panic!("the details do not decode ({e}): {status:?}"));
    let bad = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    assert!(
        bad.field_violations
            .iter()
            .any(|v| v.field == field && !v.description.is_empty()),
        "the BadRequest does not name {field:?}: {bad:?}"
    );
}

/// The metadata of the `ErrorInfo` that `status` must carry, after checking
/// its `reason` and domain.
#[track_caller]
pub(crate) fn error_info(status: &Status, reason: &str) -> HashMap<String, String> {
    let details = status
        .check_error_details()
        .unwrap_or_else(|e| panic!("the details do not decode ({e}): {status:?}"));
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.domain, DOMAIN, "{status:?}");
    info.metadata.clone()
}
