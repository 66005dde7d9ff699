-- Diagnoses of connections asked for through the management API (`POST …/validations`),
-- kept so any process serving the API can answer the result URL it handed out.
create table pgforce.validations (
    id bigserial primary key,
    connection_id bigint not null references pgforce.connections (id) on delete cascade,
    created_at timestamptz not null default now(),
    result jsonb not null
);
