-- Objects beyond the org's Change Data Capture allocation get their change events from a
-- PushTopic (over CometD): a mapping shows 'pushtopic' then.
alter table pgforce.mappings drop constraint mappings_events_transport_check;
alter table pgforce.mappings
    add constraint mappings_events_transport_check
    check (events_transport in ('pubsub', 'cometd', 'pushtopic'));
