//! API keys: `cipk_<env>_<32 alphanumerics>`. The first 8 characters of the
//! random part are the key's public id; the store keeps only a salted
//! SHA-256 of the whole key, in the lake under `_keys/<id>.json`.

use std::collections::{BTreeSet, HashMap};

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthError, Principal};
use crate::lake::Location;

pub const KEYS_DIR: &str = "_keys";
const SECRET_LEN: usize = 32;
const ID_LEN: usize = 8;

/// A stored key: everything but the key itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub id: String,
    pub tenant_id: String,
    pub scopes: BTreeSet<String>,
    pub env: String,
    pub salt: String,
    pub hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Salt and hash stay out of logs.
impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("scopes", &self.scopes)
            .field("env", &self.env)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

fn digest(salt: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(key.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal without an early exit, so timing does not reveal a prefix match.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Split `cipk_<env>_<secret>` into (env, id, secret).
fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("cipk_")?;
    let (env, secret) = rest.split_once('_')?;
    let valid = !env.is_empty()
        && env.chars().all(|c| c.is_ascii_alphanumeric())
        && secret.len() == SECRET_LEN
        && secret.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then(|| (env, &secret[..ID_LEN]))
}

fn path(lake: &Location, id: &str) -> object_store::path::Path {
    lake.child(&format!("{KEYS_DIR}/{id}.json"))
}

/// Create a key for `tenant` with `scopes`; returns the key (shown once) and
/// what is stored.
pub async fn create(
    lake: &Location,
    tenant: &str,
    scopes: BTreeSet<String>,
    env: &str,
) -> Result<(String, StoredKey), object_store::Error> {
    let mut rng = rand::rng();
    let secret: String = (&mut rng).sample_iter(Alphanumeric).take(SECRET_LEN).map(char::from).collect();
    let salt: String = (&mut rng).sample_iter(Alphanumeric).take(16).map(char::from).collect();
    let key = format!("cipk_{env}_{secret}");
    let stored = StoredKey {
        id: secret[..ID_LEN].to_string(),
        tenant_id: tenant.to_string(),
        scopes,
        env: env.to_string(),
        hash: digest(&salt, &key),
        salt,
        created_at: chrono::Utc::now().to_rfc3339(),
        revoked_at: None,
    };
    let body = serde_json::to_vec_pretty(&stored).expect("key serialises");
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    lake.store.put_opts(&path(lake, &stored.id), body.into(), opts).await?;
    Ok((key, stored))
}

/// Mark a key revoked; `false` if there is no such key.
pub async fn revoke(lake: &Location, id: &str) -> Result<bool, object_store::Error> {
    let Some(mut key) = load_all(lake).await?.remove(id) else { return Ok(false) };
    key.revoked_at = Some(chrono::Utc::now().to_rfc3339());
    let body = serde_json::to_vec_pretty(&key).expect("key serialises");
    lake.store.put(&path(lake, id), body.into()).await?;
    Ok(true)
}

/// Every stored key by id.
pub async fn load_all(lake: &Location) -> Result<HashMap<String, StoredKey>, object_store::Error> {
    let metas: Vec<_> = lake.store.list(Some(&lake.child(KEYS_DIR))).try_collect().await?;
    let mut out = HashMap::new();
    for m in metas {
        let bytes = lake.store.get(&m.location).await?.bytes().await?;
        match serde_json::from_slice::<StoredKey>(&bytes) {
            Ok(k) => {
                out.insert(k.id.clone(), k);
            }
            Err(e) => tracing::warn!(file = %m.location, error = %e, "unreadable API key record skipped"),
        }
    }
    Ok(out)
}

/// Check a presented key against the stored ones.
pub fn verify(keys: &HashMap<String, StoredKey>, presented: &str) -> Result<Principal, AuthError> {
    let (_, id) = parse(presented).ok_or(AuthError::Invalid)?;
    let stored = keys.get(id).ok_or(AuthError::Invalid)?;
    if !constant_time_eq(&digest(&stored.salt, presented), &stored.hash) {
        return Err(AuthError::Invalid);
    }
    if stored.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    // A record edited by hand to a tenant id the lake cannot hold.
    if crate::contract::check_tenant_id(&stored.tenant_id).is_err() {
        return Err(AuthError::Invalid);
    }
    Ok(Principal {
        subject: format!("api-key:{}", stored.id),
        tenant_id: stored.tenant_id.clone(),
        permissions: stored.scopes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_verify_only_as_created_and_stop_when_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let lake = crate::lake::store::open(dir.path().to_str().unwrap()).unwrap();
        let scopes = BTreeSet::from(["analytics:read".to_string()]);
        let (key, stored) = create(&lake, "t1", scopes.clone(), "test").await.unwrap();
        assert!(key.starts_with("cipk_test_"));
        assert_eq!(key.len(), "cipk_test_".len() + 32);
        // Only a salted hash is stored, never the key.
        let on_disk = std::fs::read_to_string(dir.path().join(format!("_keys/{}.json", stored.id))).unwrap();
        assert!(!on_disk.contains(&key[10..]));

        let keys = load_all(&lake).await.unwrap();
        let p = verify(&keys, &key).unwrap();
        assert_eq!((p.tenant_id.as_str(), p.permissions), ("t1", scopes));
        let mut wrong = key.clone();
        wrong.replace_range(key.len() - 1.., if key.ends_with('a') { "b" } else { "a" });
        assert_eq!(verify(&keys, &wrong), Err(AuthError::Invalid));
        assert_eq!(verify(&keys, "cipk_test_short"), Err(AuthError::Invalid));
        assert_eq!(verify(&keys, "Bearer x"), Err(AuthError::Invalid));

        assert!(revoke(&lake, &stored.id).await.unwrap());
        assert!(!revoke(&lake, "nosuchid").await.unwrap());
        assert_eq!(verify(&load_all(&lake).await.unwrap(), &key), Err(AuthError::Revoked));
    }
}
