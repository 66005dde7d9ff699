//! The states pgforce records, as types, with Heroku Connect's names.
//!
//! States travel as text in the catalog and the trigger log, where apps, dashboards and
//! tools written for Heroku Connect read them; in Rust they are enums, so a typo is a
//! compile error and every `match` names the states it handles. [`as_str`] gives the text
//! for SQL and the wire; [`parse`] reads it back (unknown text is kept as `Other`, so a
//! state set by a newer version or by hand never breaks a reader).
//!
//! [`as_str`]: MappingState::as_str
//! [`parse`]: MappingState::parse

use std::fmt;

/// Declares a state enum with its text for each variant and an `Other` fallback.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A state this version does not know (kept as written).
            Other(String),
        }

        impl $name {
            /// The state's text, as stored.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }

            /// The state a stored text names.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

states! {
    /// A connection's state (Heroku Connect's connection states).
    ConnectionState {
        /// Healthy, nothing being written right now.
        Idle = "IDLE",
        /// Writing Postgres changes to Salesforce.
        PollingDbChanges = "POLLING_DB_CHANGES",
        /// Paused by an operator: nothing is read or written.
        Paused = "PAUSED",
        /// Waiting for the org's daily API allocation: changes wait, none fails.
        PausedApiLimit = "PAUSED_API_LIMIT",
        /// Waiting for Salesforce to accept the connection's credentials again.
        PausedAuth = "PAUSED_AUTH",
        /// Stopped by an error the operator must look at.
        SystemError = "SYSTEM_ERROR",
    }
}

states! {
    /// A mapping's state (Heroku Connect's mapping states).
    MappingState {
        /// Registered; its table is being created.
        Initial = "INITIAL",
        /// Every record synced as of the last poll.
        DataSynced = "DATA_SYNCED",
        /// Loading again after fields were added.
        Resync = "RESYNC",
        /// Waiting for the org's schema: a mapped field was deleted or made unreadable in
        /// Salesforce (or changed to a type its column cannot hold); other mappings go on.
        SchemaChanged = "SCHEMA_CHANGED",
        /// Initial load or reload.
        ReloadTable = "RELOAD_TABLE",
        /// Polling Salesforce for changes.
        PollingSfChanges = "POLLING_SF_CHANGES",
        /// Polling Salesforce for changes through a Bulk API query job.
        PollingSfBulk = "POLLING_SF_BULK",
        /// Waiting for a Bulk API query job before loading its results.
        WaitBulkLoad = "WAIT_BULK_LOAD",
        /// Loading the results of a Bulk API query job.
        LoadingBulkJob = "LOADING_BULK_JOB",
        /// Stopped by an error the operator must look at.
        SystemError = "SYSTEM_ERROR",
        /// The mapping's configuration does not fit the org.
        BadConfig = "BAD_CONFIG",
        /// Heroku Connect's: the database could not be reached (read in a catalog taken over).
        DbUnavailable = "DB_UNAVAILABLE",
        /// Heroku Connect's: Salesforce refused the connection's credentials.
        Unauthorized = "UNAUTHORIZED",
        /// Heroku Connect's: a Bulk API load failed.
        BulkLoadError = "BULK_LOAD_ERROR",
    }
}

impl ConnectionState {
    /// Whether the connection is stopped by an error someone must look at.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::SystemError)
    }

    /// Whether the connection waits: paused by an operator, or for the org's API
    /// allocation or credentials.
    pub fn is_paused(&self) -> bool {
        matches!(self, Self::Paused | Self::PausedApiLimit | Self::PausedAuth)
    }
}

impl MappingState {
    /// Whether the mapping is stopped by an error someone must look at: what the API sums
    /// up as the connection's state, the dashboard paints red and validation fails on.
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Self::SystemError
                | Self::BadConfig
                | Self::SchemaChanged
                | Self::DbUnavailable
                | Self::Unauthorized
                | Self::BulkLoadError
        )
    }
}

states! {
    /// A trigger-log row's state (Heroku Connect's `_trigger_log.state`).
    LogState {
        /// Captured, not yet processed.
        New = "NEW",
        /// Claimed by the writer; its call may be in flight.
        Pending = "PENDING",
        /// Written to Salesforce.
        Success = "SUCCESS",
        /// Refused by Salesforce; `sf_message` says why.
        Failed = "FAILED",
        /// Folded into another change of the same record and sent with it.
        Merged = "MERGED",
        /// Held back behind a refused insert (pgforce's own state).
        Held = "HELD",
        /// A capture with nothing to send (set by the trigger).
        Ignore = "IGNORE",
        /// Deliberately skipped (by an operator, or superseded).
        Ignored = "IGNORED",
        /// Captured on a read-only mapping: never sent.
        Readonly = "READONLY",
        /// An archived row copied back to be processed again.
        Requeued = "REQUEUED",
    }
}

