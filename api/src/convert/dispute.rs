//! Dispute requests to [`DisputeAction`]s, and a [`Dispute`] to its
//! protobuf message.
//!
//! Each command converter checks the fields of its action; the envelope
//! (`request_id`, `actor_id`, `dispute_id`) is checked once for every
//! command by [`envelope`](super::common::envelope).

use mediation_domain::dispute::{
    AgreementForm, Dispute, DisputeAction, DisputeStatus, EscalationReason, MediationBody, Party,
    PartyRole, Performance, Satisfaction, TerminationReason,
};
use mediation_domain::values::{DisputeCategory, LegalChannel, Level, MediationKind, Risk};
use mediation_proto::v1 as pb;

use super::common::{
    BadField, agency_id, command_requests, deadline_to_pb, division_code, enum_to_pb, name,
    optional_division_code, optional_enum, optional_enum_to_pb, optional_name, optional_text,
    required_enum, string_or_empty, text,
};
use mediation_app::{CaseFilter, Found};

command_requests!(unversioned dispute_id: ReportDisputeRequest);
command_requests!(dispute_id:
    RegisterDisputeRequest,
    DispatchDisputeRequest,
    RecordConsentRequest,
    HoldSessionRequest,
    ReachAgreementRequest,
    ExtendMediationRequest,
    TerminateMediationRequest,
    EscalateDisputeRequest,
    TakeOverDisputeRequest,
    SendDownDisputeRequest,
    ReferDisputeRequest,
    RequestJudicialConfirmationRequest,
    AcceptJudicialConfirmationRequest,
    ExtendJudicialConfirmationRequest,
    RuleJudicialConfirmationRequest,
    RecordFollowUpRequest,
    ReviewDisputeRequest,
    CloseDisputeRequest,
    EvaluateDisputeRequest,
    ReopenDisputeRequest,
    AssignDisputeOfficialRequest,
);

/// ReportDispute.
pub(crate) fn report_dispute(r: &pb::ReportDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::Report {
        division: division_code("division_code", &r.division_code)?,
        grid: optional_name("grid", &r.grid)?,
        summary: text("summary", &r.summary)?,
    })
}

/// RegisterDispute. Whether both sides are present is the dispute's rule,
/// checked there; here each party must be well formed.
pub(crate) fn register_dispute(r: &pb::RegisterDisputeRequest) -> Result<DisputeAction, BadField> {
    let parties = r
        .parties
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Party {
                role: required_enum::<PartyRole>(&format!("parties[{i}].role"), p.role)?,
                name: name(&format!("parties[{i}].name"), &p.name)?,
            })
        })
        .collect::<Result<Vec<_>, BadField>>()?;
    Ok(DisputeAction::Register {
        division: division_code("division_code", &r.division_code)?,
        level: required_enum::<Level>("level", r.level)?,
        category: required_enum::<DisputeCategory>("category", r.category)?,
        risk: required_enum::<Risk>("risk", r.risk)?,
        summary: text("summary", &r.summary)?,
        parties,
    })
}

/// DispatchDispute.
pub(crate) fn dispatch_dispute(r: &pb::DispatchDisputeRequest) -> Result<DisputeAction, BadField> {
    let body = r
        .body
        .as_ref()
        .ok_or_else(|| BadField::new("body", "must be set"))?;
    Ok(DisputeAction::Dispatch {
        body: MediationBody {
            id: agency_id("body.body_id", &body.body_id)?,
            name: name("body.name", &body.name)?,
            kind: required_enum::<MediationKind>("body.kind", body.kind)?,
        },
        mediator: optional_name("mediator", &r.mediator)?,
    })
}

/// RecordConsent.
pub(crate) fn record_consent(r: &pb::RecordConsentRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::RecordConsent {
        party: required_enum::<PartyRole>("party", r.party)?,
        consents: r.consents,
        reason: optional_text("reason", &r.reason)?,
    })
}

/// HoldSession.
pub(crate) fn hold_session(r: &pb::HoldSessionRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::HoldSession {
        summary: text("summary", &r.summary)?,
    })
}

/// ReachAgreement.
pub(crate) fn reach_agreement(r: &pb::ReachAgreementRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::ReachAgreement {
        form: required_enum::<AgreementForm>("form", r.form)?,
        terms: text("terms", &r.terms)?,
    })
}

