//! `pgforce.rejected_records`: records a mapping's reader read but could not store.
//!
//! A value that does not fit its column (too long, out of range) keeps its record out of
//! the table, while the cursor moves on past it. So that such a record is never dropped
//! silently, it is kept here — one row per mapping and record, with the field and the
//! reason — in the transaction of the page that skipped it, seen again when a later read
//! skips it again, and removed when a later read stores it (or finds it deleted).
//! `pgforce status` and reconcile show them; the reader retries them by Id after a
//! schema change widened a column.

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};
use crate::ids::MappingId;

/// A record to keep as rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection<'a> {
    /// The record's Id.
    pub sfid: &'a str,
    /// The field whose value does not fit.
    pub field: &'a str,
    /// Why it does not fit.
    pub reason: &'a str,
}

/// A record kept as rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// The record's Id.
    pub sfid: String,
    /// The field whose value does not fit.
    pub field: String,
    /// Why it does not fit.
    pub reason: String,
    /// When a read first skipped it (`YYYY-MM-DD HH:MI:SS`, UTC).
    pub first_seen: String,
    /// When a read last skipped it (UTC).
    pub last_seen: String,
    /// How many reads skipped it.
    pub times_seen: i32,
}

/// Keeps records as rejected: new ones are added, known ones get the latest field and
/// reason, `last_seen` and one more `times_seen`. Call inside the transaction that
/// skipped them.
pub async fn record(
    client: &impl GenericClient,
    mapping: MappingId,
    rejections: &[Rejection<'_>],
) -> Result<()> {
    if rejections.is_empty() {
        return Ok(());
    }
    let sfids: Vec<&str> = rejections.iter().map(|r| r.sfid).collect();
    let fields: Vec<&str> = rejections.iter().map(|r| r.field).collect();
    let reasons: Vec<&str> = rejections.iter().map(|r| r.reason).collect();
    client
        .execute(
            "insert into pgforce.rejected_records (mapping_id, sfid, field, reason)
             select distinct on (r.sfid) $1, r.sfid, r.field, r.reason
             from unnest($2::text[], $3::text[], $4::text[]) with ordinality as r (sfid, field, reason, n)
             order by r.sfid, r.n desc
             on conflict (mapping_id, sfid) do update set field = excluded.field,
                 reason = excluded.reason, last_seen = now(),
                 times_seen = pgforce.rejected_records.times_seen + 1",
            &[&mapping.get(), &sfids, &fields, &reasons],
        )
        .await
        .context(|| {
            format!(
                "keeping {} rejected record(s) of mapping {mapping}",
                rejections.len()
            )
        })
        .map(|_| ())
}

/// Forgets records that were stored (or deleted) after all; returns how many were kept.
/// Call inside the transaction that stored them.
pub async fn forget(
    client: &impl GenericClient,
    mapping: MappingId,
    sfids: &[&str],
) -> Result<u64> {
    if sfids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "delete from pgforce.rejected_records where mapping_id = $1 and sfid = any($2)",
            &[&mapping.get(), &sfids],
        )
        .await
        .context(|| format!("forgetting stored records of mapping {mapping}"))
}

/// Forgets every rejected record of the mapping but `sfids` (a load read every record:
/// those it did not reject were stored or are gone). Returns how many went.
pub async fn keep_only(
    client: &impl GenericClient,
    mapping: MappingId,
    sfids: &[&str],
) -> Result<u64> {
    client
        .execute(
            "delete from pgforce.rejected_records where mapping_id = $1 and not (sfid = any($2))",
            &[&mapping.get(), &sfids],
        )
        .await
        .context(|| format!("forgetting records of mapping {mapping} its load stored"))
}

/// Which of `sfids` the mapping keeps as rejected (a poll's overlap reads them again: they
/// were reported when first read).
pub async fn kept_among(
    client: &impl GenericClient,
    mapping: MappingId,
    sfids: &[&str],
) -> Result<std::collections::HashSet<String>> {
    if sfids.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let rows = client
        .query(
            "select sfid from pgforce.rejected_records where mapping_id = $1 and sfid = any($2)",
            &[&mapping.get(), &sfids],
        )
        .await
        .context(|| format!("reading which records mapping {mapping} keeps as rejected"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How many records of the mapping are kept as rejected.
pub async fn count(client: &impl GenericClient, mapping: MappingId) -> Result<u64> {
    let row = client
        .query_one(
            "select count(*) from pgforce.rejected_records where mapping_id = $1",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("counting the rejected records of mapping {mapping}"))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}

/// How many records each mapping keeps as rejected (mappings with none left out), in one
/// read whatever the number of mappings.
pub async fn counts(
    client: &impl GenericClient,
) -> Result<std::collections::HashMap<MappingId, u64>> {
    let rows = client
        .query(
            "select mapping_id, count(*) from pgforce.rejected_records group by mapping_id",
            &[],
        )
        .await
        .context(|| "counting the rejected records of every mapping".to_owned())?;
    Ok(rows
        .iter()
        .map(|row| {
            let mapping = MappingId::from(row.get::<_, i64>(0));
            (
                mapping,
                u64::try_from(row.get::<_, i64>(1)).unwrap_or_default(),
            )
        })
        .collect())
}

/// The Ids of every record of the mapping kept as rejected.
pub async fn sfids(client: &impl GenericClient, mapping: MappingId) -> Result<Vec<String>> {
    let rows = client
        .query(
            "select sfid from pgforce.rejected_records where mapping_id = $1 order by sfid",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("reading the rejected records of mapping {mapping}"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The first `limit` records of the mapping kept as rejected, oldest first.
pub async fn list(
    client: &impl GenericClient,
    mapping: MappingId,
    limit: i64,
) -> Result<Vec<RejectedRow>> {
    let rows = client
        .query(
            "select sfid, field, reason,
                    to_char(first_seen at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
                    to_char(last_seen at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'), times_seen
             from pgforce.rejected_records where mapping_id = $1
             order by first_seen, sfid limit $2",
            &[&mapping.get(), &limit],
        )
        .await
        .context(|| format!("listing the rejected records of mapping {mapping}"))?;
    Ok(rows
        .iter()
        .map(|r| RejectedRow {
            sfid: r.get(0),
            field: r.get(1),
            reason: r.get(2),
            first_seen: r.get(3),
            last_seen: r.get(4),
            times_seen: r.get(5),
        })
        .collect())
}
