//! The PostgreSQL gateway (first slice): psql and other clients speaking
//! PostgreSQL's protocol 3.0 reach SpanDB's SQL layer.
//!
//! ```text
//!   psql ──TCP──> pgwire (startup, simple query) ──> Session (one per
//!                 connection, on a blocking thread) ──> ClientEngine ──> cluster
//! ```
//!
//! What works: trust authentication, the simple query protocol (several
//! statements in one query, each answered in turn; the first error ends
//! the query), command tags as PostgreSQL writes them, SQLSTATEs on
//! errors, and transaction status in every ReadyForQuery (idle, in a
//! block, failed). A client that disconnects mid-transaction has it
//! rolled back (its session is dropped). Not yet: the extended protocol,
//! COPY, binary formats, catalogs for psql's `\d` (issue "PostgreSQL wire
//! protocol").

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;
use sql::plan::OutputColumn;
use sql::{Collected, DataType, Session, Value};
use tokio::net::TcpListener;

use crate::sql_engine::ClientEngine;

/// How long the gateway waits after a failed accept before the next.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Accepts PostgreSQL clients on `listener` until the task is dropped.
/// Sessions reach the cluster through a client connected to `seed` (this
/// server's own gRPC address), connected at the first client, and share
/// one set of leased descriptors (one gateway).
pub async fn serve(listener: TcpListener, seed: String) {
    let gateway = Arc::new(Gateway { seed, engine: tokio::sync::OnceCell::new(), leases: Arc::default() });
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(_) => {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let session = match gateway.engine().await {
                Ok(engine) => Session::new(engine).with_leases(gateway.leases.clone()),
                // No cluster yet: this connection is refused, the next
                // one tries again.
                Err(_) => return,
            };
            let handlers = Arc::new(Connection { session: Arc::new(Mutex::new(session)) });
            // A connection's failure (a client that vanished, a protocol
            // error) ends that connection only.
            let _ = pgwire::tokio::process_socket(socket, None, handlers).await;
        });
    }
}

/// What the connections of one gateway share.
struct Gateway {
    seed: String,
    engine: tokio::sync::OnceCell<Arc<ClientEngine>>,
    leases: Arc<sql::catalog::Leases>,
}

impl Gateway {
    async fn engine(&self) -> anyhow::Result<Arc<ClientEngine>> {
        let engine = self
            .engine
            .get_or_try_init(|| async {
                let client = client::Client::connect([self.seed.clone()]).await?;
                let handle = tokio::runtime::Handle::current();
                Ok::<_, anyhow::Error>(Arc::new(ClientEngine::new(client, handle, self.seed.clone())))
            })
            .await?;
        Ok(engine.clone())
    }
}

/// One client connection and its session.
struct Connection {
    session: Arc<Mutex<Session>>,
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Connection { session: self.session.clone() })
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(Connection { session: self.session.clone() })
    }
}

impl NoopStartupHandler for Connection {}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + futures::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session.clone();
        let query = query.to_string();
        tokio::task::spawn_blocking(move || {
            let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
            run_query(&mut session, &query)
        })
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
    }
}

/// Runs every statement of one simple query; the responses in order, the
/// first error last.
fn run_query(session: &mut Session, query: &str) -> Vec<Response> {
    let statements = match sql::parser::parse(query) {
        Ok(s) => s,
        Err(e) => return vec![error_response(&e)],
    };
    if statements.is_empty() {
        return vec![Response::EmptyQuery];
    }
    let mut responses = Vec::new();
    for parsed in statements {
        let mut out = Collected::default();
        match session.execute_parsed(query, &parsed, &mut out) {
            Ok(()) => responses.push(response(out)),
            Err(e) => {
                responses.push(error_response(&e));
                break;
            }
        }
    }
    responses
}

fn error_response(e: &sql::Error) -> Response {
    let mut info = ErrorInfo::new("ERROR".into(), e.state.code().into(), e.message.clone());
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    Response::Error(Box::new(info))
}

/// The PostgreSQL type of a column.
fn pg_type(t: DataType) -> Type {
    match t {
        DataType::Bool => Type::BOOL,
        DataType::Int2 => Type::INT2,
        DataType::Int4 => Type::INT4,
        DataType::Int8 => Type::INT8,
        DataType::Float4 => Type::FLOAT4,
        DataType::Float8 => Type::FLOAT8,
        DataType::Text => Type::TEXT,
        DataType::Varchar(_) => Type::VARCHAR,
        DataType::Char(_) => Type::BPCHAR,
        DataType::Bytea => Type::BYTEA,
        DataType::Timestamp => Type::TIMESTAMP,
    }
}

/// A statement's result as PostgreSQL sends it: rows and a tag, or a tag.
fn response(out: Collected) -> Response {
    let tag_text = out.tags.last().cloned().unwrap_or_default();
    let tag = command_tag(&tag_text);
    match tag_text.as_str() {
        "BEGIN" => return Response::TransactionStart(tag),
        "COMMIT" | "ROLLBACK" => return Response::TransactionEnd(tag),
        _ => {}
    }
    if out.columns.is_empty() {
        return Response::Execution(tag);
    }
    let fields: Vec<FieldInfo> = out
        .columns
        .iter()
        .map(|c: &OutputColumn| FieldInfo::new(c.name.clone(), None, None, pg_type(c.data_type), FieldFormat::Text))
        .collect();
    let fields = Arc::new(fields);
    let rows: Vec<PgWireResult<DataRow>> = out
        .rows
        .iter()
        .map(|row| {
            let mut encoder = DataRowEncoder::new(fields.clone());
            for v in row {
                let text: Option<String> = match v {
                    Value::Null => None,
                    v => sql::ops::to_text(v),
                };
                encoder.encode_field(&text)?;
            }
            Ok(encoder.take_row())
        })
        .collect();
    let mut query = QueryResponse::new(fields, stream::iter(rows));
    // pgwire appends the count of rows it sent: give it the words
    // before ours (`SELECT`, `INSERT 0`, `UPDATE`).
    query.command_tag = match tag_text.rsplit_once(' ') {
        Some((words, n)) if n.chars().all(|c| c.is_ascii_digit()) => words.to_string(),
        _ => tag_text,
    };
    Response::Query(query)
}

/// `INSERT 0 3` -> Tag("INSERT", oid 0, rows 3); `CREATE TABLE` as is.
fn command_tag(text: &str) -> Tag {
    let words: Vec<&str> = text.split(' ').collect();
    match words.as_slice() {
        ["INSERT", oid, n] => match (oid.parse(), n.parse()) {
            (Ok(oid), Ok(n)) => Tag::new("INSERT").with_oid(oid).with_rows(n),
            _ => Tag::new(text),
        },
        [command, n] if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => match n.parse() {
            Ok(n) => Tag::new(command).with_rows(n),
            Err(_) => Tag::new(text),
        },
        _ => Tag::new(text),
    }
}
