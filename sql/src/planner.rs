//! The planner: binds a parsed statement to the catalog (names to
//! columns, types checked) and builds its [`Plan`], then optimizes it
//! ([`crate::optimizer`]).
//!
//! Binding works against a stack of scopes: the columns the current query
//! level can see (its FROM clause), and, for correlated subqueries, the
//! levels around it. A name is looked up innermost first; a name found
//! `d` levels out becomes `Expr::Outer { depth: d, .. }`.
//!
//! Types follow PostgreSQL: a string literal has no type of its own until
//! context gives it one (`id = '7'` compares integers), NULL has every
//! type, numbers mix across widths, and everything else must match or is
//! 42883 / 42804.
//!
//! Aggregation: when a SELECT groups or aggregates, its aggregate calls and
//! GROUP BY expressions are bound over the FROM scope and become the
//! Aggregate node's columns; the select list, HAVING and ORDER BY are then
//! bound over those (an expression equal to a GROUP BY expression, or an
//! aggregate call, is a column; a bare column that is neither is 42803).
//!
//! Window functions (`rank() OVER (...)`, `planner/window.rs`) come after
//! aggregation: their arguments, PARTITION BY and ORDER BY bind as the
//! select list does, and each call becomes a column of a Window node
//! that the select list and ORDER BY then read.

mod foreign_keys;
mod grouping_sets;
pub use foreign_keys::{dangling_rows_queries, reference_of, resolve_foreign_key};
mod set_returning;
mod window;

use std::sync::Arc;

use sqlparser::ast;
use sqlparser::ast::Spanned;

use crate::catalog::{Catalog, ColumnDesc, IndexDesc, TableDesc, ROWID_COLUMN};
use crate::encoding::Direction;
use crate::error::{Error, Result, SqlState};
use crate::functions;
use crate::kv::Transaction;
use crate::limits;
use crate::ops::{self, BinaryOp, UnaryOp};
use crate::parser::{ident, position_of};
use crate::plan::*;
use crate::sql_err;
use crate::system;
use crate::types::{DataType, Value};

/// A column a scope can see.
#[derive(Debug, Clone)]
struct ScopeColumn {
    /// The table (alias) it belongs to, if any.
    table: Option<String>,
    name: String,
    data_type: Option<DataType>,
    hidden: bool,
    /// The right-hand copy of a USING/NATURAL join column: reachable only
    /// qualified (`c.id`), not as `id` nor in `*`.
    merged_away: bool,
    /// The merged USING/NATURAL join column: first in `*`.
    join_key: bool,
    /// A table's NOT NULL column (a primary key's): NULL in it means a
    /// LEFT JOIN's missing row.
    not_null: bool,
}

/// The columns of one query level's row.
#[derive(Debug, Clone, Default)]
struct Scope {
    columns: Vec<ScopeColumn>,
}

impl Scope {
    fn from_table(table: &TableDesc, alias: &str) -> Scope {
        Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    table: Some(alias.to_string()),
                    name: c.name.clone(),
                    data_type: Some(c.data_type),
                    hidden: c.hidden,
                    merged_away: false,
                    join_key: false,
                    not_null: !c.nullable,
                })
                .collect(),
        }
    }

    /// Columns of the given types without names (an Aggregate's row).
    fn unnamed(types: &[DataType]) -> Scope {
        Scope {
            columns: types
                .iter()
                .map(|t| ScopeColumn {
                    table: None,
                    name: String::new(),
                    data_type: Some(*t),
                    hidden: true,
                    merged_away: false,
                    join_key: false,
                    not_null: false,
                })
                .collect(),
        }
    }

    fn join(mut self, other: Scope) -> Scope {
        self.columns.extend(other.columns);
        self
    }

    /// The position of `table.name` (or `name`): Ok(None) if absent,
    /// 42702 if ambiguous.
    fn find(&self, table: Option<&str>, name: &str) -> Result<Option<usize>> {
        let mut found = None;
        for (i, c) in self.columns.iter().enumerate() {
            let visible = table.is_some() || !c.merged_away;
            if visible && c.name == name && table.is_none_or(|t| c.table.as_deref() == Some(t)) {
                if found.is_some() {
                    return sql_err!(AmbiguousColumn, "column reference \"{name}\" is ambiguous");
                }
                found = Some(i);
            }
        }
        Ok(found)
    }

    fn has_table(&self, table: &str) -> bool {
        self.columns.iter().any(|c| c.table.as_deref() == Some(table))
    }
}

/// A bound expression with its type (`None`: an untyped NULL or string
/// literal whose type context decides).
#[derive(Debug, Clone)]
struct Bound {
    expr: Expr,
    ty: Option<DataType>,
    /// An untyped string literal (its text, for coercion by context).
    literal: Option<String>,
}

impl Bound {
    fn typed(expr: Expr, ty: DataType) -> Bound {
        Bound { expr, ty: Some(ty), literal: None }
    }
}

/// How the current level binds aggregate-aware expressions.
struct AggContext {
    /// GROUP BY expressions as SQL text, in Aggregate column order.
    group_texts: Vec<String>,
    /// Aggregate calls as SQL text, in order (after the group columns).
    agg_texts: Vec<String>,
    /// The types of the Aggregate node's columns.
    types: Vec<DataType>,
    /// What a subquery sees of the Aggregate's row: the GROUP BY columns
    /// that are plain columns, by their names (anything else unnamed).
    outer_scope: Scope,
    /// Under grouping sets, the column of each row's set id and the ids
    /// ([`grouping_sets`]).
    grouping: Option<(usize, Vec<i32>)>,
}

/// Binds statements. Holds the transaction for catalog reads.
pub struct Planner<'a> {
    txn: &'a mut dyn Transaction,
    /// The statement's text (for error positions).
    sql: &'a str,
    /// Types of `$n` parameters, as known or inferred.
    pub param_types: Vec<Option<DataType>>,
    /// Enclosing levels' scopes, outermost first.
    outer: Vec<Scope>,
    /// The current level's aggregate context, if it aggregates.
    agg: Option<AggContext>,
    /// The current level's window calls, once its Window node is built.
    window: Option<window::WindowContext>,
    depth: usize,
    /// Remembered table ids (optional).
    names: Option<&'a crate::catalog::NameCache>,
    /// Leased descriptors a read-only statement may use (optional).
    leases: Option<&'a crate::catalog::LeaseUse<'a>>,
    /// The names of the tables looked up so far.
    used_tables: Vec<String>,
    /// The WITH clauses in scope, outermost first.
    ctes: Vec<CteFrame>,
    /// The recursive WITH queries whose step is being planned, innermost
    /// last: a reference to one's name in its step reads its work table.
    work_tables: Vec<WorkTableBinding>,
    /// The next [`Node::WorkTable`] id.
    next_work_table: usize,
    /// Every descriptor, once the statement reads a system relation or a
    /// catalog function (`system`).
    system: Option<Arc<system::Snapshot>>,
    /// The session's user (`current_user`); `system::ROLE_NAME` if unset.
    user: Option<&'a str>,
    /// What the session shows of itself and its gateway's sessions
    /// (`pg_settings`, `pg_stat_activity`); `None`: nothing.
    session: Option<system::SessionView<'a>>,
    /// Where a transaction block's statement reads the whole catalog
    /// from without locking it (`system`): the engine and the tables the
    /// block owns ([`Catalog::tables_without_locks`]).
    unlocked_catalog: Option<(&'a dyn crate::kv::Engine, std::collections::BTreeSet<u32>)>,
    /// `INSERT ... SELECT`: the SELECT (its address) whose select list
    /// feeds the target columns, and their types. Untyped literals and
    /// parameters there take the target column's type, as PostgreSQL
    /// leaves them unknown until assigned (`INSERT INTO t (j) SELECT
    /// '{"a": 1}'` into jsonb); only there, not through a UNION or a
    /// subquery.
    insert_select: Option<(usize, Vec<DataType>)>,
    /// The top-level WITH of the statement is next to be planned: it may
    /// hold data-modifying queries ([`Planner::with_ctes`]).
    top_with: bool,
    /// The statement's data-modifying WITH queries, planned, in order.
    modifying: Vec<ModifyingPart>,
    /// Where in `used_tables` the lookups of constraint checks lie (they
    /// are not reads of the statement's own: [`Planner::check_modifying`]).
    constraint_lookups: Vec<std::ops::Range<usize>>,
}

/// A part of a statement with data-modifying WITH queries: one of those
/// queries, or the statement itself; the table it changes, and where in
/// `used_tables` the tables it looked up while planned lie.
struct ModifyingPart {
    step: Option<ModifyingStep>,
    target: Option<String>,
    lookups: std::ops::Range<usize>,
    /// Its foreign keys' actions write other tables.
    cascades: bool,
}

/// One WITH clause's queries, by name; the first `visible` of them may be
/// referenced (a query sees the ones before it, not itself: no
/// recursion).
#[derive(Clone)]
struct CteFrame {
    ctes: Vec<(String, ast::Cte)>,
    visible: usize,
    /// WITH RECURSIVE: a query of the form `base UNION [ALL] step` may
    /// name itself in its step.
    recursive: bool,
    /// Per query, if it is data-modifying: the id of the rows its
    /// RETURNING gave ([`Node::WorkTable`]) and their columns.
    materialized: Vec<Option<(usize, Vec<OutputColumn>)>>,
}

/// A recursive WITH query's name, as its step sees it: the rows its
/// last round added.
struct WorkTableBinding {
    name: String,
    id: usize,
    columns: Vec<OutputColumn>,
    alias_columns: Vec<ast::TableAliasColumnDef>,
    /// The step named it (else the query is not recursive at all).
    used: bool,
    /// How many expression subqueries enclosed the step (`outer`'s
    /// length): a reference inside one more is refused (42P19), as in
    /// PostgreSQL (a subquery that reads no outer row runs once, so
    /// would read the first round's rows in every round).
    outer_depth: usize,
}

pub(crate) fn object_name(name: &ast::ObjectName) -> Result<String> {
    match schema_and_name(name)? {
        (None | Some("public"), n) => Ok(n.to_string()),
        _ => sql_err!(FeatureNotSupported, "schemas other than public are not supported: {name}"),
    }
}

/// A name's parts, case-folded: `[schema.]name`.
fn name_parts(name: &ast::ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Ok(ident(i)),
            other => sql_err!(FeatureNotSupported, "unsupported name {other}"),
        })
        .collect()
}

fn schema_and_name(name: &ast::ObjectName) -> Result<(Option<&'static str>, String)> {
    let parts = name_parts(name)?;
    match parts.as_slice() {
        [n] => Ok((None, n.clone())),
        [schema, n] => match schema.as_str() {
            "public" => Ok((Some("public"), n.clone())),
            "pg_catalog" => Ok((Some("pg_catalog"), n.clone())),
            "information_schema" => Ok((Some("information_schema"), n.clone())),
            _ => sql_err!(InvalidSchemaName, "schema \"{schema}\" does not exist"),
        },
        _ => sql_err!(FeatureNotSupported, "cross-database references are not implemented: {name}"),
    }
}

/// A function's or type's name: built-ins may be qualified with
/// `pg_catalog`, as psql and drivers write them.
fn builtin_name(name: &ast::ObjectName) -> Result<String> {
    match schema_and_name(name)? {
        (None | Some("pg_catalog"), n) => Ok(json_as_jsonb(n)),
        (Some(schema), n) => sql_err!(UndefinedFunction, "function {schema}.{n} does not exist"),
    }
}

/// json's functions are jsonb's, as json is jsonb here (`types`):
/// `json_build_object` builds a jsonb document (its keys in jsonb's
/// order, where PostgreSQL's json keeps the order written).
fn json_as_jsonb(name: String) -> String {
    match name.as_str() {
        "to_json" => "to_jsonb".into(),
        "json_build_object"
        | "json_build_array"
        | "json_agg"
        | "json_object_agg"
        | "json_typeof"
        | "json_array_length"
        | "json_extract_path"
        | "json_extract_path_text"
        | "json_strip_nulls"
        | "json_array_elements"
        | "json_array_elements_text"
        | "json_object_keys"
        | "json_each"
        | "json_each_text" => format!("jsonb{}", &name["json".len()..]),
        _ => name,
    }
}

/// Functions [`Planner::bind_catalog_function`] binds.
const CATALOG_FUNCTIONS: &[&str] = &[
    "version",
    "current_schema",
    "current_schemas",
    "current_database",
    "current_user",
    "session_user",
    "user",
    "current_role",
    "pg_get_userbyid",
    "pg_table_is_visible",
    "pg_type_is_visible",
    "pg_function_is_visible",
    "pg_opclass_is_visible",
    "pg_opfamily_is_visible",
    "pg_operator_is_visible",
    "pg_ts_config_is_visible",
    "pg_tablespace_location",
    "has_database_privilege",
    "has_schema_privilege",
    "has_table_privilege",
    "has_column_privilege",
    "has_function_privilege",
    "pg_table_size",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_get_viewdef",
    "pg_get_function_result",
    "pg_get_function_arguments",
    "pg_get_triggerdef",
    "pg_relation_is_publishable",
    "pg_encoding_to_char",
    "obj_description",
    "col_description",
    "shobj_description",
    "pg_get_statisticsobjdef_columns",
    "pg_get_expr",
    "format_type",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_partition_ancestors",
    "pg_get_serial_sequence",
];

/// `CASE key WHEN k1 THEN v1 ... ELSE otherwise END`, typed text (a
/// catalog lookup over the statement's snapshot).
fn lookup(key: Expr, whens: Vec<(Expr, Expr)>, otherwise: Expr) -> Bound {
    Bound::typed(Expr::Case { operand: Some(Box::new(key)), whens, otherwise: Box::new(otherwise) }, DataType::Text)
}

/// The text of `'name'::regclass` (or `CAST('name' AS regclass)`).
fn regclass_literal(e: &ast::Expr) -> Option<String> {
    let ast::Expr::Cast { expr, data_type, .. } = e else { return None };
    if reg_type(data_type).as_deref() != Some("regclass") {
        return None;
    }
    match &**expr {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The oid alias type a cast names (`regclass`, ...), if any.
fn reg_type(t: &ast::DataType) -> Option<String> {
    let name = match t {
        ast::DataType::Regclass => return Some("regclass".into()),
        ast::DataType::Custom(name, _) => name,
        _ => return None,
    };
    builtin_name(name).ok().filter(|n| matches!(n.as_str(), "regclass" | "regtype" | "regnamespace" | "regproc"))
}

/// The function behind a bitwise operator (`&`, `|`, `#`, `<<`, `>>`).
fn bitwise_function(op: &ast::BinaryOperator) -> Option<&'static str> {
    use ast::BinaryOperator as B;
    Some(match op {
        B::BitwiseAnd => "bitand",
        B::BitwiseOr => "bitor",
        B::PGBitwiseXor => "bitxor",
        B::PGBitwiseShiftLeft => "shiftleft",
        B::PGBitwiseShiftRight => "shiftright",
        _ => return None,
    })
}

/// The function behind a regular-expression operator (`~`, `!~`, `~*`,
/// `!~*`, also spelled `OPERATOR(pg_catalog.~)`): PostgreSQL's names.
/// Whether `op` is one only jsonb has (`->`, `@>`, `?` and the rest).
fn jsonb_operator(op: &ast::BinaryOperator) -> bool {
    use ast::BinaryOperator as B;
    matches!(
        op,
        B::Arrow
            | B::LongArrow
            | B::HashArrow
            | B::HashLongArrow
            | B::AtArrow
            | B::ArrowAt
            | B::Question
            | B::QuestionPipe
            | B::QuestionAnd
            | B::HashMinus
    )
}

fn regex_function(op: &ast::BinaryOperator) -> Option<&'static str> {
    use ast::BinaryOperator as B;
    let symbol = match op {
        B::PGRegexMatch => "~",
        B::PGRegexIMatch => "~*",
        B::PGRegexNotMatch => "!~",
        B::PGRegexNotIMatch => "!~*",
        B::PGCustomBinaryOperator(parts) if parts.len() <= 2 && (parts.len() == 1 || parts[0] == "pg_catalog") => {
            parts.last()?.as_str()
        }
        _ => return None,
    };
    Some(match symbol {
        "~" => "textregexeq",
        "~*" => "texticregexeq",
        "!~" => "textregexne",
        "!~*" => "texticregexne",
        _ => return None,
    })
}

/// A column definition as CREATE TABLE and ADD COLUMN take it.
struct ColumnDef {
    column: ColumnDesc,
    primary_key: bool,
    unique: bool,
    /// CHECK constraints: a name if given, the expression.
    checks: Vec<(Option<String>, ast::Expr)>,
    /// REFERENCES options.
    foreign_keys: Vec<ForeignKeyDef>,
}

/// What a SERIAL or IDENTITY column's values come from: a random
/// positive bigint per row.
const GENERATED_KEY_DEFAULT: &str = "unique_rowid()";

/// PostgreSQL's serial pseudo-types: column types only (elsewhere, as
/// in PostgreSQL, no type has their names).
const SERIAL_TYPES: &[&str] = &["serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"];

/// Whether `t` is one of PostgreSQL's serial pseudo-types.
fn is_serial(t: &ast::DataType) -> bool {
    match t {
        ast::DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            builtin_name(name).is_ok_and(|n| SERIAL_TYPES.contains(&n.as_str()))
        }
        _ => false,
    }
}

/// `FOR UPDATE SKIP LOCKED` of `table` over a query's rows (`node`):
/// PostgreSQL's job-queue read. The table's rows are read without locks
/// and sorted; then, as the LIMIT takes them, each is locked without
/// waiting and read again: one another transaction holds, or one gone, is
/// passed over; one that changed since (another worker took it and let it
/// go) is checked against the WHERE again and its columns computed from
/// the row as it is now. So each row the query returns is locked, and the
/// LIMIT counts only those. The node's input carries each row of `table`
/// whole as hidden columns, which a projection above drops:
///
/// ```text
///   Limit                          Limit
///     Project (select list)   =>     Project (select list only)
///       Sort                           LockRows (SKIP LOCKED, row at k)
///         Project (a, b)                 Project (select list)
///           Filter                         Sort
///             Scan t                         Project (a, b, t's columns from k)
///                                              Filter
///                                                Scan t (read without locks)
/// ```
fn skip_locked(node: Node, table: u32) -> Result<Node> {
    if let Node::Limit { input, limit, offset } = node {
        return Ok(Node::Limit { input: Box::new(skip_locked(*input, table)?), limit, offset });
    }
    let visible = node.width();
    let (input, desc, row_at) = carrying_row(node, table)?;
    let Some((filter, output)) = SkipLocked::recheck_of(&input) else {
        return sql_err!(InternalError, "SKIP LOCKED's input is not a projection of a scan");
    };
    let skip_locked = Some(SkipLocked { table: desc, row_at, filter, output });
    let locked = Node::LockRows { input: Box::new(input), table: None, exclusive: true, no_wait: false, skip_locked };
    Ok(Node::Project { input: Box::new(locked), exprs: (0..visible).map(Expr::Column).collect() })
}

/// `node` made to carry, after its columns, the row of `table` each of
/// its rows came from: `(node, the table, where the row begins)`. Only
/// projections and sorts over a filtered scan of `table` can; a
/// subquery in a projection over another (a derived table's) is refused,
/// as the re-check ([`SkipLocked::recheck_of`]) computes it from the
/// table's row, which its outer references do not name.
fn carrying_row(node: Node, table: u32) -> Result<(Node, Arc<TableDesc>, usize)> {
    fn scanned(node: &Node, table: u32) -> Option<Arc<TableDesc>> {
        match node {
            Node::Scan { table: t, .. } if t.id == table => Some(t.clone()),
            Node::Filter { input, .. } => scanned(input, table),
            _ => None,
        }
    }
    let refused = || {
        sql_err!(
            FeatureNotSupported,
            "SKIP LOCKED is supported on a query of one table without grouping, DISTINCT or set operations"
        )
    };
    match node {
        Node::Project { input, mut exprs } => {
            let row_at = exprs.len();
            if let Some(desc) = scanned(&input, table) {
                exprs.extend((0..input.width()).map(Expr::Column));
                return Ok((Node::Project { input, exprs }, desc, row_at));
            }
            let mut subquery = false;
            exprs.iter().for_each(|e| {
                e.walk(&mut |e| {
                    subquery |=
                        matches!(e, Expr::Subquery(_) | Expr::Exists(_) | Expr::InSubquery(..) | Expr::ArraySubquery(_))
                })
            });
            if subquery {
                return refused();
            }
            let (input, desc, from) = carrying_row(*input, table)?;
            exprs.extend((from..from + desc.columns.len()).map(Expr::Column));
            Ok((Node::Project { input: Box::new(input), exprs }, desc, row_at))
        }
        Node::Sort { input, keys } => {
            let (input, desc, row_at) = carrying_row(*input, table)?;
            Ok((Node::Sort { input: Box::new(input), keys }, desc, row_at))
        }
        _ => refused(),
    }
}

/// The distinct tables `node` scans (not its subqueries'): `(id, name)`.
fn scanned_tables(node: &Node, out: &mut Vec<(u32, String)>) {
    match node {
        Node::Scan { table, .. } => {
            if !out.iter().any(|(id, _)| *id == table.id) {
                out.push((table.id, table.name.clone()));
            }
        }
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Aggregate { input, .. }
        | Node::Sort { input, .. }
        | Node::Limit { input, .. }
        | Node::Distinct { input, .. }
        | Node::Window { input, .. }
        | Node::LockRows { input, .. } => scanned_tables(input, out),
        Node::Join { left, right, .. } | Node::Lateral { left, right, .. } | Node::SetOp { left, right, .. } => {
            scanned_tables(left, out);
            scanned_tables(right, out);
        }
        Node::Recursive { base, step, .. } => {
            scanned_tables(base, out);
            scanned_tables(step, out);
        }
        Node::Values { .. } | Node::Series { .. } | Node::Unnest { .. } | Node::WorkTable { .. } => {}
    }
}

