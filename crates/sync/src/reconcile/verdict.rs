//! What repair does with one row or record, decided from what is true inside its batch
//! (pure; the batches in `repair` gather the facts).

use pgforce_store::table::repair::LocalChange;

use super::LeftAlone;

/// Why repair leaves a row or record alone (counted in [`LeftAlone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// Salesforce still has the record of a row that looked gone.
    StillInSalesforce,
    /// The row or record has local changes not sent yet.
    Unsent,
    /// The row or record changed after the snapshot began.
    ChangedSinceSnapshot,
    /// Salesforce no longer returns a record to read again.
    NoLongerInSalesforce,
    /// A record read again whose values do not fit their columns.
    Rejected,
}

impl LeftAlone {
    /// Counts one row or record left alone.
    pub(super) fn add(&mut self, skip: Skip) {
        let count = match skip {
            Skip::StillInSalesforce => &mut self.still_in_salesforce,
            Skip::Unsent => &mut self.unsent_changes,
            Skip::ChangedSinceSnapshot => &mut self.changed_since_snapshot,
            Skip::NoLongerInSalesforce => &mut self.no_longer_in_salesforce,
            Skip::Rejected => &mut self.rejected,
        };
        *count += 1;
    }
}

/// What `queryAll` says about a record asked for by Id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Returned, not deleted.
    Live,
    /// Returned with `IsDeleted = true` (in the recycle bin).
    Deleted,
    /// Not returned: no such record, or purged.
    Unknown,
}

/// Whether two Salesforce Ids name the same record. An 18-character Id is the
/// case-sensitive 15-character one plus a suffix that encodes its letter case, so two
/// 18-character Ids compare without regard to case; otherwise the 15-character forms
/// compare exactly. A row may hold either form, and Salesforce answers with 18 characters.
pub(super) fn same_record(one: &str, other: &str) -> bool {
    if one.len() == 18 && other.len() == 18 {
        one.eq_ignore_ascii_case(other)
    } else {
        one.get(..15).unwrap_or(one) == other.get(..15).unwrap_or(other)
    }
}

fn local(change: Option<LocalChange>) -> Option<Skip> {
    change.map(|change| match change {
        LocalChange::Unsent => Skip::Unsent,
        LocalChange::Since => Skip::ChangedSinceSnapshot,
    })
}

/// A row that looked gone, before Salesforce is asked: `still_there` whether a row still
/// holds the `sfid`, `change` what the trigger log says about the record and the row.
pub(super) fn gone_row(still_there: bool, change: Option<LocalChange>) -> Option<Skip> {
    if !still_there {
        return Some(Skip::ChangedSinceSnapshot);
    }
    local(change)
}

/// A row that looked gone, once Salesforce answered: deleted only when the record is
/// deleted or unknown.
pub(super) fn gone_record(lookup: Lookup) -> Option<Skip> {
    match lookup {
        Lookup::Live => Some(Skip::StillInSalesforce),
        Lookup::Deleted | Lookup::Unknown => None,
    }
}

/// A missing or differing record Salesforce returned when read again: `change` what the
/// trigger log says about it and the row it would be stored in, `fits` whether its values
/// fit their columns. (One Salesforce no longer returns is [`Skip::NoLongerInSalesforce`].)
pub(super) fn record_to_store(change: Option<LocalChange>, fits: bool) -> Option<Skip> {
    local(change).or((!fits).then_some(Skip::Rejected))
}

/// A row that never reached Salesforce: `without_sfid` whether it still exists without
/// an `sfid` (`None`: deleted), `change` what the trigger log says about it.
pub(super) fn never_sent_row(
    without_sfid: Option<bool>,
    change: Option<LocalChange>,
) -> Option<Skip> {
    match without_sfid {
        Some(true) => local(change),
        Some(false) | None => Some(Skip::ChangedSinceSnapshot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_row_is_deleted_only_when_salesforce_has_no_live_record() {
        assert_eq!(gone_row(true, None), None);
        assert_eq!(gone_record(Lookup::Deleted), None);
        assert_eq!(gone_record(Lookup::Unknown), None);
        assert_eq!(gone_record(Lookup::Live), Some(Skip::StillInSalesforce));
    }

    #[test]
    fn a_gone_row_with_local_work_or_already_changed_is_left_alone() {
        assert_eq!(gone_row(false, None), Some(Skip::ChangedSinceSnapshot));
        assert_eq!(
            gone_row(true, Some(LocalChange::Unsent)),
            Some(Skip::Unsent)
        );
        assert_eq!(
            gone_row(true, Some(LocalChange::Since)),
            Some(Skip::ChangedSinceSnapshot)
        );
    }

    #[test]
    fn a_record_read_again_is_stored_unless_local_work_waits_or_it_does_not_fit() {
        assert_eq!(record_to_store(None, true), None);
        assert_eq!(
            record_to_store(Some(LocalChange::Unsent), false),
            Some(Skip::Unsent)
        );
        assert_eq!(
            record_to_store(Some(LocalChange::Since), true),
            Some(Skip::ChangedSinceSnapshot)
        );
        assert_eq!(record_to_store(None, false), Some(Skip::Rejected));
    }

    #[test]
    fn a_never_sent_row_is_queued_only_while_it_has_no_sfid_and_no_local_work() {
        assert_eq!(never_sent_row(Some(true), None), None);
        assert_eq!(
            never_sent_row(Some(false), None),
            Some(Skip::ChangedSinceSnapshot)
        );
        assert_eq!(never_sent_row(None, None), Some(Skip::ChangedSinceSnapshot));
        assert_eq!(
            never_sent_row(Some(true), Some(LocalChange::Unsent)),
            Some(Skip::Unsent)
        );
    }

    #[test]
    fn ids_name_the_same_record_in_either_form() {
        assert!(same_record("001000000000001AAA", "001000000000001AAA"));
        assert!(same_record("001000000000001aaa", "001000000000001AAA"));
        assert!(same_record("001000000000001", "001000000000001AAA"));
        assert!(same_record("001000000000001AAA", "001000000000001"));
        assert!(!same_record("001000000000001", "00100000000000"));
        assert!(!same_record("00100000000000a", "00100000000000A"));
        assert!(!same_record("00100000000000aAAB", "001000000000001AAA"));
    }

    #[test]
    fn every_reason_is_counted_in_its_own_field() {
        let mut left = LeftAlone::default();
        for skip in [
            Skip::StillInSalesforce,
            Skip::Unsent,
            Skip::Unsent,
            Skip::ChangedSinceSnapshot,
            Skip::NoLongerInSalesforce,
            Skip::Rejected,
        ] {
            left.add(skip);
        }
        assert_eq!(
            left,
            LeftAlone {
                still_in_salesforce: 1,
                unsent_changes: 2,
                changed_since_snapshot: 1,
                no_longer_in_salesforce: 1,
                rejected: 1,
            }
        );
        assert_eq!(left.total(), 6);
    }
}
