-- OAuth web-server flows in progress: a person was sent to Salesforce's consent page and
-- will come back to pgforce's callback with `state`. The row says what to do then: renew
-- the credentials of connection `connection_id`, or create the connection `settings`
-- describe (its client secret sealed in `secrets`, as connections' secrets are), with the
-- login URL the consent went to when it is not the connection's own. The PKCE
-- verifier never leaves pgforce. A row is used once, within an hour.
create table pgforce.authorizations (
    state text primary key,
    connection_id bigint references pgforce.connections (id) on delete cascade,
    settings jsonb,
    secrets bytea,
    secrets_key text,
    code_verifier text not null,
    redirect_uri text not null,
    login_url text,
    next_url text,
    created_at timestamptz not null default now()
);
