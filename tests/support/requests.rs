//! Requests the end-to-end tests send again and again, well formed, so that
//! a test spells out only what it is about.

use mediation_proto::v1 as pb;

/// A fresh request id.
pub fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Registers dispute `id` at village `village` on behalf of `actor`: a
/// neighbours' quarrel over a wall, green risk, Zhang San against Li Si.
pub fn register_village_dispute(
    id: &str,
    village: &str,
    actor: &str,
) -> pb::RegisterDisputeRequest {
    pb::RegisterDisputeRequest {
        request_id: rid(),
        dispute_id: id.into(),
        actor_id: actor.into(),
        division_code: village.into(),
        level: pb::Level::Village.into(),
        category: pb::DisputeCategory::Neighbourhood.into(),
        risk: pb::Risk::Green.into(),
        summary: "A wall between two yards".into(),
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
        ..Default::default()
    }
}

/// Receives petition `id` by letter from `petitioner`, a matter of the town
/// `town` competent at town level, on behalf of `actor`.
pub fn town_letter(
    id: &str,
    town: &str,
    actor: &str,
    petitioner: &str,
) -> pb::ReceivePetitionRequest {
    pb::ReceivePetitionRequest {
        request_id: rid(),
        petition_id: id.into(),
        actor_id: actor.into(),
        channel: pb::PetitionChannel::Letter.into(),
        petitioner: Some(pb::Petitioner {
            name: petitioner.into(),
            contact: String::new(),
        }),
        facts: "The road was never repaired".into(),
        division_code: town.into(),
        competent_level: pb::Level::Town.into(),
        ..Default::default()
    }
}
