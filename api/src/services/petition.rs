//! The `mediation.v1.PetitionService`: each command RPC converts its
//! request into an envelope and hands it to the [`App`]; the reads convert
//! the petitions they get back, each with its own confidentiality.

use mediation_app::access::Agencies;
use mediation_app::{App, AppError, PageRequest};
use mediation_domain::petition::PetitionAction;
use mediation_proto::v1 as pb;
use mediation_proto::v1::petition_service_server::PetitionService;
use tonic::{Request, Response, Status};

use crate::auth;
use crate::convert::common::{Parsed, as_of_point, outcome_to_pb, timestamp};
use crate::convert::petition as convert;
use crate::error::status;
use crate::services::command_service;

/// The petition service.
#[derive(Debug, Clone)]
pub(crate) struct PetitionApi {
    app: App,
    // The units a petition may name as the one complained about.
    agencies: Agencies,
}

impl PetitionApi {
    /// The service over `app`; `agencies` are the units a petition may
    /// complain about by id.
    pub(crate) fn new(app: App, agencies: Agencies) -> Self {
        Self { app, agencies }
    }

    /// Refuses a receipt whose complained unit is an agency the agencies
    /// file does not list: confidentiality could never apply to it.
    fn known_unit(&self, action: &PetitionAction) -> Result<(), AppError> {
        if let PetitionAction::Receive {
            complained_unit_id: Some(unit),
            ..
        } = action
            && !self.agencies.knows(unit)
        {
            return Err(AppError::invalid(
                "complained_unit_id",
                format!(
                    "no agency {unit} in the agencies file; name the unit by an agency id \
                     listed there or by a division code"
                ),
            ));
        }
        Ok(())
    }
}

