//! Parsing: sqlparser's PostgreSQL dialect, plus what it does not know.
//!
//! sqlparser does not parse CockroachDB's `AS OF SYSTEM TIME <expr>`, so
//! it is cut out of the token stream first (tokens keep their positions,
//! so errors still point into the original text) and handed back beside
//! the statement:
//!
//! ```text
//!   SELECT * FROM t AS OF SYSTEM TIME '-10s' WHERE k = 1
//!   -> statement: SELECT * FROM t WHERE k = 1
//!      as_of:     '-10s'
//! ```
//!
//! Text is split into statements at top-level semicolons, each with its
//! own clause.

use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Word};

use crate::error::{Error, Result, SqlState};
use crate::limits;
use crate::sql_err;

/// How far sqlparser may recurse (its own guard against deep nesting).
const RECURSION_LIMIT: usize = 200;

/// A parsed statement and its `AS OF SYSTEM TIME` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub statement: ast::Statement,
    /// The clause's expression (a string, a number, or a
    /// `with_max_staleness('10s')` call), unevaluated.
    pub as_of: Option<ast::Expr>,
    /// A `MOVE`: the statement is the FETCH that moves the cursor the
    /// same way, and no rows are returned (sqlparser has no MOVE).
    pub moves: bool,
}

impl Parsed {
    /// A statement with no clause beside it.
    pub fn plain(statement: ast::Statement) -> Parsed {
        Parsed { statement, as_of: None, moves: false }
    }
}

/// `name` as a quoted identifier, whatever it is (a keyword too): for SQL
/// the database writes for itself.
pub fn quote_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as PostgreSQL prints an identifier (`system::quote_ident`),
/// quoted as well if the parser takes it for a keyword (`user`, `value`):
/// for SQL the database stores and shows.
fn quote_stored(name: &str) -> String {
    let upper = name.to_uppercase();
    match sqlparser::keywords::ALL_KEYWORDS.binary_search(&upper.as_str()) {
        Ok(_) => quote_name(name),
        Err(_) => crate::system::quote_ident(name),
    }
}

/// `expr` (SQL text) with each identifier token `rename` maps to a new
/// name replaced by it, quoted where it must be. `rename` is given the
/// identifier (case-folded unless quoted), the one before it if a `.`
/// joins them, and whether a `.` or `(` follows it (a qualifier or a
/// function name). For renaming columns and tables in a stored CHECK
/// expression, which reads one table's columns and nothing else.
pub fn rename_identifiers(expr: &str, rename: impl Fn(&str, Option<&str>, bool) -> Option<String>) -> Result<String> {
    let dialect = PostgreSqlDialect {};
    // Literals as written (unescaped, a quote in one would print bare).
    let tokens = Tokenizer::new(&dialect, expr)
        .with_unescape(false)
        .tokenize()
        .map_err(|e| syntax_error(expr, e.message, None))?;
    let name = |t: &Token| match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    };
    let solid: Vec<usize> = (0..tokens.len()).filter(|&i| !is_trivia(&tokens[i])).collect();
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let at = solid.iter().position(|&j| j == i);
        let renamed = at.and_then(|k| {
            let own = name(token)?;
            let before = k
                .checked_sub(2)
                .filter(|&b| tokens[solid[b + 1]] == Token::Period)
                .and_then(|b| name(&tokens[solid[b]]));
            let next = solid.get(k + 1).map(|&j| &tokens[j]);
            let qualifier_or_call = matches!(next, Some(Token::Period | Token::LParen));
            rename(&own, before.as_deref(), qualifier_or_call)
        });
        match renamed {
            Some(new) => out.push_str(&quote_stored(&new)),
            None => out.push_str(&token.to_string()),
        }
    }
    Ok(out)
}

/// Parses `sql` into statements.
pub fn parse(sql: &str) -> Result<Vec<Parsed>> {
    if sql.len() > limits::STATEMENT_BYTES_MAX {
        return sql_err!(ProgramLimitExceeded, "statement is longer than {} bytes", limits::STATEMENT_BYTES_MAX);
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| syntax_error(sql, e.message, Some(e.location)))?;
    let mut out = Vec::new();
    for group in split_statements(tokens) {
        // The whole statement, its AS OF SYSTEM TIME expression too.
        check_expression_depth(&group)?;
        let (mut tokens, as_of) = cut_as_of(sql, group)?;
        spell_copy_booleans(&mut tokens);
        unkeyword_top(&mut tokens);
        if tokens.iter().all(|t| is_trivia(&t.token)) {
            continue;
        }
        if let Some(immediate) = set_constraints(&tokens) {
            out.push(Parsed::plain(set_constraints_statement(immediate)));
            continue;
        }
        // VACUUM (any form) is accepted and does nothing: SpanDB's
        // storage reclaims versions by its own GC (pgbench sends it).
        if tokens.iter().find(|t| !is_trivia(&t.token)).is_some_and(|t| is_keyword(&t.token, Keyword::VACUUM)) {
            out.push(Parsed::plain(vacuum()));
            continue;
        }
        let own = match fetch_or_move(sql, &tokens)? {
            Some(fetch) => Some(fetch),
            None => alter_sequence(sql, &tokens)?,
        };
        if let Some(own) = own {
            if as_of.is_some() {
                return sql_err!(FeatureNotSupported, "AS OF SYSTEM TIME is only allowed on SELECT and BEGIN");
            }
            out.push(own);
            continue;
        }
        let identity_sequence = cut_identity_sequence_name(sql, &mut tokens)?;
        let mut parser = Parser::new(&dialect).with_recursion_limit(RECURSION_LIMIT).with_tokens_with_locations(tokens);
        let statement = parser.parse_statement().map_err(|e| parser_error(sql, e))?;
        if let Some(name) = identity_sequence {
            check_identity_sequence_name(&statement, &name)?;
        }
        // Anything left but trivia is a syntax error.
        loop {
            let next = parser.next_token();
            match &next.token {
                Token::EOF => break,
                t if is_trivia(t) || *t == Token::SemiColon => continue,
                t => return Err(syntax_error(sql, format!("syntax error at or near \"{t}\""), Some(next.span.start))),
            }
        }
        let as_of = match as_of {
            Some(tokens) => {
                let mut p =
                    Parser::new(&dialect).with_recursion_limit(RECURSION_LIMIT).with_tokens_with_locations(tokens);
                Some(p.parse_expr().map_err(|e| parser_error(sql, e))?)
            }
            None => None,
        };
        out.push(Parsed { statement, as_of, moves: false });
    }
    Ok(out)
}

