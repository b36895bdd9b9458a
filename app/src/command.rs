//! A command as the application receives it: every field of the request
//! parsed, once, by the transport's conversion, before the application
//! decides anything.

use mediation_domain::dispute::DisputeAction;
use mediation_domain::petition::PetitionAction;
use mediation_domain::values::{ActorId, CaseId, DivisionCode};
use sha2::{Digest, Sha256};

use crate::AppError;

/// The longest request id accepted, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// A command request, parsed.
#[derive(Debug, Clone)]
pub struct Envelope<A> {
    /// The RPC, as the `.proto` names it ("HoldSession"): what the caller's
    /// roles must allow, and what the history records.
    pub rpc: &'static str,
    /// The caller's id for this request, which makes a retry harmless.
    pub request_id: RequestId,
    /// The person in the calling agency who acts.
    pub actor: ActorId,
    /// Which case.
    pub case: CaseRef,
    /// What to do.
    pub action: A,
    /// The request's fingerprint ([`fingerprint`]), so that a reused
    /// request id with a different request is told apart from a retry.
    pub fingerprint: String,
}

/// Which case a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseRef {
    /// A command that may create the case (report, register, receive), in
    /// the division its action names, which must lie in the caller's scope.
    New {
        /// The id the caller chose; `None` lets the server choose one.
        id: Option<CaseId>,
        /// Where the case may exist already (registering a reported
        /// dispute): the version it must still be at.
        expected_version: Option<u64>,
    },
    /// A command on an existing case.
    Existing {
        /// The case.
        id: CaseId,
        /// The version the case must still be at, if the caller asked.
        expected_version: Option<u64>,
    },
}

/// A caller-chosen request identifier: 1 to 128 characters, none of them
/// control characters. Kept as given, not trimmed: it is compared byte for
/// byte to spot retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Checks `value`; the error names the request field `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, AppError> {
        if value.is_empty() {
            return Err(AppError::invalid(
                field,
                "must not be empty: choose a unique id (a UUID, say) for each request and \
                 reuse it only to retry that request",
            ));
        }
        if value.chars().count() > MAX_REQUEST_ID_CHARS {
            return Err(AppError::invalid(
                field,
                format!("longer than {MAX_REQUEST_ID_CHARS} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(AppError::invalid(field, "contains control characters"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fingerprint of a request: SHA-256 over the RPC name and the encoded
/// message, in hex.
pub fn fingerprint(rpc: &str, encoded: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rpc.as_bytes());
    hasher.update([0]);
    hasher.update(encoded);
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the application asks of an action before the aggregate decides.
pub trait Action {
    /// The division a case-creating action puts the case in.
    fn creates_in(&self) -> Option<&DivisionCode>;
    /// The division an action moves the case into by the caller's own
    /// decision (a take-over, a send-down), which must lie in the caller's
    /// jurisdiction; escalation, by contrast, hands it to the level above.
    fn moves_into(&self) -> Option<&DivisionCode>;
}

impl Action for DisputeAction {
    fn creates_in(&self) -> Option<&DivisionCode> {
        match self {
            Self::Report { division, .. } | Self::Register { division, .. } => Some(division),
            _ => None,
        }
    }

    fn moves_into(&self) -> Option<&DivisionCode> {
        match self {
            Self::TakeOver { division } | Self::SendDown { division } => Some(division),
            _ => None,
        }
    }
}

impl Action for PetitionAction {
    fn creates_in(&self) -> Option<&DivisionCode> {
        match self {
            Self::Receive { division, .. } => Some(division),
            _ => None,
        }
    }

    fn moves_into(&self) -> Option<&DivisionCode> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_1_to_128_characters_without_control_characters() {
        assert!(RequestId::parse("request_id", "").is_err());
        assert!(RequestId::parse("request_id", &"x".repeat(129)).is_err());
        assert!(RequestId::parse("request_id", &"字".repeat(128)).is_ok());
        assert!(RequestId::parse("request_id", "a\nb").is_err());
        let id = RequestId::parse("request_id", " 2f0c-retry-safe").unwrap();
        assert_eq!(id.as_str(), " 2f0c-retry-safe");
        let refused = RequestId::parse("request_id", "").unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("invalid request_id: must not be empty")
        );
    }

    #[test]
    fn fingerprints_tell_rpcs_and_requests_apart() {
        assert_eq!(fingerprint("A", b"x"), fingerprint("A", b"x"));
        assert_ne!(fingerprint("A", b"x"), fingerprint("B", b"x"));
        assert_ne!(fingerprint("A", b"x"), fingerprint("A", b"y"));
        assert_eq!(fingerprint("A", b"").len(), 64);
    }
}
