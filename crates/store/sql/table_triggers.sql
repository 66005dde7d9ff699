-- The status and logger triggers of one mapped table. Placeholders: {schema}, {table},
-- {status_fn}, {logger_fn}, {status_trigger}, {log_trigger} (quoted identifiers),
-- {initial_state} (literal 'NEW' or 'READONLY'), {read_write} (true or false).
-- Rows written by pgforce itself run with xmlbinary = 'hex': they are marked SYNCED (or
-- keep the _hc_lastop pgforce sets) and never logged, so nothing echoes back.

create or replace function {schema}.{status_fn}() returns trigger language plpgsql as $$
begin
    if public.get_xmlbinary() = 'base64' then
        new._hc_lastop := 'PENDING';
        new._hc_err := null;
    elsif tg_op = 'UPDATE' and new._hc_lastop is not null
          and new._hc_lastop is distinct from old._hc_lastop then
        -- pgforce set the outcome of a write (INSERTED, UPDATED, FAILED): keep it.
        null;
    else
        new._hc_lastop := 'SYNCED';
        new._hc_err := null;
    end if;
    return new;
end $$;

-- VERSION 4
create or replace function {schema}.{logger_fn}() returns trigger language plpgsql as $$
declare
    log_row {schema}._trigger_log;
    excluded_cols text[] := array['_hc_lastop', '_hc_err'];
    changed hstore;
begin
    log_row.id := nextval(pg_get_serial_sequence({log_table}, 'id'));
    log_row.action := tg_op::text;
    log_row.table_name := tg_table_name::text;
    log_row.txid := txid_current();
    log_row.created_at := clock_timestamp();
    log_row.updated_at := log_row.created_at;
    log_row.state := {initial_state};
    if tg_op = 'INSERT' then
        log_row.record_id := new.id;
        log_row."values" := (hstore(new.*) - excluded_cols)::text;
    elsif tg_op = 'UPDATE' then
        changed := (hstore(new.*) - hstore(old.*)) - excluded_cols;
        log_row.record_id := new.id;
        log_row.old := (hstore(old.*) - excluded_cols)::text;
        log_row."values" := changed::text;
        log_row.sfid := old.sfid;
        if {read_write} and changed = ''::hstore then
            log_row.state := 'IGNORE';
        end if;
    else
        log_row.record_id := old.id;
        log_row.old := (hstore(old.*) - excluded_cols)::text;
        log_row.sfid := old.sfid;
        if {read_write} and old.sfid is null then
            log_row.state := 'IGNORE';
        end if;
    end if;
    insert into {schema}._trigger_log select log_row.*;
    return null;
end $$;

drop trigger if exists {status_trigger} on {schema}.{table};
create trigger {status_trigger} before insert or update on {schema}.{table}
    for each row execute procedure {schema}.{status_fn}();

drop trigger if exists {log_trigger} on {schema}.{table};
create trigger {log_trigger} after insert or update or delete on {schema}.{table}
    for each row when (public.get_xmlbinary()::text = 'base64')
    execute procedure {schema}.{logger_fn}();