/// PostgreSQL's type for a declared SQL type.
pub fn data_type(t: &ast::DataType) -> Result<DataType> {
    use ast::DataType as T;
    fn length(l: &Option<ast::CharacterLength>) -> Result<Option<u32>> {
        match l {
            None | Some(ast::CharacterLength::Max) => Ok(None),
            Some(ast::CharacterLength::IntegerLength { length, .. }) => match u32::try_from(*length) {
                Ok(n) if n > 0 && n <= 10_485_760 => Ok(Some(n)),
                _ => sql_err!(InvalidParameterValue, "length for type varchar must be between 1 and 10485760"),
            },
        }
    }
    Ok(match t {
        T::Bool | T::Boolean => DataType::Bool,
        T::SmallInt(_) | T::Int2(_) => DataType::Int2,
        T::Int(_) | T::Integer(_) | T::Int4(_) => DataType::Int4,
        T::BigInt(_) | T::Int8(_) => DataType::Int8,
        T::Real | T::Float4 => DataType::Float4,
        T::Float8 | T::DoublePrecision | T::Double(_) => DataType::Float8,
        T::Float(ast::ExactNumberInfo::Precision(p)) if *p <= 24 => DataType::Float4,
        T::Float(_) => DataType::Float8,
        T::Text | T::String(None) => DataType::Text,
        T::Varchar(l) | T::CharVarying(l) | T::CharacterVarying(l) => DataType::Varchar(length(l)?),
        T::Char(l) | T::Character(l) => DataType::Char(length(l)?.unwrap_or(1)),
        T::Bytea => DataType::Bytea,
        T::Uuid => DataType::Uuid,
        T::Numeric(info) | T::Decimal(info) | T::Dec(info) => DataType::Numeric(match *info {
            ast::ExactNumberInfo::None => None,
            ast::ExactNumberInfo::Precision(p) => Some(crate::ops::numeric::typmod(p, 0)?),
            ast::ExactNumberInfo::PrecisionAndScale(p, s) => Some(crate::ops::numeric::typmod(p, s)?),
        }),
        T::Date => DataType::Date,
        // json is jsonb here (as in CockroachDB): input normalized.
        T::JSON | T::JSONB => DataType::Jsonb,
        T::Interval { .. } => DataType::Interval,
        T::Timestamp(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => DataType::Timestamp,
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => DataType::TimestampTz,
        T::Time(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => DataType::Time,
        T::Array(ast::ArrayElemTypeDef::SquareBracket(element, _)) => {
            let element = data_type(element)?;
            match DataType::array_of(element) {
                Some(t) => t,
                None => return sql_err!(FeatureNotSupported, "arrays of {element} are not supported"),
            }
        }
        T::Custom(name, _) => match builtin_name(name)?.as_str() {
            "text" | "name" | "char" => DataType::Text,
            "bool" => DataType::Bool,
            "varchar" => DataType::Varchar(None),
            "oid" => DataType::Int8,
            "int2" => DataType::Int2,
            "int4" | "int" => DataType::Int4,
            "int8" => DataType::Int8,
            "float4" => DataType::Float4,
            "float8" => DataType::Float8,
            "bpchar" => DataType::Char(1),
            "uuid" => DataType::Uuid,
            "numeric" => DataType::Numeric(None),
            "jsonb" | "json" => DataType::Jsonb,
            "timestamptz" => DataType::TimestampTz,
            "date" => DataType::Date,
            "time" => DataType::Time,
            "timetz" => return sql_err!(FeatureNotSupported, "type time with time zone is not supported"),
            other => return sql_err!(UndefinedObject, "type \"{other}\" does not exist"),
        },
        other => return sql_err!(FeatureNotSupported, "type {other} is not supported"),
    })
}

impl<'a> Planner<'a> {
    pub fn new(txn: &'a mut dyn Transaction, sql: &'a str) -> Planner<'a> {
        Planner {
            txn,
            sql,
            param_types: Vec::new(),
            outer: Vec::new(),
            agg: None,
            window: None,
            depth: 0,
            names: None,
            leases: None,
            used_tables: Vec::new(),
            ctes: Vec::new(),
            work_tables: Vec::new(),
            next_work_table: 0,
            system: None,
            user: None,
            session: None,
            unlocked_catalog: None,
            insert_select: None,
            top_with: false,
            modifying: Vec::new(),
            constraint_lookups: Vec::new(),
        }
    }

    /// Reads the whole catalog (system relations, catalog functions)
    /// through `engine` without locks, with `own`'s tables from the
    /// statement's transaction ([`Catalog::tables_without_locks`]).
    pub fn with_unlocked_catalog(
        mut self,
        engine: &'a dyn crate::kv::Engine,
        own: std::collections::BTreeSet<u32>,
    ) -> Planner<'a> {
        self.unlocked_catalog = Some((engine, own));
        self
    }

    /// Uses (and fills) `names` to find tables.
    pub fn with_names(mut self, names: &'a crate::catalog::NameCache) -> Planner<'a> {
        self.names = Some(names);
        self
    }

    /// The user `current_user` and `session_user` name.
    pub fn with_user(mut self, user: &'a str) -> Planner<'a> {
        self.user = Some(user);
        self
    }

    /// What `pg_stat_activity` and `pg_settings` show.
    pub fn with_session(mut self, view: system::SessionView<'a>) -> Planner<'a> {
        self.session = Some(view);
        self
    }

    /// Uses (and fills) leased descriptors: only for a read-only
    /// statement reading at a strong timestamp (`catalog`, "Leases").
    pub fn with_leases(mut self, leases: &'a crate::catalog::LeaseUse<'a>) -> Planner<'a> {
        self.leases = Some(leases);
        self
    }

    /// The names of the tables the statement used (taken).
    pub fn take_used_tables(&mut self) -> Vec<String> {
        std::mem::take(&mut self.used_tables)
    }

    /// The table named `name` (42P01 if none).
    fn table(&mut self, name: &str) -> Result<Arc<TableDesc>> {
        self.used_tables.push(name.to_string());
        match (self.names, self.leases) {
            (Some(names), Some(leases)) => Catalog::must_table_leased(self.txn, name, names, leases),
            (Some(names), None) => Catalog::must_table_cached(self.txn, name, names),
            (None, _) => Catalog::must_table(self.txn, name),
        }
    }

    /// The table a write statement changes (not a view: 0A000, as
    /// PostgreSQL says of a view it cannot update).
    fn table_to_write(&mut self, name: &str, verb: &str) -> Result<Arc<TableDesc>> {
        let table = self.table(name)?;
        if table.view.is_some() {
            return sql_err!(FeatureNotSupported, "cannot {verb} view \"{name}\"");
        }
        Ok(table)
    }

    /// CREATE [OR REPLACE] VIEW: the query is planned now (to check it and
    /// learn its columns) and stored as text.
    fn plan_create_view(&mut self, create: &ast::CreateView) -> Result<Plan> {
        if create.materialized || create.or_alter || create.options != ast::CreateTableOptions::None {
            return sql_err!(FeatureNotSupported, "this form of CREATE VIEW is not supported");
        }
        let name = object_name(&create.name)?;
        let plan = self.plan_query(&create.query)?;
        if create.columns.len() > plan.columns.len() {
            return sql_err!(SyntaxError, "CREATE VIEW specifies more column names than columns");
        }
        let mut view = TableDesc { view: Some(create.query.to_string()), ..TableDesc::new(&name) };
        let names: Vec<String> = create.columns.iter().map(|c| ident(&c.name)).collect();
        add_query_columns(&mut view, &plan, &names)?;
        if view.columns.len() > limits::COLUMNS_MAX {
            return sql_err!(ProgramLimitExceeded, "views can have at most {} columns", limits::COLUMNS_MAX);
        }
        Ok(Plan::CreateView { view, or_replace: create.or_replace })
    }

    /// A view used as a table: its query, planned in a scope of its own
    /// (no outer columns, no WITH queries of the statement using it).
    fn plan_view(&mut self, view: &TableDesc, alias: Option<&ast::TableAlias>) -> Result<(Node, Scope)> {
        let text = view.view.as_deref().unwrap_or_default();
        let query = match crate::parser::parse(text)?.pop().map(|p| p.statement) {
            Some(ast::Statement::Query(q)) => q,
            _ => return sql_err!(InternalError, "the definition of view \"{}\" is not a query", view.name),
        };
        let outer = std::mem::take(&mut self.outer);
        let ctes = std::mem::take(&mut self.ctes);
        let plan = self.plan_query(&query);
        self.outer = outer;
        self.ctes = ctes;
        let plan = plan?;
        if plan.columns.len() != view.columns.len() {
            return sql_err!(
                InvalidTableDefinition,
                "view \"{}\" no longer matches its definition (a table it reads changed)",
                view.name
            );
        }
        let alias_name = alias.map(|a| ident(&a.name)).unwrap_or_else(|| view.name.clone());
        let mut scope = derived_scope(&plan, Some(alias_name));
        for (column, desc) in scope.columns.iter_mut().zip(&view.columns) {
            column.name.clone_from(&desc.name);
        }
        if let Some(a) = alias {
            rename_columns(&mut scope, &a.columns)?;
        }
        Ok((plan.root, scope))
    }

    /// Plans one statement.
    pub fn plan(&mut self, stmt: &ast::Statement) -> Result<Plan> {
        use ast::Statement as S;
        match stmt {
            S::Query(q) => {
                // Its WITH may hold data-modifying queries (only here, at
                // the top: [`Planner::with_ctes`]).
                self.top_with = q.with.is_some();
                let start = self.used_tables.len();
                let main = match dml_body(q) {
                    Some(dml) => self.plan_dml_with(q, dml),
                    None => self.plan_query(q).map(Plan::Query),
                };
                self.top_with = false;
                let main = main?;
                self.with_modifying(main, start)
            }
            S::Insert(insert) => self.plan_insert(insert),
            S::Update(update) => self.plan_update(update),
            S::Delete(delete) => self.plan_delete(delete),
            S::CreateTable(create) => self.plan_create_table(create),
            S::CreateIndex(create) => self.plan_create_index(create),
            S::CreateView(create) => self.plan_create_view(create),
            S::Drop { object_type, if_exists, names, cascade, .. } => {
                let names = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
                match object_type {
                    ast::ObjectType::Table => Ok(Plan::DropTable { names, if_exists: *if_exists, cascade: *cascade }),
                    ast::ObjectType::Index => Ok(Plan::DropIndex { names, if_exists: *if_exists }),
                    ast::ObjectType::View => Ok(Plan::DropView { names, if_exists: *if_exists, cascade: *cascade }),
                    ast::ObjectType::Sequence => Ok(Plan::DropSequence { names, if_exists: *if_exists }),
                    other => sql_err!(FeatureNotSupported, "DROP {other} is not supported"),
                }
            }
            S::AlterTable(alter) => self.plan_alter_table(alter),
            S::Comment { object_type, object_name: target, comment, .. } => {
                // An empty comment removes it, as in PostgreSQL (Django
                // drops a db_comment so).
                let comment = comment.clone().filter(|c| !c.is_empty());
                match object_type {
                    ast::CommentObject::Table | ast::CommentObject::View => {
                        Ok(Plan::Comment { table: object_name(target)?, column: None, comment })
                    }
                    ast::CommentObject::Column => {
                        let mut parts: Vec<&ast::ObjectNamePart> = target.0.iter().collect();
                        let column = match parts.pop() {
                            Some(ast::ObjectNamePart::Identifier(c)) if !parts.is_empty() => ident(c),
                            _ => return sql_err!(SyntaxError, "column name must be qualified"),
                        };
                        let table = object_name_of_parts(parts)?;
                        Ok(Plan::Comment { table, column: Some(column), comment })
                    }
                    other => sql_err!(FeatureNotSupported, "COMMENT ON {other} is not supported"),
                }
            }
            S::CreateSequence { temporary, if_not_exists, name, sequence_options } => {
                if *temporary {
                    return sql_err!(FeatureNotSupported, "temporary sequences are not supported");
                }
                let sequence =
                    crate::sequence::SequenceDesc::new(&object_name(name)?, &sequence_options_of(sequence_options)?)?;
                Ok(Plan::CreateSequence { sequence, if_not_exists: *if_not_exists })
            }
            S::Truncate(t) => {
                let tables = t.table_names.iter().map(|t| object_name(&t.name)).collect::<Result<Vec<_>>>()?;
                let cascade = t.cascade == Some(ast::CascadeOption::Cascade);
                Ok(Plan::Truncate { tables, cascade })
            }
            S::Explain { statement, analyze, .. } => {
                let plan = self.plan(statement)?;
                Ok(Plan::Explain { plan: Box::new(plan), analyze: *analyze })
            }
            other => sql_err!(FeatureNotSupported, "statement not supported: {}", first_words(&other.to_string())),
        }
    }

    // ---- queries --------------------------------------------------------

    /// Plans a query at a new nesting level.
    fn plan_query(&mut self, q: &ast::Query) -> Result<QueryPlan> {
        self.nested(|planner| planner.plan_query_inner(q))
    }

    /// Runs `plan` one query level deeper, refusing past
    /// [`limits::NESTING_DEPTH_MAX`].
    fn nested<T>(&mut self, plan: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.depth += 1;
        if self.depth > limits::NESTING_DEPTH_MAX {
            self.depth -= 1;
            return sql_err!(ProgramLimitExceeded, "queries nest too deeply (limit {})", limits::NESTING_DEPTH_MAX);
        }
        let result = plan(self);
        self.depth -= 1;
        result
    }

    /// A query, with its WITH clause (if any) in scope while its body is
    /// planned.
    fn plan_query_inner(&mut self, q: &ast::Query) -> Result<QueryPlan> {
        match &q.with {
            None => self.plan_query_body(q),
            Some(with) => self.with_ctes(with, |planner| planner.plan_query_body(q)),
        }
    }

    /// Runs `plan` with the queries of `with` in scope. The statement's
    /// top-level WITH may hold data-modifying queries (`WITH gone AS
    /// (DELETE ... RETURNING *) INSERT INTO archive SELECT * FROM gone`):
    /// each is planned here, in order, with the queries before it in
    /// scope, runs once before the statement whether or not anything
    /// reads it, and is read as the rows its RETURNING gave
    /// ([`Plan::WithModifying`]).
    fn with_ctes<T>(&mut self, with: &ast::With, plan: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let top = std::mem::take(&mut self.top_with);
        let mut ctes: Vec<(String, ast::Cte)> = Vec::new();
        for cte in &with.cte_tables {
            let name = ident(&cte.alias.name);
            if ctes.iter().any(|(n, _)| *n == name) {
                return sql_err!(DuplicateAlias, "WITH query name \"{name}\" specified more than once");
            }
            ctes.push((name, cte.clone()));
        }
        let visible = ctes.len();
        let materialized = vec![None; visible];
        let mut frame = CteFrame { ctes, visible, recursive: with.recursive, materialized };
        for i in 0..visible {
            let query = frame.ctes[i].1.query.clone();
            let Some(dml) = dml_body(&query) else { continue };
            if !top {
                return sql_err!(
                    FeatureNotSupported,
                    "WITH clause containing a data-modifying statement must be at the top level"
                );
            }
            self.ctes.push(CteFrame { visible: i, ..frame.clone() });
            let start = self.used_tables.len();
            let planned = self.plan_dml_with(&query, dml);
            self.ctes.pop();
            let planned = planned?;
            let id = self.next_work_table;
            self.next_work_table += 1;
            frame.materialized[i] = Some((id, planned.columns()));
            let target = planned.target().map(|t| t.name.clone());
            let lookups = start..self.used_tables.len();
            let cascades = planned.cascades();
            let step = ModifyingStep { id, plan: planned };
            self.modifying.push(ModifyingPart { step: Some(step), target, lookups, cascades });
        }
        self.ctes.push(frame);
        let result = plan(self);
        self.ctes.pop();
        result
    }

    /// `main`, after the statement's data-modifying WITH queries if it
    /// has any: checked that no part reads a table another changes
    /// (PostgreSQL runs them all on one snapshot, so none sees another's
    /// changes; here each sees the ones before it, so such a statement is
    /// refused rather than answered differently). `start`: where the
    /// statement's lookups begin in `used_tables`.
    fn with_modifying(&mut self, main: Plan, start: usize) -> Result<Plan> {
        if self.modifying.is_empty() {
            return Ok(main);
        }
        let steps_end = self.modifying.last().map_or(start, |p| p.lookups.end);
        let target = main.target().map(|t| t.name.clone());
        let mut parts = std::mem::take(&mut self.modifying);
        let cascades = main.cascades();
        parts.push(ModifyingPart { step: None, target, lookups: steps_end..self.used_tables.len(), cascades });
        self.check_modifying(&parts)?;
        let steps = parts.into_iter().filter_map(|p| p.step).collect();
        Ok(Plan::WithModifying { steps, main: Box::new(main) })
    }

    /// Refuses (0A000) a statement one part of which reads or writes a
    /// table another part changes (two parts writing one table would
    /// also see each other's rows: an INSERT's duplicate key would go
    /// unnoticed), or a part whose foreign keys cascade (the referencing
    /// tables it changes are not known here; PostgreSQL cascades at the
    /// end of the statement).
    fn check_modifying(&self, parts: &[ModifyingPart]) -> Result<()> {
        if parts.iter().any(|p| p.cascades) {
            return sql_err!(
                FeatureNotSupported,
                "data-modifying WITH queries over a table whose foreign keys cascade are not supported"
            );
        }
        for (i, part) in parts.iter().enumerate() {
            let reads = part.lookups.clone().filter(|at| !self.constraint_lookups.iter().any(|r| r.contains(at)));
            for name in reads.map(|at| &self.used_tables[at]) {
                let changed = parts.iter().enumerate().any(|(j, other)| j != i && other.target.as_ref() == Some(name));
                if changed {
                    return sql_err!(
                        FeatureNotSupported,
                        "reading or writing table \"{name}\", which another part of the statement changes in a data-modifying WITH query, is not supported"
                    );
                }
            }
        }
        Ok(())
    }

    /// `WITH ... INSERT | UPDATE | DELETE`: the statement, planned with
    /// the WITH queries in scope (its source, FROM, WHERE and RETURNING
    /// may read them, as a job queue's `WITH next AS (SELECT ... FOR
    /// UPDATE SKIP LOCKED) UPDATE jobs ... FROM next` does). The WITH
    /// queries themselves must be queries: a data-modifying WITH query is
    /// 0A000 ([`Planner::plan_set_expr`]).
    fn plan_dml_with(&mut self, q: &ast::Query, dml: &ast::Statement) -> Result<Plan> {
        if q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
            return sql_err!(
                SyntaxError,
                "ORDER BY, LIMIT and FOR UPDATE do not apply to {}",
                first_words(&dml.to_string())
            );
        }
        match &q.with {
            None => self.plan(dml),
            Some(with) => self.nested(|planner| planner.with_ctes(with, |planner| planner.plan(dml))),
        }
    }

    /// The WITH query `name` refers to, if one is in scope: its frame,
    /// position and definition.
    fn find_cte(&self, name: &str) -> Option<(usize, usize, ast::Cte)> {
        self.ctes.iter().enumerate().rev().find_map(|(f, frame)| {
            frame.ctes[..frame.visible].iter().position(|(n, _)| n == name).map(|c| (f, c, frame.ctes[c].1.clone()))
        })
    }

    /// Plans a reference to WITH query `c` of frame `f`, in the scope it
    /// was defined in (the WITH queries before it, no later ones).
    fn plan_cte(&mut self, f: usize, c: usize, cte: &ast::Cte) -> Result<QueryPlan> {
        let mut defined = self.ctes[..=f].to_vec();
        defined[f].visible = c;
        let recursive = defined[f].recursive;
        let saved = std::mem::replace(&mut self.ctes, defined);
        let plan = if recursive { self.plan_recursive_cte(cte) } else { self.plan_query(&cte.query) };
        self.ctes = saved;
        plan
    }

    /// A query of a WITH RECURSIVE: `base UNION [ALL] step` whose step
    /// names the query itself is a [`Node::Recursive`], its columns typed
    /// by the base (as PostgreSQL's); any other is planned as under WITH.
    fn plan_recursive_cte(&mut self, cte: &ast::Cte) -> Result<QueryPlan> {
        let q = &cte.query;
        let ast::SetExpr::SetOperation { left, op: ast::SetOperator::Union, set_quantifier, right } = q.body.as_ref()
        else {
            return self.plan_query(q);
        };
        if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
            return self.plan_query(q);
        }
        let all = match set_quantifier {
            ast::SetQuantifier::All => true,
            ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
            other => return sql_err!(FeatureNotSupported, "{other} is not supported"),
        };
        let name = ident(&cte.alias.name);
        let base = self.plan_set_expr(left)?;
        let id = self.next_work_table;
        self.next_work_table += 1;
        self.work_tables.push(WorkTableBinding {
            name: name.clone(),
            id,
            columns: base.columns.clone(),
            alias_columns: cte.alias.columns.clone(),
            used: false,
            outer_depth: self.outer.len(),
        });
        let step = self.plan_set_expr(right);
        let binding = self.work_tables.pop().expect("pushed above");
        let step = step?;
        if !binding.used {
            return self.plan_query(q);
        }
        if base.columns.len() != step.columns.len() {
            return sql_err!(SyntaxError, "each UNION query must have the same number of columns");
        }
        let mut casts = Vec::new();
        for (i, (b, r)) in base.columns.iter().zip(&step.columns).enumerate() {
            let rt = if null_column(&step.root, i) { b.data_type } else { r.data_type };
            let overall = ops::common_type(b.data_type, rt).ok();
            if overall != Some(b.data_type) {
                let overall = overall.map_or_else(|| rt.to_string(), |t| t.to_string());
                return Err(Error {
                    hint: Some("Cast the output of the non-recursive term to the correct type.".into()),
                    ..Error::new(
                        SqlState::DatatypeMismatch,
                        format!(
                            "recursive query \"{name}\" column {} has type {} in non-recursive term but type \
                             {overall} overall",
                            i + 1,
                            b.data_type
                        ),
                    )
                });
            }
            casts.push(cast_if(Expr::Column(i), rt, b.data_type));
        }
        let step = if casts.iter().enumerate().all(|(i, e)| *e == Expr::Column(i)) {
            step.root
        } else {
            Node::Project { input: Box::new(step.root), exprs: casts }
        };
        let root = Node::Recursive { base: Box::new(base.root), step: Box::new(step), all, id };
        Ok(QueryPlan { root, columns: base.columns })
    }

    fn plan_query_body(&mut self, q: &ast::Query) -> Result<QueryPlan> {
        let plan = self.plan_query_rows(q)?;
        self.lock_rows(q, plan)
    }

    /// `SELECT ... FOR UPDATE` / `FOR SHARE` ([`Node::LockRows`]): FOR
    /// UPDATE locks exclusively the one table read (or the one named by
    /// OF); FOR SHARE, or several tables, as every read of a read-write
    /// transaction locks. Serializable either way: the exclusive lock
    /// spares a read-then-write its upgrade (which may be wounded).
    /// NOWAIT refuses a lock that is taken (55P03). SKIP LOCKED
    /// ([`skip_locked`]) takes FOR UPDATE of one table, in a query without
    /// grouping, DISTINCT or joins (0A000 otherwise).
    fn lock_rows(&mut self, q: &ast::Query, mut plan: QueryPlan) -> Result<QueryPlan> {
        if q.locks.is_empty() {
            return Ok(plan);
        }
        let skip = q.locks.iter().any(|l| l.nonblock == Some(ast::NonBlock::SkipLocked));
        let no_wait = q.locks.iter().any(|l| l.nonblock == Some(ast::NonBlock::Nowait));
        let exclusive = q.locks.iter().any(|l| l.lock_type == ast::LockType::Update);
        let mut tables = Vec::new();
        scanned_tables(&plan.root, &mut tables);
        // OF names a FROM item, by its alias if it has one (42P01 if
        // none has that name); scans know the table's own name.
        // (A parenthesized query's own SELECT: `(SELECT ...) FOR UPDATE`.)
        let mut body = q.body.as_ref();
        while let ast::SetExpr::Query(inner) = body {
            body = inner.body.as_ref();
        }
        let from = match body {
            ast::SetExpr::Select(select) => from_names(select),
            _ => Vec::new(),
        };
        let checked = matches!(body, ast::SetExpr::Select(_));
        for of in q.locks.iter().filter_map(|l| l.of.as_ref()).filter(|_| checked) {
            let of = object_name(of)?;
            if !from.iter().any(|(visible, _)| *visible == of) {
                return sql_err!(UndefinedTable, "relation \"{of}\" in FOR UPDATE clause not found in FROM clause");
            }
        }
        let named = q.locks.iter().filter(|l| l.lock_type == ast::LockType::Update).find_map(|l| l.of.as_ref());
        let table = match named {
            Some(of) => {
                let of = object_name(of)?;
                let of = from.iter().find(|(visible, _)| *visible == of).and_then(|(_, table)| table.clone());
                match tables.iter().position(|(_, name)| Some(name) == of.as_ref()) {
                    Some(i) => Some(tables.swap_remove(i)),
                    // A view's, say: with one table read, that one.
                    None if tables.len() == 1 => tables.pop(),
                    None => None,
                }
            }
            None if tables.len() == 1 => tables.pop(),
            None => None,
        };
        if skip {
            let Some((table, _)) = table.filter(|_| exclusive) else {
                return sql_err!(FeatureNotSupported, "SKIP LOCKED is supported with FOR UPDATE of one table");
            };
            plan.root = skip_locked(plan.root, table)?;
            return Ok(plan);
        }
        let table = table.filter(|_| exclusive);
        plan.root = Node::LockRows { input: Box::new(plan.root), table, exclusive, no_wait, skip_locked: None };
        Ok(plan)
    }

    /// A query's rows, before FOR UPDATE/SHARE.
    fn plan_query_rows(&mut self, q: &ast::Query) -> Result<QueryPlan> {
        let order_by: &[ast::OrderByExpr] = match &q.order_by {
            None => &[],
            Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(exprs), .. }) => exprs,
            Some(_) => return sql_err!(FeatureNotSupported, "ORDER BY ALL is not supported"),
        };
        let mut plan = match q.body.as_ref() {
            ast::SetExpr::Select(select) => self.plan_select(select, order_by)?,
            body => {
                let mut plan = self.plan_set_expr(body)?;
                if !order_by.is_empty() {
                    plan = self.order_by_output(plan, order_by)?;
                }
                plan
            }
        };
        let (limit, offset) = match &q.limit_clause {
            None => (None, None),
            Some(ast::LimitClause::LimitOffset { limit, offset, limit_by }) => {
                if !limit_by.is_empty() {
                    return sql_err!(FeatureNotSupported, "LIMIT BY is not supported");
                }
                (limit.as_ref(), offset.as_ref().map(|o| &o.value))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
        };
        let bind_count = |p: &mut Planner, e: Option<&ast::Expr>| -> Result<Option<Expr>> {
            let Some(e) = e else { return Ok(None) };
            if matches!(e, ast::Expr::Value(v) if v.value == ast::Value::Null) {
                return Ok(None); // LIMIT NULL / LIMIT ALL
            }
            let b = p.bind_expr(e, &Scope::default())?;
            Ok(Some(p.coerce(b, DataType::Int8)?))
        };
        // `FETCH FIRST n ROWS ONLY` (the standard's LIMIT, which ORMs
        // such as Hibernate send; no n: one row).
        let limit = match &q.fetch {
            None => bind_count(self, limit)?,
            Some(_) if limit.is_some() => return sql_err!(SyntaxError, "LIMIT and FETCH cannot both be given"),
            Some(f) if f.with_ties || f.percent => {
                return sql_err!(FeatureNotSupported, "FETCH ... PERCENT and WITH TIES are not supported")
            }
            Some(f) => match &f.quantity {
                Some(n) => bind_count(self, Some(n))?,
                None => Some(Expr::Constant(Value::Int8(1))),
            },
        };
        let offset = bind_count(self, offset)?;
        if limit.is_some() || offset.is_some() {
            plan.root = Node::Limit { input: Box::new(plan.root), limit, offset };
        }
        Ok(plan)
    }

    fn plan_set_expr(&mut self, body: &ast::SetExpr) -> Result<QueryPlan> {
        match body {
            ast::SetExpr::Select(select) => self.plan_select(select, &[]),
            ast::SetExpr::Query(q) => self.plan_query(q),
            ast::SetExpr::Values(values) => self.plan_values(values, None),
            ast::SetExpr::SetOperation { left, op, set_quantifier, right } => {
                let left = self.plan_set_expr(left)?;
                let right = self.plan_set_expr(right)?;
                if left.columns.len() != right.columns.len() {
                    return sql_err!(SyntaxError, "each {op} query must have the same number of columns");
                }
                let mut columns = Vec::new();
                let mut left_casts = Vec::new();
                let mut right_casts = Vec::new();
                for (i, (l, r)) in left.columns.iter().zip(&right.columns).enumerate() {
                    // An untyped NULL column takes the other side's type.
                    let (lt, rt) = match (null_column(&left.root, i), null_column(&right.root, i)) {
                        (true, false) => (r.data_type, r.data_type),
                        (false, true) => (l.data_type, l.data_type),
                        _ => (l.data_type, r.data_type),
                    };
                    let ty = ops::common_type(lt, rt).map_err(|_| {
                        Error::new(
                            SqlState::DatatypeMismatch,
                            format!("{op} types {} and {} cannot be matched", l.data_type, r.data_type),
                        )
                    })?;
                    left_casts.push(cast_if(Expr::Column(i), lt, ty));
                    right_casts.push(cast_if(Expr::Column(i), rt, ty));
                    columns.push(OutputColumn { name: l.name.clone(), data_type: ty });
                }
                let op = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except => SetOpKind::Except,
                    other => return sql_err!(FeatureNotSupported, "{other} is not supported"),
                };
                let all = match set_quantifier {
                    ast::SetQuantifier::All => true,
                    ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
                    other => return sql_err!(FeatureNotSupported, "{other} is not supported"),
                };
                let project = |node: Node, exprs: Vec<Expr>| {
                    if exprs.iter().enumerate().all(|(i, e)| *e == Expr::Column(i)) {
                        node
                    } else {
                        Node::Project { input: Box::new(node), exprs }
                    }
                };
                let root = Node::SetOp {
                    op,
                    all,
                    left: Box::new(project(left.root, left_casts)),
                    right: Box::new(project(right.root, right_casts)),
                };
                Ok(QueryPlan { root, columns })
            }
            ast::SetExpr::Insert(_) | ast::SetExpr::Update(_) | ast::SetExpr::Delete(_) => {
                sql_err!(FeatureNotSupported, "data-modifying statements in WITH are not supported")
            }
            other => sql_err!(FeatureNotSupported, "not supported: {}", first_words(&other.to_string())),
        }
    }

    /// VALUES rows; for INSERT, `target` has the target columns' types
    /// (untyped literals take them) and DEFAULT expressions.
    fn plan_values(&mut self, values: &ast::Values, target: Option<(&[DataType], &[Expr])>) -> Result<QueryPlan> {
        let width = values.rows.first().map_or(0, |r| r.content.len());
        let mut rows = Vec::new();
        let mut types: Vec<Option<DataType>> = vec![None; width];
        let mut bound_rows = Vec::new();
        for row in &values.rows {
            if row.content.len() != width {
                return sql_err!(SyntaxError, "VALUES lists must all be the same length");
            }
            let mut bound = Vec::new();
            for (i, e) in row.content.iter().enumerate() {
                if matches!(e, ast::Expr::Identifier(i) if ident(i) == "default") {
                    if target.is_none() {
                        return sql_err!(SyntaxError, "DEFAULT is not allowed in this context");
                    }
                    bound.push(None);
                    continue;
                }
                let b = self.bind_expr(e, &Scope::default())?;
                types[i] = merge_type(types[i], b.ty, Some("VALUES"))?;
                bound.push(Some(b));
            }
            bound_rows.push(bound);
        }
        let final_types: Vec<DataType> = (0..width)
            .map(|i| target.and_then(|(t, _)| t.get(i).copied()).or(types[i]).unwrap_or(DataType::Text))
            .collect();
        for row in bound_rows {
            let mut exprs = Vec::new();
            for (i, b) in row.into_iter().enumerate() {
                exprs.push(match b {
                    None => match target.and_then(|(_, d)| d.get(i)) {
                        Some(default) => default.clone(),
                        None => return sql_err!(SyntaxError, "VALUES has more columns than the INSERT targets"),
                    },
                    Some(b) if target.is_some() => self.coerce_literal(b, final_types[i])?.expr,
                    Some(b) => self.coerce(b, final_types[i])?,
                });
            }
            rows.push(exprs);
        }
        let columns = final_types
            .iter()
            .enumerate()
            .map(|(i, t)| OutputColumn { name: format!("column{}", i + 1), data_type: *t })
            .collect();
        Ok(QueryPlan { root: Node::Values { rows, width }, columns })
    }

    fn plan_select(&mut self, select: &ast::Select, order_by: &[ast::OrderByExpr]) -> Result<QueryPlan> {
        // A level's window calls are its own: a subquery's select list
        // does not see them.
        let enclosing = self.window.take();
        let planned = self.plan_select_level(select, order_by);
        self.window = enclosing;
        planned
    }

    fn plan_select_level(&mut self, select: &ast::Select, order_by: &[ast::OrderByExpr]) -> Result<QueryPlan> {
        let targets = match &self.insert_select {
            Some((at, _)) if *at == std::ptr::from_ref(select) as usize => self.insert_select.take().map(|(_, t)| t),
            _ => None,
        };
        let targets = targets.as_deref();
        match set_returning::lift(select, order_by)? {
            Some(lifted) => self.plan_select_body(&lifted.select, &lifted.order_by, Some(&lifted.call), targets),
            None => self.plan_select_body(select, order_by, None, targets),
        }
    }

    /// A SELECT; `lifted`: the set-returning call lifted out of its select
    /// list ([`set_returning`]), joined laterally after WHERE; `targets`:
    /// the types its untyped select items take (an `INSERT`'s columns,
    /// [`Planner`]'s `insert_select`).
    fn plan_select_body(
        &mut self,
        select: &ast::Select,
        order_by: &[ast::OrderByExpr],
        lifted: Option<&ast::TableFactor>,
        targets: Option<&[DataType]>,
    ) -> Result<QueryPlan> {
        if select.top.is_some() || select.into.is_some() || !select.lateral_views.is_empty() {
            return sql_err!(FeatureNotSupported, "this SELECT form is not supported");
        }
        if select.qualify.is_some() {
            return sql_err!(FeatureNotSupported, "QUALIFY is not supported");
        }
        let named_windows = window::named_windows(select)?;
        // FROM.
        let (mut node, mut scope, conditions) = self.plan_from(&select.from)?;
        // WHERE (joined with comma-join predicates for ordering).
        let mut predicates = conditions;
        if let Some(selection) = &select.selection {
            check_no_windows(selection, "WHERE")?;
            let b = self.bind_expr(selection, &scope)?;
            self.check_no_aggregates(selection, "WHERE")?;
            predicates.extend(self.coerce(b, DataType::Bool)?.conjuncts());
        }
        if let Some(p) = Expr::and_all(predicates) {
            node = Node::Filter { input: Box::new(node), predicate: p };
        }
        // The select list's set-returning call, for each row WHERE kept
        // (alone, without FROM or WHERE, the rows are the call's: streamed);
        // its column is not one of `*`'s.
        if let Some(call) = lifted {
            let (right, right_scope) = match select.from.is_empty() && select.selection.is_none() {
                true => self.plan_table_factor(call)?,
                false => self.plan_lateral(call, &scope)?,
            };
            node = match select.from.is_empty() && select.selection.is_none() {
                true => right,
                false => {
                    Node::Lateral { left: Box::new(node), right: Box::new(right), kind: JoinKind::Inner, on: None }
                }
            };
            scope.columns.extend(right_scope.columns.into_iter().map(|c| ScopeColumn { hidden: true, ..c }));
        }

        // Aggregation?
        let listed: Vec<&ast::Expr> = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return sql_err!(FeatureNotSupported, "GROUP BY modifiers are not supported");
                }
                exprs.iter().collect()
            }
            ast::GroupByExpr::All(_) => return sql_err!(FeatureNotSupported, "GROUP BY ALL is not supported"),
        };
        // ROLLUP, CUBE, GROUPING SETS: the expressions they name (output
        // aliases and ordinals resolved), and sets.
        let expanded = grouping_sets::expand(&listed, &mut |g| self.resolve_group_alias(g, select, &scope))?;
        let group_exprs: Vec<&ast::Expr> = match &expanded {
            Some((exprs, _)) => exprs.iter().collect(),
            None => listed,
        };
        for g in &group_exprs {
            check_no_windows(g, "GROUP BY")?;
        }
        if let Some(h) = &select.having {
            check_no_windows(h, "HAVING")?;
        }
        let mut agg_calls: Vec<&ast::Function> = Vec::new();
        let mut window_calls: Vec<&ast::Function> = Vec::new();
        for item in &select.projection {
            if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_calls(e, Calls::Aggregates, &mut agg_calls);
                collect_calls(e, Calls::Windows, &mut window_calls);
            }
        }
        if let Some(h) = &select.having {
            collect_aggregates(h, &mut agg_calls);
        }
        for o in order_by {
            collect_aggregates(&o.expr, &mut agg_calls);
            collect_calls(&o.expr, Calls::Windows, &mut window_calls);
        }
        // Aggregates in a named window's PARTITION BY or ORDER BY.
        for (_, spec) in &named_windows {
            for e in spec.partition_by.iter().chain(spec.order_by.iter().map(|o| &o.expr)) {
                collect_aggregates(e, &mut agg_calls);
            }
        }
        let aggregating =
            expanded.is_some() || !group_exprs.is_empty() || !agg_calls.is_empty() || select.having.is_some();

        // The scope the select list binds in, and the node it reads.
        let mut saved_agg = self.agg.take();
        if aggregating {
            let mut group_by = Vec::new();
            let mut types = Vec::new();
            let mut group_texts = Vec::new();
            // Output aliases usable in GROUP BY (PostgreSQL allows it).
            for g in &group_exprs {
                let g = match &expanded {
                    Some(_) => (*g).clone(),
                    None => self.resolve_group_alias(g, select, &scope)?,
                };
                let b = self.bind_expr(&g, &scope)?;
                let b = self.default_type(b)?;
                types.push(b.ty.unwrap_or(DataType::Text));
                group_texts.push(g.to_string());
                group_by.push(b.expr);
            }
            let mut aggregates = Vec::new();
            let mut agg_texts = Vec::new();
            for call in agg_calls {
                let text = call.to_string();
                if agg_texts.contains(&text) {
                    continue;
                }
                let agg = self.bind_aggregate(call, &scope, false)?;
                types.push(agg.data_type);
                aggregates.push(agg);
                agg_texts.push(text);
            }
            let mut grouping = None;
            if let Some((_, sets)) = &expanded {
                // The set id's column, between the GROUP BY columns and
                // the aggregates (no SQL text is this one's).
                let n = group_by.len();
                types.insert(n, DataType::Int4);
                group_texts.push("\0grouping set".into());
                let ids: Vec<i32> = sets.iter().map(|set| grouping_sets::set_id(set, n)).collect();
                let branches = sets.iter().zip(&ids).map(|(set, id)| {
                    let keys = set.iter().map(|&i| group_by[i].clone()).collect();
                    let one = Node::Aggregate {
                        input: Box::new(node.clone()),
                        group_by: keys,
                        aggregates: aggregates.clone(),
                    };
                    let mut exprs: Vec<Expr> = (0..n)
                        .map(|i| set.iter().position(|&j| j == i).map_or(Expr::Constant(Value::Null), Expr::Column))
                        .collect();
                    exprs.push(Expr::Constant(Value::Int4(*id)));
                    exprs.extend((0..aggregates.len()).map(|j| Expr::Column(set.len() + j)));
                    Node::Project { input: Box::new(one), exprs }
                });
                let union = |l: Node, r: Node| Node::SetOp {
                    op: SetOpKind::Union,
                    all: true,
                    left: Box::new(l),
                    right: Box::new(r),
                };
                node = branches.reduce(union).expect("at least one grouping set");
                grouping = Some((n, ids));
            }
            let mut outer_scope = Scope::unnamed(&types);
            for (i, g) in group_by.iter().enumerate() {
                if let Expr::Column(c) = g {
                    outer_scope.columns[i] = ScopeColumn { hidden: false, ..scope.columns[*c].clone() };
                }
            }
            if grouping.is_none() {
                node = Node::Aggregate { input: Box::new(node), group_by, aggregates };
            }
            self.agg = Some(AggContext { group_texts, agg_texts, types: types.clone(), outer_scope, grouping });
            // HAVING binds like the select list: GROUP BY expressions and
            // aggregate calls are the Aggregate's columns.
            if let Some(h) = &select.having {
                let b = self.bind_expr(h, &scope)?;
                let p = self.coerce(b, DataType::Bool)?;
                node = Node::Filter { input: Box::new(node), predicate: p };
            }
        }

        // Window functions, over the rows aggregation left.
        if !window_calls.is_empty() {
            node = self
                .plan_windows(node, &window_calls, &named_windows, &scope)
                .inspect_err(|_| self.agg = saved_agg.take())?;
        }

        // The select list.
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in &select.projection {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    if aggregating {
                        self.agg = saved_agg;
                        return sql_err!(GroupingError, "SELECT * is not allowed with GROUP BY or aggregates");
                    }
                    if select.from.is_empty() {
                        self.agg = saved_agg;
                        return sql_err!(SyntaxError, "SELECT * with no tables specified is not valid");
                    }
                    // Merged join columns first, as PostgreSQL lists them.
                    let visible = |c: &&ScopeColumn| !c.hidden && !c.merged_away;
                    let keys = scope.columns.iter().enumerate().filter(|(_, c)| visible(c) && c.join_key);
                    let rest = scope.columns.iter().enumerate().filter(|(_, c)| visible(c) && !c.join_key);
                    for (i, c) in keys.chain(rest) {
                        exprs.push(Expr::Column(i));
                        columns.push(OutputColumn {
                            name: c.name.clone(),
                            data_type: c.data_type.unwrap_or(DataType::Text),
                        });
                    }
                }
                ast::SelectItem::QualifiedWildcard(ast::SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                    let table = object_name(name)?;
                    if !scope.has_table(&table) {
                        self.agg = saved_agg;
                        return sql_err!(UndefinedTable, "missing FROM-clause entry for table \"{table}\"");
                    }
                    for (i, c) in scope.columns.iter().enumerate() {
                        if !c.hidden && c.table.as_deref() == Some(&table) {
                            exprs.push(Expr::Column(i));
                            columns.push(OutputColumn {
                                name: c.name.clone(),
                                data_type: c.data_type.unwrap_or(DataType::Text),
                            });
                        }
                    }
                }
                ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let b = self.bind_or_restore(e, &scope, &mut saved_agg)?;
                    let b = match targets.and_then(|t| t.get(columns.len())) {
                        Some(&ty) if b.ty.is_none() => self.coerce_literal(b, ty)?,
                        _ => b,
                    };
                    let b = self.default_type(b)?;
                    let name = match item {
                        ast::SelectItem::ExprWithAlias { alias, .. } => ident(alias),
                        _ => column_name(e),
                    };
                    columns.push(OutputColumn { name, data_type: b.ty.unwrap_or(DataType::Text) });
                    exprs.push(b.expr);
                }
                other => {
                    self.agg = saved_agg;
                    return sql_err!(FeatureNotSupported, "select item not supported: {other}");
                }
            }
        }
        let visible = exprs.len();

        // DISTINCT ON's expressions, as ORDER BY's below: output columns
        // by position or alias, else hidden extra columns.
        let mut distinct_on = None;
        if let Some(ast::Distinct::On(on)) = &select.distinct {
            let mut on_columns = Vec::new();
            for e in on {
                let column = match self.order_target(e, &columns)? {
                    Some(i) => i,
                    None => {
                        let b = self.bind_or_restore(e, &scope, &mut saved_agg)?;
                        let b = self.default_type(b)?;
                        match exprs.iter().position(|x| *x == b.expr) {
                            Some(i) => i,
                            None => {
                                exprs.push(b.expr);
                                exprs.len() - 1
                            }
                        }
                    }
                };
                on_columns.push(column);
            }
            distinct_on = Some(on_columns);
        }

        // ORDER BY: output columns by position or alias, else expressions
        // over the input, carried as hidden extra columns.
        let mut keys = Vec::new();
        for o in order_by {
            let (descending, nulls_first) = order_options(&o.options);
            let expr = match self.order_target(&o.expr, &columns)? {
                Some(i) => Expr::Column(i),
                None => {
                    let b = self.bind_or_restore(&o.expr, &scope, &mut saved_agg)?;
                    let b = self.default_type(b)?;
                    if let Some(i) = exprs.iter().position(|e| *e == b.expr) {
                        Expr::Column(i)
                    } else {
                        if matches!(select.distinct, Some(ast::Distinct::Distinct)) {
                            self.agg = saved_agg;
                            return sql_err!(
                                InvalidColumnReference,
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list"
                            );
                        }
                        exprs.push(b.expr);
                        Expr::Column(exprs.len() - 1)
                    }
                }
            };
            keys.push(SortKey { expr, descending, nulls_first });
        }
        self.agg = saved_agg;

        // DISTINCT ON keeps the first row of each group in ORDER BY's
        // order, which must begin with its expressions (PostgreSQL's rule).
        if let Some(on) = &distinct_on {
            let leading = keys.iter().take(on.len()).all(|k| matches!(k.expr, Expr::Column(i) if on.contains(&i)));
            if !leading {
                return sql_err!(
                    InvalidColumnReference,
                    "SELECT DISTINCT ON expressions must match initial ORDER BY expressions"
                );
            }
        }
        node = Node::Project { input: Box::new(node), exprs };
        if matches!(select.distinct, Some(ast::Distinct::Distinct)) {
            node = Node::Distinct { input: Box::new(node), on: None };
        }
        if !keys.is_empty() {
            node = Node::Sort { input: Box::new(node), keys };
        }
        if let Some(on) = distinct_on {
            node = Node::Distinct { input: Box::new(node), on: Some(on) };
        }
        if node.width() > visible {
            node = Node::Project { input: Box::new(node), exprs: (0..visible).map(Expr::Column).collect() };
        }
        Ok(QueryPlan { root: node, columns })
    }

    /// Binds `e` in a select list's context; on an error the enclosing
    /// query's aggregate context (`saved`) is put back first, as the
    /// caller's early return needs.
    fn bind_or_restore(&mut self, e: &ast::Expr, scope: &Scope, saved: &mut Option<AggContext>) -> Result<Bound> {
        self.bind_expr(e, scope).inspect_err(|_| self.agg = saved.take())
    }

    /// `GROUP BY alias` / `GROUP BY 2`: the select item it names. A name
    /// that is also an input column (in `scope`) is the input column, as
    /// in PostgreSQL.
    fn resolve_group_alias(&self, g: &ast::Expr, select: &ast::Select, scope: &Scope) -> Result<ast::Expr> {
        if let Some(n) = integer_literal(g) {
            let item = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).and_then(|i| select.projection.get(i));
            return match item {
                Some(ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. }) => Ok(e.clone()),
                _ => sql_err!(InvalidColumnReference, "GROUP BY position {n} is not in select list"),
            };
        }
        if let ast::Expr::Identifier(name) = g {
            if scope.find(None, &ident(name))?.is_some() {
                return Ok(g.clone());
            }
            for item in &select.projection {
                if let ast::SelectItem::ExprWithAlias { expr, alias } = item {
                    if ident(alias) == ident(name) {
                        return Ok(expr.clone());
                    }
                }
            }
        }
        Ok(g.clone())
    }

    /// An ORDER BY item naming an output column (position or alias).
    fn order_target(&self, e: &ast::Expr, columns: &[OutputColumn]) -> Result<Option<usize>> {
        if let Some(n) = integer_literal(e) {
            return match usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).filter(|i| *i < columns.len()) {
                Some(i) => Ok(Some(i)),
                None => sql_err!(InvalidColumnReference, "ORDER BY position {n} is not in select list"),
            };
        }
        if let ast::Expr::Identifier(name) = e {
            let name = ident(name);
            let matches: Vec<usize> =
                columns.iter().enumerate().filter(|(_, c)| c.name == name).map(|(i, _)| i).collect();
            if matches.len() == 1 {
                return Ok(Some(matches[0]));
            }
        }
        Ok(None)
    }

    /// ORDER BY over a set operation's output (names and positions only).
    fn order_by_output(&mut self, mut plan: QueryPlan, order_by: &[ast::OrderByExpr]) -> Result<QueryPlan> {
        let mut keys = Vec::new();
        let scope = derived_scope(&plan, None);
        for o in order_by {
            let (descending, nulls_first) = order_options(&o.options);
            let expr = match self.order_target(&o.expr, &plan.columns)? {
                Some(i) => Expr::Column(i),
                None => self.bind_expr(&o.expr, &scope)?.expr,
            };
            keys.push(SortKey { expr, descending, nulls_first });
        }
        plan.root = Node::Sort { input: Box::new(plan.root), keys };
        Ok(plan)
    }

    fn check_no_aggregates(&self, e: &ast::Expr, clause: &str) -> Result<()> {
        let mut calls = Vec::new();
        collect_aggregates(e, &mut calls);
        match calls.is_empty() {
            true => Ok(()),
            false => sql_err!(GroupingError, "aggregate functions are not allowed in {clause}"),
        }
    }

    /// Binds an aggregate call. `windowed`: it is a window function
    /// (`sum(x) OVER (...)`), whose argument and filter bind as the select
    /// list does (over the Aggregate's row when the level aggregates);
    /// otherwise they see the FROM row, where no other aggregate may be.
    fn bind_aggregate(&mut self, call: &ast::Function, scope: &Scope, windowed: bool) -> Result<AggCall> {
        if let Some(call) = whole_row_call(call, scope) {
            return self.bind_aggregate(&call, scope, windowed);
        }
        let name = builtin_name(&call.name)?;
        if !call.within_group.is_empty() || is_ordered_set_aggregate(&name) {
            return self.bind_ordered_set_aggregate(call, &name, scope, windowed);
        }
        let (args, distinct, clauses) = match &call.args {
            ast::FunctionArguments::List(list) => {
                let distinct = matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct));
                (list.args.as_slice(), distinct, list.clauses.as_slice())
            }
            ast::FunctionArguments::None => (&[][..], false, &[][..]),
            ast::FunctionArguments::Subquery(_) => return sql_err!(FeatureNotSupported, "{name}(subquery)"),
        };
        if call.over.is_some() && !windowed {
            return sql_err!(FeatureNotSupported, "OVER is not supported here");
        }
        if windowed && distinct {
            return sql_err!(FeatureNotSupported, "DISTINCT is not implemented for window functions");
        }
        // `agg(x ORDER BY ...)`; any other clause inside the parentheses
        // (another dialect's inline WHERE, LIMIT, ...) is refused, never
        // ignored.
        let mut order: &[ast::OrderByExpr] = &[];
        for clause in clauses {
            match clause {
                ast::FunctionArgumentClause::OrderBy(_) if windowed => {
                    return sql_err!(FeatureNotSupported, "aggregate ORDER BY is not implemented for window functions")
                }
                ast::FunctionArgumentClause::OrderBy(o) => order = o,
                other => return sql_err!(FeatureNotSupported, "{other} inside {name}(...) is not supported"),
            }
        }
        let mut order_by = Vec::new();
        for o in order {
            let (descending, nulls_first) = order_options(&o.options);
            let bound =
                self.bind_aggregate_input(&o.expr, scope, false, "aggregate function calls cannot be nested")?;
            let bound = self.default_type(bound)?;
            order_by.push(SortKey { expr: bound.expr, descending, nulls_first });
        }
        let filter = self.bind_aggregate_filter(call, scope, windowed)?;
        if name == "count" && matches!(args, [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]) {
            if !windowed {
                refuse_outer_aggregate(call, [filter.as_ref()])?;
            }
            return Ok(AggCall {
                func: AggFunc::CountStar,
                arg: None,
                distinct: false,
                data_type: DataType::Int8,
                separator: None,
                filter,
                order_by,
                fraction: None,
            });
        }
        let (arg, separator) = match (name.as_str(), args) {
            (
                "string_agg",
                [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg)), ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(sep))],
            ) => {
                let sep = self.bind_expr(sep, &Scope::default())?;
                match sep.expr {
                    Expr::Constant(Value::Text(s)) => (arg, Some(s)),
                    Expr::Constant(Value::Null) => (arg, Some(String::new())),
                    _ => return sql_err!(FeatureNotSupported, "string_agg's separator must be a constant string"),
                }
            }
            (
                "jsonb_object_agg",
                [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(key)), ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(value))],
            ) => {
                // One argument: the pair as a jsonb array (the key as text).
                let nested = "aggregate function calls cannot be nested";
                let key = self.bind_aggregate_input(key, scope, windowed, nested)?;
                let key = self.default_type(key)?;
                let key = match key.ty {
                    Some(t) if t.is_string() => key.expr,
                    Some(t) if t == DataType::Jsonb || t.element().is_some() => {
                        return sql_err!(
                            InvalidParameterValue,
                            "key value must be scalar, not array, composite, or json"
                        );
                    }
                    _ => Expr::Cast(Box::new(key.expr), DataType::Text),
                };
                let value = self.bind_aggregate_input(value, scope, windowed, nested)?;
                let value = self.default_type(value)?;
                let pair = Expr::Function("jsonb_build_array".into(), vec![key, value.expr]);
                if !windowed {
                    refuse_outer_aggregate(call, [Some(&pair), filter.as_ref()])?;
                }
                return Ok(AggCall {
                    func: AggFunc::JsonbObjectAgg,
                    arg: Some(pair),
                    distinct,
                    data_type: DataType::Jsonb,
                    separator: None,
                    filter,
                    order_by,
                    fraction: None,
                });
            }
            (_, [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))])
                if name != "string_agg" && name != "jsonb_object_agg" =>
            {
                (arg, None)
            }
            _ => return sql_err!(UndefinedFunction, "function {name} with {} arguments does not exist", args.len()),
        };
        let bound = self.bind_aggregate_input(arg, scope, windowed, "aggregate function calls cannot be nested")?;
        let b = self.default_type(bound)?;
        if !windowed {
            refuse_outer_aggregate(call, [Some(&b.expr), filter.as_ref()])?;
        }
        let ty = b.ty.unwrap_or(DataType::Text);
        let (func, data_type) = match name.as_str() {
            "count" => (AggFunc::Count, DataType::Int8),
            "sum" => match ty {
                DataType::Int2 | DataType::Int4 => (AggFunc::Sum, DataType::Int8),
                DataType::Int8 | DataType::Numeric(_) => (AggFunc::Sum, DataType::Numeric(None)),
                DataType::Interval => (AggFunc::Sum, DataType::Interval),
                DataType::Float4 => (AggFunc::Sum, DataType::Float4),
                DataType::Float8 => (AggFunc::Sum, DataType::Float8),
                t => return sql_err!(UndefinedFunction, "function sum({t}) does not exist"),
            },
            "avg" => match ty {
                t if t.is_integer() || t.is_decimal() => (AggFunc::Avg, DataType::Numeric(None)),
                t if t.is_numeric() => (AggFunc::Avg, DataType::Float8),
                DataType::Interval => (AggFunc::Avg, DataType::Interval),
                t => return sql_err!(UndefinedFunction, "function avg({t}) does not exist"),
            },
            "min" | "max" => {
                // PostgreSQL 15 has no min/max over boolean, bytea or uuid.
                if matches!(ty, DataType::Bool | DataType::Bytea | DataType::Uuid) {
                    return sql_err!(UndefinedFunction, "function {name}({ty}) does not exist");
                }
                let f = if name == "min" { AggFunc::Min } else { AggFunc::Max };
                (f, ty.base())
            }
            "bool_and" | "every" | "bool_or" => {
                if ty != DataType::Bool {
                    return sql_err!(UndefinedFunction, "function {name}({ty}) does not exist");
                }
                (if name == "bool_or" { AggFunc::BoolOr } else { AggFunc::BoolAnd }, DataType::Bool)
            }
            "array_agg" => match DataType::array_of(ty) {
                Some(array) => (AggFunc::ArrayAgg, array),
                None => return sql_err!(FeatureNotSupported, "array_agg({ty}) is not supported"),
            },
            "jsonb_agg" => (AggFunc::JsonbAgg, DataType::Jsonb),
            "var_samp" | "variance" | "var_pop" | "stddev_samp" | "stddev" | "stddev_pop" => {
                if !ty.is_numeric() {
                    return sql_err!(UndefinedFunction, "function {name}({ty}) does not exist");
                }
                let spread = Spread { sample: !name.ends_with("_pop"), root: name.starts_with("stddev") };
                (AggFunc::Spread(spread), DataType::Float8)
            }
            "string_agg" if ty.is_string() => (AggFunc::StringAgg, DataType::Text),
            "string_agg" => return sql_err!(UndefinedFunction, "function string_agg({ty}, unknown) does not exist"),
            other => return sql_err!(UndefinedFunction, "function {other} does not exist"),
        };
        // DISTINCT sorts by the argument itself (PostgreSQL's rule).
        if distinct && order_by.iter().any(|k| k.expr != b.expr) {
            return sql_err!(
                InvalidColumnReference,
                "in an aggregate with DISTINCT, ORDER BY expressions must appear in argument list"
            );
        }
        Ok(AggCall { func, arg: Some(b.expr), distinct, data_type, separator, filter, order_by, fraction: None })
    }

    /// An aggregate's `FILTER (WHERE ...)`: over the FROM row, as its
    /// argument is.
    fn bind_aggregate_filter(&mut self, call: &ast::Function, scope: &Scope, windowed: bool) -> Result<Option<Expr>> {
        let Some(f) = &call.filter else { return Ok(None) };
        let bound = self.bind_aggregate_input(f, scope, windowed, "aggregate functions are not allowed in FILTER")?;
        Ok(Some(self.coerce(bound, DataType::Bool)?))
    }

    /// An ordered-set aggregate: `percentile_cont(f)`,
    /// `percentile_disc(f)` or `mode()`, `WITHIN GROUP (ORDER BY x)`. The
    /// fraction must be a constant (0A000 otherwise; 22003 outside 0 to
    /// 1); NULLs of `x` are left out.
    fn bind_ordered_set_aggregate(
        &mut self,
        call: &ast::Function,
        name: &str,
        scope: &Scope,
        windowed: bool,
    ) -> Result<AggCall> {
        if !is_ordered_set_aggregate(name) {
            return sql_err!(WrongObjectType, "{name} is not an ordered-set aggregate, so it cannot have WITHIN GROUP");
        }
        if windowed || call.over.is_some() {
            return sql_err!(FeatureNotSupported, "OVER is not supported for ordered-set aggregate {name}");
        }
        let [key] = call.within_group.as_slice() else {
            return match call.within_group.len() {
                0 => sql_err!(UndefinedFunction, "function {name} without WITHIN GROUP does not exist"),
                _ => sql_err!(
                    UndefinedFunction,
                    "function {name} with {} sort keys does not exist",
                    call.within_group.len()
                ),
            };
        };
        let args: &[ast::FunctionArg] = match &call.args {
            ast::FunctionArguments::List(list) if list.duplicate_treatment.is_none() && list.clauses.is_empty() => {
                &list.args
            }
            ast::FunctionArguments::None => &[],
            _ => return sql_err!(FeatureNotSupported, "this form of {name}(...) is not supported"),
        };
        let fraction = match (name, args) {
            ("mode", []) => None,
            ("percentile_cont" | "percentile_disc", [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(f))]) => {
                let bound = self.bind_expr(f, &Scope::default())?;
                let expr = self.coerce(bound, DataType::Float8)?;
                let value = match &expr {
                    Expr::Constant(v) => Some(v.clone()),
                    Expr::Cast(inner, t) => match inner.as_ref() {
                        Expr::Constant(v) => Some(ops::cast(v, *t)?),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(f) = value.as_ref().and_then(Value::as_f64) else {
                    return sql_err!(FeatureNotSupported, "{name}'s fraction must be a constant");
                };
                if !(0.0..=1.0).contains(&f) {
                    return sql_err!(NumericValueOutOfRange, "percentile value {f} is not between 0 and 1");
                }
                Some(f)
            }
            _ => return sql_err!(UndefinedFunction, "function {name} with {} arguments does not exist", args.len()),
        };
        let (descending, nulls_first) = order_options(&key.options);
        let nested = "aggregate function calls cannot be nested";
        let sorted = self.bind_aggregate_input(&key.expr, scope, false, nested)?;
        let sorted = self.default_type(sorted)?;
        let ty = sorted.ty.unwrap_or(DataType::Text);
        let (func, data_type, value) = match name {
            "percentile_cont" if ty.is_numeric() => {
                (AggFunc::PercentileCont, DataType::Float8, cast_if(sorted.expr.clone(), ty, DataType::Float8))
            }
            "percentile_cont" => {
                return sql_err!(UndefinedFunction, "function percentile_cont(double precision, {ty}) does not exist")
            }
            "percentile_disc" => (AggFunc::PercentileDisc, ty.base(), sorted.expr.clone()),
            _ => (AggFunc::Mode, ty.base(), sorted.expr.clone()),
        };
        let filter = self.bind_aggregate_filter(call, scope, false)?;
        refuse_outer_aggregate(call, [Some(&value), filter.as_ref()])?;
        let order_by = vec![SortKey { expr: sorted.expr, descending, nulls_first }];
        Ok(AggCall { func, arg: Some(value), distinct: false, data_type, separator: None, filter, order_by, fraction })
    }

    /// Binds an aggregate's argument, filter or ORDER BY key: over the
    /// FROM row, where another aggregate is an error (`nested`), or for a
    /// window aggregate (`windowed`), as the select list binds.
    fn bind_aggregate_input(&mut self, e: &ast::Expr, scope: &Scope, windowed: bool, nested: &str) -> Result<Bound> {
        if windowed {
            return self.bind_expr(e, scope);
        }
        let mut windows = Vec::new();
        collect_calls(e, Calls::Windows, &mut windows);
        if !windows.is_empty() {
            return sql_err!(GroupingError, "aggregate function calls cannot contain window function calls");
        }
        let saved = self.agg.take();
        let mut calls = Vec::new();
        collect_aggregates(e, &mut calls);
        let bound = match calls.is_empty() {
            true => self.bind_expr(e, scope),
            false => sql_err!(GroupingError, "{nested}"),
        };
        self.agg = saved;
        bound
    }

    // ---- FROM -------------------------------------------------------------

    /// The FROM clause: its node, its scope, and the predicates that
    /// connect comma-joined tables (already placed as join conditions).
    fn plan_from(&mut self, from: &[ast::TableWithJoins]) -> Result<(Node, Scope, Vec<Expr>)> {
        // Joins nest the plan a level each: everything that walks it recurses that deep.
        if from.iter().map(|twj| 1 + twj.joins.len()).sum::<usize>() > limits::FROM_ITEMS_MAX {
            return sql_err!(ProgramLimitExceeded, "a FROM clause may join at most {} items", limits::FROM_ITEMS_MAX);
        }
        if from.is_empty() {
            return Ok((Node::Values { rows: vec![vec![]], width: 0 }, Scope::default(), Vec::new()));
        }
        let (mut node, mut scope) = self.plan_table_with_joins(&from[0])?;
        for twj in &from[1..] {
            // `FROM a, LATERAL (...)` sees the items before it.
            let (right, right_scope, lateral) = if twj.joins.is_empty() {
                self.plan_right_factor(&twj.relation, &scope)?
            } else if is_lateral(&twj.relation) {
                return sql_err!(FeatureNotSupported, "joins after a comma-joined LATERAL item are not supported");
            } else {
                let (right, right_scope) = self.plan_table_with_joins(twj)?;
                (right, right_scope, false)
            };
            for c in &right_scope.columns {
                if let Some(t) = &c.table {
                    if scope.has_table(t) {
                        return sql_err!(DuplicateAlias, "table name \"{t}\" specified more than once");
                    }
                }
            }
            let (left, right) = (Box::new(node), Box::new(right));
            node = match lateral {
                true => Node::Lateral { left, right, kind: JoinKind::Inner, on: None },
                false => {
                    Node::Join { left, right, kind: JoinKind::Inner, left_keys: vec![], right_keys: vec![], on: None }
                }
            };
            scope = scope.join(right_scope);
        }
        Ok((node, scope, Vec::new()))
    }

    fn plan_table_with_joins(&mut self, twj: &ast::TableWithJoins) -> Result<(Node, Scope)> {
        let (mut node, mut scope) = self.plan_table_factor(&twj.relation)?;
        for join in &twj.joins {
            let (right, right_scope, lateral) = self.plan_right_factor(&join.relation, &scope)?;
            use ast::JoinOperator as J;
            let (kind, constraint) = match &join.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinKind::Right, Some(c)),
                J::FullOuter(c) => (JoinKind::Full, Some(c)),
                J::CrossJoin(_) => (JoinKind::Inner, None),
                other => return sql_err!(FeatureNotSupported, "join not supported: {other:?}"),
            };
            let left_width = scope.columns.len();
            let mut joined = scope.clone().join(right_scope.clone());
            // USING/NATURAL column pairs (left, right position).
            let mut merged: Vec<(usize, usize)> = Vec::new();
            let on = match constraint {
                None | Some(ast::JoinConstraint::None) => None,
                Some(ast::JoinConstraint::On(e)) => {
                    let b = self.bind_expr(e, &joined)?;
                    Some(self.coerce(b, DataType::Bool)?)
                }
                Some(ast::JoinConstraint::Using(names)) => {
                    let mut conds = Vec::new();
                    for n in names {
                        let name = object_name(n)?;
                        let l = scope.find(None, &name)?;
                        let r = right_scope.find(None, &name)?;
                        let (Some(l), Some(r)) = (l, r) else {
                            return sql_err!(
                                UndefinedColumn,
                                "column \"{name}\" specified in USING clause does not exist in both tables"
                            );
                        };
                        merged.push((l, left_width + r));
                        conds.push(Expr::Binary(
                            BinaryOp::Eq,
                            Box::new(Expr::Column(l)),
                            Box::new(Expr::Column(left_width + r)),
                        ));
                    }
                    Expr::and_all(conds)
                }
                Some(ast::JoinConstraint::Natural) => {
                    let mut conds = Vec::new();
                    for (r, c) in right_scope.columns.iter().enumerate() {
                        if c.hidden {
                            continue;
                        }
                        if let Some(l) = scope.find(None, &c.name)? {
                            merged.push((l, left_width + r));
                            conds.push(Expr::Binary(
                                BinaryOp::Eq,
                                Box::new(Expr::Column(l)),
                                Box::new(Expr::Column(left_width + r)),
                            ));
                        }
                    }
                    Expr::and_all(conds)
                }
                Some(other) => return sql_err!(FeatureNotSupported, "join constraint not supported: {other:?}"),
            };
            if lateral && !matches!(kind, JoinKind::Inner | JoinKind::Left) {
                return sql_err!(
                    InvalidColumnReference,
                    "the combining JOIN type must be INNER or LEFT for a LATERAL reference"
                );
            }
            // The join column appears once: the side whose value survives
            // the join, or for FULL, coalesce(left, right).
            let mut coalesced = Vec::new();
            for (l, r) in merged {
                let (away, key) = match kind {
                    JoinKind::Inner | JoinKind::Left => (vec![r], Some(l)),
                    JoinKind::Right => (vec![l], Some(r)),
                    JoinKind::Full => {
                        coalesced.push((l, r));
                        (vec![l, r], None)
                    }
                };
                away.into_iter().for_each(|i| joined.columns[i].merged_away = true);
                if let Some(k) = key {
                    joined.columns[k].join_key = true;
                }
            }
            let (left, right) = (Box::new(node), Box::new(right));
            node = match lateral {
                true => Node::Lateral { left, right, kind, on },
                false => Node::Join { left, right, kind, left_keys: vec![], right_keys: vec![], on },
            };
            if !coalesced.is_empty() {
                let mut exprs: Vec<Expr> = (0..joined.columns.len()).map(Expr::Column).collect();
                for (l, r) in coalesced {
                    exprs.push(Expr::Coalesce(vec![Expr::Column(l), Expr::Column(r)]));
                    let left = joined.columns[l].clone();
                    joined.columns.push(ScopeColumn { table: None, merged_away: false, join_key: true, ..left });
                }
                node = Node::Project { input: Box::new(node), exprs };
            }
            scope = joined;
        }
        Ok((node, scope))
    }

    /// A FROM item to the right of `left`: planned on its own, or, if it
    /// is LATERAL or a function whose arguments name the items before it
    /// (functions in FROM are lateral in PostgreSQL: `FROM t,
    /// generate_series(1, t.n)`), with `left` as its outer scope. Whether
    /// it is lateral (a function that names nothing of `left` is not: it
    /// joins as a table does, FULL and RIGHT joins too).
    fn plan_right_factor(&mut self, factor: &ast::TableFactor, left: &Scope) -> Result<(Node, Scope, bool)> {
        if is_lateral(factor) {
            let (node, scope) = self.plan_lateral(factor, left)?;
            return Ok((node, scope, true));
        }
        match self.plan_table_factor(factor) {
            Err(e)
                if is_function_factor(factor)
                    && matches!(e.state, SqlState::UndefinedColumn | SqlState::UndefinedTable) =>
            {
                let (node, scope) = self.plan_lateral(factor, left)?;
                Ok((node, scope, true))
            }
            planned => planned.map(|(node, scope)| (node, scope, false)),
        }
    }

    /// A `LATERAL (subquery)` to the right of `left`: bound with `left`'s
    /// columns as its innermost outer scope, so it may name them (they
    /// become `Expr::Outer { depth: 1, .. }`, read from the row
    /// `Node::Lateral` runs it for).
    fn plan_lateral(&mut self, factor: &ast::TableFactor, left: &Scope) -> Result<(Node, Scope)> {
        let ast::TableFactor::Derived { subquery, alias, .. } = factor else {
            // A function: its arguments see the left side's row as their outer scope.
            self.outer.push(left.clone());
            let planned = self.plan_table_factor(factor);
            self.outer.pop();
            return planned;
        };
        let plan = self.plan_subquery(subquery, left)?;
        let mut scope = derived_scope(&plan, alias.as_ref().map(|a| ident(&a.name)));
        if let Some(a) = alias {
            rename_columns(&mut scope, &a.columns)?;
        }
        Ok((plan.root, scope))
    }

    fn plan_table_factor(&mut self, factor: &ast::TableFactor) -> Result<(Node, Scope)> {
        match factor {
            ast::TableFactor::Table { name, alias, args, with_ordinality, .. } => {
                if let Some(args) = args {
                    let name = builtin_name(name)?;
                    return self.plan_table_function(&name, &args.args, *with_ordinality, alias.as_ref());
                }
                let (schema, table_name) = schema_and_name(name)?;
                if let Some(schema) = schema.filter(|s| system::is_system_schema(s)) {
                    let relation = system::find(Some(schema), &table_name).ok_or_else(|| {
                        Error::new(
                            SqlState::UndefinedTable,
                            format!("relation \"{schema}.{table_name}\" does not exist"),
                        )
                    })?;
                    return self.plan_system_relation(relation, alias.as_ref());
                }
                if schema.is_none() {
                    let depth = self.outer.len();
                    if let Some(w) = self.work_tables.iter_mut().rev().find(|w| w.name == table_name) {
                        if depth > w.outer_depth {
                            return sql_err!(
                                InvalidRecursion,
                                "recursive reference to query \"{table_name}\" must not appear within a subquery"
                            );
                        }
                        w.used = true;
                        let plan = QueryPlan {
                            root: Node::WorkTable { id: w.id, width: w.columns.len() },
                            columns: w.columns.clone(),
                        };
                        let alias_columns = w.alias_columns.clone();
                        let alias_name = alias.as_ref().map(|a| ident(&a.name)).unwrap_or(table_name);
                        let mut scope = derived_scope(&plan, Some(alias_name));
                        rename_columns(&mut scope, &alias_columns)?;
                        if let Some(a) = alias {
                            rename_columns(&mut scope, &a.columns)?;
                        }
                        return Ok((plan.root, scope));
                    }
                }
                let cte = if schema.is_none() { self.find_cte(&table_name) } else { None };
                if cte.is_none() && schema.is_none() {
                    if let Some(relation) = system::find(None, &table_name) {
                        return self.plan_system_relation(relation, alias.as_ref());
                    }
                }
                if let Some((f, c, cte)) = cte {
                    let plan = match self.ctes[f].materialized[c].clone() {
                        Some((_, columns)) if columns.is_empty() => {
                            return sql_err!(
                                FeatureNotSupported,
                                "WITH query \"{table_name}\" does not have a RETURNING clause"
                            )
                        }
                        Some((id, columns)) => {
                            QueryPlan { root: Node::WorkTable { id, width: columns.len() }, columns }
                        }
                        None => self.plan_cte(f, c, &cte)?,
                    };
                    let alias_name = alias.as_ref().map(|a| ident(&a.name)).unwrap_or(table_name);
                    let mut scope = derived_scope(&plan, Some(alias_name));
                    rename_columns(&mut scope, &cte.alias.columns)?;
                    if let Some(a) = alias {
                        rename_columns(&mut scope, &a.columns)?;
                    }
                    return Ok((plan.root, scope));
                }
                let table = self.table(&table_name)?;
                if table.view.is_some() {
                    return self.plan_view(&table, alias.as_ref());
                }
                let alias_name = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table_name.clone());
                let mut scope = Scope::from_table(&table, &alias_name);
                if let Some(a) = alias {
                    rename_columns(&mut scope, &a.columns)?;
                }
                Ok((Node::full_scan(table), scope))
            }
            // LATERAL reaches here only first in its FROM list, with
            // nothing to its left to see: a plain derived table.
            ast::TableFactor::Derived { subquery, alias, .. } => {
                // A derived table cannot see the enclosing FROM: bind it as
                // a subquery with no new outer scope.
                let plan = self.plan_query(subquery)?;
                let mut scope = derived_scope(&plan, alias.as_ref().map(|a| ident(&a.name)));
                if let Some(a) = alias {
                    rename_columns(&mut scope, &a.columns)?;
                }
                Ok((plan.root, scope))
            }
            ast::TableFactor::NestedJoin { table_with_joins, alias } => {
                if alias.is_some() {
                    return sql_err!(FeatureNotSupported, "an alias on a parenthesized join is not supported");
                }
                self.plan_table_with_joins(table_with_joins)
            }
            ast::TableFactor::Function { name, args, alias, with_ordinality, .. } => {
                let name = builtin_name(name)?;
                self.plan_table_function(&name, args, *with_ordinality, alias.as_ref())
            }
            ast::TableFactor::UNNEST { alias, array_exprs, with_offset, with_ordinality, .. } => {
                if *with_offset || *with_ordinality {
                    return sql_err!(FeatureNotSupported, "unnest WITH ORDINALITY is not supported");
                }
                let [array] = array_exprs.as_slice() else {
                    return sql_err!(FeatureNotSupported, "unnest of several arrays is not supported");
                };
                self.plan_unnest(array, alias.as_ref())
            }
            other => sql_err!(FeatureNotSupported, "FROM item not supported: {other}"),
        }
    }

    /// A `pg_catalog` or `information_schema` relation: its rows, made
    /// from the descriptors this statement's transaction sees.
    fn plan_system_relation(
        &mut self,
        relation: &'static system::SystemRelation,
        alias: Option<&ast::TableAlias>,
    ) -> Result<(Node, Scope)> {
        // (Read even for the relations of the session's own state: a plan
        // that read the catalog is never kept, so their rows are fresh.)
        let mut snapshot = self.system_snapshot()?;
        if relation.reads_session() {
            let (backends, settings, cursors) = match &self.session {
                Some(view) => (view.backends(), view.settings(), (view.cursors)()),
                None => (Vec::new(), Vec::new(), Vec::new()),
            };
            let (tables, sequences, sequence_values) = (Vec::new(), Vec::new(), Vec::new());
            snapshot = Arc::new(system::Snapshot { tables, sequences, backends, settings, cursors, sequence_values });
        }
        if relation.reads_sequence_values() {
            let sequence_values = crate::sequence::last_values(self.txn, &snapshot.sequences)?;
            let (tables, sequences) = (Vec::new(), snapshot.sequences.clone());
            let (backends, settings, cursors) = (Vec::new(), Vec::new(), Vec::new());
            snapshot = Arc::new(system::Snapshot { tables, sequences, backends, settings, cursors, sequence_values });
        }
        // Every row also has PostgreSQL's system column `tableoid` (the
        // relation's oid; psql's `\dd` joins on it), hidden from `*`.
        let oid = Expr::Constant(Value::Int8(
            system::relation_oid(&format!("{}.{}", relation.schema, relation.name)).unwrap_or_default(),
        ));
        let rows = relation
            .rows(&snapshot)
            .into_iter()
            .map(|r| r.into_iter().map(Expr::Constant).chain([oid.clone()]).collect())
            .collect();
        let alias_name = alias.map(|a| ident(&a.name)).unwrap_or_else(|| relation.name.to_string());
        let column = |name: &str, ty: DataType, hidden: bool| ScopeColumn {
            table: Some(alias_name.clone()),
            name: name.to_string(),
            data_type: Some(ty),
            hidden,
            merged_away: false,
            join_key: false,
            not_null: false,
        };
        let mut scope = Scope {
            columns: relation
                .columns
                .iter()
                .map(|(name, ty)| column(name, *ty, false))
                .chain([column("tableoid", DataType::Int8, true)])
                .collect(),
        };
        if let Some(a) = alias {
            rename_columns(&mut scope, &a.columns)?;
        }
        Ok((Node::Values { rows, width: relation.columns.len() + 1 }, scope))
    }

    /// Every descriptor, read once per statement: in its transaction, or
    /// in a block without locks (`unlocked_catalog`).
    fn system_snapshot(&mut self) -> Result<Arc<system::Snapshot>> {
        if let Some(s) = &self.system {
            return Ok(s.clone());
        }
        let tables = match &self.unlocked_catalog {
            Some((engine, own)) => Catalog::tables_without_locks(*engine, self.txn, own)?,
            None => Catalog::tables(self.txn)?,
        };
        let sequences = match &self.unlocked_catalog {
            Some((engine, own)) => crate::sequence::all_without_locks(*engine, self.txn, own)?,
            None => crate::sequence::all(self.txn)?,
        };
        let (backends, settings, cursors, sequence_values) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let snapshot = Arc::new(system::Snapshot { tables, sequences, backends, settings, cursors, sequence_values });
        self.system = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// jsonb's set-returning functions in FROM, as `unnest` of an array
    /// `functions::jsonb` makes from the document: `jsonb_array_elements`
    /// and `jsonb_array_elements_text` (a `value` per element),
    /// `jsonb_object_keys` (a key per row), `jsonb_each` and
    /// `jsonb_each_text` (a `key` and its `value` per row: the keys
    /// unnested, each with its field).
    fn plan_jsonb_rows(
        &mut self,
        name: &str,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> Result<(Node, Scope)> {
        let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] = args else {
            return sql_err!(UndefinedFunction, "function {name} takes one jsonb argument");
        };
        let b = self.bind_expr(e, &Scope::default())?;
        let doc = self.coerce(b, DataType::Jsonb)?;
        let (field, value_type) = match name {
            "jsonb_each" => ("jsonb_object_field", DataType::Jsonb),
            "jsonb_each_text" => ("jsonb_object_field_text", DataType::Text),
            _ => {
                let element = if name == "jsonb_array_elements" { DataType::Jsonb } else { DataType::Text };
                let array = Expr::Function(format!("{name}_array"), vec![doc]);
                let mut scope = function_scope(name, element, alias)?;
                if name != "jsonb_object_keys" && alias.is_none_or(|a| a.columns.is_empty()) {
                    scope.columns[0].name = "value".into();
                }
                return Ok((Node::Unnest { array }, scope));
            }
        };
        let keys = Node::Unnest { array: Expr::Function("jsonb_object_keys_array".into(), vec![doc.clone()]) };
        let value = Expr::Function(field.into(), vec![doc, Expr::Column(0)]);
        let node = Node::Project { input: Box::new(keys), exprs: vec![Expr::Column(0), value] };
        let table = alias.map(|a| ident(&a.name)).unwrap_or_else(|| name.into());
        let column = |name: &str, ty| ScopeColumn {
            table: Some(table.clone()),
            name: name.into(),
            data_type: Some(ty),
            hidden: false,
            merged_away: false,
            join_key: false,
            not_null: false,
        };
        let mut scope = Scope { columns: vec![column("key", DataType::Text), column("value", value_type)] };
        if let Some(a) = alias {
            rename_columns(&mut scope, &a.columns)?;
        }
        Ok((node, scope))
    }

    /// `regexp_matches(s, pattern [, flags])`: a row per match (the first,
    /// or every one with flag `g`), its groups as a text array: the
    /// arguments evaluated once (a row of VALUES, so a volatile one is one
    /// string), then laterally the matches' starts unnested, each row's
    /// groups found at its start.
    ///
    /// ```text
    /// Project [#3]
    ///   LateralJoin Inner
    ///     Values [(s, pattern, flags)]
    ///     Project [regexp_match_at(outer1#0, outer1#1, outer1#2, #0)]
    ///       Unnest regexp_match_starts(outer1#0, outer1#1, outer1#2)
    /// ```
    fn plan_regexp_matches(
        &mut self,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> Result<(Node, Scope)> {
        let mut bound = Vec::new();
        for a in args {
            let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a else {
                return sql_err!(SyntaxError, "regexp_matches takes plain arguments");
            };
            let b = self.bind_expr(e, &Scope::default())?;
            bound.push(self.coerce_loose(b, DataType::Text)?);
        }
        if !(2..=3).contains(&bound.len()) {
            return sql_err!(UndefinedFunction, "function regexp_matches takes 2 or 3 arguments");
        }
        if bound.len() == 2 {
            bound.push(Expr::Constant(Value::Text(String::new())));
        }
        let arguments = Node::Values { rows: vec![bound], width: 3 };
        let mut outer: Vec<Expr> = (0..3).map(|index| Expr::Outer { depth: 1, index }).collect();
        let starts = Node::Unnest { array: Expr::Function("regexp_match_starts".into(), outer.clone()) };
        outer.push(Expr::Column(0));
        let at = Expr::Function("regexp_match_at".into(), outer);
        let matches = Node::Project { input: Box::new(starts), exprs: vec![at] };
        let lateral =
            Node::Lateral { left: Box::new(arguments), right: Box::new(matches), kind: JoinKind::Inner, on: None };
        let node = Node::Project { input: Box::new(lateral), exprs: vec![Expr::Column(3)] };
        let texts = DataType::array_of(DataType::Text).expect("text[] exists");
        Ok((node, function_scope("regexp_matches", texts, alias)?))
    }

    /// `unnest(array)`: a row per element.
    fn plan_unnest(&mut self, e: &ast::Expr, alias: Option<&ast::TableAlias>) -> Result<(Node, Scope)> {
        let b = self.bind_expr(e, &Scope::default())?;
        let ty = match b.ty {
            Some(t) => t,
            None => DataType::array_of(DataType::Text).expect("text[] exists"),
        };
        let Some(element) = ty.element() else {
            return sql_err!(UndefinedFunction, "function unnest({ty}) does not exist");
        };
        let array = self.coerce_loose(b, ty)?;
        Ok((Node::Unnest { array }, function_scope("unnest", element, alias)?))
    }

    fn plan_table_function(
        &mut self,
        name: &str,
        args: &[ast::FunctionArg],
        with_ordinality: bool,
        alias: Option<&ast::TableAlias>,
    ) -> Result<(Node, Scope)> {
        if name == "pg_partition_ancestors" {
            // SpanDB has no partitions: no relation has ancestors (psql's
            // `\d` asks, for its triggers).
            let table = alias.map(|a| ident(&a.name)).unwrap_or_else(|| name.into());
            let column = |name: &str| ScopeColumn {
                table: Some(table.clone()),
                name: name.into(),
                data_type: Some(DataType::Int8),
                hidden: false,
                merged_away: false,
                join_key: false,
                not_null: false,
            };
            let mut scope = Scope { columns: vec![column("relid")] };
            if with_ordinality {
                scope.columns.push(column("ordinality"));
            }
            if let Some(a) = alias {
                rename_columns(&mut scope, &a.columns)?;
            }
            return Ok((Node::Values { rows: Vec::new(), width: scope.columns.len() }, scope));
        }
        if with_ordinality {
            return sql_err!(FeatureNotSupported, "{name} WITH ORDINALITY is not supported");
        }
        if name == "unnest" {
            let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] = args else {
                return sql_err!(UndefinedFunction, "function unnest takes one array argument");
            };
            return self.plan_unnest(e, alias);
        }
        if is_jsonb_rows_function(name) {
            return self.plan_jsonb_rows(name, args, alias);
        }
        if name == "regexp_matches" {
            return self.plan_regexp_matches(args, alias);
        }
        if name != "generate_series" {
            return sql_err!(UndefinedFunction, "function {name} does not exist");
        }
        let mut bound = Vec::new();
        for a in args {
            let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a else {
                return sql_err!(SyntaxError, "generate_series takes plain arguments");
            };
            bound.push(self.bind_expr(e, &Scope::default())?);
        }
        if !(2..=3).contains(&bound.len()) {
            return sql_err!(
                UndefinedFunction,
                "function generate_series with {} arguments does not exist",
                bound.len()
            );
        }
        let types: Vec<Option<DataType>> = bound.iter().map(|b| b.ty).collect();
        let no_such = || {
            let names: Vec<String> = types.iter().map(|t| t.map_or("unknown".into(), ops::type_name)).collect();
            Error::new(
                SqlState::UndefinedFunction,
                format!("function generate_series({}) does not exist", names.join(", ")),
            )
            .with_hint("No function matches the given name and argument types.")
        };
        // Timestamps by an interval: `timestamp` when neither bound is
        // more (a date or a timestamptz), else `timestamptz`, as
        // PostgreSQL resolves them (a date is a timestamptz there).
        let temporal =
            types.iter().flatten().any(|t| t.is_timestamp() || matches!(t, DataType::Date | DataType::Interval));
        let (ty, step_ty) = if temporal {
            if bound.len() != 3 {
                return Err(no_such());
            }
            // One bound exactly a timestamp (and none a timestamptz) picks
            // the timestamp form, as PostgreSQL's exact-match rule does.
            let plain =
                types[..2].contains(&Some(DataType::Timestamp)) && !types[..2].contains(&Some(DataType::TimestampTz));
            let ty = if plain { DataType::Timestamp } else { DataType::TimestampTz };
            let fits = |t: Option<DataType>, want: DataType| t.is_none_or(|t| ops::can_coerce_implicitly(t, want));
            if !(fits(types[0], ty) && fits(types[1], ty) && fits(types[2], DataType::Interval)) {
                return Err(no_such());
            }
            (ty, DataType::Interval)
        } else {
            let ty = types.iter().flatten().try_fold(DataType::Int4, |acc, t| {
                if t.is_integer() {
                    ops::common_type(acc, *t)
                } else {
                    Err(no_such())
                }
            })?;
            (ty, ty)
        };
        let mut exprs = Vec::new();
        for (i, b) in bound.into_iter().enumerate() {
            exprs.push(self.coerce(b, if i < 2 { ty } else { step_ty })?);
        }
        let mut it = exprs.into_iter();
        let (start, stop, step) = (it.next().expect("2..=3"), it.next().expect("2..=3"), it.next());
        Ok((Node::Series { start, stop, step, data_type: ty }, function_scope("generate_series", ty, alias)?))
    }

    // ---- expressions -------------------------------------------------------

    /// Coerces an untyped literal to `ty` (parsing its text), else checks
    /// `b` is of a type that converts implicitly, else 42804.
    fn coerce(&mut self, b: Bound, ty: DataType) -> Result<Expr> {
        let b = self.coerce_literal(b, ty)?;
        match b.ty {
            None => Ok(b.expr),
            Some(t) if t.base() == ty.base() => Ok(b.expr),
            Some(t) if ops::can_coerce_implicitly(t, ty) => Ok(Expr::Cast(Box::new(b.expr), ty)),
            Some(t) => sql_err!(DatatypeMismatch, "argument must be type {ty}, not type {t}"),
        }
    }

    /// Gives an untyped literal or parameter the type `ty`.
    fn coerce_literal(&mut self, b: Bound, ty: DataType) -> Result<Bound> {
        // A literal or parameter beside a NUMERIC(p, s) is a numeric of its
        // own digits (PostgreSQL's typmod -1): `price = '1.005'` is false
        // for 1.01, where rounding the literal to the column would match.
        let ty = if ty.is_decimal() { ty.base() } else { ty };
        if let Some(text) = &b.literal {
            let v = ops::parse_text(text, ty)?;
            return Ok(Bound::typed(Expr::Constant(v), ty));
        }
        if b.ty.is_none() {
            if let Expr::Param(i) = b.expr {
                self.infer_param(i, ty);
            }
            return Ok(Bound { ty: Some(ty), ..b });
        }
        Ok(b)
    }

    fn infer_param(&mut self, i: usize, ty: DataType) {
        if self.param_types.len() <= i {
            self.param_types.resize(i + 1, None);
        }
        if self.param_types[i].is_none() {
            self.param_types[i] = Some(ty);
        }
    }

    /// An untyped literal in a position with no context becomes text.
    fn default_type(&mut self, b: Bound) -> Result<Bound> {
        match (&b.ty, &b.literal) {
            (None, Some(_)) => self.coerce_literal(b, DataType::Text),
            (None, None) if matches!(b.expr, Expr::Param(_)) => self.coerce_literal(b, DataType::Text),
            _ => Ok(b),
        }
    }

    /// Binds `e` in `scope` (the current level; outer levels in
    /// `self.outer`).
    fn bind_expr(&mut self, e: &ast::Expr, scope: &Scope) -> Result<Bound> {
        let sql = self.sql;
        self.bind_expr_checked(e, scope, 0).map_err(|err| match position_of(sql, e.span().start) {
            Some(pos) if err.position.is_none() => Error { position: Some(pos), ..err },
            _ => err,
        })
    }

    fn bind_expr_checked(&mut self, e: &ast::Expr, scope: &Scope, depth: usize) -> Result<Bound> {
        if depth > limits::NESTING_DEPTH_MAX * 4 {
            return sql_err!(ProgramLimitExceeded, "expression nests too deeply");
        }
        // In an aggregating level, a whole GROUP BY expression or an
        // aggregate call is a column of the Aggregate node.
        if let Some(agg) = &self.agg {
            let text = e.to_string();
            if let Some(i) = agg.group_texts.iter().position(|t| *t == text) {
                return Ok(Bound::typed(Expr::Column(i), agg.types[i]));
            }
            if let Some(j) = agg.agg_texts.iter().position(|t| *t == text) {
                let i = agg.group_texts.len() + j;
                return Ok(Bound::typed(Expr::Column(i), agg.types[i]));
            }
        }
        // A window call is a column of the Window node.
        if let (ast::Expr::Function(f), Some(w)) = (e, &self.window) {
            if f.over.is_some() {
                return w.column(&e.to_string());
            }
        }
        let rec = |p: &mut Planner, e: &ast::Expr| p.bind_expr_checked(e, scope, depth + 1);
        use ast::Expr as E;
        match e {
            E::Identifier(i) => self.bind_column(None, &ident(i), scope),
            E::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => self.bind_column(Some(&ident(t)), &ident(c), scope),
                [s, t, c] if ident(s) == "public" => self.bind_column(Some(&ident(t)), &ident(c), scope),
                _ => sql_err!(FeatureNotSupported, "name not supported: {e}"),
            },
            E::Value(v) => self.bind_value(&v.value),
            E::Nested(inner) => rec(self, inner),
            E::Collate { expr, collation } => {
                // Strings compare byte-wise (C collation) whatever is asked.
                match builtin_name(collation)?.as_str() {
                    "default" | "c" | "posix" | "ucs_basic" => rec(self, expr),
                    other => sql_err!(UndefinedObject, "collation \"{other}\" for encoding \"UTF8\" does not exist"),
                }
            }
            // `INTERVAL '1 day'`, `INTERVAL '3' HOUR` (the unit applies to
            // a bare number).
            E::Interval(iv) => {
                let text = match iv.value.as_ref() {
                    E::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => s.clone(),
                        ast::Value::Number(n, _) => n.clone(),
                        other => return sql_err!(SyntaxError, "expected a string after INTERVAL, got {other}"),
                    },
                    other => {
                        return sql_err!(FeatureNotSupported, "INTERVAL of an expression is not supported: {other}")
                    }
                };
                let text = match (&iv.leading_field, &iv.last_field) {
                    (None, None) => text,
                    (Some(unit), None) if text.trim().parse::<f64>().is_ok() => format!("{text} {unit}"),
                    _ => return sql_err!(FeatureNotSupported, "INTERVAL with field qualifiers is not supported: {e}"),
                };
                Ok(Bound::typed(Expr::Constant(ops::parse_text(&text, DataType::Interval)?), DataType::Interval))
            }
            E::TypedString(ts) => {
                let ty = data_type(&ts.data_type)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => s.clone(),
                    other => return sql_err!(SyntaxError, "expected a string after {ty}, got {other}"),
                };
                Ok(Bound::typed(Expr::Constant(ops::parse_text(&text, ty)?), ty))
            }
            E::BinaryOp { left, op, right } => {
                if let (E::Tuple(ls), E::Tuple(rs)) = (&**left, &**right) {
                    return self.bind_row_comparison(ls, op, rs, scope, depth);
                }
                let l = rec(self, left)?;
                let r = rec(self, right)?;
                self.bind_binary(op, l, r)
            }
            E::UnaryOp { op, expr } => {
                let b = rec(self, expr)?;
                match op {
                    ast::UnaryOperator::Not => {
                        let x = self.coerce(b, DataType::Bool)?;
                        Ok(Bound::typed(Expr::Not(Box::new(x)), DataType::Bool))
                    }
                    ast::UnaryOperator::Minus | ast::UnaryOperator::Plus => {
                        let uop = if *op == ast::UnaryOperator::Minus { UnaryOp::Neg } else { UnaryOp::Plus };
                        // -<number literal> is one constant (so -32768::int2 works).
                        let b = match (&b.literal, b.ty) {
                            (Some(_), _) => self.coerce_literal(b, DataType::Float8)?,
                            (None, None) => Bound { ty: Some(DataType::Int4), ..b },
                            _ => b,
                        };
                        let ty = b.ty.unwrap_or(DataType::Int4);
                        let rt = ops::unary_result_type(uop, ty)?;
                        if let Expr::Constant(v) = &b.expr {
                            return Ok(Bound::typed(Expr::Constant(ops::unary(uop, v)?), rt));
                        }
                        Ok(Bound::typed(Expr::Unary(uop, Box::new(b.expr)), rt))
                    }
                    ast::UnaryOperator::BitwiseNot => {
                        let b = self.default_type(b)?;
                        let ty = match b.ty {
                            Some(DataType::Int8) => DataType::Int8,
                            Some(t) if t.is_integer() => DataType::Int4,
                            t => {
                                let t = t.map_or("unknown".into(), ops::type_name);
                                return sql_err!(UndefinedFunction, "operator does not exist: ~ {t}");
                            }
                        };
                        let x = self.coerce(b, ty)?;
                        Ok(Bound::typed(Expr::Function("bitnot".into(), vec![x]), ty))
                    }
                    other => sql_err!(FeatureNotSupported, "operator {other} is not supported"),
                }
            }
            E::IsNull(x) | E::IsNotNull(x) => {
                let b = rec(self, x)?;
                let test = Expr::IsNull(Box::new(b.expr));
                let test = if matches!(e, E::IsNotNull(_)) { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::IsTrue(x) | E::IsNotTrue(x) | E::IsFalse(x) | E::IsNotFalse(x) => {
                let b = rec(self, x)?;
                let x = self.coerce(b, DataType::Bool)?;
                let want = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let test = Expr::IsBool(Box::new(x), want);
                let test =
                    if matches!(e, E::IsNotTrue(_) | E::IsNotFalse(_)) { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::IsUnknown(x) | E::IsNotUnknown(x) => {
                let b = rec(self, x)?;
                let x = self.coerce(b, DataType::Bool)?;
                let test = Expr::IsNull(Box::new(x));
                let test = if matches!(e, E::IsNotUnknown(_)) { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let l = rec(self, a)?;
                let r = rec(self, b)?;
                let (l, r, _) = self.unify(l, r, "IS DISTINCT FROM")?;
                let test = Expr::IsDistinctFrom(Box::new(l), Box::new(r));
                let test = if matches!(e, E::IsNotDistinctFrom(..)) { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::Between { expr, negated, low, high } => {
                let x = rec(self, expr)?;
                let lo = rec(self, low)?;
                let hi = rec(self, high)?;
                let ge = self.bind_binary(&ast::BinaryOperator::GtEq, x.clone(), lo)?;
                let le = self.bind_binary(&ast::BinaryOperator::LtEq, x, hi)?;
                let both = Expr::And(Box::new(ge.expr), Box::new(le.expr));
                let both = if *negated { Expr::Not(Box::new(both)) } else { both };
                Ok(Bound::typed(both, DataType::Bool))
            }
            // `(a, b) IN ((1, 2), (3, 4))`: equal to one of the rows
            // (PostgreSQL's definition: the rows' `=` ORed, NULLs as they
            // make those).
            E::In { expr, target: ast::InTarget::List(list), negated, .. } if matches!(&**expr, E::Tuple(_)) => {
                let E::Tuple(row) = &**expr else { return sql_err!(InternalError, "a row expected") };
                let mut tests = Vec::with_capacity(list.len());
                for item in list {
                    let E::Tuple(items) = item else {
                        return sql_err!(UndefinedFunction, "operator does not exist: record = {item}");
                    };
                    tests.push(self.bind_row_comparison(row, &ast::BinaryOperator::Eq, items, scope, depth)?.expr);
                }
                let any = or_balanced(tests).ok_or_else(|| Error::new(SqlState::SyntaxError, "empty IN list"))?;
                let test = if *negated { Expr::Not(Box::new(any)) } else { any };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::In { expr, target: ast::InTarget::List(list), negated, .. } => {
                let x = rec(self, expr)?;
                let mut items = Vec::new();
                for item in list {
                    items.push(rec(self, item)?);
                }
                let ty = items.iter().try_fold(x.ty, |acc, i| merge_type(acc, i.ty, None))?;
                let ty = ty.unwrap_or(DataType::Text);
                let x = self.coerce_loose(x, ty)?;
                let items = items.into_iter().map(|i| self.coerce_loose(i, ty)).collect::<Result<Vec<_>>>()?;
                let test = Expr::InList(Box::new(x), items);
                let test = if *negated { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::In { expr, target: ast::InTarget::Subquery(subquery), negated, .. } => {
                let x = rec(self, expr)?;
                let plan = self.plan_subquery(subquery, scope)?;
                if plan.columns.len() != 1 {
                    return sql_err!(SyntaxError, "subquery has too many columns");
                }
                let ty = plan.columns[0].data_type;
                let x = self.coerce_loose(x, ty)?;
                let test = Expr::InSubquery(Box::new(x), Arc::new(plan.root));
                let test = if *negated { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::Exists { subquery, negated } => {
                let plan = self.plan_subquery(subquery, scope)?;
                let test = Expr::Exists(Arc::new(plan.root));
                let test = if *negated { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::Subquery(q) => {
                let plan = self.plan_subquery(q, scope)?;
                if plan.columns.len() != 1 {
                    return sql_err!(SyntaxError, "subquery must return only one column");
                }
                Ok(Bound::typed(Expr::Subquery(Arc::new(plan.root)), plan.columns[0].data_type))
            }
            E::Array(ast::Array { elem, .. }) => {
                let items = elem.iter().map(|i| rec(self, i)).collect::<Result<Vec<_>>>()?;
                let ty = items.iter().try_fold(None, |acc, i| merge_type(acc, i.ty, Some("ARRAY")))?;
                let ty = ty.unwrap_or(DataType::Text);
                let Some(array) = DataType::array_of(ty) else {
                    return sql_err!(FeatureNotSupported, "arrays of {ty} are not supported");
                };
                let items = items.into_iter().map(|i| self.coerce_loose(i, ty)).collect::<Result<Vec<_>>>()?;
                let built = Expr::Function("array".into(), items);
                Ok(Bound::typed(Expr::Cast(Box::new(built), array), array))
            }
            E::AnyOp { left, compare_op, right, .. } | E::AllOp { left, compare_op, right } => {
                let all = matches!(e, E::AllOp { .. });
                self.bind_quantified(left, compare_op, right, all, scope, depth)
            }
            E::CompoundFieldAccess { root, access_chain } => {
                let [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] = access_chain.as_slice() else {
                    return sql_err!(FeatureNotSupported, "only one subscript (a[i]) is supported: {e}");
                };
                let array = rec(self, root)?;
                let Some(element) = array.ty.and_then(DataType::element) else {
                    return sql_err!(
                        DatatypeMismatch,
                        "cannot subscript type {} because it does not support subscripting",
                        array.ty.map_or("unknown".into(), ops::type_name)
                    );
                };
                let index = rec(self, index)?;
                let index = self.coerce(index, DataType::Int8)?;
                Ok(Bound::typed(Expr::Function("array_element".into(), vec![array.expr, index]), element))
            }
            E::Like { negated, any, expr, pattern, escape_char }
            | E::ILike { negated, any, expr, pattern, escape_char } => {
                if *any {
                    return sql_err!(FeatureNotSupported, "LIKE ANY is not supported");
                }
                let x = rec(self, expr)?;
                let p = rec(self, pattern)?;
                let x = self.coerce_loose(x, DataType::Text)?;
                let p = self.coerce_loose(p, DataType::Text)?;
                // `ESCAPE e`: the pattern rewritten to the default escape,
                // as PostgreSQL's like_escape(pattern, e) does.
                let p = match escape_char {
                    None => p,
                    Some(e) => {
                        let e = rec(self, e)?;
                        let e = self.coerce_loose(e, DataType::Text)?;
                        Expr::Function("like_escape".into(), vec![p, e])
                    }
                };
                let test = Expr::Like {
                    expr: Box::new(x),
                    pattern: Box::new(p),
                    case_insensitive: matches!(e, E::ILike { .. }),
                };
                let test = if *negated { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            // A regular-expression match of the whole value, with the
            // pattern translated (`functions`' similar_to_escape).
            E::SimilarTo { negated, expr, pattern, escape_char } => {
                let x = rec(self, expr)?;
                let p = rec(self, pattern)?;
                let x = self.coerce_loose(x, DataType::Text)?;
                let mut args = vec![self.coerce_loose(p, DataType::Text)?];
                if let Some(e) = escape_char {
                    let e = rec(self, e)?;
                    args.push(self.coerce_loose(e, DataType::Text)?);
                }
                let regex = Expr::Function("similar_to_escape".into(), args);
                let test = Expr::Function("textregexeq".into(), vec![x, regex]);
                let test = if *negated { Expr::Not(Box::new(test)) } else { test };
                Ok(Bound::typed(test, DataType::Bool))
            }
            E::Cast { expr, data_type: t, format, .. } => {
                if format.is_some() {
                    return sql_err!(FeatureNotSupported, "CAST ... FORMAT is not supported");
                }
                if let Some(kind) = reg_type(t) {
                    let b = rec(self, expr)?;
                    return self.bind_reg_cast(&kind, b);
                }
                let ty = data_type(t)?;
                let b = rec(self, expr)?;
                if let (Some(text), true) = (&b.literal, ty.is_string()) {
                    // An explicit cast to a string type truncates.
                    let v = ops::cast(&Value::Text(text.clone()), ty)?;
                    return Ok(Bound::typed(Expr::Constant(v), ty));
                }
                if b.literal.is_some() || b.ty.is_none() {
                    // 'x'::type parses the literal as the type; NULL::type.
                    let b = self.coerce_literal(b, ty)?;
                    if let Expr::Constant(v) = &b.expr {
                        return Ok(Bound::typed(Expr::Constant(ops::cast(v, ty)?), ty));
                    }
                    return Ok(Bound::typed(Expr::Cast(Box::new(b.expr), ty), ty));
                }
                let from = b.ty.expect("typed");
                if !ops::can_cast(from, ty) {
                    return sql_err!(CannotCoerce, "cannot cast type {from} to {ty}");
                }
                Ok(Bound::typed(Expr::Cast(Box::new(b.expr), ty), ty))
            }
            E::Case { operand, conditions, else_result, .. } => {
                let operand = match operand {
                    Some(o) => Some(rec(self, o)?),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for c in conditions {
                    whens.push(rec(self, &c.condition)?);
                    results.push(rec(self, &c.result)?);
                }
                let otherwise = match else_result {
                    Some(x) => rec(self, x)?,
                    None => Bound { expr: Expr::Constant(Value::Null), ty: None, literal: None },
                };
                let ty = results
                    .iter()
                    .chain(std::iter::once(&otherwise))
                    .try_fold(None, |acc, r| merge_type(acc, r.ty, Some("CASE")))?;
                let ty = ty.unwrap_or(DataType::Text);
                let mut bound_whens = Vec::new();
                let operand_expr;
                match operand {
                    Some(o) => {
                        // CASE x WHEN v: compare x = v.
                        let wty = whens.iter().try_fold(o.ty, |acc, w| merge_type(acc, w.ty, None))?;
                        let wty = wty.unwrap_or(DataType::Text);
                        operand_expr = Some(Box::new(self.coerce_loose(o, wty)?));
                        for (w, r) in whens.into_iter().zip(results) {
                            bound_whens.push((self.coerce_loose(w, wty)?, self.coerce_loose(r, ty)?));
                        }
                    }
                    None => {
                        operand_expr = None;
                        for (w, r) in whens.into_iter().zip(results) {
                            bound_whens.push((self.coerce(w, DataType::Bool)?, self.coerce_loose(r, ty)?));
                        }
                    }
                }
                let otherwise = self.coerce_loose(otherwise, ty)?;
                Ok(Bound::typed(
                    Expr::Case { operand: operand_expr, whens: bound_whens, otherwise: Box::new(otherwise) },
                    ty,
                ))
            }
            E::Function(f) => self.bind_function(f, scope, depth),
            // numeric, as in PostgreSQL 14 and later (date_part stays
            // double precision).
            E::Extract { field, expr, .. } => {
                let ts = rec(self, expr)?;
                let ts = match ts.ty {
                    Some(DataType::TimestampTz | DataType::Interval | DataType::Time | DataType::Date) => ts.expr,
                    _ => self.coerce_loose(ts, DataType::Timestamp)?,
                };
                let field = Expr::Constant(Value::Text(field.to_string().to_lowercase()));
                Ok(Bound::typed(Expr::Function("extract".into(), vec![field, ts]), DataType::Numeric(None)))
            }
            E::AtTimeZone { timestamp, time_zone } => {
                // PostgreSQL's `timezone(zone, ts)` (`ops::zone`): an
                // untyped literal or a date is a timestamptz there.
                let ts = rec(self, timestamp)?;
                let (ts, ty) = match ts.ty {
                    Some(DataType::Timestamp) => (ts.expr, DataType::TimestampTz),
                    Some(DataType::TimestampTz) => (ts.expr, DataType::Timestamp),
                    _ => (self.coerce(ts, DataType::TimestampTz)?, DataType::Timestamp),
                };
                let zone = rec(self, time_zone)?;
                let zone = match zone.ty {
                    Some(DataType::Interval) => zone.expr,
                    _ => self.coerce_loose(zone, DataType::Text)?,
                };
                Ok(Bound::typed(Expr::Function("timezone".into(), vec![zone, ts]), ty))
            }
            E::Position { expr, r#in } => {
                let needle = rec(self, expr)?;
                let hay = rec(self, r#in)?;
                let needle = self.coerce_loose(needle, DataType::Text)?;
                let hay = self.coerce_loose(hay, DataType::Text)?;
                Ok(Bound::typed(Expr::Function("strpos".into(), vec![hay, needle]), DataType::Int4))
            }
            E::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![rec(self, expr)?];
                args.push(match substring_from {
                    Some(f) => rec(self, f)?,
                    None => Bound::typed(Expr::Constant(Value::Int4(1)), DataType::Int4),
                });
                if let Some(f) = substring_for {
                    args.push(rec(self, f)?);
                }
                self.bind_call("substr", args)
            }
            E::Trim { trim_where, trim_what, expr, trim_characters } => {
                if trim_characters.is_some() {
                    return sql_err!(FeatureNotSupported, "TRIM with a character list is not supported");
                }
                let name = match trim_where {
                    None | Some(ast::TrimWhereField::Both) => "btrim",
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                };
                let mut args = vec![rec(self, expr)?];
                if let Some(w) = trim_what {
                    args.push(rec(self, w)?);
                }
                self.bind_call(name, args)
            }
            E::Ceil { expr, field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime) } => {
                let args = vec![rec(self, expr)?];
                self.bind_call("ceil", args)
            }
            E::Floor { expr, field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime) } => {
                let args = vec![rec(self, expr)?];
                self.bind_call("floor", args)
            }
            other => sql_err!(FeatureNotSupported, "expression not supported: {}", first_words(&other.to_string())),
        }
    }

    /// Like `coerce`, but a typed value of another type is kept as is
    /// (the operator decides): numbers of different widths, say.
    fn coerce_loose(&mut self, b: Bound, ty: DataType) -> Result<Expr> {
        let b = self.coerce_literal(b, ty)?;
        match b.ty {
            // timestamptz to timestamp is an assignment cast in
            // PostgreSQL, not an implicit one; the two convert freely here
            // (through the session's zone).
            Some(t)
                if t.base() != ty.base()
                    && (ops::can_coerce_implicitly(t, ty) || (t.is_datetime() && ty.is_datetime())) =>
            {
                Ok(Expr::Cast(Box::new(b.expr), ty))
            }
            Some(t) if t.base() != ty.base() && !(t.is_numeric() && ty.is_numeric()) => {
                sql_err!(DatatypeMismatch, "types {t} and {ty} cannot be matched")
            }
            _ => Ok(b.expr),
        }
    }

    /// Gives both sides of a comparison one type family.
    fn unify(&mut self, l: Bound, r: Bound, what: &str) -> Result<(Expr, Expr, Option<DataType>)> {
        let (l, r) = match (l.ty, r.ty) {
            (None, Some(t)) => (self.coerce_literal(l, t)?, r),
            (Some(t), None) => {
                let r = self.coerce_literal(r, t)?;
                (l, r)
            }
            (None, None) => {
                let l = self.default_type(l)?;
                let r = self.default_type(r)?;
                (l, r)
            }
            _ => (l, r),
        };
        match (l.ty, r.ty) {
            (Some(a), Some(b)) if a.base() == b.base() || (a.is_numeric() && b.is_numeric()) => {
                Ok((l.expr, r.expr, Some(a)))
            }
            // A timestamp column against a timestamptz: the instant as
            // the session zone's wall clock, so the column stays bare for
            // a scan's bounds (the same order but where a zone's clocks
            // repeat an hour).
            (Some(DataType::TimestampTz), Some(DataType::Timestamp)) if matches!(r.expr, Expr::Column(_)) => {
                Ok((Expr::Cast(Box::new(l.expr), DataType::Timestamp), r.expr, Some(DataType::Timestamp)))
            }
            (Some(DataType::Timestamp), Some(DataType::TimestampTz)) if matches!(l.expr, Expr::Column(_)) => {
                Ok((l.expr, Expr::Cast(Box::new(r.expr), DataType::Timestamp), Some(DataType::Timestamp)))
            }
            // A timestamptz against a date or timestamp: the other side
            // is the session zone's wall clock, made an instant (as
            // PostgreSQL casts it), so a timestamptz key column stays a
            // bare column a scan can be bounded by.
            (Some(DataType::TimestampTz), Some(DataType::Timestamp | DataType::Date)) => {
                Ok((l.expr, Expr::Cast(Box::new(r.expr), DataType::TimestampTz), Some(DataType::TimestampTz)))
            }
            (Some(DataType::Timestamp | DataType::Date), Some(DataType::TimestampTz)) => {
                Ok((Expr::Cast(Box::new(l.expr), DataType::TimestampTz), r.expr, Some(DataType::TimestampTz)))
            }
            // Compared by their counts, uncast (so a key column stays a
            // bare column a scan can be bounded by).
            (Some(a), Some(b)) if a.is_datetime() && b.is_datetime() => {
                Ok((l.expr, r.expr, Some(ops::common_type(a, b)?)))
            }
            (Some(a), Some(b)) if ops::can_coerce_implicitly(a, b) => {
                Ok((Expr::Cast(Box::new(l.expr), b), r.expr, Some(b)))
            }
            (Some(a), Some(b)) if ops::can_coerce_implicitly(b, a) => {
                Ok((l.expr, Expr::Cast(Box::new(r.expr), a), Some(a)))
            }
            (Some(a), Some(b)) => sql_err!(UndefinedFunction, "operator does not exist: {a} {what} {b}"),
            _ => Ok((l.expr, r.expr, l.ty.or(r.ty))),
        }
    }

    /// `(a, b) op (c, d)`: pairwise, as the SQL standard defines row
    /// comparisons. `=` is every pair equal, `<>` some pair unequal; the
    /// orderings are lexicographic, `a < c OR (a = c AND b < d)` (`<=`
    /// for the last pair of `<=`), which gives PostgreSQL's NULLs too: a
    /// NULL in the first pair that differs makes the result NULL.
    fn bind_row_comparison(
        &mut self,
        left: &[ast::Expr],
        op: &ast::BinaryOperator,
        right: &[ast::Expr],
        scope: &Scope,
        depth: usize,
    ) -> Result<Bound> {
        use ast::BinaryOperator as B;
        if left.len() != right.len() || left.is_empty() {
            return sql_err!(SyntaxError, "unequal number of entries in row expressions");
        }
        let strict = match op {
            B::Eq | B::NotEq => op.clone(),
            B::Lt | B::LtEq => B::Lt,
            B::Gt | B::GtEq => B::Gt,
            other => return sql_err!(FeatureNotSupported, "row comparison with {other} is not supported"),
        };
        let mut pairs = Vec::new();
        for (l, r) in left.iter().zip(right) {
            let l = self.bind_expr_checked(l, scope, depth + 1)?;
            let r = self.bind_expr_checked(r, scope, depth + 1)?;
            pairs.push((l, r));
        }
        let compare = |p: &mut Self, (l, r): &(Bound, Bound), op: &ast::BinaryOperator| -> Result<Expr> {
            Ok(p.bind_binary(op, l.clone(), r.clone())?.expr)
        };
        let (last, rest) = pairs.split_last().expect("not empty");
        let mut test = compare(self, last, op)?;
        for pair in rest.iter().rev() {
            test = match op {
                B::Eq => Expr::And(Box::new(compare(self, pair, &B::Eq)?), Box::new(test)),
                B::NotEq => Expr::Or(Box::new(compare(self, pair, &B::NotEq)?), Box::new(test)),
                _ => {
                    let equal = Expr::And(Box::new(compare(self, pair, &B::Eq)?), Box::new(test));
                    Expr::Or(Box::new(compare(self, pair, &strict)?), Box::new(equal))
                }
            };
        }
        Ok(Bound::typed(test, DataType::Bool))
    }

    fn bind_binary(&mut self, op: &ast::BinaryOperator, l: Bound, r: Bound) -> Result<Bound> {
        use ast::BinaryOperator as B;
        match op {
            B::And | B::Or => {
                let l = self.coerce(l, DataType::Bool)?;
                let r = self.coerce(r, DataType::Bool)?;
                let e = if *op == B::And {
                    Expr::And(Box::new(l), Box::new(r))
                } else {
                    Expr::Or(Box::new(l), Box::new(r))
                };
                return Ok(Bound::typed(e, DataType::Bool));
            }
            _ => {}
        }
        if let Some(f) = bitwise_function(op) {
            // Integers only; int2 and int4 operands give int4, an int8 one
            // int8; a shift's count is an int4.
            let (l, r) = (self.default_type(l)?, self.default_type(r)?);
            let (lt, rt) = (l.ty.unwrap_or(DataType::Int4), r.ty.unwrap_or(DataType::Int4));
            if !lt.is_integer() || !rt.is_integer() {
                return sql_err!(
                    UndefinedFunction,
                    "operator does not exist: {} {op} {}",
                    ops::type_name(lt),
                    ops::type_name(rt)
                );
            }
            let wide = |t: DataType| if t == DataType::Int8 { DataType::Int8 } else { DataType::Int4 };
            let (lt, rt) = match f {
                "shiftleft" | "shiftright" => (wide(lt), DataType::Int4),
                _ => {
                    let both =
                        if lt == DataType::Int8 || rt == DataType::Int8 { DataType::Int8 } else { DataType::Int4 };
                    (both, both)
                }
            };
            let (l, r) = (self.coerce(l, lt)?, self.coerce(r, rt)?);
            return Ok(Bound::typed(Expr::Function(f.into(), vec![l, r]), lt));
        }
        if matches!(op, ast::BinaryOperator::PGExp) {
            let (l, r) = (self.coerce_loose(l, DataType::Float8)?, self.coerce_loose(r, DataType::Float8)?);
            return Ok(Bound::typed(Expr::Function("power".into(), vec![l, r]), DataType::Float8));
        }
        // `||` of an array: with an array (or an untyped literal, read as
        // one) array_cat, with an element array_append or array_prepend.
        let is_array = |b: &Bound| b.ty.is_some_and(|t| t.element().is_some());
        if matches!(op, B::StringConcat) && (is_array(&l) || is_array(&r)) {
            let name = match (is_array(&l), is_array(&r)) {
                (true, true) => "array_cat",
                // (An untyped side, a literal or NULL, is an array:
                // `ARRAY[1] || NULL` is {1}, as in PostgreSQL.)
                (true, false) if r.ty.is_none() => "array_cat",
                (false, true) if l.ty.is_none() => "array_cat",
                (true, false) => "array_append",
                (false, _) => "array_prepend",
            };
            if name == "array_cat" {
                // Both sides of one array type: the two arrays' common one
                // (`ARRAY[1] || ARRAY[1.5]` is numeric[]), an untyped side
                // read as the other's.
                let element = |b: &Bound| b.ty.and_then(DataType::element);
                let ty = match (element(&l), element(&r)) {
                    (Some(a), Some(b)) => DataType::array_of(ops::common_type(a, b)?),
                    (a, b) => a.or(b).and_then(DataType::array_of),
                };
                let Some(ty) = ty else {
                    return sql_err!(FeatureNotSupported, "arrays of these element types are not supported");
                };
                let (l, r) = (self.coerce(l, ty)?, self.coerce(r, ty)?);
                return self.bind_call(name, vec![Bound::typed(l, ty), Bound::typed(r, ty)]);
            }
            return self.bind_call(name, vec![l, r]);
        }
        // An array's containment (`@>`, `<@`) and overlap (`&&`): both
        // sides of one array type (an untyped literal read as it).
        if matches!(op, B::AtArrow | B::ArrowAt | B::PGOverlap) && (is_array(&l) || is_array(&r)) {
            let ty = l.ty.filter(|t| t.element().is_some()).or(r.ty).expect("one side is an array");
            let (l, r) = (self.coerce(l, ty)?, self.coerce(r, ty)?);
            let name = if *op == B::PGOverlap { "arrayoverlap" } else { "arraycontains" };
            let args = if *op == B::ArrowAt { vec![r, l] } else { vec![l, r] };
            return Ok(Bound::typed(Expr::Function(name.into(), args), DataType::Bool));
        }
        // `||` of two jsonb (or a jsonb and an untyped literal); a jsonb
        // and a text concatenate as text, as in PostgreSQL.
        let jsonb_or_untyped = |b: &Bound| b.ty.is_none_or(|t| t == DataType::Jsonb);
        let jsonb_concat = (l.ty == Some(DataType::Jsonb) || r.ty == Some(DataType::Jsonb))
            && jsonb_or_untyped(&l)
            && jsonb_or_untyped(&r);
        if jsonb_operator(op)
            || (jsonb_concat && matches!(op, B::StringConcat))
            || (l.ty == Some(DataType::Jsonb) && *op == B::Minus)
        {
            return self.bind_jsonb_operator(op, l, r);
        }
        if let Some(f) = regex_function(op) {
            let l = self.coerce(char_as_text(l), DataType::Text)?;
            let r = self.coerce(char_as_text(r), DataType::Text)?;
            return Ok(Bound::typed(Expr::Function(f.into(), vec![l, r]), DataType::Bool));
        }
        let bop = match op {
            B::Plus => BinaryOp::Add,
            B::Minus => BinaryOp::Sub,
            B::Multiply => BinaryOp::Mul,
            B::Divide => BinaryOp::Div,
            B::Modulo => BinaryOp::Mod,
            B::StringConcat => BinaryOp::Concat,
            B::Eq => BinaryOp::Eq,
            B::NotEq => BinaryOp::NotEq,
            B::Lt => BinaryOp::Lt,
            B::LtEq => BinaryOp::LtEq,
            B::Gt => BinaryOp::Gt,
            B::GtEq => BinaryOp::GtEq,
            other => return sql_err!(FeatureNotSupported, "operator {other} is not supported"),
        };
        if bop == BinaryOp::Concat {
            // text || anything: the other side as text.
            let l = char_as_text(self.default_type(l)?);
            let r = char_as_text(self.default_type(r)?);
            let (lt, rt) = (l.ty.unwrap_or(DataType::Text), r.ty.unwrap_or(DataType::Text));
            let ty = ops::binary_result_type(bop, lt, rt)?;
            return Ok(Bound::typed(Expr::Binary(bop, Box::new(l.expr), Box::new(r.expr)), ty));
        }
        // Two untyped literals under arithmetic: PostgreSQL cannot pick
        // an operator ('1' + '2').
        if !bop.is_comparison() && l.ty.is_none() && r.ty.is_none() && l.literal.is_some() && r.literal.is_some() {
            return sql_err!(AmbiguousFunction, "operator is not unique: unknown {op} unknown");
        }
        // CHAR(n) compares without its padding (PostgreSQL's bpchar): an
        // untyped literal takes the CHAR type first, then both sides
        // compare as text with trailing blanks removed.
        let (l, r) = match (bop.is_comparison(), l.ty, r.ty) {
            (true, Some(DataType::Char(n)), None) => {
                let r = self.coerce_literal(r, DataType::Char(n))?;
                (char_as_text(l), char_as_text(r))
            }
            (true, None, Some(DataType::Char(n))) => {
                let l = self.coerce_literal(l, DataType::Char(n))?;
                (char_as_text(l), char_as_text(r))
            }
            (true, _, _) => (char_as_text(l), char_as_text(r)),
            (false, _, _) => (l, r),
        };
        if let Some(bound) = self.bind_temporal_arithmetic(bop, &l, &r)? {
            return Ok(bound);
        }
        let (le, re, _) = self.unify(l.clone(), r.clone(), &op.to_string())?;
        // The operand types after unification.
        let lt = type_after(&l, &le, &r);
        let rt = type_after(&r, &re, &l);
        let ty = match (lt, rt) {
            (Some(a), Some(b)) => ops::binary_result_type(bop, a, b)?,
            _ if matches!(
                bop,
                BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
            ) =>
            {
                DataType::Bool
            }
            (Some(a), None) | (None, Some(a)) => ops::binary_result_type(bop, a, a)?,
            (None, None) => ops::binary_result_type(bop, DataType::Int4, DataType::Int4)?,
        };
        Ok(Bound::typed(Expr::Binary(bop, Box::new(le), Box::new(re)), ty))
    }

    /// jsonb's operators, as the functions PostgreSQL names for them
    /// (`functions::jsonb`): `->` and `->>` read a field by a text key or an
    /// element by an integer index, `#>`/`#>>` a path; `@>`, `<@`, `?`,
    /// `?|`, `?&` test; `||`, `-` and `#-` make a new document.
    fn bind_jsonb_operator(&mut self, op: &ast::BinaryOperator, l: Bound, r: Bound) -> Result<Bound> {
        use ast::BinaryOperator as B;
        let jsonb = DataType::Jsonb;
        let texts = DataType::array_of(DataType::Text).expect("text[] exists");
        let int_side = r.ty.is_some_and(DataType::is_integer);
        let (name, r_type, ty) = match op {
            B::Arrow if int_side => ("jsonb_array_element", DataType::Int4, jsonb),
            B::Arrow => ("jsonb_object_field", DataType::Text, jsonb),
            B::LongArrow if int_side => ("jsonb_array_element_text", DataType::Int4, DataType::Text),
            B::LongArrow => ("jsonb_object_field_text", DataType::Text, DataType::Text),
            B::HashArrow => ("jsonb_extract_path", texts, jsonb),
            B::HashLongArrow => ("jsonb_extract_path_text", texts, DataType::Text),
            B::AtArrow | B::ArrowAt => ("jsonb_contains", jsonb, DataType::Bool),
            B::Question => ("jsonb_exists", DataType::Text, DataType::Bool),
            B::QuestionPipe => ("jsonb_exists_any", texts, DataType::Bool),
            B::QuestionAnd => ("jsonb_exists_all", texts, DataType::Bool),
            B::StringConcat => ("jsonb_concat", jsonb, jsonb),
            B::Minus if int_side => ("jsonb_delete", DataType::Int4, jsonb),
            B::Minus if r.ty == Some(texts) => ("jsonb_delete", texts, jsonb),
            B::Minus => ("jsonb_delete", DataType::Text, jsonb),
            B::HashMinus => ("jsonb_delete_path", texts, jsonb),
            other => return sql_err!(FeatureNotSupported, "operator {other} is not supported"),
        };
        let (l, r) = (self.coerce(l, jsonb)?, self.coerce(r, r_type)?);
        let args = if *op == B::ArrowAt { vec![r, l] } else { vec![l, r] };
        Ok(Bound::typed(Expr::Function(name.into(), args), ty))
    }

    /// Date/time arithmetic (`ts + interval`, `interval * 2`, ...): the
    /// operands keep their own types. An untyped literal takes the type
    /// PostgreSQL resolves it to: an interval beside `+` and a timestamp or
    /// a time, or beside `±` and an interval; a number beside `×`/`÷` and
    /// an interval. (`ts - 'literal'` is `ts - ts`, as in PostgreSQL, and
    /// binds by unification.) `None`: not date/time arithmetic.
    fn bind_temporal_arithmetic(&mut self, op: BinaryOp, l: &Bound, r: &Bound) -> Result<Option<Bound>> {
        use DataType::Interval;
        if op.is_comparison() || op == BinaryOp::Concat {
            return Ok(None);
        }
        let literal_type = |this: &Bound, other: Option<DataType>| match (this.ty, this.literal.is_some(), other) {
            (None, true, Some(t)) if (t.is_timestamp() || t == DataType::Time) && op == BinaryOp::Add => Some(Interval),
            (None, true, Some(Interval)) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => Some(Interval),
            (None, true, Some(Interval)) if matches!(op, BinaryOp::Mul | BinaryOp::Div) => Some(DataType::Float8),
            _ => None,
        };
        let (lt, rt) = (literal_type(l, r.ty), literal_type(r, l.ty));
        let l = match lt {
            Some(t) => self.coerce_literal(l.clone(), t)?,
            None => l.clone(),
        };
        let r = match rt {
            Some(t) => self.coerce_literal(r.clone(), t)?,
            None => r.clone(),
        };
        let (Some(a), Some(b)) = (l.ty, r.ty) else { return Ok(None) };
        Ok(ops::temporal_result_type(op, a, b)
            .map(|ty| Bound::typed(Expr::Binary(op, Box::new(l.expr), Box::new(r.expr)), ty)))
    }

    fn bind_value(&mut self, v: &ast::Value) -> Result<Bound> {
        Ok(match v {
            ast::Value::Number(n, _) => {
                if let Ok(i) = n.parse::<i32>() {
                    Bound::typed(Expr::Constant(Value::Int4(i)), DataType::Int4)
                } else if let Ok(i) = n.parse::<i64>() {
                    Bound::typed(Expr::Constant(Value::Int8(i)), DataType::Int8)
                } else if let Ok(d) = crate::ops::numeric::parse(n) {
                    Bound::typed(Expr::Constant(Value::Numeric(d)), DataType::Numeric(None))
                } else {
                    // Beyond what a numeric holds (28 digits), where
                    // PostgreSQL's numeric would take it: a float8.
                    match n.parse::<f64>() {
                        Ok(f) if f.is_finite() => Bound::typed(Expr::Constant(Value::Float8(f)), DataType::Float8),
                        _ => return sql_err!(NumericValueOutOfRange, "number out of range: {n}"),
                    }
                }
            }
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                Bound { expr: Expr::Constant(Value::Text(s.clone())), ty: None, literal: Some(s.clone()) }
            }
            ast::Value::Boolean(b) => Bound::typed(Expr::Constant(Value::Bool(*b)), DataType::Bool),
            ast::Value::Null => Bound { expr: Expr::Constant(Value::Null), ty: None, literal: None },
            ast::Value::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1 && *n <= limits::PARAMETERS_MAX)
                    .ok_or_else(|| Error::new(SqlState::SyntaxError, format!("bad parameter {p}")))?;
                let i = n - 1;
                if self.param_types.len() <= i {
                    self.param_types.resize(i + 1, None);
                }
                let ty = self.param_types[i];
                Bound { expr: Expr::Param(i), ty, literal: None }
            }
            ast::Value::HexStringLiteral(h) => {
                let v = ops::parse_text(&format!("\\x{h}"), DataType::Bytea)?;
                Bound::typed(Expr::Constant(v), DataType::Bytea)
            }
            other => return sql_err!(FeatureNotSupported, "literal not supported: {other}"),
        })
    }

    fn bind_column(&mut self, table: Option<&str>, name: &str, scope: &Scope) -> Result<Bound> {
        if let Some(i) = scope.find(table, name)? {
            if self.agg.is_some() {
                return sql_err!(
                    GroupingError,
                    "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                    match table {
                        Some(t) => format!("{t}.{name}"),
                        None => name.to_string(),
                    }
                );
            }
            let ty = scope.columns[i].data_type;
            return Ok(Bound { expr: Expr::Column(i), ty, literal: None });
        }
        for (d, outer) in self.outer.iter().rev().enumerate() {
            if let Some(i) = outer.find(table, name)? {
                let ty = outer.columns[i].data_type;
                return Ok(Bound { expr: Expr::Outer { depth: d + 1, index: i }, ty, literal: None });
            }
        }
        if table.is_none() {
            match name {
                "current_timestamp" => return Ok(now_bound(false)),
                "localtimestamp" => return Ok(now_bound(true)),
                "localtime" => return Ok(localtime_bound()),
                _ => {}
            }
        }
        match table {
            Some(t) if !scope.has_table(t) && !self.outer.iter().any(|s| s.has_table(t)) => {
                sql_err!(UndefinedTable, "missing FROM-clause entry for table \"{t}\"")
            }
            Some(t) => sql_err!(UndefinedColumn, "column {t}.{name} does not exist"),
            None => sql_err!(UndefinedColumn, "column \"{name}\" does not exist"),
        }
    }

    fn plan_subquery(&mut self, q: &ast::Query, scope: &Scope) -> Result<QueryPlan> {
        // The subquery sees this level's row as its outer scope. Under
        // aggregation that row is the Aggregate's: the grouped columns.
        let saved_agg = self.agg.take();
        self.outer.push(match &saved_agg {
            Some(agg) => agg.outer_scope.clone(),
            None => scope.clone(),
        });
        let plan = self.plan_query(q);
        self.outer.pop();
        self.agg = saved_agg;
        plan
    }

    /// `GROUPING(a, ...)`: per row, a bit per argument, 1 where the row's
    /// grouping set lacks it ([`grouping_sets`]); 0 under a plain GROUP BY.
    fn bind_grouping(&mut self, f: &ast::Function) -> Result<Bound> {
        let not_grouped = || {
            sql_err!(GroupingError, "arguments to GROUPING must be grouping expressions of the associated query level")
        };
        let ast::FunctionArguments::List(list) = &f.args else { return not_grouped() };
        let Some(agg) = &self.agg else { return not_grouped() };
        if list.args.is_empty() || list.duplicate_treatment.is_some() {
            return sql_err!(SyntaxError, "GROUPING takes GROUP BY expressions");
        }
        if list.args.len() > limits::GROUPING_EXPRESSIONS_MAX {
            return sql_err!(
                TooManyArguments,
                "GROUPING must have fewer than {} arguments",
                limits::GROUPING_EXPRESSIONS_MAX + 1
            );
        }
        let mut indexes = Vec::new();
        for arg in &list.args {
            let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg else { return not_grouped() };
            let text = e.to_string();
            let grouped = agg.grouping.as_ref().map_or(agg.group_texts.len(), |(column, _)| *column);
            match agg.group_texts[..grouped].iter().position(|t| *t == text) {
                Some(i) => indexes.push(i),
                None => return not_grouped(),
            }
        }
        let Some((column, ids)) = &agg.grouping else {
            return Ok(Bound::typed(Expr::Constant(Value::Int4(0)), DataType::Int4));
        };
        let whens = ids
            .iter()
            .map(|&id| {
                (
                    Expr::Constant(Value::Int4(id)),
                    Expr::Constant(Value::Int4(grouping_sets::grouping_value(id, &indexes))),
                )
            })
            .collect();
        let case = Expr::Case {
            operand: Some(Box::new(Expr::Column(*column))),
            whens,
            otherwise: Box::new(Expr::Constant(Value::Int4(0))),
        };
        Ok(Bound::typed(case, DataType::Int4))
    }

    fn bind_function(&mut self, f: &ast::Function, scope: &Scope, depth: usize) -> Result<Bound> {
        if let Some(call) = whole_row_call(f, scope) {
            return self.bind_function(&call, scope, depth);
        }
        let name = builtin_name(&f.name)?;
        if name == "grouping" && f.over.is_none() {
            return self.bind_grouping(f);
        }
        if f.over.is_some() {
            // Reached only outside a select list or ORDER BY, or before
            // the level's Window node is built (in an aggregate's
            // argument, or in another window call).
            return sql_err!(WindowingError, "window functions are not allowed here");
        }
        if is_aggregate(&name) {
            // Reached only outside an aggregating level's select list.
            return sql_err!(GroupingError, "aggregate functions are not allowed here");
        }
        if f.filter.is_some() || !f.within_group.is_empty() {
            return sql_err!(FeatureNotSupported, "FILTER and WITHIN GROUP are only for aggregates");
        }
        if set_returning::is_set_returning(&name) || is_jsonb_rows_function(&name) {
            // Reached only where a select list's call is not lifted
            // into FROM (`set_returning`): in WHERE, CASE, a second call.
            return sql_err!(
                FeatureNotSupported,
                "set-returning function {name} is supported only in FROM and in a select list (outside CASE and COALESCE)"
            );
        }
        let args: &[ast::FunctionArg] = match &f.args {
            ast::FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return sql_err!(FeatureNotSupported, "{name}(DISTINCT ...) is not supported");
                }
                &list.args
            }
            ast::FunctionArguments::None => &[],
            ast::FunctionArguments::Subquery(q) if name == "array" => {
                let plan = self.plan_subquery(q, scope)?;
                let [column] = plan.columns.as_slice() else {
                    return sql_err!(SyntaxError, "subquery must return only one column");
                };
                let Some(array) = DataType::array_of(column.data_type) else {
                    return sql_err!(FeatureNotSupported, "arrays of {} are not supported", column.data_type);
                };
                let built = Expr::ArraySubquery(Arc::new(plan.root));
                return Ok(Bound::typed(Expr::Cast(Box::new(built), array), array));
            }
            ast::FunctionArguments::Subquery(_) => return sql_err!(FeatureNotSupported, "{name}(subquery)"),
        };
        let mut bound = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a else {
                return sql_err!(FeatureNotSupported, "named or wildcard arguments to {name} are not supported");
            };
            // `nextval('s'::regclass)` (a pg_dump or Rails DEFAULT) names
            // the sequence, which the call finds: binding the oid would
            // read the whole catalog at every INSERT's plan.
            if i == 0 && crate::sequence::is_function(&name) {
                if let Some(literal) = regclass_literal(e) {
                    bound.push(Bound::typed(Expr::Constant(Value::Text(literal)), DataType::Text));
                    continue;
                }
            }
            bound.push(self.bind_expr_checked(e, scope, depth + 1)?);
        }
        match name.as_str() {
            "current_date" if bound.is_empty() => {
                Ok(Bound::typed(Expr::Cast(Box::new(Expr::Now), DataType::Date), DataType::Date))
            }
            // age(t): from the midnight of the current date, as the
            // argument's type (a string, as PostgreSQL's preferred
            // timestamptz).
            "age" if bound.len() == 1 => {
                let ty = match bound[0].ty {
                    Some(t @ (DataType::Timestamp | DataType::Date)) => t,
                    _ => DataType::TimestampTz,
                };
                let today = Expr::Cast(Box::new(Expr::Cast(Box::new(Expr::Now), DataType::Date)), ty);
                bound.insert(0, Bound::typed(today, ty));
                self.bind_call(&name, bound)
            }
            "now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp" | "localtimestamp" => {
                if !bound.is_empty() {
                    return sql_err!(UndefinedFunction, "function {name} takes no arguments");
                }
                Ok(now_bound(name == "localtimestamp"))
            }
            "localtime" if bound.is_empty() => Ok(localtime_bound()),
            "coalesce" => {
                let ty = self.common_of(&bound, "COALESCE")?;
                let args = bound.into_iter().map(|b| self.coerce_loose(b, ty)).collect::<Result<Vec<_>>>()?;
                if args.is_empty() {
                    return sql_err!(SyntaxError, "COALESCE needs at least one argument");
                }
                Ok(Bound::typed(Expr::Coalesce(args), ty))
            }
            "nullif" => {
                let [a, b] = <[Bound; 2]>::try_from(bound)
                    .map_err(|_| Error::new(SqlState::UndefinedFunction, "NULLIF takes two arguments"))?;
                let ty = a.ty.or(b.ty).unwrap_or(DataType::Text);
                let (l, r, _) = self.unify(a, b, "=")?;
                Ok(Bound::typed(Expr::NullIf(Box::new(l), Box::new(r)), ty))
            }
            // The argument's type, by name (PostgreSQL's is a regtype,
            // which prints as this name).
            "pg_typeof" => {
                let [arg] = <[Bound; 1]>::try_from(bound)
                    .map_err(|_| Error::new(SqlState::UndefinedFunction, "pg_typeof takes one argument"))?;
                let name = match arg.ty {
                    None => "unknown".to_string(),
                    Some(t) => system::format_type(i64::from(t.oid()), None).unwrap_or_else(|| t.sql_name()),
                };
                Ok(Bound::typed(Expr::Constant(Value::Text(name)), DataType::Text))
            }
            "greatest" | "least" => {
                let ty = self.common_of(&bound, &name.to_uppercase())?;
                let args = bound.into_iter().map(|b| self.coerce_loose(b, ty)).collect::<Result<Vec<_>>>()?;
                Ok(Bound::typed(Expr::Function(name, args), ty))
            }
            n if CATALOG_FUNCTIONS.contains(&n) => self.bind_catalog_function(n, bound),
            _ => self.bind_call(&name, bound),
        }
    }

    /// PostgreSQL's catalog and session functions ([`CATALOG_FUNCTIONS`]):
    /// those that need the catalog become lookups over the statement's
    /// snapshot of it (`system`), so the executor needs no catalog.
    fn bind_catalog_function(&mut self, name: &str, args: Vec<Bound>) -> Result<Bound> {
        let (min, max) = match name {
            "version" | "current_schema" | "current_database" | "current_user" | "session_user" | "user"
            | "current_role" => (0, 0),
            "pg_get_expr" => (2, 3),
            "pg_get_indexdef" => (1, 3),
            "pg_get_constraintdef"
            | "pg_get_viewdef"
            | "pg_get_triggerdef"
            | "obj_description"
            | "shobj_description" => (1, 2),
            "format_type" | "col_description" | "pg_get_serial_sequence" => (2, 2),
            n if n.starts_with("has_") => (2, 3),
            _ => (1, 1),
        };
        if args.len() < min || args.len() > max {
            let types: Vec<String> = args.iter().map(|a| a.ty.map_or("unknown".into(), ops::type_name)).collect();
            return sql_err!(UndefinedFunction, "function {name}({}) does not exist", types.join(", "));
        }
        let text = |s: &str| Bound::typed(Expr::Constant(Value::Text(s.into())), DataType::Text);
        // The first argument is an oid (bigint here), but pg_get_expr's
        // is the expression's text (its second the oid) and the privilege
        // checks' are names; format_type's second is a typmod.
        let oid_positions: &[usize] = match name {
            "pg_get_expr" => &[1],
            "format_type" => &[0, 1],
            // Names or oids; current_schemas' is a bool.
            n if n.starts_with("has_")
                || n == "pg_database_size"
                || n == "current_schemas"
                || n == "pg_get_serial_sequence" =>
            {
                &[]
            }
            _ => &[0],
        };
        let mut oids = Vec::new();
        for (n, a) in args.into_iter().enumerate() {
            oids.push(if name == "current_schemas" {
                self.coerce(a, DataType::Bool)?
            } else if oid_positions.contains(&n) {
                self.coerce(a, DataType::Int8)?
            } else {
                self.default_type(a)?.expr
            });
        }
        let first = oids.first().cloned().unwrap_or(Expr::Constant(Value::Null));
        // Strict, as PostgreSQL's: NULL in, NULL out.
        let unless_null = |then: Expr, ty: DataType| {
            let when = (Expr::IsNull(Box::new(first.clone())), Expr::Constant(Value::Null));
            Bound::typed(Expr::Case { operand: None, whens: vec![when], otherwise: Box::new(then) }, ty)
        };
        Ok(match name {
            "version" => text(&system::version()),
            "current_schema" => text("public"),
            "current_database" => text(system::DATABASE_NAME),
            "current_user" | "session_user" | "user" | "current_role" => text(self.user.unwrap_or(system::ROLE_NAME)),
            // The search path: `public`, after the implicit `pg_catalog`
            // when asked for (PostgreSQL's type is name[]; text[] here).
            "current_schemas" => {
                let schemas = |names: &[&str]| {
                    let items = names.iter().map(|n| Value::Text(n.to_string())).collect();
                    Expr::Constant(Value::Array(&DataType::Text, items))
                };
                let whens = vec![(first.clone(), schemas(&["pg_catalog", "public"]))];
                let otherwise = Box::new(schemas(&["public"]));
                let ty = DataType::Array(&DataType::Text);
                unless_null(Expr::Case { operand: None, whens, otherwise }, ty)
            }
            "pg_get_userbyid" => unless_null(Expr::Constant(Value::Text(system::ROLE_NAME.into())), DataType::Text),
            // One schema on the search path holds every user object; every
            // role may do everything (no users yet).
            "pg_table_is_visible"
            | "pg_type_is_visible"
            | "pg_function_is_visible"
            | "pg_opclass_is_visible"
            | "pg_opfamily_is_visible"
            | "pg_operator_is_visible"
            | "pg_ts_config_is_visible" => unless_null(Expr::Constant(Value::Bool(true)), DataType::Bool),
            // Tablespaces are PostgreSQL's defaults, in its data directory:
            // no location of their own (as PostgreSQL answers for them).
            "pg_tablespace_location" => unless_null(Expr::Constant(Value::Text(String::new())), DataType::Text),
            n if n.starts_with("has_") => unless_null(Expr::Constant(Value::Bool(true)), DataType::Bool),
            // Sizes are not tracked per relation (RocksDB holds every
            // shard's data together): unknown.
            "pg_table_size"
            | "pg_relation_size"
            | "pg_total_relation_size"
            | "pg_indexes_size"
            | "pg_database_size" => Bound::typed(Expr::Constant(Value::Null), DataType::Int8),
            "pg_get_viewdef" => {
                let snapshot = self.system_snapshot()?;
                let whens = snapshot
                    .tables
                    .iter()
                    .filter_map(|t| {
                        let sql = t.view.as_ref()?;
                        Some((
                            Expr::Constant(Value::Int8(system::table_oid(t))),
                            Expr::Constant(Value::Text(format!(" {sql};"))),
                        ))
                    })
                    .collect();
                lookup(first, whens, Expr::Constant(Value::Null))
            }
            "pg_relation_is_publishable" => unless_null(Expr::Constant(Value::Bool(false)), DataType::Bool),
            // A set of the partition's ancestors; SpanDB has no
            // partitions, so none (psql asks in a select list: NULL).
            "pg_partition_ancestors" => Bound::typed(Expr::Constant(Value::Null), DataType::Int8),
            // SpanDB has no stored functions (pg_proc is empty): no oid
            // names one.
            // Nor triggers (pg_trigger is empty).
            "pg_get_function_result" | "pg_get_function_arguments" | "pg_get_triggerdef" => {
                Bound::typed(Expr::Constant(Value::Null), DataType::Text)
            }
            "pg_encoding_to_char" => {
                let utf8 = vec![(Expr::Constant(Value::Int8(6)), Expr::Constant(Value::Text("UTF8".into())))];
                let lookup = Expr::Case {
                    operand: Some(Box::new(first.clone())),
                    whens: utf8,
                    otherwise: Box::new(Expr::Constant(Value::Text(String::new()))),
                };
                unless_null(lookup, DataType::Text)
            }
            // COMMENT ON's comments (`system::comments`), by the table's
            // oid, and for a column its attnum too (keyed `oid.attnum`).
            "obj_description" => {
                let snapshot = self.system_snapshot()?;
                let whens = system::comments(&snapshot)
                    .filter(|(_, subid, _)| *subid == 0)
                    .map(|(t, _, c)| {
                        (Expr::Constant(Value::Int8(system::table_oid(t))), Expr::Constant(Value::Text(c.into())))
                    })
                    .collect();
                lookup(first, whens, Expr::Constant(Value::Null))
            }
            "col_description" => {
                let snapshot = self.system_snapshot()?;
                let whens = system::comments(&snapshot)
                    .filter(|(_, subid, _)| *subid != 0)
                    .map(|(t, subid, c)| {
                        let key = format!("{}.{subid}", system::table_oid(t));
                        (Expr::Constant(Value::Text(key)), Expr::Constant(Value::Text(c.into())))
                    })
                    .collect();
                let attnum = oids.get(1).cloned().unwrap_or(Expr::Constant(Value::Null));
                let key = Expr::Function(
                    "concat_ws".into(),
                    vec![
                        Expr::Constant(Value::Text(".".into())),
                        Expr::Cast(Box::new(first), DataType::Text),
                        Expr::Cast(Box::new(attnum), DataType::Text),
                    ],
                );
                lookup(key, whens, Expr::Constant(Value::Null))
            }
            // The sequence a column owns (`SequenceDesc::owned_by`: ALTER
            // SEQUENCE ... OWNED BY, an identity added by ALTER TABLE);
            // NULL for one that owns none, as SpanDB's SERIAL and CREATE
            // TABLE's identities (random keys), so Django's and Rails'
            // sequence resets do nothing there. The names are read when
            // planned: arguments that are not constants give NULL.
            "pg_get_serial_sequence" => {
                let (Some(Expr::Constant(Value::Text(table))), Some(Expr::Constant(Value::Text(column)))) =
                    (oids.first(), oids.get(1))
                else {
                    return Ok(Bound::typed(Expr::Constant(Value::Null), DataType::Text));
                };
                let Some(table) = crate::parser::relation_name(table) else {
                    return sql_err!(UndefinedTable, "relation \"{table}\" does not exist");
                };
                let snapshot = self.system_snapshot()?;
                let Some(t) = snapshot.tables.iter().find(|t| t.name == table) else {
                    return sql_err!(UndefinedTable, "relation \"{table}\" does not exist");
                };
                let Some(c) = t.columns.iter().find(|c| c.name == *column && !c.hidden) else {
                    return sql_err!(UndefinedColumn, "column \"{column}\" of relation \"{table}\" does not exist");
                };
                let owner = Some((t.name.clone(), c.id));
                let owned = snapshot.sequences.iter().find(|s| s.owned_by == owner);
                let name =
                    owned.map_or(Value::Null, |s| Value::Text(format!("public.{}", system::quote_ident(&s.name))));
                Bound::typed(Expr::Constant(name), DataType::Text)
            }
            // No shared objects' comments, and no statistics objects.
            "shobj_description" | "pg_get_statisticsobjdef_columns" => {
                Bound::typed(Expr::Constant(Value::Null), DataType::Text)
            }
            // adbin holds the expression's SQL text (`system`).
            "pg_get_expr" => Bound::typed(Expr::Cast(Box::new(first), DataType::Text), DataType::Text),
            "format_type" => Bound::typed(Expr::Function("format_type".into(), oids), DataType::Text),
            "pg_get_indexdef" | "pg_get_constraintdef" => {
                let snapshot = self.system_snapshot()?;
                let mut whens = Vec::new();
                for t in &snapshot.tables {
                    for i in std::iter::once(&t.primary).chain(&t.indexes) {
                        let def = if name == "pg_get_indexdef" {
                            system::index_definition(t, i.id)
                        } else {
                            system::constraint_definition(t, i.id)
                        };
                        if let Some(def) = def {
                            let oid = Expr::Constant(Value::Int8(system::index_oid(t, i.id)));
                            whens.push((oid, Expr::Constant(Value::Text(def))));
                        }
                    }
                    if name == "pg_get_constraintdef" {
                        for (k, check) in t.checks.iter().enumerate() {
                            let oid = Expr::Constant(Value::Int8(system::check_oid(t, k)));
                            whens.push((oid, Expr::Constant(Value::Text(format!("CHECK ({})", check.expr)))));
                        }
                        for (k, fk) in t.foreign_keys.iter().enumerate() {
                            let Some(referenced) = snapshot.tables.iter().find(|r| r.name == fk.table) else {
                                continue;
                            };
                            let oid = Expr::Constant(Value::Int8(system::foreign_key_oid(t, k)));
                            let def = system::foreign_key_definition(t, fk, referenced);
                            whens.push((oid, Expr::Constant(Value::Text(def))));
                        }
                    }
                }
                lookup(first, whens, Expr::Constant(Value::Null))
            }
            other => return sql_err!(UndefinedFunction, "function {other} does not exist"),
        })
    }

    /// `x op ANY (array)` / `x op ALL (array)`; with a subquery instead of
    /// an array, `= ANY` is IN and `<> ALL` is NOT IN (a sorted set of the
    /// values, and key spans), and any other operator compares with the
    /// subquery's rows as an array, whose three-valued logic is the same
    /// (no rows: ANY is false, ALL true; no match but a NULL: NULL).
    fn bind_quantified(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        all: bool,
        scope: &Scope,
        depth: usize,
    ) -> Result<Bound> {
        use ast::BinaryOperator as B;
        let bop = match op {
            B::Eq => BinaryOp::Eq,
            B::NotEq => BinaryOp::NotEq,
            B::Lt => BinaryOp::Lt,
            B::LtEq => BinaryOp::LtEq,
            B::Gt => BinaryOp::Gt,
            B::GtEq => BinaryOp::GtEq,
            other => return sql_err!(FeatureNotSupported, "operator {other} with ANY/ALL is not supported"),
        };
        if let ast::Expr::Subquery(q) = right {
            let x = self.bind_expr_checked(left, scope, depth + 1)?;
            let plan = self.plan_subquery(q, scope)?;
            let [column] = plan.columns.as_slice() else {
                return sql_err!(SyntaxError, "subquery has too many columns");
            };
            let element = column.data_type;
            let x = Box::new(self.coerce_loose(x, element)?);
            let test = match (bop, all) {
                (BinaryOp::Eq, false) => Expr::InSubquery(x, Arc::new(plan.root)),
                (BinaryOp::NotEq, true) => Expr::Not(Box::new(Expr::InSubquery(x, Arc::new(plan.root)))),
                _ => {
                    let Some(array_ty) = DataType::array_of(element) else {
                        return sql_err!(
                            FeatureNotSupported,
                            "ANY and ALL over a subquery of {element} are not supported"
                        );
                    };
                    let array = Expr::Cast(Box::new(Expr::ArraySubquery(Arc::new(plan.root))), array_ty);
                    Expr::Quantified { op: bop, all, left: x, array: Box::new(array) }
                }
            };
            return Ok(Bound::typed(test, DataType::Bool));
        }
        let x = self.bind_expr_checked(left, scope, depth + 1)?;
        let array = self.bind_expr_checked(right, scope, depth + 1)?;
        // An untyped array literal takes the left side's type, as in
        // PostgreSQL ('d' = ANY('{d,f}') compares text).
        let array_ty = match (x.ty, array.ty) {
            (_, Some(t)) => t,
            (Some(t), None) => DataType::array_of(t)
                .ok_or_else(|| Error::new(SqlState::FeatureNotSupported, "arrays of arrays are not supported"))?,
            (None, None) => DataType::array_of(DataType::Text).expect("text[] exists"),
        };
        let Some(element) = array_ty.element() else {
            return sql_err!(DatatypeMismatch, "op ANY/ALL (array) requires array on right side, not {array_ty}");
        };
        let array = self.coerce_loose(array, array_ty)?;
        let x = self.coerce_loose(x, element)?;
        let test = Expr::Quantified { op: bop, all, left: Box::new(x), array: Box::new(array) };
        Ok(Bound::typed(test, DataType::Bool))
    }

    /// `x::regclass`, `::regtype`, `::regnamespace`: a quoted name
    /// becomes its oid, an oid its name (unknown oids print as numbers,
    /// as in PostgreSQL).
    fn bind_reg_cast(&mut self, kind: &str, b: Bound) -> Result<Bound> {
        let snapshot = self.system_snapshot()?;
        if let Some(name) = &b.literal {
            // A number is an oid already (PostgreSQL's regclassin too).
            if let Ok(oid) = name.parse::<i64>() {
                return Ok(Bound::typed(Expr::Constant(Value::Int8(oid)), DataType::Int8));
            }
            let parsed = crate::parser::relation_name(name);
            let bare = parsed.as_deref().unwrap_or(name);
            let oid = match kind {
                "regclass" => snapshot
                    .tables
                    .iter()
                    .find_map(|t| {
                        if t.name == bare {
                            return Some(system::table_oid(t));
                        }
                        std::iter::once(&t.primary)
                            .chain(&t.indexes)
                            .find(|i| i.name == bare)
                            .map(|i| system::index_oid(t, i.id))
                    })
                    .or_else(|| snapshot.sequences.iter().find(|q| q.name == bare).map(system::sequence_oid))
                    .or_else(|| system::relation_oid(name)),
                "regnamespace" => match bare {
                    "pg_catalog" => Some(system::PG_CATALOG_OID),
                    "public" => Some(system::PUBLIC_OID),
                    "information_schema" => Some(system::INFORMATION_SCHEMA_OID),
                    _ => None,
                },
                _ => return sql_err!(FeatureNotSupported, "'{name}'::{kind} is not supported"),
            };
            return match oid {
                Some(oid) => Ok(Bound::typed(Expr::Constant(Value::Int8(oid)), DataType::Int8)),
                None if kind == "regclass" => sql_err!(UndefinedTable, "relation \"{name}\" does not exist"),
                None => sql_err!(UndefinedObject, "schema \"{name}\" does not exist"),
            };
        }
        let oid = self.coerce(b, DataType::Int8)?;
        let number = Expr::Cast(Box::new(oid.clone()), DataType::Text);
        let mut whens = Vec::new();
        match kind {
            "regclass" => {
                for row in system::find(None, "pg_class").expect("pg_class").rows(&snapshot) {
                    whens.push((Expr::Constant(row[0].clone()), Expr::Constant(row[1].clone())));
                }
            }
            "regnamespace" => {
                for row in system::find(None, "pg_namespace").expect("pg_namespace").rows(&snapshot) {
                    whens.push((Expr::Constant(row[0].clone()), Expr::Constant(row[1].clone())));
                }
            }
            "regtype" => {
                let name = Expr::Function("format_type".into(), vec![oid, Expr::Constant(Value::Null)]);
                return Ok(Bound::typed(name, DataType::Text));
            }
            // SpanDB has no stored functions (pg_proc is empty): an oid
            // names none, and shows as its number.
            "regproc" => {}
            other => return sql_err!(FeatureNotSupported, "casts to {other} are not supported"),
        }
        Ok(lookup(oid, whens, number))
    }

    fn common_of(&mut self, bound: &[Bound], what: &str) -> Result<DataType> {
        let ty = bound.iter().try_fold(None, |acc, b| merge_type(acc, b.ty, Some(what)))?;
        Ok(ty.unwrap_or(DataType::Text))
    }

    /// A scalar function from [`functions`]; untyped literals become text
    /// (the function converts what it is given), except for functions
    /// whose arguments are coerced to their parameters' types (jsonb's:
    /// `jsonb_typeof('{}')` reads a jsonb).
    fn bind_call(&mut self, name: &str, args: Vec<Bound>) -> Result<Bound> {
        if functions::coerces_arguments(name) {
            let types: Vec<Option<DataType>> = args.iter().map(|b| b.ty).collect();
            let signature = functions::resolve(name, &types)?;
            let exprs =
                args.into_iter().zip(&signature.params).map(|(b, t)| self.coerce(b, *t)).collect::<Result<Vec<_>>>()?;
            return Ok(Bound::typed(Expr::Function(name.to_string(), exprs), signature.ret));
        }
        let mut exprs = Vec::new();
        let mut types = Vec::new();
        for b in args {
            let b = match (&b.literal, b.ty) {
                (Some(_), _) => self.coerce_literal(b, DataType::Text)?,
                // octet_length counts a CHAR(n) value's padding too.
                _ if name == "octet_length" => b,
                _ => char_as_text(b),
            };
            types.push(b.ty);
            exprs.push(b.expr);
        }
        let ty = functions::return_type(name, &types)?;
        let call = Expr::Function(name.to_string(), exprs);
        // An array built of NULLs alone has no element type of its own:
        // the call's type gives it one.
        let call = match name {
            "array_append" | "array_prepend" | "array_cat" => Expr::Cast(Box::new(call), ty),
            _ => call,
        };
        Ok(Bound::typed(call, ty))
    }

    // ---- DML ---------------------------------------------------------------

    fn plan_insert(&mut self, insert: &ast::Insert) -> Result<Plan> {
        let ast::TableObject::TableName(name) = &insert.table else {
            return sql_err!(FeatureNotSupported, "INSERT INTO a table function is not supported");
        };
        let table = self.table_to_write(&object_name(name)?, "insert into")?;
        // Target columns, in the order the source supplies them.
        let targets: Vec<usize> = if insert.columns.is_empty() {
            table.columns.iter().enumerate().filter(|(_, c)| !c.hidden).map(|(i, _)| i).collect()
        } else {
            let mut out = Vec::new();
            for c in &insert.columns {
                let name = object_name(c)?;
                let (i, col) = table.column(&name).ok_or_else(|| {
                    Error::new(
                        SqlState::UndefinedColumn,
                        format!("column \"{name}\" of relation \"{}\" does not exist", table.name),
                    )
                })?;
                if col.hidden {
                    return sql_err!(
                        UndefinedColumn,
                        "column \"{name}\" of relation \"{}\" does not exist",
                        table.name
                    );
                }
                if out.contains(&i) {
                    return sql_err!(DuplicateColumn, "column \"{name}\" specified more than once");
                }
                out.push(i);
            }
            out
        };
        let target_types: Vec<DataType> = targets.iter().map(|&i| table.columns[i].data_type).collect();
        let source_plan = match &insert.source {
            // `DEFAULT VALUES`: one row, every column its default.
            None if insert.columns.is_empty() => {
                QueryPlan { root: Node::Values { rows: vec![vec![]], width: 0 }, columns: Vec::new() }
            }
            None => return sql_err!(SyntaxError, "INSERT with target columns needs values"),
            Some(source) => match source.body.as_ref() {
                ast::SetExpr::Values(values) if source.order_by.is_none() && source.limit_clause.is_none() => {
                    let defaults =
                        targets.iter().map(|&i| self.default_expr(&table.columns[i])).collect::<Result<Vec<_>>>()?;
                    self.plan_values(values, Some((&target_types, &defaults)))?
                }
                body => {
                    if let ast::SetExpr::Select(select) = body {
                        let at = std::ptr::from_ref::<ast::Select>(select) as usize;
                        self.insert_select = Some((at, target_types.clone()));
                    }
                    let planned = self.plan_query(source);
                    self.insert_select = None;
                    planned?
                }
            },
        };
        if source_plan.columns.len() > targets.len() {
            return sql_err!(SyntaxError, "INSERT has more expressions than target columns");
        }
        if insert.overriding != Some(ast::InsertOverriding::System) {
            for (p, &t) in targets.iter().enumerate().take(source_plan.columns.len()) {
                let col = &table.columns[t];
                if col.identity_always && !values_all_default(insert.source.as_deref(), p) {
                    let message = format!("cannot insert a non-DEFAULT value into column \"{}\"", col.name);
                    return Err(generated_always(col, message).with_hint("Use OVERRIDING SYSTEM VALUE to override."));
                }
            }
        }
        if source_plan.columns.len() < targets.len() && !insert.columns.is_empty() {
            return sql_err!(SyntaxError, "INSERT has more target columns than expressions");
        }
        for (i, c) in source_plan.columns.iter().enumerate() {
            let col = &table.columns[targets[i]];
            if !ops::can_assign(c.data_type, col.data_type) {
                return sql_err!(
                    DatatypeMismatch,
                    "column \"{}\" is of type {} but expression is of type {}",
                    col.name,
                    col.data_type,
                    c.data_type
                );
            }
        }
        // Full-width rows: supplied columns, defaults, NULL (a hidden row
        // id is filled in by the executor).
        let mut exprs = Vec::new();
        for (ci, col) in table.columns.iter().enumerate() {
            match targets.iter().position(|&t| t == ci).filter(|&p| p < source_plan.columns.len()) {
                Some(p) => exprs.push(Expr::Column(p)),
                None => exprs.push(self.default_expr(col)?),
            }
        }
        let source = Node::Project { input: Box::new(source_plan.root), exprs };
        let on_conflict = match &insert.on {
            None => OnConflict::Error,
            Some(ast::OnInsert::OnConflict(c)) => match &c.action {
                ast::OnConflictAction::DoNothing => OnConflict::DoNothing,
                ast::OnConflictAction::DoUpdate(update) => {
                    // The existing row, then `excluded` (the proposed one).
                    let scope = Scope::from_table(&table, &table.name).join(Scope::from_table(&table, "excluded"));
                    let assignments = self.bind_assignments(&table, &update.assignments, &scope)?;
                    let predicate = match &update.selection {
                        Some(s) => {
                            let b = self.bind_expr(s, &scope)?;
                            Some(self.coerce(b, DataType::Bool)?)
                        }
                        None => None,
                    };
                    OnConflict::DoUpdate { assignments, predicate }
                }
            },
            Some(_) => return sql_err!(FeatureNotSupported, "ON DUPLICATE KEY is not supported"),
        };
        let returning = self.bind_returning(&table, insert.returning.as_deref())?;
        let set: Vec<usize> = match &on_conflict {
            OnConflict::DoUpdate { assignments, .. } => assignments.iter().map(|(i, _)| *i).collect(),
            _ => Vec::new(),
        };
        let kind = match &on_conflict {
            OnConflict::DoUpdate { .. } => foreign_keys::WriteKind::Upsert(&set),
            _ => foreign_keys::WriteKind::Insert,
        };
        let constraints = self.bind_constraints(&table, kind)?;
        Ok(Plan::Insert { table, source, on_conflict, returning, constraints })
    }

    /// Binds `checks` (a name if given, an expression) over `table`'s
    /// columns and adds them, named as PostgreSQL names them:
    /// `<table>_<column>_check` for one reading one column, else
    /// `<table>_check`, numbered from 1 when taken.
    fn add_checks(&mut self, table: &mut TableDesc, checks: Vec<(Option<String>, ast::Expr)>) -> Result<()> {
        let scope = Scope::from_table(table, &table.name);
        for (name, e) in checks {
            let (_, positions) = self.bind_check(&e, &scope)?;
            let columns: Vec<u32> = positions.iter().map(|&i| table.columns[i].id).collect();
            let name = match name {
                Some(name) if foreign_keys::constraint_taken(table, &name) => {
                    return sql_err!(
                        DuplicateObject,
                        "constraint \"{name}\" for relation \"{}\" already exists",
                        table.name
                    )
                }
                Some(name) => name,
                None => match positions.as_slice() {
                    [i] => foreign_keys::free_constraint_name(
                        table,
                        &format!("{}_{}_check", table.name, table.columns[*i].name),
                    ),
                    _ => foreign_keys::free_constraint_name(table, &format!("{}_check", table.name)),
                },
            };
            table.checks.push(crate::catalog::CheckDesc { name, expr: e.to_string(), columns });
        }
        Ok(())
    }

    /// A DEFAULT for `col`: it must bind (with no columns) and assign to
    /// the column's type; it is stored as text.
    fn check_default(&mut self, e: &ast::Expr, col: &ColumnDesc) -> Result<()> {
        let ty = col.data_type;
        let b = self.bind_expr(e, &Scope::default())?;
        let b = self.coerce_literal(b, ty)?;
        match b.ty {
            Some(t) if !ops::can_assign(t, ty) => sql_err!(
                DatatypeMismatch,
                "column \"{}\" is of type {ty} but default expression is of type {t}",
                col.name
            ),
            _ => Ok(()),
        }
    }

    /// A table's CHECK constraints, bound over its row.
    fn bind_checks(&mut self, table: &TableDesc) -> Result<Vec<Check>> {
        let scope = Scope::from_table(table, &table.name);
        let mut checks = Vec::with_capacity(table.checks.len());
        for check in &table.checks {
            let e = crate::parser::parse_expr(&check.expr)?;
            let (expr, _) = self.bind_check(&e, &scope)?;
            checks.push(Check { name: check.name.clone(), expr });
        }
        Ok(checks)
    }

    /// A CHECK constraint's expression, bound over `scope` (the table's
    /// row), and the positions of the columns it reads. Subqueries,
    /// aggregates and window functions are refused, as in PostgreSQL.
    fn bind_check(&mut self, e: &ast::Expr, scope: &Scope) -> Result<(Expr, Vec<usize>)> {
        self.check_no_aggregates(e, "check constraints")?;
        check_no_windows(e, "check constraints")?;
        let b = self.bind_expr(e, scope)?;
        let expr = self.coerce(b, DataType::Bool)?;
        let mut columns = Vec::new();
        let mut subquery = false;
        expr.walk(&mut |x| match x {
            Expr::Column(i) => columns.push(*i),
            Expr::Subquery(_) | Expr::ArraySubquery(_) | Expr::Exists(_) | Expr::InSubquery(..) => subquery = true,
            _ => {}
        });
        if subquery {
            return sql_err!(FeatureNotSupported, "cannot use subquery in check constraint");
        }
        columns.sort_unstable();
        columns.dedup();
        Ok((expr, columns))
    }

    /// The DEFAULT of a column as an expression (NULL without one).
    fn default_expr(&mut self, col: &ColumnDesc) -> Result<Expr> {
        let Some(text) = &col.default else {
            return Ok(Expr::Constant(Value::Null));
        };
        let e = crate::parser::parse_expr(text)?;
        let b = self.bind_expr(&e, &Scope::default())?;
        self.coerce_loose(b, col.data_type)
    }

    fn bind_assignments(
        &mut self,
        table: &TableDesc,
        assignments: &[ast::Assignment],
        scope: &Scope,
    ) -> Result<Vec<(usize, Expr)>> {
        // `SET (a, b) = (x, y)` is `SET a = x, b = y`.
        let mut pairs: Vec<(&ast::ObjectName, &ast::Expr)> = Vec::new();
        for a in assignments {
            match (&a.target, &a.value) {
                (ast::AssignmentTarget::ColumnName(name), value) => pairs.push((name, value)),
                (ast::AssignmentTarget::Tuple(names), ast::Expr::Tuple(values)) => {
                    if names.len() != values.len() {
                        return sql_err!(SyntaxError, "number of columns does not match number of values");
                    }
                    pairs.extend(names.iter().zip(values));
                }
                (ast::AssignmentTarget::Tuple(names), ast::Expr::Nested(value)) if names.len() == 1 => {
                    pairs.push((&names[0], value))
                }
                (ast::AssignmentTarget::Tuple(_), ast::Expr::Subquery(_)) => {
                    return sql_err!(FeatureNotSupported, "SET (...) = (SELECT ...) is not supported")
                }
                // PostgreSQL's answer too (0A000).
                (ast::AssignmentTarget::Tuple(_), _) => {
                    return sql_err!(
                        FeatureNotSupported,
                        "source for a multiple-column UPDATE item must be a sub-SELECT or ROW() expression"
                    )
                }
            }
        }
        let mut out: Vec<(usize, Expr)> = Vec::new();
        for (name, value) in pairs {
            let name = object_name(name)?;
            let (i, col) = table.column(&name).filter(|(_, c)| !c.hidden).ok_or_else(|| {
                Error::new(
                    SqlState::UndefinedColumn,
                    format!("column \"{name}\" of relation \"{}\" does not exist", table.name),
                )
            })?;
            if out.iter().any(|(j, _)| *j == i) {
                return sql_err!(SyntaxError, "multiple assignments to same column \"{name}\"");
            }
            let expr = if is_default(value) {
                self.default_expr(col)?
            } else if col.identity_always {
                return Err(generated_always(col, format!("column \"{}\" can only be updated to DEFAULT", col.name)));
            } else {
                let b = self.bind_expr(value, scope)?;
                let b = self.coerce_literal(b, col.data_type)?;
                if let Some(t) = b.ty {
                    if !ops::can_assign(t, col.data_type) {
                        return sql_err!(
                            DatatypeMismatch,
                            "column \"{}\" is of type {} but expression is of type {t}",
                            col.name,
                            col.data_type
                        );
                    }
                }
                b.expr
            };
            out.push((i, expr));
        }
        Ok(out)
    }

    fn bind_returning(
        &mut self,
        table: &TableDesc,
        items: Option<&[ast::SelectItem]>,
    ) -> Result<Option<Vec<(Expr, OutputColumn)>>> {
        let Some(items) = items else { return Ok(None) };
        let scope = Scope::from_table(table, &table.name);
        let mut out = Vec::new();
        for item in items {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    for (i, c) in table.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        out.push((Expr::Column(i), OutputColumn { name: c.name.clone(), data_type: c.data_type }));
                    }
                }
                ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let b = self.bind_expr(e, &scope)?;
                    let b = self.default_type(b)?;
                    let name = match item {
                        ast::SelectItem::ExprWithAlias { alias, .. } => ident(alias),
                        _ => column_name(e),
                    };
                    out.push((b.expr, OutputColumn { name, data_type: b.ty.unwrap_or(DataType::Text) }));
                }
                other => return sql_err!(FeatureNotSupported, "RETURNING item not supported: {other}"),
            }
        }
        Ok(Some(out))
    }

    /// A scan of `table` filtered by `selection` (the optimizer narrows
    /// it to spans and indexes).
    /// What an UPDATE or DELETE reads: the target table's rows, joined
    /// with `from`'s (`UPDATE ... FROM`, `DELETE ... USING`; the target's
    /// columns first), filtered by WHERE.
    fn write_source(
        &mut self,
        table: &Arc<TableDesc>,
        alias: &str,
        from: &[ast::TableWithJoins],
        selection: Option<&ast::Expr>,
    ) -> Result<(Node, Scope)> {
        let mut scope = Scope::from_table(table, alias);
        let mut node = Node::full_scan(table.clone());
        if !from.is_empty() {
            let (right, right_scope, _) = self.plan_from(from)?;
            for c in &right_scope.columns {
                if let Some(t) = c.table.as_ref().filter(|t| scope.has_table(t)) {
                    return sql_err!(DuplicateAlias, "table name \"{t}\" specified more than once");
                }
            }
            let (left, right) = (Box::new(node), Box::new(right));
            node = Node::Join { left, right, kind: JoinKind::Inner, left_keys: vec![], right_keys: vec![], on: None };
            scope = scope.join(right_scope);
        }
        if let Some(s) = selection {
            self.check_no_aggregates(s, "WHERE")?;
            let b = self.bind_expr(s, &scope)?;
            node = Node::Filter { input: Box::new(node), predicate: self.coerce(b, DataType::Bool)? };
        }
        Ok((node, scope))
    }

    fn plan_update(&mut self, update: &ast::Update) -> Result<Plan> {
        if !update.table.joins.is_empty() {
            return sql_err!(FeatureNotSupported, "UPDATE of a join is not supported");
        }
        let from: &[ast::TableWithJoins] = match &update.from {
            None => &[],
            Some(ast::UpdateTableFromKind::BeforeSet(f) | ast::UpdateTableFromKind::AfterSet(f)) => f,
        };
        let ast::TableFactor::Table { name, alias, .. } = &update.table.relation else {
            return sql_err!(FeatureNotSupported, "UPDATE of this target is not supported");
        };
        let table = self.table_to_write(&object_name(name)?, "update")?;
        let alias = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table.name.clone());
        let (source, scope) = self.write_source(&table, &alias, from, update.selection.as_ref())?;
        let assignments = self.bind_assignments(&table, &update.assignments, &scope)?;
        let returning = self.bind_returning(&table, update.returning.as_deref())?;
        let set: Vec<usize> = assignments.iter().map(|(i, _)| *i).collect();
        let constraints = self.bind_constraints(&table, foreign_keys::WriteKind::Update(&set))?;
        Ok(Plan::Update { table, source, assignments, returning, constraints })
    }

    fn plan_delete(&mut self, delete: &ast::Delete) -> Result<Plan> {
        let from = match &delete.from {
            ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
        };
        if from.len() != 1 || !from[0].joins.is_empty() || !delete.tables.is_empty() {
            return sql_err!(FeatureNotSupported, "DELETE from several tables is not supported");
        }
        let using: &[ast::TableWithJoins] = delete.using.as_deref().unwrap_or_default();
        let ast::TableFactor::Table { name, alias, .. } = &from[0].relation else {
            return sql_err!(FeatureNotSupported, "DELETE of this target is not supported");
        };
        let table = self.table_to_write(&object_name(name)?, "delete from")?;
        let alias = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table.name.clone());
        let (source, _) = self.write_source(&table, &alias, using, delete.selection.as_ref())?;
        let returning = self.bind_returning(&table, delete.returning.as_deref())?;
        let constraints = self.bind_constraints(&table, foreign_keys::WriteKind::Delete)?;
        Ok(Plan::Delete { table, source, returning, constraints })
    }

    // ---- DDL ---------------------------------------------------------------

    fn plan_create_table(&mut self, create: &ast::CreateTable) -> Result<Plan> {
        if create.temporary || create.or_replace {
            return sql_err!(FeatureNotSupported, "TEMPORARY and OR REPLACE tables are not supported");
        }
        let name = object_name(&create.name)?;
        if let Some(query) = &create.query {
            return self.plan_create_table_as(create, &name, query);
        }
        if create.columns.len() > limits::COLUMNS_MAX {
            return sql_err!(ProgramLimitExceeded, "tables can have at most {} columns", limits::COLUMNS_MAX);
        }
        let mut table = TableDesc::new(&name);
        let mut primary: Option<Vec<(String, Direction)>> = None;
        // UNIQUE constraints: an optional name and the columns.
        let mut uniques: Vec<(Option<String>, IndexColumns)> = Vec::new();
        // CHECK constraints: an optional name and the expression.
        let mut checks: Vec<(Option<String>, ast::Expr)> = Vec::new();
        // FOREIGN KEYs, resolved once the table has its keys (it may
        // reference itself).
        let mut pending_foreign_keys = Vec::new();
        for c in &create.columns {
            let ColumnDef { column: col, primary_key: pk, unique, checks: col_checks, foreign_keys } =
                self.column_def(&mut table, c)?;
            checks.extend(col_checks);
            pending_foreign_keys.extend(foreign_keys);
            if pk {
                if primary.is_some() {
                    return sql_err!(
                        InvalidTableDefinition,
                        "multiple primary keys for table \"{name}\" are not allowed"
                    );
                }
                primary = Some(vec![(col.name.clone(), Direction::Asc)]);
            }
            if unique {
                uniques.push((None, vec![(col.name.clone(), Direction::Asc)]));
            }
            table.columns.push(col);
        }
        for constraint in &create.constraints {
            match constraint {
                ast::TableConstraint::PrimaryKey(pk) => {
                    if primary.is_some() {
                        return sql_err!(
                            InvalidTableDefinition,
                            "multiple primary keys for table \"{name}\" are not allowed"
                        );
                    }
                    primary = Some(index_columns(&pk.columns)?);
                }
                ast::TableConstraint::Unique(u) => {
                    uniques.push((u.name.as_ref().map(ident), index_columns(&u.columns)?));
                }
                ast::TableConstraint::Check(c) => checks.push((c.name.as_ref().map(ident), (*c.expr).clone())),
                ast::TableConstraint::ForeignKey(fk) => {
                    pending_foreign_keys.push(foreign_keys::pending(None, fk, None))
                }
                other => return sql_err!(FeatureNotSupported, "constraint not supported: {other}"),
            }
        }
        self.add_checks(&mut table, checks)?;
        match primary {
            Some(cols) => {
                table.primary.columns = resolve_index_columns(&table, &cols)?;
                for (id, _) in table.primary.columns.clone() {
                    if let Some(c) = table.columns.iter_mut().find(|c| c.id == id) {
                        c.nullable = false;
                    }
                }
            }
            None => add_hidden_rowid(&mut table),
        }
        for (uname, cols) in uniques {
            let columns = resolve_index_columns(&table, &cols)?;
            let iname = uname.unwrap_or_else(|| {
                format!("{name}_{}_key", cols.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join("_"))
            });
            let id = table.allocate_index_id()?;
            table.indexes.push(IndexDesc { id, name: iname, unique: true, columns, write_only: false });
        }
        for pending in &pending_foreign_keys {
            let fk = self.foreign_key(&table, pending)?;
            if fk.table == table.name {
                table.referenced_by.push(foreign_keys::reference_of(&table, &fk));
            }
            table.foreign_keys.push(fk);
        }
        Ok(Plan::CreateTable { table, if_not_exists: create.if_not_exists })
    }

    /// `CREATE TABLE t [(names)] AS query`: a table of the query's columns
    /// (named as it names them, or by the list), with a hidden row id.
    fn plan_create_table_as(&mut self, create: &ast::CreateTable, name: &str, query: &ast::Query) -> Result<Plan> {
        let plan = self.plan_query(query)?;
        if create.columns.len() > plan.columns.len() {
            return sql_err!(SyntaxError, "too many column names were specified");
        }
        if plan.columns.len() > limits::COLUMNS_MAX {
            return sql_err!(ProgramLimitExceeded, "tables can have at most {} columns", limits::COLUMNS_MAX);
        }
        let mut table = TableDesc::new(name);
        let names: Vec<String> = create.columns.iter().map(|c| ident(&c.name)).collect();
        add_query_columns(&mut table, &plan, &names)?;
        add_hidden_rowid(&mut table);
        Ok(Plan::CreateTableAs { table, query: plan, if_not_exists: create.if_not_exists })
    }

    /// A column definition and the constraints it declares.
    fn column_def(&mut self, table: &mut TableDesc, c: &ast::ColumnDef) -> Result<ColumnDef> {
        let name = ident(&c.name);
        if table.column(&name).is_some() {
            return sql_err!(DuplicateColumn, "column \"{name}\" specified more than once");
        }
        let serial = is_serial(&c.data_type);
        let mut ty = if serial { DataType::Int8 } else { data_type(&c.data_type)? };
        let mut col = ColumnDesc {
            id: table.next_column_id,
            name,
            data_type: ty,
            nullable: true,
            default: None,
            hidden: false,
            missing: None,
            identity_always: false,
            identity_sequence: None,
            comment: None,
        };
        table.next_column_id += 1;
        let (mut pk, mut unique, mut generated) = (false, false, serial);
        let mut checks = Vec::new();
        let mut references = Vec::new();
        for option in &c.options {
            match &option.option {
                ast::ColumnOption::ForeignKey(fk) => {
                    references.push(foreign_keys::pending(option.name.as_ref(), fk, Some(&col.name)))
                }
                ast::ColumnOption::Check(check) => {
                    let name = option.name.as_ref().or(check.name.as_ref()).map(ident);
                    checks.push((name, (*check.expr).clone()));
                }
                ast::ColumnOption::Generated {
                    generated_as: generated_as @ (ast::GeneratedAs::Always | ast::GeneratedAs::ByDefault),
                    generation_expr: None,
                    ..
                } => {
                    col.identity_always = matches!(generated_as, ast::GeneratedAs::Always);
                    if !ty.is_integer() {
                        return sql_err!(DatatypeMismatch, "identity column type must be smallint, integer, or bigint");
                    }
                    generated = true;
                    ty = DataType::Int8;
                    col.data_type = ty;
                }
                ast::ColumnOption::Generated { .. } => {
                    return sql_err!(FeatureNotSupported, "generated columns are not supported");
                }
                ast::ColumnOption::Null => col.nullable = true,
                ast::ColumnOption::NotNull => col.nullable = false,
                ast::ColumnOption::Default(e) => {
                    col.data_type = ty;
                    self.check_default(e, &col)?;
                    col.default = Some(e.to_string());
                }
                ast::ColumnOption::PrimaryKey(_) => {
                    pk = true;
                    col.nullable = false;
                }
                ast::ColumnOption::Unique(_) => unique = true,
                other => return sql_err!(FeatureNotSupported, "column option not supported: {other}"),
            }
        }
        if generated {
            if col.default.is_some() {
                return sql_err!(
                    SyntaxError,
                    "multiple default values specified for column \"{}\" of table \"{}\"",
                    col.name,
                    table.name
                );
            }
            // SERIAL and IDENTITY columns are bigints that default to a
            // random one (CockroachDB's SERIAL does the same): rows spread
            // over the table's shards, where sequential ids would all go
            // to its last one. Unique, not in insertion order. An explicit
            // value is taken for BY DEFAULT (and SERIAL); GENERATED ALWAYS
            // refuses one (428C9) unless OVERRIDING SYSTEM VALUE.
            col.nullable = false;
            col.default = Some(GENERATED_KEY_DEFAULT.into());
        }
        Ok(ColumnDef { column: col, primary_key: pk, unique, checks, foreign_keys: references })
    }

    fn plan_create_index(&mut self, create: &ast::CreateIndex) -> Result<Plan> {
        // A B-tree is what SpanDB's indexes are (ordered keys): pg_dump
        // writes USING btree for every index.
        let btree = match &create.using {
            None | Some(ast::IndexType::BTree) => true,
            Some(ast::IndexType::Custom(name)) => ident(name) == "btree",
            Some(_) => false,
        };
        if create.predicate.is_some() || !create.include.is_empty() || !btree {
            return sql_err!(FeatureNotSupported, "partial, covering and non-btree indexes are not supported");
        }
        let table = object_name(&create.table_name)?;
        let columns = index_columns(&create.columns)?;
        let name = match &create.name {
            Some(n) => object_name(n)?,
            None => format!("{table}_{}_idx", columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join("_")),
        };
        let desc = Catalog::must_table(self.txn, &table)?;
        let columns = resolve_index_columns(&desc, &columns)?;
        let index = IndexDesc { id: 0, name, unique: create.unique, columns, write_only: false };
        Ok(Plan::CreateIndex { table, index, if_not_exists: create.if_not_exists })
    }

    /// `ALTER TABLE relation OWNER TO role` (pg_dump writes it for every
    /// table, view and sequence): checks that both exist, and changes
    /// nothing: SpanDB keeps no owners (every role may do everything).
    fn plan_owner_to(&mut self, relation: &str, owner: &ast::Owner, if_exists: bool) -> Result<Plan> {
        if Catalog::table(self.txn, relation)?.is_none() && crate::sequence::by_name(self.txn, relation)?.is_none() {
            if if_exists {
                let notice = Some(format!("relation \"{relation}\" does not exist, skipping"));
                return Ok(Plan::Unchanged { tag: "ALTER TABLE", notice });
            }
            return sql_err!(UndefinedTable, "relation \"{relation}\" does not exist");
        }
        if let ast::Owner::Ident(role) = owner {
            let role = ident(role);
            if role != system::ROLE_NAME && Some(role.as_str()) != self.user {
                return sql_err!(UndefinedObject, "role \"{role}\" does not exist");
            }
        }
        Ok(Plan::Unchanged { tag: "ALTER TABLE", notice: None })
    }

    /// `ALTER SEQUENCE`, as the parser carries it
    /// (`parser::alter_sequence`): `ALTER TABLE name SET ("option" =
    /// value, ...)`, over a sequence.
    fn plan_alter_sequence(&mut self, name: String, options: &[ast::SqlOption], if_exists: bool) -> Result<Plan> {
        use crate::parser::sequence_option as key;
        let value = |e: &ast::Expr| -> Result<Option<i64>> {
            match e {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Null) => Ok(None),
                _ => {
                    let text = e.to_string().replace(' ', "");
                    text.parse().map(Some).map_err(|_| {
                        Error::new(
                            SqlState::InvalidParameterValue,
                            format!("sequence option value {text} is not a bigint"),
                        )
                    })
                }
            }
        };
        let number = |e: &ast::Expr| value(e)?.ok_or_else(|| Error::new(SqlState::SyntaxError, "NULL is not a number"));
        let string = |e: &ast::Expr| match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) => Ok(s.clone()),
                _ => Err(Error::new(SqlState::SyntaxError, format!("expected a string, found {e}"))),
            },
            _ => Err(Error::new(SqlState::SyntaxError, format!("expected a string, found {e}"))),
        };
        let mut given = crate::sequence::Options::default();
        let (mut restart, mut owned_by) = (None, None);
        for option in options {
            // A table's storage parameters (`ALTER TABLE t SET (fillfactor
            // = 70)`) are none of these.
            let ast::SqlOption::KeyValue { key: option, value: e } = option else {
                return sql_err!(FeatureNotSupported, "ALTER TABLE ... SET ({option}) is not supported");
            };
            match object_name(option)?.as_str() {
                key::TYPE => given.data_type = Some(crate::sequence::data_type_named(&string(e)?)?),
                key::INCREMENT => given.increment = Some(number(e)?),
                key::MIN_VALUE => given.min = Some(value(e)?),
                key::MAX_VALUE => given.max = Some(value(e)?),
                key::START => given.start = Some(number(e)?),
                key::CACHE => given.cache = Some(number(e)?),
                key::CYCLE => given.cycle = Some(e.to_string().eq_ignore_ascii_case("true")),
                key::RESTART => restart = Some(value(e)?),
                key::OWNED_BY => {
                    let text = string(e)?;
                    owned_by = Some(match crate::parser::name_parts(&text).as_deref() {
                        Some([none]) if none == "none" => None,
                        Some([table, column]) => Some((table.clone(), column.clone())),
                        Some([schema, table, column]) if schema == "public" => Some((table.clone(), column.clone())),
                        _ => return sql_err!(SyntaxError, "invalid OWNED BY option"),
                    });
                }
                other => return sql_err!(FeatureNotSupported, "ALTER TABLE ... SET ({other}) is not supported"),
            }
        }
        Ok(Plan::AlterSequence { name, given, restart, owned_by, if_exists })
    }

    fn plan_alter_table(&mut self, alter: &ast::AlterTable) -> Result<Plan> {
        let table = object_name(&alter.name)?;
        let [operation] = alter.operations.as_slice() else {
            let steps = alter
                .operations
                .iter()
                .map(|op| ast::Statement::AlterTable(ast::AlterTable { operations: vec![op.clone()], ..alter.clone() }))
                .collect();
            return Ok(Plan::AlterTableSteps { steps });
        };
        match operation {
            ast::AlterTableOperation::OwnerTo { new_owner } => self.plan_owner_to(&table, new_owner, alter.if_exists),
            ast::AlterTableOperation::SetOptionsParens { options } => {
                self.plan_alter_sequence(table, options, alter.if_exists)
            }
            ast::AlterTableOperation::AddColumn { if_not_exists, column_def, .. } => {
                let mut desc = (*Catalog::must_table(self.txn, &table)?).clone();
                if *if_not_exists && desc.column(&ident(&column_def.name)).is_some() {
                    return Ok(Plan::AddColumn {
                        table,
                        column: desc.column(&ident(&column_def.name)).expect("exists").1.clone(),
                        unique: false,
                        if_not_exists: true,
                    });
                }
                let ColumnDef { column, primary_key: pk, unique, checks, foreign_keys } =
                    self.column_def(&mut desc, column_def)?;
                if !checks.is_empty() || !foreign_keys.is_empty() {
                    return sql_err!(FeatureNotSupported, "ADD COLUMN ... CHECK or REFERENCES is not supported");
                }
                if pk {
                    return sql_err!(FeatureNotSupported, "ADD COLUMN ... PRIMARY KEY is not supported");
                }
                Ok(Plan::AddColumn { table, column, unique, if_not_exists: *if_not_exists })
            }
            ast::AlterTableOperation::DropColumn { column_names, if_exists, drop_behavior, .. } => {
                let [column] = column_names.as_slice() else {
                    return sql_err!(FeatureNotSupported, "dropping several columns at once is not supported");
                };
                let cascade = *drop_behavior == Some(ast::DropBehavior::Cascade);
                Ok(Plan::DropColumn { table, column: ident(column), if_exists: *if_exists, cascade })
            }
            ast::AlterTableOperation::AlterColumn { column_name, op } => {
                let column = ident(column_name);
                let change = match op {
                    ast::AlterColumnOperation::SetNotNull => ColumnChange::NotNull(true),
                    ast::AlterColumnOperation::DropNotNull => ColumnChange::NotNull(false),
                    ast::AlterColumnOperation::DropDefault => ColumnChange::Default(None),
                    ast::AlterColumnOperation::SetDefault { value } => {
                        let desc = self.table(&table)?;
                        let Some((_, col)) = desc.column(&column).filter(|(_, c)| !c.hidden) else {
                            return sql_err!(
                                UndefinedColumn,
                                "column \"{column}\" of relation \"{table}\" does not exist"
                            );
                        };
                        self.check_default(value, col)?;
                        ColumnChange::Default(Some(value.to_string()))
                    }
                    ast::AlterColumnOperation::SetDataType { data_type: ty, using, .. } => {
                        self.new_column_type(&table, &column, ty, using.as_ref())?
                    }
                    ast::AlterColumnOperation::AddGenerated { generated_as, sequence_options } => {
                        let always = match generated_as {
                            None | Some(ast::GeneratedAs::Always) => true,
                            Some(ast::GeneratedAs::ByDefault) => false,
                            Some(ast::GeneratedAs::ExpStored) => {
                                return sql_err!(FeatureNotSupported, "generated columns are not supported")
                            }
                        };
                        let options = sequence_options_of(sequence_options.as_deref().unwrap_or_default())?;
                        ColumnChange::AddIdentity { always, options }
                    }
                    other => return sql_err!(FeatureNotSupported, "ALTER COLUMN {other} is not supported"),
                };
                Ok(Plan::AlterColumn { table, column, change })
            }
            ast::AlterTableOperation::AddConstraint { constraint: ast::TableConstraint::PrimaryKey(pk), .. } => {
                Ok(Plan::AddPrimaryKey { table, columns: index_columns(&pk.columns)? })
            }
            ast::AlterTableOperation::AddConstraint { constraint: ast::TableConstraint::ForeignKey(fk), .. } => {
                Ok(Plan::AddForeignKey { table, foreign_key: foreign_keys::pending(None, fk, None) })
            }
            ast::AlterTableOperation::AddConstraint { constraint: ast::TableConstraint::Check(c), .. } => {
                Ok(Plan::AddCheck { table, name: c.name.as_ref().map(ident), expr: (*c.expr).clone() })
            }
            // A UNIQUE constraint is its unique index (CREATE UNIQUE INDEX).
            ast::AlterTableOperation::AddConstraint { constraint: ast::TableConstraint::Unique(u), .. } => {
                let columns = index_columns(&u.columns)?;
                let name = match &u.name {
                    Some(n) => ident(n),
                    None => {
                        format!("{table}_{}_key", columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join("_"))
                    }
                };
                let desc = Catalog::must_table(self.txn, &table)?;
                let columns = resolve_index_columns(&desc, &columns)?;
                let index = IndexDesc { id: 0, name, unique: true, columns, write_only: false };
                Ok(Plan::CreateIndex { table, index, if_not_exists: false })
            }
            ast::AlterTableOperation::RenameTable { table_name } => {
                let (ast::RenameTableNameKind::To(to) | ast::RenameTableNameKind::As(to)) = table_name;
                Ok(Plan::RenameTable { table, to: object_name(to)? })
            }
            ast::AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                Ok(Plan::RenameColumn { table, column: ident(old_column_name), to: ident(new_column_name) })
            }
            ast::AlterTableOperation::DropConstraint { if_exists, name, drop_behavior } => {
                if *drop_behavior == Some(ast::DropBehavior::Cascade) {
                    return sql_err!(FeatureNotSupported, "DROP CONSTRAINT ... CASCADE is not supported");
                }
                Ok(Plan::DropConstraint { table, name: ident(name), if_exists: *if_exists })
            }
            other => sql_err!(FeatureNotSupported, "ALTER TABLE {other} is not supported"),
        }
    }
}

