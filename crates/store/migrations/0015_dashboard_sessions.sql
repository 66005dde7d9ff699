-- Sessions of the dashboard: a person logs in with an API token, and the browser keeps a
-- session cookie whose SHA-256 is kept here with the form (CSRF) token of the session. A
-- session ends when it expires, when its token is revoked or expires, or at logout.
create table pgforce.dashboard_sessions (
    id_sha256 bytea primary key,
    token_id bigint not null references pgforce.api_tokens (id) on delete cascade,
    csrf text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
