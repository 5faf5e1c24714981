//! Schema changes, each in the statement's transaction (see `catalog`).
//!
//! Dropping a table or an index, and TRUNCATE, change only descriptors:
//! a dropped table's or index's ids are never used again, so its pairs
//! are unreachable garbage, which the sweeper deletes later (`sweep`: the
//! statement records a job for the span); TRUNCATE gives the table a new
//! id. CREATE INDEX
//! writes the new index's entries for every row (a backfill) and ALTER
//! TABLE ADD PRIMARY KEY rewrites the rows: outside a transaction block in
//! batches after the statement commits (`backfill`), inside one in the
//! block's transaction (bounded by what one transaction may write). ADD
//! COLUMN rewrites nothing: rows written before it read the column's
//! DEFAULT from the descriptor (`ColumnDesc::missing`). An ALTER TABLE of
//! several operations runs each as an ALTER TABLE of its own, planned
//! once those before it ran, all in the statement's transaction (its
//! backfills and rewrites too, as in a block).
//!
//! # Changing a column's type
//!
//! `ALTER COLUMN c TYPE t` converts every value of `c` to a `t`: by the
//! assignment cast where one exists (`int` to `bigint`, anything to
//! text), else by the explicit cast (`text` to `int`), the cast a
//! `USING c::t` asks for (the only USING taken). Two kinds:
//!
//! - The stored form stays (integers of any width, whose keys all hold
//!   a bigint; `text` and `varchar(n)`): one read of every row checks
//!   that each value fits (`smallint out of range`, `value too long`),
//!   then only the descriptor changes. A row written before reads as the
//!   new type (`layout::decode_row`).
//! - Otherwise the rows move, as for ADD PRIMARY KEY: to a new table id,
//!   each value converted. A column a foreign key uses is refused here,
//!   since the other table's keys would no longer match.
//!
//! The DEFAULT is cast to `t` where it was of a type that does not go
//! into one (`5` becomes `CAST((5) AS text)`); CHECK constraints are
//! bound again, and refuse the change if they no longer mean anything.
//! Departure from PostgreSQL: `USING c::varchar(3)` refuses a longer
//! value (22001) where PostgreSQL cuts it.
//!
//! Every change to an existing table runs after the session drained the
//! table (`catalog`, "Leases"): [`crate::catalog::Drains`] says which drain each table is
//! in, and a change first checks that its table is still in it.

use crate::catalog::{Catalog, FollowUp, ForeignKeyDesc, IndexDesc, TableDesc};
use crate::error::{Error, Result, SqlState};
use crate::exec::Cx;
use crate::plan::{ColumnChange, Expr, Plan};
use crate::planner;
use crate::sink::Sink;
use crate::sql_err;
use crate::sweep;
use crate::types::{DataType, Value};
use crate::write;

