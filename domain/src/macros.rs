//! Macros shared by the domain's modules. Declared first in `lib.rs` with
//! `#[macro_use]`, so every later module can use them.

/// Declares a public fieldless enum whose values are stored and sent by
/// their snake_case names, with `ALL`, `parse` and `as_str`.
///
/// ```text
/// wire_enum!(
///     /// Doc comment of the enum.
///     Risk, "risk" {
///         /// Doc comment of the variant.
///         Green = "green",
///         Red = "red",
///     }
/// );
/// ```
///
/// `"risk"` names the field in the [`InvalidValue`](crate::values::InvalidValue)
/// that `parse` returns. By default `Display` prints the wire name; after
/// `, own_display` (`Status, "status", own_display { .. }`) the caller writes
/// its own `Display`, as the statuses do to complete "the dispute is ...".
/// Extra derives (`#[derive(Default)]`) and variant attributes (`#[default]`)
/// pass through.
///
/// serde names the variants with `rename_all = "snake_case"`, which is the
/// storage contract; each literal must be that same name, because `parse` and
/// `as_str` use the literal. The crate's tests check that the two agree.
macro_rules! wire_enum {
    (
        @enum $(#[$meta:meta])* $name:ident, $field:literal {
            $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// Parses the snake_case name, ignoring case and surrounding
            /// white space.
            pub fn parse(s: &str) -> Result<Self, $crate::values::InvalidValue> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($wire => Ok(Self::$variant),)+
                    other => Err($crate::values::InvalidValue::new(
                        $field,
                        format!(
                            "unknown value {other:?}; expected one of: {}",
                            [$($wire),+].join(", ")
                        ),
                    )),
                }
            }

            /// The snake_case name used in files, on the wire and in storage.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }
        }
    };
    (
        $(#[$meta:meta])* $name:ident, $field:literal, own_display {
            $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)?
        }
    ) => {
        wire_enum!(@enum $(#[$meta])* $name, $field { $($(#[$vmeta])* $variant = $wire),+ });
    };
    (
        $(#[$meta:meta])* $name:ident, $field:literal {
            $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)?
        }
    ) => {
        wire_enum!(@enum $(#[$meta])* $name, $field { $($(#[$vmeta])* $variant = $wire),+ });

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::fmt::{Debug, Display};

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::dispute::{
        AgreementForm, ConfirmationStep, DisputeStatus, EscalationReason, Outcome, PartyRole,
        Performance, Satisfaction, TerminationReason,
    };
    use crate::petition::{FinalBasis, OpinionOutcome, PetitionStatus};
    use crate::values::{
        DisputeCategory, InvalidValue, LegalChannel, MediationKind, PetitionChannel, Risk,
    };

    /// Every value's literal is its serde name, and `parse` reads it back.
    fn agrees_with_serde<T>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Result<T, InvalidValue>,
    ) where
        T: Copy + PartialEq + Debug + Serialize + DeserializeOwned,
    {
        for &value in all {
            let wire = as_str(value);
            assert_eq!(serde_json::to_value(value).unwrap(), wire, "{value:?}");
            assert_eq!(serde_json::from_value::<T>(wire.into()).unwrap(), value);
            assert_eq!(parse(wire).unwrap(), value);
            assert_eq!(parse(&format!(" {} ", wire.to_uppercase())).unwrap(), value);
        }
    }

    /// `Display` prints the wire name unless the enum wrote its own.
    fn displays_the_wire_name<T: Copy + Display>(all: &[T], as_str: fn(T) -> &'static str) {
        for &value in all {
            assert_eq!(value.to_string(), as_str(value));
        }
    }

    #[test]
    fn every_wire_enum_stores_the_name_it_parses_and_prints() {
        agrees_with_serde(
            MediationKind::ALL,
            MediationKind::as_str,
            MediationKind::parse,
        );
        agrees_with_serde(
            DisputeCategory::ALL,
            DisputeCategory::as_str,
            DisputeCategory::parse,
        );
        agrees_with_serde(Risk::ALL, Risk::as_str, Risk::parse);
        agrees_with_serde(
            PetitionChannel::ALL,
            PetitionChannel::as_str,
            PetitionChannel::parse,
        );
        agrees_with_serde(LegalChannel::ALL, LegalChannel::as_str, LegalChannel::parse);
        agrees_with_serde(PartyRole::ALL, PartyRole::as_str, PartyRole::parse);
        agrees_with_serde(
            AgreementForm::ALL,
            AgreementForm::as_str,
            AgreementForm::parse,
        );
        agrees_with_serde(
            TerminationReason::ALL,
            TerminationReason::as_str,
            TerminationReason::parse,
        );
        agrees_with_serde(
            EscalationReason::ALL,
            EscalationReason::as_str,
            EscalationReason::parse,
        );
        agrees_with_serde(Performance::ALL, Performance::as_str, Performance::parse);
        agrees_with_serde(Satisfaction::ALL, Satisfaction::as_str, Satisfaction::parse);
        agrees_with_serde(Outcome::ALL, Outcome::as_str, Outcome::parse);
        agrees_with_serde(
            DisputeStatus::ALL,
            DisputeStatus::as_str,
            DisputeStatus::parse,
        );
        agrees_with_serde(
            PetitionStatus::ALL,
            PetitionStatus::as_str,
            PetitionStatus::parse,
        );
        agrees_with_serde(
            OpinionOutcome::ALL,
            OpinionOutcome::as_str,
            OpinionOutcome::parse,
        );
        agrees_with_serde(FinalBasis::ALL, FinalBasis::as_str, FinalBasis::parse);
        agrees_with_serde(
            ConfirmationStep::ALL,
            ConfirmationStep::as_str,
            ConfirmationStep::parse,
        );

        displays_the_wire_name(Risk::ALL, Risk::as_str);
        displays_the_wire_name(PartyRole::ALL, PartyRole::as_str);
        displays_the_wire_name(OpinionOutcome::ALL, OpinionOutcome::as_str);
    }

    #[test]
    fn stored_names_stay_as_they_were() {
        // The storage contract: these names are in events and snapshots.
        assert_eq!(PetitionStatus::UnderReReview.as_str(), "under_re_review");
        assert_eq!(PetitionStatus::NotAccepted.as_str(), "not_accepted");
        assert_eq!(
            FinalBasis::ReReviewWindowLapsed.as_str(),
            "re_review_window_lapsed"
        );
        assert_eq!(OpinionOutcome::NotSupport.as_str(), "not_support");
        assert_eq!(
            LegalChannel::AdministrativeReview.as_str(),
            "administrative_review"
        );
        assert_eq!(EscalationReason::RedRisk.as_str(), "red_risk");
        assert_eq!(DisputeStatus::default(), DisputeStatus::New);
        assert_eq!(PetitionStatus::default(), PetitionStatus::New);
    }

    #[test]
    fn statuses_keep_their_human_display_and_parse_names_the_field() {
        assert_eq!(DisputeStatus::Mediating.to_string(), "in mediation");
        assert_eq!(PetitionStatus::Received.to_string(), "awaiting triage");
        let error = PetitionStatus::parse("lost").unwrap_err();
        assert_eq!(error.field, "status");
        assert!(error.reason.contains("under_re_review"), "{error}");
    }
}