impl Planner<'_> {
    /// What `ALTER COLUMN column TYPE ty [USING using]` changes in column
    /// `column` of `table`, once it is known that every value can become
    /// a `ty` (`ddl`, "Changing a column's type", converts them). `USING`
    /// may only be the column or its cast to `ty`, what ORMs send.
    fn new_column_type(
        &mut self,
        table: &str,
        column: &str,
        ty: &ast::DataType,
        using: Option<&ast::Expr>,
    ) -> Result<ColumnChange> {
        let desc = self.table(table)?;
        let Some((_, col)) = desc.column(column).filter(|(_, c)| !c.hidden) else {
            return sql_err!(UndefinedColumn, "column \"{column}\" of relation \"{table}\" does not exist");
        };
        let col = col.clone();
        let to = data_type(ty)?;
        if col.default.as_deref() == Some(GENERATED_KEY_DEFAULT) {
            if !to.is_integer() {
                return sql_err!(DatatypeMismatch, "identity column type must be smallint, integer, or bigint");
            }
            // SERIAL and IDENTITY columns stay bigints, as CREATE TABLE
            // makes them (`column_def`).
            return Ok(ColumnChange::Type { to: DataType::Int8, default: col.default });
        }
        let from = col.data_type;
        match using {
            None if !ops::can_assign(from, to) => {
                return Err(Error::new(
                    SqlState::DatatypeMismatch,
                    format!("column \"{column}\" cannot be cast automatically to type {}", ops::type_name(to)),
                )
                .with_hint(format!(
                    "You might need to specify \"USING {}::{}\".",
                    crate::system::quote_ident(column),
                    to.sql_name()
                )))
            }
            None => {}
            Some(using) => {
                if !is_column_or_its_cast(using, column, to) {
                    return sql_err!(
                        FeatureNotSupported,
                        "ALTER COLUMN ... TYPE ... USING is supported only with the column or its cast to the new \
                         type (USING {}::{})",
                        crate::parser::quote_name(column),
                        to.sql_name()
                    );
                }
                if !ops::can_cast(from, to) {
                    return sql_err!(
                        CannotCoerce,
                        "cannot cast type {} to {}",
                        ops::type_name(from),
                        ops::type_name(to)
                    );
                }
            }
        }
        let mut default = col.default;
        if let Some(text) = &mut default {
            let e = crate::parser::parse_expr(text)?;
            let b = self.bind_expr(&e, &Scope::default())?;
            match self.coerce_literal(b, to).map(|b| b.ty) {
                Ok(None) => {}
                Ok(Some(t)) if ops::can_coerce_implicitly(t, to) => {}
                // As PostgreSQL keeps it: cast to the new type.
                Ok(Some(t)) if ops::can_assign(t, to) => *text = format!("CAST(({text}) AS {})", to.sql_name()),
                _ => {
                    return sql_err!(
                        DatatypeMismatch,
                        "default for column \"{column}\" cannot be cast automatically to type {}",
                        ops::type_name(to)
                    )
                }
            }
        }
        Ok(ColumnChange::Type { to, default })
    }
}