/// Runs a DDL plan; returns its command tag.
pub fn run(plan: &Plan, cx: &mut Cx, sink: &mut dyn Sink) -> Result<String> {
    match plan {
        Plan::CreateTable { table, if_not_exists } => {
            let taken = Catalog::table(cx.txn()?, &table.name)?.is_some()
                || crate::sequence::by_name(cx.txn()?, &table.name)?.is_some();
            if taken {
                if *if_not_exists {
                    sink.notice(&format!("relation \"{}\" already exists, skipping", table.name))?;
                    return Ok("CREATE TABLE".into());
                }
                return sql_err!(DuplicateTable, "relation \"{}\" already exists", table.name);
            }
            check_index_names_free(cx, table.indexes.iter().map(|i| i.name.as_str()))?;
            let mut table = table.clone();
            table.id = cx.next_table_id()?;
            Catalog::create_table(cx.txn()?, &table)?;
            cx.drains.owned.insert(table.id);
            // Its references to itself came with it (the planner's).
            let others: Vec<ForeignKeyDesc> =
                table.foreign_keys.iter().filter(|fk| fk.table != table.name).cloned().collect();
            for fk in &others {
                link(cx, &mut table, fk)?;
            }
            Ok("CREATE TABLE".into())
        }
        Plan::DropTable { names, if_exists, cascade } => {
            for name in names {
                match Catalog::table(cx.txn()?, name)? {
                    Some(t) => {
                        if t.view.is_some() {
                            return Err(Error::new(SqlState::WrongObjectType, format!("\"{name}\" is not a table"))
                                .with_hint("Use DROP VIEW to remove a view."));
                        }
                        cx.drains.check(&t)?;
                        let outside = t.referenced_by.iter().filter(|r| !names.contains(&r.table));
                        if *cascade {
                            for r in outside {
                                sink.notice(&format!(
                                    "drop cascades to constraint {} on table {}",
                                    r.constraint, r.table
                                ))?;
                                let mut child = (*table_to_alter(cx, &r.table)?).clone();
                                child.foreign_keys.retain(|fk| fk.name != r.constraint);
                                Catalog::update_table(cx.txn()?, &mut child)?;
                            }
                        } else if let Some(r) = outside.into_iter().next() {
                            return Err(Error::new(
                                SqlState::DependentObjectsStillExist,
                                format!("cannot drop table {name} because other objects depend on it"),
                            )
                            .with_detail(format!(
                                "constraint {} on table {} depends on table {name}",
                                r.constraint, r.table
                            ))
                            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                        }
                        let views = views_reading(cx, name)?.into_iter().filter(|v| !names.contains(&v.name));
                        drop_dependent_views(cx, sink, views.collect(), *cascade, &format!("table {name}"))?;
                        for fk in t.foreign_keys.iter().filter(|fk| !names.contains(&fk.table)) {
                            unlink(cx, &fk.table, &t.name, &fk.name)?;
                        }
                        Catalog::drop_table(cx.txn()?, &t)?;
                        drop_owned_sequences(cx, &t.name, None)?;
                        if let Some(rewrite) = &t.rewrite {
                            // The rows its ADD PRIMARY KEY copied so far.
                            sweep::schedule_table(cx.txn()?, rewrite.id)?;
                        }
                    }
                    None if crate::sequence::by_name(cx.txn()?, name)?.is_some() => {
                        return Err(Error::new(SqlState::WrongObjectType, format!("\"{name}\" is not a table"))
                            .with_hint("Use DROP SEQUENCE to remove a sequence."))
                    }
                    None if *if_exists => sink.notice(&format!("table \"{name}\" does not exist, skipping"))?,
                    None => return sql_err!(UndefinedTable, "table \"{name}\" does not exist"),
                }
            }
            Ok("DROP TABLE".into())
        }
        Plan::CreateView { view, or_replace } => {
            match Catalog::table(cx.txn()?, &view.name)? {
                Some(old) if *or_replace && old.view.is_some() => {
                    cx.drains.check(&old)?;
                    // PostgreSQL's rule: the new query keeps the old
                    // columns (names and types) and may add more.
                    let keeps = old.columns.len() <= view.columns.len()
                        && old
                            .columns
                            .iter()
                            .zip(&view.columns)
                            .all(|(a, b)| a.name == b.name && a.data_type == b.data_type);
                    if !keeps {
                        return sql_err!(InvalidTableDefinition, "cannot change the columns of view \"{}\"", view.name);
                    }
                    let mut desc = TableDesc {
                        id: old.id,
                        version: old.version,
                        drain_epoch: old.drain_epoch,
                        comment: old.comment.clone(),
                        ..view.clone()
                    };
                    Catalog::update_table(cx.txn()?, &mut desc)?;
                }
                Some(_) => return sql_err!(DuplicateTable, "relation \"{}\" already exists", view.name),
                None if crate::sequence::by_name(cx.txn()?, &view.name)?.is_some() => {
                    return sql_err!(DuplicateTable, "relation \"{}\" already exists", view.name)
                }
                None => {
                    let mut view = view.clone();
                    view.id = cx.next_table_id()?;
                    Catalog::create_table(cx.txn()?, &view)?;
                    cx.drains.owned.insert(view.id);
                }
            }
            Ok("CREATE VIEW".into())
        }
        Plan::DropView { names, if_exists, cascade } => {
            for name in names {
                match Catalog::table(cx.txn()?, name)? {
                    Some(v) if v.view.is_some() => {
                        cx.drains.check(&v)?;
                        let views = views_reading(cx, name)?.into_iter().filter(|v| !names.contains(&v.name));
                        drop_dependent_views(cx, sink, views.collect(), *cascade, &format!("view {name}"))?;
                        Catalog::drop_table(cx.txn()?, &v)?
                    }
                    Some(_) => {
                        return Err(Error::new(SqlState::WrongObjectType, format!("\"{name}\" is not a view"))
                            .with_hint("Use DROP TABLE to remove a table."))
                    }
                    None if *if_exists => sink.notice(&format!("view \"{name}\" does not exist, skipping"))?,
                    None => return sql_err!(UndefinedTable, "view \"{name}\" does not exist"),
                }
            }
            Ok("DROP VIEW".into())
        }
        Plan::CreateSequence { sequence, if_not_exists } => {
            if name_taken(cx, &sequence.name)? {
                if *if_not_exists {
                    sink.notice(&format!("relation \"{}\" already exists, skipping", sequence.name))?;
                    return Ok("CREATE SEQUENCE".into());
                }
                return sql_err!(DuplicateTable, "relation \"{}\" already exists", sequence.name);
            }
            let mut sequence = sequence.clone();
            sequence.id = cx.next_table_id()?;
            crate::sequence::create(cx.txn()?, &sequence)?;
            // Its own until it commits (`sequence`, "A sequence of the
            // transaction's own").
            cx.drains.sequences.insert(sequence.id);
            Ok("CREATE SEQUENCE".into())
        }
        Plan::DropSequence { names, if_exists } => {
            for name in names {
                match crate::sequence::by_name(cx.txn()?, name)? {
                    Some(sequence) => {
                        // An identity's sequence: its owner's column says so.
                        let owner = match &sequence.owned_by {
                            Some((table, _)) => Catalog::table(cx.txn()?, table)?,
                            None => None,
                        };
                        let identity = owner.as_deref().and_then(|t| {
                            t.columns.iter().find(|c| c.identity_sequence == Some(sequence.id)).map(|c| (t, c))
                        });
                        if let Some((t, c)) = identity {
                            return Err(Error::new(
                                SqlState::DependentObjectsStillExist,
                                format!(
                                    "cannot drop sequence {name} because column {} of table {} requires it",
                                    c.name, t.name
                                ),
                            )
                            .with_hint(format!("You can drop column {} of table {} instead.", c.name, t.name)));
                        }
                        crate::sequence::drop(cx.txn()?, &sequence)?;
                        cx.drains.sequences.insert(sequence.id);
                    }
                    None if Catalog::table(cx.txn()?, name)?.is_some() => {
                        return sql_err!(WrongObjectType, "\"{name}\" is not a sequence")
                    }
                    None if *if_exists => sink.notice(&format!("sequence \"{name}\" does not exist, skipping"))?,
                    None => return sql_err!(UndefinedTable, "sequence \"{name}\" does not exist"),
                }
            }
            Ok("DROP SEQUENCE".into())
        }
        Plan::Unchanged { tag, notice } => {
            if let Some(notice) = notice {
                sink.notice(notice)?;
            }
            Ok(tag.to_string())
        }
        Plan::AlterSequence { name, given, restart, owned_by, if_exists } => {
            let Some(sequence) = crate::sequence::by_name(cx.txn()?, name)? else {
                if Catalog::table(cx.txn()?, name)?.is_some() {
                    return sql_err!(WrongObjectType, "\"{name}\" is not a sequence");
                }
                if *if_exists {
                    sink.notice(&format!("relation \"{name}\" does not exist, skipping"))?;
                    return Ok("ALTER SEQUENCE".into());
                }
                return sql_err!(UndefinedTable, "relation \"{name}\" does not exist");
            };
            let mut owner = None;
            if let Some(Some((table, column))) = owned_by {
                let Some(desc) = Catalog::table(cx.txn()?, table)? else {
                    return sql_err!(UndefinedTable, "relation \"{table}\" does not exist");
                };
                let Some((_, c)) = desc.column(column).filter(|(_, c)| !c.hidden) else {
                    return sql_err!(UndefinedColumn, "column \"{column}\" of relation \"{table}\" does not exist");
                };
                owner = Some(Some((desc.name.clone(), c.id)));
            } else if let Some(None) = owned_by {
                owner = Some(None);
            }
            crate::sequence::alter(cx.txn()?, &sequence, given, *restart, owner)?;
            // The transaction's own from here: its nextval and setval run
            // in it (`sequence`, "A sequence of the transaction's own").
            cx.drains.sequences.insert(sequence.id);
            Ok("ALTER SEQUENCE".into())
        }
        Plan::Comment { table, column, comment } => {
            let mut desc = (*Catalog::must_table(cx.txn()?, table)?).clone();
            cx.drains.check(&desc)?;
            // A rewrite's switch would put back the descriptor it began
            // with (55006, as for any change meanwhile).
            desc.check_writable()?;
            match column {
                None => desc.comment.clone_from(comment),
                Some(column) => match desc.columns.iter_mut().find(|c| c.name == *column && !c.hidden) {
                    Some(c) => c.comment.clone_from(comment),
                    None => {
                        return sql_err!(UndefinedColumn, "column \"{column}\" of relation \"{table}\" does not exist")
                    }
                },
            }
            Catalog::update_table(cx.txn()?, &mut desc)?;
            Ok("COMMENT".into())
        }
        Plan::CreateIndex { table, index, if_not_exists } => {
            let mut desc = (*Catalog::must_table(cx.txn()?, table)?).clone();
            cx.drains.check(&desc)?;
            if name_taken(cx, &index.name)? {
                if *if_not_exists {
                    sink.notice(&format!("relation \"{}\" already exists, skipping", index.name))?;
                    return Ok("CREATE INDEX".into());
                }
                return sql_err!(DuplicateTable, "relation \"{}\" already exists", index.name);
            }
            desc.check_writable()?;
            let index = IndexDesc { id: desc.allocate_index_id()?, ..index.clone() };
            if cx.batch_schema_changes {
                // Write-only now; filled in batches after this commits,
                // then public (`backfill`).
                cx.followup = Some(FollowUp::Backfill { table: desc.id, index: index.id });
                desc.indexes.push(IndexDesc { write_only: true, ..index });
            } else {
                write::backfill_index(&desc, &index, cx)?;
                desc.indexes.push(index);
            }
            Catalog::update_table(cx.txn()?, &mut desc)?;
            Ok("CREATE INDEX".into())
        }
        Plan::DropIndex { names, if_exists } => {
            for name in names {
                match table_of_drained_index(cx, name)? {
                    Some((table, id)) => {
                        cx.drains.check(&table)?;
                        table.check_writable()?;
                        // A foreign key needs a unique index (or the primary
                        // key) on the columns it references: this one, if no
                        // other serves.
                        for (child, fk) in referencing_keys(cx, &table)? {
                            let needed = table.unique_key_on(&fk.referenced, None).is_some_and(|i| i.id == id)
                                && table.unique_key_on(&fk.referenced, Some(id)).is_none();
                            if needed {
                                return Err(dependent_constraint(&format!("index {name}"), &fk.name, &child));
                            }
                        }
                        let mut desc = (*table).clone();
                        desc.indexes.retain(|i| i.id != id);
                        Catalog::update_table(cx.txn()?, &mut desc)?;
                        sweep::schedule_index(cx.txn()?, desc.id, id)?;
                    }
                    None if *if_exists => sink.notice(&format!("index \"{name}\" does not exist, skipping"))?,
                    None => {
                        if all_tables(cx)?.iter().any(|t| t.primary.name == *name) {
                            return sql_err!(FeatureNotSupported, "cannot drop the primary key index \"{name}\"");
                        }
                        return sql_err!(UndefinedObject, "index \"{name}\" does not exist");
                    }
                }
            }
            Ok("DROP INDEX".into())
        }
        Plan::AddColumn { table, column, unique, if_not_exists } => {
            let old = table_to_alter(cx, table)?;
            if old.column(&column.name).is_some() {
                if *if_not_exists {
                    sink.notice(&format!(
                        "column \"{}\" of relation \"{table}\" already exists, skipping",
                        column.name
                    ))?;
                    return Ok("ALTER TABLE".into());
                }
                return sql_err!(DuplicateColumn, "column \"{}\" of relation \"{table}\" already exists", column.name);
            }
            let mut desc = (*old).clone();
            let mut column = crate::catalog::ColumnDesc { id: desc.next_column_id, ..column.clone() };
            desc.next_column_id += 1;
            // Existing rows get the default, evaluated once, without a
            // rewrite (`ColumnDesc::missing`); a NOT NULL column without
            // one needs the table empty.
            let default = match &column.default {
                Some(text) => {
                    let e = crate::parser::parse_expr(text)?;
                    let bound = planner::bind_constant(cx.txn()?, text, &e, column.data_type)?;
                    let mut volatile = false;
                    bound.walk(&mut |x| {
                        volatile |= matches!(x, Expr::Function(name, _) if !crate::optimizer::is_immutable(name))
                    });
                    // One value would go to every existing row: a SERIAL
                    // column's would all be equal (PostgreSQL rewrites
                    // the table, a value per row).
                    if volatile && write::has_rows(&old, cx)? {
                        return sql_err!(
                            FeatureNotSupported,
                            "ADD COLUMN \"{}\" with a volatile default ({text}) to a table with rows is not supported",
                            column.name
                        );
                    }
                    crate::exec::eval(&bound, &[], cx)?
                }
                None => Value::Null,
            };
            let default = if default.is_null() { default } else { crate::ops::assign(&default, column.data_type)? };
            if default.is_null() && !column.nullable && write::has_rows(&old, cx)? {
                return sql_err!(
                    NotNullViolation,
                    "column \"{}\" of relation \"{table}\" contains null values",
                    column.name
                );
            }
            if !default.is_null() {
                column.missing = Some(crate::encoding::encode_row(&[(column.id, &default)]));
            }
            // Before the hidden row id, if any (so SELECT * order holds).
            let at = desc.columns.iter().position(|c| c.hidden).unwrap_or(desc.columns.len());
            desc.columns.insert(at, column.clone());
            if *unique {
                let index = IndexDesc {
                    id: desc.allocate_index_id()?,
                    name: format!("{table}_{}_key", column.name),
                    unique: true,
                    columns: vec![(column.id, crate::encoding::Direction::Asc)],
                    write_only: false,
                };
                check_index_names_free(cx, std::iter::once(index.name.as_str()))?;
                write::backfill_index(&desc, &index, cx)?;
                desc.indexes.push(index);
            }
            Catalog::update_table(cx.txn()?, &mut desc)?;
            Ok("ALTER TABLE".into())
        }
        Plan::DropColumn { table, column, if_exists, cascade } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            let Some((_, col)) = desc.column(column).filter(|(_, c)| !c.hidden) else {
                if *if_exists {
                    sink.notice(&format!("column \"{column}\" of relation \"{table}\" does not exist, skipping"))?;
                    return Ok("ALTER TABLE".into());
                }
                return sql_err!(UndefinedColumn, "column \"{column}\" of relation \"{table}\" does not exist");
            };
            let id = col.id;
            if desc.primary.columns.iter().any(|(c, _)| *c == id) {
                return sql_err!(FeatureNotSupported, "cannot drop column \"{column}\": it is part of the primary key");
            }
            if let Some((child, fk)) =
                referencing_keys(cx, &desc)?.into_iter().find(|(_, fk)| fk.referenced.contains(&id))
            {
                return Err(dependent_constraint(&format!("column {column} of table {table}"), &fk.name, &child));
            }
            // Foreign keys on the column go with it, as in PostgreSQL.
            let (gone_keys, kept_keys) = desc.foreign_keys.into_iter().partition(|fk| fk.columns.contains(&id));
            desc.foreign_keys = kept_keys;
            for fk in gone_keys {
                unlink_key(cx, &mut desc, &fk)?;
            }
            // Indexes on the column go with it (PostgreSQL does the same).
            let (gone, kept) = desc.indexes.into_iter().partition(|i| i.columns.iter().any(|(c, _)| *c == id));
            desc.indexes = kept;
            desc.checks.retain(|c| !c.columns.contains(&id));
            drop_owned_sequences(cx, &desc.name, Some(id))?;
            desc.columns.retain(|c| c.id != id);
            let views = views_reading(cx, table)?;
            Catalog::update_table(cx.txn()?, &mut desc)?;
            // The views that read the column are those that no longer plan
            // (a view is kept as its query's text).
            // (Only a binding error, class 42, says so: a failed read or a
            // cancel is the statement's to report.)
            let mut dependent = Vec::new();
            for view in views {
                match planner::view_tables(cx.txn()?, &view) {
                    Ok(_) => {}
                    Err(e) if is_binding_error(&e) => dependent.push(view),
                    Err(e) => return Err(e),
                }
            }
            drop_dependent_views(cx, sink, dependent, *cascade, &format!("column {column} of table {table}"))?;
            for index in gone {
                sweep::schedule_index(cx.txn()?, desc.id, index.id)?;
            }
            Ok("ALTER TABLE".into())
        }
        Plan::AlterTableSteps { steps } => {
            // In the statement's transaction, as in a block: one step's
            // batches after the commit would leave the others' undone.
            let batch = std::mem::replace(&mut cx.batch_schema_changes, false);
            let ran = steps.iter().try_for_each(|step| {
                let sql = step.to_string();
                let plan = planner::Planner::new(cx.txn()?, &sql).plan(step)?;
                run(&plan, cx, sink).map(drop)
            });
            cx.batch_schema_changes = batch;
            ran?;
            Ok("ALTER TABLE".into())
        }
        Plan::AlterColumn { table, column, change } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            let Some((position, col)) = desc.column(column).filter(|(_, c)| !c.hidden) else {
                return sql_err!(UndefinedColumn, "column \"{column}\" of relation \"{table}\" does not exist");
            };
            let id = col.id;
            match change {
                ColumnChange::Default(default) => desc.columns[position].default = default.clone(),
                ColumnChange::NotNull(false) => {
                    if desc.primary.columns.iter().any(|(c, _)| *c == id) {
                        return sql_err!(InvalidTableDefinition, "column \"{column}\" is in a primary key");
                    }
                    desc.columns[position].nullable = true;
                }
                ColumnChange::Type { to, default } => {
                    change_column_type(cx, desc, position, *to, default.clone())?;
                    return Ok("ALTER TABLE".into());
                }
                ColumnChange::AddIdentity { always, options } => {
                    let col = &desc.columns[position];
                    let prerequisite = |what: &str| {
                        Error::new(
                            SqlState::ObjectNotInPrerequisiteState,
                            format!("column \"{column}\" of relation \"{table}\" {what}"),
                        )
                    };
                    if !matches!(col.data_type, DataType::Int2 | DataType::Int4 | DataType::Int8) {
                        return sql_err!(
                            InvalidParameterValue,
                            "identity column type must be smallint, integer, or bigint"
                        );
                    }
                    if col.nullable {
                        return Err(prerequisite("must be declared NOT NULL before identity can be added"));
                    }
                    if col.identity_always || col.identity_sequence.is_some() {
                        return Err(prerequisite("is already an identity column"));
                    }
                    if col.default.is_some() {
                        return Err(prerequisite("already has a default value"));
                    }
                    let name = crate::parser::identity_sequence_name(table, column);
                    if name_taken(cx, &name)? {
                        return sql_err!(DuplicateTable, "relation \"{name}\" already exists");
                    }
                    let options = crate::sequence::Options {
                        data_type: options.data_type.or(Some(col.data_type)),
                        ..options.clone()
                    };
                    let mut sequence = crate::sequence::SequenceDesc::new(&name, &options)?;
                    sequence.id = cx.next_table_id()?;
                    sequence.owned_by = Some((desc.name.clone(), col.id));
                    crate::sequence::create(cx.txn()?, &sequence)?;
                    cx.drains.sequences.insert(sequence.id);
                    let col = &mut desc.columns[position];
                    col.default = Some(format!("nextval('{name}')"));
                    col.identity_always = *always;
                    col.identity_sequence = Some(sequence.id);
                }
                ColumnChange::NotNull(true) => {
                    if write::has_null(&desc, position, cx)? {
                        return sql_err!(
                            NotNullViolation,
                            "column \"{column}\" of relation \"{table}\" contains null values"
                        );
                    }
                    desc.columns[position].nullable = false;
                }
            }
            Catalog::update_table(cx.txn()?, &mut desc)?;
            Ok("ALTER TABLE".into())
        }
        Plan::AddPrimaryKey { table, columns } => {
            let old = table_to_alter(cx, table)?;
            if !old.has_hidden_rowid() {
                return sql_err!(InvalidTableDefinition, "multiple primary keys for table \"{table}\" are not allowed");
            }
            let mut desc: TableDesc = (*old).clone();
            let hidden = desc.columns.iter().position(|c| c.hidden).expect("has a row id");
            desc.columns.remove(hidden);
            desc.primary.columns = planner::resolve_index_columns(&desc, columns)?;
            for (id, _) in desc.primary.columns.clone() {
                if let Some(c) = desc.columns.iter_mut().find(|c| c.id == id) {
                    c.nullable = false;
                }
            }
            rewrite(cx, &old, desc)?;
            Ok("ALTER TABLE".into())
        }
        Plan::Truncate { tables, cascade } => {
            let mut tables = tables.clone();
            if *cascade {
                for name in Catalog::referencing_closure(cx.txn()?, &tables)? {
                    sink.notice(&format!("truncate cascades to table \"{name}\""))?;
                    tables.push(name);
                }
            }
            for name in &tables {
                let old = table_to_alter(cx, name)?;
                if let Some(r) = old.referenced_by.iter().find(|r| !tables.contains(&r.table)) {
                    return Err(Error::new(
                        SqlState::FeatureNotSupported,
                        "cannot truncate a table referenced in a foreign key constraint",
                    )
                    .with_detail(format!("Table \"{}\" references \"{name}\".", r.table))
                    .with_hint(format!(
                        "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                        r.table
                    )));
                }
                let mut desc = (*old).clone();
                desc.id = cx.next_table_id()?;
                desc.version += 1;
                desc.draining = false;
                cx.drains.owned.insert(desc.id);
                Catalog::drop_table(cx.txn()?, &old)?;
                Catalog::create_table(cx.txn()?, &desc)?;
            }
            Ok("TRUNCATE TABLE".into())
        }
        Plan::AddForeignKey { table, foreign_key } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            let fk = planner::resolve_foreign_key(cx.txn()?, &desc, foreign_key)?;
            let referenced = match fk.table == desc.name {
                true => desc.clone(),
                // Checked, and drained, as a table it changes.
                false => (*table_to_alter(cx, &fk.table)?).clone(),
            };
            desc.foreign_keys.push(fk.clone());
            if let Some(row) = first_dangling(cx, &desc, &fk, &referenced)? {
                return Err(Error::new(
                    SqlState::ForeignKeyViolation,
                    format!("insert or update on table \"{table}\" violates foreign key constraint \"{}\"", fk.name),
                )
                .with_detail(format!("Key {row} is not present in table \"{}\".", fk.table)));
            }
            link(cx, &mut desc, &fk)?;
            Catalog::update_table(cx.txn()?, &mut desc)?;
            Ok("ALTER TABLE".into())
        }
        Plan::AddCheck { table, name, expr } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            planner::add_table_checks(cx.txn()?, &mut desc, vec![(name.clone(), expr.clone())])?;
            let Some(check) = desc.checks.last() else {
                return sql_err!(InternalError, "the CHECK constraint was not added");
            };
            let sql = format!("SELECT 1 FROM {} WHERE NOT ({}) LIMIT 1", crate::parser::quote_name(table), check.expr);
            if !run_query(cx, &sql)?.is_empty() {
                return sql_err!(
                    CheckViolation,
                    "check constraint \"{}\" of relation \"{table}\" is violated by some row",
                    check.name
                );
            }
            Catalog::update_table(cx.txn()?, &mut desc)?;
            Ok("ALTER TABLE".into())
        }
        Plan::RenameTable { table, to } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            if name_taken(cx, to)? {
                return sql_err!(DuplicateTable, "relation \"{to}\" already exists");
            }
            if let Some(view) = views_reading(cx, table)?.first().map(|v| v.name.clone()) {
                return sql_err!(
                    FeatureNotSupported,
                    "cannot rename table \"{table}\": view \"{view}\" reads it (a view is stored as its query's \
                     text); drop the view first"
                );
            }
            let renamed = |name: &mut String| {
                if name == table {
                    name.clone_from(to);
                }
            };
            // Its foreign keys' other tables name it (the statement drained
            // them); its own may name it too.
            let parents: Vec<String> = desc.foreign_keys.iter().map(|fk| fk.table.clone()).collect();
            let children: Vec<String> = desc.referenced_by.iter().map(|r| r.table.clone()).collect();
            for other in parents.iter().chain(&children).filter(|n| *n != table) {
                let mut linked = (*Catalog::must_table(cx.txn()?, other)?).clone();
                cx.drains.check(&linked)?;
                linked.referenced_by.iter_mut().for_each(|r| renamed(&mut r.table));
                linked.foreign_keys.iter_mut().for_each(|fk| renamed(&mut fk.table));
                Catalog::update_table(cx.txn()?, &mut linked)?;
            }
            desc.referenced_by.iter_mut().for_each(|r| renamed(&mut r.table));
            desc.foreign_keys.iter_mut().for_each(|fk| renamed(&mut fk.table));
            for check in &mut desc.checks {
                check.expr = crate::parser::rename_identifiers(&check.expr, |name, _, qualifier| {
                    (qualifier && name == table).then(|| to.clone())
                })?;
            }
            // The sequences its columns own name it.
            for sequence in crate::sequence::all(cx.txn()?)? {
                if let Some((_, column)) = sequence.owned_by.clone().filter(|(owner, _)| owner == table) {
                    crate::sequence::set_owner(cx.txn()?, &sequence, Some((to.clone(), column)))?;
                }
            }
            Catalog::rename_table(cx.txn()?, &mut desc, to)?;
            planner::bind_table_checks(cx.txn()?, &desc)?;
            Ok("ALTER TABLE".into())
        }
        Plan::RenameColumn { table, column, to } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            let Some((position, _)) = desc.column(column).filter(|(_, c)| !c.hidden) else {
                return sql_err!(UndefinedColumn, "column \"{column}\" does not exist");
            };
            if desc.column(to).is_some() {
                return sql_err!(DuplicateColumn, "column \"{to}\" of relation \"{table}\" already exists");
            }
            let views = views_reading(cx, table)?;
            desc.columns[position].name.clone_from(to);
            for check in &mut desc.checks {
                check.expr = crate::parser::rename_identifiers(&check.expr, |name, before, call| {
                    let ours = before.is_none_or(|t| t == table);
                    (name == column && ours && !call).then(|| to.clone())
                })?;
            }
            Catalog::update_table(cx.txn()?, &mut desc)?;
            if let Err(e) = planner::bind_table_checks(cx.txn()?, &desc) {
                return sql_err!(
                    FeatureNotSupported,
                    "cannot rename column \"{column}\": a CHECK constraint reads it: {e}"
                );
            }
            for view in views {
                if planner::view_tables(cx.txn()?, &view).is_err() {
                    return sql_err!(
                        FeatureNotSupported,
                        "cannot rename column \"{column}\" of table \"{table}\": view \"{}\" reads it (a view is \
                         stored as its query's text); drop the view first",
                        view.name
                    );
                }
            }
            Ok("ALTER TABLE".into())
        }
        Plan::DropConstraint { table, name, if_exists } => {
            let mut desc = (*table_to_alter(cx, table)?).clone();
            if let Some(at) = desc.checks.iter().position(|c| c.name == *name) {
                desc.checks.remove(at);
                Catalog::update_table(cx.txn()?, &mut desc)?;
            } else if let Some(at) = desc.foreign_keys.iter().position(|f| f.name == *name) {
                let fk = desc.foreign_keys.remove(at);
                unlink_key(cx, &mut desc, &fk)?;
                Catalog::update_table(cx.txn()?, &mut desc)?;
            } else if desc.primary.name == *name || desc.indexes.iter().any(|i| i.name == *name) {
                return sql_err!(
                    FeatureNotSupported,
                    "dropping a primary key or unique constraint is not supported; DROP INDEX drops a unique index"
                );
            } else if *if_exists {
                sink.notice(&format!("constraint \"{name}\" of relation \"{table}\" does not exist, skipping"))?;
            } else {
                return sql_err!(UndefinedObject, "constraint \"{name}\" of relation \"{table}\" does not exist");
            }
            Ok("ALTER TABLE".into())
        }
        other => Err(Error::new(SqlState::InternalError, format!("not a schema change: {other:?}"))),
    }
}

