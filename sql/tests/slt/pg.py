#!/usr/bin/env python3
"""Runs sqllogictest files against PostgreSQL, as engine "postgres", to
check that their expected results are PostgreSQL's (see tests/slt.rs).

usage: pg.py check FILE...   report where PostgreSQL disagrees with a file
       pg.py fill FILE...    write PostgreSQL's rows under each query

Needs psycopg2 and a PostgreSQL 15 server whose database cluster uses
UTF-8 and the C (or C.UTF-8) collation, reached through PGHOST (a socket
directory or host) and PGPORT. Each file runs in a fresh database named
slt_<file>. Records with `skipif postgres`, or `onlyif` another engine,
are skipped. A dev tool: CI does not run it.
"""
import os
import re
import sys

import psycopg2
import psycopg2.extensions as ext

DSN = dict(host=os.environ.get("PGHOST", "/tmp"), port=int(os.environ.get("PGPORT", "5432")), user=os.environ.get("PGUSER", "postgres"))
LABEL = "postgres"

INT_OIDS = {20, 21, 23}
FLOAT_OIDS = {700, 701, 1700}


def raw_types(conn):
    cur = conn.cursor()
    cur.execute("SELECT oid FROM pg_type")
    oids = tuple(r[0] for r in cur.fetchall())
    t = ext.new_type(oids, "RAW", lambda v, c: v)
    ext.register_type(t, conn)


def cell(v):
    if v is None:
        return "NULL"
    if v == "":
        return "(empty)"
    return v


def norm(s):
    return " ".join(s.split())


def type_char(oid):
    if oid in INT_OIDS:
        return "I"
    if oid in FLOAT_OIDS:
        return "R"
    return "T"


class Db:
    def __init__(self, name):
        self.name = name
        admin = psycopg2.connect(dbname="postgres", **DSN)
        admin.autocommit = True
        c = admin.cursor()
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        self.conns = {}

    def conn(self, cname):
        if cname not in self.conns:
            c = psycopg2.connect(dbname=self.name, **DSN)
            c.autocommit = True
            raw_types(c)
            self.conns[cname] = c
        return self.conns[cname]

    def run(self, cname, sql):
        """-> ("rows", types, rows) | ("count", n) | ("error", code, message)"""
        cur = self.conn(cname).cursor()
        try:
            cur.execute(sql)
        except psycopg2.Error as e:
            return ("error", e.pgcode, (e.pgerror or str(e)).strip())
        if cur.description is None:
            return ("count", cur.rowcount if cur.rowcount >= 0 else 0)
        types = "".join(type_char(d.type_code) for d in cur.description)
        rows = [[cell(v) for v in r] for r in cur.fetchall()]
        return ("rows", types, rows)


def skipped(conds):
    for kind, label in conds:
        if kind == "skipif" and label == LABEL:
            return True
        if kind == "onlyif" and label != LABEL:
            return True
    return False


def error_matches(spec, code, message):
    spec = spec.strip()
    if spec == "":
        return True
    m = re.fullmatch(r"\(([0-9A-Z]{5})\)", spec)
    if m:
        return m.group(1) == code
    first = message.splitlines()[0] if message else ""
    first = re.sub(r"^ERROR:\s*", "", first)
    return re.search(spec, f"{code}: {first}") is not None


