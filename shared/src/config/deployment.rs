//! The deployment's identity (`DEPLOYMENT_ID`, api.md §9 "Deployment identity"). Every call a
//! deployment places carries it in `assistantOverrides.metadata` (`ringbackDeploymentId`), so two
//! deployments on one Vapi phone number (a dev stack, a second region, a `ringback-local` pointed
//! at the real Vapi) can tell their calls apart: the cleanup adopts, and the initiator's in-doubt
//! search matches, only calls that carry this deployment's identity.
//!
//! The template sets it from the stack id's uuid (unique per stack, stable across updates);
//! `ringback-local` keeps a random one in its data directory.

use super::{ConfigError, Env};

/// A validated deployment identity: 1-64 printable ASCII characters, no spaces (it travels in
/// Vapi's metadata, in logs and in a DynamoDB key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeploymentId(String);

impl DeploymentId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!(
                "is {} characters; at most {} are allowed",
                raw.len(),
                Self::MAX_LEN
            ));
        }
        if let Some(c) = raw.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "holds {c:?}: only printable ASCII without spaces is allowed"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// `DEPLOYMENT_ID`, required by every function that places or adopts calls.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.required("DEPLOYMENT_ID")?;
        Self::parse(&raw).map_err(|reason| ConfigError::Invalid {
            name: "DEPLOYMENT_ID",
            reason,
        })
    }

    /// A fresh identity (a `ringback-local` data directory's first start).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bounded_printable_identity_is_accepted() {
        for good in [
            "51af3dc0-da77-11e4-872e-1234567db123",
            "dev",
            &"x".repeat(64),
        ] {
            assert_eq!(DeploymentId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "two words", "tab\there", "é", &"x".repeat(65), "nul\0"] {
            assert!(DeploymentId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_ne!(DeploymentId::random(), DeploymentId::random());
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        assert_eq!(
            DeploymentId::from_env(&Env::default()).unwrap_err(),
            ConfigError::Missing("DEPLOYMENT_ID")
        );
        let err = DeploymentId::from_env(&Env::from_pairs([("DEPLOYMENT_ID", "a b")])).unwrap_err();
        assert!(err.to_string().contains("DEPLOYMENT_ID"), "{err}");
    }
}
