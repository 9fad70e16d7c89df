-- An S3 Inventory report's copies, as manifest rows: what `search.sql` reads
-- as `manifests` when a store has no manifests but has an inventory.
--
-- Standard SQL (regexp_extract and date_diff as DuckDB and Athena/Trino both
-- have them), over one table:
--   inventory  an S3 Inventory report (Parquet; "all versions"), as in
--              deploy/sql/tables.sql
-- The key layout gives the channel, campaign, user hash and message id; the
-- sent time is the store's write time (within seconds of `sent_at`); there is
-- no SHA-256. Every row has the key's prefix in `prefix` ('' for none): keep
-- one store's, e.g. WHERE prefix = 'acme/'. Delete markers are left out; a
-- version they hide is still a stored copy and is kept.
SELECT prefix, bucket, key, version_id, size, e_tag, '' AS sha256, message_id,
       CASE folder
         WHEN 'Push' THEN 'push'
         WHEN 'Email' THEN 'email'
         WHEN 'Sms' THEN 'sms'
         WHEN 'WhatsApp' THEN 'whatsapp'
       END AS channel,
       campaign_id, user_hash, sent_at,
       coalesce(object_lock_mode, '') AS object_lock_mode,
       object_lock_retain_until_date,
       sent_at AS acknowledged_at
FROM (
  SELECT bucket, key, coalesce(version_id, '') AS version_id, size, coalesce(e_tag, '') AS e_tag,
         object_lock_mode, object_lock_retain_until_date,
         coalesce(regexp_extract(key, '^(.*/)?sent_messages/([A-Za-z]+)/([0-9]{6})/([A-Za-z0-9_-]{1,128})/([0-9a-f]{32})/([0-9a-f]{64})[.]json[.]lz4$', 1), '') AS prefix,
         regexp_extract(key, '^(.*/)?sent_messages/([A-Za-z]+)/([0-9]{6})/([A-Za-z0-9_-]{1,128})/([0-9a-f]{32})/([0-9a-f]{64})[.]json[.]lz4$', 2) AS folder,
         regexp_extract(key, '^(.*/)?sent_messages/([A-Za-z]+)/([0-9]{6})/([A-Za-z0-9_-]{1,128})/([0-9a-f]{32})/([0-9a-f]{64})[.]json[.]lz4$', 4) AS campaign_id,
         regexp_extract(key, '^(.*/)?sent_messages/([A-Za-z]+)/([0-9]{6})/([A-Za-z0-9_-]{1,128})/([0-9a-f]{32})/([0-9a-f]{64})[.]json[.]lz4$', 5) AS user_hash,
         regexp_extract(key, '^(.*/)?sent_messages/([A-Za-z]+)/([0-9]{6})/([A-Za-z0-9_-]{1,128})/([0-9a-f]{32})/([0-9a-f]{64})[.]json[.]lz4$', 6) AS message_id,
         date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00 UTC', last_modified_date) AS sent_at
  FROM inventory
  WHERE NOT is_delete_marker
) copies
WHERE folder IN ('Push', 'Email', 'Sms', 'WhatsApp')
