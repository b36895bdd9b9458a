//! Petition requests to [`PetitionAction`]s, and a [`Petition`] to its
//! protobuf message.
//!
//! Each command converter checks the fields of its action; the envelope
//! (`request_id`, `actor_id`, `petition_id`) is checked once for every
//! command by [`envelope`](super::common::envelope).

use mediation_domain::dispute::Satisfaction;
use mediation_domain::petition::{
    FinalBasis, MAX_HEARING_DAYS, MAX_REPORT_DAYS, MatterType, OpinionOutcome, Petition,
    PetitionAction, PetitionStatus, Petitioner, Reply, ReviewDecision,
};
use mediation_domain::values::{LegalChannel, Level, PetitionChannel, PetitionLevel};
use mediation_proto::v1 as pb;

use super::common::{
    BadField, Case, Parsed, command_requests, date, days, deadline_to_pb, division_code,
    enum_to_pb, envelope, name, optional_case_id, optional_division_code, optional_enum,
    optional_enum_to_pb, optional_name, optional_text, optional_unit, required_enum,
    string_or_empty, text, timestamp,
};
use mediation_app::access::{Caller, Complaint, PetitionView};
use mediation_app::{CaseFilter, Found};

command_requests!(unversioned petition_id: ReceivePetitionRequest);

impl TryFrom<&pb::ReceivePetitionRequest> for Parsed<PetitionAction> {
    type Error = mediation_app::AppError;

    // Written out rather than by `command_service!`, whose RPCs answer
    // with the outcome alone: ReceivePetition also suggests repeats.
    fn try_from(r: &pb::ReceivePetitionRequest) -> Result<Self, Self::Error> {
        envelope(r, "ReceivePetition", Case::New, receive_petition).map(Parsed)
    }
}
command_requests!(petition_id:
    ForwardPetitionRequest,
    AssignPetitionRequest,
    DivertPetitionRequest,
    RejectPetitionRequest,
    ObjectToPetitionRequest,
    AcceptPetitionRequest,
    ExtendPetitionHandlingRequest,
    IssueOpinionRequest,
    RequestReviewRequest,
    RecordHearingRequest,
    RecordPetitionDeliveryRequest,
    RecordGroupHeadcountRequest,
    AssignPetitionOfficialRequest,
    EvaluatePetitionRequest,
    IssueReviewOpinionRequest,
    RequestReReviewRequest,
    IssueReReviewOpinionRequest,
    FinalisePetitionRequest,
);

/// ReceivePetition. Rules that depend on the channel (a visit's level and
/// representatives) or on other cases (a final earlier petition) are the
/// petition's, checked there.
pub(crate) fn receive_petition(r: &pb::ReceivePetitionRequest) -> Result<PetitionAction, BadField> {
    let petitioner = r
        .petitioner
        .as_ref()
        .ok_or_else(|| BadField::new("petitioner", "must be set"))?;
    Ok(PetitionAction::Receive {
        channel: required_enum::<PetitionChannel>("channel", r.channel)?,
        matter_type: optional_enum::<MatterType>("matter_type", r.matter_type)?,
        petitioner: Petitioner {
            name: name("petitioner.name", &petitioner.name)?,
            contact: optional_name("petitioner.contact", &petitioner.contact)?,
        },
        complained_unit: optional_name("complained_unit", &r.complained_unit)?,
        complained_unit_id: optional_unit("complained_unit_id", &r.complained_unit_id)?,
        facts: text("facts", &r.facts)?,
        division: division_code("division_code", &r.division_code)?,
        competent_level: required_enum::<Level>("competent_level", r.competent_level)?,
        visited_level: visited_level(r)?,
        representatives: r.representatives,
        repeat_of: optional_case_id("repeat_of", &r.repeat_of)?,
    })
}