/// The table with index `name` and the index's id, among the tables the
/// statement's drains cover (the drain before it found the index's table,
/// `Session::drain`) or its transaction owns (created or changed there),
/// read in its transaction. Reading only those, not every descriptor,
/// leaves a block's other tables unlocked: a later schema change of one
/// drains it in a transaction of its own, which would wait for the
/// block's lock on its descriptor while the block waits for the drain.
fn table_of_drained_index(cx: &mut Cx, name: &str) -> Result<Option<(std::sync::Arc<TableDesc>, u32)>> {
    for id in cx.drains.own() {
        if let Some(table) = Catalog::table_by_id(cx.txn()?, id)? {
            if let Some(index) = table.indexes.iter().find(|i| i.name == name) {
                let id = index.id;
                return Ok(Some((table, id)));
            }
        }
    }
    Ok(None)
}

/// The key of a row of `table` that `fk` refuses, shown as PostgreSQL's
/// DETAIL shows it, if there is one.
fn first_dangling(
    cx: &mut Cx,
    table: &TableDesc,
    fk: &ForeignKeyDesc,
    referenced: &TableDesc,
) -> Result<Option<String>> {
    let (any, dangling) = planner::dangling_rows_queries(table, fk, referenced)?;
    if run_query(cx, &any)?.is_empty() {
        return Ok(None);
    }
    Ok(run_query(cx, &dangling)?.first().map(|row| {
        let names: Vec<&str> =
            fk.columns.iter().filter_map(|id| table.column_by_id(*id).map(|(_, c)| c.name.as_str())).collect();
        let values: Vec<String> = row.iter().map(|v| crate::ops::to_text(v).unwrap_or_else(|| "null".into())).collect();
        format!("({})=({})", names.join(", "), values.join(", "))
    }))
}

