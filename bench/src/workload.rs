//! The workload: cases walked through their lifecycles the way the domain
//! expects them to go, with the ladder's proportions as parameters, and the
//! two ways of putting it to the engine (through gRPC, or to the same
//! service code in-process).

use std::sync::Arc;

use mediation_api::services::{dispute_service, petition_service, sla_service};
use mediation_app::App;
use mediation_app::access::Caller;
use mediation_domain::services::Services;
use mediation_proto::v1 as pb;
use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
use mediation_proto::v1::dispute_service_server::DisputeService;
use mediation_proto::v1::petition_service_client::PetitionServiceClient;
use mediation_proto::v1::petition_service_server::PetitionService;
use mediation_proto::v1::sla_service_client::SlaServiceClient;
use mediation_proto::v1::sla_service_server::SlaService;
use mediation_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The villages of the example jurisdiction, where most cases start.
pub(crate) const VILLAGES: &[&str] = &[
    "990101001001",
    "990101001002",
    "990101001201",
    "990101101201",
    "990101101202",
    "990101101203",
    "990101102201",
    "990101102202",
];

/// The towns of the example jurisdiction.
pub(crate) const TOWNS: &[&str] = &["990101001000", "990101101000", "990101102000"];

/// How the workload's cases go. The defaults follow DOMAIN.md: published
/// figures put the share resolved at the lowest level at 52–83%, so 80%
/// of disputes end at the village and a fifth go up; of those, a quarter
/// go on to the district.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct Mix {
    /// Share of disputes that fail at the village and escalate to the town.
    #[arg(long, default_value_t = 0.20)]
    pub escalate_to_town: f64,
    /// Share of disputes at the town that escalate again, to the district.
    #[arg(long, default_value_t = 0.25)]
    pub escalate_to_district: f64,
    /// Share of new cases that are petitions rather than disputes.
    #[arg(long, default_value_t = 0.25)]
    pub petitions: f64,
    /// Share of petition opinions that the petitioner asks to be reviewed.
    #[arg(long, default_value_t = 0.30)]
    pub review: f64,
    /// Share of review opinions that go on to a re-review.
    #[arg(long, default_value_t = 0.30)]
    pub re_review: f64,
    /// One SLA board read (a clock list or breach counts) per this many
    /// commands, as a supervisor's screen refreshes between cases.
    #[arg(long, default_value_t = 10)]
    pub read_every: u32,
}

/// One request of the workload.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Register(pb::RegisterDisputeRequest),
    Dispatch(pb::DispatchDisputeRequest),
    Consent(pb::RecordConsentRequest),
    Session(pb::HoldSessionRequest),
    Agree(pb::ReachAgreementRequest),
    Terminate(pb::TerminateMediationRequest),
    Escalate(pb::EscalateDisputeRequest),
    FollowUp(pb::RecordFollowUpRequest),
    Review(pb::ReviewDisputeRequest),
    Close(pb::CloseDisputeRequest),
    Receive(pb::ReceivePetitionRequest),
    Forward(pb::ForwardPetitionRequest),
    Accept(pb::AcceptPetitionRequest),
    Opinion(pb::IssueOpinionRequest),
    AskReview(pb::RequestReviewRequest),
    ReviewOpinion(pb::IssueReviewOpinionRequest),
    AskReReview(pb::RequestReReviewRequest),
    ReReviewOpinion(pb::IssueReReviewOpinionRequest),
    ListClocks(pb::ListClocksRequest),
    ListBreaches(pb::ListBreachesByBodyRequest),
}

impl Step {
    /// The RPC's name, which latencies are reported under.
    pub(crate) fn rpc(&self) -> &'static str {
        match self {
            Self::Register(_) => "RegisterDispute",
            Self::Dispatch(_) => "DispatchDispute",
            Self::Consent(_) => "RecordConsent",
            Self::Session(_) => "HoldSession",
            Self::Agree(_) => "ReachAgreement",
            Self::Terminate(_) => "TerminateMediation",
            Self::Escalate(_) => "EscalateDispute",
            Self::FollowUp(_) => "RecordFollowUp",
            Self::Review(_) => "ReviewDispute",
            Self::Close(_) => "CloseDispute",
            Self::Receive(_) => "ReceivePetition",
            Self::Forward(_) => "ForwardPetition",
            Self::Accept(_) => "AcceptPetition",
            Self::Opinion(_) => "IssueOpinion",
            Self::AskReview(_) => "RequestReview",
            Self::ReviewOpinion(_) => "IssueReviewOpinion",
            Self::AskReReview(_) => "RequestReReview",
            Self::ReReviewOpinion(_) => "IssueReReviewOpinion",
            Self::ListClocks(_) => "ListClocks",
            Self::ListBreaches(_) => "ListBreachesByBody",
        }
    }

    /// Whether the step is a command (it writes) rather than a query.
    pub(crate) fn is_command(&self) -> bool {
        !matches!(self, Self::ListClocks(_) | Self::ListBreaches(_))
    }
}