/// The level a visit went to: `visit_level`, which reaches above the
/// district, or the older `visited_level`; both set, they must agree.
fn visited_level(r: &pb::ReceivePetitionRequest) -> Result<Option<PetitionLevel>, BadField> {
    let visit = optional_enum::<PetitionLevel>("visit_level", r.visit_level)?;
    let visited =
        optional_enum::<Level>("visited_level", r.visited_level)?.map(PetitionLevel::from);
    match (visit, visited) {
        (Some(a), Some(b)) if a != b => Err(BadField::new(
            "visit_level",
            "names another level than visited_level; give one of them",
        )),
        (visit, visited) => Ok(visit.or(visited)),
    }
}

/// ForwardPetition.
pub(crate) fn forward_petition(r: &pb::ForwardPetitionRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Forward {
        to_unit: name("to_unit", &r.to_unit)?,
    })
}

/// AssignPetition.
pub(crate) fn assign_petition(r: &pb::AssignPetitionRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Assign {
        to_unit: name("to_unit", &r.to_unit)?,
        report_within_days: days("report_within_days", r.report_within_days, MAX_REPORT_DAYS)?,
    })
}

/// DivertPetition.
pub(crate) fn divert_petition(r: &pb::DivertPetitionRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Divert {
        channel: required_enum::<LegalChannel>("channel", r.channel)?,
        note: text("note", &r.note)?,
    })
}

/// RejectPetition: the domain calls it not accepting the petition.
pub(crate) fn reject_petition(r: &pb::RejectPetitionRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::NotAccept {
        reason: text("reason", &r.reason)?,
        repeats_final: optional_case_id("repeat_of", &r.repeat_of)?,
    })
}

/// ObjectToPetition.
pub(crate) fn object_to_petition(
    r: &pb::ObjectToPetitionRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Object {
        reason: text("reason", &r.reason)?,
    })
}

/// AcceptPetition: nothing beyond the envelope.
pub(crate) fn accept_petition(_r: &pb::AcceptPetitionRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Accept {})
}

/// ExtendPetitionHandling. The longest extension is the policy's, checked
/// by the petition; here the days must at least be some.
pub(crate) fn extend_petition_handling(
    r: &pb::ExtendPetitionHandlingRequest,
) -> Result<PetitionAction, BadField> {
    if r.days == 0 {
        return Err(BadField::new("days", "must be at least 1"));
    }
    Ok(PetitionAction::ExtendHandling {
        days: r.days,
        reason: text("reason", &r.reason)?,
        approved_by: name("approved_by", &r.approved_by)?,
    })
}

/// IssueOpinion.
pub(crate) fn issue_opinion(r: &pb::IssueOpinionRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::IssueOpinion {
        outcome: required_enum::<OpinionOutcome>("outcome", r.outcome)?,
        summary: text("summary", &r.summary)?,
    })
}

/// RequestReview.
pub(crate) fn request_review(r: &pb::RequestReviewRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::RequestReview {
        reason: text("reason", &r.reason)?,
    })
}

/// RecordHearing.
pub(crate) fn record_hearing(r: &pb::RecordHearingRequest) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::RecordHearing {
        days: days("days", r.days, MAX_HEARING_DAYS)?,
    })
}

/// RecordPetitionDelivery. Whether the reply was issued and the day is
/// plausible is the petition's rule, checked there.
pub(crate) fn record_petition_delivery(
    r: &pb::RecordPetitionDeliveryRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::RecordDelivery {
        reply: required_enum("reply", r.reply)?,
        delivered_on: date("delivered_on", &r.delivered_on)?,
        method: required_enum("method", r.method)?,
    })
}

/// RecordGroupHeadcount.
pub(crate) fn record_group_headcount(
    r: &pb::RecordGroupHeadcountRequest,
) -> Result<PetitionAction, BadField> {
    if r.headcount == 0 {
        return Err(BadField::new("headcount", "must be at least 1"));
    }
    Ok(PetitionAction::RecordGroupHeadcount {
        headcount: r.headcount,
    })
}

/// EvaluatePetition.
pub(crate) fn evaluate_petition(
    r: &pb::EvaluatePetitionRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Evaluate {
        satisfaction: required_enum::<Satisfaction>("satisfaction", r.satisfaction)?,
        note: optional_text("note", &r.note)?,
    })
}

