-- The pgforce catalog: what to sync and where it stands. Applied once; never edited.

create table pgforce.connections (
    id bigserial primary key,
    name text not null unique,
    schema_name text not null unique,
    config jsonb not null default '{}',
    state text not null default 'IDLE',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table pgforce.mappings (
    id bigserial primary key,
    connection_id bigint not null references pgforce.connections (id) on delete cascade,
    object_name text not null,
    table_name text not null,
    access text not null check (access in ('read_only', 'read_write')),
    config jsonb not null default '{}',
    state text not null default 'INITIAL',
    salesforce_count bigint,
    postgres_count bigint,
    last_sync_at timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (connection_id, object_name)
);

-- Where each mapping's reader stands: advanced in the same transaction as the rows read.
create table pgforce.read_cursors (
    mapping_id bigint primary key references pgforce.mappings (id) on delete cascade,
    system_modstamp timestamptz,
    last_sfid text,
    updated_at timestamptz not null default now()
);

-- Who works on what: a reader per mapping, a writer per connection.
create table pgforce.leases (
    name text primary key,
    holder text not null,
    expires_at timestamptz not null
);

create table pgforce.sync_events (
    id bigserial primary key,
    connection_id bigint references pgforce.connections (id) on delete cascade,
    mapping_id bigint references pgforce.mappings (id) on delete cascade,
    kind text not null,
    direction text not null,
    records integer not null default 0,
    api_calls integer not null default 0,
    duration_ms integer not null default 0,
    outcome text not null,
    message text,
    created_at timestamptz not null default now()
);
create index sync_events_mapping_created on pgforce.sync_events (mapping_id, created_at);

create table pgforce.api_usage (
    connection_id bigint not null references pgforce.connections (id) on delete cascade,
    day date not null,
    calls bigint not null default 0,
    primary key (connection_id, day)
);
