//! `pgforce key rotate`: every kept secret (connections created through the API, consents
//! in progress) sealed again under the first of the operator's keys, bound to its owner.
//!
//! # Key concepts
//!
//! - **No lock over everything.** Processes keep running while a rotation goes: they
//!   create connections, change their credentials, start and finish consents. Each value
//!   is therefore replaced on its own by a compare-and-swap: written only if its bytes and
//!   key fingerprint are still those that were read and opened. A value changed meanwhile
//!   is left as its writer made it and read again in the next pass, so no change is lost.
//! - **Passes.** A pass reads every sealed value, opens all of them first (any that does
//!   not open stops the rotation before the pass writes anything), then swaps those not
//!   yet under the first key or not yet bound. Passes repeat until one finds nothing to
//!   do, which also catches values created or changed while the previous pass ran.
//!   A process still sealing under another key keeps giving work: after
//!   [`MOST_PASSES`] the rotation stops and says so (give every process the new key
//!   first, as docs/api.md's rolling procedure does).

use pgforce_store::Session;
use pgforce_store::catalog::{authorizations, connections};

use super::Engine;
use crate::SecretKeys;
use crate::error::{Error, Result};
use crate::secrets::{self, Owner, Sealed};

/// The most passes a rotation makes before it gives up on values re-sealed meanwhile
/// under another key.
const MOST_PASSES: usize = 20;

/// What a rotation sealed again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Connections whose secrets were sealed again.
    pub connections: usize,
    /// Consents in progress whose secrets were sealed again.
    pub consents: usize,
}

/// Whose value a swap replaces.
enum Holder {
    Connection {
        id: pgforce_store::ConnectionId,
        name: String,
    },
    Consent {
        state: String,
    },
}

/// One value to replace: who holds it, what was read, what replaces it.
struct Swap {
    holder: Holder,
    old: Sealed,
    new: Sealed,
}

/// What a pass did.
#[derive(Default)]
struct Pass {
    done: Rotation,
    /// Values changed since they were read (read again next pass).
    missed: usize,
}

impl Engine {
    /// Seals every kept secret again under the first of `keys` (each opened with the key
    /// its fingerprint names, which `keys` must hold), bound to its connection or consent;
    /// returns how many were sealed again. Values already so sealed are left alone, and
    /// concurrent changes are never overwritten (see the module doc).
    pub async fn rotate_secret_keys(&self, keys: &SecretKeys) -> Result<Rotation> {
        let pg = self.session().await?;
        let mut total = Rotation::default();
        for _ in 0..MOST_PASSES {
            let pass = rotation_pass(&pg, keys).await?;
            total.connections += pass.done.connections;
            total.consents += pass.done.consents;
            if pass.done == Rotation::default() && pass.missed == 0 {
                return Ok(total);
            }
            tracing::debug!(
                connections = pass.done.connections,
                consents = pass.done.consents,
                missed = pass.missed,
                "secret key rotation pass done; reading again"
            );
        }
        Err(Error::Document {
            problem: format!(
                "secrets were still being sealed under another key than {} after {MOST_PASSES} passes: give every pgforce process the new key first (docs/api.md, rotating the key)",
                keys.sealing().fingerprint()
            ),
        })
    }
}

/// Reads and opens every sealed value, then swaps those to seal again.
async fn rotation_pass(pg: &Session, keys: &SecretKeys) -> Result<Pass> {
    let mut swaps = Vec::new();
    for row in connections::list(pg).await.map_err(Error::catalog)? {
        let Some(sealed) = &row.sealed_secrets else {
            continue;
        };
        let old = Sealed::of(sealed);
        let new = secrets::reseal(keys, Owner::Connection(row.id), &old).map_err(|error| {
            Error::Connection {
                connection: row.name.clone(),
                problem: format!("its secrets cannot be sealed again: {error}"),
            }
        })?;
        if let Some(new) = new {
            let holder = Holder::Connection {
                id: row.id,
                name: row.name,
            };
            swaps.push(Swap { holder, old, new });
        }
    }
    let pending = authorizations::sealed_in_progress(pg)
        .await
        .map_err(Error::catalog)?;
    for (state, key, bytes) in pending {
        let old = Sealed { key, bytes };
        let new = secrets::reseal(keys, Owner::Consent(&state), &old).map_err(|error| {
            Error::Document {
                problem: format!(
                    "the secrets of a consent in progress cannot be sealed again: {error}"
                ),
            }
        })?;
        if let Some(new) = new {
            let holder = Holder::Consent { state };
            swaps.push(Swap { holder, old, new });
        }
    }
    let mut pass = Pass::default();
    for Swap { holder, old, new } in swaps {
        let old_value = (old.key.as_str(), old.bytes.as_slice());
        let new_value = (new.key.as_str(), new.bytes.as_slice());
        let swapped = match &holder {
            Holder::Connection { id, .. } => {
                connections::reseal(pg, *id, old_value, new_value).await
            }
            Holder::Consent { state } => {
                authorizations::reseal(pg, state, old_value, new_value).await
            }
        }
        .map_err(Error::catalog)?;
        match (swapped, holder) {
            (false, Holder::Connection { name, .. }) => {
                tracing::debug!(connection = %name, "secrets changed while re-sealing; reading them again");
                pass.missed += 1;
            }
            (false, Holder::Consent { .. }) => pass.missed += 1,
            (true, Holder::Connection { .. }) => pass.done.connections += 1,
            (true, Holder::Consent { .. }) => pass.done.consents += 1,
        }
    }
    Ok(pass)
}
