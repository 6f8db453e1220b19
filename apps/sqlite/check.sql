-- Reads the database fill.sql wrote and prints the same count and checksums, plus an
-- integrity check. Changes nothing.
.bail on
.mode list
.headers off

SELECT 'integrity ' || group_concat(integrity_check) FROM pragma_integrity_check;
SELECT 'rows ' || count(*) FROM t;
SELECT 'sum_x ' || sum(x) || ' sum_len ' || sum(length(v)) FROM t;
SELECT 'sha3 ' || lower(hex(sha3_query('SELECT x, v FROM t ORDER BY x', 256)));
SELECT 'boots ' || count(*) FROM boots;
