//! One HTTPRoute's rules → what each match of each rule does: its path and conditions, its
//! policy (the rule's filters, timeouts) and its weighted backends (with their own filters).
//! A rule that cannot be honoured is dropped and said so; a backendRef that cannot be used
//! stays in the set as a backend that answers 500.

use super::{GROUP, Grants, StatusCondition, condition};
use crate::model::access::{Cors, CorsOrigins};
use crate::model::build::Reuse;
use crate::model::diagnostic::Diagnostic;
use crate::model::endpoints::{Backend, Endpoints, PortRef, ServiceIndex, ServiceRef};
use crate::model::path::{PathRule, PathType};
use crate::model::policy::{
    BackendFilters, Filter, GatewayRedirect, HeaderEdits, Mirror, MirrorTarget, PathChange, Policy,
    UpstreamPolicy, UrlRewrite,
};
use crate::model::settings::Global;
use crate::model::snapshot::ObjectRef;
use crate::model::table::{Condition, PathMatch, WeightedBackend};
use gateway_api::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesFilters, HttpRouteRulesFiltersRequestRedirectScheme,
    HttpRouteRulesFiltersType, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesMethod, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType,
};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;

/// The largest compiled regex a route may ask for: a path or header pattern is input from the
/// cluster, and must not cost unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles the rules of every HTTPRoute of a build, sharing backends between them.
pub(super) struct Compiler<'a> {
    services: &'a ServiceIndex<'a>,
    grants: &'a Grants<'a>,
    global: &'a Global,
    /// The backends in force for unchanged Services, when this is a partial build.
    reuse: Option<&'a Reuse<'a>>,
    backends: FxHashMap<ServiceRef, Arc<Backend>>,
    /// How many backendRefs send to each backend of `backends`.
    uses: FxHashMap<ServiceRef, u32>,
}

/// One HTTPRoute, compiled.
pub(super) struct Compiled {
    /// Per rule, its matches (empty for a rule that was dropped).
    pub rules: Vec<Vec<CompiledMatch>>,
    /// The route's `ResolvedRefs` condition.
    pub resolved_refs: StatusCondition,
    /// `PartiallyInvalid` when some rule was dropped.
    pub partially_invalid: Option<StatusCondition>,
}

/// One match of one rule.
#[derive(Clone)]
pub(super) struct CompiledMatch {
    pub path: PathMatch,
    pub conditions: Vec<Condition>,
    pub policy: Arc<Policy>,
    pub backends: Vec<WeightedBackend>,
}

impl CompiledMatch {
    /// The path as a route shows it (and as prefix rewrites read it).
    pub fn path_rule(&self) -> Option<PathRule> {
        match &self.path {
            PathMatch::Rule(rule) => Some(rule.clone()),
            PathMatch::Regex(re) => Some(PathRule {
                path_type: PathType::RegularExpression,
                path: re.as_str().to_owned(),
            }),
        }
    }
}

