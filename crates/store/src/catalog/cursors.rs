//! `pgforce.read_cursors`: where each mapping's reader stands.
//!
//! A cursor is the `(SystemModstamp, Id)` of the last record a mapping has applied. It is
//! written with [`save`] inside the same transaction as the rows it covers, so a crash can
//! neither lose a change nor apply one twice (the worker contract).

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};
use crate::ids::MappingId;

/// Where a mapping's reader stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCursor {
    /// `SystemModstamp` of the last applied record, as a SOQL datetime literal
    /// (`2024-01-01T10:00:05.123Z`); Postgres stores it as `timestamptz`.
    pub system_modstamp: String,
    /// Its Id, ordering records that share the stamp.
    pub last_sfid: String,
}

/// The mapping's cursor, if it has loaded anything.
pub async fn load(client: &impl GenericClient, mapping: MappingId) -> Result<Option<ReadCursor>> {
    let row = client
        .query_opt(
            "select to_char(system_modstamp at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), last_sfid
             from pgforce.read_cursors where mapping_id = $1 and system_modstamp is not null",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("reading the cursor of mapping {mapping}"))?;
    Ok(row.map(|r| ReadCursor {
        system_modstamp: r.get(0),
        last_sfid: r.get::<_, Option<String>>(1).unwrap_or_default(),
    }))
}

/// Moves the cursor. Call inside the transaction that applied the rows it covers.
pub async fn save(
    client: &impl GenericClient,
    mapping: MappingId,
    cursor: &ReadCursor,
) -> Result<()> {
    client
        .execute(
            "insert into pgforce.read_cursors (mapping_id, system_modstamp, last_sfid) values ($1, $2::text::timestamptz, $3)
             on conflict (mapping_id) do update set system_modstamp = excluded.system_modstamp,
                 last_sfid = excluded.last_sfid, updated_at = now()",
            &[&mapping.get(), &cursor.system_modstamp, &cursor.last_sfid],
        )
        .await
        .context(|| format!("saving the cursor of mapping {mapping}"))
        .map(|_| ())
}

/// Forgets the cursor: the next read starts from the beginning.
pub async fn clear(client: &impl GenericClient, mapping: MappingId) -> Result<()> {
    client
        .execute(
            "delete from pgforce.read_cursors where mapping_id = $1",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("clearing the cursor of mapping {mapping}"))
        .map(|_| ())
}

/// The SOQL datetime `overlap` before the cursor's stamp: where a poll with an overlap
/// starts reading.
pub async fn window_start(
    client: &impl GenericClient,
    cursor: &ReadCursor,
    overlap: std::time::Duration,
) -> Result<String> {
    let row = client
        .query_one(
            "select to_char(($1::text::timestamptz - make_interval(secs => $2)) at time zone 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
            &[&cursor.system_modstamp, &overlap.as_secs_f64()],
        )
        .await
        .context(|| {
            format!(
                "computing {} s before the cursor {}",
                overlap.as_secs_f64(),
                cursor.system_modstamp
            )
        })?;
    Ok(row.get(0))
}
