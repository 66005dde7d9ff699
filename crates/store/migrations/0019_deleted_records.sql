-- Records a change event deleted from a mapped table, and when. A poll page read from
-- Salesforce before the event was applied still holds the record; the reader leaves out
-- such a record instead of inserting its row again. Kept a day: no page is applied that
-- long after it was read.
create table pgforce.deleted_records (
    schema_name text not null,
    table_name text not null,
    sfid varchar(18) not null,
    deleted_at timestamptz not null default now(),
    primary key (schema_name, table_name, sfid)
);

create index deleted_records_deleted_at on pgforce.deleted_records (deleted_at);