impl ConnectionState {
    /// Whether the state is a pause the engine set itself (and lifts itself).
    pub fn is_org_pause(&self) -> bool {
        matches!(self, Self::PausedApiLimit | Self::PausedAuth)
    }
}

impl LogState {
    /// States of rows the writer is done with: they may move to the archive.
    pub const PROCESSED: [Self; 7] = [
        Self::Success,
        Self::Merged,
        Self::Failed,
        Self::Ignore,
        Self::Ignored,
        Self::Readonly,
        Self::Requeued,
    ];

    /// States of changes that have not reached Salesforce yet.
    pub const UNSENT: [Self; 4] = [Self::New, Self::Pending, Self::Held, Self::Failed];

    /// The texts of several states, for `= any($n)` parameters.
    pub fn texts(states: &[Self]) -> Vec<&str> {
        states.iter().map(Self::as_str).collect()
    }
}

/// What a synced row's `_hc_lastop` says happened to it last (Heroku Connect's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastOp {
    /// Created in Salesforce; `sfid` written back.
    Inserted,
    /// Updated in Salesforce.
    Updated,
    /// Deleted in Salesforce.
    Deleted,
    /// Refused by Salesforce; `_hc_err` says why.
    Failed,
}

impl LastOp {
    /// The text stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inserted => "INSERTED",
            Self::Updated => "UPDATED",
            Self::Deleted => "DELETED",
            Self::Failed => "FAILED",
        }
    }
}

/// Whether a mapping's table is written back to Salesforce (`read_only` / `read_write`
/// in configuration files, the catalog and Heroku Connect's documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Salesforce → Postgres only; app changes are logged as READONLY and never sent.
    ReadOnly,
    /// Both ways: app changes are logged as NEW for the writer.
    ReadWrite,
}

impl Access {
    /// The text the catalog and Heroku Connect's documents use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::ReadWrite => "read_write",
        }
    }

    /// The access a stored text names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read_only" => Some(Self::ReadOnly),
            "read_write" => Some(Self::ReadWrite),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action of a captured change (`_trigger_log.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogAction {
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
}

impl LogAction {
    /// The action's text, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    /// The action a stored text names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "INSERT" => Some(Self::Insert),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for LogAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_says_which_states_stop_the_sync() {
        let stopping = [
            "SYSTEM_ERROR",
            "BAD_CONFIG",
            "SCHEMA_CHANGED",
            "DB_UNAVAILABLE",
            "UNAUTHORIZED",
            "BULK_LOAD_ERROR",
        ];
        for text in stopping {
            assert!(MappingState::parse(text).is_error(), "{text}");
        }
        for text in [
            "DATA_SYNCED",
            "POLLING_SF_CHANGES",
            "RELOAD_TABLE",
            "INITIAL",
            "SOMETHING_NEW",
        ] {
            assert!(!MappingState::parse(text).is_error(), "{text}");
        }
        assert!(ConnectionState::SystemError.is_error());
        assert!(ConnectionState::PausedApiLimit.is_paused());
        assert!(!ConnectionState::Idle.is_paused() && !ConnectionState::Idle.is_error());
    }

    #[test]
    fn states_round_trip_through_their_text_and_keep_unknown_ones() {
        for state in [
            MappingState::DataSynced,
            MappingState::LoadingBulkJob,
            MappingState::SchemaChanged,
        ] {
            assert_eq!(MappingState::parse(state.as_str()), state);
        }
        assert_eq!(LogState::parse("HELD"), LogState::Held);
        assert_eq!(
            ConnectionState::parse("RECOVERY"),
            ConnectionState::Other("RECOVERY".to_owned())
        );
        assert_eq!(ConnectionState::parse("RECOVERY").as_str(), "RECOVERY");
        assert_eq!(
            Access::parse(Access::ReadWrite.as_str()),
            Some(Access::ReadWrite)
        );
        assert_eq!(LogAction::parse("DELETE"), Some(LogAction::Delete));
        assert_eq!(LogAction::parse("TRUNCATE"), None);
    }

    #[test]
    fn every_log_state_fits_heroku_connects_column() {
        for state in LogState::PROCESSED.iter().chain(&LogState::UNSENT) {
            assert!(state.as_str().len() <= 8, "{state} fits varchar(8)");
        }
    }
}
