//! Postgres → Salesforce: one pass of the writer over a connection's trigger log.
//!
//! Data flow: claim NEW log rows in id order, marking them PENDING ([`claim`]); plan them
//! ([`crate::plan`]: ordered or merged); send each batch with sObject Collections
//! ([`send`]); record every outcome with the row's write-back in one transaction per batch
//! ([`record`]). Around the pass: [`resume`] settles rows a crash left PENDING, and
//! [`archive`] moves processed rows to `_trigger_log_archive` and prunes it.
//!
//! Bulk: under ordered writes, a run of at least `bulk_threshold` changes of one table
//! and action goes as one Bulk API ingest job ([`bulk`]), falling back to collections if
//! the job fails as a whole.
//!
//! Throughput: up to [`MAX_CALLS_IN_FLIGHT`] calls at once, for consecutive batches of one
//! table and action that touch different records; their outcomes are recorded in plan
//! order.
//!
//! Ordering: changes of one record are never reordered. When a change must be retried
//! (transient failure), it and every change planned after it go back to NEW and the pass
//! ends, so the next pass sends them again in capture order. Under ordered writes a
//! refused insert holds back the later changes of its record (or, with `block_queue`,
//! everything after it) until it is fixed and re-queued.

mod archive;
mod bulk;
mod claim;
mod record;
mod resume;
mod send;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use futures_util::future::join_all;

use pgforce_salesforce::Client as Salesforce;
use pgforce_store::Ident;
use tokio_postgres::Client as Postgres;

pub use archive::{ArchiveOutcome, archive_processed};
pub use resume::{ResumeOutcome, resume_pending};

use crate::config::{OnInsertFailure, WriteAlgorithm};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{self, Action, Batch, Change};

/// How a connection's writes are grouped and what a refused insert stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePolicy {
    /// Ordered or merged.
    pub algorithm: WriteAlgorithm,
    /// Under ordered writes: hold back the record, or block the queue.
    pub on_insert_failure: OnInsertFailure,
    /// Under ordered writes, runs of at least this many changes of one table and action
    /// go as one Bulk API ingest job (`u64::MAX`: never).
    pub bulk_threshold: u64,
}

/// Heroku Connect-like default for writing a run through the Bulk API.
pub const DEFAULT_BULK_WRITE_THRESHOLD: u64 = 2_000;

impl Default for WritePolicy {
    fn default() -> Self {
        Self {
            algorithm: WriteAlgorithm::default(),
            on_insert_failure: OnInsertFailure::default(),
            bulk_threshold: DEFAULT_BULK_WRITE_THRESHOLD,
        }
    }
}

/// The most log rows one pass claims.
const CLAIM_LIMIT: i64 = 10_000;

/// Calls in flight at once (batches of one table and action touching different records).
pub const MAX_CALLS_IN_FLIGHT: usize = 4;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Changes written to Salesforce successfully.
    pub succeeded: u64,
    /// Changes Salesforce refused (state FAILED, message kept).
    pub failed: u64,
    /// Log rows folded into another change or cancelled out (state MERGED).
    pub merged: u64,
    /// Log rows newly held back behind a failed insert (state HELD).
    pub held: u64,
    /// Log rows given back to NEW after a transient failure, to be sent again.
    pub retried: u64,
    /// Log rows left PENDING because their create may have happened; [`resume_pending`]
    /// settles them.
    pub in_doubt: u64,
    /// Salesforce calls made (collections calls, and every call of bulk jobs).
    pub api_calls: u64,
    /// Bulk API ingest jobs that carried changes.
    pub bulk_jobs: u64,
    /// Runs meant for a bulk job that fell back to collections.
    pub bulk_fallbacks: u64,
    /// Successful changes per table.
    pub by_table: BTreeMap<String, u64>,
    /// Records whose insert Salesforce refused in this pass.
    pub failed_inserts: BTreeSet<(String, i64)>,
    /// Upsert-field values of those records, per table: children naming them wait.
    pub failed_keys: BTreeSet<(String, String)>,
}

