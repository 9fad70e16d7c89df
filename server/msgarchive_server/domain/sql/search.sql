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
selected AS (
  SELECT m.*
  FROM manifests m CROSS JOIN params p
  WHERE (p.channel IS NULL OR m.channel = p.channel)
    AND (p.campaign_id IS NULL OR m.campaign_id = p.campaign_id)
    AND (p.message_id IS NULL OR m.message_id = p.message_id)
    AND (p.recipient_given IS NULL OR NOT p.recipient_given
         OR m.user_hash = p.hash1 OR m.user_hash = p.hash2 OR m.user_hash = p.hash3)
    AND (p.sent_after IS NULL OR m.sent_at >= p.sent_after)
    AND (p.sent_before IS NULL OR m.sent_at < p.sent_before)
    AND (p.after_sent_at IS NULL OR m.sent_at > p.after_sent_at
         OR (m.sent_at = p.after_sent_at AND m.key > p.after_key))
),
-- Every row of one copy has the same key, channel, campaign, hashes and sent
-- time: the filters above keep all of them or none, so the duplicates are
-- dropped after them, among the few rows selected.
once AS (
  SELECT s.*, row_number() OVER (
           PARTITION BY s.key, s.version_id ORDER BY s.acknowledged_at
         ) AS nth
  FROM selected s
),
found AS (
  SELECT o.sent_at, o.channel, o.campaign_id, o.message_id, o.key, o.version_id,
         o.user_hash, o.sha256, o.size, o.bucket,
         h.key IS NOT NULL AS held
  FROM once o
  LEFT JOIN current_holds h ON h.key = o.key AND h.version_id = o.version_id
  WHERE o.nth = 1
)
SELECT f.*
FROM found f CROSS JOIN params p
WHERE p.held IS NULL OR f.held = p.held
ORDER BY f.sent_at, f.key