/// Refuses (54000) a statement whose expressions could nest more than
/// [`limits::EXPRESSION_DEPTH_MAX`] deep, from its tokens, before the
/// parser builds anything. sqlparser nests `a OR b OR c ...` one level
/// per operator without recursing (its recursion limit does not see it),
/// and everything after it (walking, binding, evaluating, printing and
/// dropping the tree) recurses that deep, so a long enough chain would
/// overflow the session thread's stack and abort the server.
///
/// The bound: a group (the statement, a parenthesis or bracket, a
/// CASE ... END) nests at most as deep as its longest run of operators
/// plus its deepest inner group. A run is every token that is not an
/// operand (a name, a literal, a parameter), keywords included, up to a
/// comma (or, in a CASE, a WHEN, THEN or ELSE): generous, so a statement
/// this lets through nests less deep than the bound, whatever sqlparser
/// makes of it. Long lists (`IN (...)`, VALUES, select lists) are runs of
/// one: commas separate them. Set operations add a level each (commas do
/// not end their chain); a WHEN, THEN or ELSE right after an operator is
/// a name, not a CASE's clause, and ends nothing.
fn check_expression_depth(tokens: &[TokenWithSpan]) -> Result<()> {
    struct Group {
        case: bool,
        run: usize,
        longest_run: usize,
        /// UNION, INTERSECT and EXCEPT: each nests the set operation a
        /// level deeper, whatever commas stand between them.
        set_operations: usize,
        deepest_inner: usize,
    }
    let open = |case| Group { case, run: 0, longest_run: 0, set_operations: 0, deepest_inner: 0 };
    let depth = |g: &Group| g.longest_run + g.set_operations + g.deepest_inner + 1;
    // Ends the innermost group: its depth is its outer group's inner one.
    let close = |groups: &mut Vec<Group>| {
        let inner = groups.pop().expect("an inner group");
        let outer = groups.last_mut().expect("the statement's group");
        outer.deepest_inner = outer.deepest_inner.max(depth(&inner));
    };
    // Whether the token before could end an operand: then WHEN, THEN and
    // ELSE are a CASE's (after an operator, sqlparser reads them as names).
    let mut after_operand = false;
    let mut groups = vec![open(false)];
    let too_deep = || {
        Error::new(
            SqlState::ProgramLimitExceeded,
            format!(
                "statement is too complex: its expressions could nest more than {} deep (a long chain of \
                 operators such as a OR b OR ...: use IN (...) for a long list of values)",
                limits::EXPRESSION_DEPTH_MAX
            ),
        )
    };
    for t in tokens {
        let top = groups.last_mut().expect("the statement's group");
        let ends_operand = match &t.token {
            Token::Whitespace(_) => after_operand,
            Token::Word(w) => {
                w.quote_style.is_some()
                    || matches!(
                        w.keyword,
                        Keyword::NoKeyword | Keyword::NULL | Keyword::TRUE | Keyword::FALSE | Keyword::END
                    )
            }
            Token::RParen | Token::RBracket => true,
            t => is_literal(t),
        };
        let clause_word = after_operand;
        after_operand = ends_operand;
        match &t.token {
            Token::LParen | Token::LBracket => {
                top.run += 1;
                groups.push(open(false));
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                top.run += 1;
                groups.push(open(true));
            }
            Token::RParen | Token::RBracket => {
                if !top.case && groups.len() > 1 {
                    close(&mut groups);
                }
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END && top.case => close(&mut groups),
            Token::Word(w)
                if w.quote_style.is_none()
                    && top.case
                    && clause_word
                    && matches!(w.keyword, Keyword::WHEN | Keyword::THEN | Keyword::ELSE) =>
            {
                top.run = 0;
            }
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(w.keyword, Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS) =>
            {
                top.set_operations += 1;
            }
            Token::Comma | Token::SemiColon => top.run = 0,
            Token::Word(w) if w.quote_style.is_some() || w.keyword == Keyword::NoKeyword => {}
            Token::Period | Token::Whitespace(_) | Token::EOF => {}
            t if is_literal(t) => {}
            _ => {
                top.run += 1;
                top.longest_run = top.longest_run.max(top.run);
            }
        }
        let top = groups.last().expect("the statement's group");
        if depth(top) + groups.len() > limits::EXPRESSION_DEPTH_MAX {
            return Err(too_deep());
        }
    }
    // Unclosed groups (a syntax error the parser reports) count as closed.
    while groups.len() > 1 {
        close(&mut groups);
    }
    match groups.last().map(depth) {
        Some(d) if d > limits::EXPRESSION_DEPTH_MAX => Err(too_deep()),
        _ => Ok(()),
    }
}

/// A literal or a parameter: an operand wherever it stands.
fn is_literal(t: &Token) -> bool {
    matches!(
        t,
        Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_)
    )
}

/// Whether `s` begins or ends a transaction (BEGIN, COMMIT, ROLLBACK,
/// savepoints): a simple query holding one is not made one implicit
/// transaction.
pub fn controls_transaction(s: &ast::Statement) -> bool {
    matches!(
        s,
        ast::Statement::StartTransaction { .. }
            | ast::Statement::Commit { .. }
            | ast::Statement::Rollback { .. }
            | ast::Statement::Savepoint { .. }
            | ast::Statement::ReleaseSavepoint { .. }
    )
}

