-- What a mapping is doing right now that takes a while (a running Bulk API job), for
-- `pgforce status`; cleared on every state change.
alter table pgforce.mappings add column activity text;
