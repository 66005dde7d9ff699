-- Fenced leases: every lease carries a token that grows with each new holder. Work done
-- under a lease commits only while the lease still carries the token it was started with,
-- so a holder that lost its lease (frozen, partitioned) can commit nothing.
create sequence pgforce.lease_tokens;
alter table pgforce.leases add column token bigint not null default nextval('pgforce.lease_tokens');