/// ExtendMediation. How many days the policy allows is the dispute's rule;
/// here the request must ask for some.
pub(crate) fn extend_mediation(r: &pb::ExtendMediationRequest) -> Result<DisputeAction, BadField> {
    if r.days == 0 {
        return Err(BadField::new("days", "must be at least 1"));
    }
    Ok(DisputeAction::ExtendMediation {
        days: r.days,
        reason: text("reason", &r.reason)?,
    })
}

/// TerminateMediation.
pub(crate) fn terminate_mediation(
    r: &pb::TerminateMediationRequest,
) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::TerminateMediation {
        reason: required_enum::<TerminationReason>("reason", r.reason)?,
        note: text("note", &r.note)?,
        legal_routes_explained: r.legal_routes_explained,
    })
}

/// EscalateDispute.
pub(crate) fn escalate_dispute(r: &pb::EscalateDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::Escalate {
        reason: required_enum::<EscalationReason>("reason", r.reason)?,
    })
}

/// TakeOverDispute.
pub(crate) fn take_over_dispute(r: &pb::TakeOverDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::TakeOver {
        division: division_code("division_code", &r.division_code)?,
    })
}

/// SendDownDispute.
pub(crate) fn send_down_dispute(r: &pb::SendDownDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::SendDown {
        division: division_code("division_code", &r.division_code)?,
    })
}

/// ReferDispute.
pub(crate) fn refer_dispute(r: &pb::ReferDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::ReferToLegalChannel {
        channel: required_enum::<LegalChannel>("channel", r.channel)?,
        note: text("note", &r.note)?,
    })
}

/// RequestJudicialConfirmation.
pub(crate) fn request_judicial_confirmation(
    r: &pb::RequestJudicialConfirmationRequest,
) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::RequestJudicialConfirmation {
        court: name("court", &r.court)?,
    })
}

/// AcceptJudicialConfirmation.
pub(crate) fn accept_judicial_confirmation(
    r: &pb::AcceptJudicialConfirmationRequest,
) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::AcceptJudicialConfirmation {
        accepted: r.accepted,
        note: optional_text("note", &r.note)?,
    })
}

/// ExtendJudicialConfirmation.
pub(crate) fn extend_judicial_confirmation(
    r: &pb::ExtendJudicialConfirmationRequest,
) -> Result<DisputeAction, BadField> {
    if r.days == 0 {
        return Err(BadField::new("days", "must be at least 1"));
    }
    Ok(DisputeAction::ExtendJudicialConfirmation {
        days: r.days,
        reason: text("reason", &r.reason)?,
    })
}

/// RuleJudicialConfirmation.
pub(crate) fn rule_judicial_confirmation(
    r: &pb::RuleJudicialConfirmationRequest,
) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::RuleJudicialConfirmation {
        confirmed: r.confirmed,
        note: optional_text("note", &r.note)?,
    })
}

/// RecordFollowUp.
pub(crate) fn record_follow_up(r: &pb::RecordFollowUpRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::RecordFollowUp {
        performance: required_enum::<Performance>("performance", r.performance)?,
        note: text("note", &r.note)?,
    })
}

/// ReviewDispute.
pub(crate) fn review_dispute(r: &pb::ReviewDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::Review {
        approved: r.approved,
        note: optional_text("note", &r.note)?,
    })
}

/// CloseDispute: nothing beyond the envelope.
pub(crate) fn close_dispute(_r: &pb::CloseDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::Close {})
}

/// EvaluateDispute.
pub(crate) fn evaluate_dispute(r: &pb::EvaluateDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::Evaluate {
        satisfaction: required_enum::<Satisfaction>("satisfaction", r.satisfaction)?,
        note: optional_text("note", &r.note)?,
    })
}

/// ReopenDispute.
pub(crate) fn reopen_dispute(r: &pb::ReopenDisputeRequest) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::Reopen {
        reason: text("reason", &r.reason)?,
    })
}

/// AssignDisputeOfficial.
pub(crate) fn assign_dispute_official(
    r: &pb::AssignDisputeOfficialRequest,
) -> Result<DisputeAction, BadField> {
    Ok(DisputeAction::AssignOfficial {
        official: name("official", &r.official)?,
    })
}

