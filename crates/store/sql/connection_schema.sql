-- A connection's schema: Heroku Connect's trigger log, its archive, the NOTIFY trigger and
-- the re-queue helpers. Placeholders: {schema} (quoted identifier), {channel} (literal).
-- Idempotent: run on every start.

create extension if not exists hstore;

create schema if not exists {schema};

create or replace function public.get_xmlbinary() returns character varying
language sql stable as $$ select current_setting('xmlbinary')::character varying $$;

create table if not exists {schema}._trigger_log (
    id serial primary key,
    txid bigint,
    created_at timestamp with time zone default now(),
    updated_at timestamp with time zone default now(),
    processed_at timestamp with time zone,
    processed_tx bigint,
    state character varying(8),
    action character varying(7),
    table_name character varying(128),
    record_id integer,
    sfid character varying(18),
    old text,
    "values" text,
    sf_result integer,
    sf_message text
);
-- The strongest lock this script takes on the log (its trigger is dropped and created
-- again below), taken first: a lock taken weaker and raised later (the indexes' share lock,
-- then the trigger's) deadlocks with a writer claiming rows meanwhile.
lock table {schema}._trigger_log in access exclusive mode;
create index if not exists _trigger_log_idx_created_at on {schema}._trigger_log (created_at);
create index if not exists _trigger_log_idx_state_id on {schema}._trigger_log (state, id);
create index if not exists _trigger_log_idx_state_table_name on {schema}._trigger_log (state, table_name)
    where ((state)::text = 'NEW'::text) or ((state)::text = 'PENDING'::text);

-- Same columns as the live log, without its defaults; ids are carried over.
create table if not exists {schema}._trigger_log_archive (like {schema}._trigger_log, primary key (id));
create index if not exists _trigger_log_archive_idx_created_at on {schema}._trigger_log_archive (created_at);
create index if not exists _trigger_log_archive_idx_record_id on {schema}._trigger_log_archive (record_id);
create index if not exists _trigger_log_archive_idx_state_table_name on {schema}._trigger_log_archive (state, table_name)
    where ((state)::text = 'FAILED'::text);

-- VERSION 1: wakes the writer on every captured change.
create or replace function {schema}.tlog_notify_trigger() returns trigger language plpgsql as $$
begin
    perform pg_notify({channel}, 'ping');
    return new;
end $$;
drop trigger if exists tlog_insert_trigger on {schema}._trigger_log;
create trigger tlog_insert_trigger after insert on {schema}._trigger_log
    for each row execute procedure {schema}.tlog_notify_trigger();

-- VERSION 1: re-queues a row as an INSERT (returns the new log id, or null without an id).
create or replace function {schema}.hc_capture_insert_from_row(
    source_row hstore, table_name character varying, excluded_cols text[] default array[]::text[]
) returns integer language plpgsql as $$
#variable_conflict use_variable
declare
    kept_cols text[] := array['id', 'sfid'];
    dropped text[] := array['_hc_lastop', '_hc_err'];
    retval integer;
begin
    if (source_row -> 'id') is null then
        return null;
    end if;
    dropped := dropped || array(select c from unnest(excluded_cols) c where c <> all (kept_cols));
    insert into {schema}._trigger_log (action, table_name, txid, created_at, state, record_id, "values")
    values ('INSERT', table_name, txid_current(), clock_timestamp(), 'NEW',
            (source_row -> 'id')::integer, (source_row - dropped)::text)
    returning id into retval;
    return retval;
end $$;

-- VERSION 1: re-queues a row as an UPDATE of the given columns (all when none are given).
create or replace function {schema}.hc_capture_update_from_row(
    source_row hstore, table_name character varying, columns_to_include text[] default array[]::text[]
) returns integer language plpgsql as $$
#variable_conflict use_variable
declare
    changed hstore := source_row - array['_hc_lastop', '_hc_err'];
    retval integer;
begin
    if (source_row -> 'id') is null then
        return null;
    end if;
    if coalesce(array_length(columns_to_include, 1), 0) > 0 then
        changed := slice(changed, columns_to_include);
    end if;
    insert into {schema}._trigger_log (action, table_name, txid, created_at, state, record_id, sfid, "values")
    values ('UPDATE', table_name, txid_current(), clock_timestamp(), 'NEW',
            (source_row -> 'id')::integer, source_row -> 'sfid', changed::text)
    returning id into retval;
    return retval;
end $$;