/// The statement every VACUUM stands for (a no-op).
/// The setting `SET CONSTRAINTS ... IMMEDIATE | DEFERRED` becomes when
/// parsed, whose value is `'immediate'` or `'deferred'` (the session
/// runs it).
pub const SET_CONSTRAINTS: &str = "spandb_set_constraints";

/// `SET CONSTRAINTS {ALL | name, ...} {IMMEDIATE | DEFERRED}` (which the
/// SQL parser does not know): whether IMMEDIATE. Named constraints are
/// taken as ALL.
fn set_constraints(tokens: &[TokenWithSpan]) -> Option<bool> {
    let solid: Vec<&Token> =
        tokens.iter().map(|t| &t.token).filter(|t| !is_trivia(t) && **t != Token::SemiColon).collect();
    match solid.as_slice() {
        [set, constraints, .., last] if is_keyword(set, Keyword::SET) && is_word(constraints, "constraints") => {
            if is_word(last, "immediate") {
                Some(true)
            } else if is_word(last, "deferred") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The SET statement the session takes `SET CONSTRAINTS` as
/// ([`SET_CONSTRAINTS`]).
fn set_constraints_statement(immediate: bool) -> ast::Statement {
    ast::Statement::Set(ast::Set::SingleAssignment {
        scope: None,
        hivevar: false,
        variable: ast::ObjectName::from(vec![ast::Ident::new(SET_CONSTRAINTS)]),
        values: vec![ast::Expr::Value(
            ast::Value::SingleQuotedString(if immediate { "immediate" } else { "deferred" }.into()).into(),
        )],
    })
}

/// `FETCH` and `MOVE` in PostgreSQL's grammar, which sqlparser's FETCH
/// covers only in part (it needs a direction and FROM or IN, takes no
/// signed counts, and has no MOVE):
///
/// ```text
///   FETCH | MOVE [ NEXT | PRIOR | FIRST | LAST | ALL | ABSOLUTE n | RELATIVE n | n
///                | FORWARD [ n | ALL ] | BACKWARD [ n | ALL ] ] [ FROM | IN ] cursor
/// ```
///
/// `n` is a signed integer. `None` if the statement is neither.
fn fetch_or_move(sql: &str, tokens: &[TokenWithSpan]) -> Result<Option<Parsed>> {
    let solid: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !is_trivia(&t.token)).collect();
    let moves = match solid.first() {
        Some(t) if is_keyword(&t.token, Keyword::FETCH) => false,
        Some(t) if is_word(&t.token, "move") => true,
        _ => return Ok(None),
    };
    let expected = |at: Option<&TokenWithSpan>| match at {
        Some(t) => syntax_error(sql, format!("syntax error at or near \"{}\"", t.token), Some(t.span.start)),
        None => syntax_error(sql, "syntax error at end of input".into(), None),
    };
    let Some((name, mut body)) = solid[1..].split_last() else { return Err(expected(None)) };
    let name = match &name.token {
        Token::Word(w) if w.quote_style.is_some() => ast::Ident::with_quote('"', w.value.clone()),
        Token::Word(w) if ![Keyword::FROM, Keyword::IN, Keyword::ALL].contains(&w.keyword) => {
            ast::Ident::new(w.value.clone())
        }
        _ => return Err(expected(Some(name))),
    };
    let mut position = ast::FetchPosition::From;
    if let Some((last, rest)) = body.split_last() {
        if is_keyword(&last.token, Keyword::FROM) || is_keyword(&last.token, Keyword::IN) {
            if is_keyword(&last.token, Keyword::IN) {
                position = ast::FetchPosition::In;
            }
            body = rest;
        }
    }
    // A signed integer: its text, if `tokens` are exactly one.
    let count = |tokens: &[&TokenWithSpan]| -> Option<ast::ValueWithSpan> {
        let (sign, number) = match tokens {
            [n] => ("", &n.token),
            [s, n] if s.token == Token::Minus => ("-", &n.token),
            [s, n] if s.token == Token::Plus => ("", &n.token),
            _ => return None,
        };
        match number {
            Token::Number(digits, false) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(ast::Value::Number(format!("{sign}{digits}"), false).into())
            }
            _ => None,
        }
    };
    let keyword = |t: &TokenWithSpan, k| is_keyword(&t.token, k);
    use ast::FetchDirection as D;
    let direction = match body {
        [] => D::Next,
        [d] if keyword(d, Keyword::NEXT) => D::Next,
        [d] if keyword(d, Keyword::PRIOR) => D::Prior,
        [d] if keyword(d, Keyword::FIRST) => D::First,
        [d] if keyword(d, Keyword::LAST) => D::Last,
        [d] if keyword(d, Keyword::ALL) => D::All,
        [d] if keyword(d, Keyword::FORWARD) => D::Forward { limit: None },
        [d] if keyword(d, Keyword::BACKWARD) => D::Backward { limit: None },
        [d, a] if keyword(d, Keyword::FORWARD) && keyword(a, Keyword::ALL) => D::ForwardAll,
        [d, a] if keyword(d, Keyword::BACKWARD) && keyword(a, Keyword::ALL) => D::BackwardAll,
        [d, n @ ..] if keyword(d, Keyword::FORWARD) => {
            D::Forward { limit: Some(count(n).ok_or_else(|| expected(n.first().copied()))?) }
        }
        [d, n @ ..] if keyword(d, Keyword::BACKWARD) => {
            D::Backward { limit: Some(count(n).ok_or_else(|| expected(n.first().copied()))?) }
        }
        [d, n @ ..] if keyword(d, Keyword::ABSOLUTE) => {
            D::Absolute { limit: count(n).ok_or_else(|| expected(n.first().copied()))? }
        }
        [d, n @ ..] if keyword(d, Keyword::RELATIVE) => {
            D::Relative { limit: count(n).ok_or_else(|| expected(n.first().copied()))? }
        }
        // A direction word followed by more (`FETCH NEXT 2 FROM c`): the
        // error is at what follows it, as PostgreSQL says.
        [d, more, ..] if matches!(d.token, Token::Word(_)) => return Err(expected(Some(more))),
        n => D::Count { limit: count(n).ok_or_else(|| expected(n.first().copied()))? },
    };
    let statement = ast::Statement::Fetch { name, direction, position, into: None };
    Ok(Some(Parsed { statement, as_of: None, moves }))
}

/// Cuts `SEQUENCE NAME name` out of an identity's options (`ALTER TABLE
/// t ALTER COLUMN c ADD GENERATED ... AS IDENTITY (SEQUENCE NAME s ...)`,
/// what pg_dump writes; sqlparser does not know the option) and returns
/// the name, unqualified.
fn cut_identity_sequence_name(sql: &str, tokens: &mut Vec<TokenWithSpan>) -> Result<Option<String>> {
    let solid: Vec<usize> = (0..tokens.len()).filter(|&i| !is_trivia(&tokens[i].token)).collect();
    let Some(at) = solid.windows(2).position(|w| {
        is_keyword(&tokens[w[0]].token, Keyword::SEQUENCE) && is_keyword(&tokens[w[1]].token, Keyword::NAME)
    }) else {
        return Ok(None);
    };
    // The name: words joined by dots; its last word is the sequence's.
    let mut k = at + 2;
    let mut name = None;
    while let Some(Token::Word(w)) = solid.get(k).map(|&i| &tokens[i].token) {
        name = Some(match w.quote_style {
            Some(_) => w.value.clone(),
            None => w.value.to_lowercase(),
        });
        if solid.get(k + 1).is_some_and(|&i| tokens[i].token == Token::Period) {
            k += 2;
        } else {
            k += 1;
            break;
        }
    }
    let Some(name) = name else {
        let t = solid.get(at + 2).map(|&i| &tokens[i]);
        let message =
            t.map_or("syntax error at end of input".into(), |t| format!("syntax error at or near \"{}\"", t.token));
        return Err(syntax_error(sql, message, t.map(|t| t.span.start)));
    };
    let end = solid.get(k).copied().unwrap_or(tokens.len());
    tokens.drain(solid[at]..end);
    Ok(Some(name))
}

/// An identity's `SEQUENCE NAME` may only be the one SpanDB gives it,
/// PostgreSQL's default `table_column_seq` (pg_dump writes that one for
/// every identity it did not rename), in `ALTER TABLE ... ADD GENERATED`.
fn check_identity_sequence_name(statement: &ast::Statement, name: &str) -> Result<()> {
    let ast::Statement::AlterTable(alter) = statement else {
        return sql_err!(FeatureNotSupported, "SEQUENCE NAME is supported in ALTER TABLE ... ADD GENERATED only");
    };
    let wanted = alter.operations.iter().find_map(|op| match op {
        ast::AlterTableOperation::AlterColumn { column_name, op: ast::AlterColumnOperation::AddGenerated { .. } } => {
            let table = alter.name.0.last().and_then(|p| p.as_ident()).map(ident)?;
            Some(identity_sequence_name(&table, &ident(column_name)))
        }
        _ => None,
    });
    match wanted {
        Some(wanted) if wanted == name => Ok(()),
        Some(wanted) => sql_err!(
            FeatureNotSupported,
            "an identity's sequence is named \"{wanted}\" here; SEQUENCE NAME \"{name}\" is not supported"
        ),
        None => sql_err!(FeatureNotSupported, "SEQUENCE NAME is supported in ALTER TABLE ... ADD GENERATED only"),
    }
}

/// The sequence behind identity column `column` of `table` (added by
/// ALTER TABLE ... ADD GENERATED): PostgreSQL's default name for it.
pub fn identity_sequence_name(table: &str, column: &str) -> String {
    format!("{table}_{column}_seq")
}

/// The options of an `ALTER SEQUENCE`: the keys of the `ALTER TABLE name
/// SET (key = value, ...)` this module reads it as (`alter_sequence`).
pub mod sequence_option {
    /// `AS type`: the type's name, a string.
    pub const TYPE: &str = "type";
    pub const INCREMENT: &str = "increment";
    /// `MINVALUE n`, or NULL for `NO MINVALUE`.
    pub const MIN_VALUE: &str = "minvalue";
    /// `MAXVALUE n`, or NULL for `NO MAXVALUE`.
    pub const MAX_VALUE: &str = "maxvalue";
    pub const START: &str = "start";
    /// `RESTART WITH n`, or NULL for `RESTART` (at START).
    pub const RESTART: &str = "restart";
    pub const CACHE: &str = "cache";
    /// `CYCLE` (true) or `NO CYCLE` (false).
    pub const CYCLE: &str = "cycle";
    /// `OWNED BY table.column`, or `NONE`: a string.
    pub const OWNED_BY: &str = "owned_by";
}

/// `ALTER SEQUENCE [IF EXISTS] name option ...`, which sqlparser does not
/// parse, read as PostgreSQL reads it: the sequence's name and a list of
/// options, each a key and a value (PostgreSQL's `DefElem`s), carried as
/// `ALTER TABLE [IF EXISTS] name SET ("key" = value, ...)` with the keys
/// of [`sequence_option`] (the planner takes that form, on a sequence, as
/// ALTER SEQUENCE). The options but RESTART, ALTER's own, are read by
/// sqlparser's CREATE SEQUENCE grammar.
///
/// ```text
///   ALTER SEQUENCE s INCREMENT BY 5 NO MAXVALUE RESTART
///   -> ALTER TABLE s SET ("restart" = NULL, "increment" = 5, "maxvalue" = NULL)
/// ```
///
/// `ALTER SEQUENCE name OWNER TO role` is `ALTER TABLE name OWNER TO
/// role`, as in PostgreSQL. `None` if the statement is not an ALTER
/// SEQUENCE.
fn alter_sequence(sql: &str, tokens: &[TokenWithSpan]) -> Result<Option<Parsed>> {
    use sequence_option as key;
    let solid: Vec<usize> = (0..tokens.len()).filter(|&i| !is_trivia(&tokens[i].token)).collect();
    let word = |k: usize, w: Keyword| solid.get(k).is_some_and(|&i| is_keyword(&tokens[i].token, w));
    if !(word(0, Keyword::ALTER) && word(1, Keyword::SEQUENCE)) {
        return Ok(None);
    }
    let if_exists = word(2, Keyword::IF) && word(3, Keyword::EXISTS);
    let mut k = if if_exists { 4 } else { 2 };
    // The name: words joined by dots.
    let name_start = k;
    while solid.get(k).is_some_and(|&i| matches!(tokens[i].token, Token::Word(_)))
        && solid.get(k + 1).is_some_and(|&i| tokens[i].token == Token::Period)
    {
        k += 2;
    }
    let Some(&name_end) = solid.get(k).filter(|&&i| matches!(tokens[i].token, Token::Word(_))) else {
        let at = solid.get(k).map(|&i| &tokens[i]);
        let message =
            at.map_or("syntax error at end of input".into(), |t| format!("syntax error at or near \"{}\"", t.token));
        return Err(syntax_error(sql, message, at.map(|t| t.span.start)));
    };
    let text = |range: &[TokenWithSpan]| {
        range.iter().filter(|t| t.token != Token::EOF).map(|t| t.token.to_string()).collect::<String>()
    };
    let name = text(&tokens[solid[name_start]..=name_end]);
    let rest = &tokens[name_end + 1..];
    // Its options are words and numbers: a string would not survive being
    // printed back into the text below (the tokenizer unescaped it).
    if let Some(t) =
        rest.iter().find(|t| matches!(t.token, Token::SingleQuotedString(_) | Token::DollarQuotedString(_)))
    {
        return Err(syntax_error(sql, format!("syntax error at or near \"{}\"", t.token), Some(t.span.start)));
    }
    let head = format!("ALTER TABLE {}{name}", if if_exists { "IF EXISTS " } else { "" });
    let first = rest.iter().find(|t| !is_trivia(&t.token));
    if first.is_some_and(|t| is_word(&t.token, "owner")) {
        return reparse(sql, &format!("{head} {}", text(rest))).map(Some);
    }
    if first.is_some_and(|t| is_keyword(&t.token, Keyword::RENAME) || is_keyword(&t.token, Keyword::SET)) {
        return sql_err!(FeatureNotSupported, "ALTER SEQUENCE ... RENAME and SET are not supported");
    }
    // RESTART [[WITH] n] out, the rest read as CREATE SEQUENCE's options.
    let mut options = Vec::new();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        if !is_keyword(&rest[i].token, Keyword::RESTART) {
            kept.push(rest[i].clone());
            i += 1;
            continue;
        }
        if options.iter().any(|o: &String| o.starts_with(&format!("\"{}\"", key::RESTART))) {
            return Err(syntax_error(sql, "conflicting or redundant options".into(), Some(rest[i].span.start)));
        }
        let next = |from: usize| (from..rest.len()).find(|&j| !is_trivia(&rest[j].token));
        let mut j = next(i + 1);
        let with = j.is_some_and(|j| is_keyword(&rest[j].token, Keyword::WITH));
        if with {
            j = j.and_then(|j| next(j + 1));
        }
        let mut value = "NULL".to_string();
        if let Some(s) = j.filter(|&j| matches!(rest[j].token, Token::Minus | Token::Plus)) {
            if let Some(n) = next(s + 1).filter(|&n| matches!(rest[n].token, Token::Number(..))) {
                value = format!("{}{}", rest[s].token, rest[n].token);
                j = next(n + 1);
            }
        } else if let Some(n) = j.filter(|&n| matches!(rest[n].token, Token::Number(..))) {
            value = rest[n].token.to_string();
            j = next(n + 1);
        }
        if with && value == "NULL" {
            let at = j.map(|j| &rest[j]);
            let message = at
                .map_or("syntax error at end of input".into(), |t| format!("syntax error at or near \"{}\"", t.token));
            return Err(syntax_error(sql, message, at.map(|t| t.span.start)));
        }
        options.push(format!("\"{}\" = {value}", key::RESTART));
        i = j.unwrap_or(rest.len());
        kept.push(TokenWithSpan {
            token: Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
            span: rest[0].span,
        });
    }
    let create = format!("CREATE SEQUENCE {name} {}", text(&kept));
    let sequence_options = match reparse(sql, &create)?.statement {
        ast::Statement::CreateSequence { sequence_options, .. } => sequence_options,
        _ => return Err(syntax_error(sql, "syntax error in ALTER SEQUENCE".into(), None)),
    };
    use ast::SequenceOptions as O;
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    for option in &sequence_options {
        let (name, value) = match option {
            O::DataType(t) => (key::TYPE, quoted(&t.to_string())),
            O::IncrementBy(e, _) => (key::INCREMENT, e.to_string()),
            O::MinValue(e) => (key::MIN_VALUE, e.as_ref().map_or("NULL".into(), ToString::to_string)),
            O::MaxValue(e) => (key::MAX_VALUE, e.as_ref().map_or("NULL".into(), ToString::to_string)),
            O::StartWith(e, _) => (key::START, e.to_string()),
            O::Cache(e) => (key::CACHE, e.to_string()),
            // sqlparser's flag is "NO".
            O::Cycle(no) => (key::CYCLE, (!no).to_string()),
            O::OwnedBy(owner) => (key::OWNED_BY, quoted(&owner.as_ref().map_or("none".into(), ToString::to_string))),
        };
        options.push(format!("\"{name}\" = {value}"));
    }
    if options.is_empty() {
        return Err(syntax_error(sql, "syntax error at end of input".into(), None));
    }
    reparse(sql, &format!("{head} SET ({})", options.join(", "))).map(Some)
}

