//! FOREIGN KEY constraints: resolving a definition (CREATE TABLE,
//! ALTER TABLE ADD CONSTRAINT) and binding what a write checks.
//!
//! A foreign key is kept on both tables (`catalog::ForeignKeyDesc` on the
//! referencing one, a `catalog::Reference` on the referenced one), so a
//! write plans its checks from the descriptor of the table it writes and
//! those of the tables named there, which leases cover as they cover any
//! table a statement reads (a change to either side drains both).
//!
//! Each check is an EXISTS subquery over the other table, bound as SQL
//! text over the written table's row, so the binder gives it the casts a
//! comparison of, say, an `int` column with a `bigint` key needs, and the
//! optimizer turns it into a key lookup:
//!
//! ```text
//!   child (pid) REFERENCES parent (id), a row of child written:
//!     "child"."pid" IS NULL
//!       OR EXISTS (SELECT 1 FROM "parent" AS "referenced row"
//!                  WHERE "referenced row"."id" = "child"."pid")
//!   a row of parent deleted (or its id changed), old row:
//!     EXISTS (SELECT 1 FROM "child" AS "referencing row"
//!             WHERE "referencing row"."pid" = "parent"."id")
//! ```
//!
//! The writer evaluates them after all of the statement's writes
//! (`write`, `Changes::check`), so a statement may insert a row and the
//! row it references, or delete both; in SpanDB a check's read locks what
//! it found (or the empty range it scanned) until commit, so a concurrent
//! transaction cannot delete the referenced row, or insert a referencing
//! one, in between.
//!
//! A foreign key whose action writes (ON DELETE CASCADE, SET NULL, SET
//! DEFAULT; ON UPDATE the same) makes, instead of the second check, a
//! DELETE or UPDATE of the referencing rows over the old key's values as
//! parameters, planned when it runs (`plan::ForeignKeyAction`), whose own
//! constraints are checked, and cascaded, in turn:
//!
//! ```text
//!   child (pid) REFERENCES parent ON DELETE CASCADE, parent row 1 deleted:
//!     DELETE FROM child WHERE pid = $1        ($1 = 1)
//! ```
//!
//! A DEFERRABLE key's checks (NO ACTION only: RESTRICT and the actions
//! never wait) may wait for COMMIT inside a transaction block (INITIALLY
//! DEFERRED, or SET CONSTRAINTS ALL DEFERRED: the session's "Deferred
//! checks"). COMMIT then checks each with the row as it was written, and
//! a second expression (`ForeignKeyCheck::key_present`) decides whether
//! the check still matters: no row of the written table has the key any
//! more (the referencing row went or changed), or the referenced key is
//! back.

use sqlparser::ast;

use super::{ident, object_name, Planner, Scope};
use crate::catalog::{ForeignKeyDesc, Reference, ReferentialAction, TableDesc};
use crate::error::Result;
use crate::kv::Transaction;
use crate::parser::quote_name;
use crate::plan::{Constraints, Expr, ForeignKeyAction, ForeignKeyCheck, ForeignKeyDef};
use crate::sql_err;
use crate::types::DataType;

/// The alias of the other table in a check's subquery: not a name a
/// statement's own tables are likely to have, and only its columns are
/// named through it.
const REFERENCED_ALIAS: &str = "referenced row";
const REFERENCING_ALIAS: &str = "referencing row";

