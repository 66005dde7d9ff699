-- What was done to connections and mappings through the management API (and to tokens),
-- by which token, with the configuration before and after. Appended only.
create table pgforce.audit_log (
    id bigserial primary key,
    at timestamptz not null default now(),
    actor text not null,
    action text not null,
    target text not null,
    before jsonb,
    after jsonb
);
create index audit_log_at on pgforce.audit_log (at);
