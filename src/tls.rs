//! TLS set-up for outgoing HTTPS requests.
//!
//! On Linux and other non-Apple systems reqwest uses rustls, built without a default crypto
//! provider, so the ring provider is installed once per process. On Apple systems reqwest uses
//! the system TLS stack and nothing needs installing.

/// Installs the process-wide rustls crypto provider; safe to call more than once.
pub fn install_crypto_provider() {
    #[cfg(not(target_vendor = "apple"))]
    {
        // An error means a provider is already installed, which is what this function ensures.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