/// The filters of ListDisputes, as the stored names the engine matches.
/// Unset (empty or `*_UNSPECIFIED`) filters match everything.
pub(crate) fn list_filter(r: &pb::ListDisputesRequest) -> Result<CaseFilter, BadField> {
    Ok(CaseFilter {
        division: optional_division_code("division_code", &r.division_code)?,
        level: optional_enum::<Level>("level", r.level)?.map(Level::as_str),
        status: optional_enum::<DisputeStatus>("status", r.status)?.map(DisputeStatus::as_str),
        category: optional_enum::<DisputeCategory>("category", r.category)?
            .map(DisputeCategory::as_str),
        risk: optional_enum::<Risk>("risk", r.risk)?.map(Risk::as_str),
        channel: None,
    })
}

/// A dispute as a response carries it. Without `show_parties` the parties
/// are left out and `parties_withheld` says so, so that a client can tell
/// "withheld" from "none yet".
pub(crate) fn dispute_to_pb(found: &Found<Dispute>, show_parties: bool) -> pb::Dispute {
    let d = &found.case;
    let parties = if show_parties {
        d.parties()
            .iter()
            .map(|p| pb::Party {
                role: enum_to_pb(p.role),
                name: p.name.to_string(),
            })
            .collect()
    } else {
        Vec::new()
    };
    pb::Dispute {
        dispute_id: found.id.clone(),
        version: found.version,
        status: enum_to_pb(d.status()),
        division_code: string_or_empty(d.division()),
        level: optional_enum_to_pb(d.level()),
        intake_level: optional_enum_to_pb(d.intake_level()),
        grid: string_or_empty(d.grid()),
        category: optional_enum_to_pb(d.category()),
        risk: optional_enum_to_pb(d.risk()),
        summary: string_or_empty(d.summary()),
        parties,
        parties_withheld: !show_parties && !d.parties().is_empty(),
        registration_due: d.registration_due().map(deadline_to_pb),
        handling_due: d.handling_due().map(deadline_to_pb),
        body: d.body().map(|b| pb::MediationBody {
            body_id: b.id.to_string(),
            name: b.name.to_string(),
            kind: enum_to_pb(b.kind),
        }),
        mediator: string_or_empty(d.mediator()),
        mediation_due: d.mediation_due().map(deadline_to_pb),
        consents: d.consents().map(enum_to_pb).collect(),
        session_count: d.session_count(),
        agreement: d.agreement().map(|a| pb::Agreement {
            form: enum_to_pb(a.form),
            terms: a.terms.to_string(),
            confirmation_window: a.confirmation_window.as_ref().map(deadline_to_pb),
        }),
        judicial_confirmation: d.judicial_confirmation().map(|c| pb::JudicialConfirmation {
            court: c.court.to_string(),
            ruling_due: c.ruling_due.as_ref().map(deadline_to_pb),
            ruled: c.confirmed.is_some(),
            confirmed: c.confirmed == Some(true),
            step: enum_to_pb(c.step()),
            acceptance_due: c.acceptance_due.as_ref().map(deadline_to_pb),
            ruling_extension_count: c.extensions,
        }),
        performance: optional_enum_to_pb(d.performance()),
        returned_on_review: d.returned_on_review(),
        legal_channel: optional_enum_to_pb(d.legal_channel()),
        outcome: optional_enum_to_pb(d.outcome()),
        satisfaction: optional_enum_to_pb(d.satisfaction()),
        mediation_extension_count: d.mediation_extensions(),
        official: string_or_empty(d.official()),
    }
}

#[cfg(test)]
mod tests {
    use mediation_domain::values::{AgencyId, DivisionCode, Name, Text};
    use serde_json::json;
    use tonic::{Code, Status};

    use super::*;

    fn message(bad: BadField) -> String {
        let status = Status::from(bad);
        assert_eq!(status.code(), Code::InvalidArgument);
        status.message().to_owned()
    }

    fn register() -> pb::RegisterDisputeRequest {
        pb::RegisterDisputeRequest {
            request_id: "r-1".into(),
            dispute_id: String::new(),
            expected_version: None,
            actor_id: "clerk-1".into(),
            division_code: "990101001201".into(),
            level: pb::Level::Village.into(),
            category: pb::DisputeCategory::Neighbourhood.into(),
            risk: pb::Risk::Yellow.into(),
            summary: "A wall built on the boundary.".into(),
            parties: vec![
                pb::Party {
                    role: pb::PartyRole::Applicant.into(),
                    name: "Zhang San".into(),
                },
                pb::Party {
                    role: pb::PartyRole::Respondent.into(),
                    name: "Li Si".into(),
                },
            ],
        }
    }