/// The first row of a query a schema change runs for itself.
fn run_query(cx: &mut Cx, sql: &str) -> Result<Vec<crate::types::Row>> {
    let (Plan::Query(query), _) = planner::plan_internal(cx.txn()?, sql, &[])? else {
        return sql_err!(InternalError, "not a query: {sql}");
    };
    crate::exec::collect(&query.root, cx, 1)
}

/// The views whose queries read `table` (directly or through other
/// views), as they plan now; a view that no longer binds reads nothing.
fn views_reading(cx: &mut Cx, table: &str) -> Result<Vec<std::sync::Arc<TableDesc>>> {
    let mut out = Vec::new();
    let views: Vec<_> = all_tables(cx)?.into_iter().filter(|t| t.view.is_some()).collect();
    if views.is_empty() {
        return Ok(out);
    }
    // Planned as `all_tables` reads: a view of the transaction's own in
    // its transaction, any other against the committed catalog, without
    // locking the tables it reads.
    let own = cx.drains.own();
    let mut snapshot = match cx.engine.clone() {
        Some(engine) => Some(engine.begin(crate::kv::Mode::ReadOnly)?),
        None => None,
    };
    for view in views {
        let used = match snapshot.as_mut() {
            Some(snapshot) if !own.contains(&view.id) => planner::view_tables(snapshot.as_mut(), &view),
            _ => planner::view_tables(cx.txn()?, &view),
        };
        match used {
            Ok(used) if used.iter().any(|t| t == table) => out.push(view),
            Ok(_) => {}
            // A view that no longer binds (class 42) reads nothing; a
            // failed read or a cancel is the statement's to report.
            Err(e) if is_binding_error(&e) => {}
            Err(e) => {
                if let Some(snapshot) = snapshot {
                    let _ = snapshot.rollback();
                }
                return Err(e);
            }
        }
    }
    if let Some(snapshot) = snapshot {
        let _ = snapshot.rollback();
    }
    Ok(out)
}

