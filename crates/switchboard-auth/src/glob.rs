//! `*`-only glob matching on topic names, shared by the token's
//! `subscribe`/`publish` claims and (later) the server's `[[permissions]]`
//! rules. Nothing else: no `?`, no classes, no escaping.

/// Whether `text` matches `pattern`, where `*` matches any run of bytes (also
/// none) and every other byte matches itself. Linear in practice (greedy,
/// backtracking only to the last star).
///
/// ```
/// use switchboard_auth::glob_match;
/// assert!(glob_match("chat.*", "chat.lobby"));
/// assert!(!glob_match("chat.*", "chat"));
/// assert!(glob_match("a*b*c", "aXXbYYc"));
/// ```
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
        assert!(glob_match("*", "anything"));
        assert!(glob_match("admin.*", "admin.x"));
        assert!(glob_match("admin.*", "admin."));
        assert!(!glob_match("admin.*", "admin"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("", ""));
        assert!(glob_match("*.log", "a.b.log"));
        assert!(glob_match("**", "x"));
    }
}
