//! Path rules: Exact, Prefix (by path element) and ImplementationSpecific (as Prefix), their
//! precedence, and how each rule becomes keys of the matchit router.

use serde::Serialize;
use std::cmp::Ordering;

/// `spec.rules[].http.paths[].pathType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
    /// Gateway API `RegularExpression`: never from an Ingress; the table matches it by its
    /// compiled regex (`table::PathMatch`), never by [`PathRule::matches`].
    RegularExpression,
}

impl PathType {
    /// Parses the API value. A missing `pathType` is read as ImplementationSpecific, as the
    /// older Ingress API versions defaulted it.
    pub fn parse(value: Option<&str>) -> Result<PathType, String> {
        match value {
            Some("Exact") => Ok(PathType::Exact),
            Some("Prefix") => Ok(PathType::Prefix),
            Some("ImplementationSpecific") | None => Ok(PathType::ImplementationSpecific),
            Some(other) => Err(format!(
                "unknown pathType {other:?} (expected Exact, Prefix or ImplementationSpecific)"
            )),
        }
    }

    /// Exact matches one path; the other two match a whole subtree.
    pub fn is_exact(self) -> bool {
        self == PathType::Exact
    }
}

/// One validated path rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathRule {
    pub path_type: PathType,
    /// The path as written in the Ingress (`/` when an ImplementationSpecific path was empty).
    pub path: String,
}

impl PathRule {
    /// Validates `path` and `pathType`: the path must be absolute.
    pub fn parse(path: Option<&str>, path_type: Option<&str>) -> Result<PathRule, String> {
        let path_type = PathType::parse(path_type)?;
        let path = match path.unwrap_or("") {
            "" if !path_type.is_exact() => "/",
            p => p,
        };
        if !path.starts_with('/') {
            return Err(format!("path {path:?} must start with '/'"));
        }
        Ok(PathRule {
            path_type,
            path: path.to_owned(),
        })
    }

    /// What the rule compares against: the path itself for Exact, the path without trailing
    /// slashes for the prefix types (so `/` becomes the empty prefix that matches everything).
    pub fn match_path(&self) -> &str {
        if self.path_type.is_exact() {
            &self.path
        } else {
            self.path.trim_end_matches('/')
        }
    }

    /// The reference definition of a match; the router must agree with it on every path.
    pub fn matches(&self, request_path: &str) -> bool {
        let p = self.match_path();
        if self.path_type.is_exact() {
            return request_path == p;
        }
        if self.path_type == PathType::RegularExpression {
            return false;
        }
        match request_path.strip_prefix(p) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Precedence between two rules that both match a request: the longer match path wins, and
    /// at equal length Exact beats the prefix types. `Greater` means `self` wins.
    pub fn precedence(&self, other: &PathRule) -> Ordering {
        self.match_path()
            .len()
            .cmp(&other.match_path().len())
            .then_with(|| self.path_type.is_exact().cmp(&other.path_type.is_exact()))
    }

    /// The matchit routes that together match exactly what [`PathRule::matches`] accepts.
    /// Prefix `/p` becomes `/p`, `/p/` and `/p/{*rest}`; braces are escaped so they stay literal.
    pub fn router_keys(&self) -> Vec<String> {
        let p = escape(self.match_path());
        if self.path_type.is_exact() {
            return vec![p];
        }
        if p.is_empty() {
            return vec!["/".to_owned(), "/{*rest}".to_owned()];
        }
        vec![p.clone(), format!("{p}/"), format!("{p}/{{*rest}}")]
    }
}

/// Escapes matchit's only special characters so a path is matched literally.
fn escape(path: &str) -> String {
    path.replace('{', "{{").replace('}', "}}")
}

/// The path of a request target without its query, as the router wants it.
pub fn request_path(path_and_query: &str) -> &str {
    match path_and_query.find('?') {
        Some(i) => &path_and_query[..i],
        None => path_and_query,
    }
}

/// A path as ingress-nginx runs it once its host has regex paths: nginx's `~* "^<path>"`,
/// which also gives a rewrite its groups. (nginx rewrites with the unanchored `(?i)<path>`;
/// after the location matched at the start, its leftmost match starts there too, so the
/// groups are the same, short of a top-level `|` in the path.) Checked when the table is
/// built and compiled at its first use, so a table of 100k regex paths costs what their text
/// does until requests come (a compiled regex takes ~10 KB and ~20 µs to build).
///
/// PCRE in nginx works on bytes and folds ASCII case only: so does this (Unicode off).
pub struct PathRegex {
    /// `(?i)^<path>`.
    source: Box<str>,
    compiled: std::sync::OnceLock<Option<regex::bytes::Regex>>,
}

impl std::fmt::Debug for PathRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PathRegex({:?})", self.source)
    }
}

impl PathRegex {
    /// Checks that `path` is a regex (its syntax only: compiling waits for a request).
    pub fn new(path: &str) -> Result<PathRegex, String> {
        let source = format!("(?i)^{path}");
        regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(&source)
            .map_err(|e| format!("{path:?} is not a regex: {}", last_line(&e.to_string())))?;
        Ok(PathRegex {
            source: source.into(),
            compiled: std::sync::OnceLock::new(),
        })
    }

    fn regex(&self) -> Option<&regex::bytes::Regex> {
        self.compiled
            .get_or_init(|| {
                regex::bytes::RegexBuilder::new(&self.source)
                    .unicode(false)
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// Whether nginx's location `~* "^<path>"` matches `path`.
    pub fn matches_start(&self, path: &str) -> bool {
        self.regex().is_some_and(|re| re.is_match(path.as_bytes()))
    }

    /// The groups of the match in `path`, for a rewrite.
    pub fn captures<'p>(&self, path: &'p str) -> Option<regex::bytes::Captures<'p>> {
        self.regex()?.captures(path.as_bytes())
    }
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}