/// Why a reference of the route could not be resolved: the first one decides the route's
/// `ResolvedRefs` reason.
type RefProblem = Option<(&'static str, String)>;

impl<'a> Compiler<'a> {
    pub fn new(
        services: &'a ServiceIndex<'a>,
        grants: &'a Grants<'a>,
        global: &'a Global,
        reuse: Option<&'a Reuse<'a>>,
    ) -> Self {
        Compiler {
            services,
            grants,
            global,
            reuse,
            backends: FxHashMap::default(),
            uses: FxHashMap::default(),
        }
    }

    /// The backends built for Services, to publish their endpoints anew, and how many
    /// backendRefs use each.
    #[allow(clippy::type_complexity)]
    pub fn into_backends(self) -> (Vec<(ServiceRef, Arc<Backend>)>, FxHashMap<ServiceRef, u32>) {
        (self.backends.into_iter().collect(), self.uses)
    }

    pub fn compile(
        &mut self,
        route: &HttpRoute,
        object: &ObjectRef,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Compiled {
        let mut problem: RefProblem = None;
        let mut dropped = Vec::new();
        let rules: Vec<Vec<CompiledMatch>> = route
            .spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .map(|(r, rule)| {
                let field = format!("spec.rules[{r}]");
                match self.rule(rule, object, &field, &mut problem, diagnostics) {
                    Ok(matches) => matches,
                    Err((at, reason)) => {
                        diagnostics.push(Diagnostic::error(
                            object.clone(),
                            at,
                            format!("{reason}; the rule is not served"),
                        ));
                        dropped.push(reason);
                        Vec::new()
                    }
                }
            })
            .collect();
        let resolved_refs = match problem {
            None => condition(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "every reference is resolved",
            ),
            Some((reason, message)) => condition("ResolvedRefs", false, reason, message),
        };
        let partially_invalid = (!dropped.is_empty()).then(|| {
            condition(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                format!("{} rule(s) dropped: {}", dropped.len(), dropped.join("; ")),
            )
        });
        Compiled {
            rules,
            resolved_refs,
            partially_invalid,
        }
    }

    /// One rule: `Err` with the field and reason when it cannot be honoured.
    fn rule(
        &mut self,
        rule: &HttpRouteRules,
        object: &ObjectRef,
        field: &str,
        problem: &mut RefProblem,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<Vec<CompiledMatch>, (String, String)> {
        let default_match = [HttpRouteRulesMatches::default()];
        let matches = match rule.matches.as_deref() {
            None | Some([]) => &default_match[..],
            Some(m) => m,
        };
        let mut read = Vec::new();
        for (m, one) in matches.iter().enumerate() {
            let at = format!("{field}.matches[{m}]");
            read.push(read_match(one).map_err(|(sub, reason)| (format!("{at}{sub}"), reason))?);
        }
        let filters = rule.filters.as_deref().unwrap_or_default();
        let redirects = filters
            .iter()
            .any(|f| f.r#type == HttpRouteRulesFiltersType::RequestRedirect);
        let rewrites = filters
            .iter()
            .any(|f| f.r#type == HttpRouteRulesFiltersType::UrlRewrite);
        if redirects && rewrites {
            let reason = "RequestRedirect and URLRewrite cannot be used together".to_owned();
            return Err((format!("{field}.filters"), reason));
        }
        let timeouts = self.timeouts(rule, field)?;
        let mut mirrors = Vec::new();
        for (j, f) in filters.iter().enumerate() {
            if let Some(m) = &f.request_mirror {
                let at = format!("{field}.filters[{j}].requestMirror");
                let b = &m.backend_ref;
                let backend = self.backend_ref(
                    object,
                    (b.group.as_deref(), b.kind.as_deref()),
                    (b.namespace.as_deref(), &b.name, b.port),
                    &format!("{at}.backendRef"),
                    problem,
                    diagnostics,
                );
                let fraction = match (&m.fraction, m.percent) {
                    (Some(f), _) => {
                        let denominator = f.denominator.unwrap_or(100);
                        if f.numerator < 0 || denominator <= 0 || f.numerator > denominator {
                            let reason =
                                "fraction must be 0 ≤ numerator ≤ denominator, denominator > 0";
                            return Err((format!("{at}.fraction"), reason.to_owned()));
                        }
                        Some((f.numerator as u32, denominator as u32))
                    }
                    (None, Some(p)) if (0..=100).contains(&p) => Some((p as u32, 100)),
                    (None, Some(p)) => {
                        return Err((format!("{at}.percent"), format!("{p} is not 0-100")));
                    }
                    (None, None) => None,
                };
                if !backend.invalid_ref {
                    mirrors.push(Arc::new(Mirror {
                        target: MirrorTarget::Backend(backend),
                        host: None,
                        body: true,
                        fraction,
                    }));
                }
            }
        }
        let backends = self.backends(rule, object, field, redirects, problem, diagnostics)?;
        let mut out = Vec::new();
        for (m, (path, conditions)) in read.into_iter().enumerate() {
            let prefix = match &path {
                PathMatch::Rule(p) if !p.path_type.is_exact() => Some(p.match_path().to_owned()),
                _ => None,
            };
            let at = format!("{field}.filters");
            let list = self
                .filters(filters, prefix.as_deref(), &at)
                .map_err(|(sub, reason)| (format!("{at}{sub}"), reason))?;
            let _ = m;
            let policy = Arc::new(Policy {
                filters: list,
                upstream: UpstreamPolicy {
                    connect_timeout: self.global.connect_timeout,
                    read_timeout: timeouts.1.or(self.global.read_timeout),
                    send_timeout: self.global.send_timeout,
                    request_timeout: timeouts.0,
                    ..UpstreamPolicy::default()
                },
                mirrors: mirrors.clone(),
                ..Policy::default()
            });
            out.push(CompiledMatch {
                path,
                conditions,
                policy,
                backends: backends.clone(),
            });
        }
        Ok(out)
    }

    /// `timeouts.request` and `timeouts.backendRequest` (`0s`: none).
    #[allow(clippy::type_complexity)]
    fn timeouts(
        &self,
        rule: &HttpRouteRules,
        field: &str,
    ) -> Result<(Option<Duration>, Option<Duration>), (String, String)> {
        let read =
            |text: Option<&String>, name: &str| -> Result<Option<Duration>, (String, String)> {
                let Some(text) = text else { return Ok(None) };
                let parsed: gateway_api::Duration = text.parse().map_err(|e| {
                    (
                        format!("{field}.timeouts.{name}"),
                        format!("{text:?} is not a Gateway API duration: {e}"),
                    )
                })?;
                let d = Duration::from_nanos(u64::try_from(parsed.as_nanos()).unwrap_or(u64::MAX));
                Ok((!d.is_zero()).then_some(d))
            };
        let t = rule.timeouts.as_ref();
        let request = read(t.and_then(|t| t.request.as_ref()), "request")?;
        let backend = read(t.and_then(|t| t.backend_request.as_ref()), "backendRequest")?;
        if let (Some(r), Some(b)) = (request, backend)
            && b > r
        {
            return Err((
                format!("{field}.timeouts.backendRequest"),
                "must not be longer than timeouts.request".to_owned(),
            ));
        }
        Ok((request, backend))
    }

    /// The rule's filters as policy filters; `prefix` is the match's path prefix (for
    /// `ReplacePrefixMatch`), `None` when the match is not a PathPrefix.
    fn filters(
        &self,
        filters: &[HttpRouteRulesFilters],
        prefix: Option<&str>,
        _at: &str,
    ) -> Result<Vec<Filter>, (String, String)> {
        let mut out = Vec::new();
        if let Some(limit) = self.global.proxy_body_size {
            out.push(Filter::BodyLimit(limit));
        }
        for (j, f) in filters.iter().enumerate() {
            let at = |sub: &str| format!("[{j}]{sub}");
            match f.r#type {
                HttpRouteRulesFiltersType::RequestHeaderModifier => {
                    let m = f
                        .request_header_modifier
                        .as_ref()
                        .ok_or_else(|| (at(""), "requestHeaderModifier is missing".to_owned()))?;
                    let edits = edits_of!(m).map_err(|e| (at(".requestHeaderModifier"), e))?;
                    out.push(Filter::RequestHeaders(edits));
                }
                HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                    let m = f
                        .response_header_modifier
                        .as_ref()
                        .ok_or_else(|| (at(""), "responseHeaderModifier is missing".to_owned()))?;
                    let edits = edits_of!(m).map_err(|e| (at(".responseHeaderModifier"), e))?;
                    out.push(Filter::ResponseHeaders(edits));
                }
                HttpRouteRulesFiltersType::RequestRedirect => {
                    let r = f
                        .request_redirect
                        .as_ref()
                        .ok_or_else(|| (at(""), "requestRedirect is missing".to_owned()))?;
                    let code = match r.status_code.unwrap_or(302) {
                        301 => StatusCode::MOVED_PERMANENTLY,
                        302 => StatusCode::FOUND,
                        303 => StatusCode::SEE_OTHER,
                        307 => StatusCode::TEMPORARY_REDIRECT,
                        308 => StatusCode::PERMANENT_REDIRECT,
                        other => {
                            return Err((
                                at(".requestRedirect.statusCode"),
                                format!("{other} is not 301, 302, 303, 307 or 308"),
                            ));
                        }
                    };
                    let port = match r.port {
                        None => None,
                        Some(p) => {
                            Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                                (at(".requestRedirect.port"), format!("{p} is not a port"))
                            })?)
                        }
                    };
                    let path = match &r.path {
                        None => None,
                        Some(p) => Some(
                            path_change(
                                p.replace_full_path.as_deref(),
                                p.replace_prefix_match.as_deref(),
                                matches!(
                                    p.r#type,
                                    gateway_api::httproutes::HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch
                                ),
                                prefix,
                            )
                            .map_err(|e| (at(".requestRedirect.path"), e))?,
                        ),
                    };
                    out.push(Filter::GatewayRedirect(GatewayRedirect {
                        scheme: r.scheme.as_ref().map(|s| match s {
                            HttpRouteRulesFiltersRequestRedirectScheme::Http => "http",
                            HttpRouteRulesFiltersRequestRedirectScheme::Https => "https",
                        }),
                        hostname: r.hostname.clone(),
                        port,
                        path,
                        code,
                    }));
                }
                HttpRouteRulesFiltersType::UrlRewrite => {
                    let r = f
                        .url_rewrite
                        .as_ref()
                        .ok_or_else(|| (at(""), "urlRewrite is missing".to_owned()))?;
                    let hostname = match &r.hostname {
                        None => None,
                        Some(h) => Some(HeaderValue::from_str(h).map_err(|_| {
                            (
                                at(".urlRewrite.hostname"),
                                format!("{h:?} is not a hostname"),
                            )
                        })?),
                    };
                    let path = match &r.path {
                        None => None,
                        Some(p) => Some(
                            path_change(
                                p.replace_full_path.as_deref(),
                                p.replace_prefix_match.as_deref(),
                                matches!(
                                    p.r#type,
                                    gateway_api::httproutes::HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch
                                ),
                                prefix,
                            )
                            .map_err(|e| (at(".urlRewrite.path"), e))?,
                        ),
                    };
                    out.push(Filter::UrlRewrite(UrlRewrite { hostname, path }));
                }
                HttpRouteRulesFiltersType::RequestMirror => {}
                HttpRouteRulesFiltersType::Cors => {
                    let c = f
                        .cors
                        .as_ref()
                        .ok_or_else(|| (at(""), "cors is missing".to_owned()))?;
                    out.push(Filter::Cors(Arc::new(
                        cors(c).map_err(|e| (at(".cors"), e))?,
                    )));
                }
                HttpRouteRulesFiltersType::ExtensionRef => {
                    let name = f.extension_ref.as_ref().map_or("", |e| e.name.as_str());
                    // The spec: a filter that cannot be resolved is not skipped; its requests
                    // get an error.
                    out.push(Filter::Fail(format!(
                        "ExtensionRef {name:?} is not supported"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The rule's weighted backends: an unusable backendRef answers 500 for its share, and a
    /// rule without any (or with every weight 0) answers 500 for all (a redirect needs none).
    fn backends(
        &mut self,
        rule: &HttpRouteRules,
        object: &ObjectRef,
        field: &str,
        redirects: bool,
        problem: &mut RefProblem,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<Vec<WeightedBackend>, (String, String)> {
        let refs = rule.backend_refs.as_deref().unwrap_or_default();
        let mut out = Vec::new();
        for (k, b) in refs.iter().enumerate() {
            let at = format!("{field}.backendRefs[{k}]");
            let weight = b.weight.unwrap_or(1);
            // BackendRef.Weight: 0 to 1,000,000 (the CRD validates it; manifests need not).
            let weight = u32::try_from(weight)
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| (format!("{at}.weight"), format!("{weight} is not 0-1000000")))?;
            let backend = self.backend_ref(
                object,
                (b.group.as_deref(), b.kind.as_deref()),
                (b.namespace.as_deref(), &b.name, b.port),
                &at,
                problem,
                diagnostics,
            );
            let filters = match b.filters.as_deref() {
                None | Some([]) => None,
                Some(list) => Some(Arc::new(
                    backend_filters(list)
                        .map_err(|(sub, reason)| (format!("{at}.filters{sub}"), reason))?,
                )),
            };
            out.push(WeightedBackend {
                backend,
                weight,
                filters,
            });
        }
        let why = match (out.is_empty(), out.iter().all(|b| b.weight == 0)) {
            (true, _) if redirects => "this rule only redirects",
            (true, _) => "the rule has no backendRefs",
            (false, true) => "every backendRef of the rule has weight 0",
            (false, false) => return Ok(out),
        };
        let mut backend = Backend::new(None, Endpoints::default(), Some(why.to_owned()));
        backend.invalid_ref = true;
        Ok(vec![WeightedBackend {
            backend: Arc::new(backend),
            weight: 1,
            filters: None,
        }])
    }

    /// The backend a backendRef (or a mirror's) names, or one that answers 500 and says why.
    #[allow(clippy::too_many_arguments)]
    fn backend_ref(
        &mut self,
        object: &ObjectRef,
        (group, kind): (Option<&str>, Option<&str>),
        (namespace, name, port): (Option<&str>, &str, Option<i32>),
        at: &str,
        problem: &mut RefProblem,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Arc<Backend> {
        let group = group.unwrap_or("");
        let kind = kind.unwrap_or("Service");
        let namespace = namespace.unwrap_or(&object.namespace);
        let invalid = |reason: &'static str,
                       message: String,
                       problem: &mut RefProblem,
                       diagnostics: &mut Vec<Diagnostic>| {
            diagnostics.push(Diagnostic::error(
                object.clone(),
                at.to_owned(),
                format!("{message}; its requests get 500"),
            ));
            problem.get_or_insert((reason, message.clone()));
            let mut b = Backend::new(None, Endpoints::default(), Some(message));
            b.invalid_ref = true;
            Arc::new(b)
        };
        if !group.is_empty() || kind != "Service" {
            let message = format!(
                "{}{kind} is not a kind of backend Vestibule can send to",
                match group {
                    "" => String::new(),
                    g => format!("{g}/"),
                }
            );
            return invalid("InvalidKind", message, problem, diagnostics);
        }
        if !self.grants.permit(
            (GROUP, "HTTPRoute", &object.namespace),
            ("", "Service", namespace, name),
        ) {
            let message = format!(
                "Service {namespace}/{name} is in another namespace and no ReferenceGrant there permits it"
            );
            return invalid("RefNotPermitted", message, problem, diagnostics);
        }
        let Some(port) = port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) else {
            let message = "a Service backendRef needs a port".to_owned();
            return invalid("UnsupportedValue", message, problem, diagnostics);
        };
        let service = ServiceRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port: PortRef::Number(i32::from(port)),
        };
        if let Some(b) = self.backends.get(&service) {
            let b = b.clone();
            *self.uses.entry(service).or_default() += 1;
            return b;
        }
        let backend = match self.reuse.and_then(|r| r(&service)) {
            Some(b) => b,
            None => match self.services.resolve(&service) {
                Ok(endpoints) => Arc::new(Backend::new(Some(service.clone()), endpoints, None)),
                Err(why) => {
                    let message = why.reason().to_owned();
                    return invalid("BackendNotFound", message, problem, diagnostics);
                }
            },
        };
        self.backends.insert(service.clone(), backend.clone());
        self.uses.insert(service, 1);
        backend
    }
}

/// One match: its path and the conditions beyond it. `Err`: the field under the match and
/// the reason.
fn read_match(m: &HttpRouteRulesMatches) -> Result<(PathMatch, Vec<Condition>), (String, String)> {
    let path = m.path.as_ref();
    let value = path.and_then(|p| p.value.as_deref()).unwrap_or("/");
    let kind = path
        .and_then(|p| p.r#type.clone())
        .unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix);
    let path = match kind {
        HttpRouteRulesMatchesPathType::RegularExpression => PathMatch::Regex(Arc::new(
            full_regex(value).map_err(|e| (".path.value".to_owned(), e))?,
        )),
        HttpRouteRulesMatchesPathType::Exact | HttpRouteRulesMatchesPathType::PathPrefix => {
            if !value.starts_with('/') {
                return Err((
                    ".path.value".to_owned(),
                    format!("{value:?} must start with '/'"),
                ));
            }
            let path_type = match kind {
                HttpRouteRulesMatchesPathType::Exact => PathType::Exact,
                _ => PathType::Prefix,
            };
            PathMatch::Rule(PathRule {
                path_type,
                path: value.to_owned(),
            })
        }
    };
    let mut conditions = Vec::new();
    let mut seen_headers: Vec<HeaderName> = Vec::new();
    for (i, h) in m.headers.iter().flatten().enumerate() {
        let at = format!(".headers[{i}]");
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            (
                format!("{at}.name"),
                format!("{:?} is not a header name", h.name),
            )
        })?;
        // The spec: of entries with equivalent names only the first counts.
        if seen_headers.contains(&name) {
            continue;
        }
        seen_headers.push(name.clone());
        conditions.push(match h.r#type {
            Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => Condition::HeaderRegex(
                name,
                Arc::new(full_regex(&h.value).map_err(|e| (format!("{at}.value"), e))?),
            ),
            _ => Condition::Header(
                name,
                HeaderValue::from_str(&h.value).map_err(|_| {
                    (
                        format!("{at}.value"),
                        format!("{:?} is not a header value", h.value),
                    )
                })?,
            ),
        });
    }
    let mut seen_params: Vec<&str> = Vec::new();
    for (i, q) in m.query_params.iter().flatten().enumerate() {
        if seen_params.contains(&q.name.as_str()) {
            continue;
        }
        seen_params.push(&q.name);
        conditions.push(match q.r#type {
            Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => Condition::QueryRegex(
                q.name.as_str().into(),
                Arc::new(
                    full_regex(&q.value).map_err(|e| (format!(".queryParams[{i}].value"), e))?,
                ),
            ),
            _ => Condition::Query(q.name.as_str().into(), q.value.as_str().into()),
        });
    }
    if let Some(method) = &m.method {
        conditions.push(Condition::Method(method_of(method)));
    }
    Ok((path, conditions))
}

fn method_of(m: &HttpRouteRulesMatchesMethod) -> Method {
    match m {
        HttpRouteRulesMatchesMethod::Get => Method::GET,
        HttpRouteRulesMatchesMethod::Head => Method::HEAD,
        HttpRouteRulesMatchesMethod::Post => Method::POST,
        HttpRouteRulesMatchesMethod::Put => Method::PUT,
        HttpRouteRulesMatchesMethod::Delete => Method::DELETE,
        HttpRouteRulesMatchesMethod::Connect => Method::CONNECT,
        HttpRouteRulesMatchesMethod::Options => Method::OPTIONS,
        HttpRouteRulesMatchesMethod::Trace => Method::TRACE,
        HttpRouteRulesMatchesMethod::Patch => Method::PATCH,
    }
}

/// A regex that must match the whole value, bounded in size.
fn full_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("{pattern:?} is not a regular expression: {e}"))
}