/// What a step returned: a command's outcome, or nothing for a query.
pub(crate) type Outcome = Option<pb::CommandOutcome>;

/// Where the workload's requests go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A server, over gRPC.
    Grpc(Box<Clients>),
    /// The same service code, called in this process: everything but the
    /// network, HTTP/2 and protobuf encoding.
    InProcess(Box<Local>),
}

/// The services over an engine in this process, and who calls them.
#[derive(Clone)]
pub(crate) struct Local {
    disputes: Arc<dyn DisputeService>,
    petitions: Arc<dyn PetitionService>,
    sla: Arc<dyn SlaService>,
    caller: Arc<Caller>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

/// The generated clients of the services the workload calls.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    disputes: DisputeServiceClient<Channel>,
    petitions: PetitionServiceClient<Channel>,
    sla: SlaServiceClient<Channel>,
}

impl Target {
    /// Clients on `channel`.
    pub(crate) fn grpc(channel: Channel) -> Self {
        Self::Grpc(Box::new(Clients {
            disputes: DisputeServiceClient::new(channel.clone()),
            petitions: PetitionServiceClient::new(channel.clone()),
            sla: SlaServiceClient::new(channel),
        }))
    }

    /// The engine started in this process on `store` with `services`, and
    /// the services' code over it, called as a local supervisor. The
    /// engine's background work (the read models) runs until `stop`; the
    /// handle ends with it.
    ///
    /// The one place the bench starts the engine itself.
    pub(crate) fn in_process(
        store: &Store,
        services: Services,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (app, worker) = App::start(store.clone(), services, stop);
        (Self::local(app), worker)
    }

    /// The services' code over an engine started by the caller, called as
    /// a local supervisor.
    pub(crate) fn local(app: App) -> Self {
        let local = Local {
            disputes: dispute_service(app.clone()),
            petitions: petition_service(app.clone()),
            sla: sla_service(app),
            caller: Arc::new(Caller::local()),
        };
        Self::InProcess(Box::new(local))
    }

    /// Sends `step`.
    pub(crate) async fn send(&mut self, step: Step) -> Result<Outcome, Status> {
        // Each arm names the service and the method; both the generated
        // client and the service trait have a method of that name.
        macro_rules! route {
            ($($variant:ident => $service:ident . $method:ident),* $(,)?) => {
                match (self, step) {
                    $(
                        (Self::Grpc(clients), Step::$variant(r)) => {
                            Ok(Some(clients.$service.$method(r).await?.into_inner().outcome.unwrap_or_default()))
                        }
                        (Self::InProcess(local), Step::$variant(r)) => {
                            let mut request = Request::new(r);
                            request.extensions_mut().insert(local.caller.clone());
                            Ok(Some(local.$service.$method(request).await?.into_inner().outcome.unwrap_or_default()))
                        }
                    )*
                    (Self::Grpc(clients), Step::ListClocks(r)) => {
                        clients.sla.list_clocks(r).await.map(|_| None)
                    }
                    (Self::InProcess(local), Step::ListClocks(r)) => {
                        let mut request = Request::new(r);
                        request.extensions_mut().insert(local.caller.clone());
                        local.sla.list_clocks(request).await.map(|_| None)
                    }
                    (Self::Grpc(clients), Step::ListBreaches(r)) => {
                        clients.sla.list_breaches_by_body(r).await.map(|_| None)
                    }
                    (Self::InProcess(local), Step::ListBreaches(r)) => {
                        let mut request = Request::new(r);
                        request.extensions_mut().insert(local.caller.clone());
                        local.sla.list_breaches_by_body(request).await.map(|_| None)
                    }
                }
            };
        }
        route!(
            Register => disputes.register_dispute,
            Dispatch => disputes.dispatch_dispute,
            Consent => disputes.record_consent,
            Session => disputes.hold_session,
            Agree => disputes.reach_agreement,
            Terminate => disputes.terminate_mediation,
            Escalate => disputes.escalate_dispute,
            FollowUp => disputes.record_follow_up,
            Review => disputes.review_dispute,
            Close => disputes.close_dispute,
            Receive => petitions.receive_petition,
            Forward => petitions.forward_petition,
            Accept => petitions.accept_petition,
            Opinion => petitions.issue_opinion,
            AskReview => petitions.request_review,
            ReviewOpinion => petitions.issue_review_opinion,
            AskReReview => petitions.request_re_review,
            ReReviewOpinion => petitions.issue_re_review_opinion,
        )
    }
}

