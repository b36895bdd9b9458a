//! The `mediation.v1.PetitionService`: each RPC authorises the caller,
//! converts the request and hands it to the [`App`].

use mediation_domain::petition::PetitionAction;
use mediation_proto::v1 as pb;
use mediation_proto::v1::petition_service_server::PetitionService;
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::app::{App, Call, PageRequest, Target};
use crate::auth;
use crate::convert::common::{self, BadField, CommandRequest};
use crate::convert::petition as convert;

/// Converts a command request into the action it asks for.
type Convert<R> = fn(&R) -> Result<PetitionAction, BadField>;

/// The petition service.
#[derive(Debug, Clone)]
pub(crate) struct PetitionApi {
    app: App,
}

impl PetitionApi {
    /// The service over `app`.
    pub(crate) fn new(app: App) -> Self {
        Self { app }
    }

    /// Runs a command on an existing petition.
    #[tracing::instrument(skip_all, fields(rpc = rpc))]
    async fn existing<R: CommandRequest>(
        &self,
        rpc: &'static str,
        request: Request<R>,
        convert: Convert<R>,
    ) -> Result<pb::CommandOutcome, Status> {
        let caller = auth::caller(&request)?;
        caller.authorise(rpc)?;
        let r = request.into_inner();
        r.check_envelope(false)?;
        let action = convert(&r)?;
        let encoded = r.encode_to_vec();
        self.app
            .petition_command(
                &caller,
                Target::Existing {
                    id: r.case_id(),
                    expected_version: r.expected_version(),
                },
                Call {
                    rpc,
                    request_id: r.request_id(),
                    actor_id: r.actor_id(),
                    encoded_request: &encoded,
                },
                action,
            )
            .await
    }
}