/// Whether `e` is column `column`, or its cast to `to` (`c::varchar(20)`,
/// `CAST(c AS bigint)`).
fn is_column_or_its_cast(e: &ast::Expr, column: &str, to: DataType) -> bool {
    match e {
        ast::Expr::Identifier(i) => ident(i) == column,
        ast::Expr::Nested(inner) => is_column_or_its_cast(inner, column, to),
        ast::Expr::Cast { expr, data_type: ty, format: None, .. } => {
            data_type(ty).is_ok_and(|t| t == to) && matches!(&**expr, ast::Expr::Identifier(i) if ident(i) == column)
        }
        _ => false,
    }
}

/// The table named by the leading parts of a qualified column name
/// (`t.c`, `public.t.c`).
fn object_name_of_parts(parts: Vec<&ast::ObjectNamePart>) -> Result<String> {
    object_name(&ast::ObjectName(parts.into_iter().cloned().collect()))
}

/// CREATE SEQUENCE's options, as written (`OWNED BY` is ignored:
/// `sequence`).
fn sequence_options_of(options: &[ast::SequenceOptions]) -> Result<crate::sequence::Options> {
    use ast::SequenceOptions as O;
    fn number(e: &ast::Expr) -> Result<i64> {
        let text = e.to_string().replace(' ', "");
        text.parse().map_err(|_| {
            Error::new(SqlState::InvalidParameterValue, format!("sequence option value {text} is not a bigint"))
        })
    }
    let mut out = crate::sequence::Options::default();
    for option in options {
        match option {
            O::DataType(t) => out.data_type = Some(crate::sequence::data_type_named(&t.to_string())?),
            O::IncrementBy(e, _) => out.increment = Some(number(e)?),
            O::MinValue(e) => out.min = Some(e.as_ref().map(number).transpose()?),
            O::MaxValue(e) => out.max = Some(e.as_ref().map(number).transpose()?),
            O::StartWith(e, _) => out.start = Some(number(e)?),
            O::Cache(e) => out.cache = Some(number(e)?),
            // sqlparser's flag is "NO".
            O::Cycle(no) => out.cycle = Some(!no),
            O::OwnedBy(_) => {}
        }
    }
    Ok(out)
}

