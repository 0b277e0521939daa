//! Who is connecting: connection tokens (JWT, HS256 and/or RS256) and API
//! keys for Switchboard, the same for every protocol. A pure library: it
//! verifies strings and never touches a socket, a clock source other than
//! [`std::time::SystemTime`] (and that only in
//! [`Authenticator::authenticate`]) or an async runtime.
//!
//! The server takes the token from wherever the client's protocol carries it
//! and hands it to [`Authenticator::authenticate`]:
//!
//! | protocol | token |
//! |---|---|
//! | WebSocket | `?token=` ([`query_param`]) or `Authorization: Bearer` ([`bearer_token`]) |
//! | Socket.IO | the handshake's `auth: {token}` |
//! | SockJS | `?token=` ([`query_param`]) |
//! | STOMP | CONNECT's `passcode` or `token` header |
//! | backend HTTP API | an API key ([`Authenticator::check_api_key`]) |
//!
//! ```
//! use switchboard_auth::{mint_hs256, Action, AuthConfig, Authenticator, Claims};
//!
//! let secret = "an HS256 secret of at least 32 bytes!";
//! let config = AuthConfig {
//!     anonymous: false,
//!     jwt_hs256_secret: Some(secret.into()),
//!     ..AuthConfig::default()
//! };
//! let auth = Authenticator::new(&config)?;
//!
//! let token = mint_hs256(
//!     secret.as_bytes(),
//!     &Claims {
//!         sub: Some("user-42".into()),
//!         name: Some("Ada".into()),
//!         exp: Some(2_000_000_000),
//!         publish: Some(vec!["chat.*".into()]),
//!         ..Claims::default()
//!     },
//! );
//! let who = auth.authenticate_at(Some(&token), 1_900_000_000)?;
//! assert_eq!(&*who.name, "Ada");
//! assert!(who.may("chat.lobby", Action::Publish));
//! assert!(!who.may("admin", Action::Publish));
//! assert!(who.may("admin", Action::Subscribe)); // no `subscribe` claim: no limit
//!
//! assert_eq!(
//!     auth.authenticate_at(None, 1_900_000_000).unwrap_err().reason(),
//!     "token required"
//! );
//! # Ok::<(), switchboard_auth::AuthError>(())
//! ```

mod api_key;
mod authenticator;
mod claims;
mod config;
mod error;
mod extract;
mod glob;
mod identity;
mod mint;

pub use authenticator::{Authenticator, MAX_TOKEN_LEN};
pub use claims::Claims;
pub use config::AuthConfig;
pub use error::AuthError;
pub use extract::{bearer_token, query_param};
pub use glob::glob_match;
pub use identity::{Identity, ANONYMOUS_NAME};
pub use mint::{mint_hs256, mint_rs256};
pub use switchboard_hub::Action;
