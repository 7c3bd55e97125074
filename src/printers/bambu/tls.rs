//! TLS for the Bambu LAN broker: trust on first use, then pin.
//!
//! A Bambu printer presents a certificate issued by Bambu's private CA (or, in the
//! simulator, a self-signed one), with the serial as its CN (protocols.md §2.1). There is
//! no public chain to check, so the daemon does what SSH does: the first certificate it
//! sees from a printer is accepted and reported (`PrinterEvent::CertificateSeen`, stored
//! by the lead's code as the printer's pin); from then on only a certificate with the
//! same SHA-256 fingerprint (of the leaf's DER) is accepted. A different one is refused
//! with a message that says how to trust it (`printfarmd pin reset <printer_id>`).
//!
//! The verifier still checks the handshake signatures with the crypto provider's
//! algorithms, so the peer must hold the pinned certificate's private key.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

/// What the verifier knows and has seen of one printer's certificate.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PinState {
    /// The accepted fingerprint (lowercase hex SHA-256 of the leaf's DER).
    pub pin: Option<String>,
    /// A fingerprint accepted on first contact in the current attempt, not yet pinned:
    /// it becomes the pin once the printer also accepted our access code.
    pub candidate: Option<String>,
    /// A fingerprint refused in the current attempt because it differs from the pin.
    pub mismatch: Option<String>,
}

/// Shared between the driver and the verifier of its current connection. A plain
/// mutex: it is held for a few instructions and never across an await.
pub type SharedPin = Arc<Mutex<PinState>>;

pub fn shared(pin: Option<String>) -> SharedPin {
    Arc::new(Mutex::new(PinState {
        pin: pin.map(|p| normalise_pin(&p)),
        ..Default::default()
    }))
}

/// Runs `f` on the pin state; a poisoned lock (a panic elsewhere) still holds good data.
pub fn with<T>(pins: &SharedPin, f: impl FnOnce(&mut PinState) -> T) -> T {
    let mut g = pins.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut g)
}

/// Lowercase hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts a pin written with colons, spaces or capitals (`AB:CD:…`).
pub fn normalise_pin(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The first characters of a fingerprint, enough for a person to compare.
pub fn short(fp: &str) -> &str {
    &fp[..fp.len().min(16)]
}

#[derive(Debug)]
pub struct PinningVerifier {
    pins: SharedPin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity.as_ref());
        with(&self.pins, |st| match &st.pin {
            None => {
                st.candidate = Some(fp);
                Ok(ServerCertVerified::assertion())
            }
            Some(p) if *p == fp => Ok(ServerCertVerified::assertion()),
            Some(_) => {
                st.mismatch = Some(fp);
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS sessions a connection's config keeps for resumption: it only ever talks to one
/// printer.
const SESSIONS_CACHED: usize = 1;

/// A client configuration that verifies the printer with `pins`. The provider is passed
/// explicitly (design.md §9: with two providers compiled in, the defaults panic).
pub fn client_config(pins: SharedPin) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinningVerifier {
        pins,
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Each connection has a config of its own (its pin), and rustls' default session
    // cache makes room for 256 servers up front (~14 KB a printer, the largest single
    // allocation of a Bambu connection): one server, one session is all it needs.
    config.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS_CACHED);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(pins: &SharedPin, der: &[u8]) -> Result<ServerCertVerified, rustls::Error> {
        let v = PinningVerifier {
            pins: pins.clone(),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        };
        v.verify_server_cert(
            &CertificateDer::from(der.to_vec()),
            &[],
            &ServerName::try_from("printer").unwrap(),
            &[],
            UnixTime::now(),
        )
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn pins_are_normalised() {
        assert_eq!(normalise_pin("AB:cd:0F"), "abcd0f");
    }

    #[test]
    fn first_contact_is_a_candidate_then_the_pin_holds() {
        let pins = shared(None);
        assert!(verify(&pins, b"cert-a").is_ok());
        let fp = with(&pins, |s| s.candidate.clone()).unwrap();
        assert_eq!(fp, fingerprint(b"cert-a"));
        with(&pins, |s| s.pin = s.candidate.take());
        assert!(verify(&pins, b"cert-a").is_ok());
        assert!(verify(&pins, b"cert-b").is_err());
        assert_eq!(
            with(&pins, |s| s.mismatch.clone()),
            Some(fingerprint(b"cert-b"))
        );
    }

    #[test]
    fn a_configured_pin_is_enforced() {
        let upper = fingerprint(b"cert-a").to_uppercase();
        let pins = shared(Some(upper));
        assert!(verify(&pins, b"cert-a").is_ok());
        assert!(verify(&pins, b"cert-c").is_err());
    }

    #[test]
    fn config_builds() {
        assert!(client_config(shared(None)).is_ok());
    }
}