    #[test]
    fn a_good_registration_converts() {
        let r = register();
        assert_eq!(
            register_dispute(&r).unwrap(),
            DisputeAction::Register {
                division: DivisionCode::parse("990101001201").unwrap(),
                level: Level::Village,
                category: DisputeCategory::Neighbourhood,
                risk: Risk::Yellow,
                summary: Text::parse("A wall built on the boundary.").unwrap(),
                parties: vec![
                    Party {
                        role: PartyRole::Applicant,
                        name: Name::parse("Zhang San").unwrap(),
                    },
                    Party {
                        role: PartyRole::Respondent,
                        name: Name::parse("Li Si").unwrap(),
                    },
                ],
            }
        );
    }

    #[test]
    fn bad_registrations_name_the_field() {
        let mut r = register();
        r.parties[1].name = " ".into();
        assert_eq!(
            message(register_dispute(&r).unwrap_err()),
            "invalid parties[1].name: must not be empty"
        );

        let mut r = register();
        r.parties[0].role = 0;
        assert!(
            message(register_dispute(&r).unwrap_err())
                .starts_with("invalid parties[0].role: must be set")
        );

        let mut r = register();
        r.level = 9;
        assert!(
            message(register_dispute(&r).unwrap_err())
                .starts_with("invalid level: unknown value 9")
        );

        let mut r = register();
        r.category = 0;
        assert!(message(register_dispute(&r).unwrap_err()).starts_with("invalid category:"));

        let mut r = register();
        r.division_code = "9901".into();
        assert_eq!(
            message(register_dispute(&r).unwrap_err()),
            "invalid division_code: must be a 12-digit division code"
        );

        let mut r = register();
        r.summary = String::new();
        assert_eq!(
            message(register_dispute(&r).unwrap_err()),
            "invalid summary: must not be empty"
        );
    }

    #[test]
    fn a_dispatch_needs_a_complete_body() {
        let good = pb::DispatchDisputeRequest {
            request_id: "r-2".into(),
            dispute_id: "D-1".into(),
            expected_version: Some(1),
            actor_id: "clerk-1".into(),
            body: Some(pb::MediationBody {
                body_id: "committee-9".into(),
                name: "Village Mediation Committee".into(),
                kind: pb::MediationKind::Peoples.into(),
            }),
            mediator: String::new(),
        };
        assert_eq!(
            dispatch_dispute(&good).unwrap(),
            DisputeAction::Dispatch {
                body: MediationBody {
                    id: AgencyId::parse("committee-9").unwrap(),
                    name: Name::parse("Village Mediation Committee").unwrap(),
                    kind: MediationKind::Peoples,
                },
                mediator: None,
            }
        );

        let no_body = pb::DispatchDisputeRequest {
            body: None,
            ..good.clone()
        };
        assert_eq!(
            message(dispatch_dispute(&no_body).unwrap_err()),
            "invalid body: must be set"
        );
        let mut no_kind = good.clone();
        if let Some(body) = &mut no_kind.body {
            body.kind = 0;
        }
        assert!(message(dispatch_dispute(&no_kind).unwrap_err()).starts_with("invalid body.kind:"));
        let mut no_body_id = good;
        if let Some(body) = &mut no_body_id.body {
            body.body_id = String::new();
        }
        assert_eq!(
            message(dispatch_dispute(&no_body_id).unwrap_err()),
            "invalid body.body_id: must not be empty"
        );
    }

    #[test]
    fn simple_commands_convert_and_optional_notes_may_be_empty() {
        let session = pb::HoldSessionRequest {
            summary: "Both sides heard.".into(),
            ..Default::default()
        };
        assert_eq!(
            hold_session(&session).unwrap(),
            DisputeAction::HoldSession {
                summary: Text::parse("Both sides heard.").unwrap()
            }
        );
        let review = pb::ReviewDisputeRequest {
            approved: true,
            ..Default::default()
        };
        assert_eq!(
            review_dispute(&review).unwrap(),
            DisputeAction::Review {
                approved: true,
                note: None
            }
        );
        let escalate = pb::EscalateDisputeRequest {
            reason: pb::EscalationReason::RedRisk.into(),
            ..Default::default()
        };
        assert_eq!(
            escalate_dispute(&escalate).unwrap(),
            DisputeAction::Escalate {
                reason: EscalationReason::RedRisk
            }
        );
        assert_eq!(
            close_dispute(&pb::CloseDisputeRequest::default()).unwrap(),
            DisputeAction::Close {}
        );
    }