/// `text`, one statement SpanDB wrote for `sql`, parsed by sqlparser, to
/// its end; its errors are `sql`'s (with no position: `text` is not what
/// the client wrote).
fn reparse(sql: &str, text: &str) -> Result<Parsed> {
    let dialect = PostgreSqlDialect {};
    let unplaced = |e| Error { position: None, ..parser_error(sql, e) };
    let mut parser =
        Parser::new(&dialect).with_recursion_limit(RECURSION_LIMIT).try_with_sql(text).map_err(unplaced)?;
    let statement = parser.parse_statement().map_err(unplaced)?;
    loop {
        match parser.next_token().token {
            Token::EOF => break,
            Token::SemiColon => continue,
            t => return Err(syntax_error(sql, format!("syntax error at or near \"{t}\""), None)),
        }
    }
    Ok(Parsed::plain(statement))
}

fn vacuum() -> ast::Statement {
    ast::Statement::Vacuum(ast::VacuumStatement {
        full: false,
        sort_only: false,
        delete_only: false,
        reindex: false,
        recluster: false,
        table_name: None,
        threshold: None,
        boost: false,
    })
}

/// Whether `s` is a COPY FROM (the gateway runs its data phase).
pub fn is_copy_in(s: &ast::Statement) -> bool {
    matches!(s, ast::Statement::Copy { to: false, .. })
}

