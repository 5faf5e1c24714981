//! The system catalogs PostgreSQL clients read: `pg_catalog` and
//! `information_schema`, generated from SpanDB's own catalog.
//!
//! psql's `\d`, drivers' type lookups and ORMs' schema introspection all
//! ask PostgreSQL's catalog relations (`pg_class`, `pg_attribute`, ...),
//! not a SpanDB API. SpanDB keeps its schema as table descriptors
//! ([`crate::catalog`]), so these relations are views of the descriptors,
//! computed when a statement reads them, from the descriptors that
//! statement's transaction sees: a `\d` inside BEGIN sees the block's own
//! CREATE TABLE, and one at `AS OF SYSTEM TIME` the schema then.
//!
//! ```text
//!   FROM pg_catalog.pg_class c          planner: find("pg_catalog", "pg_class")
//!     -> Snapshot { every TableDesc }    read in the statement's transaction
//!     -> rows(PG_CLASS, snapshot)        one row per table, view and index
//!     -> Node::Values                    then filters, joins, ... as usual
//! ```
//!
//! # Object ids
//!
//! PostgreSQL clients carry oids from one statement to the next (psql
//! reads a table's oid, then asks for its columns by it), so an oid must
//! be a stable function of the object, never a position in a listing:
//!
//! - table or view `t`: `USER_OID_MIN + t.id * OIDS_PER_TABLE`;
//! - its index `i` (the primary key one included): the table's oid plus
//!   `i.id`; index ids are below [`OIDS_PER_TABLE`] (CREATE INDEX refuses
//!   more, [`crate::limits::INDEX_IDS_MAX`]); a primary key or unique
//!   constraint shares its index's oid;
//! - its `k`-th CHECK constraint: `table oid * OIDS_PER_TABLE² + k`, its
//!   `k`-th FOREIGN KEY the same plus `OIDS_PER_TABLE² / 2`
//!   (above every other oid while there are fewer than 16,384 tables);
//! - types, namespaces, access methods, collations, the database and the
//!   role: PostgreSQL 15's own oids, so clients' built-in tables agree.
//!
//! # Where we differ from PostgreSQL
//!
//! - Oid columns are `bigint` (SpanDB has no `oid` type); `regclass`,
//!   `regtype` and `regnamespace` casts are resolved while planning: a
//!   number becomes the name, a quoted name the oid ([`crate::planner`]).
//! - Access-control lists (`relacl`, `datacl`, ...) are NULL (everyone
//!   may do everything: there are no users yet) and typed `text[]`;
//!   `int2vector` columns (`pg_index.indkey`) are text (`"1 2"`, which is
//!   also their text form in PostgreSQL).
//! - `pg_class` lists user tables, views and indexes only, not the system
//!   relations themselves; statistics (`relpages`, `reltuples`) are 0.
//! - `pg_get_expr` returns its argument: `adbin` holds the DEFAULT's SQL
//!   text, not a node tree.
//! - Relations SpanDB has nothing for (policies, publications,
//!   inheritance, statistics objects, triggers, ...) exist, empty, with
//!   PostgreSQL's column names.
//! - Catalog lookups in expressions (`pg_get_indexdef(oid)`,
//!   `oid::regclass`) are bound as a CASE over the statement's snapshot:
//!   linear in the number of relations per row, fine for catalogs of
//!   thousands, not of millions.
//!
//! # Invariants
//!
//! - Every row of a relation has the relation's width, and each value is
//!   NULL or of its column's type (tested for every relation).
//! - The same descriptor gives the same oids in every statement.

use std::sync::Arc;

use crate::catalog::{SequenceDesc, TableDesc, PRIMARY_INDEX_ID};
use crate::encoding::Direction;
use crate::types::{DataType, Row, Value};

/// The first oid PostgreSQL gives user objects (`FirstNormalObjectId`).
pub const USER_OID_MIN: i64 = 16_384;
/// Oids reserved per table: the table's own and one per index id.
pub const OIDS_PER_TABLE: i64 = crate::limits::INDEX_IDS_MAX as i64 + 1;

/// The namespaces (schemas): PostgreSQL's oids.
pub const PG_CATALOG_OID: i64 = 11;
pub const PUBLIC_OID: i64 = 2_200;
pub const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// The one role SpanDB has (trust authentication, no users yet), as
/// PostgreSQL's bootstrap superuser.
pub const ROLE_OID: i64 = 10;
pub const ROLE_NAME: &str = "root";
/// The one database.
pub const DATABASE_OID: i64 = 5;
pub const DATABASE_NAME: &str = "spandb";
/// Access methods: rows live in a table (heap), indexes are ordered (btree).
const HEAP_AM_OID: i64 = 2;
const BTREE_AM_OID: i64 = 403;
/// The default collation, which string columns carry.
const DEFAULT_COLLATION_OID: i64 = 100;

/// What `version()` returns.
pub fn version() -> String {
    format!("PostgreSQL 15.0 (SpanDB {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit", env!("CARGO_PKG_VERSION"))
}

/// The schema catalog a statement sees: every descriptor, by name; and
/// what its session shows of itself and its gateway.
pub struct Snapshot {
    pub tables: Vec<Arc<TableDesc>>,
    pub sequences: Vec<SequenceDesc>,
    /// The gateway's sessions, for `pg_stat_activity` ([`crate::backends`]);
    /// filled only for the relations that read them
    /// ([`SystemRelation::reads_session`]).
    pub backends: Vec<crate::backends::BackendInfo>,
    /// The session's settings, for `pg_settings` (the same).
    pub settings: Vec<Setting>,
    /// The session's cursors, for `pg_cursors` (the same).
    pub cursors: Vec<CursorInfo>,
    /// Each sequence's last value written (`None`: none given yet), in
    /// `sequences`' order, for `pg_sequences`; read only for it
    /// ([`SystemRelation::reads_sequence_values`]).
    pub sequence_values: Vec<Option<i64>>,
}

/// What `pg_cursors` shows of a session's cursor.
#[derive(Clone, Debug, PartialEq)]
pub struct CursorInfo {
    pub name: String,
    /// The query text that declared it, as the client sent it.
    pub statement: String,
    /// Declared WITH HOLD.
    pub hold: bool,
    /// Not declared NO SCROLL (it may move back).
    pub scrollable: bool,
    /// When it was declared, in microseconds since the epoch.
    pub created_us: i64,
}

/// A setting as the session holds it: PostgreSQL's name for it, its value
/// (SHOW's), the value it started with (the client's or the default), and
/// where the value came from (`pg_settings.source`: `default`, `client`
/// or `session`).
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub reset_value: String,
    pub source: &'static str,
}

/// What a statement's session shows of itself (`pg_settings`) and of its
/// gateway's sessions (`pg_stat_activity`), read only when a statement
/// reads those.
#[derive(Clone, Copy)]
pub struct SessionView<'a> {
    /// The session's own entry, through which it sees its gateway's.
    pub backend: &'a Arc<crate::backends::Backend>,
    /// Its settings as SET left them, and as the client started it.
    pub settings: &'a std::collections::BTreeMap<String, String>,
    pub startup: &'a std::collections::BTreeMap<String, String>,
    /// Its cursors (listed only when a statement reads `pg_cursors`).
    pub cursors: &'a dyn Fn() -> Vec<CursorInfo>,
}

impl SessionView<'_> {
    /// The gateway's sessions (or this one alone), by pid.
    pub fn backends(&self) -> Vec<crate::backends::BackendInfo> {
        let mut all: Vec<_> = self.backend.visible().iter().map(|b| b.info()).collect();
        all.sort_by_key(|b| b.pid);
        all
    }

    /// Every setting SHOW ALL lists, by PostgreSQL's name.
    pub fn settings(&self) -> Vec<Setting> {
        let mut names: Vec<&str> = crate::timestamp::DEFAULT_SETTINGS.iter().map(|(n, _)| *n).collect();
        names.extend(
            self.settings.keys().map(String::as_str).filter(|n| crate::timestamp::default_setting(n).is_none()),
        );
        let mut all: Vec<Setting> = names
            .into_iter()
            .map(|name| {
                let default = crate::timestamp::default_setting(name).unwrap_or("");
                let startup = self.startup.get(name).map(String::as_str);
                let reset_value = startup.unwrap_or(default).to_string();
                let value = self.settings.get(name).cloned().unwrap_or_else(|| default.to_string());
                let source = match startup {
                    _ if value != reset_value => "session",
                    Some(_) => "client",
                    None => "default",
                };
                Setting { name: setting_name(name).to_string(), value, reset_value, source }
            })
            .collect();
        all.sort_by_key(|s| s.name.to_lowercase());
        all
    }
}

/// A setting's name as PostgreSQL spells it (SpanDB keeps them lower
/// case).
pub fn setting_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" => "TimeZone",
        other => other,
    }
}

/// A sequence's oid: a table's formula, its id from the tables' counter
/// (`sequence`).
pub fn sequence_oid(sequence: &SequenceDesc) -> i64 {
    USER_OID_MIN + i64::from(sequence.id) * OIDS_PER_TABLE
}

/// A table's or view's oid.
pub fn table_oid(table: &TableDesc) -> i64 {
    USER_OID_MIN + i64::from(table.id) * OIDS_PER_TABLE
}

/// The id of the table, view or sequence whose oid is `oid`, if `oid` is
/// one's ([`table_oid`]).
pub fn table_id_of_oid(oid: i64) -> Option<u32> {
    let offset = oid.checked_sub(USER_OID_MIN)?;
    (offset >= 0 && offset % OIDS_PER_TABLE == 0).then(|| u32::try_from(offset / OIDS_PER_TABLE).ok())?
}

