//! The statements behind reconcile's repair, which runs beside a live reader and writer.
//!
//! Repair works on a mapped table in batches. Each batch is one of pgforce's own
//! transactions holding the table's sync lock (see [`crate::OwnWrite`]), so the table's
//! reader and writer cannot store records or write `sfid`s back while the batch decides and
//! writes. Inside it, the `lock_*` reads take row locks (`for update`) on the rows the
//! batch may change, so an app's edit of one of them waits for the batch to end, and
//! [`activity`] reads what the trigger log says about them. What to do with each row is
//! decided by the engine (`pgforce_sync`'s reconcile); the statements are here.

use std::collections::HashSet;
use std::time::SystemTime;

use tokio_postgres::{GenericClient, Transaction};

use super::RowShape;
use crate::Ident;
use crate::error::{Context as _, Result};
use crate::states::LogState;
use crate::trigger_log::log_table;

/// Trigger-log states of a change still on its way to Salesforce: captured, being sent,
/// or held back behind a refused insert (the reader's conflict rule uses the same three).
const ON_THE_WAY: [LogState; 3] = [LogState::New, LogState::Pending, LogState::Held];

/// The database's clock now (`clock_timestamp()`, the clock the trigger log's times come
/// from): noted when a comparison begins, so repair can tell what changed after it.
pub async fn database_time(client: &impl GenericClient) -> Result<SystemTime> {
    client
        .query_one("select clock_timestamp()", &[])
        .await
        .context(|| "reading the database's clock".to_owned())
        .map(|row| row.get(0))
}

/// A row of a mapped table, locked until the end of the transaction that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedRow {
    /// The row's id.
    pub id: i32,
    /// Its Salesforce Id, if it has one.
    pub sfid: Option<String>,
}

fn locked_rows(rows: &[tokio_postgres::Row]) -> Vec<LockedRow> {
    rows.iter()
        .map(|row| LockedRow {
            id: row.get(0),
            sfid: row.get(1),
        })
        .collect()
}

/// Locks and reads the rows holding these `sfid`s.
pub async fn lock_by_sfids(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    sfids: &[String],
) -> Result<Vec<LockedRow>> {
    let rows = tx
        .query(
            &format!(
                "select id, sfid::text from {schema}.{table} where sfid = any($1)
                 order by id for update"
            ),
            &[&sfids],
        )
        .await
        .context(|| format!("locking rows of {schema}.{table} by sfid"))?;
    Ok(locked_rows(&rows))
}

/// Locks and reads the rows with these ids.
pub async fn lock_by_ids(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    ids: &[i32],
) -> Result<Vec<LockedRow>> {
    let rows = tx
        .query(
            &format!(
                "select id, sfid::text from {schema}.{table} where id = any($1)
                 order by id for update"
            ),
            &[&ids],
        )
        .await
        .context(|| format!("locking rows of {schema}.{table} by id"))?;
    Ok(locked_rows(&rows))
}

/// Locks the rows without `sfid` that storing `records` (values in the shape's column
/// order) would match by the upsert field (see [`super::apply`]); returns `(index of the
/// record, row id)` pairs. Empty when the shape has no upsert field.
pub async fn lock_by_upsert_field(
    tx: &Transaction<'_>,
    shape: &RowShape,
    records: &[Vec<Option<String>>],
) -> Result<Vec<(usize, i32)>> {
    let (schema, table) = (&shape.schema, &shape.table);
    let Some((position, column)) = shape.upsert_column.as_ref().and_then(|key| {
        shape
            .columns
            .iter()
            .enumerate()
            .find(|(_, c)| &c.name == key)
    }) else {
        return Ok(Vec::new());
    };
    let (indexes, keys): (Vec<i32>, Vec<&str>) = records
        .iter()
        .enumerate()
        .filter_map(|(n, values)| {
            let key = values.get(position)?.as_deref()?;
            Some((i32::try_from(n).ok()?, key))
        })
        .unzip();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (key, pg_type) = (&column.name, column.pg_type);
    let rows = tx
        .query(
            &format!(
                "select u.n, t.id from unnest($1::int[], $2::text[]) u(n, key)
                 join {schema}.{table} t on t.{key} = u.key::{pg_type}
                 where t.sfid is null order by t.id for update of t"
            ),
            &[&indexes, &keys],
        )
        .await
        .context(|| format!("locking rows of {schema}.{table} by their {key}"))?;
    Ok(rows
        .iter()
        .filter_map(|row| Some((usize::try_from(row.get::<_, i32>(0)).ok()?, row.get(1))))
        .collect())
}

