-- Fills /data/test.db (or whichever database the shell opened) with 10,000 rows in one
-- transaction, records this boot in `boots`, and prints a count and checksums that
-- check.sql prints again. Safe to run on every boot: the rows are inserted only once
-- (INSERT OR IGNORE), while `boots` gains one row per run, which shows that the
-- database survived the previous run.
.bail on
.mode list
.headers off

CREATE TABLE IF NOT EXISTS t(
    x INTEGER PRIMARY KEY,
    v TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS boots(n INTEGER PRIMARY KEY);

BEGIN;
WITH RECURSIVE c(x) AS (
    SELECT 1
    UNION ALL
    SELECT x + 1 FROM c WHERE x < 10000
)
INSERT OR IGNORE INTO t(x, v)
SELECT x, printf('row %05d %08x', x, x * 2654435761 % 4294967296) FROM c;
INSERT INTO boots DEFAULT VALUES;
COMMIT;

SELECT 'rows ' || count(*) FROM t;
SELECT 'sum_x ' || sum(x) || ' sum_len ' || sum(length(v)) FROM t;
SELECT 'sha3 ' || lower(hex(sha3_query('SELECT x, v FROM t ORDER BY x', 256)));
SELECT 'boots ' || count(*) FROM boots;