#[tonic::async_trait]
impl PetitionService for PetitionApi {
    #[tracing::instrument(skip_all, fields(rpc = "ReceivePetition"))]
    async fn receive_petition(
        &self,
        request: Request<pb::ReceivePetitionRequest>,
    ) -> Result<Response<pb::ReceivePetitionResponse>, Status> {
        const RPC: &str = "ReceivePetition";
        let caller = auth::caller(&request)?;
        caller.authorise(RPC)?;
        let r = request.into_inner();
        r.check_envelope(true)?;
        let division = common::division_code("division_code", &r.division_code)?;
        let action = convert::receive_petition(&r)?;
        let encoded = r.encode_to_vec();
        let outcome = self
            .app
            .petition_command(
                &caller,
                Target::Create {
                    id: &r.petition_id,
                    division: &division,
                    expected_version: None,
                },
                Call {
                    rpc: RPC,
                    request_id: &r.request_id,
                    actor_id: &r.actor_id,
                    encoded_request: &encoded,
                },
                action,
            )
            .await?;
        Ok(Response::new(pb::ReceivePetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn forward_petition(
        &self,
        request: Request<pb::ForwardPetitionRequest>,
    ) -> Result<Response<pb::ForwardPetitionResponse>, Status> {
        let outcome = self
            .existing("ForwardPetition", request, convert::forward_petition)
            .await?;
        Ok(Response::new(pb::ForwardPetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn assign_petition(
        &self,
        request: Request<pb::AssignPetitionRequest>,
    ) -> Result<Response<pb::AssignPetitionResponse>, Status> {
        let outcome = self
            .existing("AssignPetition", request, convert::assign_petition)
            .await?;
        Ok(Response::new(pb::AssignPetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn divert_petition(
        &self,
        request: Request<pb::DivertPetitionRequest>,
    ) -> Result<Response<pb::DivertPetitionResponse>, Status> {
        let outcome = self
            .existing("DivertPetition", request, convert::divert_petition)
            .await?;
        Ok(Response::new(pb::DivertPetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn reject_petition(
        &self,
        request: Request<pb::RejectPetitionRequest>,
    ) -> Result<Response<pb::RejectPetitionResponse>, Status> {
        let outcome = self
            .existing("RejectPetition", request, convert::reject_petition)
            .await?;
        Ok(Response::new(pb::RejectPetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn object_to_petition(
        &self,
        request: Request<pb::ObjectToPetitionRequest>,
    ) -> Result<Response<pb::ObjectToPetitionResponse>, Status> {
        let outcome = self
            .existing("ObjectToPetition", request, convert::object_to_petition)
            .await?;
        Ok(Response::new(pb::ObjectToPetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn accept_petition(
        &self,
        request: Request<pb::AcceptPetitionRequest>,
    ) -> Result<Response<pb::AcceptPetitionResponse>, Status> {
        let outcome = self
            .existing("AcceptPetition", request, convert::accept_petition)
            .await?;
        Ok(Response::new(pb::AcceptPetitionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn extend_petition_handling(
        &self,
        request: Request<pb::ExtendPetitionHandlingRequest>,
    ) -> Result<Response<pb::ExtendPetitionHandlingResponse>, Status> {
        let outcome = self
            .existing(
                "ExtendPetitionHandling",
                request,
                convert::extend_petition_handling,
            )
            .await?;
        Ok(Response::new(pb::ExtendPetitionHandlingResponse {
            outcome: Some(outcome),
        }))
    }

    async fn issue_opinion(
        &self,
        request: Request<pb::IssueOpinionRequest>,
    ) -> Result<Response<pb::IssueOpinionResponse>, Status> {
        let outcome = self
            .existing("IssueOpinion", request, convert::issue_opinion)
            .await?;
        Ok(Response::new(pb::IssueOpinionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn request_review(
        &self,
        request: Request<pb::RequestReviewRequest>,
    ) -> Result<Response<pb::RequestReviewResponse>, Status> {
        let outcome = self
            .existing("RequestReview", request, convert::request_review)
            .await?;
        Ok(Response::new(pb::RequestReviewResponse {
            outcome: Some(outcome),
        }))
    }

    async fn record_hearing(
        &self,
        request: Request<pb::RecordHearingRequest>,
    ) -> Result<Response<pb::RecordHearingResponse>, Status> {
        let outcome = self
            .existing("RecordHearing", request, convert::record_hearing)
            .await?;
        Ok(Response::new(pb::RecordHearingResponse {
            outcome: Some(outcome),
        }))
    }

    async fn issue_review_opinion(
        &self,
        request: Request<pb::IssueReviewOpinionRequest>,
    ) -> Result<Response<pb::IssueReviewOpinionResponse>, Status> {
        let outcome = self
            .existing("IssueReviewOpinion", request, convert::issue_review_opinion)
            .await?;
        Ok(Response::new(pb::IssueReviewOpinionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn request_re_review(
        &self,
        request: Request<pb::RequestReReviewRequest>,
    ) -> Result<Response<pb::RequestReReviewResponse>, Status> {
        let outcome = self
            .existing("RequestReReview", request, convert::request_re_review)
            .await?;
        Ok(Response::new(pb::RequestReReviewResponse {
            outcome: Some(outcome),
        }))
    }

    async fn issue_re_review_opinion(
        &self,
        request: Request<pb::IssueReReviewOpinionRequest>,
    ) -> Result<Response<pb::IssueReReviewOpinionResponse>, Status> {
        let outcome = self
            .existing(
                "IssueReReviewOpinion",
                request,
                convert::issue_re_review_opinion,
            )
            .await?;
        Ok(Response::new(pb::IssueReReviewOpinionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn finalise_petition(
        &self,
        request: Request<pb::FinalisePetitionRequest>,
    ) -> Result<Response<pb::FinalisePetitionResponse>, Status> {
        let outcome = self
            .existing("FinalisePetition", request, convert::finalise_petition)
            .await?;
        Ok(Response::new(pb::FinalisePetitionResponse {
            outcome: Some(outcome),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetPetition"))]
    async fn get_petition(
        &self,
        request: Request<pb::GetPetitionRequest>,
    ) -> Result<Response<pb::GetPetitionResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.authorise("GetPetition")?;
        let r = request.into_inner();
        common::case_id("petition_id", &r.petition_id)?;
        let found = self.app.get_petition(&caller, &r.petition_id).await?;
        // The unit complained about never sees who complained.
        let show = caller.may_see_petitioner(found.case.complained_unit());
        Ok(Response::new(pb::GetPetitionResponse {
            petition: Some(convert::petition_to_pb(&found, show)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListPetitions"))]
    async fn list_petitions(
        &self,
        request: Request<pb::ListPetitionsRequest>,
    ) -> Result<Response<pb::ListPetitionsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.authorise("ListPetitions")?;
        let r = request.into_inner();
        let filter = convert::list_filter(&r)?;
        let page = PageRequest {
            page_size: r.page_size,
            page_token: &r.page_token,
            min_position: r.min_position,
        };
        let (found, next_page_token) = self.app.list_petitions(&caller, filter, page).await?;
        Ok(Response::new(pb::ListPetitionsResponse {
            // Decided per petition: each names its own complained unit.
            petitions: found
                .iter()
                .map(|p| {
                    let show = caller.may_see_petitioner(p.case.complained_unit());
                    convert::petition_to_pb(p, show)
                })
                .collect(),
            next_page_token,
        }))
    }
}