impl WriteOutcome {
    /// Whether the pass found nothing to do.
    pub fn is_idle(&self) -> bool {
        self.succeeded + self.failed + self.merged + self.retried + self.in_doubt == 0
    }
}

pub(crate) fn pg_error(context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
    move |source| Error::Postgres {
        object: "(trigger log)".to_owned(),
        context: context.to_owned(),
        source,
    }
}

/// Runs one pass: claim, plan, send, record.
pub async fn write_once(
    sf: &Salesforce,
    pg: &mut Postgres,
    schema: &Ident,
    mappings: &[Mapping],
    policy: &WritePolicy,
) -> Result<WriteOutcome> {
    let by_table: HashMap<&str, &Mapping> =
        mappings.iter().map(|m| (m.table.as_str(), m)).collect();
    let links = parent_links(mappings);
    let (mut changes, held) =
        claim::claim(pg, schema, &by_table, &links, policy, CLAIM_LIMIT).await?;
    let mut outcome = WriteOutcome {
        held,
        ..WriteOutcome::default()
    };
    if changes.is_empty() {
        return Ok(outcome);
    }
    if policy.algorithm == WriteAlgorithm::Merged {
        retry_failed_inserts(pg, schema, &by_table, &mut changes).await?;
    }
    let plan = match policy.algorithm {
        WriteAlgorithm::Ordered => plan::ordered(changes),
        WriteAlgorithm::Merged => plan::merged(changes, &parent_depths(mappings)),
    };
    record::mark(pg, schema, &plan.cancelled_log_ids, "MERGED", None).await?;
    outcome.merged += plan.cancelled_log_ids.len() as u64;
    let in_flight = match (policy.algorithm, policy.on_insert_failure) {
        // Blocking the queue means nothing may pass a refused insert: one call at a time.
        (WriteAlgorithm::Ordered, OnInsertFailure::BlockQueue) => 1,
        _ => MAX_CALLS_IN_FLIGHT,
    };
    let mut pending: VecDeque<Batch> = plan.batches.into();
    let mut bulk_allowed = policy.algorithm == WriteAlgorithm::Ordered;
    while !pending.is_empty() {
        let run = bulk_allowed
            .then(|| bulk::take_run(&mut pending, policy.bulk_threshold))
            .flatten();
        let wave = match run {
            Some(run) => {
                match send_run(
                    sf,
                    pg,
                    schema,
                    policy,
                    &links,
                    &by_table,
                    run,
                    &mut pending,
                    &mut outcome,
                )
                .await?
                {
                    Some(sent) => sent,
                    None => {
                        // Fell back: the run is back at the front, for collections.
                        bulk_allowed = false;
                        continue;
                    }
                }
            }
            None => {
                let wave = next_wave(
                    pg,
                    schema,
                    policy,
                    &links,
                    &by_table,
                    &mut pending,
                    in_flight,
                    &mut outcome,
                )
                .await?;
                let answers = join_all(
                    wave.iter()
                        .map(|(batch, mapping)| send_batch(sf, mapping, batch)),
                )
                .await;
                wave.into_iter().zip(answers).collect()
            }
        };
        if record_wave(pg, schema, wave, &mut pending, &mut outcome).await? {
            break;
        }
    }
    Ok(outcome)
}

/// A wave's batches with their mappings and their answers (results, calls made).
type SentWave<'m> = Vec<((Batch, &'m Mapping), (Vec<send::Sent>, u64))>;

/// Records a wave's answers in one transaction. `true` when the pass must stop: some
/// changes must be sent again, so they and everything planned after them went back to NEW.
async fn record_wave(
    pg: &mut Postgres,
    schema: &Ident,
    wave: SentWave<'_>,
    pending: &mut VecDeque<Batch>,
    outcome: &mut WriteOutcome,
) -> Result<bool> {
    let mut back = Vec::new();
    let mut stop = false;
    let mut recording = record::Recording::default();
    for ((batch, mapping), (results, calls)) in &wave {
        outcome.api_calls += calls;
        let (batch_recording, retry, in_doubt) = record::prepare(mapping, batch, results, outcome);
        recording.extend(batch_recording);
        outcome.in_doubt += in_doubt.len() as u64;
        stop |= !retry.is_empty() || !in_doubt.is_empty();
        back.extend(retry);
    }
    if let Some(((batch, mapping), _)) = wave.first() {
        // One transaction for the whole wave: its batches share a table.
        record::write(pg, schema, mapping, &batch.table, &recording).await?;
    }
    if stop {
        back.extend(pending.iter().flat_map(log_ids));
        pending.clear();
        claim::unclaim(pg, schema, &back).await?;
        outcome.retried += back.len() as u64;
    }
    Ok(stop)
}

