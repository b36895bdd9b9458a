//! The `mediation.v1.DisputeService`: each command RPC converts its request
//! into an envelope and hands it to the [`App`]; the reads convert the
//! cases they get back.

use mediation_app::{App, PageRequest};
use mediation_domain::dispute::DisputeAction;
use mediation_proto::v1 as pb;
use mediation_proto::v1::dispute_service_server::DisputeService;
use tonic::{Request, Response, Status};

use crate::auth;
use crate::convert::common::{as_of_point, timestamp};
use crate::convert::dispute as convert;
use crate::error::status;
use crate::services::command_service;

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
}

command_service! {
    DisputeApi: DisputeService, DisputeAction, dispute_command;
    report_dispute(ReportDisputeRequest) -> ReportDisputeResponse
        = "ReportDispute", New, convert::report_dispute;
    register_dispute(RegisterDisputeRequest) -> RegisterDisputeResponse
        = "RegisterDispute", New, convert::register_dispute;
    dispatch_dispute(DispatchDisputeRequest) -> DispatchDisputeResponse
        = "DispatchDispute", Existing, convert::dispatch_dispute;
    record_consent(RecordConsentRequest) -> RecordConsentResponse
        = "RecordConsent", Existing, convert::record_consent;
    hold_session(HoldSessionRequest) -> HoldSessionResponse
        = "HoldSession", Existing, convert::hold_session;
    reach_agreement(ReachAgreementRequest) -> ReachAgreementResponse
        = "ReachAgreement", Existing, convert::reach_agreement;
    extend_mediation(ExtendMediationRequest) -> ExtendMediationResponse
        = "ExtendMediation", Existing, convert::extend_mediation;
    terminate_mediation(TerminateMediationRequest) -> TerminateMediationResponse
        = "TerminateMediation", Existing, convert::terminate_mediation;
    escalate_dispute(EscalateDisputeRequest) -> EscalateDisputeResponse
        = "EscalateDispute", Existing, convert::escalate_dispute;
    take_over_dispute(TakeOverDisputeRequest) -> TakeOverDisputeResponse
        = "TakeOverDispute", Existing, convert::take_over_dispute;
    send_down_dispute(SendDownDisputeRequest) -> SendDownDisputeResponse
        = "SendDownDispute", Existing, convert::send_down_dispute;
    refer_dispute(ReferDisputeRequest) -> ReferDisputeResponse
        = "ReferDispute", Existing, convert::refer_dispute;
    request_judicial_confirmation(RequestJudicialConfirmationRequest)
        -> RequestJudicialConfirmationResponse
        = "RequestJudicialConfirmation", Existing, convert::request_judicial_confirmation;
    accept_judicial_confirmation(AcceptJudicialConfirmationRequest)
        -> AcceptJudicialConfirmationResponse
        = "AcceptJudicialConfirmation", Existing, convert::accept_judicial_confirmation;
    extend_judicial_confirmation(ExtendJudicialConfirmationRequest)
        -> ExtendJudicialConfirmationResponse
        = "ExtendJudicialConfirmation", Existing, convert::extend_judicial_confirmation;
    rule_judicial_confirmation(RuleJudicialConfirmationRequest)
        -> RuleJudicialConfirmationResponse
        = "RuleJudicialConfirmation", Existing, convert::rule_judicial_confirmation;
    record_follow_up(RecordFollowUpRequest) -> RecordFollowUpResponse
        = "RecordFollowUp", Existing, convert::record_follow_up;
    review_dispute(ReviewDisputeRequest) -> ReviewDisputeResponse
        = "ReviewDispute", Existing, convert::review_dispute;
    close_dispute(CloseDisputeRequest) -> CloseDisputeResponse
        = "CloseDispute", Existing, convert::close_dispute;
    evaluate_dispute(EvaluateDisputeRequest) -> EvaluateDisputeResponse
        = "EvaluateDispute", Existing, convert::evaluate_dispute;
    reopen_dispute(ReopenDisputeRequest) -> ReopenDisputeResponse
        = "ReopenDispute", Existing, convert::reopen_dispute;
    assign_dispute_official(AssignDisputeOfficialRequest) -> AssignDisputeOfficialResponse
        = "AssignDisputeOfficial", Existing, convert::assign_dispute_official;
    ;

    #[tracing::instrument(skip_all, fields(rpc = "GetDispute"))]
    async fn get_dispute(
        &self,
        request: Request<pb::GetDisputeRequest>,
    ) -> Result<Response<pb::GetDisputeResponse>, Status> {
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        let found = self
            .app
            .get_dispute(&caller, &r.dispute_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetDisputeResponse {
            dispute: Some(convert::dispute_to_pb(&found, caller.may_see_parties())),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetDisputeAsOf"))]
    async fn get_dispute_as_of(
        &self,
        request: Request<pb::GetDisputeAsOfRequest>,
    ) -> Result<Response<pb::GetDisputeAsOfResponse>, Status> {
        use pb::get_dispute_as_of_request::Point;
        let caller = auth::caller(&request)?;
        let r = request.get_ref();
        let point = match &r.point {
            Some(Point::AsOfTime(time)) => as_of_point(Some(time), None),
            Some(Point::AsOfPosition(position)) => as_of_point(None, Some(*position)),
            None => as_of_point(None, None),
        };
        let past = self
            .app
            .dispute_as_of(&caller, &r.dispute_id, point?)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetDisputeAsOfResponse {
            dispute: Some(convert::dispute_to_pb(&past.found, caller.may_see_parties())),
            last_change_time: Some(timestamp(past.last_change)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListDisputes"))]
    async fn list_disputes(
        &self,
        request: Request<pb::ListDisputesRequest>,
    ) -> Result<Response<pb::ListDisputesResponse>, Status> {
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
            .list_disputes(&caller, filter, page)
            .await
            .map_err(status)?;
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
