//! What routing reads from Secrets: their data as the API server would merge it, and the
//! certificate and key of a `kubernetes.io/tls` Secret.

use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;
use std::sync::Arc;

/// PEM bytes, shared by every host a Secret serves.
pub type Pem = Arc<[u8]>;

/// A Secret's data, `stringData` merged over `data` as the API server would.
pub fn secret_data(secret: &Secret) -> BTreeMap<&str, &[u8]> {
    let mut out: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(k, &v.0);
    }
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k, v.as_bytes());
    }
    out
}

/// `tls.crt` and `tls.key` of a `kubernetes.io/tls` Secret (`stringData` counts, as the API
/// server would merge it into `data`). Whether the PEM parses is the TLS module's business.
pub fn tls_material(secret: &Secret) -> Result<(Pem, Pem), String> {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != "kubernetes.io/tls" {
        return Err(format!(
            "Secret {name} has type {type_}, not kubernetes.io/tls"
        ));
    }
    let get = |key: &str| -> Option<Pem> {
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.as_bytes());
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.as_slice());
        from_string
            .or(from_data)
            .filter(|v| !v.is_empty())
            .map(Arc::from)
    };
    let cert = get("tls.crt").ok_or_else(|| format!("Secret {name} has no tls.crt"))?;
    let key = get("tls.key").ok_or_else(|| format!("Secret {name} has no tls.key"))?;
    Ok((cert, key))
}