/// Sends a run through one Bulk API ingest job. `None` when it fell back: the run's
/// batches are back at the front of `pending`, to go through collections.
#[allow(clippy::too_many_arguments)]
async fn send_run<'m>(
    sf: &Salesforce,
    pg: &Postgres,
    schema: &Ident,
    policy: &WritePolicy,
    links: &[ParentLink],
    mappings: &HashMap<&str, &'m Mapping>,
    run: Vec<Batch>,
    pending: &mut VecDeque<Batch>,
    outcome: &mut WriteOutcome,
) -> Result<Option<SentWave<'m>>> {
    let Some(mapping) = run
        .first()
        .and_then(|b| mappings.get(b.table.as_str()).copied())
    else {
        // Unmapped: the collections path marks it FAILED.
        for batch in run.into_iter().rev() {
            pending.push_front(batch);
        }
        return Ok(None);
    };
    let mut prepared = Vec::with_capacity(run.len());
    for batch in run {
        if let Some(mut batch) = hold_dependents(pg, schema, policy, links, outcome, batch).await? {
            if batch.action != Action::Insert {
                fill_sfids(pg, schema, mapping, &mut batch).await?;
            }
            prepared.push(batch);
        }
    }
    let Some(joined) = bulk::join(&prepared) else {
        return Ok(Some(Vec::new()));
    };
    let sendable = |c: &Change| joined.action == Action::Insert || c.sfid.is_some();
    let to_send = Batch {
        changes: joined
            .changes
            .iter()
            .filter(|c| sendable(c))
            .cloned()
            .collect(),
        ..joined.clone()
    };
    match bulk::send(sf, mapping, &to_send).await {
        Ok((answers, calls)) => {
            outcome.bulk_jobs += 1;
            let mut answers = answers.into_iter();
            let results = joined
                .changes
                .iter()
                .map(|change| match sendable(change) {
                    true => answers.next().unwrap_or_else(|| {
                        send::Sent::Retry("no answer for this record".to_owned())
                    }),
                    false => send::Sent::Refused(send::refusal(
                        "the row has no sfid: its insert never reached Salesforce",
                    )),
                })
                .collect();
            Ok(Some(vec![((joined, mapping), (results, calls))]))
        }
        Err(reason) => {
            tracing::warn!(
                "BULK write batch to {} ended due to {reason}. Will fall back to REST sObject Collections",
                mapping.object
            );
            outcome.bulk_fallbacks += 1;
            for batch in prepared.into_iter().rev() {
                pending.push_front(batch);
            }
            Ok(None)
        }
    }
}

/// Takes the next batches that may be in flight together: the same table and action, no
/// record in two of them, at most `limit`. Batches of unmapped tables are marked FAILED
/// and changes held back behind refused inserts are set aside on the way.
#[allow(clippy::too_many_arguments)]
async fn next_wave<'m>(
    pg: &Postgres,
    schema: &Ident,
    policy: &WritePolicy,
    links: &[ParentLink],
    mappings: &HashMap<&str, &'m Mapping>,
    pending: &mut VecDeque<Batch>,
    limit: usize,
    outcome: &mut WriteOutcome,
) -> Result<Vec<(Batch, &'m Mapping)>> {
    let mut wave: Vec<(Batch, &Mapping)> = Vec::new();
    let mut records: HashSet<i64> = HashSet::new();
    while wave.len() < limit {
        let Some(next) = pending.front() else { break };
        if let Some((first, _)) = wave.first()
            && (next.table != first.table
                || next.action != first.action
                || next.changes.iter().any(|c| records.contains(&c.record_id)))
        {
            break;
        }
        let Some(batch) = pending.pop_front() else {
            break;
        };
        let Some(mapping) = mappings.get(batch.table.as_str()).copied() else {
            let ids = log_ids(&batch);
            let message = format!("pgforce: table {} is not mapped read-write", batch.table);
            record::mark(pg, schema, &ids, "FAILED", Some(&message)).await?;
            outcome.failed += batch.changes.len() as u64;
            continue;
        };
        let Some(mut batch) = hold_dependents(pg, schema, policy, links, outcome, batch).await?
        else {
            continue;
        };
        if batch.action != Action::Insert {
            fill_sfids(pg, schema, mapping, &mut batch).await?;
        }
        records.extend(batch.changes.iter().map(|c| c.record_id));
        wave.push((batch, mapping));
    }
    Ok(wave)
}