/// Adds foreign key `fk` of `desc` (which the caller writes) to the
/// references of the table it references (drained: a table the change
/// changes).
fn link(cx: &mut Cx, desc: &mut TableDesc, fk: &ForeignKeyDesc) -> Result<()> {
    let reference = planner::reference_of(desc, fk);
    if fk.table == desc.name {
        desc.referenced_by.push(reference);
        return Ok(());
    }
    let mut referenced = (*table_to_alter(cx, &fk.table)?).clone();
    referenced.referenced_by.push(reference);
    Catalog::update_table(cx.txn()?, &mut referenced)
}

/// Removes foreign key `fk` of `desc` (which the caller writes) from the
/// references of the table it referenced.
fn unlink_key(cx: &mut Cx, desc: &mut TableDesc, fk: &ForeignKeyDesc) -> Result<()> {
    if fk.table == desc.name {
        let name = desc.name.clone();
        desc.referenced_by.retain(|r| !(r.table == name && r.constraint == fk.name));
        return Ok(());
    }
    unlink(cx, &fk.table, &desc.name, &fk.name)
}

/// Removes foreign key `constraint` of table `referencing` from the
/// references of table `referenced` (which the statement drained).
fn unlink(cx: &mut Cx, referenced: &str, referencing: &str, constraint: &str) -> Result<()> {
    let mut desc = (*Catalog::must_table(cx.txn()?, referenced)?).clone();
    cx.drains.check(&desc)?;
    desc.referenced_by.retain(|r| !(r.table == referencing && r.constraint == constraint));
    Catalog::update_table(cx.txn()?, &mut desc)
}