def process(path, mode):
    lines = open(path).read().split("\n")
    out = []
    problems = []
    db = Db("slt_" + os.path.splitext(os.path.basename(path))[0])
    i = 0
    conds = []
    cname = "default"
    nq = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s == "" :
            conds = []
            cname = "default"
            out.append(line)
            i += 1
            continue
        if s.startswith("#"):
            out.append(line)
            i += 1
            continue
        w = s.split()
        if w[0] in ("skipif", "onlyif"):
            conds.append((w[0], w[1]))
            out.append(line)
            i += 1
            continue
        if w[0] == "connection":
            cname = w[1]
            out.append(line)
            i += 1
            continue
        if w[0] == "halt":
            out.extend(lines[i:])
            break
        if w[0] in ("statement", "query"):
            header = line
            lineno = i + 1
            out.append(line)
            i += 1
            sql = []
            while i < len(lines) and lines[i].strip() != "" and lines[i].strip() != "----":
                sql.append(lines[i])
                out.append(lines[i])
                i += 1
            sqltext = "\n".join(sql)
            expected = None
            if i < len(lines) and lines[i].strip() == "----":
                out.append(lines[i])
                i += 1
                expected = []
                while i < len(lines) and lines[i].strip() != "":
                    expected.append(lines[i])
                    i += 1
            skip = skipped(conds)
            res = None if skip else db.run(cname, sqltext)
            where = f"{path}:{lineno}"
            if w[0] == "statement":
                if expected is not None:
                    out.extend(expected)
                if skip:
                    continue
                kind = w[1]
                if kind == "ok":
                    if res[0] == "error":
                        problems.append(f"{where}: statement failed in PG: {res[1]} {res[2]}\n  {sqltext}")
                elif kind == "count":
                    n = int(w[2])
                    if res[0] == "error":
                        problems.append(f"{where}: statement failed in PG: {res[1]} {res[2]}\n  {sqltext}")
                    else:
                        got = res[1] if res[0] == "count" else len(res[2])
                        if got != n:
                            problems.append(f"{where}: PG count {got}, file says {n}\n  {sqltext}")
                elif kind == "error":
                    spec = header.strip()[len("statement error"):]
                    if res[0] != "error":
                        problems.append(f"{where}: statement succeeded in PG, file expects error\n  {sqltext}")
                    elif not error_matches(spec, res[1], res[2]):
                        problems.append(f"{where}: PG error {res[1]} {res[2].splitlines()[0]} does not match {spec}\n  {sqltext}")
                continue
            # query
            nq += 1
            if w[1] == "error":
                if expected is not None:
                    out.extend(expected)
                if skip:
                    continue
                spec = header.strip()[len("query error"):]
                if res[0] != "error":
                    problems.append(f"{where}: query succeeded in PG, file expects error\n  {sqltext}")
                elif not error_matches(spec, res[1], res[2]):
                    problems.append(f"{where}: PG error {res[1]} {res[2].splitlines()[0]} does not match {spec}\n  {sqltext}")
                continue
            types = w[1]
            sort = w[2] if len(w) > 2 else "nosort"
            if skip:
                if expected is not None:
                    out.extend(expected)
                continue
            if res[0] != "rows":
                problems.append(f"{where}: PG gave {res}\n  {sqltext}")
                if expected is not None:
                    out.extend(expected)
                continue
            _, ptypes, rows = res
            if ptypes != types:
                problems.append(f"{where}: PG types {ptypes}, file says {types}\n  {sqltext}")
            if sort == "rowsort":
                rows = sorted(rows)
            elif sort == "valuesort":
                rows = sorted([[v] for r in rows for v in r])
            got = [" ".join(r) for r in rows]
            exp = expected or []
            if [norm(x) for x in got] != [norm(x) for x in exp]:
                if mode == "fill":
                    if expected is None:
                        out.append("----")
                    out.extend(got)
                    if expected:
                        problems.append(f"{where}: refilled (was {len(exp)} lines)\n  {sqltext}")
                    continue
                problems.append(
                    f"{where}: PG differs\n  {sqltext}\n  PG:   " + "\n        ".join(got) + "\n  file: " + "\n        ".join(exp)
                )
            if expected is not None:
                out.extend(expected)
            continue
        problems.append(f"{path}:{i+1}: cannot read line {line!r}")
        out.append(line)
        i += 1
    for c in db.conns.values():
        c.close()
    if mode == "fill":
        open(path, "w").write("\n".join(out))
    return problems, nq


def main():
    mode = sys.argv[1]
    total = 0
    bad = 0
    for p in sys.argv[2:]:
        problems, nq = process(p, mode)
        total += nq
        for pr in problems:
            print(pr)
            bad += 1
        print(f"# {p}: {nq} queries, {len(problems)} problems")
    print(f"# total {total} queries, {bad} problems")


main()
