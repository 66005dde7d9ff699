-- From now on a resume looks in Salesforce only for the PENDING creates an entry of
-- pgforce.creates_in_flight names (the rest were claimed but never sent). Creates left
-- PENDING by a pgforce that did not save its waves may have been sent: name them here, so
-- the first writer after the upgrade checks them as before.
do $$
declare
    connection record;
begin
    for connection in
        select c.schema_name from pgforce.connections c
        where to_regclass(format('%I._trigger_log', c.schema_name)) is not null
    loop
        execute format(
            'insert into pgforce.creates_in_flight (schema_name, holder, log_ids, settle_after)
             select $1, ''before-upgrade'', array_agg(l.id), now()
             from %I._trigger_log l
             where l.state = ''PENDING'' and l.action = ''INSERT''
             having count(*) > 0',
            connection.schema_name)
        using connection.schema_name;
    end loop;
end
$$;
