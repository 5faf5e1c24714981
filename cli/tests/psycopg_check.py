"""psycopg 3 against SpanDB's PostgreSQL gateway: what an application does.

Run by cli/tests/pg_drivers.rs with the gateway's host:port; prints OK, or
fails with an assertion or a psycopg error (the test shows the output).

psycopg sends binary parameters with declared types (int2/int8/float8/bool,
numeric with %b, text as unknown), pipelines executemany, prepares statements server-side
after a few executions, and adapts Python lists to arrays. An application
retries a transaction that failed with 40001 (serialization failure).
"""

import datetime
import sys
import threading
import time
import uuid
from decimal import Decimal

import psycopg
from psycopg import errors
from psycopg.types.json import Json, Jsonb


def retried(conn, work):
    """Runs work(cursor, attempt) in a transaction until it commits,
    again on a serialization failure; returns the attempts it took."""
    for attempt in range(1, 11):
        try:
            with conn.transaction():
                work(conn.cursor(), attempt)
            return attempt
        except errors.SerializationFailure:
            continue
    raise AssertionError("no commit in 10 attempts")


host, port = sys.argv[1].rsplit(":", 1)
dsn = f"host={host} port={port} user=root dbname=spandb sslmode=disable connect_timeout=10"

with psycopg.connect(dsn) as conn:
    assert conn.info.server_version >= 150000, conn.info.server_version
    assert conn.info.parameter_status("DateStyle") == "ISO, MDY"
    # The process id of BackendKeyData (what a CancelRequest names).
    assert conn.execute("SELECT pg_backend_pid()").fetchone() == (conn.info.backend_pid,), conn.info.backend_pid
    conn.commit()
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, score FLOAT8, ok BOOL, "
        "small SMALLINT, at TIMESTAMP, raw BYTEA)"
    )
    at = datetime.datetime(2026, 12, 2, 3, 4, 5, 678901)
    cur.execute("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s, %s)", (1, "a", 1.5, True, 7, at, b"\x00\x01"))
    cur.execute("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s, %s)", (2**40, "b", None, False, None, None, None))
    cur.executemany("INSERT INTO t (id, name, score) VALUES (%s, %s, %s)", [(n, f"n{n}", n / 2) for n in range(3, 23)])
    conn.commit()

    # Every type comes back as it went in, in text and in binary results.
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        c.execute("SELECT id, name, score, ok, small, at, raw FROM t WHERE id = %s", (1,))
        assert c.fetchone() == (1, "a", 1.5, True, 7, at, b"\x00\x01"), binary
        c.execute("SELECT count(*), sum(score) FROM t WHERE id > %s AND id < %s", (2, 100))
        assert c.fetchone() == (20, sum(n / 2 for n in range(3, 23))), binary

    # A named (server-side) cursor, as Django's QuerySet.iterator() and
    # SQLAlchemy's stream_results read a large result: DECLARE with a
    # parameter, Describe of the cursor's portal, then FETCH FORWARD in
    # parts, in text and in binary.
    for binary in (False, True):
        with conn.cursor(name="parts", binary=binary) as named:
            named.itersize = 3
            named.execute("SELECT id, name FROM t WHERE id > %s AND id < %s ORDER BY id", (2, 100))
            assert [d.name for d in named.description] == ["id", "name"], named.description
            got = [row for row in named]
        assert got == [(n, f"n{n}") for n in range(3, 23)], (binary, got)
        conn.commit()

    # A scrollable named cursor moved with scroll() (MOVE, negative counts
    # too) and closed by name after a commit (psycopg asks pg_cursors
    # whether a cursor it did not declare itself is still there).
    with conn.cursor(name="scrolled", scrollable=True) as named:
        named.execute("SELECT id FROM t WHERE id < %s ORDER BY id", (10,))
        named.scroll(2)
        assert named.fetchone() == (4,), "the third row (ids 1, 3, 4, ...)"
        named.scroll(-2)
        assert named.fetchone() == (3,)
        named.scroll(0, mode="absolute")
        assert named.fetchmany(2) == [(1,), (3,)]
    conn.commit()

    # A Python list is an array parameter.
    cur.execute("SELECT id FROM t WHERE id = ANY(%s) ORDER BY id", ([1, 3, 2**40],))
    assert [r[0] for r in cur.fetchall()] == [1, 3, 2**40]
    cur.execute("SELECT array_agg(id) FROM t WHERE id < %s", (4,))
    assert sorted(cur.fetchone()[0]) == [1, 3]

    # uuid: Python's UUID as a parameter and a result, in text and in
    # binary (%b sends the parameter binary), and a random key default.
    # (In the block the reads above began: a CREATE TABLE there once
    # outlasted their leases' deadline on a busy machine, 40001.)
    cur.execute("CREATE TABLE u (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), v INT)")
    known = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    cur.execute("INSERT INTO u VALUES (%s, %s)", (known, 1))
    cur.execute("INSERT INTO u (v) VALUES (2) RETURNING id")
    made = cur.fetchone()[0]
    assert isinstance(made, uuid.UUID) and made.version == 4, made
    # An ORM's key: SERIAL (a random bigint here, not a sequence) read
    # back from RETURNING.
    cur.execute("CREATE TABLE s (id SERIAL PRIMARY KEY, name TEXT)")
    cur.execute("INSERT INTO s (name) VALUES (%s) RETURNING id", ("a",))
    key = cur.fetchone()[0]
    assert isinstance(key, int) and key > 0, key
    cur.execute("SELECT name FROM s WHERE id = %s", (key,))
    assert cur.fetchone() == ("a",)
    conn.commit()
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        one = "%b" if binary else "%s"
        c.execute(f"SELECT id, v FROM u WHERE id = {one}", (known,))
        assert c.fetchone() == (known, 1), binary
        c.execute(f"SELECT v FROM u WHERE id = ANY({one}) ORDER BY v", ([known, made],))
        assert [r[0] for r in c.fetchall()] == [1, 2], binary
    conn.commit()

    # timestamptz: an aware datetime goes in with its offset and comes
    # back as the same instant (in UTC, the session's zone), in text and
    # in binary; now() is one.
    cur.execute("CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now())")
    paris = datetime.timezone(datetime.timedelta(hours=1))
    when = datetime.datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=paris)
    cur.execute("INSERT INTO ev VALUES (%s, %s)", (1, when))
    cur.execute("INSERT INTO ev (id) VALUES (2)")
    conn.commit()
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        c.execute("SELECT at FROM ev WHERE id = 1")
        got = c.fetchone()[0]
        assert got == when and got.utcoffset() == datetime.timedelta(0), (binary, got)
        c.execute("SELECT at <= now(), at > %s FROM ev WHERE id = 2", (when,))
        assert c.fetchone() == (True, True), binary
        # interval: a timedelta parameter, and one back.
        step = datetime.timedelta(days=1, hours=2, microseconds=5)
        c.execute("SELECT at + %s, at - %s FROM ev WHERE id = 1", (step, when - step))
        assert c.fetchone() == (when + step, step), binary
        # date: a date parameter, and a timestamptz's day (in UTC).
        day = datetime.date(2026, 12, 2)
        c.execute("SELECT %s + 1, at::date FROM ev WHERE id = 1", (day,))
        assert c.fetchone() == (day + datetime.timedelta(days=1), when.astimezone(datetime.timezone.utc).date()), binary
    conn.commit()

    # numeric: Decimal parameters (psycopg sends them as numeric, binary
    # with %b) and Decimal results, exact, in text and in binary.
    cur.execute("CREATE TABLE ledger (id INT PRIMARY KEY, amount NUMERIC(12,2) NOT NULL, rate NUMERIC)")
    cur.executemany(
        "INSERT INTO ledger VALUES (%s, %b, %s)",
        [(1, Decimal("19.99"), Decimal("0.125")), (2, Decimal("0.01"), Decimal("-7")), (3, Decimal("1000000.005"), None)],
    )
    conn.commit()
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        c.execute("SELECT amount, rate FROM ledger WHERE id = %s", (1,))
        assert c.fetchone() == (Decimal("19.99"), Decimal("0.125")), binary
        c.execute("SELECT sum(amount), avg(amount), 0.1 + 0.2 FROM ledger")
        total, mean, exact = c.fetchone()
        assert (total, exact) == (Decimal("1000020.01"), Decimal("0.3")), (binary, total, exact)
        assert str(mean) == "333340.003333333333", (binary, mean)
        c.execute("SELECT id FROM ledger WHERE amount > %s ORDER BY id", (Decimal("0.01"),))
        assert [r[0] for r in c.fetchall()] == [1, 3], binary
    try:
        cur.execute("INSERT INTO ledger VALUES (%s, %s, NULL)", (4, Decimal("12345678901")))
        raise AssertionError("numeric(12,2) must refuse 11 digits before the point")
    except errors.NumericValueOutOfRange:
        conn.rollback()

    # time: datetime.time parameters (psycopg sends them as time, binary
    # with %b) and results, in text and in binary; a time key.
    cur.execute("CREATE TABLE opening (opens TIME PRIMARY KEY, closes TIME NOT NULL)")
    cur.executemany(
        "INSERT INTO opening VALUES (%s, %b)",
        [(datetime.time(9, 0), datetime.time(12, 30)), (datetime.time(13, 15, 0, 500), datetime.time(23, 59, 59, 999999))],
    )
    conn.commit()
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        c.execute("SELECT opens, closes FROM opening WHERE opens > %s ORDER BY opens", (datetime.time(10, 0),))
        assert c.fetchall() == [(datetime.time(13, 15, 0, 500), datetime.time(23, 59, 59, 999999))], binary
        c.execute("SELECT closes + interval '45 minutes', closes - opens FROM opening WHERE opens = %s", (datetime.time(9),))
        assert c.fetchone() == (datetime.time(13, 15), datetime.timedelta(hours=3, minutes=30)), binary
    conn.commit()

    # jsonb: dicts and lists through psycopg's Jsonb and Json wrappers (in
    # text and binary), read back as Python values; operators with
    # parameters.
    cur.execute("CREATE TABLE profiles (id INT PRIMARY KEY, doc JSONB NOT NULL)")
    doc = {"name": "ann", "tags": ["a", "b"], "score": 2.5, "address": {"city": "Oslo"}, "none": None}
    cur.execute("INSERT INTO profiles VALUES (%s, %s)", (1, Jsonb(doc)))
    cur.execute("INSERT INTO profiles VALUES (%s, %b)", (2, Json({"name": "bob", "tags": []})))
    conn.commit()
    for binary in (False, True):
        c = conn.cursor(binary=binary)
        c.execute("SELECT doc FROM profiles WHERE id = 1")
        assert c.fetchone()[0] == doc, binary
        c.execute("SELECT doc ->> %s, doc -> 'address' ->> 'city' FROM profiles WHERE doc @> %s", ("name", Jsonb({"tags": ["b"]})))
        assert c.fetchall() == [("ann", "Oslo")], binary
        c.execute("SELECT jsonb_agg(doc -> 'name' ORDER BY id) FROM profiles")
        assert c.fetchone()[0] == ["ann", "bob"], binary
    cur.execute("UPDATE profiles SET doc = jsonb_set(doc, '{address,city}', %s) WHERE id = 1", (Jsonb("Bergen"),))
    cur.execute("SELECT doc #>> '{address,city}' FROM profiles WHERE id = 1")
    assert cur.fetchone() == ("Bergen",)
    conn.commit()

    # Prepared server-side after the threshold; still the same answers.
    for _ in range(8):
        cur.execute("SELECT name FROM t WHERE id = %s", (5,), prepare=True)
        assert cur.fetchone() == ("n5",)
    conn.commit()

    # DISCARD ALL (a pooler's reset between clients) resets the session's
    # settings; psycopg forgets its prepared statements on seeing it, and
    # prepares again. (That the gateway frees them: pg_drivers.rs.)
    conn.autocommit = True
    conn.execute("SET application_name = 'before'")
    conn.execute("DISCARD ALL")
    assert conn.execute("SHOW application_name").fetchone() == ("",)
    for _ in range(3):
        assert conn.execute("SELECT name FROM t WHERE id = %s", (5,), prepare=True).fetchone() == ("n5",)
    conn.autocommit = False

    # Errors are typed by SQLSTATE; a failed block is rolled back whole.
    try:
        cur.execute("INSERT INTO t (id) VALUES (%s)", (1,))
        raise AssertionError("a duplicate key must fail")
    except errors.UniqueViolation:
        conn.rollback()
    try:
        with conn.transaction():
            cur.execute("UPDATE t SET name = 'gone' WHERE id = 1")
            cur.execute("SELECT 1 / 0")
        raise AssertionError("division by zero must fail")
    except errors.DivisionByZero:
        pass
    cur.execute("SELECT name FROM t WHERE id = 1")
    assert cur.fetchone() == ("a",)
    try:
        cur.execute("SELECT * FROM nonesuch")
        raise AssertionError("an unknown table must fail")
    except errors.UndefinedTable:
        conn.rollback()

    # Nested transactions are savepoints: an inner block's error is undone
    # and the outer block goes on (an ORM's nested atomic block does this).
    with conn.transaction():
        cur.execute("UPDATE t SET name = 'outer' WHERE id = 1")
        try:
            with conn.transaction():
                cur.execute("UPDATE t SET name = 'inner' WHERE id = 4")
                cur.execute("INSERT INTO t (id) VALUES (%s)", (1,))
            raise AssertionError("a duplicate key must fail")
        except errors.UniqueViolation:
            pass
        with conn.transaction():
            cur.execute("UPDATE t SET name = 'kept' WHERE id = 5")
    cur.execute("SELECT id, name FROM t WHERE id IN (1, 4, 5) ORDER BY id")
    assert cur.fetchall() == [(1, "outer"), (4, "n4"), (5, "kept")]
    conn.commit()

    # Foreign keys as Django declares them (DEFERRABLE INITIALLY DEFERRED):
    # a row may reference one the transaction inserts later; COMMIT checks,
    # and fails typed if a key is missing; SET CONSTRAINTS ALL IMMEDIATE
    # checks at once (Django's check_constraints()).
    cur.execute("CREATE TABLE author (id BIGSERIAL PRIMARY KEY, name TEXT)")
    cur.execute(
        'CREATE TABLE book (id BIGSERIAL PRIMARY KEY, author_id BIGINT NOT NULL, CONSTRAINT "book_author_id_fk" '
        'FOREIGN KEY ("author_id") REFERENCES "author" ("id") DEFERRABLE INITIALLY DEFERRED)'
    )
    conn.commit()
    cur.execute("INSERT INTO book (author_id) VALUES (%s)", (7,))
    cur.execute("INSERT INTO author (id, name) VALUES (%s, %s)", (7, "ann"))
    conn.commit()
    cur.execute("INSERT INTO book (author_id) VALUES (%s)", (8,))
    try:
        conn.commit()
        raise AssertionError("a book of a missing author must fail at COMMIT")
    except errors.ForeignKeyViolation:
        pass
    cur.execute("INSERT INTO book (author_id) VALUES (%s)", (9,))
    try:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        raise AssertionError("SET CONSTRAINTS ALL IMMEDIATE checks what was put off")
    except errors.ForeignKeyViolation:
        conn.rollback()
    cur.execute("SELECT count(*) FROM book")
    assert cur.fetchone() == (1,)
    try:
        cur.execute("DELETE FROM author WHERE id = 7")
        conn.commit()
        raise AssertionError("an author with a book cannot go")
    except errors.ForeignKeyViolation:
        pass
    cur.execute("DROP TABLE book")
    cur.execute("DROP TABLE author")
    conn.commit()

    # Pipeline mode: many statements in flight, one sync.
    with conn.pipeline():
        for n in range(100, 110):
            cur.execute("INSERT INTO t (id, name) VALUES (%s, %s)", (n, str(n)))
    conn.commit()
    cur.execute("SELECT count(*) FROM t WHERE id >= 100 AND id < 200")
    assert cur.fetchone() == (10,)
    conn.commit()

    # Autocommit and several statements in one simple query.
    conn.autocommit = True
    cur.execute("UPDATE t SET ok = true WHERE id = 3; SELECT ok FROM t WHERE id = 3")
    assert cur.statusmessage == "UPDATE 1" and cur.nextset()
    assert cur.fetchone() == (True,)

    # A serialization failure (40001), retried: the younger of two
    # transactions writing one row is wounded by the older (wound-wait);
    # the application runs it again and it commits.
    cur.execute("CREATE TABLE acct (id INT PRIMARY KEY, v INT)")
    cur.execute("INSERT INTO acct VALUES (1, 0)")
    older = psycopg.connect(dsn)
    older.execute("SELECT v FROM acct WHERE id = 2")  # its transaction starts first

    def add_one(c, attempt):
        c.execute("UPDATE acct SET v = v + 1 WHERE id = 1")
        if attempt == 1:
            older.execute("UPDATE acct SET v = v + 10 WHERE id = 1")  # wounds this one
            older.commit()

    younger = psycopg.connect(dsn)
    assert retried(younger, add_one) == 2
    cur.execute("SELECT v FROM acct WHERE id = 1")
    assert cur.fetchone() == (11,)
    older.close()
    younger.close()

    # Advisory locks, as migration tools take them: one connection's lock
    # is refused to another (whatever transaction either is in) until
    # the first unlocks it, or goes away.
    first = psycopg.connect(dsn, autocommit=True)
    second = psycopg.connect(dsn, autocommit=True)
    first.execute("SELECT pg_advisory_lock(%s)", (72707369,))
    assert second.execute("SELECT pg_try_advisory_lock(%s)", (72707369,)).fetchone() == (False,)
    assert first.execute("SELECT pg_advisory_unlock(%s)", (72707369,)).fetchone() == (True,)
    assert second.execute("SELECT pg_try_advisory_lock(%s)", (72707369,)).fetchone() == (True,)
    first.execute("SELECT pg_advisory_lock(1, 2)")
    second.close()
    # The second's lock went with it: the first waits for nothing.
    first.execute("SELECT pg_advisory_lock(%s)", (72707369,))
    assert first.execute("SELECT pg_advisory_unlock(%s)", (72707369,)).fetchone() == (True,)
    first.close()
    third = psycopg.connect(dsn, autocommit=True)
    # (Well inside the lease, 20 s: given back when the connection
    # closed, not left to expire.)
    deadline = time.monotonic() + 10
    while not third.execute("SELECT pg_try_advisory_lock(1, 2)").fetchone()[0]:
        assert time.monotonic() < deadline, "a closed connection's lock was not given back"
        time.sleep(0.05)
    third.close()

    # Deep and long expressions are answered or refused (54000), and the
    # server lives on: 90 nested parentheses overflowed a connection
    # thread's stack (and aborted the server) before its stack was sized
    # for them; 40,000 ORs in a row nest as deep without any.
    deep = "SELECT " + "(" * 90 + "1" + ")" * 90
    assert conn.execute(deep).fetchone() == (1,)
    try:
        conn.execute("SELECT 1 WHERE " + " OR ".join(["1 = 2"] * 40000))
        raise AssertionError("40,000 ORs in a row must be refused")
    except errors.ProgramLimitExceeded:
        conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)
    conn.commit()

    # What psycopg asks the catalog (TypeInfo), answered from pg_type.
    info = psycopg.types.TypeInfo.fetch(conn, "int8")
    assert info is not None and info.oid == 20 and info.array_oid == 1016, info
    cur.execute("DROP TABLE t")
    cur.execute("DROP TABLE acct")
    cur.execute("DROP TABLE s")

