-- What the last `pgforce reconcile` found for a mapping: counts per kind of drift and when.
alter table pgforce.mappings add column drift jsonb;