/// An index's oid (also its constraint's).
pub fn index_oid(table: &TableDesc, index_id: u32) -> i64 {
    table_oid(table) + i64::from(index_id)
}

/// A system relation: where it lives, its columns, how its rows are made.
pub struct SystemRelation {
    pub schema: &'static str,
    pub name: &'static str,
    pub columns: &'static [(&'static str, DataType)],
    rows: fn(&Snapshot) -> Vec<Row>,
}

impl SystemRelation {
    /// The relation's rows in `snapshot`.
    pub fn rows(&self, snapshot: &Snapshot) -> Vec<Row> {
        (self.rows)(snapshot)
    }

    /// Whether its rows need the sequences' values (`pg_sequences`), not
    /// only their descriptors.
    pub fn reads_sequence_values(&self) -> bool {
        self.name == "pg_sequences"
    }

    /// Whether its rows are the session's and its gateway's
    /// (`Snapshot::backends`, `Snapshot::settings`, `Snapshot::cursors`),
    /// not the catalog's.
    pub fn reads_session(&self) -> bool {
        matches!(self.name, "pg_stat_activity" | "pg_settings" | "pg_cursors")
    }
}

/// The system relation `schema.name`; an unqualified name is looked up in
/// `pg_catalog` (PostgreSQL searches it before `public`).
pub fn find(schema: Option<&str>, name: &str) -> Option<&'static SystemRelation> {
    RELATIONS.iter().find(|r| r.name == name && schema.map_or(r.schema == "pg_catalog", |s| s == r.schema))
}

/// A system relation's oid, for `'pg_catalog.pg_extension'::regclass`
/// (psql compares catalog rows' `classoid` with one): below the user
/// range, stable for a build (its place in the list), not PostgreSQL's.
/// `name` may be qualified with its schema.
pub fn relation_oid(name: &str) -> Option<i64> {
    let (schema, bare) = match name.split_once('.') {
        Some((schema, bare)) => (Some(schema), bare),
        None => (None, name),
    };
    let relation = find(schema, bare)?;
    let position = RELATIONS.iter().position(|r| std::ptr::eq(r, relation))?;
    Some(SYSTEM_RELATION_OID_MIN + position as i64)
}

/// Where system relations' oids start (PostgreSQL's own catalogs sit
/// between 1,000 and 10,000; these are placeholders in the same range).
const SYSTEM_RELATION_OID_MIN: i64 = 9_000;

/// Whether `schema` names a schema of system relations.
pub fn is_system_schema(schema: &str) -> bool {
    schema == "pg_catalog" || schema == "information_schema"
}

use DataType::{Bool, Float4, Int2, Int4, Int8, Text, Timestamp, TimestampTz};

/// Array column types (`DataType::Array` of these elements).
const TEXT_ARRAY: DataType = DataType::Array(&Text);
const INT2_ARRAY: DataType = DataType::Array(&Int2);
const OID_ARRAY: DataType = DataType::Array(&Int8);