    #[test]
    fn required_fields_of_simple_commands_name_the_field() {
        let terminate = pb::TerminateMediationRequest {
            reason: pb::TerminationReason::NoAgreement.into(),
            note: String::new(),
            ..Default::default()
        };
        assert_eq!(
            message(terminate_mediation(&terminate).unwrap_err()),
            "invalid note: must not be empty"
        );
        let agreement = pb::ReachAgreementRequest {
            terms: "Pay 100".into(),
            ..Default::default()
        };
        assert!(message(reach_agreement(&agreement).unwrap_err()).starts_with("invalid form:"));
        let consent = pb::RecordConsentRequest {
            party: 3,
            consents: true,
            ..Default::default()
        };
        assert!(
            message(record_consent(&consent).unwrap_err())
                .starts_with("invalid party: unknown value 3")
        );
        let court = pb::RequestJudicialConfirmationRequest::default();
        assert_eq!(
            message(request_judicial_confirmation(&court).unwrap_err()),
            "invalid court: must not be empty"
        );
    }

    #[test]
    fn extensions_and_the_courts_acceptance_convert() {
        let extend = pb::ExtendMediationRequest {
            days: 20,
            reason: "Both parties signed for more time.".into(),
            ..Default::default()
        };
        assert_eq!(
            extend_mediation(&extend).unwrap(),
            DisputeAction::ExtendMediation {
                days: 20,
                reason: Text::parse("Both parties signed for more time.").unwrap(),
            }
        );
        let no_days = pb::ExtendMediationRequest {
            days: 0,
            ..extend.clone()
        };
        assert_eq!(
            message(extend_mediation(&no_days).unwrap_err()),
            "invalid days: must be at least 1"
        );
        let no_reason = pb::ExtendMediationRequest {
            reason: String::new(),
            ..extend
        };
        assert_eq!(
            message(extend_mediation(&no_reason).unwrap_err()),
            "invalid reason: must not be empty"
        );
        let court = pb::ExtendJudicialConfirmationRequest {
            days: 10,
            reason: "A complex case; the president approved.".into(),
            ..Default::default()
        };
        assert_eq!(
            extend_judicial_confirmation(&court).unwrap(),
            DisputeAction::ExtendJudicialConfirmation {
                days: 10,
                reason: Text::parse("A complex case; the president approved.").unwrap(),
            }
        );
        assert_eq!(
            message(
                extend_judicial_confirmation(&pb::ExtendJudicialConfirmationRequest {
                    days: 0,
                    ..court
                })
                .unwrap_err()
            ),
            "invalid days: must be at least 1"
        );
        let refused = pb::AcceptJudicialConfirmationRequest {
            accepted: false,
            note: "Marital status cannot be confirmed.".into(),
            ..Default::default()
        };
        assert_eq!(
            accept_judicial_confirmation(&refused).unwrap(),
            DisputeAction::AcceptJudicialConfirmation {
                accepted: false,
                note: Some(Text::parse("Marital status cannot be confirmed.").unwrap()),
            }
        );
        assert_eq!(
            accept_judicial_confirmation(&pb::AcceptJudicialConfirmationRequest {
                accepted: true,
                ..Default::default()
            })
            .unwrap(),
            DisputeAction::AcceptJudicialConfirmation {
                accepted: true,
                note: None,
            }
        );
    }