/// The foreign keys referencing `table`, each with its table's name.
fn referencing_keys(cx: &mut Cx, table: &TableDesc) -> Result<Vec<(String, ForeignKeyDesc)>> {
    let mut keys = Vec::new();
    if table.referenced_by.is_empty() {
        return Ok(keys);
    }
    // The children as `all_tables` reads them, without locking them (a
    // later change of one in the block drains it first). A key added or
    // dropped meanwhile changes `table`'s own list, read under lock.
    let tables = all_tables(cx)?;
    for r in &table.referenced_by {
        let child = match r.table == table.name {
            true => std::sync::Arc::new(table.clone()),
            false => match tables.iter().find(|t| t.name == r.table) {
                Some(child) => child.clone(),
                None => return sql_err!(UndefinedTable, "relation \"{}\" does not exist", r.table),
            },
        };
        keys.extend(child.foreign_keys.iter().filter(|f| f.name == r.constraint).map(|f| (r.table.clone(), f.clone())));
    }
    Ok(keys)
}

/// 2BP01: `what` cannot go while a foreign key needs it.
fn dependent_constraint(what: &str, constraint: &str, table: &str) -> Error {
    Error::new(SqlState::DependentObjectsStillExist, format!("cannot drop {what} because other objects depend on it"))
        .with_detail(format!("constraint {constraint} on table {table} depends on {what}"))
        .with_hint("Drop the constraint first (ALTER TABLE ... DROP CONSTRAINT).")
}

