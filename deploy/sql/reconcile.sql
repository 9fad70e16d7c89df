-- Reconcile a bucket against its msgarchive manifests, where the data lives.
--
-- One query, standard SQL, for Athena/Trino and DuckDB, over two tables:
--   inventory  an S3 Inventory report of the bucket (Parquet, with the
--              optional fields ETag and the Object Lock ones; "all versions")
--   manifests  every manifest (_msgarchive/manifests/*/*/*/*/*/manifest.parquet)
-- and one parameter, the store's prefix, written below as 'acme/' (use ''
-- for none). It finds what `msgarchive verify` finds in its reconciliation:
-- copy_missing, copy_altered, copy_unlisted, copy_under_locked; one row each.
-- It trusts the manifests: check their chain of signed heads first
-- (`msgarchive verify` does both; at billions of copies, run this for the
-- reconciliation and verify's chain check for the heads).
WITH copies AS (
  SELECT key, coalesce(version_id, '') AS version_id, is_latest, is_delete_marker,
         e_tag, object_lock_mode, object_lock_retain_until_date
  FROM inventory
  WHERE key LIKE 'acme/sent_messages/%'
),
listed AS (
  SELECT DISTINCT key, version_id, e_tag, object_lock_mode, object_lock_retain_until_date
  FROM manifests
),
present AS (
  SELECT c.*, l.e_tag AS listed_e_tag, l.object_lock_mode AS listed_mode,
         l.object_lock_retain_until_date AS listed_until
  FROM listed l
  JOIN copies c ON c.key = l.key AND c.version_id = l.version_id AND NOT c.is_delete_marker
)
SELECT 'copy_missing' AS kind, l.key, 'version ' || l.version_id || ' is gone' AS detail
FROM listed l
WHERE NOT EXISTS (
  SELECT 1 FROM copies c
  WHERE c.key = l.key AND c.version_id = l.version_id AND NOT c.is_delete_marker
)
UNION ALL
SELECT 'copy_missing', c.key, 'a delete marker hides it'
FROM copies c
WHERE c.is_latest AND c.is_delete_marker AND c.key IN (SELECT key FROM listed)
UNION ALL
SELECT 'copy_altered', p.key, 'its etag differs from the manifest''s'
FROM present p
WHERE p.e_tag <> p.listed_e_tag
UNION ALL
SELECT 'copy_altered', c.key, 'version ' || c.version_id || ' was written over it'
FROM copies c
WHERE NOT c.is_delete_marker
  AND c.key IN (SELECT key FROM listed)
  AND NOT EXISTS (SELECT 1 FROM listed l WHERE l.key = c.key AND l.version_id = c.version_id)
UNION ALL
SELECT DISTINCT 'copy_unlisted', c.key, 'no manifest lists this object'
FROM copies c
WHERE c.key NOT IN (SELECT key FROM listed)
UNION ALL
SELECT 'copy_under_locked', p.key, 'locked weaker or shorter than acknowledged'
FROM present p
WHERE p.listed_mode <> '' AND (
  p.object_lock_mode IS NULL
  OR (p.listed_mode = 'COMPLIANCE' AND p.object_lock_mode <> 'COMPLIANCE')
  OR p.object_lock_retain_until_date < p.listed_until
)
ORDER BY kind, key
