//! [`Identity`]: who a connection is once authenticated (or that it is
//! anonymous), and what its token limits it to ([`Identity::may`]). Also the
//! rule for acceptable `name`/`sub` values. The server's own topic rules are
//! not here; they apply on top.

use std::sync::Arc;

use switchboard_hub::Action;

use crate::glob::glob_match;

/// The name of an anonymous [`Identity`]. The server may replace it with the
/// nickname an anonymous client picks.
pub const ANONYMOUS_NAME: &str = "anonymous";

/// The most characters (Unicode scalar values) a `name` or `sub` may have.
pub(crate) const MAX_NAME_CHARS: usize = 64;

/// Who is connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Display name: the token's `name` claim, else its `sub`;
    /// [`ANONYMOUS_NAME`] when anonymous.
    pub name: Arc<str>,
    /// The token's `sub` claim.
    pub subject: Option<Arc<str>>,
    /// The token's `exp` (unix seconds, without the leeway), for a server that
    /// closes connections whose token has expired.
    pub expires_at: Option<u64>,
    /// Whether the connection presented no token.
    pub anonymous: bool,
    /// Topic globs this token may subscribe to; `None`: no limit from the token.
    pub subscribe: Option<Vec<String>>,
    /// Topic globs this token may publish to; `None`: no limit from the token.
    pub publish: Option<Vec<String>>,
}

impl Identity {
    /// An anonymous identity, with no limits from a token.
    pub fn anonymous() -> Identity {
        Identity {
            name: Arc::from(ANONYMOUS_NAME),
            subject: None,
            expires_at: None,
            anonymous: true,
            subscribe: None,
            publish: None,
        }
    }

    /// Whether this identity's token lets it do `action` on `topic`: true when
    /// the token has no list for that action, else when one of its globs
    /// (see [`glob_match`]) matches. An empty list allows nothing.
    pub fn may(&self, topic: &str, action: Action) -> bool {
        let globs = match action {
            Action::Subscribe => &self.subscribe,
            Action::Publish => &self.publish,
        };
        match globs {
            None => true,
            Some(globs) => globs.iter().any(|g| glob_match(g, topic)),
        }
    }
}

/// Whether `s` is acceptable as a `name` or `sub`: 1–64 characters, none a
/// control or invisible formatting character (zero-width, bidi overrides,
/// line separators), no leading or trailing whitespace.
pub(crate) fn valid_name(s: &str) -> bool {
    let count = s.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && s.trim() == s
        && !s.chars().any(|c| c.is_control() || is_invisible_format(c))
}

fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                      // soft hyphen
            | '\u{061C}'                // Arabic letter mark
            | '\u{180E}'                // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}'   // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}'   // bidi isolates, deprecated format chars
            | '\u{FEFF}'                // BOM / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("a"));
        assert!(valid_name("Ada Lovelace"));
        assert!(valid_name("用户"));
        assert!(valid_name("auth0|5f7c8ec7c33c6c004bbafe82"));
        assert!(valid_name(&"é".repeat(64))); // 64 chars, 128 bytes
        assert!(!valid_name(&"é".repeat(65)));
        assert!(!valid_name(""));
        assert!(!valid_name(" "));
        assert!(!valid_name(" ada"));
        assert!(!valid_name("ada "));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name("a\u{0}b"));
        assert!(!valid_name("a\u{7f}b"));
        assert!(!valid_name("a\u{202E}b"));
        assert!(!valid_name("a\u{200B}b"));
        assert!(!valid_name("a\u{FEFF}"));
    }

    #[test]
    fn may_with_globs() {
        let mut id = Identity::anonymous();
        assert!(id.may("anything", Action::Publish));
        assert!(id.may("anything", Action::Subscribe));

        id.subscribe = Some(vec!["chat.*".into(), "news".into()]);
        id.publish = Some(vec!["chat.lobby".into()]);
        assert!(id.may("chat.lobby", Action::Subscribe));
        assert!(id.may("chat.x", Action::Subscribe));
        assert!(id.may("news", Action::Subscribe));
        assert!(!id.may("news.today", Action::Subscribe));
        assert!(!id.may("chat", Action::Subscribe));
        assert!(id.may("chat.lobby", Action::Publish));
        assert!(!id.may("chat.x", Action::Publish));

        id.publish = Some(vec![]);
        assert!(!id.may("chat.lobby", Action::Publish));
        id.publish = Some(vec!["*".into()]);
        assert!(id.may("", Action::Publish));
    }
}
