-- Archive jobs: records moved out of Salesforce into `<schema>_archive` tables. Each step
-- (select, verify, delete) is recorded here so a job stopped at any point resumes where it
-- stood; `archive_records` says, per record, how far it went (copied, deleted, restored).
create table pgforce.archive_jobs (
    id bigserial primary key,
    connection_id bigint not null references pgforce.connections (id) on delete cascade,
    object text not null,
    where_clause text not null,
    hard_delete boolean not null default false,
    -- pending, running, finished, finished_with_errors, failed
    state text not null default 'pending',
    -- select, verify, delete, done
    step text not null default 'select',
    selected bigint not null default 0,
    verified bigint not null default 0,
    deleted bigint not null default 0,
    failed bigint not null default 0,
    error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index archive_jobs_open on pgforce.archive_jobs (state) where state in ('pending', 'running');

create table pgforce.archive_records (
    job_id bigint not null references pgforce.archive_jobs (id) on delete cascade,
    sfid varchar(18) not null,
    -- copied, deleted, restoring (a create sent, its answer not recorded), restored
    state text not null default 'copied',
    new_sfid varchar(18),
    error text,
    -- When the last create of this record was sent (what a restore in doubt searches from).
    restore_started timestamptz,
    primary key (job_id, sfid)
);
create index archive_records_state on pgforce.archive_records (job_id, state);

-- Tokens with the narrow `archive` scope: they start and read archive jobs, nothing else.
alter table pgforce.api_tokens drop constraint api_tokens_role_check;
alter table pgforce.api_tokens add constraint api_tokens_role_check
    check (role in ('view', 'operate', 'deploy', 'manage', 'archive'));