/// Whether `s` is a COPY TO (its rows go out as COPY data).
pub fn is_copy_out(s: &ast::Statement) -> bool {
    matches!(s, ast::Statement::Copy { to: true, .. })
}

/// What a query that is one `DEALLOCATE [PREPARE] name | ALL` frees:
/// `Some(None)` for ALL, `Some(Some(name))` for one statement; `None` for
/// any other query. Prepared statements are the protocol's (the gateway
/// holds them), so the gateway answers these itself.
pub fn deallocate_target(sql: &str) -> Option<Option<String>> {
    // Every simple query passes here: parse only what can be one.
    let first = sql.trim_start().get(..10)?;
    if !first.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let parsed = parse(sql).ok()?;
    let [Parsed { statement: ast::Statement::Deallocate { name, .. }, as_of: None, .. }] = parsed.as_slice() else {
        return None;
    };
    if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
        return Some(None);
    }
    Some(Some(ident(name)))
}

/// Whether a query is one `DISCARD ALL`, which also frees the protocol's
/// prepared statements (the gateway holds them: it frees them when the
/// session's DISCARD ALL succeeds).
pub fn is_discard_all(sql: &str) -> bool {
    let Some(first) = sql.trim_start().get(..7) else { return false };
    if !first.eq_ignore_ascii_case("discard") {
        return false;
    }
    matches!(
        parse(sql).ok().as_deref(),
        Some([Parsed { statement: ast::Statement::Discard { object_type: ast::DiscardObject::ALL }, as_of: None, .. }])
    )
}

