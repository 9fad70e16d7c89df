-- Search the archive's copies: the rows of every manifest that a search selects.
--
-- One query, standard SQL, for DuckDB (what `msgarchive search` runs) and for
-- Athena/Trino at billions of copies, over two tables:
--   manifests      every manifest's rows (_msgarchive/manifests/**/manifest*.parquet)
--   current_holds  (key, version_id) of each copy under a legal hold now, as the
--                  hold log (_msgarchive/holds/) records it
-- and twelve positional parameters, each NULL when the search does not filter
-- on it, in this order:
--   channel, campaign_id, message_id,
--   three user hashes (a recipient as the key hashes it, per channel's rules;
--   up to three identities: as written, as an email address, as a number),
--   sent_after (epoch ms, inclusive), sent_before (epoch ms, exclusive),
--   held (true: held only, false: not held),
--   after_sent_at, after_key (a page's last row: results continue after it),
--   recipient_given (true when the three hashes apply).
-- A copy acknowledged twice (a retry that found it stored) has two rows; it is
-- answered once. Rows come in sent time order, then by key.
WITH params AS (
  SELECT CAST(? AS VARCHAR) AS channel,
         CAST(? AS VARCHAR) AS campaign_id,
         CAST(? AS VARCHAR) AS message_id,
         CAST(? AS VARCHAR) AS hash1,
         CAST(? AS VARCHAR) AS hash2,
         CAST(? AS VARCHAR) AS hash3,
         CAST(? AS BIGINT) AS sent_after,
         CAST(? AS BIGINT) AS sent_before,
         CAST(? AS BOOLEAN) AS held,
         CAST(? AS BIGINT) AS after_sent_at,
         CAST(? AS VARCHAR) AS after_key,
         CAST(? AS BOOLEAN) AS recipient_given
),
rows AS (
  SELECT m.*, row_number() OVER (
           PARTITION BY m.key, m.version_id ORDER BY m.acknowledged_at
         ) AS nth
  FROM manifests m
),
found AS (
  SELECT r.sent_at, r.channel, r.campaign_id, r.message_id, r.key, r.version_id,
         r.user_hash, r.sha256, r.size, r.bucket,
         h.key IS NOT NULL AS held
  FROM rows r
  LEFT JOIN current_holds h ON h.key = r.key AND h.version_id = r.version_id
  WHERE r.nth = 1
)
SELECT f.*
FROM found f CROSS JOIN params p
WHERE (p.channel IS NULL OR f.channel = p.channel)
  AND (p.campaign_id IS NULL OR f.campaign_id = p.campaign_id)
  AND (p.message_id IS NULL OR f.message_id = p.message_id)
  AND (p.recipient_given IS NULL OR NOT p.recipient_given
       OR f.user_hash = p.hash1 OR f.user_hash = p.hash2 OR f.user_hash = p.hash3)
  AND (p.sent_after IS NULL OR f.sent_at >= p.sent_after)
  AND (p.sent_before IS NULL OR f.sent_at < p.sent_before)
  AND (p.held IS NULL OR f.held = p.held)
  AND (p.after_sent_at IS NULL OR f.sent_at > p.after_sent_at
       OR (f.sent_at = p.after_sent_at AND f.key > p.after_key))
ORDER BY f.sent_at, f.key
