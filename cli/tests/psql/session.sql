-- A psql session: tables, rows, \copy in and out (text and CSV), the describe commands,
-- and an error in a transaction block. Run with `psql -X -a -f -`; the
-- output is compared with session.expected.
CREATE TABLE fruit (id INT PRIMARY KEY, name TEXT NOT NULL, price FLOAT8, note VARCHAR(20) DEFAULT 'fresh');
CREATE INDEX fruit_by_name ON fruit (name);
INSERT INTO fruit VALUES (1, 'apple', 1.5, 'red'), (2, 'banana', 0.25, NULL);
\copy fruit (id, name, price) from stdin
3	cherry	4
4	date with\ttab	\N
\.
SELECT * FROM fruit ORDER BY id;
\dt
\d fruit
\di
\copy fruit to stdout
\copy (SELECT name, price * 2 AS double FROM fruit WHERE price IS NOT NULL ORDER BY id) to stdout
BEGIN;
UPDATE fruit SET price = 0 WHERE id = 1;
SELECT 1 / 0;
SELECT * FROM fruit;
ROLLBACK;
SELECT id, price FROM fruit WHERE id = 1;
INSERT INTO fruit VALUES (1, 'again', 1, NULL);
SELECT count(*) FROM fruit;
\copy fruit (id, name, price, note) from stdin with (format csv, header)
id,name,price,note
5,"elder, berry",2.5,
6,"fig ""green""",,"two
lines"
\.
\copy (SELECT id, name, price, note FROM fruit WHERE id >= 5 ORDER BY id) to stdout with (format csv, header)
\copy (SELECT id, note IS NULL AS no_note FROM fruit WHERE id >= 5 ORDER BY id) to stdout csv
CREATE TABLE basket (id INT PRIMARY KEY, fruit_id INT REFERENCES fruit ON DELETE CASCADE, qty INT CHECK (qty > 0));
INSERT INTO basket VALUES (1, 5, 2), (2, 6, 1);
INSERT INTO basket VALUES (3, 99, 1);
\d basket
\d fruit
DELETE FROM fruit WHERE id = 5;
SELECT id, fruit_id, qty FROM basket;
