-- Records a mapping's reader could not store (a value that does not fit its column): one
-- row per mapping and record, kept until the record is stored or gone, so nothing read is
-- dropped silently. Written in the transaction of the page that skipped the record.
create table pgforce.rejected_records (
    mapping_id bigint not null references pgforce.mappings (id) on delete cascade,
    sfid text not null,
    field text not null,
    reason text not null,
    first_seen timestamptz not null default now(),
    last_seen timestamptz not null default now(),
    times_seen integer not null default 1,
    primary key (mapping_id, sfid)
);