command_service! {
    PetitionApi: PetitionService, PetitionAction, petition_command;
    forward_petition(ForwardPetitionRequest) -> ForwardPetitionResponse
        = "ForwardPetition", Existing, convert::forward_petition;
    assign_petition(AssignPetitionRequest) -> AssignPetitionResponse
        = "AssignPetition", Existing, convert::assign_petition;
    divert_petition(DivertPetitionRequest) -> DivertPetitionResponse
        = "DivertPetition", Existing, convert::divert_petition;
    reject_petition(RejectPetitionRequest) -> RejectPetitionResponse
        = "RejectPetition", Existing, convert::reject_petition;
    object_to_petition(ObjectToPetitionRequest) -> ObjectToPetitionResponse
        = "ObjectToPetition", Existing, convert::object_to_petition;
    accept_petition(AcceptPetitionRequest) -> AcceptPetitionResponse
        = "AcceptPetition", Existing, convert::accept_petition;
    extend_petition_handling(ExtendPetitionHandlingRequest) -> ExtendPetitionHandlingResponse
        = "ExtendPetitionHandling", Existing, convert::extend_petition_handling;
    issue_opinion(IssueOpinionRequest) -> IssueOpinionResponse
        = "IssueOpinion", Existing, convert::issue_opinion;
    request_review(RequestReviewRequest) -> RequestReviewResponse
        = "RequestReview", Existing, convert::request_review;
    record_hearing(RecordHearingRequest) -> RecordHearingResponse
        = "RecordHearing", Existing, convert::record_hearing;
    issue_review_opinion(IssueReviewOpinionRequest) -> IssueReviewOpinionResponse
        = "IssueReviewOpinion", Existing, convert::issue_review_opinion;
    request_re_review(RequestReReviewRequest) -> RequestReReviewResponse
        = "RequestReReview", Existing, convert::request_re_review;
    issue_re_review_opinion(IssueReReviewOpinionRequest) -> IssueReReviewOpinionResponse
        = "IssueReReviewOpinion", Existing, convert::issue_re_review_opinion;
    record_petition_delivery(RecordPetitionDeliveryRequest) -> RecordPetitionDeliveryResponse
        = "RecordPetitionDelivery", Existing, convert::record_petition_delivery;
    record_group_headcount(RecordGroupHeadcountRequest) -> RecordGroupHeadcountResponse
        = "RecordGroupHeadcount", Existing, convert::record_group_headcount;
    evaluate_petition(EvaluatePetitionRequest) -> EvaluatePetitionResponse
        = "EvaluatePetition", Existing, convert::evaluate_petition;
    assign_petition_official(AssignPetitionOfficialRequest) -> AssignPetitionOfficialResponse
        = "AssignPetitionOfficial", Existing, convert::assign_petition_official;
    finalise_petition(FinalisePetitionRequest) -> FinalisePetitionResponse
        = "FinalisePetition", Existing, convert::finalise_petition;
    ;

    #[tracing::instrument(skip_all, fields(rpc = "ReceivePetition"))]
    async fn receive_petition(
        &self,
        request: Request<pb::ReceivePetitionRequest>,
    ) -> Result<Response<pb::ReceivePetitionResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        let outcome = self
            .app
            .petition_command(&caller, "ReceivePetition", || {
                let Parsed(envelope) = Parsed::<PetitionAction>::try_from(r)?;
                self.known_unit(&envelope.action)?;
                Ok(envelope)
            })
            .await
            .map_err(status)?;
        // The command went through, so the request parses; the suggestions
        // are evidence for the registrar, and their absence (a read model
        // that cannot answer) must not fail a receipt already committed.
        let suspected_repeat_of = match Parsed::<PetitionAction>::try_from(r) {
            Ok(Parsed(envelope)) => {
                self.app
                    .suspected_repeats(&caller, &outcome.case_id, &envelope.action)
                    .await
            }
            Err(_) => Vec::new(),
        };
        Ok(Response::new(pb::ReceivePetitionResponse {
            outcome: Some(outcome_to_pb(outcome)),
            suspected_repeat_of,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetPetition"))]
    async fn get_petition(
        &self,
        request: Request<pb::GetPetitionRequest>,
    ) -> Result<Response<pb::GetPetitionResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        let found = self
            .app
            .get_petition(&caller, &r.petition_id)
            .await
            .map_err(status)?;
        let view = convert::view_of(&caller, &found.case);
        Ok(Response::new(pb::GetPetitionResponse {
            petition: Some(convert::petition_to_pb(&found, view)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetPetitionAsOf"))]
    async fn get_petition_as_of(
        &self,
        request: Request<pb::GetPetitionAsOfRequest>,
    ) -> Result<Response<pb::GetPetitionAsOfResponse>, Status> {
        use pb::get_petition_as_of_request::Point;
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        let point = match &r.point {
            Some(Point::AsOfTime(time)) => as_of_point(Some(time), None),
            Some(Point::AsOfPosition(position)) => as_of_point(None, Some(*position)),
            None => as_of_point(None, None),
        };
        let past = self
            .app
            .petition_as_of(&caller, &r.petition_id, point?)
            .await
            .map_err(status)?;
        let view = convert::view_of(&caller, &past.found.case);
        Ok(Response::new(pb::GetPetitionAsOfResponse {
            petition: Some(convert::petition_to_pb(&past.found, view)),
            last_change_time: Some(timestamp(past.last_change)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListPetitions"))]
    async fn list_petitions(
        &self,
        request: Request<pb::ListPetitionsRequest>,
    ) -> Result<Response<pb::ListPetitionsResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        let filter = convert::list_filter(r)?;
        let page = PageRequest {
            page_size: r.page_size,
            page_token: &r.page_token,
            min_position: r.min_position,
        };
        let (found, next_page_token) = self
            .app
            .list_petitions(&caller, filter, page)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListPetitionsResponse {
            // Decided per petition: each names its own complained unit.
            petitions: found
                .iter()
                .map(|p| {
                    convert::petition_to_pb(p, convert::view_of(&caller, &p.case))
                })
                .collect(),
            next_page_token,
        }))
    }
}