/// `DEFAULT` where a value may be given (VALUES, SET).
fn is_default(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(d) if d.quote_style.is_none() && ident(d) == "default")
}

/// Whether every row of an INSERT's VALUES gives DEFAULT at position `p`.
fn values_all_default(source: Option<&ast::Query>, p: usize) -> bool {
    match source.map(|q| q.body.as_ref()) {
        Some(ast::SetExpr::Values(values)) => values.rows.iter().all(|row| row.get(p).is_none_or(is_default)),
        _ => false,
    }
}

/// 428C9 for a value given to a GENERATED ALWAYS column.
fn generated_always(col: &ColumnDesc, message: String) -> Error {
    Error::new(SqlState::GeneratedAlways, message)
        .with_detail(format!("Column \"{}\" is an identity column defined as GENERATED ALWAYS.", col.name))
}

/// `now()` and its synonyms: the statement's transaction's start, a
/// timestamptz; `localtimestamp` the same instant as the session zone's
/// wall clock, a timestamp.
fn now_bound(local: bool) -> Bound {
    match local {
        false => Bound::typed(Expr::Now, DataType::TimestampTz),
        true => Bound::typed(Expr::Cast(Box::new(Expr::Now), DataType::Timestamp), DataType::Timestamp),
    }
}

/// `localtime`: the time of day of `now()` in the session's zone.
fn localtime_bound() -> Bound {
    Bound::typed(Expr::Cast(Box::new(Expr::Now), DataType::Time), DataType::Time)
}

