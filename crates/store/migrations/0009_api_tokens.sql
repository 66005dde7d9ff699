-- Tokens of the management API. Only a SHA-256 hash of each token is kept: the token
-- itself is printed once, when it is created. A token grants one role (view < operate <
-- deploy < manage); it can expire and be revoked, and is never deleted, so the audit
-- trail can always name it.
create table pgforce.api_tokens (
    id bigserial primary key,
    name text not null unique,
    role text not null check (role in ('view', 'operate', 'deploy', 'manage')),
    token_sha256 bytea not null unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz
);
