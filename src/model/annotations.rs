//! The Ingress annotations Vestibule reads, and how their values are checked. Each has a
//! `vestibule.dev/` name; the ingress-nginx name is accepted as an alias so that existing
//! manifests keep their meaning.

use k8s_openapi::api::networking::v1::Ingress;

/// Redirect plain-HTTP requests for hosts with TLS to https (default true).
pub const SSL_REDIRECT: &str = "vestibule.dev/ssl-redirect";
/// ingress-nginx's name for [`SSL_REDIRECT`].
pub const NGINX_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";

/// A bad annotation value: the field path and the reason.
pub type Invalid = (String, String);

/// The boolean annotation `name` (or its `alias`), `default` when absent.
fn boolean(ingress: &Ingress, name: &str, alias: &str, default: bool) -> Result<bool, Invalid> {
    let annotations = ingress.metadata.annotations.as_ref();
    let found = [name, alias]
        .into_iter()
        .find_map(|key| annotations.and_then(|a| a.get(key)).map(|v| (key, v)));
    match found {
        None => Ok(default),
        Some((_, v)) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some((_, v)) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some((key, v)) => Err((
            format!("metadata.annotations[{key}]"),
            format!("{v:?} is not \"true\" or \"false\"; using {default}"),
        )),
    }
}

/// Whether plain-HTTP requests to this Ingress's TLS hosts are redirected to https.
pub fn ssl_redirect(ingress: &Ingress) -> Result<bool, Invalid> {
    boolean(ingress, SSL_REDIRECT, NGINX_SSL_REDIRECT, true)
}
