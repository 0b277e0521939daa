//! Permissions from the configuration: ordered `[[permissions]]` rules, each
//! naming a hub topic (`topic = "glob"`) or a STOMP queue (`queue = "glob"`),
//! optionally only for some authenticated users (`users = [...]`), and
//! allowing or denying subscribe and publish (SEND for a queue). The first
//! rule that matches the destination and the user decides; a destination no
//! rule matches is open to all.

use serde::Deserialize;
use switchboard_auth::glob_match;
use switchboard_hub::{Action, ClientInfo};

/// One `[[permissions]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Glob on the hub topic name (`/topic/x` in STOMP is topic `x`): `*`
    /// matches any run of characters (also none).
    #[serde(default)]
    pub topic: Option<String>,
    /// Glob on the STOMP queue name (`/queue/x` is queue `x`).
    #[serde(default)]
    pub queue: Option<String>,
    /// When set, the rule applies only to connections authenticated as one
    /// of these users (token subject, STOMP login); anonymous connections
    /// never match, whatever name they chose.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// Whether clients may subscribe to matching destinations.
    #[serde(default = "yes")]
    pub subscribe: bool,
    /// Whether clients may publish (SEND) to matching destinations.
    #[serde(default = "yes")]
    pub publish: bool,
}

fn yes() -> bool {
    true
}

impl Rule {
    /// Checks that the rule names exactly one of `topic` and `queue`.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.topic, &self.queue) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err("a [[permissions]] rule names exactly one of `topic` and `queue`".into()),
        }
    }

    fn applies_to(&self, user: Option<&str>) -> bool {
        match (&self.users, user) {
            (None, _) => true,
            (Some(users), Some(u)) => users.iter().any(|x| x == u),
            (Some(_), None) => false,
        }
    }

    fn decides(&self, action: Action) -> bool {
        match action {
            Action::Subscribe => self.subscribe,
            Action::Publish => self.publish,
        }
    }
}

/// Whether `rules` let `client` do `action` on hub topic `topic`.
pub fn allowed(rules: &[Rule], client: &ClientInfo, topic: &str, action: Action) -> bool {
    first_match(rules, client.user().map(|u| &**u), |r| r.topic.as_deref(), topic)
        .is_none_or(|r| r.decides(action))
}

/// Whether `rules` let `user` (`None`: anonymous) do `action` on STOMP queue
/// `queue` (the name after `/queue/`).
pub fn queue_allowed(rules: &[Rule], user: Option<&str>, queue: &str, action: Action) -> bool {
    first_match(rules, user, |r| r.queue.as_deref(), queue).is_none_or(|r| r.decides(action))
}

fn first_match<'r>(
    rules: &'r [Rule],
    user: Option<&str>,
    pattern: impl Fn(&Rule) -> Option<&str>,
    name: &str,
) -> Option<&'r Rule> {
    rules
        .iter()
        .find(|r| pattern(r).is_some_and(|p| glob_match(p, name)) && r.applies_to(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("admin.*", "admin.x"));
        assert!(glob_match("admin.*", "admin."));
        assert!(!glob_match("admin.*", "admin"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn first_matching_rule_decides() {
        let rules = [
            topic_rule("news.public", true, true),
            topic_rule("news.*", true, false),
            topic_rule("secret*", false, false),
        ];
        let c = ClientInfo::new("a", "websocket");
        assert!(allowed(&rules, &c, "news.public", Action::Publish));
        assert!(!allowed(&rules, &c, "news.today", Action::Publish));
        assert!(allowed(&rules, &c, "news.today", Action::Subscribe));
        assert!(!allowed(&rules, &c, "secret", Action::Subscribe));
        assert!(allowed(&rules, &c, "lobby", Action::Publish));
    }

    fn topic_rule(topic: &str, subscribe: bool, publish: bool) -> Rule {
        Rule {
            topic: Some(topic.into()),
            queue: None,
            users: None,
            subscribe,
            publish,
        }
    }

    #[test]
    fn user_rules_and_queues() {
        let rules: Vec<Rule> = toml::from_str::<toml::Table>(
            r#"
            [[r]]
            topic = "admin.*"
            users = ["root"]
            [[r]]
            topic = "admin.*"
            subscribe = false
            publish = false
            [[r]]
            queue = "orders"
            users = ["shop"]
            subscribe = false
            [[r]]
            queue = "orders"
            publish = false
            "#,
        )
        .unwrap()["r"]
            .clone()
            .try_into()
            .unwrap();
        rules.iter().for_each(|r| r.validate().unwrap());
        let root = ClientInfo::new("root", "stomp").with_user("root", None);
        // An anonymous client that calls itself "root" is not root.
        let impostor = ClientInfo::new("root", "websocket");
        assert!(allowed(&rules, &root, "admin.x", Action::Publish));
        assert!(!allowed(&rules, &impostor, "admin.x", Action::Subscribe));
        // Queue rules do not apply to topics of the same name and vice versa.
        assert!(allowed(&rules, &impostor, "orders", Action::Publish));
        assert!(queue_allowed(&rules, None, "admin.x", Action::Subscribe));
        // The shop may send orders but not consume them; everyone else may
        // consume but not send.
        assert!(queue_allowed(&rules, Some("shop"), "orders", Action::Publish));
        assert!(!queue_allowed(&rules, Some("shop"), "orders", Action::Subscribe));
        assert!(!queue_allowed(&rules, Some("worker"), "orders", Action::Publish));
        assert!(queue_allowed(&rules, Some("worker"), "orders", Action::Subscribe));
        assert!(!queue_allowed(&rules, None, "orders", Action::Publish));
        assert!(queue_allowed(&rules, None, "jobs", Action::Publish));
        let both = Rule {
            queue: Some("x".into()),
            ..topic_rule("x", true, true)
        };
        assert!(both.validate().is_err());
        let neither = Rule {
            topic: None,
            ..topic_rule("x", true, true)
        };
        assert!(neither.validate().is_err());
    }
}