/// A CHAR(n) value used as text loses its padding (PostgreSQL's bpchar
/// to text conversion).
fn char_as_text(b: Bound) -> Bound {
    match b.ty {
        Some(DataType::Char(_)) => Bound::typed(Expr::Function("rtrim".into(), vec![b.expr]), DataType::Text),
        _ => b,
    }
}

/// Plans SQL the database writes for itself (one statement: a foreign
/// key's action, a schema change's query of its rows) in `txn`, its
/// parameters of `param_types`, optimized; with the tables it read.
pub fn plan_internal(txn: &mut dyn Transaction, sql: &str, param_types: &[DataType]) -> Result<(Plan, Vec<String>)> {
    let parsed = crate::parser::parse(sql)?;
    let [parsed] = parsed.as_slice() else {
        return sql_err!(InternalError, "not one statement: {sql}");
    };
    let mut planner = Planner::new(txn, sql);
    planner.param_types = param_types.iter().copied().map(Some).collect();
    let plan = planner.plan(&parsed.statement)?;
    let read = planner.take_used_tables();
    Ok((crate::optimizer::optimize_plan(plan, crate::optimizer::Rules::default()), read))
}

/// The tables and views `view`'s query reads, planned against the
/// catalog as `txn` sees it (an error if it no longer plans).
pub fn view_tables(txn: &mut dyn Transaction, view: &TableDesc) -> Result<Vec<String>> {
    let mut planner = Planner::new(txn, view.view.as_deref().unwrap_or_default());
    planner.plan_view(view, None)?;
    Ok(planner.take_used_tables())
}