/// Parses one expression (a stored DEFAULT).
pub fn parse_expr(text: &str) -> Result<ast::Expr> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| syntax_error(text, e.message, Some(e.location)))?;
    check_expression_depth(&tokens)?;
    Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_expr()
        .map_err(|e| parser_error(text, e))
}

/// In a COPY statement's options, PostgreSQL takes `FREEZE on` and
/// `HEADER off` (pgbench sends `with (freeze on)`); sqlparser takes only
/// true and false: respell them.
fn spell_copy_booleans(tokens: &mut [TokenWithSpan]) {
    let solid: Vec<usize> = tokens.iter().enumerate().filter(|(_, t)| !is_trivia(&t.token)).map(|(i, _)| i).collect();
    if !solid.first().is_some_and(|&i| is_keyword(&tokens[i].token, Keyword::COPY)) {
        return;
    }
    for w in solid.windows(2) {
        let option = &tokens[w[0]].token;
        if !(is_keyword(option, Keyword::FREEZE) || is_keyword(option, Keyword::HEADER)) {
            continue;
        }
        let spelled = match &tokens[w[1]].token {
            t if is_keyword(t, Keyword::ON) => "true",
            t if is_keyword(t, Keyword::OFF) => "false",
            _ => continue,
        };
        tokens[w[1]].token = Token::make_keyword(spelled);
    }
}

/// PostgreSQL has no `TOP`: a `top` first in a select list is a column
/// (`SELECT top, id FROM scores`), which sqlparser would take for SQL
/// Server's `TOP n`: quote it.
fn unkeyword_top(tokens: &mut [TokenWithSpan]) {
    let solid: Vec<usize> = tokens.iter().enumerate().filter(|(_, t)| !is_trivia(&t.token)).map(|(i, _)| i).collect();
    for (n, &i) in solid.iter().enumerate() {
        if !is_keyword(&tokens[i].token, Keyword::SELECT) {
            continue;
        }
        let mut next = solid.get(n + 1).copied();
        if let Some(j) = next
            .filter(|&j| is_keyword(&tokens[j].token, Keyword::DISTINCT) || is_keyword(&tokens[j].token, Keyword::ALL))
        {
            debug_assert_eq!(solid.get(n + 1), Some(&j));
            next = solid.get(n + 2).copied();
        }
        if let Some(j) = next.filter(|&j| is_keyword(&tokens[j].token, Keyword::TOP)) {
            tokens[j].token =
                Token::Word(Word { value: "top".into(), quote_style: Some('"'), keyword: Keyword::NoKeyword });
        }
    }
}

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_) | Token::EOF)
}

/// Splits tokens at top-level semicolons (each group ends with EOF).
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0i32;
    let eof = |span| TokenWithSpan { token: Token::EOF, span };
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth <= 0 => {
                current.push(eof(t.span));
                groups.push(std::mem::take(&mut current));
                depth = 0;
                continue;
            }
            Token::EOF => {
                current.push(t);
                continue;
            }
            _ => {}
        }
        current.push(t);
    }
    if current.iter().any(|t| !is_trivia(&t.token)) {
        if !matches!(current.last().map(|t| &t.token), Some(Token::EOF)) {
            let span = current.last().map(|t| t.span).unwrap_or(sqlparser::tokenizer::Span::empty());
            current.push(eof(span));
        }
        groups.push(current);
    }
    groups
}

