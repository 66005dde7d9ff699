-- Plain creates (no upsert field) a writer is sending, saved before the call leaves: if the
-- writer dies mid-call (a kill, a freeze past its lease), Salesforce may still be running
-- the call, so the writer that comes next checks those creates, and sends the ones it does
-- not find again, only after settle_after, when Salesforce can no longer be running them.
create table pgforce.creates_in_flight (
    id bigserial primary key,
    schema_name text not null,
    holder text not null,
    log_ids integer[] not null,
    settle_after timestamptz not null
);
create index creates_in_flight_schema on pgforce.creates_in_flight (schema_name);
