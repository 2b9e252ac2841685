//! The process-wide TLS crypto provider. HTTP clients (reqwest with rustls) need one installed
//! before they are built; ring is used because the database driver already links it, so no
//! second crypto library (aws-lc) is compiled.

/// Installs ring as the default rustls provider if none is installed yet. Idempotent.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is then in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
