-- The tables msgarchive's queries read, for Athena (Trino's Hive connector
-- takes the same with its own property names). Replace, before running:
--   ARCHIVE     the archive's bucket          PREFIX     the store's prefix ('acme/', or '')
--   INVENTORY   the S3 Inventory destination, down to its config id
--   ANALYTICS   a bucket (or folder) of your own, for the list of manifest files
-- The queries beside this file, each standard SQL that DuckDB runs too:
--   search.sql            a search (msgarchive search), over manifests and current_holds
--   reconcile.sql         verify's reconciliation, over inventory and manifests
--   inventory_copies.sql  an inventory's copies as manifest rows: search without manifests
--   current_holds.sql     the held copies, over hold_copies

-- An S3 Inventory report of the archive's bucket: Parquet, "all versions", with
-- the optional fields ETag, Object Lock retain-until date, mode and legal hold.
-- S3 writes its Hive-compatible folder (hive/dt=.../symlink.txt) once a report;
-- partition projection finds the reports without a crawler.
CREATE EXTERNAL TABLE inventory (
  bucket string,
  key string,
  version_id string,
  is_latest boolean,
  is_delete_marker boolean,
  size bigint,
  last_modified_date timestamp,
  e_tag string,
  storage_class string,
  object_lock_retain_until_date timestamp,
  object_lock_mode string,
  object_lock_legal_hold_status string
)
PARTITIONED BY (dt string)
ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://INVENTORY/hive/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd-HH-mm',
  'projection.dt.range' = '2024-01-01-00-00,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'HOURS'
);

-- The signed manifests. Their hour folders also hold the signed heads (JSON),
-- which a Parquet table over the folders would try to read: the table reads a
-- list of the manifest files instead (a symlink table, one s3:// path a line),
-- which the UNLOAD below writes from the newest inventory. Rerun the UNLOAD
-- after each inventory report; hours sealed since are not in it (msgarchive
-- search reads the bucket itself, and has them).
CREATE EXTERNAL TABLE manifests (
  bucket string,
  key string,
  version_id string,
  size bigint,
  e_tag string,
  sha256 string,
  message_id string,
  channel string,
  campaign_id string,
  user_hash string,
  sent_at bigint,
  object_lock_mode string,
  object_lock_retain_until_date timestamp,
  acknowledged_at bigint
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://ANALYTICS/msgarchive/manifest-files/';

UNLOAD (
  SELECT 's3://' || bucket || '/' || key
  FROM inventory
  WHERE dt = (SELECT max(dt) FROM inventory)
    AND key LIKE 'PREFIX_msgarchive/manifests/%'
    AND regexp_like(key, '/manifest([.][0-9]+)?[.]parquet$')
    AND is_latest AND NOT is_delete_marker
)
TO 's3://ANALYTICS/msgarchive/manifest-files/'
WITH (format = 'TEXTFILE', compression = 'NONE');

-- The hold log: one signed record a file, each one line of JSON. The records'
-- other fields (previous, signature, ...) are there too; these are what the
-- queries need. `msgarchive verify` checks their chain; these tables trust it.
CREATE EXTERNAL TABLE hold_records (
  sequence bigint,
  action string,
  reason string,
  at string,
  copies array<struct<key: string, version_id: string>>
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION 's3://ARCHIVE/PREFIX_msgarchive/holds/';

-- One row for each copy a hold record names: what current_holds.sql reads.
CREATE OR REPLACE VIEW hold_copies AS
SELECT r.sequence, r.action, c.key, c.version_id
FROM hold_records r
CROSS JOIN UNNEST(r.copies) AS c (key, version_id);

-- The held copies now: current_holds.sql as a view, for search.sql.
CREATE OR REPLACE VIEW current_holds AS
SELECT key, version_id
FROM (
  SELECT key, version_id, action,
         row_number() OVER (PARTITION BY key, version_id ORDER BY sequence DESC) AS nth
  FROM hold_copies
) last_action
WHERE nth = 1 AND action = 'hold_on';