const RELATIONS: &[SystemRelation] = &[
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_namespace",
        columns: &[("oid", Int8), ("nspname", Text), ("nspowner", Int8), ("nspacl", TEXT_ARRAY)],
        rows: namespaces,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_class",
        columns: &[
            ("oid", Int8),
            ("relname", Text),
            ("relnamespace", Int8),
            ("reltype", Int8),
            ("reloftype", Int8),
            ("relowner", Int8),
            ("relam", Int8),
            ("relfilenode", Int8),
            ("reltablespace", Int8),
            ("relpages", Int4),
            ("reltuples", Float4),
            ("relallvisible", Int4),
            ("reltoastrelid", Int8),
            ("relhasindex", Bool),
            ("relisshared", Bool),
            ("relpersistence", Text),
            ("relkind", Text),
            ("relnatts", Int2),
            ("relchecks", Int2),
            ("relhasrules", Bool),
            ("relhastriggers", Bool),
            ("relhassubclass", Bool),
            ("relrowsecurity", Bool),
            ("relforcerowsecurity", Bool),
            ("relispopulated", Bool),
            ("relreplident", Text),
            ("relispartition", Bool),
            ("relrewrite", Int8),
            ("relacl", TEXT_ARRAY),
            ("reloptions", TEXT_ARRAY),
            ("relpartbound", Text),
        ],
        rows: classes,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_sequence",
        columns: &[
            ("seqrelid", Int8),
            ("seqtypid", Int8),
            ("seqstart", Int8),
            ("seqincrement", Int8),
            ("seqmax", Int8),
            ("seqmin", Int8),
            ("seqcache", Int8),
            ("seqcycle", Bool),
        ],
        rows: sequences,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_sequences",
        columns: &[
            ("schemaname", Text),
            ("sequencename", Text),
            ("sequenceowner", Text),
            ("data_type", Text),
            ("start_value", Int8),
            ("min_value", Int8),
            ("max_value", Int8),
            ("increment_by", Int8),
            ("cycle", Bool),
            ("cache_size", Int8),
            ("last_value", Int8),
        ],
        rows: sequence_list,
    },
    SystemRelation {
        schema: "information_schema",
        name: "sequences",
        columns: &[
            ("sequence_catalog", Text),
            ("sequence_schema", Text),
            ("sequence_name", Text),
            ("data_type", Text),
            ("numeric_precision", Int4),
            ("numeric_precision_radix", Int4),
            ("numeric_scale", Int4),
            ("start_value", Text),
            ("minimum_value", Text),
            ("maximum_value", Text),
            ("increment", Text),
            ("cycle_option", Text),
        ],
        rows: information_schema_sequences,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_attribute",
        columns: &[
            ("attrelid", Int8),
            ("attname", Text),
            ("atttypid", Int8),
            ("attstattarget", Int4),
            ("attlen", Int2),
            ("attnum", Int2),
            ("attndims", Int4),
            ("attcacheoff", Int4),
            ("atttypmod", Int4),
            ("attbyval", Bool),
            ("attalign", Text),
            ("attstorage", Text),
            ("attcompression", Text),
            ("attnotnull", Bool),
            ("atthasdef", Bool),
            ("atthasmissing", Bool),
            ("attidentity", Text),
            ("attgenerated", Text),
            ("attisdropped", Bool),
            ("attislocal", Bool),
            ("attinhcount", Int4),
            ("attcollation", Int8),
            ("attacl", TEXT_ARRAY),
            ("attoptions", TEXT_ARRAY),
        ],
        rows: attributes,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_type",
        columns: &[
            ("oid", Int8),
            ("typname", Text),
            ("typnamespace", Int8),
            ("typowner", Int8),
            ("typlen", Int2),
            ("typbyval", Bool),
            ("typtype", Text),
            ("typcategory", Text),
            ("typispreferred", Bool),
            ("typisdefined", Bool),
            ("typdelim", Text),
            ("typrelid", Int8),
            ("typelem", Int8),
            ("typarray", Int8),
            ("typnotnull", Bool),
            ("typbasetype", Int8),
            ("typtypmod", Int4),
            ("typndims", Int4),
            ("typcollation", Int8),
            ("typdefault", Text),
        ],
        rows: types,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_index",
        columns: &[
            ("indexrelid", Int8),
            ("indrelid", Int8),
            ("indnatts", Int2),
            ("indnkeyatts", Int2),
            ("indisunique", Bool),
            ("indnullsnotdistinct", Bool),
            ("indisprimary", Bool),
            ("indisexclusion", Bool),
            ("indimmediate", Bool),
            ("indisclustered", Bool),
            ("indisvalid", Bool),
            ("indcheckxmin", Bool),
            ("indisready", Bool),
            ("indislive", Bool),
            ("indisreplident", Bool),
            ("indkey", Text),
            ("indexprs", Text),
            ("indpred", Text),
        ],
        rows: indexes,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_am",
        columns: &[("oid", Int8), ("amname", Text), ("amhandler", Text), ("amtype", Text)],
        rows: access_methods,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_attrdef",
        columns: &[("oid", Int8), ("adrelid", Int8), ("adnum", Int2), ("adbin", Text)],
        rows: defaults,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_constraint",
        columns: &[
            ("oid", Int8),
            ("conname", Text),
            ("connamespace", Int8),
            ("contype", Text),
            ("condeferrable", Bool),
            ("condeferred", Bool),
            ("convalidated", Bool),
            ("conrelid", Int8),
            ("contypid", Int8),
            ("conindid", Int8),
            ("conparentid", Int8),
            ("confrelid", Int8),
            ("confupdtype", Text),
            ("confdeltype", Text),
            ("confmatchtype", Text),
            ("conislocal", Bool),
            ("coninhcount", Int4),
            ("connoinherit", Bool),
            ("conkey", INT2_ARRAY),
            ("confkey", INT2_ARRAY),
            ("conbin", Text),
        ],
        rows: constraints,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_database",
        columns: &[
            ("oid", Int8),
            ("datname", Text),
            ("datdba", Int8),
            ("encoding", Int4),
            ("datlocprovider", Text),
            ("datistemplate", Bool),
            ("datallowconn", Bool),
            ("datconnlimit", Int4),
            ("datfrozenxid", Int8),
            ("datminmxid", Int8),
            ("dattablespace", Int8),
            ("datcollate", Text),
            ("datctype", Text),
            ("daticulocale", Text),
            ("datcollversion", Text),
            ("datacl", TEXT_ARRAY),
        ],
        rows: databases,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_roles",
        columns: &[
            ("rolname", Text),
            ("rolsuper", Bool),
            ("rolinherit", Bool),
            ("rolcreaterole", Bool),
            ("rolcreatedb", Bool),
            ("rolcanlogin", Bool),
            ("rolreplication", Bool),
            ("rolconnlimit", Int4),
            ("rolpassword", Text),
            ("rolvaliduntil", Timestamp),
            ("rolbypassrls", Bool),
            ("rolconfig", TEXT_ARRAY),
            ("oid", Int8),
        ],
        rows: roles,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_collation",
        columns: &[
            ("oid", Int8),
            ("collname", Text),
            ("collnamespace", Int8),
            ("collowner", Int8),
            ("collprovider", Text),
            ("collisdeterministic", Bool),
            ("collencoding", Int4),
            ("collcollate", Text),
            ("collctype", Text),
        ],
        rows: collations,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_tablespace",
        columns: &[("oid", Int8), ("spcname", Text), ("spcowner", Int8)],
        rows: tablespaces,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_description",
        columns: &[("objoid", Int8), ("classoid", Int8), ("objsubid", Int4), ("description", Text)],
        rows: descriptions,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_inherits",
        columns: &[("inhrelid", Int8), ("inhparent", Int8), ("inhseqno", Int4), ("inhdetachpending", Bool)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_partitioned_table",
        columns: &[("partrelid", Int8), ("partstrat", Text), ("partnatts", Int2), ("partdefid", Int8)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_trigger",
        columns: &[
            ("oid", Int8),
            ("tgrelid", Int8),
            ("tgparentid", Int8),
            ("tgname", Text),
            ("tgfoid", Int8),
            ("tgtype", Int2),
            ("tgenabled", Text),
            ("tgisinternal", Bool),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_depend",
        columns: &[
            ("classid", Int8),
            ("objid", Int8),
            ("objsubid", Int4),
            ("refclassid", Int8),
            ("refobjid", Int8),
            ("refobjsubid", Int4),
            ("deptype", Text),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_rewrite",
        columns: &[("oid", Int8), ("rulename", Text), ("ev_class", Int8), ("ev_type", Text), ("ev_enabled", Text)],
        rows: nothing,
    },
    // What psql's \dd, \dC, \do, \dF, \des and \dy read: SpanDB
    // has no operator classes or families, user casts or operators, text
    // search configurations, foreign servers or event triggers.
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_opclass",
        columns: &[("oid", Int8), ("opcmethod", Int8), ("opcname", Text), ("opcnamespace", Int8), ("opcowner", Int8)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_opfamily",
        columns: &[("oid", Int8), ("opfmethod", Int8), ("opfname", Text), ("opfnamespace", Int8), ("opfowner", Int8)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_cast",
        columns: &[
            ("oid", Int8),
            ("castsource", Int8),
            ("casttarget", Int8),
            ("castfunc", Int8),
            ("castcontext", Text),
            ("castmethod", Text),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_operator",
        columns: &[
            ("oid", Int8),
            ("oprname", Text),
            ("oprnamespace", Int8),
            ("oprowner", Int8),
            ("oprkind", Text),
            ("oprleft", Int8),
            ("oprright", Int8),
            ("oprresult", Int8),
            ("oprcode", Int8),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_ts_config",
        columns: &[("oid", Int8), ("cfgname", Text), ("cfgnamespace", Int8), ("cfgowner", Int8), ("cfgparser", Int8)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_foreign_data_wrapper",
        columns: &[("oid", Int8), ("fdwname", Text), ("fdwowner", Int8), ("fdwhandler", Int8), ("fdwvalidator", Int8)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_foreign_server",
        columns: &[("oid", Int8), ("srvname", Text), ("srvowner", Int8), ("srvfdw", Int8), ("srvtype", Text)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_event_trigger",
        columns: &[
            ("oid", Int8),
            ("evtname", Text),
            ("evtevent", Text),
            ("evtowner", Int8),
            ("evtfoid", Int8),
            ("evtenabled", Text),
            ("evttags", TEXT_ARRAY),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_auth_members",
        columns: &[("roleid", Int8), ("member", Int8), ("grantor", Int8), ("admin_option", Bool)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_publication",
        columns: &[
            ("oid", Int8),
            ("pubname", Text),
            ("pubowner", Int8),
            ("puballtables", Bool),
            ("pubinsert", Bool),
            ("pubupdate", Bool),
            ("pubdelete", Bool),
            ("pubtruncate", Bool),
            ("pubviaroot", Bool),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_publication_rel",
        columns: &[("oid", Int8), ("prpubid", Int8), ("prrelid", Int8), ("prqual", Text), ("prattrs", INT2_ARRAY)],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_proc",
        columns: &[
            ("oid", Int8),
            ("proname", Text),
            ("pronamespace", Int8),
            ("proowner", Int8),
            ("prokind", Text),
            ("prorettype", Int8),
            ("proargtypes", Text),
            ("prosrc", Text),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_extension",
        columns: &[
            ("oid", Int8),
            ("extname", Text),
            ("extowner", Int8),
            ("extnamespace", Int8),
            ("extrelocatable", Bool),
            ("extversion", Text),
            ("extconfig", OID_ARRAY),
            ("extcondition", TEXT_ARRAY),
        ],
        rows: extensions,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_policy",
        columns: &[
            ("oid", Int8),
            ("polname", Text),
            ("polrelid", Int8),
            ("polcmd", Text),
            ("polpermissive", Bool),
            ("polroles", OID_ARRAY),
            ("polqual", Text),
            ("polwithcheck", Text),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_statistic_ext",
        columns: &[
            ("oid", Int8),
            ("stxrelid", Int8),
            ("stxname", Text),
            ("stxnamespace", Int8),
            ("stxowner", Int8),
            ("stxstattarget", Int4),
            ("stxkeys", Text),
            ("stxkind", TEXT_ARRAY),
            ("stxexprs", Text),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_publication_namespace",
        columns: &[("oid", Int8), ("pnpubid", Int8), ("pnnspid", Int8)],
        rows: nothing,
    },
    SystemRelation {
        schema: "information_schema",
        name: "schemata",
        columns: &[("catalog_name", Text), ("schema_name", Text), ("schema_owner", Text)],
        rows: schemata,
    },
    SystemRelation {
        schema: "information_schema",
        name: "tables",
        columns: &[
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("table_type", Text),
            ("self_referencing_column_name", Text),
            ("reference_generation", Text),
            ("user_defined_type_catalog", Text),
            ("user_defined_type_schema", Text),
            ("user_defined_type_name", Text),
            ("is_insertable_into", Text),
            ("is_typed", Text),
            ("commit_action", Text),
        ],
        rows: information_tables,
    },
    SystemRelation {
        schema: "information_schema",
        name: "columns",
        columns: &[
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("ordinal_position", Int4),
            ("column_default", Text),
            ("is_nullable", Text),
            ("data_type", Text),
            ("character_maximum_length", Int4),
            ("character_octet_length", Int4),
            ("numeric_precision", Int4),
            ("numeric_precision_radix", Int4),
            ("numeric_scale", Int4),
            ("datetime_precision", Int4),
            ("udt_catalog", Text),
            ("udt_schema", Text),
            ("udt_name", Text),
            ("is_identity", Text),
            ("is_generated", Text),
            ("is_updatable", Text),
        ],
        rows: information_columns,
    },
    SystemRelation {
        schema: "information_schema",
        name: "table_constraints",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("constraint_type", Text),
            ("is_deferrable", Text),
            ("initially_deferred", Text),
            ("enforced", Text),
            ("nulls_distinct", Text),
        ],
        rows: information_table_constraints,
    },
    SystemRelation {
        schema: "information_schema",
        name: "key_column_usage",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("ordinal_position", Int4),
            ("position_in_unique_constraint", Int4),
        ],
        rows: information_key_column_usage,
    },
    SystemRelation {
        schema: "information_schema",
        name: "referential_constraints",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("unique_constraint_catalog", Text),
            ("unique_constraint_schema", Text),
            ("unique_constraint_name", Text),
            ("match_option", Text),
            ("update_rule", Text),
            ("delete_rule", Text),
        ],
        rows: information_referential_constraints,
    },
    // (Appended: a system relation's oid is its place in this list.)
    // What drivers and tools read at connect (Rails's type map joins
    // pg_range; enum types would be in pg_enum): SpanDB has none of either.
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_range",
        columns: &[
            ("rngtypid", Int8),
            ("rngsubtype", Int8),
            ("rngmultitypid", Int8),
            ("rngcollation", Int8),
            ("rngsubopc", Int8),
            ("rngcanonical", Text),
            ("rngsubdiff", Text),
        ],
        rows: nothing,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_enum",
        columns: &[("oid", Int8), ("enumtypid", Int8), ("enumsortorder", Float4), ("enumlabel", Text)],
        rows: nothing,
    },
    // The views scripts list tables, views and indexes by.
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_tables",
        columns: &[
            ("schemaname", Text),
            ("tablename", Text),
            ("tableowner", Text),
            ("tablespace", Text),
            ("hasindexes", Bool),
            ("hasrules", Bool),
            ("hastriggers", Bool),
            ("rowsecurity", Bool),
        ],
        rows: table_list,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_views",
        columns: &[("schemaname", Text), ("viewname", Text), ("viewowner", Text), ("definition", Text)],
        rows: view_list,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_indexes",
        columns: &[
            ("schemaname", Text),
            ("tablename", Text),
            ("indexname", Text),
            ("tablespace", Text),
            ("indexdef", Text),
        ],
        rows: index_list,
    },
    // What operators and monitoring tools read: the gateway's sessions
    // and the session's settings.
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_stat_activity",
        columns: &[
            ("datid", Int8),
            ("datname", Text),
            ("pid", Int4),
            ("leader_pid", Int4),
            ("usesysid", Int8),
            ("usename", Text),
            ("application_name", Text),
            ("client_addr", Text),
            ("client_hostname", Text),
            ("client_port", Int4),
            ("backend_start", TimestampTz),
            ("xact_start", TimestampTz),
            ("query_start", TimestampTz),
            ("state_change", TimestampTz),
            ("wait_event_type", Text),
            ("wait_event", Text),
            ("state", Text),
            ("backend_xid", Int8),
            ("backend_xmin", Int8),
            ("query_id", Int8),
            ("query", Text),
            ("backend_type", Text),
        ],
        rows: activity,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_cursors",
        columns: &[
            ("name", Text),
            ("statement", Text),
            ("is_holdable", Bool),
            ("is_binary", Bool),
            ("is_scrollable", Bool),
            ("creation_time", TimestampTz),
        ],
        rows: cursor_list,
    },
    SystemRelation {
        schema: "pg_catalog",
        name: "pg_settings",
        columns: &[
            ("name", Text),
            ("setting", Text),
            ("unit", Text),
            ("category", Text),
            ("short_desc", Text),
            ("extra_desc", Text),
            ("context", Text),
            ("vartype", Text),
            ("source", Text),
            ("min_val", Text),
            ("max_val", Text),
            ("enumvals", TEXT_ARRAY),
            ("boot_val", Text),
            ("reset_val", Text),
            ("sourcefile", Text),
            ("sourceline", Int4),
            ("pending_restart", Bool),
        ],
        rows: settings,
    },
];

// ---- the types PostgreSQL clients may ask about ---------------------------

/// One row of `pg_type`: oid, name, length, category, array type oid, the
/// element type of an array type.
struct TypeRow {
    oid: i64,
    name: &'static str,
    len: i16,
    category: &'static str,
    array: i64,
    element: i64,
}

const fn ty(oid: i64, name: &'static str, len: i16, category: &'static str, array: i64) -> TypeRow {
    TypeRow { oid, name, len, category, array, element: 0 }
}

const fn array_ty(oid: i64, name: &'static str, element: i64) -> TypeRow {
    TypeRow { oid, name, len: -1, category: "A", array: 0, element }
}

/// PostgreSQL 15's oids for the types SpanDB has, and for those its
/// catalog relations use (`name`, `"char"`, `oid`, `regclass`).
const TYPES: &[TypeRow] = &[
    ty(16, "bool", 1, "B", 1000),
    ty(17, "bytea", -1, "U", 1001),
    ty(18, "char", 1, "Z", 1002),
    ty(19, "name", 64, "S", 1003),
    ty(20, "int8", 8, "N", 1016),
    ty(21, "int2", 2, "N", 1005),
    ty(22, "int2vector", -1, "A", 1006),
    ty(23, "int4", 4, "N", 1007),
    ty(25, "text", -1, "S", 1009),
    ty(26, "oid", 4, "N", 1028),
    ty(700, "float4", 4, "N", 1021),
    ty(701, "float8", 8, "N", 1022),
    ty(1042, "bpchar", -1, "S", 1014),
    ty(1043, "varchar", -1, "S", 1015),
    ty(1082, "date", 4, "D", 1182),
    ty(1083, "time", 8, "D", 1183),
    ty(1114, "timestamp", 8, "D", 1115),
    ty(1184, "timestamptz", 8, "D", 1185),
    ty(1186, "interval", 16, "T", 1187),
    ty(2205, "regclass", 4, "N", 2210),
    ty(1700, "numeric", -1, "N", 1231),
    ty(2950, "uuid", 16, "U", 2951),
    ty(3802, "jsonb", -1, "U", 3807),
    array_ty(1000, "_bool", 16),
    array_ty(1001, "_bytea", 17),
    array_ty(1002, "_char", 18),
    array_ty(1003, "_name", 19),
    array_ty(1005, "_int2", 21),
    array_ty(1007, "_int4", 23),
    array_ty(1009, "_text", 25),
    array_ty(1014, "_bpchar", 1042),
    array_ty(1015, "_varchar", 1043),
    array_ty(1016, "_int8", 20),
    array_ty(1021, "_float4", 700),
    array_ty(1022, "_float8", 701),
    array_ty(1028, "_oid", 26),
    array_ty(1115, "_timestamp", 1114),
    array_ty(1182, "_date", 1082),
    array_ty(1183, "_time", 1083),
    array_ty(1185, "_timestamptz", 1184),
    array_ty(1187, "_interval", 1186),
    array_ty(1231, "_numeric", 1700),
    array_ty(2951, "_uuid", 2950),
    array_ty(3807, "_jsonb", 3802),
];

/// The type modifier PostgreSQL stores for a column type (`atttypmod`):
/// a length plus the 4-byte header for `varchar(n)` and `char(n)`, the
/// precision and scale (`precision << 16 | scale`) plus the header for
/// `numeric(p, s)`, else -1.
pub fn type_modifier(t: DataType) -> i32 {
    match t {
        DataType::Varchar(Some(n)) | DataType::Char(n) => i32::try_from(n).unwrap_or(i32::MAX - 4) + 4,
        DataType::Numeric(Some(m)) => (i32::from(m.precision) << 16 | i32::from(m.scale)) + 4,
        _ => -1,
    }
}

/// `format_type(type oid, typmod)`: the type's SQL name, as `\d` shows it.
/// `None` for an oid that names no type (PostgreSQL prints `???`).
pub fn format_type(oid: i64, typmod: Option<i64>) -> Option<String> {
    let length = typmod.filter(|m| *m >= 4).map(|m| m - 4);
    let name = match oid {
        1043 => return Some(length.map_or("character varying".into(), |n| format!("character varying({n})"))),
        1042 => return Some(length.map_or("character".into(), |n| format!("character({n})"))),
        1700 => return Some(length.map_or("numeric".into(), |m| format!("numeric({},{})", m >> 16, m & 0xFFFF))),
        16 => "boolean",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        700 => "real",
        701 => "double precision",
        1114 => "timestamp without time zone",
        1184 => "timestamp with time zone",
        1083 => "time without time zone",
        18 => "\"char\"",
        other => {
            let t = TYPES.iter().find(|t| t.oid == other)?;
            if t.element != 0 {
                return format_type(t.element, None).map(|e| format!("{e}[]"));
            }
            t.name
        }
    };
    Some(name.to_string())
}

/// `to_regtype(name)`: the oid of the type `name` spells (PostgreSQL's
/// names, SQL's spellings, `pg_catalog.` or not, `[]` for an array type),
/// or `None`.
pub fn type_oid_by_name(name: &str) -> Option<i64> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    if let Some(element) = name.strip_suffix("[]") {
        let element = type_oid_by_name(element)?;
        return TYPES.iter().find(|t| t.oid == element).map(|t| t.array).filter(|a| *a != 0);
    }
    let canonical = match name {
        "boolean" => "bool",
        "smallint" => "int2",
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "time without time zone" => "time",
        "\"char\"" => "char",
        other => other,
    };
    TYPES.iter().find(|t| t.name == canonical).map(|t| t.oid)
}

// ---- what psql prints for indexes and constraints ---------------------------

fn index_column_list(table: &TableDesc, columns: &[(u32, Direction)]) -> String {
    let names: Vec<String> = columns
        .iter()
        .map(|(id, dir)| {
            let name = table.column_by_id(*id).map_or_else(|| format!("column {id}"), |(_, c)| quote_ident(&c.name));
            match dir {
                Direction::Asc => name,
                Direction::Desc => format!("{name} DESC"),
            }
        })
        .collect();
    names.join(", ")
}

/// `pg_get_indexdef`: the CREATE INDEX statement that makes the index.
pub fn index_definition(table: &TableDesc, index_id: u32) -> Option<String> {
    let index = table.index(index_id)?;
    Some(format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({})",
        if index.unique { "UNIQUE " } else { "" },
        quote_ident(&index.name),
        quote_ident(&table.name),
        index_column_list(table, &index.columns)
    ))
}

/// The oid of `table`'s `k`-th CHECK constraint (module docs).
pub fn check_oid(table: &TableDesc, k: usize) -> i64 {
    table_oid(table) * OIDS_PER_TABLE * OIDS_PER_TABLE + k as i64
}

/// The oid of `table`'s `k`-th FOREIGN KEY constraint: in its CHECK
/// constraints' space (module docs), past any number of them a table can
/// have.
pub fn foreign_key_oid(table: &TableDesc, k: usize) -> i64 {
    check_oid(table, (OIDS_PER_TABLE * OIDS_PER_TABLE / 2) as usize + k)
}

/// `pg_get_constraintdef` of a foreign key: `FOREIGN KEY (a) REFERENCES
/// t(b)`, its actions unless NO ACTION.
pub fn foreign_key_definition(
    table: &TableDesc,
    fk: &crate::catalog::ForeignKeyDesc,
    referenced: &TableDesc,
) -> String {
    let names = |t: &TableDesc, ids: &[u32]| {
        ids.iter()
            .filter_map(|id| t.column_by_id(*id).map(|(_, c)| quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut def = format!(
        "FOREIGN KEY ({}) REFERENCES {}({})",
        names(table, &fk.columns),
        quote_ident(&referenced.name),
        names(referenced, &fk.referenced)
    );
    for (on, action) in [("UPDATE", fk.on_update), ("DELETE", fk.on_delete)] {
        if action != crate::catalog::ReferentialAction::NoAction {
            def.push_str(&format!(" ON {on} {}", action.sql()));
        }
    }
    match (fk.deferrable, fk.deferred) {
        (true, true) => def.push_str(" DEFERRABLE INITIALLY DEFERRED"),
        (true, false) => def.push_str(" DEFERRABLE"),
        _ => {}
    }
    def
}

/// `pg_get_constraintdef`: a primary key constraint's definition.
pub fn constraint_definition(table: &TableDesc, index_id: u32) -> Option<String> {
    let index = table.index(index_id)?;
    Some(format!("PRIMARY KEY ({})", index_column_list(table, &index.columns)))
}

/// PostgreSQL 15's keywords that an identifier must be quoted to be
/// (every category but unreserved: `pg_get_keywords()` where catcode is
/// not 'U'), sorted for a binary search.
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// `quote_ident`: `name` as PostgreSQL prints an identifier, in double
/// quotes unless it is lower case letters, digits and underscores not
/// starting with a digit, and not a keyword that needs them.
pub fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && QUOTED_KEYWORDS.binary_search(&name).is_err();
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

// ---- rows ---------------------------------------------------------------------

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// The indexes `\d` lists: the primary key (unless the table has only a
/// hidden row id) and the secondary ones in force.
fn visible_indexes(table: &TableDesc) -> impl Iterator<Item = &crate::catalog::IndexDesc> {
    let primary = (!table.has_hidden_rowid() && table.view.is_none()).then_some(&table.primary);
    primary.into_iter().chain(table.indexes.iter().filter(|i| !i.write_only))
}

fn visible_columns(table: &TableDesc) -> impl Iterator<Item = &crate::catalog::ColumnDesc> {
    table.columns.iter().filter(|c| !c.hidden)
}

fn nothing(_: &Snapshot) -> Vec<Row> {
    Vec::new()
}

/// pg_stat_activity: a row per session of the gateway. A waiting session
/// waits for its client (PostgreSQL's `Client`/`ClientRead`).
fn activity(s: &Snapshot) -> Vec<Row> {
    let time = |us: Option<i64>| us.map_or(Value::Null, Value::TimestampTz);
    s.backends
        .iter()
        .map(|b| {
            let waiting = b.state != crate::backends::State::Active;
            let wait = |what: &str| if waiting { text(what) } else { Value::Null };
            vec![
                Value::Int8(DATABASE_OID),
                text(DATABASE_NAME),
                Value::Int4(b.pid),
                Value::Null,
                Value::Int8(ROLE_OID),
                text(&b.user),
                text(&b.application_name),
                b.client.map_or(Value::Null, |c| text(&c.ip().to_string())),
                Value::Null,
                b.client.map_or(Value::Null, |c| Value::Int4(i32::from(c.port()))),
                time(Some(b.backend_start_us)),
                time(b.xact_start_us),
                time(b.query_start_us),
                time(Some(b.state_change_us)),
                wait("Client"),
                wait("ClientRead"),
                text(b.state.as_str()),
                Value::Null,
                Value::Null,
                Value::Null,
                text(&b.query),
                text("client backend"),
            ]
        })
        .collect()
}

/// pg_cursors: a row per cursor of the session.
fn cursor_list(s: &Snapshot) -> Vec<Row> {
    s.cursors
        .iter()
        .map(|c| {
            vec![
                text(&c.name),
                text(&c.statement),
                Value::Bool(c.hold),
                Value::Bool(false),
                Value::Bool(c.scrollable),
                Value::TimestampTz(c.created_us),
            ]
        })
        .collect()
}

/// What pg_settings says of a setting besides its value: its type, unit,
/// who may change it, its category and description (PostgreSQL 15's),
/// and its range or choices.
struct SettingInfo {
    name: &'static str,
    vartype: &'static str,
    unit: Option<&'static str>,
    context: &'static str,
    category: &'static str,
    short_desc: &'static str,
    range: Option<(&'static str, &'static str)>,
    choices: &'static [&'static str],
}

const fn setting(
    name: &'static str,
    vartype: &'static str,
    context: &'static str,
    category: &'static str,
    short_desc: &'static str,
) -> SettingInfo {
    SettingInfo { name, vartype, unit: None, context, category, short_desc, range: None, choices: &[] }
}

const STATEMENT_BEHAVIOR: &str = "Client Connection Defaults / Statement Behavior";
const LOCALE: &str = "Client Connection Defaults / Locale and Formatting";
const PRESET: &str = "Preset Options";
/// What `default_transaction_isolation` and `transaction_isolation` take.
const ISOLATION_LEVELS: &[&str] = &["serializable", "repeatable read", "read committed", "read uncommitted"];
/// The timeouts, in milliseconds (PostgreSQL's int range).
const MILLISECONDS: (&str, &str) = ("0", "2147483647");

const SETTINGS: &[SettingInfo] = &[
    setting(
        "application_name",
        "string",
        "user",
        "Reporting and Logging / What to Log",
        "Sets the application name to be reported in statistics and logs.",
    ),
    SettingInfo {
        choices: &["escape", "hex"],
        ..setting("bytea_output", "enum", "user", STATEMENT_BEHAVIOR, "Sets the output format for bytea.")
    },
    setting("client_encoding", "string", "user", LOCALE, "Sets the client's character set encoding."),
    SettingInfo {
        choices: &["debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error"],
        ..setting(
            "client_min_messages",
            "enum",
            "user",
            STATEMENT_BEHAVIOR,
            "Sets the message levels that are sent to the client.",
        )
    },
    setting("DateStyle", "string", "user", LOCALE, "Sets the display format for date and time values."),
    SettingInfo {
        choices: ISOLATION_LEVELS,
        ..setting(
            "default_transaction_isolation",
            "enum",
            "user",
            STATEMENT_BEHAVIOR,
            "Sets the transaction isolation level of each new transaction.",
        )
    },
    setting(
        "default_transaction_read_only",
        "bool",
        "user",
        STATEMENT_BEHAVIOR,
        "Sets the default read-only status of new transactions.",
    ),
    SettingInfo {
        range: Some(("-15", "3")),
        ..setting(
            "extra_float_digits",
            "integer",
            "user",
            LOCALE,
            "Sets the number of digits displayed for floating-point values.",
        )
    },
    SettingInfo {
        unit: Some("ms"),
        range: Some(MILLISECONDS),
        ..setting(
            "idle_in_transaction_session_timeout",
            "integer",
            "user",
            STATEMENT_BEHAVIOR,
            "Sets the maximum allowed idle time between queries, when in a transaction.",
        )
    },
    setting("integer_datetimes", "bool", "internal", PRESET, "Shows whether datetimes are integer based."),
    SettingInfo {
        choices: &["postgres", "postgres_verbose", "sql_standard", "iso_8601"],
        ..setting("IntervalStyle", "enum", "user", LOCALE, "Sets the display format for interval values.")
    },
    SettingInfo {
        unit: Some("ms"),
        range: Some(MILLISECONDS),
        ..setting(
            "lock_timeout",
            "integer",
            "user",
            STATEMENT_BEHAVIOR,
            "Sets the maximum allowed duration of any wait for a lock.",
        )
    },
    SettingInfo {
        range: Some(("63", "63")),
        ..setting("max_identifier_length", "integer", "internal", PRESET, "Shows the maximum identifier length.")
    },
    setting(
        "search_path",
        "string",
        "user",
        STATEMENT_BEHAVIOR,
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    setting("server_encoding", "string", "internal", PRESET, "Shows the server (database) character set encoding."),
    setting("server_version", "string", "internal", PRESET, "Shows the server version."),
    SettingInfo {
        range: Some(("150000", "150000")),
        ..setting("server_version_num", "integer", "internal", PRESET, "Shows the server version as an integer.")
    },
    setting(
        "standard_conforming_strings",
        "bool",
        "user",
        "Version and Platform Compatibility / Previous PostgreSQL Versions",
        "Causes '...' strings to treat backslashes literally.",
    ),
    SettingInfo {
        unit: Some("ms"),
        range: Some(MILLISECONDS),
        ..setting(
            "statement_timeout",
            "integer",
            "user",
            STATEMENT_BEHAVIOR,
            "Sets the maximum allowed duration of any statement.",
        )
    },
    setting("TimeZone", "string", "user", LOCALE, "Sets the time zone for displaying and interpreting time stamps."),
    SettingInfo {
        choices: ISOLATION_LEVELS,
        ..setting(
            "transaction_isolation",
            "enum",
            "user",
            STATEMENT_BEHAVIOR,
            "Sets the current transaction's isolation level.",
        )
    },
];

/// A custom setting (`SET app.user = ...`): PostgreSQL's placeholder.
const CUSTOM_SETTING: SettingInfo = setting("", "string", "user", "Customized Options", "");

/// pg_settings: a row per setting SHOW ALL lists. A setting in
/// milliseconds is shown as a number of them, as PostgreSQL does (SHOW
/// says `1min`, pg_settings `60000` and `ms`).
fn settings(s: &Snapshot) -> Vec<Row> {
    let opt = |v: Option<&str>| v.map_or(Value::Null, text);
    s.settings
        .iter()
        .map(|setting| {
            let info = SETTINGS.iter().find(|i| i.name == setting.name).unwrap_or(&CUSTOM_SETTING);
            let shown = |value: &str| match info.unit {
                Some("ms") => match crate::timestamp::parse_setting_duration(value) {
                    Ok(d) => d.map_or(0, |d| d.as_millis()).to_string(),
                    Err(_) => value.to_string(),
                },
                _ => value.to_string(),
            };
            let boot = crate::timestamp::default_setting(&setting.name.to_lowercase()).map(shown);
            let choices = match info.choices {
                [] => Value::Null,
                choices => Value::Array(&Text, choices.iter().map(|c| text(c)).collect()),
            };
            vec![
                text(&setting.name),
                text(&shown(&setting.value)),
                opt(info.unit),
                text(info.category),
                text(info.short_desc),
                Value::Null,
                text(info.context),
                text(info.vartype),
                text(setting.source),
                opt(info.range.map(|r| r.0)),
                opt(info.range.map(|r| r.1)),
                choices,
                opt(boot.as_deref()),
                text(&shown(&setting.reset_value)),
                Value::Null,
                Value::Null,
                Value::Bool(false),
            ]
        })
        .collect()
}

/// pg_tables: a row per table (in public).
fn table_list(s: &Snapshot) -> Vec<Row> {
    s.tables
        .iter()
        .filter(|t| t.view.is_none())
        .map(|t| {
            vec![
                text("public"),
                text(&t.name),
                text(ROLE_NAME),
                Value::Null,
                Value::Bool(visible_indexes(t).next().is_some()),
                Value::Bool(false),
                Value::Bool(!t.foreign_keys.is_empty() || !t.referenced_by.is_empty()),
                Value::Bool(false),
            ]
        })
        .collect()
}

/// pg_views: a row per view, with its query as pg_get_viewdef gives it.
fn view_list(s: &Snapshot) -> Vec<Row> {
    s.tables
        .iter()
        .filter_map(|t| {
            let query = t.view.as_ref()?;
            Some(vec![text("public"), text(&t.name), text(ROLE_NAME), text(&format!(" {query};"))])
        })
        .collect()
}

/// pg_indexes: a row per index (the primary key's too), with the CREATE
/// INDEX statement pg_get_indexdef gives.
fn index_list(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in s.tables.iter().filter(|t| t.view.is_none()) {
        for i in visible_indexes(t) {
            let def = index_definition(t, i.id).map_or(Value::Null, |d| text(&d));
            rows.push(vec![text("public"), text(&t.name), text(&i.name), Value::Null, def]);
        }
    }
    rows
}

fn namespaces(_: &Snapshot) -> Vec<Row> {
    [(PG_CATALOG_OID, "pg_catalog"), (PUBLIC_OID, "public"), (INFORMATION_SCHEMA_OID, "information_schema")]
        .into_iter()
        .map(|(oid, name)| vec![Value::Int8(oid), text(name), Value::Int8(ROLE_OID), Value::Null])
        .collect()
}

fn class_row(oid: i64, name: &str, kind: &str, am: i64, natts: usize, has_index: bool) -> Row {
    vec![
        Value::Int8(oid),
        text(name),
        Value::Int8(PUBLIC_OID),
        Value::Int8(0),
        Value::Int8(0),
        Value::Int8(ROLE_OID),
        Value::Int8(am),
        Value::Int8(oid),
        Value::Int8(0),
        Value::Int4(0),
        Value::Float4(0.0),
        Value::Int4(0),
        Value::Int8(0),
        Value::Bool(has_index),
        Value::Bool(false),
        text("p"),
        text(kind),
        Value::Int2(i16::try_from(natts).unwrap_or(i16::MAX)),
        Value::Int2(0),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(true),
        text(if kind == "r" { "d" } else { "n" }),
        Value::Bool(false),
        Value::Int8(0),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

fn classes(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in &s.tables {
        let natts = visible_columns(t).count();
        if t.view.is_some() {
            rows.push(class_row(table_oid(t), &t.name, "v", 0, natts, false));
            continue;
        }
        let has_index = visible_indexes(t).next().is_some();
        let mut row = class_row(table_oid(t), &t.name, "r", HEAP_AM_OID, natts, has_index);
        // psql's `\d` lists CHECK constraints when relchecks says there
        // are some, and foreign keys (both ways) when relhastriggers is
        // set (PostgreSQL enforces them with triggers).
        row[18] = Value::Int2(i16::try_from(t.checks.len()).unwrap_or(i16::MAX));
        row[20] = Value::Bool(!t.foreign_keys.is_empty() || !t.referenced_by.is_empty());
        rows.push(row);
        for i in visible_indexes(t) {
            rows.push(class_row(index_oid(t, i.id), &i.name, "i", BTREE_AM_OID, i.columns.len(), false));
        }
    }
    for q in &s.sequences {
        rows.push(class_row(sequence_oid(q), &q.name, "S", 0, 3, false));
    }
    rows
}

/// The extensions SpanDB has built in, with the versions PostgreSQL 15
/// ships: CREATE EXTENSION of one of them does nothing (`session`), and
/// pg_extension lists them all. What they bring that SpanDB has:
/// `gen_random_uuid` (pgcrypto) and `uuid_generate_v4` (uuid-ossp).
pub const EXTENSIONS: &[(&str, &str)] = &[("plpgsql", "1.0"), ("pgcrypto", "1.3"), ("uuid-ossp", "1.1")];

/// Where the built-in extensions' oids start (PostgreSQL's plpgsql is near).
const EXTENSION_OID_MIN: i64 = 13_500;

fn extensions(_: &Snapshot) -> Vec<Row> {
    EXTENSIONS
        .iter()
        .zip(EXTENSION_OID_MIN..)
        .map(|((name, version), oid)| {
            let schema = if *name == "plpgsql" { PG_CATALOG_OID } else { PUBLIC_OID };
            vec![
                Value::Int8(oid),
                text(name),
                Value::Int8(ROLE_OID),
                Value::Int8(schema),
                Value::Bool(*name != "plpgsql"),
                text(version),
                Value::Null,
                Value::Null,
            ]
        })
        .collect()
}

/// COMMENT ON's comments: a table's (objsubid 0) and its columns' (their
/// attnum), as PostgreSQL keeps them.
fn descriptions(s: &Snapshot) -> Vec<Row> {
    let class = relation_oid("pg_class").unwrap_or_default();
    let mut rows = Vec::new();
    for (t, subid, comment) in comments(s) {
        rows.push(vec![Value::Int8(table_oid(t)), Value::Int8(class), Value::Int4(subid), text(comment)]);
    }
    rows
}

/// Every comment in `s`: the table (or view), 0 or the column's attnum,
/// the comment.
pub fn comments(s: &Snapshot) -> impl Iterator<Item = (&TableDesc, i32, &str)> {
    s.tables.iter().flat_map(|t| {
        let own = t.comment.as_deref().map(|c| (&**t, 0, c));
        let columns =
            visible_columns(t).filter_map(move |c| Some((&**t, i32::try_from(c.id).ok()?, c.comment.as_deref()?)));
        own.into_iter().chain(columns)
    })
}

fn sequences(s: &Snapshot) -> Vec<Row> {
    s.sequences
        .iter()
        .map(|q| {
            vec![
                Value::Int8(sequence_oid(q)),
                Value::Int8(i64::from(q.data_type.oid())),
                Value::Int8(q.start),
                Value::Int8(q.increment),
                Value::Int8(q.max),
                Value::Int8(q.min),
                Value::Int8(q.cache),
                Value::Bool(q.cycle),
            ]
        })
        .collect()
}

/// pg_sequences: a row per sequence, with the last value it wrote.
fn sequence_list(s: &Snapshot) -> Vec<Row> {
    s.sequences
        .iter()
        .enumerate()
        .map(|(i, q)| {
            vec![
                text("public"),
                text(&q.name),
                text(ROLE_NAME),
                text(&q.data_type.sql_name()),
                Value::Int8(q.start),
                Value::Int8(q.min),
                Value::Int8(q.max),
                Value::Int8(q.increment),
                Value::Bool(q.cycle),
                Value::Int8(q.cache),
                s.sequence_values.get(i).copied().flatten().map_or(Value::Null, Value::Int8),
            ]
        })
        .collect()
}

fn information_schema_sequences(s: &Snapshot) -> Vec<Row> {
    s.sequences
        .iter()
        .map(|q| {
            let bits = match q.data_type {
                DataType::Int2 => 16,
                DataType::Int4 => 32,
                _ => 64,
            };
            vec![
                text(DATABASE_NAME),
                text("public"),
                text(&q.name),
                text(&q.data_type.sql_name()),
                Value::Int4(bits),
                Value::Int4(2),
                Value::Int4(0),
                text(&q.start.to_string()),
                text(&q.min.to_string()),
                text(&q.max.to_string()),
                text(&q.increment.to_string()),
                text(if q.cycle { "YES" } else { "NO" }),
            ]
        })
        .collect()
}

fn attributes(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in &s.tables {
        for c in visible_columns(t) {
            // (An array of text has text's collation.)
            let element = c.data_type.element().unwrap_or(c.data_type);
            let collation = if element.is_string() { DEFAULT_COLLATION_OID } else { 0 };
            rows.push(vec![
                Value::Int8(table_oid(t)),
                text(&c.name),
                Value::Int8(i64::from(c.data_type.oid())),
                Value::Int4(-1),
                Value::Int2(c.data_type.type_len()),
                Value::Int2(i16::try_from(c.id).unwrap_or(i16::MAX)),
                Value::Int4(i32::from(c.data_type.element().is_some())),
                Value::Int4(-1),
                Value::Int4(type_modifier(c.data_type)),
                Value::Bool(c.data_type.type_len() > 0),
                text(if c.data_type.type_len() == 8 { "d" } else { "i" }),
                text(if c.data_type.type_len() > 0 { "p" } else { "x" }),
                text(""),
                Value::Bool(!c.nullable),
                Value::Bool(c.default.is_some()),
                Value::Bool(c.missing.is_some()),
                // attidentity: `a` for GENERATED ALWAYS, `d` for an
                // identity added BY DEFAULT (SpanDB cannot tell a CREATE
                // TABLE's BY DEFAULT one from a SERIAL: both say none).
                text(match (c.identity_always, c.identity_sequence) {
                    (true, _) => "a",
                    (false, Some(_)) => "d",
                    (false, None) => "",
                }),
                text(""),
                Value::Bool(false),
                Value::Bool(true),
                Value::Int4(0),
                Value::Int8(collation),
                Value::Null,
                Value::Null,
            ]);
        }
    }
    rows
}

fn types(_: &Snapshot) -> Vec<Row> {
    TYPES
        .iter()
        .map(|t| {
            let collation = if t.category == "S" && t.oid != 19 { DEFAULT_COLLATION_OID } else { 0 };
            vec![
                Value::Int8(t.oid),
                text(t.name),
                Value::Int8(PG_CATALOG_OID),
                Value::Int8(ROLE_OID),
                Value::Int2(t.len),
                Value::Bool(t.len > 0 && t.len <= 8),
                text("b"),
                text(t.category),
                Value::Bool(matches!(t.oid, 16 | 25 | 701)),
                Value::Bool(true),
                text(","),
                Value::Int8(0),
                Value::Int8(t.element),
                Value::Int8(t.array),
                Value::Bool(false),
                Value::Int8(0),
                Value::Int4(-1),
                Value::Int4(0),
                Value::Int8(collation),
                Value::Null,
            ]
        })
        .collect()
}

fn indexes(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in s.tables.iter().filter(|t| t.view.is_none()) {
        for i in visible_indexes(t) {
            let n = Value::Int2(i16::try_from(i.columns.len()).unwrap_or(i16::MAX));
            let key: Vec<String> = i.columns.iter().map(|(id, _)| id.to_string()).collect();
            let primary = i.id == PRIMARY_INDEX_ID;
            rows.push(vec![
                Value::Int8(index_oid(t, i.id)),
                Value::Int8(table_oid(t)),
                n.clone(),
                n,
                Value::Bool(i.unique),
                Value::Bool(false),
                Value::Bool(primary),
                Value::Bool(false),
                Value::Bool(true),
                Value::Bool(false),
                Value::Bool(true),
                Value::Bool(false),
                Value::Bool(true),
                Value::Bool(true),
                Value::Bool(false),
                text(&key.join(" ")),
                Value::Null,
                Value::Null,
            ]);
        }
    }
    rows
}

fn access_methods(_: &Snapshot) -> Vec<Row> {
    vec![
        vec![Value::Int8(HEAP_AM_OID), text("heap"), text("heap_tableam_handler"), text("t")],
        vec![Value::Int8(BTREE_AM_OID), text("btree"), text("bthandler"), text("i")],
    ]
}

fn defaults(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in &s.tables {
        for c in visible_columns(t) {
            if let Some(default) = &c.default {
                rows.push(vec![
                    // Oids of pg_attrdef rows are their own space; the
                    // column id keeps them distinct within the table.
                    Value::Int8(table_oid(t) * OIDS_PER_TABLE + i64::from(c.id)),
                    Value::Int8(table_oid(t)),
                    Value::Int2(i16::try_from(c.id).unwrap_or(i16::MAX)),
                    text(default),
                ]);
            }
        }
    }
    rows
}

fn constraints(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in s.tables.iter().filter(|t| t.view.is_none() && !t.has_hidden_rowid()) {
        let oid = index_oid(t, PRIMARY_INDEX_ID);
        let key = t.primary.columns.iter().map(|(id, _)| *id);
        rows.push(constraint_row(t, oid, &t.primary.name, "p", oid, key));
    }
    for t in &s.tables {
        for (k, check) in t.checks.iter().enumerate() {
            rows.push(constraint_row(t, check_oid(t, k), &check.name, "c", 0, check.columns.iter().copied()));
        }
        for (k, fk) in t.foreign_keys.iter().enumerate() {
            let Some(referenced) = s.tables.iter().find(|r| r.name == fk.table) else { continue };
            let mut row = constraint_row(t, foreign_key_oid(t, k), &fk.name, "f", 0, fk.columns.iter().copied());
            row[11] = Value::Int8(table_oid(referenced));
            row[12] = text(fk.on_update.code());
            row[13] = text(fk.on_delete.code());
            row[14] = text("s");
            row[4] = Value::Bool(fk.deferrable);
            row[5] = Value::Bool(fk.deferred);
            row[19] = int2_array(fk.referenced.iter().copied());
            rows.push(row);
        }
    }
    rows
}

/// A `pg_constraint` row: a primary key (`p`, on its index) or a check
/// (`c`, no index) of `table`, on the columns `key`.
fn constraint_row(
    table: &TableDesc,
    oid: i64,
    name: &str,
    kind: &str,
    index_oid: i64,
    key: impl Iterator<Item = u32>,
) -> Row {
    vec![
        Value::Int8(oid),
        text(name),
        Value::Int8(PUBLIC_OID),
        text(kind),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(true),
        Value::Int8(table_oid(table)),
        Value::Int8(0),
        Value::Int8(index_oid),
        Value::Int8(0),
        Value::Int8(0),
        text(" "),
        text(" "),
        text(" "),
        Value::Bool(true),
        Value::Int4(0),
        // connoinherit: a primary key is never inherited; a check may be.
        Value::Bool(kind == "p"),
        int2_array(key),
        Value::Null,
        Value::Null,
    ]
}

fn int2_array(ids: impl Iterator<Item = u32>) -> Value {
    Value::Array(&Int2, ids.map(|id| Value::Int2(i16::try_from(id).unwrap_or(i16::MAX))).collect())
}

fn databases(_: &Snapshot) -> Vec<Row> {
    vec![vec![
        Value::Int8(DATABASE_OID),
        text(DATABASE_NAME),
        Value::Int8(ROLE_OID),
        Value::Int4(6),
        text("c"),
        Value::Bool(false),
        Value::Bool(true),
        Value::Int4(-1),
        Value::Int8(0),
        Value::Int8(0),
        Value::Int8(1663),
        text("C.UTF-8"),
        text("C.UTF-8"),
        Value::Null,
        Value::Null,
        Value::Null,
    ]]
}

fn roles(_: &Snapshot) -> Vec<Row> {
    vec![vec![
        text(ROLE_NAME),
        Value::Bool(true),
        Value::Bool(true),
        Value::Bool(true),
        Value::Bool(true),
        Value::Bool(true),
        Value::Bool(false),
        Value::Int4(-1),
        text("********"),
        Value::Null,
        Value::Bool(true),
        Value::Null,
        Value::Int8(ROLE_OID),
    ]]
}

fn collations(_: &Snapshot) -> Vec<Row> {
    [(DEFAULT_COLLATION_OID, "default", "d", ""), (950, "C", "c", "C"), (951, "POSIX", "c", "POSIX")]
        .into_iter()
        .map(|(oid, name, provider, locale)| {
            vec![
                Value::Int8(oid),
                text(name),
                Value::Int8(PG_CATALOG_OID),
                Value::Int8(ROLE_OID),
                text(provider),
                Value::Bool(true),
                Value::Int4(-1),
                text(locale),
                text(locale),
            ]
        })
        .collect()
}

fn tablespaces(_: &Snapshot) -> Vec<Row> {
    vec![
        vec![Value::Int8(1663), text("pg_default"), Value::Int8(ROLE_OID)],
        vec![Value::Int8(1664), text("pg_global"), Value::Int8(ROLE_OID)],
    ]
}

fn schemata(_: &Snapshot) -> Vec<Row> {
    ["pg_catalog", "public", "information_schema"]
        .into_iter()
        .map(|s| vec![text(DATABASE_NAME), text(s), text(ROLE_NAME)])
        .collect()
}

fn information_tables(s: &Snapshot) -> Vec<Row> {
    s.tables
        .iter()
        .map(|t| {
            let view = t.view.is_some();
            vec![
                text(DATABASE_NAME),
                text("public"),
                text(&t.name),
                text(if view { "VIEW" } else { "BASE TABLE" }),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                text(if view { "NO" } else { "YES" }),
                text("NO"),
                Value::Null,
            ]
        })
        .collect()
}

/// A table's constraints as `information_schema` lists them (those
/// `pg_constraint` has: the primary key, CHECKs, FOREIGN KEYs): name,
/// type, and for a foreign key the key itself.
fn listed_constraints(t: &TableDesc) -> Vec<(&str, &'static str, Option<&crate::catalog::ForeignKeyDesc>)> {
    let mut out = Vec::new();
    if t.view.is_none() && !t.has_hidden_rowid() {
        out.push((t.primary.name.as_str(), "PRIMARY KEY", None));
    }
    out.extend(t.checks.iter().map(|c| (c.name.as_str(), "CHECK", None)));
    out.extend(t.foreign_keys.iter().map(|fk| (fk.name.as_str(), "FOREIGN KEY", Some(fk))));
    out
}

fn yes_no(b: bool) -> Value {
    text(if b { "YES" } else { "NO" })
}

fn information_table_constraints(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in &s.tables {
        for (name, kind, fk) in listed_constraints(t) {
            rows.push(vec![
                text(DATABASE_NAME),
                text("public"),
                text(name),
                text(DATABASE_NAME),
                text("public"),
                text(&t.name),
                text(kind),
                yes_no(fk.is_some_and(|fk| fk.deferrable)),
                yes_no(fk.is_some_and(|fk| fk.deferred)),
                text("YES"),
                if kind == "PRIMARY KEY" { text("YES") } else { Value::Null },
            ]);
        }
    }
    rows
}

fn information_key_column_usage(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in &s.tables {
        for (name, kind, fk) in listed_constraints(t) {
            let columns: Vec<u32> = match (kind, fk) {
                ("PRIMARY KEY", _) => t.primary.columns.iter().map(|(id, _)| *id).collect(),
                (_, Some(fk)) => fk.columns.clone(),
                _ => continue,
            };
            // A foreign key's column's place in the referenced key, which
            // lists its columns in the referenced table's key order.
            let referenced_key = fk.and_then(|fk| {
                let r = s.tables.iter().find(|r| r.name == fk.table)?;
                let key = r.unique_key_on(&fk.referenced, None)?;
                Some(key.columns.iter().map(|(c, _)| *c).collect::<Vec<u32>>())
            });
            for (k, id) in columns.iter().enumerate() {
                let Some((_, c)) = t.column_by_id(*id) else { continue };
                let in_unique = match (fk, &referenced_key) {
                    (Some(fk), Some(key)) => key
                        .iter()
                        .position(|r| Some(r) == fk.referenced.get(k))
                        .map_or(Value::Null, |p| Value::Int4(p as i32 + 1)),
                    _ => Value::Null,
                };
                rows.push(vec![
                    text(DATABASE_NAME),
                    text("public"),
                    text(name),
                    text(DATABASE_NAME),
                    text("public"),
                    text(&t.name),
                    text(&c.name),
                    Value::Int4(k as i32 + 1),
                    in_unique,
                ]);
            }
        }
    }
    rows
}

fn information_referential_constraints(s: &Snapshot) -> Vec<Row> {
    let rule = |a: crate::catalog::ReferentialAction| text(a.sql());
    let mut rows = Vec::new();
    for t in &s.tables {
        for fk in &t.foreign_keys {
            let referenced = s.tables.iter().find(|r| r.name == fk.table);
            let unique = referenced.and_then(|r| r.unique_key_on(&fk.referenced, None)).map(|i| i.name.clone());
            rows.push(vec![
                text(DATABASE_NAME),
                text("public"),
                text(&fk.name),
                text(DATABASE_NAME),
                text("public"),
                unique.map_or(Value::Null, Value::Text),
                text("NONE"),
                rule(fk.on_update),
                rule(fk.on_delete),
            ]);
        }
    }
    rows
}

fn information_columns(s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in &s.tables {
        for (position, c) in visible_columns(t).enumerate() {
            let ty = c.data_type;
            let length = match ty {
                DataType::Varchar(Some(n)) | DataType::Char(n) => Value::Int4(i32::try_from(n).unwrap_or(i32::MAX)),
                _ => Value::Null,
            };
            let octets = match ty {
                DataType::Varchar(Some(n)) | DataType::Char(n) => {
                    Value::Int4(i32::try_from(u64::from(n) * 4).unwrap_or(i32::MAX))
                }
                t if t.is_string() => Value::Int4(1_073_741_824),
                _ => Value::Null,
            };
            let (precision, radix, scale) = match ty {
                DataType::Int2 => (Value::Int4(16), Value::Int4(2), Value::Int4(0)),
                DataType::Int4 => (Value::Int4(32), Value::Int4(2), Value::Int4(0)),
                DataType::Int8 => (Value::Int4(64), Value::Int4(2), Value::Int4(0)),
                DataType::Float4 => (Value::Int4(24), Value::Int4(2), Value::Null),
                DataType::Float8 => (Value::Int4(53), Value::Int4(2), Value::Null),
                DataType::Numeric(Some(m)) => {
                    (Value::Int4(m.precision.into()), Value::Int4(10), Value::Int4(m.scale.into()))
                }
                DataType::Numeric(None) => (Value::Null, Value::Int4(10), Value::Null),
                _ => (Value::Null, Value::Null, Value::Null),
            };
            let type_name = match ty {
                DataType::Varchar(_) => "character varying".to_string(),
                DataType::Char(_) => "character".to_string(),
                DataType::Numeric(_) => "numeric".to_string(),
                DataType::Array(_) => "ARRAY".to_string(),
                t => t.sql_name(),
            };
            let udt = TYPES.iter().find(|r| r.oid == i64::from(ty.oid())).map_or("", |r| r.name);
            rows.push(vec![
                text(DATABASE_NAME),
                text("public"),
                text(&t.name),
                text(&c.name),
                Value::Int4(i32::try_from(position + 1).unwrap_or(i32::MAX)),
                c.default.as_deref().map_or(Value::Null, text),
                text(if c.nullable { "YES" } else { "NO" }),
                text(&type_name),
                length,
                octets,
                precision,
                radix,
                scale,
                match ty {
                    t if t.is_timestamp() || t == DataType::Time => Value::Int4(6),
                    DataType::Date => Value::Int4(0),
                    _ => Value::Null,
                },
                text(DATABASE_NAME),
                text("pg_catalog"),
                text(udt),
                text("NO"),
                text("NEVER"),
                text(if t.view.is_some() { "NO" } else { "YES" }),
            ]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDesc, IndexDesc};

    fn sample() -> Snapshot {
        let mut t = TableDesc::new("accounts");
        t.id = 100;
        t.columns = vec![
            ColumnDesc {
                id: 1,
                name: "aid".into(),
                data_type: DataType::Int4,
                nullable: false,
                default: None,
                hidden: false,
                missing: None,
                identity_always: false,
                identity_sequence: None,
                comment: None,
            },
            ColumnDesc {
                id: 2,
                name: "filler".into(),
                data_type: DataType::Char(84),
                nullable: true,
                default: Some("'x'".into()),
                hidden: false,
                missing: None,
                identity_always: false,
                identity_sequence: None,
                comment: None,
            },
        ];
        t.primary.columns = vec![(1, Direction::Asc)];
        t.indexes = vec![IndexDesc {
            id: 2,
            name: "by filler".into(),
            unique: false,
            columns: vec![(2, Direction::Desc)],
            write_only: false,
        }];
        let sequence = SequenceDesc::new("s", &Default::default()).expect("the defaults are valid");
        let registry = Arc::new(crate::backends::Registry::default());
        let backend = crate::backends::Backend::new(Arc::default(), Arc::default(), "alice", 5);
        let backend = backend.renewed(Arc::default(), Arc::default(), Some(registry));
        backend.set_pid(77);
        backend.statement_started("SELECT 1", 6, 6);
        let settings = [("timezone".to_string(), "Europe/Paris".to_string()), ("app.user".into(), "7".into())];
        let startup = [("application_name".to_string(), "psql".to_string())];
        let (settings, startup) = (settings.into_iter().collect(), startup.into_iter().collect());
        let view = SessionView { backend: &backend, settings: &settings, startup: &startup, cursors: &Vec::new };
        Snapshot {
            tables: vec![Arc::new(t)],
            sequences: vec![SequenceDesc { id: 7, ..sequence }],
            backends: view.backends(),
            settings: view.settings(),
            cursors: Vec::new(),
            sequence_values: Vec::new(),
        }
    }

    #[test]
    fn every_row_fits_its_relation() {
        let s = sample();
        for r in RELATIONS {
            for row in r.rows(&s) {
                assert_eq!(row.len(), r.columns.len(), "{}.{}", r.schema, r.name);
                for (v, (name, t)) in row.iter().zip(r.columns) {
                    assert!(
                        v.data_type().is_none_or(|vt| vt == t.base()),
                        "{}.{}.{name}: {v:?} is not {t}",
                        r.schema,
                        r.name
                    );
                }
            }
        }
    }

    #[test]
    fn definitions_read_like_postgresql() {
        let s = sample();
        let t = &s.tables[0];
        assert_eq!(
            index_definition(t, 1).unwrap(),
            "CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (aid)"
        );
        assert_eq!(
            index_definition(t, 2).unwrap(),
            "CREATE INDEX \"by filler\" ON public.accounts USING btree (filler DESC)"
        );
        assert_eq!(constraint_definition(t, 1).unwrap(), "PRIMARY KEY (aid)");
        assert_eq!(format_type(1042, Some(88)).unwrap(), "character(84)");
        assert_eq!(format_type(1043, Some(-1)).unwrap(), "character varying");
        assert_eq!(format_type(1007, None).unwrap(), "integer[]");
        assert_eq!(format_type(4242, None), None);
        for oid in [16, 20, 21, 23, 25, 700, 701, 1042, 1043, 1114, 1007, 1009] {
            let name = format_type(oid, None).unwrap();
            assert_eq!(type_oid_by_name(&name), Some(oid), "{name}");
        }
        assert_eq!(type_oid_by_name("pg_catalog.INT8"), Some(20));
        assert_eq!(type_oid_by_name("nonesuch"), None);
    }

    #[test]
    fn oids_are_stable_and_distinct() {
        let s = sample();
        let t = &s.tables[0];
        assert_eq!(table_oid(t), USER_OID_MIN + 100 * OIDS_PER_TABLE);
        assert_ne!(index_oid(t, 1), index_oid(t, 2));
        assert_ne!(index_oid(t, 1), table_oid(t));
        let oids: Vec<Value> = classes(&s).into_iter().map(|r| r[0].clone()).collect();
        // The table, its indexes and the sequence, each with its own.
        assert_eq!(oids.len(), 4);
        let distinct: std::collections::BTreeSet<String> = oids.iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(distinct.len(), 4);
        assert_eq!(classes(&s).into_iter().map(|r| r[0].clone()).collect::<Vec<_>>(), oids);
    }
}
