-- Bulk API ingest jobs a writer started and has not recorded yet: their trigger-log rows
-- and the key of each uploaded row, so a writer that stops (a crash, a shutdown, a lease
-- lost while waiting) is followed by one that reads the job's results instead of sending
-- its rows again.
create table pgforce.writer_jobs (
    job_id text primary key,
    schema_name text not null,
    table_name text not null,
    log_ids integer[] not null,
    row_keys text[] not null,
    created_at timestamptz not null default now()
);
create index writer_jobs_schema on pgforce.writer_jobs (schema_name);