/// A redirect's or rewrite's path change. `prefix` is the match's PathPrefix, which
/// `ReplacePrefixMatch` needs.
fn path_change(
    full: Option<&str>,
    replace_prefix: Option<&str>,
    is_prefix: bool,
    prefix: Option<&str>,
) -> Result<PathChange, String> {
    match is_prefix {
        false => full
            .map(|p| PathChange::Full(p.to_owned()))
            .ok_or_else(|| "ReplaceFullPath needs replaceFullPath".to_owned()),
        true => {
            let with = replace_prefix
                .ok_or_else(|| "ReplacePrefixMatch needs replacePrefixMatch".to_owned())?;
            let matched = prefix.ok_or_else(|| {
                "ReplacePrefixMatch needs every match of the rule to be a PathPrefix".to_owned()
            })?;
            Ok(PathChange::Prefix {
                matched: matched.to_owned(),
                with: with.to_owned(),
            })
        }
    }
}

/// The edits of a `RequestHeaderModifier` or `ResponseHeaderModifier` (the crate generates a
/// type for each; their fields are the same).
macro_rules! edits_of {
    ($m:expr) => {
        header_edits(
            $m.set.iter().flatten().map(|h| (&h.name, &h.value)),
            $m.add.iter().flatten().map(|h| (&h.name, &h.value)),
            $m.remove.iter().flatten(),
        )
    };
}
use edits_of;

