//! The HMAC part of a Vapi credential (`HMACAuthenticationPlan`, vapi.md §3): which hash, how the
//! signature is written, and which headers carry it. Defaults are Vapi's own, so a deployment needs
//! only the secret unless its credential changed them.

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// Vapi's credential default first, then the header api.md §2 named before credentials existed.
pub const DEFAULT_SIGNATURE_HEADERS: [&str; 2] = ["x-signature", "x-vapi-signature"];
/// Where the signed timestamp may be; Vapi's credential default is `x-timestamp`.
pub const TIMESTAMP_HEADERS: [&str; 2] = ["x-timestamp", "x-vapi-timestamp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    Sha256,
    Sha512,
    Sha1,
}

impl Algorithm {
    /// Vapi's names (`sha256`, `sha512`, `sha1`); anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Some(Self::Sha256),
            "sha512" | "sha-512" => Some(Self::Sha512),
            "sha1" | "sha-1" => Some(Self::Sha1),
            _ => None,
        }
    }

    /// The optional prefix a signature may carry, e.g. `sha256=`.
    fn prefix(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256=",
            Self::Sha512 => "sha512=",
            Self::Sha1 => "sha1=",
        }
    }

    /// HMAC of the concatenated `parts`, so `{timestamp}.{body}` is never copied into one buffer.
    pub fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes any key length");
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
            Self::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
            Self::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "hex" => Some(Self::Hex),
            "base64" => Some(Self::Base64),
            _ => None,
        }
    }

    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Hex => hex::encode(bytes),
            Self::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Hex => hex::decode(text).ok(),
            // Vapi writes standard base64; the URL-safe alphabet costs nothing to accept.
            Self::Base64 => base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .ok(),
        }
    }
}

/// How signatures are checked: hash, encoding and the headers that may carry one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Lowercase header names, tried in order.
    pub headers: Vec<String>,
}

impl Default for Scheme {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::default(),
            encoding: Encoding::default(),
            headers: DEFAULT_SIGNATURE_HEADERS.map(str::to_owned).to_vec(),
        }
    }
}

impl Scheme {
    /// The raw signature bytes of a header value, its optional `<algorithm>=` prefix removed.
    pub fn decode(&self, value: &str) -> Option<Vec<u8>> {
        let value = value.trim();
        let bare = value
            .get(..self.algorithm.prefix().len())
            .filter(|p| p.eq_ignore_ascii_case(self.algorithm.prefix()))
            .map_or(value, |_| &value[self.algorithm.prefix().len()..]);
        self.encoding.decode(bare)
    }

    /// The header value Vapi would send for `payload` (no prefix), for tests and the simulator.
    pub fn sign(&self, secret: &[u8], payload: &[u8]) -> String {
        self.encoding
            .encode(&self.algorithm.mac(secret, &[payload]))
    }
}