/// Adds CHECK constraints to `table` (a name if given, the expression),
/// bound over its columns and named as CREATE TABLE names them.
pub fn add_table_checks(
    txn: &mut dyn Transaction,
    table: &mut TableDesc,
    checks: Vec<(Option<String>, ast::Expr)>,
) -> Result<()> {
    Planner::new(txn, "").add_checks(table, checks)
}

/// Binds `table`'s CHECK constraints, as a write would (an error if one
/// no longer binds).
pub fn bind_table_checks(txn: &mut dyn Transaction, table: &TableDesc) -> Result<Vec<Check>> {
    Planner::new(txn, "").bind_checks(table)
}

/// Binds a row-free expression as an argument for a parameter of type
/// `ty` (EXECUTE's): an untyped literal or parameter takes `ty`; any other
/// keeps its own type, for the caller to assign (`ops::assign`).
/// `param_types` are the types of the `$n` the expression may use.
pub fn bind_argument(
    txn: &mut dyn Transaction,
    sql: &str,
    e: &ast::Expr,
    (ty, param_types): (DataType, &[DataType]),
) -> Result<Expr> {
    let mut planner = Planner::new(txn, sql);
    planner.param_types = param_types.iter().copied().map(Some).collect();
    let b = planner.bind_expr(e, &Scope::default())?;
    Ok(planner.coerce_literal(b, ty)?.expr)
}

