//! Who a connection is, for every protocol: a connection token (JWT,
//! `[auth]`, checked by `switchboard_auth`) or, when anonymous connections
//! are allowed, the display name the client chose; and the STOMP
//! authenticator that accepts `[stomp] users`, tokens in `passcode` or in a
//! `token` / `Authorization` header. docs/auth.md describes where each
//! protocol carries its token and how refusals look.

use crate::endpoints::envelope::display_name;
use std::sync::Arc;
use switchboard_auth::{AuthError, Authenticator, Identity};
use switchboard_hub::{ClientInfo, Grants};
use switchboard_stomp::proto::ConnectRequest;
use switchboard_stomp::{Principal, StaticUsers};

/// WebSocket close code (and SockJS close code) of a connection refused for
/// its credentials after the transport opened: 4401, as graphql-ws uses.
pub const UNAUTHORIZED_CLOSE_CODE: u16 = 4401;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its credentials: missing, expired, forged... (HTTP 401).
    Auth(AuthError),
    /// The display name it asked for (HTTP 400).
    BadName(&'static str),
}

impl Refusal {
    /// A short, client-safe reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Auth(e) => e.reason(),
            Refusal::BadName(r) => r,
        }
    }
}

/// The hub identity of a new connection speaking `protocol`: from `token`
/// when one is presented (it must be valid even when anonymous connections
/// are allowed), else anonymous with the display name `name` (or
/// `anon-<n>`) when `[auth] anonymous` allows it.
pub fn identify(
    auth: &Authenticator,
    token: Option<&str>,
    name: Option<String>,
    protocol: &'static str,
) -> Result<ClientInfo, Refusal> {
    let token = token.filter(|t| !t.trim().is_empty());
    let identity = auth.authenticate(token).map_err(Refusal::Auth)?;
    if identity.anonymous {
        let name = display_name(name).map_err(Refusal::BadName)?;
        return Ok(ClientInfo::new(name, protocol));
    }
    let user = identity
        .subject
        .clone()
        .unwrap_or_else(|| identity.name.clone());
    let grants = grants(&identity);
    Ok(ClientInfo::new(identity.name.clone(), protocol).with_user(user, grants))
}

/// The token's topic claims as hub grants (`None` when it has none).
pub fn grants(identity: &Identity) -> Option<Grants> {
    if identity.subscribe.is_none() && identity.publish.is_none() {
        return None;
    }
    let identity = Arc::new(identity.clone());
    Some(Grants::new(move |topic, action| identity.may(topic, action)))
}

/// The token of an HTTP request: `?token=` or `Authorization: Bearer`.
pub fn request_token(parts: &axum::http::request::Parts) -> Option<String> {
    if let Some(t) = parts
        .uri
        .query()
        .and_then(|q| switchboard_auth::query_param(q, "token"))
    {
        return Some(t.into_owned());
    }
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(switchboard_auth::bearer_token)
        .map(str::to_owned)
}

/// STOMP CONNECT: `[stomp] users` by login and passcode; a token in a
/// `token` header, an `Authorization: Bearer` header, or in `passcode`
/// (as RabbitMQ's OAuth 2 plugin takes it) when the login is not one of the
/// users; no credentials at all is anonymous when both `[stomp]
/// allow_anonymous` and `[auth] anonymous` allow it.
pub struct StompAuth {
    /// `[stomp] users`, with `[stomp] allow_anonymous`.
    pub users: StaticUsers,
    /// Whether `[stomp] users` has any entry.
    pub has_users: bool,
    /// Token checks (`[auth]`).
    pub tokens: Arc<Authenticator>,
}

impl switchboard_stomp::Authenticator for StompAuth {
    fn authenticate(
        &self,
        login: Option<&str>,
        passcode: Option<&str>,
        host: Option<&str>,
    ) -> Result<Principal, String> {
        self.users.authenticate(login, passcode, host)
    }

    fn authenticate_request(&self, req: &ConnectRequest) -> Result<Principal, String> {
        let header_token = req.headers.get("token").map(str::to_owned).or_else(|| {
            req.headers
                .get("Authorization")
                .or_else(|| req.headers.get("authorization"))
                .and_then(switchboard_auth::bearer_token)
                .map(str::to_owned)
        });
        let login = req.login.as_deref().filter(|l| !l.is_empty());
        let is_user = login.is_some_and(|l| self.users.has_user(l));
        let token = match header_token {
            Some(t) => Some(t),
            None if !is_user && self.tokens.accepts_tokens() => {
                req.passcode.clone().filter(|p| !p.is_empty())
            }
            None => None,
        };
        if let Some(token) = token {
            let identity = self
                .tokens
                .authenticate(Some(&token))
                .map_err(|e| e.reason().to_owned())?;
            let id = identity
                .subject
                .clone()
                .unwrap_or_else(|| identity.name.clone());
            return Ok(Principal::authenticated(
                identity.name.clone(),
                id,
                grants(&identity),
            ));
        }
        let anonymous_ok = self.tokens.anonymous_allowed() && self.users.anonymous_allowed();
        if !self.has_users && anonymous_ok {
            // No user table: a login without a token is only a display name
            // (anonymous: no permission rule or API call matches it).
            return Ok(match login {
                Some(l) => Principal::anonymous_named(l),
                None => Principal::anonymous(),
            });
        }
        if login.is_none() && self.users.anonymous_allowed() && !anonymous_ok {
            return Err(AuthError::TokenRequired.reason().to_owned());
        }
        self.users.authenticate(
            req.login.as_deref(),
            req.passcode.as_deref(),
            req.host.as_deref(),
        )
    }
}
