-- A consent is bound to the browser that started it: the API hands out pgforce's own
-- one-time start URL (`/oauth/start/<ticket>`, `ticket_hash` its SHA-256, cleared once
-- opened), which gives the browser a random cookie (`browser_hash` its SHA-256) and sends it
-- on to Salesforce's consent page (`consent_url`); the callback accepts a `state` only with
-- that cookie. `requested_by` names the API token that asked for the consent. Consents
-- started before this migration have no ticket and can no longer be completed.
alter table pgforce.authorizations
    add column ticket_hash bytea unique,
    add column browser_hash bytea,
    add column consent_url text,
    add column requested_by text;

-- The Salesforce org (its 18-character Id) a connection's credentials were last seen to
-- belong to: recorded when its credentials are checked at creation and at each consent, so
-- a renewal consented in another org is refused. Null until pgforce learns it.
alter table pgforce.connections add column org_id text;