/// The kinds of step a case goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    Dispatch,
    Terminate,
    Escalate,
    Consent(pb::PartyRole),
    Session,
    Agree,
    FollowUp,
    Review,
    Close,
    Receive,
    Forward,
    Accept,
    Opinion,
    AskReview,
    ReviewOpinion,
    AskReReview,
    ReReviewOpinion,
}

/// A case being walked through its lifecycle: the steps are drawn when the
/// case starts, and each request is made when its turn comes, with the id
/// the first one's outcome gave the case.
#[derive(Debug)]
pub(crate) struct Walk {
    plan: std::vec::IntoIter<Kind>,
    id: String,
    village: &'static str,
    town: &'static str,
    contact: u32,
}

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Walk {
    /// A new case, drawn from `mix` with `rng`.
    pub(crate) fn new(mix: &Mix, rng: &mut fastrand::Rng) -> Self {
        let mut plan = Vec::with_capacity(16);
        if rng.f64() < mix.petitions {
            plan.extend([Kind::Receive, Kind::Forward, Kind::Accept, Kind::Opinion]);
            if rng.f64() < mix.review {
                plan.extend([Kind::AskReview, Kind::ReviewOpinion]);
                if rng.f64() < mix.re_review {
                    plan.extend([Kind::AskReReview, Kind::ReReviewOpinion]);
                }
            }
            // A re-review's opinion is final by itself; otherwise the
            // petition becomes final when the window for asking for a
            // review lapses, a month later: beyond a bench's run.
        } else {
            plan.push(Kind::Register);
            let mut climbs = 0;
            if rng.f64() < mix.escalate_to_town {
                climbs = 1;
                if rng.f64() < mix.escalate_to_district {
                    climbs = 2;
                }
            }
            for _ in 0..climbs {
                plan.extend([Kind::Dispatch, Kind::Terminate, Kind::Escalate]);
            }
            plan.extend([
                Kind::Dispatch,
                Kind::Consent(pb::PartyRole::Applicant),
                Kind::Consent(pb::PartyRole::Respondent),
                Kind::Session,
                Kind::Agree,
                Kind::FollowUp,
                Kind::Review,
                Kind::Close,
            ]);
        }
        Self {
            plan: plan.into_iter(),
            id: String::new(),
            village: VILLAGES[rng.usize(..VILLAGES.len())],
            town: TOWNS[rng.usize(..TOWNS.len())],
            contact: rng.u32(..100_000_000),
        }
    }

    /// Records the outcome of the last request (the case's id, from the
    /// first one).
    pub(crate) fn record(&mut self, outcome: &pb::CommandOutcome) {
        if self.id.is_empty() {
            self.id = outcome.case_id.clone();
        }
    }

    /// The next request, or `None` when the case is done.
    pub(crate) fn next_step(&mut self) -> Option<Step> {
        let kind = self.plan.next()?;
        let request_id = rid();
        let dispute_id = self.id.clone();
        let petition_id = self.id.clone();
        let step = match kind {
            Kind::Register => Step::Register(register(request_id, self.village)),
            Kind::Dispatch => Step::Dispatch(dispatch(
                request_id,
                dispute_id,
                format!("committee-{}", self.village),
                "Mediator Wu".into(),
            )),
            Kind::Terminate => Step::Terminate(pb::TerminateMediationRequest {
                request_id,
                dispute_id,
                actor_id: "mediator-1".into(),
                reason: pb::TerminationReason::NoAgreement.into(),
                note: "No common ground".into(),
                legal_routes_explained: true,
                ..Default::default()
            }),
            Kind::Escalate => Step::Escalate(pb::EscalateDisputeRequest {
                request_id,
                dispute_id,
                actor_id: "mediator-1".into(),
                reason: pb::EscalationReason::MediationFailed.into(),
                ..Default::default()
            }),
            Kind::Consent(party) => Step::Consent(pb::RecordConsentRequest {
                request_id,
                dispute_id,
                actor_id: "mediator-1".into(),
                party: party.into(),
                consents: true,
                ..Default::default()
            }),
            Kind::Session => Step::Session(pb::HoldSessionRequest {
                request_id,
                dispute_id,
                actor_id: "mediator-1".into(),
                summary: "Both sides heard".into(),
                ..Default::default()
            }),
            Kind::Agree => Step::Agree(pb::ReachAgreementRequest {
                request_id,
                dispute_id,
                actor_id: "mediator-1".into(),
                form: pb::AgreementForm::Written.into(),
                terms: "The wall moves 30 cm east".into(),
                ..Default::default()
            }),
            Kind::FollowUp => Step::FollowUp(pb::RecordFollowUpRequest {
                request_id,
                dispute_id,
                actor_id: "mediator-1".into(),
                performance: pb::Performance::Performed.into(),
                note: "The wall has moved".into(),
                ..Default::default()
            }),
            Kind::Review => Step::Review(pb::ReviewDisputeRequest {
                request_id,
                dispute_id,
                actor_id: "supervisor-1".into(),
                approved: true,
                ..Default::default()
            }),
            Kind::Close => Step::Close(pb::CloseDisputeRequest {
                request_id,
                dispute_id,
                actor_id: "supervisor-1".into(),
                ..Default::default()
            }),
            Kind::Receive => Step::Receive(receive(
                request_id,
                self.town,
                format!("138{:08}", self.contact),
            )),
            Kind::Forward => Step::Forward(pb::ForwardPetitionRequest {
                request_id,
                petition_id,
                actor_id: "office-1".into(),
                to_unit: "County Land Bureau".into(),
                ..Default::default()
            }),
            Kind::Accept => Step::Accept(pb::AcceptPetitionRequest {
                request_id,
                petition_id,
                actor_id: "bureau-1".into(),
                ..Default::default()
            }),
            Kind::Opinion => Step::Opinion(pb::IssueOpinionRequest {
                request_id,
                petition_id,
                actor_id: "bureau-1".into(),
                outcome: pb::OpinionOutcome::NotSupport.into(),
                summary: "Compensation was paid in 2019".into(),
                ..Default::default()
            }),
            Kind::AskReview => Step::AskReview(pb::RequestReviewRequest {
                request_id,
                petition_id,
                actor_id: "office-1".into(),
                reason: "No payment was received".into(),
                ..Default::default()
            }),
            Kind::ReviewOpinion => Step::ReviewOpinion(pb::IssueReviewOpinionRequest {
                request_id,
                petition_id,
                actor_id: "county-1".into(),
                outcome: pb::OpinionOutcome::Explain.into(),
                summary: "Payment went to the collective".into(),
                ..Default::default()
            }),
            Kind::AskReReview => Step::AskReReview(pb::RequestReReviewRequest {
                request_id,
                petition_id,
                actor_id: "office-1".into(),
                reason: "The collective kept it".into(),
                ..Default::default()
            }),
            Kind::ReReviewOpinion => Step::ReReviewOpinion(pb::IssueReReviewOpinionRequest {
                request_id,
                petition_id,
                actor_id: "city-1".into(),
                outcome: pb::OpinionOutcome::Support.into(),
                summary: "The collective pays the petitioner".into(),
                ..Default::default()
            }),
        };
        Some(step)
    }
}