    #[test]
    fn list_filters_become_stored_names() {
        let all = list_filter(&pb::ListDisputesRequest::default()).unwrap();
        assert!(all.division.is_none() && all.level.is_none() && all.status.is_none());
        assert!(all.category.is_none() && all.risk.is_none() && all.channel.is_none());

        let some = list_filter(&pb::ListDisputesRequest {
            division_code: "990101000000".into(),
            level: pb::Level::Town.into(),
            status: pb::DisputeStatus::Mediating.into(),
            category: pb::DisputeCategory::Land.into(),
            risk: pb::Risk::Red.into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(some.division.unwrap().as_str(), "990101000000");
        assert_eq!(some.level, Some("town"));
        assert_eq!(some.status, Some("mediating"));
        assert_eq!(some.category, Some("land"));
        assert_eq!(some.risk, Some("red"));

        let bad = pb::ListDisputesRequest {
            status: 77,
            ..Default::default()
        };
        assert!(message(list_filter(&bad).unwrap_err()).starts_with("invalid status:"));
    }

    /// A dispute in mediation with an agreement pending confirmation, built
    /// from its serialised state: the aggregate's fields are private and
    /// this crate does not depend on cqrs-es to apply events.
    fn found() -> Found<Dispute> {
        let deadline = |stage: &str| {
            json!({
                "stage": stage,
                "due": "2026-03-10T16:00:00Z",
                "last_day": "2026-03-10",
                "provisional": false
            })
        };
        let case: Dispute = serde_json::from_value(json!({
            "status": "agreed",
            "division": "990101001201",
            "level": "village",
            "intake_level": "village",
            "grid": "Grid 3",
            "category": "neighbourhood",
            "risk": "yellow",
            "summary": "A wall built on the boundary.",
            "parties": [
                {"role": "applicant", "name": "Zhang San"},
                {"role": "respondent", "name": "Li Si"}
            ],
            "handling_due": deadline("village_handling"),
            "body": {"id": "committee-9", "name": "Village Committee", "kind": "peoples"},
            "mediation_due": deadline("mediation"),
            "consents": ["applicant", "respondent"],
            "sessions": 2,
            "agreement": {
                "form": "written",
                "terms": "The wall moves 30 cm.",
                "confirmation_window": deadline("judicial_confirmation_window")
            },
            "confirmation": {
                "court": "District Court",
                "ruling_due": deadline("judicial_confirmation_ruling"),
                "confirmed": null
            },
            "outcome": "agreement"
        }))
        .unwrap();
        Found {
            id: "D-1".into(),
            version: 9,
            case,
        }
    }

    #[test]
    fn a_dispute_converts_with_its_parties_for_those_who_may_see_them() {
        let pb = dispute_to_pb(&found(), true);
        assert_eq!(pb.dispute_id, "D-1");
        assert_eq!(pb.version, 9);
        assert_eq!(pb.status, i32::from(pb::DisputeStatus::Agreed));
        assert_eq!(pb.division_code, "990101001201");
        assert_eq!(pb.level, i32::from(pb::Level::Village));
        assert_eq!(pb.grid, "Grid 3");
        assert_eq!(pb.parties.len(), 2);
        assert_eq!(pb.parties[1].name, "Li Si");
        assert_eq!(pb.parties[1].role, i32::from(pb::PartyRole::Respondent));
        assert!(!pb.parties_withheld);
        assert_eq!(pb.handling_due.unwrap().stage, "village_handling");
        assert_eq!(pb.body.unwrap().kind, i32::from(pb::MediationKind::Peoples));
        assert_eq!(pb.consents.len(), 2);
        assert_eq!(pb.session_count, 2);
        let agreement = pb.agreement.unwrap();
        assert_eq!(agreement.form, i32::from(pb::AgreementForm::Written));
        assert_eq!(
            agreement.confirmation_window.unwrap().last_day,
            "2026-03-10"
        );
        let confirmation = pb.judicial_confirmation.unwrap();
        assert!(!confirmation.ruled && !confirmation.confirmed);
        // A state from before acceptance was a step: it awaits the ruling.
        assert_eq!(
            confirmation.step,
            i32::from(pb::JudicialConfirmationStep::AwaitingRuling)
        );
        assert!(confirmation.acceptance_due.is_none());
        assert_eq!(
            confirmation.ruling_due.unwrap().stage,
            "judicial_confirmation_ruling"
        );
        assert_eq!(pb.mediation_extension_count, 0);
        assert_eq!(pb.outcome, i32::from(pb::DisputeOutcome::Agreement));
        assert_eq!(pb.satisfaction, 0);
        assert!(pb.registration_due.is_none());
    }

    #[test]
    fn parties_are_withheld_from_those_who_may_not_see_them() {
        let pb = dispute_to_pb(&found(), false);
        assert!(pb.parties.is_empty());
        assert!(pb.parties_withheld);
        // The rest of the case is still there.
        assert_eq!(pb.summary, "A wall built on the boundary.");
    }

    #[test]
    fn a_new_dispute_has_no_status_name() {
        let pb = dispute_to_pb(
            &Found {
                id: "D-0".into(),
                version: 0,
                case: Dispute::default(),
            },
            true,
        );
        assert_eq!(pb.status, 0);
        assert_eq!(pb.level, 0);
        assert_eq!(pb.division_code, "");
    }
}
