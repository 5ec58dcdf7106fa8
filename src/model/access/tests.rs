//! The access rules, each row citing the ingress-nginx e2e test or document it ports.

use super::*;
use base64::Engine;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secret() -> ObjectRef {
    ObjectRef {
        kind: "Secret",
        namespace: "test".into(),
        name: "users".into(),
    }
}

fn basic(user: &str, password: &str) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}").into_bytes()
}

// annotations/ipwhitelist.go, ipdenylist.go: listed addresses pass (or are refused).
#[test]
fn deny_then_allow() {
    let access = Access {
        allow: Some(IpSet::parse("18.0.0.0/8, 56.0.0.0/8").unwrap()),
        deny: Some(IpSet::parse("18.1.0.0/16").unwrap()),
        ..Access::default()
    };
    assert_eq!(access.address(ip("18.2.3.4")), AddressVerdict::Allowed);
    assert_eq!(access.address(ip("18.1.3.4")), AddressVerdict::Denied);
    assert_eq!(access.address(ip("57.0.0.1")), AddressVerdict::Denied);
    assert_eq!(
        Access::default().address(ip("57.0.0.1")),
        AddressVerdict::Allowed
    );
}

// annotations/auth.go ("...configured and Authorization header is sent"): htpasswd hashes of
// every kind htpasswd writes.
#[test]
fn htpasswd_hashes_of_every_kind() {
    // `htpasswd -nbB`, `-nbm`, `-nbs`, `-nbd` for password "bar", and openssl passwd -1.
    let file = "\
# a comment
bcrypt:$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe
apr1:$apr1$63JlJ2NH$smE0mnB5h3tDri0zkpWXt1
sha:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=
";
    let auth = BasicAuth::from_htpasswd("test auth".into(), secret(), file).unwrap();
    assert!(auth.verify(&basic("bcrypt", "password")));
    assert!(!auth.verify(&basic("bcrypt", "Password")));
    assert!(auth.verify(&basic("apr1", "password")));
    assert!(!auth.verify(&basic("apr1", "bar")));
    assert!(auth.verify(&basic("sha", "bar")));
    assert!(!auth.verify(&basic("sha", "baz")));
    assert!(!auth.verify(&basic("nobody", "password")));
    assert!(!auth.verify(b"Bearer abc"));
    assert!(!auth.verify(b"Basic !!!"));
    assert_eq!(auth.challenge(), "Basic realm=\"test auth\"");
    let des = BasicAuth::from_htpasswd("r".into(), secret(), "des:aZGJuE6EXrjEE").unwrap();
    assert!(des.verify(&basic("des", "test")));
}

// annotations/auth.go ("...configured with invalid content..."): `foo:` is no user.
#[test]
fn a_line_without_a_hash_is_an_error() {
    let e = BasicAuth::from_htpasswd("r".into(), secret(), "foo:").unwrap_err();
    assert_eq!(e, "line 1: no password hash");
    assert!(BasicAuth::from_htpasswd("r".into(), secret(), "foo").is_err());
    assert!(BasicAuth::from_htpasswd("r".into(), secret(), "foo:plaintext").is_err());
    let map = BasicAuth::from_map(
        "r".into(),
        secret(),
        [("foo", "$apr1$63JlJ2NH$smE0mnB5h3tDri0zkpWXt1")].into_iter(),
    )
    .unwrap();
    assert!(map.verify(&basic("foo", "password")));
}

// The version follows the content, so a changed Secret invalidates cached checks.
#[test]
fn the_version_follows_the_users() {
    let a = BasicAuth::from_htpasswd("r".into(), secret(), "u:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=")
        .unwrap();
    let b = BasicAuth::from_htpasswd("r".into(), secret(), "u:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=")
        .unwrap();
    let c = BasicAuth::from_htpasswd("r".into(), secret(), "v:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=")
        .unwrap();
    assert_eq!(a.version, b.version);
    assert_ne!(a.version, c.version);
}

