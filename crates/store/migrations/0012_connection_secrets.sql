-- Salesforce secrets of connections created through the management API (password,
-- client secret, refresh token), sealed with AES-256-GCM under the operator's key:
-- `secrets` is nonce || ciphertext || tag, `secrets_key` names the key that sealed it (a
-- fingerprint, never the key), so a process with another key says so instead of failing
-- to decrypt. Connections declared in a configuration file keep their secrets there.
alter table pgforce.connections add column secrets bytea, add column secrets_key text;
