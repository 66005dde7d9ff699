-- Records a writer created after it lost its lease (a process frozen between its last
-- check and the request leaving): it reports their Ids here instead of recording them, and
-- the connection's current writer deletes those no row owns (the rows were sent again by
-- the writer that took over).
create table pgforce.stale_creates (
    id bigserial primary key,
    connection_name text not null,
    table_name text not null,
    sfid text not null,
    reported_at timestamptz not null default now(),
    handled_at timestamptz,
    outcome text
);
create index stale_creates_open on pgforce.stale_creates (connection_name) where handled_at is null;