fn is_keyword(t: &Token, k: Keyword) -> bool {
    matches!(t, Token::Word(Word { keyword, quote_style: None, .. }) if *keyword == k)
}

fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(Word { value, quote_style: None, .. }) if value.eq_ignore_ascii_case(w))
}

/// Cuts `AS OF SYSTEM TIME <expr>` out of a statement's tokens.
fn cut_as_of(sql: &str, tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, Option<Vec<TokenWithSpan>>)> {
    // Indexes of the non-whitespace tokens.
    let solid: Vec<usize> = tokens.iter().enumerate().filter(|(_, t)| !is_trivia(&t.token)).map(|(i, _)| i).collect();
    let mut found = None;
    for w in solid.windows(4) {
        let [a, o, s, t] = [&tokens[w[0]].token, &tokens[w[1]].token, &tokens[w[2]].token, &tokens[w[3]].token];
        if is_keyword(a, Keyword::AS)
            && is_keyword(o, Keyword::OF)
            && is_keyword(s, Keyword::SYSTEM)
            && is_word(t, "time")
        {
            if found.is_some() {
                return Err(syntax_error(sql, "AS OF SYSTEM TIME given twice".into(), Some(tokens[w[0]].span.start)));
            }
            found = Some((w[0], w[3]));
        }
    }
    let Some((start, time)) = found else {
        return Ok((tokens, None));
    };
    // The expression: a string or number literal, optionally signed, or a
    // call `name(...)` with balanced parentheses.
    let mut i = time + 1;
    while i < tokens.len() && is_trivia(&tokens[i].token) && tokens[i].token != Token::EOF {
        i += 1;
    }
    let expr_start = i;
    let mut end = i;
    match tokens.get(i).map(|t| &t.token) {
        Some(Token::SingleQuotedString(_) | Token::Number(..)) => end = i + 1,
        Some(Token::Minus | Token::Plus) if matches!(tokens.get(i + 1).map(|t| &t.token), Some(Token::Number(..))) => {
            end = i + 2
        }
        Some(Token::Word(_)) => {
            let mut depth = 0;
            let mut j = i + 1;
            while j < tokens.len() && tokens[j].token != Token::EOF {
                match tokens[j].token {
                    Token::LParen => depth += 1,
                    Token::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    Token::Whitespace(_) if depth == 0 => {}
                    _ if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {}
    }
    if end == expr_start {
        let at = tokens.get(time).map(|t| t.span.start);
        return Err(syntax_error(sql, "AS OF SYSTEM TIME needs a timestamp".into(), at));
    }
    let mut expr: Vec<TokenWithSpan> = tokens[expr_start..end].to_vec();
    let eof_span = tokens[end - 1].span;
    expr.push(TokenWithSpan { token: Token::EOF, span: eof_span });
    let mut rest = tokens[..start].to_vec();
    rest.extend_from_slice(&tokens[end..]);
    Ok((rest, Some(expr)))
}

fn syntax_error(sql: &str, message: String, at: Option<Location>) -> Error {
    let mut e = Error::new(SqlState::SyntaxError, clean_message(&message));
    e.position = at.and_then(|l| position_of(sql, l));
    e
}

/// sqlparser says "Expected: X, found: Y at Line: 1, Column: 8": keep the
/// words, move the location into the error's position.
fn parser_error(sql: &str, e: ParserError) -> Error {
    match e {
        ParserError::RecursionLimitExceeded => {
            Error::new(SqlState::ProgramLimitExceeded, "statement nests too deeply".to_string())
        }
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
            let at = location_in(&m);
            syntax_error(sql, m, at)
        }
    }
}

fn location_in(message: &str) -> Option<Location> {
    let line_at = message.rfind("Line: ")?;
    let rest = &message[line_at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some(Location { line: line.trim().parse().ok()?, column: column.parse().ok()? })
}

fn clean_message(m: &str) -> String {
    let m = match m.rfind(" at Line: ") {
        Some(i) => &m[..i],
        None => m,
    };
    format!("syntax error: {}", m.trim_start_matches("sql parser error: "))
}

/// An identifier as PostgreSQL folds it: lower case unless quoted.
/// The relation a text names, as `regclass` input reads it (`'Orders'`
/// is `orders`, `'"Orders"'` is `Orders`, `'public.orders'` is
/// `orders`): its bare name, or `None` if the text is no name, or names
/// another schema than public.
pub fn relation_name(text: &str) -> Option<String> {
    let parts = name_parts(text)?;
    match parts.as_slice() {
        [bare] => Some(bare.clone()),
        [schema, bare] if schema == "public" => Some(bare.clone()),
        _ => None,
    }
}

/// The parts of the dotted name `text` (`public."Orders".id`), each as
/// an identifier (folded unless quoted); `None` if `text` is not one.
pub fn name_parts(text: &str) -> Option<Vec<String>> {
    let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(text).ok()?;
    let name = parser.parse_object_name(false).ok()?;
    if parser.peek_token().token != Token::EOF {
        return None;
    }
    name.0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Some(ident(i)),
            _ => None,
        })
        .collect()
}

pub(crate) fn ident(i: &ast::Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// The 1-based character offset in `sql` of a sqlparser location.
pub fn position_of(sql: &str, loc: sqlparser::tokenizer::Location) -> Option<usize> {
    if loc.line == 0 {
        return None;
    }
    let mut offset = 0;
    for (n, line) in sql.split('\n').enumerate() {
        if n as u64 + 1 == loc.line {
            return Some(offset + loc.column as usize);
        }
        offset += line.chars().count() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the AS OF SYSTEM TIME clause is cut out wherever it appears
    /// and each statement keeps its own. Method: parse several forms.
    #[test]
    fn as_of_system_time_is_cut_out() {
        let p = parse("SELECT * FROM t AS OF SYSTEM TIME '-10s' WHERE k = 1").unwrap();
        assert_eq!(p[0].statement.to_string(), "SELECT * FROM t WHERE k = 1");
        assert_eq!(p[0].as_of.as_ref().unwrap().to_string(), "'-10s'");

        let p = parse("BEGIN AS OF SYSTEM TIME with_max_staleness('10s'); SELECT 1").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].as_of.as_ref().unwrap().to_string(), "with_max_staleness('10s')");
        assert!(p[1].as_of.is_none());

        let p = parse("select 1 as of system time 1767225600000000000").unwrap();
        assert_eq!(p[0].as_of.as_ref().unwrap().to_string(), "1767225600000000000");

        let e = parse("SELECT 1 AS OF SYSTEM TIME").unwrap_err();
        assert_eq!(e.state, SqlState::SyntaxError);
    }

    /// Goal: syntax errors carry SQLSTATE 42601 and the position of the
    /// offending token. Method: a misspelt keyword on the second line.
    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("SELECT 1;\nSELEC 2").unwrap_err();
        assert_eq!(e.state, SqlState::SyntaxError);
        assert_eq!(e.position, Some(11), "{e:?}");
    }

    /// Goal: empty statements and trailing semicolons are fine.
    #[test]
    fn deallocate_names_its_target() {
        assert_eq!(deallocate_target("DEALLOCATE ALL"), Some(None));
        assert_eq!(deallocate_target("  deallocate prepare S1;"), Some(Some("s1".into())));
        assert_eq!(deallocate_target("DEALLOCATE \"All\""), Some(Some("All".into())));
        assert_eq!(deallocate_target("DEALLOCATE a; SELECT 1"), None);
        assert_eq!(deallocate_target("SELECT 1"), None);
        assert_eq!(deallocate_target("dealloc"), None);
    }

    #[test]
    fn empty_statements_are_skipped() {
        assert_eq!(parse(" ; ;").unwrap().len(), 0);
        assert_eq!(parse("SELECT 1;;SELECT 2;").unwrap().len(), 2);
    }

    /// Goal: ALTER SEQUENCE is read as its options over the sequence
    /// (`alter_sequence`), RESTART's forms too; OWNER TO as ALTER TABLE's;
    /// what it cannot be is refused.
    #[test]
    fn alter_sequence_is_read_as_its_options() {
        let text = |sql: &str| parse(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"))[0].statement.to_string();
        assert_eq!(
            text("ALTER SEQUENCE s INCREMENT BY 5 NO MAXVALUE RESTART"),
            r#"ALTER TABLE s SET ("restart" = NULL, "increment" = 5, "maxvalue" = NULL)"#
        );
        assert_eq!(
            text("alter sequence if exists public.s restart with -3 cycle as integer owned by t.id"),
            r#"ALTER TABLE IF EXISTS public.s SET ("restart" = -3, "cycle" = true, "type" = 'INTEGER', "owned_by" = 't.id')"#
        );
        assert_eq!(text("ALTER SEQUENCE s OWNED BY NONE"), r#"ALTER TABLE s SET ("owned_by" = 'none')"#);
        assert_eq!(text("ALTER SEQUENCE s OWNER TO root"), "ALTER TABLE s OWNER TO root");
        for (bad, state) in [
            ("ALTER SEQUENCE s", SqlState::SyntaxError),
            ("ALTER SEQUENCE s RESTART WITH", SqlState::SyntaxError),
            ("ALTER SEQUENCE s INCREMENT", SqlState::SyntaxError),
            ("ALTER SEQUENCE s RENAME TO t", SqlState::FeatureNotSupported),
        ] {
            assert_eq!(parse(bad).unwrap_err().state, state, "{bad}");
        }
    }

    /// Goal: FETCH and MOVE parse in PostgreSQL's grammar: every
    /// direction, signed counts, FROM, IN or neither, quoted names, a
    /// cursor named like a direction; and nothing else parses.
    #[test]
    fn fetch_and_move_parse_as_postgresql_s() {
        let one = |sql: &str| {
            let mut p = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            assert_eq!(p.len(), 1, "{sql}");
            let p = p.remove(0);
            let ast::Statement::Fetch { name, direction, .. } = p.statement else { panic!("{sql}: {p:?}") };
            (p.moves, ident(&name), direction.to_string())
        };
        let fetch = |sql: &str, name: &str, direction: &str| {
            assert_eq!(one(sql), (false, name.to_string(), direction.to_string()), "{sql}");
        };
        fetch("FETCH c", "c", "NEXT");
        fetch("fetch from C", "c", "NEXT");
        fetch("FETCH next", "next", "NEXT");
        fetch("FETCH PRIOR IN c", "c", "PRIOR");
        fetch("FETCH -2 FROM c", "c", "-2");
        fetch("FETCH + 3 c", "c", "3");
        fetch("FETCH ABSOLUTE -1 FROM \"Odd Name\"", "Odd Name", "ABSOLUTE -1");
        fetch("FETCH RELATIVE 0 FROM c;", "c", "RELATIVE 0");
        fetch("FETCH FORWARD c", "c", "FORWARD");
        fetch("FETCH FORWARD ALL FROM c", "c", "FORWARD ALL");
        fetch("FETCH BACKWARD 7 FROM c", "c", "BACKWARD 7");
        fetch("FETCH ALL IN c", "c", "ALL");
        assert_eq!(one("MOVE  -2 FROM c"), (true, "c".into(), "-2".into()));
        assert_eq!(one("move absolute 0 from c"), (true, "c".into(), "ABSOLUTE 0".into()));
        for bad in ["FETCH", "FETCH FROM", "FETCH ALL", "MOVE 1.5 FROM c", "FETCH NEXT 2 FROM c", "FETCH - FROM c"] {
            assert_eq!(parse(bad).unwrap_err().state, SqlState::SyntaxError, "{bad}");
        }
    }
}
