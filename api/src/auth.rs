//! Authentication over gRPC: the bearer token in `authorization` names the
//! caller ([`mediation_app::access`] holds the agencies, their scopes and
//! roles), which the interceptor attaches to the request for the services.

use std::path::Path;
use std::sync::Arc;

use mediation_app::access::{Agencies, AuthConfigError, Caller};
use tonic::{Request, Status};

/// Checks bearer tokens against the agencies file, or lets every call in as
/// [`Caller::local`] when authentication is off.
#[derive(Debug, Clone)]
pub struct Authenticator {
    agencies: Agencies,
}

impl Authenticator {
    /// Authentication off: every call acts as [`Caller::local`].
    pub fn disabled() -> Self {
        Self {
            agencies: Agencies::disabled(),
        }
    }

    /// Whether calls must present a token.
    pub fn enabled(&self) -> bool {
        self.agencies.enabled()
    }

    /// Reads the agencies file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, AuthConfigError> {
        Agencies::from_file(path).map(|agencies| Self { agencies })
    }

    /// Parses an agencies file.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        Agencies::from_toml(text).map(|agencies| Self { agencies })
    }

    /// The agencies this server knows.
    pub fn agencies(&self) -> &Agencies {
        &self.agencies
    }

    /// The caller presenting `request`'s credentials ([`Caller::local`]
    /// when authentication is off).
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Arc<Caller>, Status> {
        let token = if self.agencies.enabled() {
            bearer_token(request)?
        } else {
            ""
        };
        self.agencies
            .caller(token)
            .ok_or_else(|| Status::unauthenticated("unknown or revoked token"))
    }
}

/// The token of `authorization: Bearer <token>`.
fn bearer_token<T>(request: &Request<T>) -> Result<&str, Status> {
    let header = request
        .metadata()
        .get("authorization")
        .ok_or_else(|| {
            Status::unauthenticated(
                "missing credentials: send the header `authorization: Bearer <token>`",
            )
        })?
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not ASCII"))?;
    Ok(header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            Status::unauthenticated("the authorization header must read `Bearer <token>`")
        })?
        .trim())
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.authenticate(&request)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The caller that the [`Authenticator`] interceptor attached to `request`.
pub fn caller<T>(request: &Request<T>) -> Result<Arc<Caller>, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| Status::internal("no caller attached to the request"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[agency]]
id = "town-101"
name = "Example Town Mediation Centre"
scope = "990101101000"
roles = ["registrar", "mediator"]
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;

    fn with_header(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    #[test]
    fn a_bearer_token_names_the_caller_and_anything_else_is_unauthenticated() {
        let auth = Authenticator::from_toml(FILE).unwrap();
        let caller = auth.authenticate(&with_header("Bearer test")).unwrap();
        assert_eq!(caller.agency().as_str(), "town-101");
        for refused in [
            auth.authenticate(&with_header("Bearer nope")),
            auth.authenticate(&with_header("Basic dGVzdA==")),
            auth.authenticate(&Request::new(())),
        ] {
            assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
        }
        let open = Authenticator::disabled().authenticate(&Request::new(()));
        assert_eq!(open.unwrap().agency().as_str(), "local");
    }
}
