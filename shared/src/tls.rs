//! The roots every outbound TLS connection trusts, read once per cold start from the system's
//! CA bundle: one file, no directory walk. Left to themselves, the AWS SDK's client and the HTTP
//! client for Stripe, Auth0 and ElevenLabs each loaded the native roots (the bundle AND every
//! file under `/etc/ssl/certs`), which was most of a function's init time.
//!
//! The bundle is `SSL_CERT_FILE` when set (OpenSSL's convention), else the first of the usual
//! places that exists (Amazon Linux 2023, which `provided.al2023` runs, keeps it under
//! `/etc/pki`).

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, pem::PemObject};

const BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The bundle as read (PEM, what the AWS SDK's trust store takes), parsed for rustls clients
/// only when one is built (most functions never build one).
pub struct Roots {
    pub pem: Vec<u8>,
    parsed: OnceLock<Arc<RootCertStore>>,
}

impl Roots {
    /// The certificates as a rustls root store, parsed on first use.
    pub fn store(&self) -> anyhow::Result<Arc<RootCertStore>> {
        if let Some(store) = self.parsed.get() {
            return Ok(store.clone());
        }
        let mut store = RootCertStore::empty();
        let certificates = CertificateDer::pem_slice_iter(&self.pem).filter_map(Result::ok);
        let (added, _unparsable) = store.add_parsable_certificates(certificates);
        anyhow::ensure!(added > 0, "the CA bundle holds no usable certificate");
        Ok(self.parsed.get_or_init(|| Arc::new(store)).clone())
    }
}

static ROOTS: OnceLock<Roots> = OnceLock::new();

/// The trusted roots, read on first use.
pub fn roots() -> anyhow::Result<&'static Roots> {
    if let Some(roots) = ROOTS.get() {
        return Ok(roots);
    }
    let loaded = load()?;
    Ok(ROOTS.get_or_init(|| loaded))
}

fn load() -> anyhow::Result<Roots> {
    let path = std::env::var("SSL_CERT_FILE")
        .ok()
        .or_else(|| BUNDLES.iter().find(|p| std::path::Path::new(p).exists()).map(|p| (*p).to_owned()))
        .context("no CA bundle found (set SSL_CERT_FILE)")?;
    let pem = std::fs::read(&path).with_context(|| format!("reading the CA bundle {path}"))?;
    anyhow::ensure!(!pem.is_empty(), "the CA bundle {path} is empty");
    Ok(Roots { pem, parsed: OnceLock::new() })
}

/// A TLS client configuration on the shared roots (aws-lc, TLS 1.2 and 1.3).
pub fn client_config() -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots()?.store()?)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_bundle_is_read_once_and_yields_roots() {
        let first = roots().expect("this machine has a CA bundle");
        assert!(first.store().unwrap().len() > 50, "{} roots", first.store().unwrap().len());
        assert!(Arc::ptr_eq(&first.store().unwrap(), &first.store().unwrap()), "parsed once");
        assert!(std::ptr::eq(first, roots().unwrap()), "the same roots every time");
        assert!(client_config().is_ok());
    }
}
