-- OData 4.0 services (Heroku External Objects): one per connection, reached at
-- `/odata/v4/<slug>/`, the slug 32 random lowercase hex digits. A service starts disabled;
-- enabling it makes its first credential, disabling it (revoke) ends every credential.
create table pgforce.odata_services (
    id bigserial primary key,
    connection_id bigint not null unique references pgforce.connections (id) on delete cascade,
    slug text not null unique check (slug ~ '^[0-9a-f]{32}$'),
    enabled boolean not null default false,
    writable boolean not null default false,
    search_enabled boolean not null default true,
    hourly_request_limit integer not null default 20000 check (hourly_request_limit > 0),
    statement_timeout_ms integer not null default 30000
        check (statement_timeout_ms between 100 and 120000),
    -- How long a credential keeps working after a reset replaced it (Heroku: 10 minutes).
    credential_overlap_seconds integer not null default 600
        check (credential_overlap_seconds >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- HTTP Basic credentials of a service: the password only as PBKDF2-HMAC-SHA256 of a
-- per-credential salt. `expires_at` is null while the credential is the current one; a
-- reset sets it on the one it replaces (now + the service's overlap), a revoke on all (now).
create table pgforce.odata_credentials (
    id bigserial primary key,
    service_id bigint not null references pgforce.odata_services (id) on delete cascade,
    user_name text not null,
    password_salt bytea not null,
    password_iterations integer not null check (password_iterations > 0),
    password_hash bytea not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz
);
create index odata_credentials_by_user on pgforce.odata_credentials (service_id, user_name);

-- Relations a service publishes as entity sets: any schema of the database.
create table pgforce.odata_resources (
    id bigserial primary key,
    service_id bigint not null references pgforce.odata_services (id) on delete cascade,
    schema_name text not null,
    table_name text not null,
    exported boolean not null default true,
    created_at timestamptz not null default now(),
    unique (service_id, schema_name, table_name)
);

-- Requests answered per service and hour, for the hourly limit (one upsert per request).
create table pgforce.odata_usage (
    service_id bigint not null references pgforce.odata_services (id) on delete cascade,
    hour timestamptz not null,
    requests bigint not null default 0,
    primary key (service_id, hour)
);