/// Deletes rows by id (locked by this transaction); returns how many went.
pub async fn delete_rows(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    ids: &[i32],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    tx.execute(
        &format!("delete from {schema}.{table} where id = any($1)"),
        &[&ids],
    )
    .await
    .context(|| format!("deleting rows of {schema}.{table} whose record is gone"))
}

/// What a row or record has going on locally, by the trigger log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalChange {
    /// A change not sent yet: NEW, PENDING or HELD.
    Unsent,
    /// A change captured, or its outcome recorded (an `sfid` written back, say), at or
    /// after the given time.
    Since,
}

/// The trigger log's entries about some rows and records (see [`activity`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    unsent_sfids: HashSet<String>,
    unsent_ids: HashSet<i32>,
    since_sfids: HashSet<String>,
    since_ids: HashSet<i32>,
}

impl Activity {
    /// What is going on for a record (`sfid`) and its row (`id`), either of which may be
    /// unknown; unsent changes come first.
    pub fn of(&self, sfid: Option<&str>, id: Option<i32>) -> Option<LocalChange> {
        let by_sfid = |set: &HashSet<String>| sfid.is_some_and(|s| set.contains(s));
        let by_id = |set: &HashSet<i32>| id.is_some_and(|i| set.contains(&i));
        if by_sfid(&self.unsent_sfids) || by_id(&self.unsent_ids) {
            Some(LocalChange::Unsent)
        } else if by_sfid(&self.since_sfids) || by_id(&self.since_ids) {
            Some(LocalChange::Since)
        } else {
            None
        }
    }
}

/// Reads the trigger-log entries of `table` about the records `sfids` and the rows `ids`
/// that are unsent, or were captured or processed at or after `since` (none: only the
/// unsent ones count). One pass over the log.
pub async fn activity(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    sfids: &[String],
    ids: &[i32],
    since: Option<SystemTime>,
) -> Result<Activity> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select sfid::text, record_id, bool_or(state = any($4))
                 from {log}
                 where table_name = $1 and (sfid = any($2) or record_id = any($3))
                   and (state = any($4) or created_at >= $5 or processed_at >= $5)
                 group by sfid, record_id"
            ),
            &[
                &table.as_str(),
                &sfids,
                &ids,
                &LogState::texts(&ON_THE_WAY),
                &since,
            ],
        )
        .await
        .context(|| format!("reading the local changes of rows of {schema}.{table} in {log}"))?;
    let mut activity = Activity::default();
    for row in &rows {
        let (sfid, id, unsent): (Option<String>, Option<i32>, bool) =
            (row.get(0), row.get(1), row.get(2));
        let (sfids, ids) = if unsent {
            (&mut activity.unsent_sfids, &mut activity.unsent_ids)
        } else {
            (&mut activity.since_sfids, &mut activity.since_ids)
        };
        sfids.extend(sfid);
        ids.extend(id);
    }
    Ok(activity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_changes_come_before_recent_ones_and_either_key_matches() {
        let activity = Activity {
            unsent_sfids: HashSet::from(["a01".to_owned()]),
            unsent_ids: HashSet::from([7]),
            since_sfids: HashSet::from(["a01".to_owned(), "a02".to_owned()]),
            since_ids: HashSet::from([8]),
        };
        assert_eq!(activity.of(Some("a01"), None), Some(LocalChange::Unsent));
        assert_eq!(activity.of(Some("zzz"), Some(7)), Some(LocalChange::Unsent));
        assert_eq!(activity.of(Some("a02"), Some(1)), Some(LocalChange::Since));
        assert_eq!(activity.of(None, Some(8)), Some(LocalChange::Since));
        assert_eq!(activity.of(Some("a03"), Some(9)), None);
        assert_eq!(activity.of(None, None), None);
    }
}