/// IssueReviewOpinion.
pub(crate) fn issue_review_opinion(
    r: &pb::IssueReviewOpinionRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::IssueReviewOpinion {
        outcome: required_enum::<OpinionOutcome>("outcome", r.outcome)?,
        decision: optional_enum::<ReviewDecision>("decision", r.decision)?,
        summary: text("summary", &r.summary)?,
    })
}

/// RequestReReview.
pub(crate) fn request_re_review(
    r: &pb::RequestReReviewRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::RequestReReview {
        reason: text("reason", &r.reason)?,
    })
}

/// IssueReReviewOpinion.
pub(crate) fn issue_re_review_opinion(
    r: &pb::IssueReReviewOpinionRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::IssueReReviewOpinion {
        outcome: required_enum::<OpinionOutcome>("outcome", r.outcome)?,
        decision: optional_enum::<ReviewDecision>("decision", r.decision)?,
        summary: text("summary", &r.summary)?,
    })
}

/// FinalisePetition: nothing beyond the envelope.
pub(crate) fn finalise_petition(
    _r: &pb::FinalisePetitionRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::Finalise {})
}

/// The filters of ListPetitions, as the stored names the engine matches.
/// Unset (empty or `*_UNSPECIFIED`) filters match everything.
pub(crate) fn list_filter(r: &pb::ListPetitionsRequest) -> Result<CaseFilter, BadField> {
    Ok(CaseFilter {
        division: optional_division_code("division_code", &r.division_code)?,
        level: optional_enum::<Level>("level", r.level)?.map(Level::as_str),
        status: optional_enum::<PetitionStatus>("status", r.status)?.map(PetitionStatus::as_str),
        channel: optional_enum::<PetitionChannel>("channel", r.channel)?
            .map(PetitionChannel::as_str),
        category: None,
        risk: None,
    })
}

/// AssignPetitionOfficial.
pub(crate) fn assign_petition_official(
    r: &pb::AssignPetitionOfficialRequest,
) -> Result<PetitionAction, BadField> {
    Ok(PetitionAction::AssignOfficial {
        official: name("official", &r.official)?,
    })
}

/// What a caller may see of `petition` (信访工作条例 Art 30).
pub(crate) fn view_of(caller: &Caller, petition: &Petition) -> PetitionView {
    caller.petition_view(&Complaint {
        unit_id: petition.complained_unit_id(),
        unit_name: petition.complained_unit(),
        matter_type: petition.matter_type(),
    })
}

