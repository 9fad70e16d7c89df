-- The copies under a legal hold now, as the hold log records it.
--
-- Standard SQL, for DuckDB (what `msgarchive search` runs) and Athena/Trino,
-- over one table (or view):
--   hold_copies  one row for each copy each hold record names: the record's
--                sequence and action (hold_on or hold_off), the copy's key and
--                version_id (deploy/sql/tables.sql defines it over the records)
-- A copy is held when the last record that names it placed the hold.
SELECT key, version_id
FROM (
  SELECT key, version_id, action,
         row_number() OVER (PARTITION BY key, version_id ORDER BY sequence DESC) AS nth
  FROM hold_copies
) last_action
WHERE nth = 1 AND action = 'hold_on'