/// Binds a row-free expression (a stored DEFAULT) as a value of `ty`.
pub fn bind_constant(txn: &mut dyn Transaction, sql: &str, e: &ast::Expr, ty: DataType) -> Result<Expr> {
    let mut planner = Planner::new(txn, sql);
    let b = planner.bind_expr(e, &Scope::default())?;
    planner.coerce_loose(b, ty)
}

/// Gives `desc` a column per result column of `plan` (CREATE VIEW's, CREATE
/// TABLE AS's), named by `names` where given, else as the query names it.
fn add_query_columns(desc: &mut TableDesc, plan: &QueryPlan, names: &[String]) -> Result<()> {
    for (i, c) in plan.columns.iter().enumerate() {
        let column_name = names.get(i).cloned().unwrap_or_else(|| c.name.clone());
        if desc.column(&column_name).is_some() {
            return sql_err!(DuplicateColumn, "column \"{column_name}\" specified more than once");
        }
        desc.columns.push(ColumnDesc {
            id: desc.next_column_id,
            name: column_name,
            data_type: c.data_type,
            nullable: true,
            default: None,
            hidden: false,
            missing: None,
            identity_always: false,
            identity_sequence: None,
            comment: None,
        });
        desc.next_column_id += 1;
    }
    Ok(())
}

/// Adds the hidden `rowid` primary key to a table without one.
pub fn add_hidden_rowid(table: &mut TableDesc) {
    let id = table.next_column_id;
    table.next_column_id += 1;
    table.columns.push(ColumnDesc {
        id,
        name: ROWID_COLUMN.into(),
        data_type: DataType::Int8,
        nullable: false,
        default: None,
        hidden: true,
        missing: None,
        identity_always: false,
        identity_sequence: None,
        comment: None,
    });
    table.primary.columns = vec![(id, Direction::Asc)];
}

/// An index's columns by name, each with its direction.
type IndexColumns = Vec<(String, Direction)>;

/// Column names and directions of an index definition.
fn index_columns(columns: &[ast::IndexColumn]) -> Result<Vec<(String, Direction)>> {
    columns
        .iter()
        .map(|c| {
            let ast::Expr::Identifier(name) = &c.column.expr else {
                return sql_err!(FeatureNotSupported, "indexes on expressions are not supported");
            };
            if c.column.options.nulls_first.is_some() {
                return sql_err!(FeatureNotSupported, "NULLS FIRST/LAST in an index is not supported");
            }
            let dir = match c.column.options.sort {
                Some(ast::OrderBySort::Desc) => Direction::Desc,
                _ => Direction::Asc,
            };
            Ok((ident(name), dir))
        })
        .collect()
}

/// Refuses a column type a key cannot hold (0A000): a key keeps an
/// interval's span only ('1 day' and '24 hours' are one key) and no jsonb,
/// so it could not give the value back; nor can it an array's of them.
pub fn check_key_type(name: &str, ty: DataType) -> Result<()> {
    let what = match (ty, ty.element()) {
        (DataType::Interval, _) => "an interval".to_string(),
        (DataType::Jsonb, _) => "jsonb".to_string(),
        (_, Some(element @ (DataType::Interval | DataType::Jsonb))) => format!("an array of {element}"),
        _ => return Ok(()),
    };
    sql_err!(FeatureNotSupported, "column \"{name}\" is {what}, which cannot be in a key or an index")
}

pub fn resolve_index_columns(table: &TableDesc, cols: &[(String, Direction)]) -> Result<Vec<(u32, Direction)>> {
    let mut out = Vec::new();
    for (name, dir) in cols {
        let (_, col) = table
            .column(name)
            .filter(|(_, c)| !c.hidden)
            .ok_or_else(|| Error::new(SqlState::UndefinedColumn, format!("column \"{name}\" does not exist")))?;
        if out.iter().any(|(id, _)| *id == col.id) {
            return sql_err!(DuplicateColumn, "column \"{name}\" appears twice in the key");
        }
        check_key_type(name, col.data_type)?;
        out.push((col.id, *dir));
    }
    if out.is_empty() {
        return sql_err!(SyntaxError, "an index needs at least one column");
    }
    Ok(out)
}

/// The scope of a query's result columns: a query used as a table (a
/// derived table, a WITH query, a view) named `alias`, or a set
/// operation's output.
/// The one column of a table function in FROM: named by the alias, or
/// after the function (PostgreSQL's rule), of type `ty`.
fn function_scope(function: &str, ty: DataType, alias: Option<&ast::TableAlias>) -> Result<Scope> {
    let name = alias.map(|a| ident(&a.name)).unwrap_or_else(|| function.into());
    let mut scope = Scope {
        columns: vec![ScopeColumn {
            table: Some(name.clone()),
            name,
            data_type: Some(ty),
            hidden: false,
            merged_away: false,
            join_key: false,
            not_null: false,
        }],
    };
    if let Some(a) = alias {
        rename_columns(&mut scope, &a.columns)?;
    }
    Ok(scope)
}

fn derived_scope(plan: &QueryPlan, alias: Option<String>) -> Scope {
    Scope {
        columns: plan
            .columns
            .iter()
            .map(|c| ScopeColumn {
                table: alias.clone(),
                name: c.name.clone(),
                data_type: Some(c.data_type),
                hidden: false,
                merged_away: false,
                join_key: false,
                not_null: false,
            })
            .collect(),
    }
}

fn rename_columns(scope: &mut Scope, columns: &[ast::TableAliasColumnDef]) -> Result<()> {
    let visible: Vec<usize> = scope.columns.iter().enumerate().filter(|(_, c)| !c.hidden).map(|(i, _)| i).collect();
    if columns.len() > visible.len() {
        return sql_err!(
            InvalidColumnReference,
            "table has {} columns available but {} columns specified",
            visible.len(),
            columns.len()
        );
    }
    for (c, i) in columns.iter().zip(visible) {
        scope.columns[i].name = ident(&c.name);
    }
    Ok(())
}

fn order_options(o: &ast::OrderByOptions) -> (bool, bool) {
    let descending = o.sort == Some(ast::OrderBySort::Desc);
    // PostgreSQL: NULLS LAST ascending, NULLS FIRST descending.
    (descending, o.nulls_first.unwrap_or(descending))
}

fn integer_literal(e: &ast::Expr) -> Option<i64> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The common type of `acc` and `next` (either may be unknown, `None`).
/// A mismatch is 42804 `<what> types a and b cannot be matched`, or, with
/// no `what`, the operator module's own error.
fn merge_type(acc: Option<DataType>, next: Option<DataType>, what: Option<&str>) -> Result<Option<DataType>> {
    let (Some(prev), Some(t)) = (acc, next) else { return Ok(acc.or(next)) };
    ops::common_type(prev, t).map(Some).map_err(|e| match what {
        Some(what) => Error::new(SqlState::DatatypeMismatch, format!("{what} types {prev} and {t} cannot be matched")),
        None => e,
    })
}

/// Whether column `i` of `node` is a bare NULL literal (no type of its
/// own).
fn null_column(node: &Node, i: usize) -> bool {
    match node {
        Node::Project { exprs, .. } => exprs.get(i) == Some(&Expr::Constant(Value::Null)),
        Node::Values { rows, .. } => {
            !rows.is_empty() && rows.iter().all(|r| r.get(i) == Some(&Expr::Constant(Value::Null)))
        }
        _ => false,
    }
}

fn cast_if(e: Expr, from: DataType, to: DataType) -> Expr {
    if from.base() == to.base() {
        e
    } else {
        Expr::Cast(Box::new(e), to)
    }
}

/// The type an operand has after `unify` (a literal took the other side's
/// type).
fn type_after(b: &Bound, e: &Expr, other: &Bound) -> Option<DataType> {
    match e {
        Expr::Cast(_, t) => Some(*t),
        _ => b.ty.or(other.ty),
    }
}

/// PostgreSQL's name for an unnamed result column.
fn column_name(e: &ast::Expr) -> String {
    figure_column_name(e).0
}

/// A select item's column name, and how strong it is (PostgreSQL's
/// `FigureColname`): 2 for a name of its own (a column, a function), 1 for
/// a fallback a cast outside it replaces (a cast's type, `case`), 0 for
/// none (`?column?`). So `sum(x)::int` is "sum", `'1'::text::int` "int4".
fn figure_column_name(e: &ast::Expr) -> (String, u8) {
    let strong = |name: String| (name, 2);
    match e {
        ast::Expr::Identifier(i) => strong(ident(i)),
        ast::Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => strong(ident(i)),
            None => ("?column?".into(), 0),
        },
        ast::Expr::Function(f) => match f.name.0.last() {
            Some(ast::ObjectNamePart::Identifier(i)) => strong(ident(i)),
            _ => ("?column?".into(), 0),
        },
        ast::Expr::Cast { expr, data_type: t, .. } => match figure_column_name(expr) {
            (name, 2) => (name, 2),
            weak => match data_type(t) {
                Ok(t) => (pg_short_name(t).to_string(), 1),
                Err(_) => weak,
            },
        },
        ast::Expr::Nested(inner) => figure_column_name(inner),
        // A field by its name; an element by what it is an element of.
        ast::Expr::CompoundFieldAccess { root, access_chain } => match access_chain.last() {
            Some(ast::AccessExpr::Dot(field)) => figure_column_name(field),
            _ => figure_column_name(root),
        },
        // Named after its ELSE when that has a name of its own.
        ast::Expr::Case { else_result, .. } => match else_result.as_deref().map(figure_column_name) {
            Some((name, 2)) => (name, 2),
            _ => ("case".into(), 1),
        },
        ast::Expr::Exists { .. } => strong("exists".into()),
        ast::Expr::Array(_) => strong("array".into()),
        ast::Expr::Position { .. } => strong("position".into()),
        ast::Expr::Substring { .. } => strong("substring".into()),
        ast::Expr::Trim { .. } => strong("btrim".into()),
        ast::Expr::Extract { .. } => strong("extract".into()),
        ast::Expr::Ceil { .. } => strong("ceil".into()),
        ast::Expr::Floor { .. } => strong("floor".into()),
        ast::Expr::AtTimeZone { .. } => strong("timezone".into()),
        // `DATE '2024-01-01'` is a cast of a constant: its type's name.
        ast::Expr::TypedString(t) => match data_type(&t.data_type) {
            Ok(t) => (pg_short_name(t).to_string(), 1),
            Err(_) => ("?column?".into(), 0),
        },
        ast::Expr::Interval(_) => ("interval".into(), 1),
        // A scalar subquery: its column's name.
        ast::Expr::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(select) => match select.projection.first() {
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => strong(ident(alias)),
                Some(ast::SelectItem::UnnamedExpr(e)) => match figure_column_name(e) {
                    (name, 0) => (name, 0),
                    (name, _) => strong(name),
                },
                _ => ("?column?".into(), 0),
            },
            _ => ("?column?".into(), 0),
        },
        _ => ("?column?".into(), 0),
    }
}

fn pg_short_name(t: DataType) -> &'static str {
    match t {
        DataType::Bool => "bool",
        DataType::Int2 => "int2",
        DataType::Int4 => "int4",
        DataType::Int8 => "int8",
        DataType::Float4 => "float4",
        DataType::Float8 => "float8",
        DataType::Text => "text",
        DataType::Varchar(_) => "varchar",
        DataType::Char(_) => "bpchar",
        DataType::Bytea => "bytea",
        DataType::Timestamp => "timestamp",
        DataType::TimestampTz => "timestamptz",
        DataType::Date => "date",
        DataType::Time => "time",
        DataType::Interval => "interval",
        DataType::Uuid => "uuid",
        DataType::Numeric(_) => "numeric",
        DataType::Jsonb => "jsonb",
        // `'{1}'::int[]` is named as its element type.
        DataType::Array(element) => pg_short_name(*element),
    }
}

/// An aggregate whose argument and filter read only enclosing queries'
/// columns belongs to the nearest of them (SQL standard, PostgreSQL):
/// `SELECT (SELECT max(a.id) FROM b) FROM a` is one row, max(a.id).
/// Evaluated where it is written it would aggregate once per outer row,
/// a wrong answer; until it is planned at its level, it is refused.
fn refuse_outer_aggregate<'e>(call: &ast::Function, parts: impl IntoIterator<Item = Option<&'e Expr>>) -> Result<()> {
    let (mut outer, mut local) = (false, false);
    for part in parts.into_iter().flatten() {
        part.walk(&mut |e| match e {
            Expr::Outer { .. } => outer = true,
            Expr::Column(_) | Expr::Exists(_) | Expr::Subquery(_) | Expr::InSubquery(..) | Expr::ArraySubquery(_) => {
                local = true
            }
            _ => {}
        });
    }
    match outer && !local {
        true => sql_err!(
            FeatureNotSupported,
            "{call}: an aggregate of an enclosing query's columns only belongs to that query, which is not supported"
        ),
        false => Ok(()),
    }
}

/// `percentile_cont`, `percentile_disc` and `mode`: their values come
/// sorted by `WITHIN GROUP (ORDER BY ...)`.
fn is_ordered_set_aggregate(name: &str) -> bool {
    matches!(name, "percentile_cont" | "percentile_disc" | "mode")
}

pub fn is_aggregate(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "bool_and"
            | "bool_or"
            | "every"
            | "array_agg"
            | "jsonb_agg"
            | "jsonb_object_agg"
            | "string_agg"
            | "var_samp"
            | "variance"
            | "var_pop"
            | "stddev_samp"
            | "stddev"
            | "stddev_pop"
            | "percentile_cont"
            | "percentile_disc"
            | "mode"
    )
}

/// The aggregate calls in `e` (not inside subqueries).
fn collect_aggregates<'e>(e: &'e ast::Expr, out: &mut Vec<&'e ast::Function>) {
    collect_calls(e, Calls::Aggregates, out)
}

/// Which calls [`collect_calls`] collects.
#[derive(Clone, Copy, PartialEq)]
enum Calls {
    /// Aggregate calls without OVER.
    Aggregates,
    /// Calls with OVER.
    Windows,
}

/// A clause where window functions may not be (42P20).
fn check_no_windows(e: &ast::Expr, clause: &str) -> Result<()> {
    let mut calls = Vec::new();
    collect_calls(e, Calls::Windows, &mut calls);
    match calls.is_empty() {
        true => Ok(()),
        false => sql_err!(WindowingError, "window functions are not allowed in {clause}"),
    }
}

/// The calls of kind `calls` in `e`, not inside subqueries nor inside
/// each other; other calls are searched, arguments and OVER clause.
fn collect_calls<'e>(e: &'e ast::Expr, calls: Calls, out: &mut Vec<&'e ast::Function>) {
    use ast::Expr as E;
    match e {
        E::Function(f) => {
            // `count` or `pg_catalog.count` (pgbench writes the latter).
            let name = builtin_name(&f.name).unwrap_or_default();
            let wanted = match calls {
                Calls::Aggregates => is_aggregate(&name) && f.over.is_none(),
                Calls::Windows => f.over.is_some(),
            };
            if wanted {
                out.push(f);
                return;
            }
            if let ast::FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a {
                        collect_calls(x, calls, out);
                    }
                }
            }
            if let Some(ast::WindowType::WindowSpec(spec)) = &f.over {
                for x in spec.partition_by.iter().chain(spec.order_by.iter().map(|o| &o.expr)) {
                    collect_calls(x, calls, out);
                }
            }
        }
        E::BinaryOp { left, right, .. } => {
            collect_calls(left, calls, out);
            collect_calls(right, calls, out);
        }
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsNotTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotFalse(expr)
        | E::Cast { expr, .. } => collect_calls(expr, calls, out),
        E::Between { expr, low, high, .. } => {
            collect_calls(expr, calls, out);
            collect_calls(low, calls, out);
            collect_calls(high, calls, out);
        }
        E::In { expr, target: ast::InTarget::List(list), .. } => {
            collect_calls(expr, calls, out);
            list.iter().for_each(|x| collect_calls(x, calls, out));
        }
        E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => {
            collect_calls(expr, calls, out);
            collect_calls(pattern, calls, out);
        }
        E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
            collect_calls(a, calls, out);
            collect_calls(b, calls, out);
        }
        E::Case { operand, conditions, else_result, .. } => {
            if let Some(o) = operand {
                collect_calls(o, calls, out);
            }
            for c in conditions {
                collect_calls(&c.condition, calls, out);
                collect_calls(&c.result, calls, out);
            }
            if let Some(x) = else_result {
                collect_calls(x, calls, out);
            }
        }
        E::In { expr, .. } => collect_calls(expr, calls, out),
        _ => {}
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

/// jsonb's set-returning functions (`Planner::plan_jsonb_rows`).
fn is_jsonb_rows_function(name: &str) -> bool {
    matches!(
        name,
        "jsonb_array_elements" | "jsonb_array_elements_text" | "jsonb_object_keys" | "jsonb_each" | "jsonb_each_text"
    )
}

/// `a OR b OR ...` as a balanced tree: an IN list of thousands of rows
/// must not nest thousands deep (evaluation recurses).
fn or_balanced(mut tests: Vec<Expr>) -> Option<Expr> {
    if tests.len() <= 1 {
        return tests.pop();
    }
    let right = tests.split_off(tests.len() / 2);
    Some(Expr::Or(Box::new(or_balanced(tests)?), Box::new(or_balanced(right)?)))
}

/// `LATERAL (subquery)` or `LATERAL function(...)`: sees the FROM items
/// before it.
fn is_lateral(factor: &ast::TableFactor) -> bool {
    match factor {
        ast::TableFactor::Derived { lateral, .. } | ast::TableFactor::Function { lateral, .. } => *lateral,
        _ => false,
    }
}

/// A function in FROM (`generate_series(...)`, `unnest(...)`,
/// `jsonb_array_elements(...)`): lateral if its arguments name the FROM
/// items before it (`Planner::plan_right_factor`).
fn is_function_factor(factor: &ast::TableFactor) -> bool {
    matches!(
        factor,
        ast::TableFactor::Table { args: Some(_), .. }
            | ast::TableFactor::Function { .. }
            | ast::TableFactor::UNNEST { .. }
    )
}

/// The INSERT, UPDATE or DELETE `q` is, if it is one (a WITH query, or
/// a statement under a WITH clause: `WITH next AS (...) UPDATE ...`
/// parses as a query).
pub(crate) fn dml_body(q: &ast::Query) -> Option<&ast::Statement> {
    match q.body.as_ref() {
        ast::SetExpr::Insert(dml) | ast::SetExpr::Update(dml) | ast::SetExpr::Delete(dml) => Some(dml),
        _ => None,
    }
}

/// The names a SELECT's FROM items are known by (an alias, else the
/// table's name), with the table each names, if it is one.
fn from_names(select: &ast::Select) -> Vec<(String, Option<String>)> {
    fn add(t: &ast::TableWithJoins, out: &mut Vec<(String, Option<String>)>) {
        for relation in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            match relation {
                ast::TableFactor::Table { name, alias, .. } => {
                    let Ok(table) = object_name(name) else { continue };
                    let visible = alias.as_ref().map_or_else(|| table.clone(), |a| ident(&a.name));
                    out.push((visible, Some(table)));
                }
                ast::TableFactor::NestedJoin { table_with_joins, alias: None } => add(table_with_joins, out),
                ast::TableFactor::Derived { alias: Some(alias), .. }
                | ast::TableFactor::Function { alias: Some(alias), .. }
                | ast::TableFactor::UNNEST { alias: Some(alias), .. }
                | ast::TableFactor::NestedJoin { alias: Some(alias), .. } => out.push((ident(&alias.name), None)),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for t in &select.from {
        add(t, &mut out);
    }
    out
}

/// A JSON function of a whole row (`row_to_json(t)`, `to_jsonb(t.*)`,
/// `json_agg(t)`: a FROM item's name, not a column's, or `t.*`), as the
/// same function of `jsonb_build_object('col', t.col, ...)` over the
/// item's visible columns (`row_to_json` as `to_jsonb`: json is jsonb
/// here), NULL for a LEFT JOIN's missing row (a NOT NULL column of the
/// table is NULL; without one, every column: a real row of NULLs of a
/// table without a key is then NULL too, where PostgreSQL gives an object
/// of nulls). `None` for any other call.
fn whole_row_call(f: &ast::Function, scope: &Scope) -> Option<ast::Function> {
    let name = builtin_name(&f.name).ok()?;
    let name = match name.as_str() {
        "row_to_json" => "to_jsonb",
        "to_jsonb" | "jsonb_agg" => name.as_str(),
        _ => return None,
    };
    let ast::FunctionArguments::List(list) = &f.args else { return None };
    let [ast::FunctionArg::Unnamed(arg)] = list.args.as_slice() else { return None };
    let table = match arg {
        ast::FunctionArgExpr::Expr(ast::Expr::Identifier(i)) => {
            let name = ident(i);
            let is_column = scope.columns.iter().any(|c| !c.hidden && c.name == name);
            (!is_column && scope.has_table(&name)).then_some(name)?
        }
        ast::FunctionArgExpr::QualifiedWildcard(table) => {
            let name = object_name(table).ok()?;
            scope.has_table(&name).then_some(name)?
        }
        _ => return None,
    };
    let quoted = |s: &str| ast::Ident::with_quote('"', s);
    let columns = || scope.columns.iter().filter(|c| c.table.as_deref() == Some(&table));
    let mut fields = Vec::new();
    for c in columns().filter(|c| !c.hidden) {
        let key = ast::Expr::value(ast::Value::SingleQuotedString(c.name.clone()));
        let value = ast::Expr::CompoundIdentifier(vec![quoted(&table), quoted(&c.name)]);
        fields.extend([key, value].map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))));
    }
    // A LEFT JOIN's missing row is NULL in a NOT NULL column of a table;
    // where there is none (a derived table, a view, a table without a
    // key), a row all of whose columns are NULL is taken for one.
    let is_null = |c: &ScopeColumn| {
        ast::Expr::IsNull(Box::new(ast::Expr::CompoundIdentifier(vec![quoted(&table), quoted(&c.name)])))
    };
    let missing = match columns().find(|c| c.not_null && !c.hidden) {
        Some(c) => Some(is_null(c)),
        None => columns().filter(|c| !c.hidden).map(is_null).reduce(|all, next| ast::Expr::BinaryOp {
            left: Box::new(all),
            op: ast::BinaryOperator::And,
            right: Box::new(next),
        }),
    };
    let object = ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new("jsonb_build_object")]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: fields,
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    };
    // The row a LEFT JOIN's missing side stands for is NULL, not an
    // object of nulls.
    let object = match missing {
        Some(condition) => ast::Expr::Case {
            case_token: ast::helpers::attached_token::AttachedToken::empty(),
            end_token: ast::helpers::attached_token::AttachedToken::empty(),
            operand: None,
            conditions: vec![ast::CaseWhen { condition, result: ast::Expr::value(ast::Value::Null) }],
            else_result: Some(Box::new(ast::Expr::Function(object))),
        },
        None => ast::Expr::Function(object),
    };
    let mut call = f.clone();
    call.name = ast::ObjectName::from(vec![ast::Ident::new(name)]);
    call.args = ast::FunctionArguments::List(ast::FunctionArgumentList {
        args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(object))],
        ..list.clone()
    });
    Some(call)
}
