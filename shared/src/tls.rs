//! The one TLS client configuration every outbound connection uses (AWS, Auth0, Stripe,
//! ElevenLabs; Redis builds its own on the same provider and roots): rustls on ring, trusting
//! the Mozilla root program's certificates compiled into the binary (`webpki-roots`); and the
//! base every outbound HTTP client is built from ([`http_client_builder`]).
//!
//! Compiled-in roots cost nothing at start: no file is read and no certificate parsed, where the
//! system bundle took about 2 ms of every cold start to parse. They change only with a rebuild,
//! as every other dependency of a function does. ring rather than aws-lc: a few hundred kilobytes
//! less in every binary, and nothing to build from C and assembly but ring's own. What it lacks is
//! the post-quantum hybrid key exchange (X25519MLKEM768), so connections agree on X25519 or an
//! elliptic curve instead (docs/decisions.md, "Dependency notes").

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use rustls::{ClientConfig, RootCertStore, crypto::CryptoProvider};

static CONFIG: LazyLock<ClientConfig> = LazyLock::new(|| {
    let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
});

/// ring, installed as the process's default provider on first call: the Redis client and
/// reqwest's own defaults (the tests' clients) take the default, and there is no other.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    // Losing a race to another thread installing the same provider is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default().expect("a provider was just installed").clone()
}

/// The shared configuration (TLS 1.2 and 1.3), built on first use; a copy shares its roots and
/// provider.
pub fn client_config() -> ClientConfig {
    CONFIG.clone()
}

/// Where every outbound HTTP client starts (the AWS SDK's and the one for Auth0, Stripe and
/// ElevenLabs): this TLS configuration, no redirects (a redirect from AWS, an IdP or an API is an
/// error here, never a new target), and a 2 s limit on connecting.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_on_ring_and_the_compiled_in_roots() {
        let config = client_config();
        assert!(Arc::ptr_eq(config.crypto_provider(), client_config().crypto_provider()), "built once");
        assert!(Arc::ptr_eq(config.crypto_provider(), &provider()), "the process default");
        assert!(config.crypto_provider().cipher_suites.len() >= 6);
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100, "{} roots", webpki_roots::TLS_SERVER_ROOTS.len());
    }
}
