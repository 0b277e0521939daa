//! Who may connect and what they may do: the [`Authenticator`] consulted on
//! CONNECT (with [`StaticUsers`] and [`AllowAll`]), the [`Principal`] it
//! yields, and the per-destination permission hook ([`PermissionFn`]).
//! Turning a refusal into an ERROR frame is the connection's job.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use switchboard_hub::Grants;
use switchboard_stomp_proto::ConnectRequest;

/// The authenticated identity of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    name: Arc<str>,
    id: Arc<str>,
    anonymous: bool,
    grants: Option<Grants>,
}

impl Principal {
    /// A named user (its name is also its user id).
    pub fn user(name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        Principal {
            id: name.clone(),
            name,
            anonymous: false,
            grants: None,
        }
    }

    /// A user whose display name differs from its id (e.g. a token's `name`
    /// and `sub`), with the limits its credentials carry on hub topics.
    pub fn authenticated(
        name: impl Into<Arc<str>>,
        id: impl Into<Arc<str>>,
        grants: Option<Grants>,
    ) -> Self {
        Principal {
            name: name.into(),
            id: id.into(),
            anonymous: false,
            grants,
        }
    }

    /// The anonymous principal (name `anonymous`).
    pub fn anonymous() -> Self {
        let name: Arc<str> = Arc::from("anonymous");
        Principal {
            id: name.clone(),
            name,
            anonymous: true,
            grants: None,
        }
    }

    /// An anonymous connection that chose a display name (not an identity:
    /// permission rules and `Hub::disconnect_user` never match it).
    pub fn anonymous_named(name: impl Into<Arc<str>>) -> Self {
        Principal {
            name: name.into(),
            ..Principal::anonymous()
        }
    }

    /// The user id (the login for [`StaticUsers`]); what permission rules
    /// and `Hub::disconnect_user` match.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The credentials' limits on hub topics, if any.
    pub fn grants(&self) -> Option<&Grants> {
        self.grants.as_ref()
    }

    /// The name, used as the hub display name (`from` of publications).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a shared string.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether the connection did not log in.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }
}

/// Checks the credentials of a CONNECT frame.
///
/// `Err(message)` rejects the connection: the client gets an ERROR frame
/// with that `message` header and the connection is closed.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates `login` / `passcode` (absent headers are `None`) for
    /// virtual host `host`.
    fn authenticate(
        &self,
        login: Option<&str>,
        passcode: Option<&str>,
        host: Option<&str>,
    ) -> Result<Principal, String>;

    /// Authenticates a whole CONNECT frame: what the broker calls. The
    /// default passes `login`, `passcode` and `host` to
    /// [`authenticate`](Self::authenticate); override it to read other
    /// headers (e.g. a `token` header).
    fn authenticate_request(&self, req: &ConnectRequest) -> Result<Principal, String> {
        self.authenticate(
            req.login.as_deref(),
            req.passcode.as_deref(),
            req.host.as_deref(),
        )
    }
}

/// Accepts everybody: a `login` becomes the principal's name (the passcode
/// is not checked), no `login` is anonymous. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(
        &self,
        login: Option<&str>,
        _passcode: Option<&str>,
        _host: Option<&str>,
    ) -> Result<Principal, String> {
        Ok(match login {
            Some(l) if !l.is_empty() => Principal::user(l),
            _ => Principal::anonymous(),
        })
    }
}

/// A fixed table of users and passcodes, e.g. from a configuration file.
///
/// ```
/// use switchboard_stomp::{Authenticator, StaticUsers};
///
/// let users = StaticUsers::new().user("alice", "secret").allow_anonymous(true);
/// assert_eq!(users.authenticate(Some("alice"), Some("secret"), None).unwrap().name(), "alice");
/// assert!(users.authenticate(Some("alice"), Some("wrong"), None).is_err());
/// assert!(users.authenticate(None, None, None).unwrap().is_anonymous());
/// ```
#[derive(Clone, Default)]
pub struct StaticUsers {
    users: HashMap<String, String>,
    allow_anonymous: bool,
}

impl StaticUsers {
    /// No users; anonymous connections refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a user.
    pub fn user(mut self, login: impl Into<String>, passcode: impl Into<String>) -> Self {
        self.users.insert(login.into(), passcode.into());
        self
    }

    /// Whether a CONNECT without `login` is accepted as anonymous. A wrong
    /// login is refused either way.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Whether anonymous connections are accepted.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
    }

    /// Whether `login` is one of the users.
    pub fn has_user(&self, login: &str) -> bool {
        self.users.contains_key(login)
    }
}

impl fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut logins: Vec<&str> = self.users.keys().map(String::as_str).collect();
        logins.sort_unstable();
        f.debug_struct("StaticUsers")
            .field("users", &logins)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

impl Authenticator for StaticUsers {
    fn authenticate(
        &self,
        login: Option<&str>,
        passcode: Option<&str>,
        _host: Option<&str>,
    ) -> Result<Principal, String> {
        match login {
            None if self.allow_anonymous => Ok(Principal::anonymous()),
            None => Err("login required".to_owned()),
            Some(login) => match self.users.get(login) {
                Some(expected) if passcode == Some(expected.as_str()) => Ok(Principal::user(login)),
                _ => Err("bad credentials".to_owned()),
            },
        }
    }
}

/// What a connection is trying to do on a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// SEND to the destination.
    Send,
    /// SUBSCRIBE to the destination.
    Subscribe,
}

/// Permission hook: `true` allows `principal` to perform the action on the
/// destination (the full STOMP name, e.g. `/queue/orders`). Called on every
/// SEND and SUBSCRIBE, with no broker lock held; keep it cheap. A refusal
/// answers with an ERROR frame `... not allowed` and closes the connection.
pub type PermissionFn = Arc<dyn Fn(&Principal, &str, Action) -> bool + Send + Sync>;