/// Whether planning a view failed because its query no longer binds
/// (class 42: a column or table gone, a type that no longer fits), not
/// for a failed read or a cancel.
pub(crate) fn is_binding_error(e: &Error) -> bool {
    e.state.code().starts_with("42")
}

/// Drops `views`, which read what a statement drops (`what`: "table t"),
/// with CASCADE; without it, refuses (2BP01) if there are any, as
/// PostgreSQL does.
fn drop_dependent_views(
    cx: &mut Cx,
    sink: &mut dyn Sink,
    views: Vec<std::sync::Arc<TableDesc>>,
    cascade: bool,
    what: &str,
) -> Result<()> {
    let Some(first) = views.first() else { return Ok(()) };
    if !cascade {
        return Err(Error::new(
            SqlState::DependentObjectsStillExist,
            format!("cannot drop {what} because other objects depend on it"),
        )
        .with_detail(format!("view {} depends on {what}", first.name))
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    for view in views {
        // (One an earlier name of the statement dropped is gone.)
        let Some(current) = Catalog::table(cx.txn()?, &view.name)?.filter(|v| v.id == view.id) else { continue };
        cx.drains.check(&current)?;
        sink.notice(&format!("drop cascades to view {}", view.name))?;
        Catalog::drop_table(cx.txn()?, &current)?;
    }
    Ok(())
}

/// Whether a table or index already has `name` (they share a namespace).
fn name_taken(cx: &mut Cx, name: &str) -> Result<bool> {
    if Catalog::table(cx.txn()?, name)?.is_some() || crate::sequence::by_name(cx.txn()?, name)?.is_some() {
        return Ok(true);
    }
    Ok(all_tables(cx)?.iter().any(|t| t.primary.name == name || t.indexes.iter().any(|i| i.name == name)))
}

/// Every table and view, for a schema change that must look them all
/// over (is an index name free? which views read a table?) without
/// locking them ([`Catalog::tables_without_locks`]).
fn all_tables(cx: &mut Cx) -> Result<Vec<std::sync::Arc<TableDesc>>> {
    match cx.engine.clone() {
        Some(engine) => {
            let own = cx.drains.own();
            Catalog::tables_without_locks(engine.as_ref(), cx.txn()?, &own)
        }
        None => Catalog::tables(cx.txn()?),
    }
}

fn check_index_names_free<'a>(cx: &mut Cx, names: impl Iterator<Item = &'a str>) -> Result<()> {
    for name in names {
        if name_taken(cx, name)? {
            return sql_err!(DuplicateTable, "relation \"{name}\" already exists");
        }
    }
    Ok(())
}

/// Makes `desc` (a change of `old` that moves its rows: a new primary
/// key, a column's new type) the table: outside a transaction block its
/// rows are copied in batches after this commits, writers refused
/// meanwhile, then switched to (`backfill`); inside one, in the block's
/// transaction.
fn rewrite(cx: &mut Cx, old: &TableDesc, mut desc: TableDesc) -> Result<()> {
    if cx.batch_schema_changes {
        desc.id = cx.next_table_id()?;
        desc.version = 1;
        desc.draining = false;
        let mut old = old.clone();
        old.rewrite = Some(Box::new(desc));
        cx.followup = Some(FollowUp::Rewrite { table: old.id });
        return Catalog::update_table(cx.txn()?, &mut old);
    }
    let checks = planner::bind_table_checks(cx.txn()?, &desc)?;
    write::rewrite_table(old, &desc, &checks, cx)?;
    Catalog::update_table(cx.txn()?, &mut desc)
}

/// ALTER COLUMN ... TYPE (module docs, "Changing a column's type"):
/// column `position` of `desc` becomes a `to`, with DEFAULT `default`.
fn change_column_type(
    cx: &mut Cx,
    mut desc: TableDesc,
    position: usize,
    to: DataType,
    default: Option<String>,
) -> Result<()> {
    let old = desc.clone();
    let col = &old.columns[position];
    if col.data_type == to {
        return Ok(());
    }
    if let Some(view) = views_reading(cx, &old.name)?.first() {
        return sql_err!(
            FeatureNotSupported,
            "cannot alter type of column \"{}\": view \"{}\" reads table \"{}\" (a view is stored as its query's \
             text); drop the view first",
            col.name,
            view.name,
            old.name
        );
    }
    let in_a_key =
        std::iter::once(&old.primary).chain(&old.indexes).any(|i| i.columns.iter().any(|(c, _)| *c == col.id));
    if in_a_key {
        planner::check_key_type(&col.name, to)?;
    }
    desc.columns[position].data_type = to;
    desc.columns[position].default = default;
    // A CHECK constraint must still mean something (PostgreSQL: 42883
    // for `c > 0` once `c` is text).
    planner::bind_table_checks(cx.txn()?, &desc)?;
    // Every value must fit; if none changes, rows read as the new type
    // as they are (`layout::decode_row`).
    if keeps_stored_form(col.data_type, to) && write::converts_in_place(&old, position, to, cx)? {
        Catalog::update_table(cx.txn()?, &mut desc)?;
    } else {
        let keyed = old.foreign_keys.iter().any(|fk| fk.columns.contains(&col.id))
            || (!old.referenced_by.is_empty()
                && std::iter::once(&old.primary)
                    .chain(old.indexes.iter().filter(|i| i.unique))
                    .any(|i| i.columns.iter().any(|(c, _)| *c == col.id)));
        if keyed {
            return sql_err!(
                FeatureNotSupported,
                "cannot alter type of column \"{}\" from {} to {}: a foreign key uses it (only changes between \
                 integer types, or between text types, keep a foreign key)",
                col.name,
                col.data_type,
                to
            );
        }
        // Every row is written whole to the new table.
        desc.columns[position].missing = None;
        rewrite(cx, &old, desc)?;
    }
    Ok(())
}

/// Whether a value of type `from` is stored as a `to` would be, byte for
/// byte in keys: integers of any width (keys hold every integer as a
/// bigint) and text of any length (not `char(n)`, which pads). Such a
/// change rewrites no row, unless converting changes a value (blanks cut
/// to fit a `varchar(n)`).
fn keeps_stored_form(from: DataType, to: DataType) -> bool {
    let text = |t: DataType| matches!(t, DataType::Text | DataType::Varchar(_));
    (from.is_integer() && to.is_integer()) || (text(from) && text(to))
}

/// The table `name` for a change of its schema or rows that only a
/// table may take: it must exist, be no view, be out of any other
/// change's drain, and not be in the middle of a rewrite.
fn table_to_alter(cx: &mut Cx, name: &str) -> Result<std::sync::Arc<TableDesc>> {
    let table = Catalog::must_table(cx.txn()?, name)?;
    cx.drains.check(&table)?;
    table.check_table()?;
    table.check_writable()?;
    Ok(table)
}

/// Drops the sequences table `table`'s columns own (`OWNED BY`, an
/// identity's), or only column `column`'s: the column or its table is
/// being dropped, as PostgreSQL drops them.
fn drop_owned_sequences(cx: &mut Cx, table: &str, column: Option<u32>) -> Result<()> {
    let owned = |s: &crate::sequence::SequenceDesc| {
        s.owned_by.as_ref().is_some_and(|(t, c)| t == table && column.is_none_or(|column| column == *c))
    };
    for sequence in crate::sequence::all(cx.txn()?)?.into_iter().filter(owned) {
        crate::sequence::drop(cx.txn()?, &sequence)?;
        cx.drains.sequences.insert(sequence.id);
    }
    Ok(())
}
