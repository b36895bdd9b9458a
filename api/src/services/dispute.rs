//! The `mediation.v1.DisputeService`: each RPC authorises the caller,
//! converts the request and hands it to the [`App`].

use mediation_domain::dispute::DisputeAction;
use mediation_proto::v1 as pb;
use mediation_proto::v1::dispute_service_server::DisputeService;
use tonic::{Request, Response, Status};

use crate::app::{App, Call, PageRequest, Target};
use crate::auth;
use crate::convert::common::{self, BadField, CommandRequest};
use crate::convert::dispute as convert;

/// Converts a command request into the action it asks for.
type Convert<R> = fn(&R) -> Result<DisputeAction, BadField>;

/// The dispute service.
#[derive(Debug, Clone)]
pub(crate) struct DisputeApi {
    app: App,
}

impl DisputeApi {
    /// The service over `app`.
    pub(crate) fn new(app: App) -> Self {
        Self { app }
    }

    /// Runs a command that creates a dispute in the division that
    /// `division` reads from the request.
    #[tracing::instrument(skip_all, fields(rpc = rpc))]
    async fn create<R: CommandRequest>(
        &self,
        rpc: &'static str,
        request: Request<R>,
        division: fn(&R) -> &str,
        convert: Convert<R>,
    ) -> Result<pb::CommandOutcome, Status> {
        let caller = auth::caller(&request)?;
        caller.authorise(rpc)?;
        let r = request.into_inner();
        r.check_envelope(true)?;
        let division = common::division_code("division_code", division(&r))?;
        let action = convert(&r)?;
        let encoded = r.encode_to_vec();
        self.app
            .dispute_command(
                &caller,
                Target::Create {
                    id: r.case_id(),
                    division: &division,
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

    /// Runs a command on an existing dispute.
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
            .dispute_command(
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
impl DisputeService for DisputeApi {
    async fn report_dispute(
        &self,
        request: Request<pb::ReportDisputeRequest>,
    ) -> Result<Response<pb::ReportDisputeResponse>, Status> {
        let outcome = self
            .create(
                "ReportDispute",
                request,
                |r| &r.division_code,
                convert::report_dispute,
            )
            .await?;
        Ok(Response::new(pb::ReportDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn register_dispute(
        &self,
        request: Request<pb::RegisterDisputeRequest>,
    ) -> Result<Response<pb::RegisterDisputeResponse>, Status> {
        let outcome = self
            .create(
                "RegisterDispute",
                request,
                |r| &r.division_code,
                convert::register_dispute,
            )
            .await?;
        Ok(Response::new(pb::RegisterDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn dispatch_dispute(
        &self,
        request: Request<pb::DispatchDisputeRequest>,
    ) -> Result<Response<pb::DispatchDisputeResponse>, Status> {
        let outcome = self
            .existing("DispatchDispute", request, convert::dispatch_dispute)
            .await?;
        Ok(Response::new(pb::DispatchDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        let outcome = self
            .existing("RecordConsent", request, convert::record_consent)
            .await?;
        Ok(Response::new(pb::RecordConsentResponse {
            outcome: Some(outcome),
        }))
    }

    async fn hold_session(
        &self,
        request: Request<pb::HoldSessionRequest>,
    ) -> Result<Response<pb::HoldSessionResponse>, Status> {
        let outcome = self
            .existing("HoldSession", request, convert::hold_session)
            .await?;
        Ok(Response::new(pb::HoldSessionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn reach_agreement(
        &self,
        request: Request<pb::ReachAgreementRequest>,
    ) -> Result<Response<pb::ReachAgreementResponse>, Status> {
        let outcome = self
            .existing("ReachAgreement", request, convert::reach_agreement)
            .await?;
        Ok(Response::new(pb::ReachAgreementResponse {
            outcome: Some(outcome),
        }))
    }

    async fn terminate_mediation(
        &self,
        request: Request<pb::TerminateMediationRequest>,
    ) -> Result<Response<pb::TerminateMediationResponse>, Status> {
        let outcome = self
            .existing("TerminateMediation", request, convert::terminate_mediation)
            .await?;
        Ok(Response::new(pb::TerminateMediationResponse {
            outcome: Some(outcome),
        }))
    }

    async fn escalate_dispute(
        &self,
        request: Request<pb::EscalateDisputeRequest>,
    ) -> Result<Response<pb::EscalateDisputeResponse>, Status> {
        let outcome = self
            .existing("EscalateDispute", request, convert::escalate_dispute)
            .await?;
        Ok(Response::new(pb::EscalateDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn take_over_dispute(
        &self,
        request: Request<pb::TakeOverDisputeRequest>,
    ) -> Result<Response<pb::TakeOverDisputeResponse>, Status> {
        let outcome = self
            .existing("TakeOverDispute", request, convert::take_over_dispute)
            .await?;
        Ok(Response::new(pb::TakeOverDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn send_down_dispute(
        &self,
        request: Request<pb::SendDownDisputeRequest>,
    ) -> Result<Response<pb::SendDownDisputeResponse>, Status> {
        let outcome = self
            .existing("SendDownDispute", request, convert::send_down_dispute)
            .await?;
        Ok(Response::new(pb::SendDownDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn refer_dispute(
        &self,
        request: Request<pb::ReferDisputeRequest>,
    ) -> Result<Response<pb::ReferDisputeResponse>, Status> {
        let outcome = self
            .existing("ReferDispute", request, convert::refer_dispute)
            .await?;
        Ok(Response::new(pb::ReferDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn request_judicial_confirmation(
        &self,
        request: Request<pb::RequestJudicialConfirmationRequest>,
    ) -> Result<Response<pb::RequestJudicialConfirmationResponse>, Status> {
        let outcome = self
            .existing(
                "RequestJudicialConfirmation",
                request,
                convert::request_judicial_confirmation,
            )
            .await?;
        Ok(Response::new(pb::RequestJudicialConfirmationResponse {
            outcome: Some(outcome),
        }))
    }

    async fn rule_judicial_confirmation(
        &self,
        request: Request<pb::RuleJudicialConfirmationRequest>,
    ) -> Result<Response<pb::RuleJudicialConfirmationResponse>, Status> {
        let outcome = self
            .existing(
                "RuleJudicialConfirmation",
                request,
                convert::rule_judicial_confirmation,
            )
            .await?;
        Ok(Response::new(pb::RuleJudicialConfirmationResponse {
            outcome: Some(outcome),
        }))
    }

    async fn record_follow_up(
        &self,
        request: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::RecordFollowUpResponse>, Status> {
        let outcome = self
            .existing("RecordFollowUp", request, convert::record_follow_up)
            .await?;
        Ok(Response::new(pb::RecordFollowUpResponse {
            outcome: Some(outcome),
        }))
    }

    async fn review_dispute(
        &self,
        request: Request<pb::ReviewDisputeRequest>,
    ) -> Result<Response<pb::ReviewDisputeResponse>, Status> {
        let outcome = self
            .existing("ReviewDispute", request, convert::review_dispute)
            .await?;
        Ok(Response::new(pb::ReviewDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn close_dispute(
        &self,
        request: Request<pb::CloseDisputeRequest>,
    ) -> Result<Response<pb::CloseDisputeResponse>, Status> {
        let outcome = self
            .existing("CloseDispute", request, convert::close_dispute)
            .await?;
        Ok(Response::new(pb::CloseDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn evaluate_dispute(
        &self,
        request: Request<pb::EvaluateDisputeRequest>,
    ) -> Result<Response<pb::EvaluateDisputeResponse>, Status> {
        let outcome = self
            .existing("EvaluateDispute", request, convert::evaluate_dispute)
            .await?;
        Ok(Response::new(pb::EvaluateDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    async fn reopen_dispute(
        &self,
        request: Request<pb::ReopenDisputeRequest>,
    ) -> Result<Response<pb::ReopenDisputeResponse>, Status> {
        let outcome = self
            .existing("ReopenDispute", request, convert::reopen_dispute)
            .await?;
        Ok(Response::new(pb::ReopenDisputeResponse {
            outcome: Some(outcome),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetDispute"))]
    async fn get_dispute(
        &self,
        request: Request<pb::GetDisputeRequest>,
    ) -> Result<Response<pb::GetDisputeResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.authorise("GetDispute")?;
        let r = request.into_inner();
        common::case_id("dispute_id", &r.dispute_id)?;
        let found = self.app.get_dispute(&caller, &r.dispute_id).await?;
        Ok(Response::new(pb::GetDisputeResponse {
            dispute: Some(convert::dispute_to_pb(&found, caller.may_see_parties())),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListDisputes"))]
    async fn list_disputes(
        &self,
        request: Request<pb::ListDisputesRequest>,
    ) -> Result<Response<pb::ListDisputesResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.authorise("ListDisputes")?;
        let r = request.into_inner();
        let filter = convert::list_filter(&r)?;
        let page = PageRequest {
            page_size: r.page_size,
            page_token: &r.page_token,
            min_position: r.min_position,
        };
        let (found, next_page_token) = self.app.list_disputes(&caller, filter, page).await?;
        let show_parties = caller.may_see_parties();
        Ok(Response::new(pb::ListDisputesResponse {
            disputes: found
                .iter()
                .map(|d| convert::dispute_to_pb(d, show_parties))
                .collect(),
            next_page_token,
        }))
    }
}
