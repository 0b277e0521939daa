//! Topic permissions from the configuration: ordered rules with a glob on the
//! topic name, each allowing or denying subscribe and publish. The first rule
//! whose pattern matches decides; a topic no rule matches is open to all.

use serde::Deserialize;
use switchboard_hub::{Action, ClientInfo};

/// One `[[permissions]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// Glob on the topic name: `*` matches any run of characters (also none).
    pub topic: String,
    /// Whether clients may subscribe to matching topics.
    #[serde(default = "yes")]
    pub subscribe: bool,
    /// Whether clients may publish to matching topics.
    #[serde(default = "yes")]
    pub publish: bool,
}

fn yes() -> bool {
    true
}

/// Whether `rules` let a client do `action` on `topic`.
pub fn allowed(rules: &[TopicRule], _client: &ClientInfo, topic: &str, action: Action) -> bool {
    match rules.iter().find(|r| glob_match(&r.topic, topic)) {
        Some(rule) => match action {
            Action::Subscribe => rule.subscribe,
            Action::Publish => rule.publish,
        },
        None => true,
    }
}

/// `*`-only glob matching, linear in practice (greedy with backtracking to the last star).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
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
        let rules = vec![
            TopicRule {
                topic: "news.public".into(),
                subscribe: true,
                publish: true,
            },
            TopicRule {
                topic: "news.*".into(),
                subscribe: true,
                publish: false,
            },
            TopicRule {
                topic: "secret*".into(),
                subscribe: false,
                publish: false,
            },
        ];
        let c = ClientInfo::new("a", "websocket");
        assert!(allowed(&rules, &c, "news.public", Action::Publish));
        assert!(!allowed(&rules, &c, "news.today", Action::Publish));
        assert!(allowed(&rules, &c, "news.today", Action::Subscribe));
        assert!(!allowed(&rules, &c, "secret", Action::Subscribe));
        assert!(allowed(&rules, &c, "lobby", Action::Publish));
    }
}
