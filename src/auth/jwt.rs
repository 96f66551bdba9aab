//! Bearer tokens: JWTs signed HS256 (shared secret) or RS256 (we hold the
//! public key). Required claims: `sub`, `tenant_id`, `exp`; `permissions` is
//! a list of strings (empty when absent).

use std::collections::BTreeSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant_id: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    pub exp: u64,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    pub fn rs256(public_key_pem: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self::with(DecodingKey::from_rsa_pem(public_key_pem)?, Algorithm::RS256))
    }

    fn with(key: DecodingKey, alg: Algorithm) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtVerifier { key, validation }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        let c = data.claims;
        // The tenant names lake directories: a token for an id the landing
        // would refuse can name no data, and must not reach a path.
        if crate::contract::check_tenant_id(&c.tenant_id).is_err() {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            subject: c.sub,
            tenant_id: c.tenant_id,
            permissions: c.permissions.into_iter().collect::<BTreeSet<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn token(secret: &[u8], tenant: &str, exp_from_now: i64) -> String {
        let claims = Claims {
            sub: "user-1".into(),
            tenant_id: tenant.into(),
            permissions: vec!["analytics:read".into()],
            exp: (chrono::Utc::now().timestamp() + exp_from_now) as u64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn hs256_tokens_resolve_to_their_tenant() {
        let v = JwtVerifier::hs256(b"s3cret");
        let p = v.verify(&token(b"s3cret", "t1", 600)).unwrap();
        assert_eq!(p.tenant_id, "t1");
        assert_eq!(p.subject, "user-1");
        assert!(p.can("analytics:read"));
        assert!(!p.can("reports:write"));
        assert_eq!(v.verify(&token(b"other", "t1", 600)), Err(AuthError::Invalid));
        assert_eq!(v.verify(&token(b"s3cret", "t1", -600)), Err(AuthError::Expired));
        assert_eq!(v.verify(&token(b"s3cret", "", 600)), Err(AuthError::Invalid));
        assert_eq!(v.verify("not.a.jwt"), Err(AuthError::Invalid));
    }
}