/// A dispute registered at `village`.
pub(crate) fn register(request_id: String, village: &str) -> pb::RegisterDisputeRequest {
    pb::RegisterDisputeRequest {
        request_id,
        actor_id: "clerk-1".into(),
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

/// Dispute `dispute_id` sent to the committee `body_id`.
pub(crate) fn dispatch(
    request_id: String,
    dispute_id: String,
    body_id: String,
    mediator: String,
) -> pb::DispatchDisputeRequest {
    pb::DispatchDisputeRequest {
        request_id,
        dispute_id,
        actor_id: "clerk-1".into(),
        body: Some(pb::MediationBody {
            body_id,
            name: "Mediation Committee".into(),
            kind: pb::MediationKind::Peoples.into(),
        }),
        mediator,
        ..Default::default()
    }
}

/// A petition received at `town` from a petitioner reachable at `contact`.
pub(crate) fn receive(
    request_id: String,
    town: &str,
    contact: String,
) -> pb::ReceivePetitionRequest {
    pb::ReceivePetitionRequest {
        request_id,
        actor_id: "office-1".into(),
        channel: pb::PetitionChannel::Letter.into(),
        petitioner: Some(pb::Petitioner {
            name: "Chen Jing".into(),
            contact,
        }),
        complained_unit: "County Land Bureau".into(),
        facts: "Compensation for requisitioned land was never paid".into(),
        division_code: town.into(),
        competent_level: pb::Level::Town.into(),
        ..Default::default()
    }
}

/// An SLA board read, as a supervisor's screen shows between cases:
/// clocks due within a week in a town, or breach counts per body.
pub(crate) fn board_read(rng: &mut fastrand::Rng) -> Step {
    let town = TOWNS[rng.usize(..TOWNS.len())];
    if rng.bool() {
        Step::ListClocks(pb::ListClocksRequest {
            division_code: town.into(),
            view: pb::ClockView::DueSoon.into(),
            due_within_days: 7,
            page_size: 20,
            ..Default::default()
        })
    } else {
        Step::ListBreaches(pb::ListBreachesByBodyRequest {
            division_code: town.into(),
            ..Default::default()
        })
    }
}