/// A child table's column that names a parent row by the parent's upsert field: the
/// child's insert depends on the parent's.
#[derive(Debug, Clone)]
pub(crate) struct ParentLink {
    /// The child table.
    pub child_table: String,
    /// The child's relationship external-id column.
    pub child_column: String,
    /// The parent table.
    pub parent_table: String,
    /// The parent's upsert column (holding the value the child names).
    pub parent_column: String,
}

/// The parent links among the mapped tables (parents mapped with a matching upsert field).
pub(crate) fn parent_links(mappings: &[Mapping]) -> Vec<ParentLink> {
    let mut links = Vec::new();
    for child in mappings {
        for reference in &child.references {
            let parent = mappings
                .iter()
                .find(|m| m.object.eq_ignore_ascii_case(&reference.parent_object));
            if let Some(parent) = parent
                && let Some(upsert) = &parent.upsert_column
                && upsert
                    .as_str()
                    .eq_ignore_ascii_case(&reference.external_field)
            {
                links.push(ParentLink {
                    child_table: child.table.as_str().to_owned(),
                    child_column: reference.column.as_str().to_owned(),
                    parent_table: parent.table.as_str().to_owned(),
                    parent_column: upsert.as_str().to_owned(),
                });
            }
        }
    }
    links
}

/// Every log row a batch carries, merged ones included.
fn log_ids(batch: &Batch) -> Vec<i64> {
    batch
        .changes
        .iter()
        .map(|c| c.log_id)
        .chain(batch.merged_log_ids.iter().flatten().copied())
        .collect()
}

/// Under ordered writes, takes out of a batch the changes of records whose insert was
/// refused earlier in this pass (or everything, with `block_queue`) and holds them back.
async fn hold_dependents(
    pg: &Postgres,
    schema: &Ident,
    policy: &WritePolicy,
    links: &[ParentLink],
    outcome: &mut WriteOutcome,
    mut batch: Batch,
) -> Result<Option<Batch>> {
    if policy.algorithm != WriteAlgorithm::Ordered || outcome.failed_inserts.is_empty() {
        return Ok(Some(batch));
    }
    let blocked = |change: &Change| match policy.on_insert_failure {
        OnInsertFailure::BlockQueue => true,
        OnInsertFailure::HoldDependents => {
            outcome
                .failed_inserts
                .contains(&(change.table.clone(), change.record_id))
                || (change.action == Action::Insert
                    && links.iter().any(|link| {
                        link.child_table == change.table
                            && change.values.get(&link.child_column).is_some_and(|value| {
                                value.as_ref().is_some_and(|v| {
                                    outcome
                                        .failed_keys
                                        .contains(&(link.parent_table.clone(), v.clone()))
                                })
                            })
                    }))
        }
    };
    let (held, kept): (Vec<Change>, Vec<Change>) = batch.changes.drain(..).partition(blocked);
    if !held.is_empty() {
        let ids: Vec<i64> = held.iter().map(|c| c.log_id).collect();
        let message = "pgforce: held back until the failed insert of this record or its parent \
                       is fixed and re-queued";
        record::mark(pg, schema, &ids, "HELD", Some(message)).await?;
        outcome.held += ids.len() as u64;
    }
    batch.merged_log_ids.truncate(kept.len());
    batch.changes = kept;
    Ok((!batch.changes.is_empty()).then_some(batch))
}