/// Which of a table's constraints a write checks.
pub(super) enum WriteKind<'a> {
    Insert,
    /// An INSERT ... ON CONFLICT DO UPDATE setting these columns
    /// (positions) of the rows it finds.
    Upsert(&'a [usize]),
    /// An UPDATE setting these columns.
    Update(&'a [usize]),
    Delete,
}

impl Planner<'_> {
    /// Resolves a FOREIGN KEY of `table` (whose other constraints are
    /// already in it, so a table may reference itself): the referenced
    /// table and columns (its primary key when none are named), which must
    /// be those of its primary key or of a unique index (42830), of
    /// matching types (42804). Named as PostgreSQL names it,
    /// `<table>_<columns>_fkey`, unless the statement names it.
    pub(super) fn foreign_key(&mut self, table: &TableDesc, pending: &ForeignKeyDef) -> Result<ForeignKeyDesc> {
        let ForeignKeyDef { name, columns, clause: fk } = pending;
        if matches!(
            fk.match_kind,
            Some(ast::ConstraintReferenceMatchKind::Full | ast::ConstraintReferenceMatchKind::Partial)
        ) {
            return sql_err!(FeatureNotSupported, "MATCH FULL and MATCH PARTIAL foreign keys are not supported");
        }
        let (mut deferrable, mut deferred) = (false, false);
        if let Some(c) = &fk.characteristics {
            if c.enforced == Some(false) {
                return sql_err!(FeatureNotSupported, "NOT ENFORCED foreign keys are not supported");
            }
            deferred = c.initially == Some(ast::DeferrableInitial::Deferred);
            deferrable = c.deferrable.unwrap_or(deferred);
            if deferred && !deferrable {
                return sql_err!(SyntaxError, "constraint declared INITIALLY DEFERRED must be DEFERRABLE");
            }
        }
        let on_delete = referential_action(fk.on_delete);
        let on_update = referential_action(fk.on_update);
        let referenced_name = object_name(&fk.foreign_table)?;
        let referenced_desc;
        let referenced: &TableDesc = if referenced_name == table.name {
            table
        } else {
            referenced_desc = crate::catalog::Catalog::must_table(self.txn, &referenced_name)?;
            if referenced_desc.view.is_some() {
                return sql_err!(WrongObjectType, "referenced relation \"{referenced_name}\" is not a table");
            }
            &referenced_desc
        };
        let own = column_ids(table, columns)?;
        let key = match fk.referred_columns.is_empty() {
            true if referenced.has_hidden_rowid() => {
                return sql_err!(UndefinedObject, "there is no primary key for referenced table \"{referenced_name}\"")
            }
            true => referenced.primary.columns.iter().map(|(id, _)| *id).collect(),
            false => column_ids(referenced, &fk.referred_columns.iter().map(ident).collect::<Vec<_>>())?,
        };
        if own.len() != key.len() {
            return sql_err!(
                InvalidForeignKey,
                "number of referencing and referenced columns for foreign key disagree"
            );
        }
        let unique = referenced.unique_key_on(&key, None).is_some();
        if !unique || referenced.has_hidden_rowid() && key == [referenced.primary.columns[0].0] {
            return sql_err!(
                InvalidForeignKey,
                "there is no unique constraint matching given keys for referenced table \"{referenced_name}\""
            );
        }
        let name = name.clone().unwrap_or_else(|| {
            let names: Vec<&str> =
                own.iter().filter_map(|id| table.column_by_id(*id).map(|(_, c)| c.name.as_str())).collect();
            free_constraint_name(table, &format!("{}_{}_fkey", table.name, names.join("_")))
        });
        if constraint_taken(table, &name) {
            return sql_err!(DuplicateObject, "constraint \"{name}\" for relation \"{}\" already exists", table.name);
        }
        for (a, b) in own.iter().zip(&key) {
            let (_, a) = table.column_by_id(*a).expect("resolved above");
            let (_, b) = referenced.column_by_id(*b).expect("resolved above");
            if !key_types_match(a.data_type, b.data_type) {
                return Err(crate::error::Error::new(
                    crate::error::SqlState::DatatypeMismatch,
                    format!("foreign key constraint \"{name}\" cannot be implemented"),
                )
                .with_detail(format!(
                    "Key columns \"{}\" and \"{}\" are of incompatible types: {} and {}.",
                    a.name,
                    b.name,
                    crate::ops::type_name(a.data_type),
                    crate::ops::type_name(b.data_type)
                )));
            }
        }
        Ok(ForeignKeyDesc {
            name,
            columns: own,
            table: referenced_name,
            referenced: key,
            on_delete,
            on_update,
            deferrable,
            deferred,
        })
    }

    /// The constraints a write of `table` checks: its CHECKs, its foreign
    /// keys over columns it sets, and the foreign keys referencing it over
    /// columns it changes (or all of them for a DELETE). Their checks
    /// name tables, so they are planned without the statement's WITH
    /// queries in scope (`WITH parent AS (...) INSERT INTO child ...`
    /// still checks the table `parent`), as a view's query is.
    pub(super) fn bind_constraints(&mut self, table: &TableDesc, kind: WriteKind) -> Result<Constraints> {
        let ctes = std::mem::take(&mut self.ctes);
        let start = self.used_tables.len();
        let bound = self.bind_constraints_of(table, kind);
        self.constraint_lookups.push(start..self.used_tables.len());
        self.ctes = ctes;
        bound
    }

    fn bind_constraints_of(&mut self, table: &TableDesc, kind: WriteKind) -> Result<Constraints> {
        let sets = |ids: &[u32], inserted: bool| match kind {
            WriteKind::Delete => true,
            WriteKind::Insert | WriteKind::Upsert(_) if inserted => true,
            WriteKind::Insert => false,
            WriteKind::Update(positions) | WriteKind::Upsert(positions) => {
                ids.iter().any(|id| table.column_by_id(*id).is_some_and(|(i, _)| positions.contains(&i)))
            }
        };
        let checks = match kind {
            WriteKind::Delete => Vec::new(),
            _ => self.bind_checks(table)?,
        };
        let scope = Scope::from_table(table, &table.name);
        let mut references = Vec::new();
        if !matches!(kind, WriteKind::Delete) {
            for fk in table.foreign_keys.iter().filter(|fk| sets(&fk.columns, true)) {
                let referenced = match fk.table == table.name {
                    true => std::sync::Arc::new(table.clone()),
                    false => self.table(&fk.table)?,
                };
                let pairs = key_pairs(table, &fk.columns, &referenced, &fk.referenced)?;
                let nulls: Vec<String> = pairs.iter().map(|(own, _)| format!("{} IS NULL", own)).collect();
                let alias = alias(REFERENCED_ALIAS, &[&table.name, &referenced.name]);
                let text = format!(
                    "{} OR EXISTS (SELECT 1 FROM {} AS {} WHERE {})",
                    nulls.join(" OR "),
                    quote_name(&referenced.name),
                    quote_name(&alias),
                    key_match(&pairs, &alias),
                );
                let mut check = self.foreign_key_check(table, &fk.name, &fk.table, &fk.columns, &text, &scope)?;
                if fk.deferrable {
                    (check.deferrable, check.deferred) = (true, fk.deferred);
                    // At COMMIT: a row of the table still has the key (the
                    // row checked may be gone or changed since).
                    check.key_present = Some(self.key_present(table, &fk.columns, &referenced.name, &scope)?);
                }
                references.push(check);
            }
        }
        let mut referenced_by = Vec::new();
        // An INSERT takes no key away.
        let references_to_check = match kind {
            WriteKind::Insert => &[][..],
            _ => &table.referenced_by[..],
        };
        for reference in references_to_check {
            let referencing = match reference.table == table.name {
                true => std::sync::Arc::new(table.clone()),
                false => match self.table(&reference.table) {
                    Ok(t) => t,
                    // A reference whose table is gone references nothing
                    // (the two sides change together; this is for safety).
                    Err(e) if e.state == crate::error::SqlState::UndefinedTable => continue,
                    Err(e) => return Err(e),
                },
            };
            let Some(fk) = referencing.foreign_keys.iter().find(|fk| fk.name == reference.constraint) else {
                continue;
            };
            if !sets(&fk.referenced, false) {
                continue;
            }
            let pairs = key_pairs(table, &fk.referenced, &referencing, &fk.columns)?;
            let other = alias(REFERENCING_ALIAS, &[&table.name, &referencing.name]);
            let text = format!(
                "EXISTS (SELECT 1 FROM {} AS {} WHERE {})",
                quote_name(&referencing.name),
                quote_name(&other),
                key_match(&pairs, &other),
            );
            let mut check =
                self.foreign_key_check(table, &fk.name, &referencing.name, &fk.referenced, &text, &scope)?;
            let deleted = matches!(kind, WriteKind::Delete);
            check.action = action(table, &referencing, fk, deleted)?;
            // NO ACTION may wait for COMMIT; RESTRICT and the actions never
            // do (PostgreSQL's rule).
            let no_action = (if deleted { fk.on_delete } else { fk.on_update }) == ReferentialAction::NoAction;
            if fk.deferrable && no_action {
                (check.deferrable, check.deferred) = (true, fk.deferred);
                // At COMMIT: the key is there again (a referenced row
                // deleted and put back).
                check.key_present = Some(self.key_present(table, &fk.referenced, &referencing.name, &scope)?);
            }
            referenced_by.push(check);
        }
        Ok(Constraints { checks, references, referenced_by })
    }

    /// Over a row of `table`: whether `table` has a row (this one or
    /// another) with its values in `columns`, as COMMIT asks of a deferred
    /// check's row.
    fn key_present(&mut self, table: &TableDesc, columns: &[u32], other: &str, scope: &Scope) -> Result<Expr> {
        let own = alias(REFERENCED_ALIAS, &[&table.name, other]);
        let key = columns
            .iter()
            .filter_map(|id| table.column_by_id(*id).map(|(_, c)| quote_name(&c.name)))
            .map(|c| format!("{}.{c} = {}.{c}", quote_name(&own), quote_name(&table.name)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let text = format!("EXISTS (SELECT 1 FROM {} AS {} WHERE {key})", quote_name(&table.name), quote_name(&own));
        let e = crate::parser::parse_expr(&text)?;
        let b = self.bind_expr(&e, scope)?;
        self.coerce(b, DataType::Bool)
    }

    fn foreign_key_check(
        &mut self,
        table: &TableDesc,
        name: &str,
        other: &str,
        columns: &[u32],
        text: &str,
        scope: &Scope,
    ) -> Result<ForeignKeyCheck> {
        let e = crate::parser::parse_expr(text)?;
        let b = self.bind_expr(&e, scope)?;
        let found: Expr = self.coerce(b, DataType::Bool)?;
        let columns =
            columns.iter().map(|id| table.column_by_id(*id).map(|(i, _)| i)).collect::<Option<Vec<_>>>().ok_or_else(
                || crate::error::Error::new(crate::error::SqlState::InternalError, "a key column is missing"),
            )?;
        Ok(ForeignKeyCheck {
            name: name.to_string(),
            table: other.to_string(),
            columns,
            found,
            action: None,
            deferrable: false,
            deferred: false,
            key_present: None,
        })
    }
}

/// `base`, made different from the names of the tables a check reads (a
/// table may be named like the alias).
fn alias(base: &str, tables: &[&str]) -> String {
    let mut alias = base.to_string();
    while tables.contains(&alias.as_str()) {
        alias.push('_');
    }
    alias
}

/// `own = other` for each pair of key columns, the other table's
/// qualified by `alias`, joined by AND.
fn key_match(pairs: &[(String, String)], alias: &str) -> String {
    let alias = quote_name(alias);
    pairs.iter().map(|(own, other)| format!("{alias}.{other} = {own}")).collect::<Vec<_>>().join(" AND ")
}

/// The key columns of a check as SQL: the written table's qualified by
/// its name, the other table's quoted (to be qualified by its alias).
fn key_pairs(table: &TableDesc, own: &[u32], other: &TableDesc, theirs: &[u32]) -> Result<Vec<(String, String)>> {
    own.iter()
        .zip(theirs)
        .map(|(a, b)| {
            let a = table.column_by_id(*a).map(|(_, c)| c.name.as_str());
            let b = other.column_by_id(*b).map(|(_, c)| c.name.as_str());
            match (a, b) {
                (Some(a), Some(b)) => Ok((format!("{}.{}", quote_name(&table.name), quote_name(a)), quote_name(b))),
                _ => sql_err!(InternalError, "a foreign key names a column its table does not have"),
            }
        })
        .collect()
}

/// Whether a constraint (primary key, unique index, CHECK, foreign key) of
/// `table` is named `name`.
pub(super) fn constraint_taken(table: &TableDesc, name: &str) -> bool {
    table.primary.name == name
        || table.indexes.iter().any(|i| i.name == name)
        || table.checks.iter().any(|c| c.name == name)
        || table.foreign_keys.iter().any(|f| f.name == name)
}

/// `base`, or the first of `base1`, `base2`, ... no constraint of `table`
/// has (PostgreSQL's names for constraints a statement does not name).
pub(super) fn free_constraint_name(table: &TableDesc, base: &str) -> String {
    let mut name = base.to_string();
    let mut n = 0;
    while constraint_taken(table, &name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}

/// Column ids of `names` in `table` (42703 for one it does not have).
fn column_ids(table: &TableDesc, names: &[String]) -> Result<Vec<u32>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let Some((_, c)) = table.column(name).filter(|(_, c)| !c.hidden) else {
            return sql_err!(UndefinedColumn, "column \"{name}\" referenced in foreign key constraint does not exist");
        };
        if ids.contains(&c.id) {
            return sql_err!(DuplicateColumn, "column \"{name}\" appears twice in a foreign key constraint");
        }
        ids.push(c.id);
    }
    Ok(ids)
}

/// Whether a foreign key may pair columns of these types: both integers,
/// both strings, or the same type.
fn key_types_match(a: DataType, b: DataType) -> bool {
    a.base() == b.base() || (a.is_integer() && b.is_integer()) || (a.is_string() && b.is_string())
}

fn referential_action(action: Option<ast::ReferentialAction>) -> ReferentialAction {
    match action {
        None | Some(ast::ReferentialAction::NoAction) => ReferentialAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => ReferentialAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => ReferentialAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => ReferentialAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => ReferentialAction::SetDefault,
    }
}

/// The write foreign key `fk` of `referencing` makes when a key of
/// `table` it references goes, if its action for this write (`deleted`:
/// ON DELETE, else ON UPDATE) is one.
fn action(
    table: &TableDesc,
    referencing: &TableDesc,
    fk: &ForeignKeyDesc,
    deleted: bool,
) -> Result<Option<ForeignKeyAction>> {
    let action = if deleted { fk.on_delete } else { fk.on_update };
    if !action.writes() {
        return Ok(None);
    }
    let name = |t: &TableDesc, id: &u32| {
        t.column_by_id(*id)
            .map(|(_, c)| quote_name(&c.name))
            .ok_or_else(|| crate::error::Error::new(crate::error::SqlState::InternalError, "a key column is missing"))
    };
    let columns = fk.columns.iter().map(|id| name(referencing, id)).collect::<Result<Vec<_>>>()?;
    let n = columns.len();
    let key = columns.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect::<Vec<_>>().join(" AND ");
    let target = quote_name(&referencing.name);
    let set = |value: &dyn Fn(usize) -> String| {
        columns.iter().enumerate().map(|(i, c)| format!("{c} = {}", value(i))).collect::<Vec<_>>().join(", ")
    };
    let sql = match (action, deleted) {
        (ReferentialAction::Cascade, true) => format!("DELETE FROM {target} WHERE {key}"),
        (ReferentialAction::Cascade, false) => {
            format!("UPDATE {target} SET {} WHERE {key}", set(&|i| format!("${}", n + i + 1)))
        }
        (ReferentialAction::SetNull, _) => format!("UPDATE {target} SET {} WHERE {key}", set(&|_| "NULL".into())),
        _ => format!("UPDATE {target} SET {} WHERE {key}", set(&|_| "DEFAULT".into())),
    };
    let mut param_types = fk
        .referenced
        .iter()
        .map(|id| table.column_by_id(*id).map(|(_, c)| c.data_type))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| crate::error::Error::new(crate::error::SqlState::InternalError, "a key column is missing"))?;
    let new_key = action == ReferentialAction::Cascade && !deleted;
    if new_key {
        param_types.extend(param_types.clone());
    }
    Ok(Some(ForeignKeyAction { sql, param_types, new_key }))
}

