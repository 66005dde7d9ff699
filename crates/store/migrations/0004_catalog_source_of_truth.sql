-- The catalog becomes the source of truth for what to sync: each connection and mapping
-- keeps its full settings (secrets excepted), whether an operator paused it, and a revision
-- that grows with every change of those, so running engines notice and apply it.

alter table pgforce.connections
    add column settings jsonb,
    add column paused boolean not null default false,
    add column last_error text,
    add column revision bigint not null default 0;

alter table pgforce.mappings
    add column settings jsonb,
    -- Where the mapping was declared: the configuration file, an import, or at run time.
    add column origin text not null default 'config'
        check (origin in ('config', 'import', 'runtime')),
    add column paused boolean not null default false,
    -- Set to ask the mapping's reader for a reload; cleared in the load's own transaction.
    add column reload_requested_at timestamptz,
    add column revision bigint not null default 0;

-- Mappings imported before this migration kept their Heroku Connect document in `config`.
update pgforce.mappings set origin = 'import' where config <> '{}'::jsonb;

-- Which settings make up a revision: the ones a running worker was started with.
create function pgforce.bump_connection_revision() returns trigger language plpgsql as $$
begin
    if row(new.name, new.schema_name, new.settings, new.paused)
       is distinct from row(old.name, old.schema_name, old.settings, old.paused) then
        new.revision := old.revision + 1;
    end if;
    return new;
end $$;

create function pgforce.bump_mapping_revision() returns trigger language plpgsql as $$
begin
    if row(new.table_name, new.access, new.settings, new.paused)
           is distinct from row(old.table_name, old.access, old.settings, old.paused)
       or (new.reload_requested_at is not null
           and new.reload_requested_at is distinct from old.reload_requested_at) then
        new.revision := old.revision + 1;
    end if;
    return new;
end $$;

create trigger connections_revision before update on pgforce.connections
    for each row execute function pgforce.bump_connection_revision();
create trigger mappings_revision before update on pgforce.mappings
    for each row execute function pgforce.bump_mapping_revision();

-- Wakes running engines: `<table>:<id>` on channel pgforce_catalog.
create function pgforce.notify_catalog() returns trigger language plpgsql as $$
begin
    perform pg_notify('pgforce_catalog',
        tg_table_name || ':' || case when tg_op = 'DELETE' then old.id else new.id end);
    return null;
end $$;

create trigger connections_changed after insert or delete on pgforce.connections
    for each row execute function pgforce.notify_catalog();
create trigger connections_revised after update on pgforce.connections
    for each row when (old.revision is distinct from new.revision)
    execute function pgforce.notify_catalog();
create trigger mappings_changed after insert or delete on pgforce.mappings
    for each row execute function pgforce.notify_catalog();
create trigger mappings_revised after update on pgforce.mappings
    for each row when (old.revision is distinct from new.revision)
    execute function pgforce.notify_catalog();
