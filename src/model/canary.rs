//! ingress-nginx canaries: an Ingress with `canary: "true"` for the host and path of a main
//! Ingress gives the main route an alternative backend instead of conflicting with it. Which
//! one a request takes follows ingress-nginx's balancer: the header first (`always`, `never`,
//! or an exact value or a regex), then the cookie (`always`, `never`), then the weight.

use super::endpoints::Backend;
use super::snapshot::ObjectRef;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

/// A main route's alternative backend and when requests take it.
#[derive(Debug)]
pub struct Canary {
    /// The canary Ingress.
    pub ingress: Arc<ObjectRef>,
    pub backend: Arc<Backend>,
    pub rule: CanaryRule,
}

/// The `canary-by-*` and `canary-weight*` annotations.
#[derive(Debug, Clone, Default)]
pub struct CanaryRule {
    /// `canary-by-header`.
    pub header: Option<HeaderName>,
    /// `canary-by-header-value`: the header must have exactly this value.
    pub header_value: Option<HeaderValue>,
    /// `canary-by-header-pattern`: or match this regex (ignored when a value is set).
    pub header_pattern: Option<regex::bytes::Regex>,
    /// `canary-by-cookie`.
    pub cookie: Option<String>,
    /// `canary-weight`, out of [`CanaryRule::total`].
    pub weight: u32,
    /// `canary-weight-total` (100).
    pub weight_total: u32,
}

/// What the header and the cookie decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Canary,
    Main,
    /// Neither decided: the weight does.
    Weight,
}

impl CanaryRule {
    /// ingress-nginx's `route_to_alternative_balancer`, but the weighted roll.
    pub fn decide(&self, headers: &HeaderMap) -> Verdict {
        if let Some(name) = &self.header
            && let Some(value) = headers.get(name)
        {
            if let Some(wanted) = &self.header_value {
                if value == wanted {
                    return Verdict::Canary;
                }
            } else if let Some(pattern) = &self.header_pattern {
                if pattern.is_match(value.as_bytes()) {
                    return Verdict::Canary;
                }
            } else if value == "always" {
                return Verdict::Canary;
            } else if value == "never" {
                return Verdict::Main;
            }
        }
        if let Some(name) = &self.cookie {
            match super::access::request_cookie(headers, name) {
                Some("always") => return Verdict::Canary,
                Some("never") => return Verdict::Main,
                _ => {}
            }
        }
        Verdict::Weight
    }

    /// The total the weight is out of: `canary-weight-total` when above 100, else 100.
    pub fn total(&self) -> u32 {
        self.weight_total.max(100)
    }

    /// Whether a roll (uniform in `1..=total()`) goes to the canary.
    pub fn by_weight(&self, roll: u32) -> bool {
        roll <= self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn by_header() -> CanaryRule {
        CanaryRule {
            header: Some(HeaderName::from_static("canaryheader")),
            cookie: Some("CanaryCookie".into()),
            weight_total: 100,
            ..CanaryRule::default()
        }
    }

    // annotations/canary.go "should route requests to the correct upstream if the header is
    // set to 'always'" / "'never'" / "any other value": then the cookie, then the weight.
    #[test]
    fn header_then_cookie_then_weight() {
        let r = by_header();
        assert_eq!(
            r.decide(&headers(&[("canaryheader", "always")])),
            Verdict::Canary
        );
        assert_eq!(
            r.decide(&headers(&[("canaryheader", "never")])),
            Verdict::Main
        );
        assert_eq!(
            r.decide(&headers(&[("canaryheader", "badvalue")])),
            Verdict::Weight
        );
        assert_eq!(r.decide(&headers(&[])), Verdict::Weight);
        let cookie_always = headers(&[("cookie", "a=1; CanaryCookie=always")]);
        assert_eq!(r.decide(&cookie_always), Verdict::Canary);
        let cookie_never = headers(&[("cookie", "CanaryCookie=never")]);
        assert_eq!(r.decide(&cookie_never), Verdict::Main);
        // The header wins over the cookie.
        let both = headers(&[("canaryheader", "never"), ("cookie", "CanaryCookie=always")]);
        assert_eq!(r.decide(&both), Verdict::Main);
        let undecided = headers(&[("canaryheader", "other"), ("cookie", "CanaryCookie=always")]);
        assert_eq!(r.decide(&undecided), Verdict::Canary);
    }

    // canary.go "should route requests to the correct upstream if the header value is
    // set" and "...pattern": an exact value (then `always` means nothing), or a regex.
    #[test]
    fn header_value_and_pattern() {
        let value = CanaryRule {
            header_value: Some(HeaderValue::from_static("DoCanary")),
            ..by_header()
        };
        assert_eq!(
            value.decide(&headers(&[("canaryheader", "DoCanary")])),
            Verdict::Canary
        );
        assert_eq!(
            value.decide(&headers(&[("canaryheader", "always")])),
            Verdict::Weight
        );
        assert_eq!(
            value.decide(&headers(&[("canaryheader", "never")])),
            Verdict::Weight
        );
        let pattern = CanaryRule {
            header_pattern: Some(regex::bytes::Regex::new("^Do.*").unwrap()),
            ..by_header()
        };
        assert_eq!(
            pattern.decide(&headers(&[("canaryheader", "DoCanary")])),
            Verdict::Canary
        );
        assert_eq!(
            pattern.decide(&headers(&[("canaryheader", "Nope")])),
            Verdict::Weight
        );
    }

    #[test]
    fn weights_out_of_the_total() {
        let r = CanaryRule {
            weight: 30,
            weight_total: 0,
            ..CanaryRule::default()
        };
        assert_eq!(r.total(), 100);
        assert!(r.by_weight(30) && !r.by_weight(31));
        let thousand = CanaryRule {
            weight: 5,
            weight_total: 1000,
            ..CanaryRule::default()
        };
        assert_eq!(thousand.total(), 1000);
        let none = CanaryRule::default();
        assert!(
            !none.by_weight(1),
            "weight 0 never goes to the canary by weight"
        );
    }
}