/// A petition as a response carries it, as far as `view` lets the caller
/// see it: a petitioner or free text left out is flagged as withheld.
pub(crate) fn petition_to_pb(found: &Found<Petition>, view: PetitionView) -> pb::Petition {
    let p = &found.case;
    let show_petitioner = view.petitioner;
    let petitioner = if show_petitioner {
        p.petitioner().map(|who| pb::Petitioner {
            name: who.name.to_string(),
            contact: string_or_empty(who.contact.as_ref()),
        })
    } else {
        None
    };
    let deadline = |d: Option<mediation_domain::policy::Deadline>| d.as_ref().map(deadline_to_pb);
    pb::Petition {
        petition_id: found.id.clone(),
        version: found.version,
        status: enum_to_pb(p.status()),
        receive_time: p.received_at().map(timestamp),
        channel: optional_enum_to_pb(p.channel()),
        petitioner,
        petitioner_withheld: !show_petitioner && p.petitioner().is_some(),
        complained_unit: string_or_empty(p.complained_unit()),
        complained_unit_id: string_or_empty(p.complained_unit_id()),
        facts: if view.content {
            string_or_empty(p.facts())
        } else {
            String::new()
        },
        content_withheld: !view.content,
        official: string_or_empty(p.official()),
        division_code: string_or_empty(p.division()),
        competent_level: optional_enum_to_pb(p.competent_level()),
        visited_level: optional_enum_to_pb(
            p.visited_level()
                .and_then(PetitionLevel::within_jurisdiction),
        ),
        visit_level: optional_enum_to_pb(p.visited_level()),
        representatives: p.representatives(),
        skipped_level: p.skipped_level(),
        repeat_of: string_or_empty(p.repeat_of()),
        triage_due: deadline(p.triage_due()),
        unit: string_or_empty(p.unit()),
        notice_due: deadline(p.notice_due()),
        objection_due: deadline(p.objection_due()),
        report_due: deadline(p.report_due()),
        opinion_due: deadline(p.opinion_due()),
        extended: p.extended(),
        opinion_outcome: optional_enum_to_pb(p.opinion_outcome()),
        review_request_due: deadline(p.review_request_due()),
        review_due: deadline(p.review_due()),
        review_outcome: optional_enum_to_pb(p.review_outcome()),
        re_review_request_due: deadline(p.re_review_request_due()),
        re_review_due: deadline(p.re_review_due()),
        re_review_outcome: optional_enum_to_pb(p.re_review_outcome()),
        final_time: p.finalised_at().map(timestamp),
        final_basis: optional_enum_to_pb::<FinalBasis>(p.final_basis()),
        headcount: p.headcount().unwrap_or(0),
        satisfaction: optional_enum_to_pb::<Satisfaction>(p.satisfaction()),
        matter_type: optional_enum_to_pb(p.matter_type()),
        not_accepted_as_repeat_of: string_or_empty(p.repeats_final()),
        review_decision: optional_enum_to_pb(p.review_decision()),
        re_review_decision: optional_enum_to_pb(p.re_review_decision()),
        deliveries: [Reply::Opinion, Reply::ReviewOpinion, Reply::ReReviewOpinion]
            .into_iter()
            .filter_map(|reply| {
                p.delivery(reply).map(|d| pb::Delivery {
                    reply: enum_to_pb(reply),
                    delivered_on: d.delivered_on.format("%Y-%m-%d").to_string(),
                    method: enum_to_pb(d.method),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use mediation_domain::values::{CaseId, DivisionCode, Name, Text};
    use serde_json::json;
    use tonic::{Code, Status};

    use super::*;

    fn message(bad: BadField) -> String {
        let status = Status::from(bad);
        assert_eq!(status.code(), Code::InvalidArgument);
        status.message().to_owned()
    }

    fn receive() -> pb::ReceivePetitionRequest {
        pb::ReceivePetitionRequest {
            request_id: "r-1".into(),
            petition_id: "P-1".into(),
            actor_id: "clerk-1".into(),
            channel: pb::PetitionChannel::Visit.into(),
            petitioner: Some(pb::Petitioner {
                name: "Wang Wu".into(),
                contact: String::new(),
            }),
            complained_unit: "Example Town Government".into(),
            facts: "The road was never repaired.".into(),
            division_code: "990101001000".into(),
            competent_level: pb::Level::Town.into(),
            visited_level: pb::Level::District.into(),
            representatives: 2,
            repeat_of: "P-0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_petition_converts() {
        let r = receive();
        assert_eq!(
            receive_petition(&r).unwrap(),
            PetitionAction::Receive {
                channel: PetitionChannel::Visit,
                matter_type: None,
                petitioner: Petitioner {
                    name: Name::parse("Wang Wu").unwrap(),
                    contact: None,
                },
                complained_unit: Some(Name::parse("Example Town Government").unwrap()),
                complained_unit_id: None,
                facts: Text::parse("The road was never repaired.").unwrap(),
                division: DivisionCode::parse("990101001000").unwrap(),
                competent_level: Level::Town,
                visited_level: Some(PetitionLevel::District),
                representatives: 2,
                repeat_of: Some(CaseId::parse("P-0").unwrap()),
            }
        );
    }

    #[test]
    fn bad_petitions_name_the_field() {
        let no_petitioner = pb::ReceivePetitionRequest {
            petitioner: None,
            ..receive()
        };
        assert_eq!(
            message(receive_petition(&no_petitioner).unwrap_err()),
            "invalid petitioner: must be set"
        );

        let mut r = receive();
        if let Some(p) = &mut r.petitioner {
            p.name = String::new();
        }
        assert_eq!(
            message(receive_petition(&r).unwrap_err()),
            "invalid petitioner.name: must not be empty"
        );

        let r = pb::ReceivePetitionRequest {
            channel: 0,
            ..receive()
        };
        assert!(
            message(receive_petition(&r).unwrap_err()).starts_with("invalid channel: must be set")
        );

        let r = pb::ReceivePetitionRequest {
            visited_level: 12,
            ..receive()
        };
        assert!(
            message(receive_petition(&r).unwrap_err())
                .starts_with("invalid visited_level: unknown value 12")
        );

        let r = pb::ReceivePetitionRequest {
            repeat_of: "P 0".into(),
            ..receive()
        };
        assert!(message(receive_petition(&r).unwrap_err()).starts_with("invalid repeat_of:"));

        let r = pb::ReceivePetitionRequest {
            competent_level: 0,
            ..receive()
        };
        assert!(message(receive_petition(&r).unwrap_err()).starts_with("invalid competent_level:"));
    }

    #[test]
    fn reject_petition_is_the_domains_not_accept() {
        let r = pb::RejectPetitionRequest {
            reason: "Not a petition matter.".into(),
            ..Default::default()
        };
        assert_eq!(
            reject_petition(&r).unwrap(),
            PetitionAction::NotAccept {
                reason: Text::parse("Not a petition matter.").unwrap(),
                repeats_final: None,
            }
        );
        let empty = pb::RejectPetitionRequest::default();
        assert_eq!(
            message(reject_petition(&empty).unwrap_err()),
            "invalid reason: must not be empty"
        );
    }

    #[test]
    fn day_counts_are_bounded() {
        let assign = |report_within_days| pb::AssignPetitionRequest {
            to_unit: "Roads Office".into(),
            report_within_days,
            ..Default::default()
        };
        assert_eq!(
            assign_petition(&assign(30)).unwrap(),
            PetitionAction::Assign {
                to_unit: Name::parse("Roads Office").unwrap(),
                report_within_days: 30,
            }
        );
        assert_eq!(
            message(assign_petition(&assign(0)).unwrap_err()),
            "invalid report_within_days: must be 1 to 365 days"
        );
        assert!(assign_petition(&assign(366)).is_err());

        let hearing = pb::RecordHearingRequest {
            days: 91,
            ..Default::default()
        };
        assert_eq!(
            message(record_hearing(&hearing).unwrap_err()),
            "invalid days: must be 1 to 90 days"
        );

        let extend = pb::ExtendPetitionHandlingRequest {
            days: 0,
            reason: "Complex".into(),
            approved_by: "Director".into(),
            ..Default::default()
        };
        assert_eq!(
            message(extend_petition_handling(&extend).unwrap_err()),
            "invalid days: must be at least 1"
        );
    }

    #[test]
    fn opinions_need_an_outcome() {
        let r = pb::IssueOpinionRequest {
            outcome: pb::OpinionOutcome::Explain.into(),
            summary: "Funds are allocated next year.".into(),
            ..Default::default()
        };
        assert_eq!(
            issue_opinion(&r).unwrap(),
            PetitionAction::IssueOpinion {
                outcome: OpinionOutcome::Explain,
                summary: Text::parse("Funds are allocated next year.").unwrap(),
            }
        );
        let unset = pb::IssueReReviewOpinionRequest {
            summary: "x".into(),
            ..Default::default()
        };
        assert!(
            message(issue_re_review_opinion(&unset).unwrap_err())
                .starts_with("invalid outcome: must be set")
        );
    }

    #[test]
    fn list_filters_become_stored_names() {
        let all = list_filter(&pb::ListPetitionsRequest::default()).unwrap();
        assert!(all.division.is_none() && all.level.is_none());
        assert!(all.status.is_none() && all.channel.is_none());

        let some = list_filter(&pb::ListPetitionsRequest {
            division_code: "990101001000".into(),
            level: pb::Level::District.into(),
            status: pb::PetitionStatus::UnderReReview.into(),
            channel: pb::PetitionChannel::Online.into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(some.division.unwrap().as_str(), "990101001000");
        assert_eq!(some.level, Some("district"));
        assert_eq!(some.status, Some("under_re_review"));
        assert_eq!(some.channel, Some("online"));

        let bad = pb::ListPetitionsRequest {
            division_code: "abc".into(),
            ..Default::default()
        };
        assert!(message(list_filter(&bad).unwrap_err()).starts_with("invalid division_code:"));
    }

    /// A final petition, built from its serialised state: the aggregate's
    /// fields are private and this crate does not depend on cqrs-es to
    /// apply events.
    fn found() -> Found<Petition> {
        let case: Petition = serde_json::from_value(json!({
            "status": "final",
            "received_at": "2026-01-05T02:00:00Z",
            "channel": "letter",
            "petitioner": {"name": "Wang Wu", "contact": "555-0100"},
            "complained_unit": "Example Town Government",
            "facts": "The road was never repaired.",
            "division": "990101001000",
            "competent_level": "town",
            "triage_due": {
                "stage": "petition_triage",
                "due": "2026-01-20T16:00:00Z",
                "last_day": "2026-01-20",
                "provisional": false
            },
            "unit": "Roads Office",
            "opinion_outcome": "not_support",
            "finalised_at": "2026-04-01T08:30:00Z",
            "final_basis": "review_window_lapsed"
        }))
        .unwrap();
        Found {
            id: "P-1".into(),
            version: 6,
            case,
        }
    }

    #[test]
    fn a_petition_converts_with_its_petitioner_for_those_who_may_see_them() {
        let everything = PetitionView {
            petitioner: true,
            content: true,
        };
        let pb = petition_to_pb(&found(), everything);
        assert_eq!(pb.petition_id, "P-1");
        assert_eq!(pb.version, 6);
        assert_eq!(pb.status, i32::from(pb::PetitionStatus::Final));
        assert_eq!(pb.channel, i32::from(pb::PetitionChannel::Letter));
        let petitioner = pb.petitioner.unwrap();
        assert_eq!(petitioner.name, "Wang Wu");
        assert_eq!(petitioner.contact, "555-0100");
        assert!(!pb.petitioner_withheld);
        assert_eq!(pb.complained_unit, "Example Town Government");
        assert_eq!(pb.competent_level, i32::from(pb::Level::Town));
        assert_eq!(pb.visited_level, 0);
        assert_eq!(pb.triage_due.unwrap().stage, "petition_triage");
        assert_eq!(
            pb.opinion_outcome,
            i32::from(pb::OpinionOutcome::NotSupport)
        );
        assert_eq!(pb.receive_time.unwrap().seconds, 1_767_578_400);
        assert!(pb.final_time.is_some());
        assert_eq!(
            pb.final_basis,
            i32::from(pb::FinalBasis::ReviewWindowLapsed)
        );
        assert!(pb.opinion_due.is_none());
    }

    #[test]
    fn the_petitioner_is_withheld_from_those_who_may_not_see_them() {
        let no_petitioner = PetitionView {
            petitioner: false,
            content: true,
        };
        let pb = petition_to_pb(&found(), no_petitioner);
        assert!(pb.petitioner.is_none());
        assert!(pb.petitioner_withheld);
        // The rest of the petition is still there.
        assert_eq!(pb.unit, "Roads Office");
        assert!(!pb.facts.is_empty() && !pb.content_withheld);

        let nothing = PetitionView {
            petitioner: false,
            content: false,
        };
        let pb = petition_to_pb(&found(), nothing);
        assert!(pb.petitioner.is_none() && pb.petitioner_withheld);
        assert!(pb.facts.is_empty() && pb.content_withheld);
        assert_eq!(pb.unit, "Roads Office");
    }
}