# A session zone: set at startup (libpq's options, as PGOPTIONS sets
# them), then by SET. Text parameters are read in the zone in force when
# they are bound (a SET just before included); timestamptz results carry
# the zone's offset, and are the same instants.
utc = datetime.timezone.utc
with psycopg.connect(dsn + " options='-c timezone=Asia/Tokyo'") as conn:
    assert conn.execute("SHOW timezone").fetchone() == ("Asia/Tokyo",)
    assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo", conn.info.parameter_status("TimeZone")
    at = conn.execute("SELECT timestamptz '2026-01-01 00:00+00'").fetchone()[0]
    assert at.utcoffset() == datetime.timedelta(hours=9) and at == datetime.datetime(2026, 1, 1, tzinfo=utc), at
    conn.execute("SET TIME ZONE 'America/New_York'")
    # The server says so, as PostgreSQL does (a ParameterStatus).
    assert conn.info.parameter_status("TimeZone") == "America/New_York", conn.info.parameter_status("TimeZone")
    at = conn.execute("SELECT %s::text::timestamptz", ("2026-01-01 00:00",)).fetchone()[0]
    assert at == datetime.datetime(2026, 1, 1, 5, tzinfo=utc), at
    conn.execute("CREATE TABLE zoned (id INT PRIMARY KEY, at TIMESTAMPTZ)")
    conn.commit()
    # Prepared once, then bound again after the zone changed: no Parse
    # comes between the SET and the Bind.
    insert = "INSERT INTO zoned VALUES (%s, %s)"
    conn.execute(insert, (1, "2026-07-01 12:00"), prepare=True)
    conn.execute("SET TIME ZONE 'Asia/Tokyo'")
    conn.execute(insert, (2, "2026-07-01 12:00"), prepare=True)
    conn.execute("SET TIME ZONE 'America/New_York'")
    conn.commit()
    rows = conn.execute("SELECT id, at AT TIME ZONE 'UTC' FROM zoned ORDER BY id").fetchall()
    assert rows == [(1, datetime.datetime(2026, 7, 1, 16)), (2, datetime.datetime(2026, 7, 1, 3))], rows
    assert conn.execute("SELECT at::date FROM zoned WHERE at >= %s::date", ("2026-07-01",)).fetchall() == [
        (datetime.date(2026, 7, 1),),
    ]
    conn.commit()
    conn.execute("DROP TABLE zoned")
    conn.commit()
    # RESET goes back to the zone given at startup, and says so.
    conn.execute("RESET timezone")
    assert conn.execute("SHOW timezone").fetchone() == ("Asia/Tokyo",)
    assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo", conn.info.parameter_status("TimeZone")
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    conn.autocommit = True
    conn.execute("DISCARD ALL")
    assert conn.execute("SHOW timezone").fetchone() == ("Asia/Tokyo",)
    conn.autocommit = False

    # Django's AlterField, as its migrations send it (one transaction per
    # migration): a longer CharField made NOT NULL in one ALTER TABLE, an
    # IntegerField made a BigIntegerField, a TextField an integer one.
    with conn.transaction():
        conn.execute(
            'CREATE TABLE "app_book" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, '
            '"title" varchar(10) NULL, "pages" integer NOT NULL, "isbn" text NOT NULL)'
        )
        conn.execute('CREATE INDEX "app_book_title_like" ON "app_book" ("title" varchar_pattern_ops)')
    conn.execute("INSERT INTO app_book (title, pages, isbn) VALUES (%s, %s, %s)", ("Dune", 412, "441013597"))
    conn.commit()
    with conn.transaction():
        conn.execute(
            'ALTER TABLE "app_book" ALTER COLUMN "title" TYPE varchar(40) USING "title"::varchar(40), '
            'ALTER COLUMN "title" SET NOT NULL'
        )
        conn.execute('ALTER TABLE "app_book" ALTER COLUMN "pages" TYPE bigint USING "pages"::bigint')
        conn.execute('ALTER TABLE "app_book" ALTER COLUMN "isbn" TYPE bigint USING "isbn"::bigint')
    book = "SELECT title, pages, isbn, pg_typeof(pages)::text, pg_typeof(isbn)::text FROM app_book WHERE title = %s"
    row = conn.execute(book, ("Dune",)).fetchone()
    assert row == ("Dune", 412, 441013597, "bigint", "bigint"), row
    conn.commit()
    # One that fails part-way changes nothing.
    try:
        with conn.transaction():
            conn.execute('ALTER TABLE "app_book" ADD COLUMN "year" integer NULL, ALTER COLUMN "title" TYPE varchar(2)')
        raise AssertionError("a title longer than 2 characters was taken")
    except errors.StringDataRightTruncation:
        pass
    columns = "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'app_book'"
    rows = sorted(conn.execute(columns).fetchall())
    assert rows == [("id", "bigint"), ("isbn", "bigint"), ("pages", "bigint"), ("title", "character varying")], rows
    conn.execute("DROP TABLE app_book")
    conn.commit()

    # Sequences: connections taking values at once never get the same
    # one, and a value taken in a transaction that rolled back is not
    # given again (each nextval is a transaction of its own).
    conn.execute("CREATE SEQUENCE ticket")
    conn.commit()

    def take(values):
        with psycopg.connect(dsn, autocommit=True) as c:
            for _ in range(15):
                values.append(c.execute("SELECT nextval('ticket')").fetchone()[0])

    def take_at_once():
        """15 values from each of three connections at once, by connection."""
        taken = [[] for _ in range(3)]
        workers = [threading.Thread(target=take, args=(t,)) for t in taken]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return taken

    taken = take_at_once()
    every = sorted(v for t in taken for v in t)
    assert every == list(range(1, 46)), every
    assert all(t == sorted(t) for t in taken), taken
    assert conn.execute("SELECT nextval('ticket')").fetchone() == (46,)
    conn.rollback()
    assert conn.execute("SELECT nextval('ticket'), currval('ticket')").fetchone() == (47, 47)
    conn.execute("DROP SEQUENCE ticket")
    # With CACHE, each connection gives values it set aside: never one
    # another gave, though not in one order across them.
    conn.execute("CREATE SEQUENCE ticket CACHE 4")
    conn.commit()
    taken = take_at_once()
    every = [v for t in taken for v in t]
    assert len(every) == 45 and len(set(every)) == 45, sorted(every)
    assert all(t == sorted(t) for t in taken), taken
    conn.execute("DROP SEQUENCE ticket")
    conn.commit()

    # A job queue: workers take jobs with FOR UPDATE SKIP LOCKED (as
    # Solid Queue, Oban and river do), each in its own transaction, at
    # once. Every job is done, by exactly one worker.
    conn.execute("CREATE TABLE jobs (id INT PRIMARY KEY, priority INT NOT NULL, state TEXT NOT NULL, worker INT)")
    conn.execute("CREATE INDEX jobs_ready ON jobs (state, priority)")
    with conn.cursor() as c:
        c.executemany("INSERT INTO jobs VALUES (%s, %s, 'queued', NULL)", [(n, n % 4) for n in range(1, 31)])
    conn.commit()

    def work(worker, done):
        with psycopg.connect(dsn) as c:
            while True:
                taken = []

                def take_one(cur, attempt):
                    taken.clear()
                    cur.execute(
                        "SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority, id LIMIT 1 "
                        "FOR UPDATE SKIP LOCKED"
                    )
                    row = cur.fetchone()
                    if row is not None:
                        cur.execute("UPDATE jobs SET state = 'done', worker = %s WHERE id = %s", (worker, row[0]))
                        taken.append(row[0])

                retried(c, take_one)
                if taken:
                    done.extend(taken)
                    continue
                # Nothing free: done, or the rest are held by others now.
                # (The count's locks may be wounded by a worker's UPDATE.)
                left = []
                count = "SELECT count(*) FROM jobs WHERE state = 'queued'"
                retried(c, lambda cur, attempt: left.append(cur.execute(count).fetchone()[0]))
                if left[-1] == 0:
                    return
                time.sleep(0.01)

    def worker(w, done, failures):
        try:
            work(w, done)
        except Exception as e:  # the main thread fails for it
            failures.append(e)

    done, failures = [[] for _ in range(3)], []
    workers = [threading.Thread(target=worker, args=(w, done[w], failures)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, failures
    every = sorted(j for d in done for j in d)
    assert every == list(range(1, 31)), done
    recorded = conn.execute("SELECT worker, count(*) FROM jobs WHERE state = 'done' GROUP BY worker").fetchall()
    assert sorted(recorded) == sorted((w, len(d)) for w, d in enumerate(done) if d), (recorded, done)
    conn.commit()
    conn.execute("DROP TABLE jobs")
    conn.commit()

print("OK")
