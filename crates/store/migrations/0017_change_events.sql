-- Change events (Pub/Sub or CometD): where each connection's subscriber stands, and per
-- mapping whether events are flowing, by which transport, and when the last one came.
-- The replay id is opaque bytes (a CometD id is stored as its 8 big-endian bytes); it is
-- written under the subscriber's lease, in the transaction that records what the events
-- caused.
create table pgforce.change_subscriptions (
    connection_id bigint primary key references pgforce.connections (id) on delete cascade,
    transport text not null check (transport in ('pubsub', 'cometd')),
    replay_id bytea,
    events_received bigint not null default 0,
    updated_at timestamptz not null default now()
);

alter table pgforce.mappings
    add column events_transport text check (events_transport in ('pubsub', 'cometd')),
    add column last_event_at timestamptz;