/// Fills the `sfid` of changes captured before their record's insert was written.
async fn fill_sfids(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    batch: &mut Batch,
) -> Result<()> {
    let missing: Vec<i32> = batch
        .changes
        .iter()
        .filter(|c| c.sfid.is_none())
        .filter_map(|c| i32::try_from(c.record_id).ok())
        .collect();
    if missing.is_empty() || batch.action == Action::Delete {
        return Ok(());
    }
    let sfids = claim::current_sfids(pg, schema, mapping, &missing).await?;
    for change in &mut batch.changes {
        if change.sfid.is_none() {
            change.sfid = sfids.get(&change.record_id).cloned();
        }
    }
    Ok(())
}

/// Sends a batch. Updates and deletes of rows without an `sfid` (their insert never
/// reached Salesforce) are refused without a call; the rest go in one call. Returns the
/// results and the calls made.
async fn send_batch(sf: &Salesforce, mapping: &Mapping, batch: &Batch) -> (Vec<send::Sent>, u64) {
    let sendable = |c: &Change| batch.action == Action::Insert || c.sfid.is_some();
    let to_send = Batch {
        changes: batch
            .changes
            .iter()
            .filter(|c| sendable(c))
            .cloned()
            .collect(),
        ..batch.clone()
    };
    let mut answers = Vec::new().into_iter();
    let mut calls = 0;
    if !to_send.changes.is_empty() {
        calls = 1;
        answers = send::send(sf, mapping, &to_send).await.into_iter();
    }
    let results = batch
        .changes
        .iter()
        .map(|change| match sendable(change) {
            true => answers
                .next()
                .unwrap_or_else(|| send::Sent::Retry("no answer for this record".to_owned())),
            false => send::Sent::Refused(send::refusal(
                "the row has no sfid: its insert never reached Salesforce",
            )),
        })
        .collect();
    (results, calls)
}

/// Merged writes retry a refused insert on a later update: an update of a record that has
/// no `sfid` (and no insert in this pass) becomes an insert of the row as it is now.
async fn retry_failed_inserts(
    pg: &Postgres,
    schema: &Ident,
    mappings: &HashMap<&str, &Mapping>,
    changes: &mut [Change],
) -> Result<()> {
    let inserted: BTreeSet<(String, i64)> = changes
        .iter()
        .filter(|c| c.action == Action::Insert)
        .map(|c| (c.table.clone(), c.record_id))
        .collect();
    for change in changes.iter_mut() {
        if change.action != Action::Update
            || change.sfid.is_some()
            || inserted.contains(&(change.table.clone(), change.record_id))
        {
            continue;
        }
        let (Some(mapping), Ok(record_id)) = (
            mappings.get(change.table.as_str()),
            i32::try_from(change.record_id),
        ) else {
            continue;
        };
        if let Some(sfid) = claim::current_sfids(pg, schema, mapping, &[record_id])
            .await?
            .remove(&change.record_id)
        {
            change.sfid = Some(sfid);
            continue;
        }
        if let Some(values) = claim::current_values(pg, schema, mapping, record_id).await? {
            let pairs = pgforce_store::hstore::parse(&values).map_err(|e| Error::Config {
                object: change.table.clone(),
                problem: format!("row {record_id}: {e}"),
            })?;
            change.action = Action::Insert;
            change.values = pairs.into_iter().collect();
        }
    }
    Ok(())
}

/// Parents before children: a table's depth is one more than the deepest mapped table
/// it references through a relationship external-id column.
fn parent_depths(mappings: &[Mapping]) -> HashMap<String, usize> {
    let mut depth: HashMap<String, usize> = mappings
        .iter()
        .map(|m| (m.table.as_str().to_owned(), 0))
        .collect();
    // Relationship names do not say the parent object; a table referencing any other
    // mapped table by external id goes after the tables that reference nothing.
    for mapping in mappings {
        if !mapping.references.is_empty() {
            depth.insert(mapping.table.as_str().to_owned(), 1);
        }
    }
    depth
}
