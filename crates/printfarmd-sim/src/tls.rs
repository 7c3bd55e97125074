//! TLS for the simulated Bambu broker: one self-signed CA made at start, and a leaf per
//! printer with CN (and a SAN DNS entry) = the serial, like a real printer's certificate
//! (protocols.md §2.1).
//!
//! All printers share one listening port, so the leaf is picked by SNI: a client that sends
//! the serial as server name gets that printer's certificate; any other client gets a
//! default leaf (CN `printfarmd-sim`). Every leaf also names `localhost` and `127.0.0.1`, so a
//! client that trusts the CA (`SimFarm::ca_pem`) can verify it the ordinary way. Leaves are
//! minted on first use and share one key pair: 2,000 printers cost nothing at start.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SigningKey};

/// CN of the leaf served when the client sends no (or an unknown) server name.
pub const DEFAULT_LEAF_CN: &str = "printfarmd-sim";

/// The CA and the leaf certificates of the simulated printers.
pub struct SimCertResolver {
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf_key: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    /// Lower-case serial → serial (SNI arrives lower-cased: DNS names are case-insensitive).
    serials: HashMap<String, String>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    default_leaf: Arc<CertifiedKey>,
}

impl fmt::Debug for SimCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCertResolver")
            .field("serials", &self.serials.len())
            .finish_non_exhaustive()
    }
}

impl SimCertResolver {
    pub fn new(serials: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("generating the simulator CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "printfarmd simulator CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "printfarmd-sim");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the simulator CA")?;
        let ca = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().context("generating the simulator leaf key")?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing_key = provider
            .key_provider
            .load_private_key(der)
            .context("loading the leaf key into rustls")?;

        let ca_der = ca_cert.der().clone();
        let default_leaf = mint(&ca, &ca_der, &leaf_key, &signing_key, DEFAULT_LEAF_CN)?;
        Ok(Self {
            ca,
            ca_pem: ca_cert.pem(),
            ca_der,
            leaf_key,
            signing_key,
            serials: serials
                .into_iter()
                .map(|s| (s.to_ascii_lowercase(), s))
                .collect(),
            leaves: Mutex::new(HashMap::new()),
            default_leaf,
        })
    }

    /// The CA certificate in PEM, for clients that verify the chain.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn leaf_for(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.and_then(|n| self.serials.get(&n.to_ascii_lowercase())) else {
            return Arc::clone(&self.default_leaf);
        };
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(leaf) = leaves.get(name.as_str()) {
            return Arc::clone(leaf);
        }
        match mint(
            &self.ca,
            &self.ca_der,
            &self.leaf_key,
            &self.signing_key,
            name,
        ) {
            Ok(leaf) => {
                leaves.insert(name.clone(), Arc::clone(&leaf));
                leaf
            }
            Err(e) => {
                tracing::warn!(serial = name, error = %e, "could not mint a leaf; serving the default one");
                Arc::clone(&self.default_leaf)
            }
        }
    }

    /// A rustls server configuration that serves these certificates.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(config)
    }
}

impl ResolvesServerCert for SimCertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.leaf_for(client_hello.server_name()))
    }
}

/// A leaf certificate for `cn`, signed by the CA, with the CA in the chain.
fn mint(
    ca: &Issuer<'static, KeyPair>,
    ca_der: &CertificateDer<'static>,
    leaf_key: &KeyPair,
    signing_key: &Arc<dyn SigningKey>,
    cn: &str,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if cn != DEFAULT_LEAF_CN {
        sans.insert(0, cn.to_string());
    }
    let mut params =
        CertificateParams::new(sans).with_context(|| format!("leaf names for {cn}"))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(leaf_key, ca)
        .with_context(|| format!("signing the leaf for {cn}"))?;
    let chain = vec![cert.der().clone(), ca_der.clone()];
    Ok(Arc::new(CertifiedKey::new(chain, Arc::clone(signing_key))))
}
