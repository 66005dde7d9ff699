-- New sealed secrets (credentials changed through the management API) are a new revision
-- of the connection, so running engines restart its workers with them.
create or replace function pgforce.bump_connection_revision() returns trigger language plpgsql as $$
begin
    if row(new.name, new.schema_name, new.settings, new.paused, new.secrets)
       is distinct from row(old.name, old.schema_name, old.settings, old.paused, old.secrets) then
        new.revision := old.revision + 1;
    end if;
    return new;
end $$;