/// A header modifier's set, add and remove lists, checked.
fn header_edits<'s>(
    set: impl Iterator<Item = (&'s String, &'s String)>,
    add: impl Iterator<Item = (&'s String, &'s String)>,
    remove: impl Iterator<Item = &'s String>,
) -> Result<HeaderEdits, String> {
    let pair = |(n, v): (&String, &String)| -> Result<(HeaderName, HeaderValue), String> {
        Ok((
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("{n:?} is not a header name"))?,
            HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a header value"))?,
        ))
    };
    Ok(HeaderEdits {
        set: set.map(pair).collect::<Result<_, _>>()?,
        add: add.map(pair).collect::<Result<_, _>>()?,
        remove: remove
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("{n:?} is not a header name"))
            })
            .collect::<Result<_, _>>()?,
    })
}

/// A backendRef's own filters: header modifiers only (others are not supported there).
fn backend_filters(
    list: &[gateway_api::httproutes::HttpRouteRulesBackendRefsFilters],
) -> Result<BackendFilters, (String, String)> {
    let mut out = BackendFilters::default();
    for (j, f) in list.iter().enumerate() {
        // The crate generates a twin type for backendRef filters; the schema is the rule's.
        let f: HttpRouteRulesFilters = serde_json::to_value(f)
            .and_then(serde_json::from_value)
            .map_err(|e| (format!("[{j}]"), e.to_string()))?;
        match f.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier => {
                let m = f.request_header_modifier.as_ref();
                out.request = m
                    .map(|m| edits_of!(m))
                    .transpose()
                    .map_err(|e| (format!("[{j}]"), e))?;
            }
            HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                let m = f.response_header_modifier.as_ref();
                out.response = m
                    .map(|m| edits_of!(m))
                    .transpose()
                    .map_err(|e| (format!("[{j}]"), e))?;
            }
            other => {
                return Err((
                    format!("[{j}].type"),
                    format!("{other:?} is not supported on a backendRef (header modifiers are)"),
                ));
            }
        }
    }
    Ok(out)
}

/// A CORS filter, in the terms of the CORS rules the proxy already runs for ingress-nginx.
fn cors(c: &gateway_api::httproutes::HttpRouteRulesFiltersCors) -> Result<Cors, String> {
    let join = |list: Option<&Vec<String>>, default: &'static str| -> Result<HeaderValue, String> {
        match list.filter(|l| !l.is_empty()) {
            None => Ok(HeaderValue::from_static(default)),
            Some(l) => HeaderValue::from_str(&l.join(", ")).map_err(|e| e.to_string()),
        }
    };
    let origins = match c.allow_origins.as_ref().filter(|o| !o.is_empty()) {
        None => CorsOrigins::List(Vec::new()),
        Some(o) => Cors::parse_origins(&o.join(",")),
    };
    Ok(Cors {
        origins,
        methods: join(c.allow_methods.as_ref(), "GET, HEAD, POST")?,
        headers: join(c.allow_headers.as_ref(), "")?,
        expose: match c.expose_headers.as_ref().filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => Some(HeaderValue::from_str(&l.join(", ")).map_err(|e| e.to_string())?),
        },
        credentials: c.allow_credentials.unwrap_or(false),
        max_age: HeaderValue::from(c.max_age.unwrap_or(5).max(0) as u64),
    })
}
