//! `PrivacyService`: forgetting a person at their request.

use mediation_app::erasure::{ErasedCase, Whom};
use mediation_app::{App, AppError};
use mediation_domain::values::{ActorId, Name};
use mediation_proto::v1 as pb;
use mediation_proto::v1::privacy_service_server::PrivacyService;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::error::status;

/// The privacy service.
#[derive(Debug, Clone)]
pub(crate) struct PrivacyApi {
    app: App,
}

impl PrivacyApi {
    /// The service over `app`.
    pub(crate) fn new(app: App) -> Self {
        Self { app }
    }
}

/// The person a request names, every field checked.
fn whom(r: &pb::ForgetPersonRequest) -> Result<Whom, AppError> {
    match &r.person {
        Some(pb::forget_person_request::Person::Named(named)) => {
            let name =
                Name::parse(&named.name).map_err(|e| AppError::invalid("named.name", e.reason))?;
            let contact = if named.contact.trim().is_empty() {
                None
            } else {
                Some(
                    Name::parse(&named.contact)
                        .map_err(|e| AppError::invalid("named.contact", e.reason))?,
                )
            };
            Ok(Whom::Named { name, contact })
        }
        Some(pb::forget_person_request::Person::PersonKey(key)) => {
            let key = key.trim();
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(AppError::invalid(
                    "person_key",
                    "a pseudonym is 64 hexadecimal digits, as exports show it",
                ));
            }
            Ok(Whom::Key(key.to_ascii_lowercase()))
        }
        None => Err(AppError::invalid(
            "person",
            "required: set named (a name, and the contact given with a petition) or person_key",
        )),
    }
}

#[tonic::async_trait]
impl PrivacyService for PrivacyApi {
    #[tracing::instrument(skip_all, fields(rpc = "ForgetPerson"))]
    async fn forget_person(
        &self,
        request: Request<pb::ForgetPersonRequest>,
    ) -> Result<Response<pb::ForgetPersonResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ForgetPerson").map_err(status)?;
        let r = request.get_ref();
        mediation_app::command::RequestId::parse("request_id", &r.request_id).map_err(status)?;
        let actor = ActorId::parse(&r.actor_id)
            .map_err(|e| status(AppError::invalid("actor_id", e.reason)))?;
        let whom = whom(r).map_err(status)?;
        let forgotten = self
            .app
            .forget_person(&caller, actor, whom)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ForgetPersonResponse {
            person_keys: forgotten.persons,
            cases: forgotten.cases.into_iter().map(erased_to_pb).collect(),
        }))
    }
}

fn erased_to_pb(case: ErasedCase) -> pb::ErasedCase {
    let aggregate_type = if case.aggregate_type == "Dispute" {
        pb::AggregateType::Dispute
    } else {
        pb::AggregateType::Petition
    };
    pb::ErasedCase {
        aggregate_type: aggregate_type.into(),
        case_id: case.case_id,
        position: case.position,
    }
}
