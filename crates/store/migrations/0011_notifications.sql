-- What an operator should hear about (a mapping stopped, a schema changed, a connection
-- paused, failed writes piling up, the API allocation nearly spent): one row per event,
-- listed and acknowledged through the management API and delivered to webhooks.
-- `subject` names what it is about (`mapping Account`, `connection main`); an event is
-- not recorded again while an unacknowledged one of the same type and subject exists.
create table pgforce.notifications (
    id bigserial primary key,
    connection_id bigint not null references pgforce.connections (id) on delete cascade,
    created_at timestamptz not null default now(),
    event_type text not null,
    subject text not null,
    message text not null,
    acknowledged_at timestamptz,
    delivered_at timestamptz,
    delivery_attempts integer not null default 0,
    next_delivery_at timestamptz not null default now(),
    last_delivery_error text
);
create index notifications_by_connection on pgforce.notifications (connection_id, created_at);
create index notifications_undelivered on pgforce.notifications (next_delivery_at) where delivered_at is null;