/// A FOREIGN KEY clause of CREATE TABLE or ALTER TABLE, pending: the
/// constraint's name (`CONSTRAINT n` before a column's REFERENCES, or in
/// the clause), its columns (`column` for a column's REFERENCES).
pub(super) fn pending(
    name: Option<&ast::Ident>,
    fk: &ast::ForeignKeyConstraint,
    column: Option<&str>,
) -> ForeignKeyDef {
    let name = name.or(fk.name.as_ref()).map(ident);
    let columns = match column {
        Some(c) => vec![c.to_string()],
        None => fk.columns.iter().map(ident).collect(),
    };
    ForeignKeyDef { name, columns, clause: fk.clone() }
}

/// Resolves a FOREIGN KEY of `table` against the catalog as it is now
/// (ALTER TABLE ADD CONSTRAINT, when it runs).
pub fn resolve_foreign_key(
    txn: &mut dyn Transaction,
    table: &TableDesc,
    def: &ForeignKeyDef,
) -> Result<ForeignKeyDesc> {
    Planner::new(txn, "").foreign_key(table, def)
}

/// Queries for a row of `table` that foreign key `fk` (to `referenced`)
/// refuses (ALTER TABLE ADD CONSTRAINT checks the rows a table has): one
/// for any row whose key columns are all set, then one for such a row
/// that matches nothing, giving its key columns. The second is an
/// anti-join, so the referenced table is read once (hashed), not looked
/// up row by row; the first spares reading it when no row can dangle
/// (pgbench adds its foreign keys to an empty history table).
pub fn dangling_rows_queries(
    table: &TableDesc,
    fk: &ForeignKeyDesc,
    referenced: &TableDesc,
) -> Result<(String, String)> {
    let avoid = [table.name.as_str(), referenced.name.as_str()];
    let own = quote_name(&alias(REFERENCING_ALIAS, &avoid));
    let other = quote_name(&alias(REFERENCED_ALIAS, &avoid));
    let pairs = key_pairs(table, &fk.columns, referenced, &fk.referenced)?;
    // `key_pairs` qualifies the table's own columns by its name; here
    // both sides go by their aliases (the table may reference itself).
    let columns: Vec<String> = fk
        .columns
        .iter()
        .filter_map(|id| table.column_by_id(*id).map(|(_, c)| format!("{own}.{}", quote_name(&c.name))))
        .collect();
    let on: Vec<String> =
        columns.iter().zip(&pairs).map(|(c, (_, column))| format!("{other}.{column} = {c}")).collect();
    let present = columns.iter().map(|c| format!("{c} IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
    let any = format!("SELECT 1 FROM {} AS {own} WHERE {present} LIMIT 1", quote_name(&table.name));
    let dangling = format!(
        "SELECT {} FROM {} AS {own} LEFT JOIN {} AS {other} ON {} WHERE {present} AND {other}.{} IS NULL LIMIT 1",
        columns.join(", "),
        quote_name(&table.name),
        quote_name(&referenced.name),
        on.join(" AND "),
        pairs.first().map(|(_, column)| column.as_str()).unwrap_or("NULL"),
    );
    Ok((any, dangling))
}

/// What a foreign key of `table` adds to the table it references.
pub fn reference_of(table: &TableDesc, fk: &ForeignKeyDesc) -> Reference {
    Reference { table: table.name.clone(), constraint: fk.name.clone() }
}
