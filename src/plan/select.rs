//! Topic selection by names and globs (`*`, `?`, `[...]`), and `~regex` patterns for restore
//! filters.
use globset::{Glob, GlobMatcher};

/// A compiled topic pattern.
type Matcher = Box<dyn Fn(&str) -> bool>;

fn matcher(pattern: &str) -> Option<Matcher> {
    if let Some(re) = pattern.strip_prefix('~') {
        let re = regex::Regex::new(&format!("^(?:{re})$")).ok()?;
        return Some(Box::new(move |s| re.is_match(s)));
    }
    let g: GlobMatcher = Glob::new(pattern).ok()?.compile_matcher();
    Some(Box::new(move |s| g.is_match(s)))
}

/// True if `pattern` is a literal topic name (no glob or regex syntax).
pub fn is_literal(pattern: &str) -> bool {
    !pattern.starts_with('~') && !pattern.contains(['*', '?', '['])
}

/// True if `name` matches any of `patterns`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| matcher(p).is_some_and(|m| m(name)))
}

/// Selects from `available` the topics `include` names or matches, minus `exclude`. Internal
/// topics (`__consumer_offsets`, `__transaction_state`) are only selected by literal name.
/// Returns (selected, literal names that do not exist).
pub fn select_topics(
    include: &[String],
    exclude: &[String],
    available: &[(String, bool)],
) -> (Vec<String>, Vec<(usize, String)>) {
    let mut selected: Vec<String> = available
        .iter()
        .filter(|(name, internal)| {
            include.iter().any(|p| {
                if is_literal(p) {
                    p == name
                } else {
                    !internal && matcher(p).is_some_and(|m| m(name))
                }
            })
        })
        .filter(|(name, _)| !matches_any(exclude, name))
        .map(|(n, _)| n.clone())
        .collect();
    selected.sort();
    selected.dedup();
    let missing = include
        .iter()
        .enumerate()
        .filter(|(_, p)| is_literal(p) && !available.iter().any(|(n, _)| n == *p))
        .map(|(i, p)| (i, p.clone()))
        .collect();
    (selected, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_literals_excludes_and_internal_topics() {
        let avail: Vec<(String, bool)> = ["orders", "orders-dlq", "payments", "__consumer_offsets"]
            .iter()
            .map(|s| (s.to_string(), s.starts_with("__")))
            .collect();
        let (sel, missing) = select_topics(
            &["orders*".into(), "nope".into(), "*".into()],
            &["*-dlq".into()],
            &avail,
        );
        assert_eq!(sel, vec!["orders", "payments"]);
        assert_eq!(missing, vec![(1, "nope".to_string())]);
        assert!(matches_any(&["~pay.*".into()], "payments"));
        assert!(!matches_any(&["~pay".into()], "payments"));
    }
}