// nginx's auth_request: 2xx allows, 401/403 pass on, anything else is an error.
#[test]
fn auth_answers() {
    assert_eq!(auth_verdict(StatusCode::OK), AuthVerdict::Allow);
    assert_eq!(auth_verdict(StatusCode::NO_CONTENT), AuthVerdict::Allow);
    assert_eq!(
        auth_verdict(StatusCode::UNAUTHORIZED),
        AuthVerdict::Refuse(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        auth_verdict(StatusCode::FORBIDDEN),
        AuthVerdict::Refuse(StatusCode::FORBIDDEN)
    );
    assert_eq!(auth_verdict(StatusCode::FOUND), AuthVerdict::Fail);
    assert_eq!(auth_verdict(StatusCode::BAD_GATEWAY), AuthVerdict::Fail);
}

// annotations/auth.go ("should redirect to signin url when not signed in"): Location is
// http://$host/auth/start?rd=http://<host><escaped /?a=b&c=d>.
#[test]
fn signin_redirect_carries_the_original_url() {
    let auth = ExternalAuth {
        url: "http://auth.test/check".parse().unwrap(),
        method: Method::GET,
        signin: Some("http://$host/auth/start".into()),
        redirect_param: "rd".into(),
        request_redirect: None,
        response_headers: Vec::new(),
        cache: None,
        always_set_cookie: false,
    };
    let headers = http::HeaderMap::new();
    let facts = TemplateFacts {
        scheme: "http",
        host: "auth",
        request_uri: "/?a=b&c=d",
        remote_addr: "127.0.0.1",
        headers: &headers,
    };
    assert_eq!(
        auth.signin_location(&facts).unwrap(),
        "http://auth/auth/start?rd=http://auth%2F%3Fa%3Db%26c%3Dd"
    );
    let orig = ExternalAuth {
        redirect_param: "orig".into(),
        signin: Some("https://login.test/start?x=1".into()),
        ..auth.clone()
    };
    assert_eq!(
        orig.signin_location(&facts).unwrap(),
        "https://login.test/start?x=1&orig=http://auth%2F%3Fa%3Db%26c%3Dd"
    );
}

#[test]
fn templates_fill_in_known_variables_only() {
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Basic xyz"));
    headers.insert("cookie", HeaderValue::from_static("a=1; session=abc"));
    let facts = TemplateFacts {
        scheme: "https",
        host: "h",
        request_uri: "/p",
        remote_addr: "10.0.0.1",
        headers: &headers,
    };
    assert_eq!(
        expand(
            "$remote_addr$http_authorization|$cookie_session|$host$request_uri",
            &facts
        ),
        "10.0.0.1Basic xyz|abc|h/p"
    );
    assert!(known_variables("$http_authorization$cookie_x$host").is_ok());
    assert!(known_variables("$upstream_addr").is_err());
    assert!(known_variables("$http_").is_err());
}

// annotations/cors.go, every origin row.
#[test]
fn cors_origins() {
    let cors = |origins: &str| Cors {
        origins: Cors::parse_origins(origins),
        methods: HeaderValue::from_static("GET"),
        headers: HeaderValue::from_static("x"),
        expose: None,
        credentials: true,
        max_age: HeaderValue::from_static("1"),
    };
    let o = |s: &'static str| HeaderValue::from_static(s);
    let allowed = |c: &Cors, origin: &'static str| c.allow_origin(Some(&o(origin)));
    // "should not break functionality" (`*`, and `*, foo.bar.com`): every response says *.
    assert_eq!(cors("*").allow_origin(None).unwrap(), "*");
    assert_eq!(cors("*, foo.bar.com").allow_origin(None).unwrap(), "*");
    // "should allow origin for cors", "single origin for multiple cors values".
    let list = cors("https://origin.cors.com:8080, https://origin2.cors.com");
    assert_eq!(
        allowed(&list, "https://origin.cors.com:8080").unwrap(),
        "https://origin.cors.com:8080"
    );
    assert!(list.allow_origin(None).is_none());
    // "should not allow - single origin for multiple cors values".
    assert!(
        allowed(
            &cors("http://origin2.cors.com, https://origin.com"),
            "http://no.origin.com"
        )
        .is_none()
    );
    // "should allow correct origins": an entry without a scheme is ignored.
    let mixed = cors("origin.cors.com:8080, https://origin2.cors.com, https://origin.com");
    assert!(allowed(&mixed, "origin.cors.com:8080").is_none());
    assert!(allowed(&mixed, "https://origin2.cors.com").is_some());
    assert!(allowed(&mixed, "https://origin.com").is_some());
    // "should not match": https://fooxbar.com against https://foo.bar.com.
    assert!(allowed(&cors("https://foo.bar.com"), "https://fooxbar.com").is_none());
    // Ports must agree either way.
    let ports = cors("http://origin.cors.com:8080, http://origin.com:8080");
    assert!(allowed(&ports, "http://origin.com:8080").is_some());
    assert!(allowed(&ports, "http://origin.com").is_none());
    assert!(
        allowed(
            &cors("https://origin2.cors.com, http://origin.com"),
            "http://origin.com:8080"
        )
        .is_none()
    );
    // Wildcards: exactly one label.
    let wild = cors("http://*.origin.cors.com, http://*.origin.com:8080");
    assert!(allowed(&wild, "http://foo.origin.cors.com").is_some());
    assert!(allowed(&wild, "http://bar-foo.origin.cors.com").is_some());
    assert!(allowed(&wild, "http://bar.foo.origin.cors.com").is_none());
    assert!(allowed(&wild, "http://foo.origin.com:8080").is_some());
    assert!(allowed(&wild, "http://foo.origin.com").is_none());
    assert!(
        allowed(&wild, "https://foo.origin.cors.com").is_none(),
        "the scheme counts"
    );
}

// annotations/authtls.go: `on` refuses a request without a certificate (400), `optional`
// admits it, `optional_no_ca` admits anything; the depth bounds the chain.
#[test]
fn client_certificates() {
    let policy = |verify| ClientCertPolicy {
        verify,
        depth: 1,
        pass_to_upstream: false,
        error_page: None,
    };
    let on = policy(VerifyClient::On);
    assert_eq!(
        on.admits(&PresentedCert::Missing),
        Err("400 No required SSL certificate was sent\n")
    );
    assert_eq!(on.admits(&PresentedCert::Verified { chain: 1 }), Ok(()));
    assert!(
        on.admits(&PresentedCert::Verified { chain: 2 }).is_err(),
        "deeper than 1"
    );
    assert!(on.admits(&PresentedCert::Failed("bad".into())).is_err());
    let optional = policy(VerifyClient::Optional);
    assert_eq!(optional.admits(&PresentedCert::Missing), Ok(()));
    assert!(
        optional
            .admits(&PresentedCert::Failed("bad".into()))
            .is_err()
    );
    let no_ca = policy(VerifyClient::OptionalNoCa);
    assert_eq!(no_ca.admits(&PresentedCert::Unchecked), Ok(()));
    assert_eq!(no_ca.admits(&PresentedCert::Missing), Ok(()));
    assert_eq!(
        ClientCertPolicy::verify_header(&PresentedCert::Verified { chain: 1 }),
        "SUCCESS"
    );
    assert_eq!(
        ClientCertPolicy::verify_header(&PresentedCert::Missing),
        "NONE"
    );
}
