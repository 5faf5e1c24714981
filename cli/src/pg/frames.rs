//! The client's bytes, checked before pgwire decodes them.
//!
//! pgwire's decoders trust the lengths inside a message: a Bind, Parse or
//! Execute whose body ends early makes them read past it and panic (found
//! by `pg_drivers`' generated-message test). A panic in a connection's
//! task ends only that connection, but no byte sequence may panic the
//! server, and a message may also announce up to 1 GiB, which pgwire would
//! buffer. So pgwire reads the client's socket through [`Checked`], which
//! hands it whole frames only, each checked first:
//!
//! ```text
//!   client ──TCP──> startup: SSLRequest/GSSENCRequest -> 'N', packet checked
//!                   Checked: every frame's length <= MESSAGE_BYTES_MAX,
//!                   Parse/Bind/Execute/Describe/Close well-formed ──> pgwire's decoder
//!   client <──TCP── pgwire's encoder
//! ```
//!
//! The check runs inside the connection's task, on the bytes pgwire is
//! about to read: no copy through a second socket and no second task
//! (an earlier version pumped the frames to pgwire over a local socket
//! pair, which cost about 0.06 ms a round trip).
//!
//! A frame that fails the check ends the connection the way PostgreSQL
//! does: pgwire sees the client's end of stream (and the session rolls
//! back what it had open), then the client gets a FATAL ErrorResponse
//! (08P01 protocol violation, or 54000 for a message over the limit) and
//! the socket closes. A client that does not finish its startup within
//! [`STARTUP_TIMEOUT`] is disconnected.
//!
//! Replies are sent the way PostgreSQL sends them: together, not one
//! system call per message. pgwire flushes after each reply message of
//! the extended protocol (ParseComplete, BindComplete, RowDescription,
//! CommandComplete, ...), and each flush was a `writev` that also woke the
//! client for a reply it could not use yet: four per pgbench transaction,
//! a quarter of a gateway's CPU in select-only. So [`Checked`] holds the
//! replies pgwire flushes while the last one is a mid-exchange reply
//! ([`held_back`]) and sends them with the next one that ends an exchange
//! (ReadyForQuery, CopyInResponse, an authentication request, ...), when
//! they pass [`REPLY_BYTES_HELD_MAX`], or when the connection would wait
//! for the client: a client that sends Parse and Flush and waits gets its
//! ParseComplete, and nothing is ever held while the gateway waits for
//! the client.
//!
//! Invariants: pgwire never sees a frame of the checked types that its
//! decoder could read past; nothing the client sends is held in memory
//! beyond one frame of at most [`MESSAGE_BYTES_MAX`] bytes (and one read's
//! worth of the next); no reply is held while the connection waits to read
//! from the client, or at its end.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, DefaultClient, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{process_error, process_message, PgWireMessageServerCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// The longest message a client may send (a Query, a Bind with its
/// parameters, a CopyData chunk): PostgreSQL allows 1 GiB; SpanDB's
/// statements are at most `sql::limits::STATEMENT_BYTES_MAX` and values
/// `sql::limits::VALUE_BYTES_MAX`, so a Bind of two largest values fits.
pub const MESSAGE_BYTES_MAX: usize = 2 * sql::limits::VALUE_BYTES_MAX + 1024 * 1024;
/// The longest startup packet (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
const STARTUP_BYTES_MAX: usize = 10_000;
/// How long a client may take from connecting to finishing its startup
/// (authentication included): PostgreSQL's `authentication_timeout` is 1
/// minute too.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection's last replies (and a FATAL) may take to be
/// written as it closes: a client that stopped reading is not waited for.
pub const LAST_WORDS_TIMEOUT: Duration = Duration::from_secs(1);
/// How much [`Checked`] asks the socket for at a time, at least.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// How many bytes of replies [`Checked`] holds back at most before it
/// sends them (PostgreSQL's output buffer is 8 KiB; a larger one means
/// fewer system calls for long results).
pub const REPLY_BYTES_HELD_MAX: usize = 64 * 1024;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// Why a connection is refused or ended: SQLSTATE and message.
#[derive(Debug, PartialEq)]
pub struct Refusal(pub &'static str, pub String);

fn violation(message: impl Into<String>) -> Refusal {
    Refusal("08P01", message.into())
}

/// Serves one client connection with `handlers`, its frames checked (see
/// the module docs). Returns when the connection is over: `Some` with why
/// if `ending` ended it (the server's decision: the client was sent FATAL
/// with it, as PostgreSQL sends when it ends a session), `None` if the
/// client left or broke the protocol. `ending` is heeded while waiting
/// for a message and while one is handled (the handling is abandoned: a
/// stuck write to a client that stopped reading must not keep a session,
/// and its locks, alive).
pub async fn serve<H: PgWireServerHandlers>(
    mut tcp: TcpStream,
    handlers: H,
    ending: impl std::future::Future<Output = Refusal>,
) -> Option<Refusal> {
    let deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(deadline);
    let first = tokio::select! {
        first = startup(&mut tcp) => first,
        () = &mut deadline => return None,
    };
    let first = match first {
        Ok(Some(packet)) => packet,
        Ok(None) => return None,
        Err(refusal) => {
            let _ = tcp.write_all(&fatal(&refusal)).await;
            return None;
        }
    };
    tokio::pin!(ending);
    let mut ended = None;
    let peer = tcp.peer_addr().unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut parts = FramedParts::new(Checked::new(tcp), PgWireMessageServerCodec::new(DefaultClient::new(peer, false)));
    parts.read_buf = BytesMut::from(&first[..]);
    let mut socket = Framed::from_parts(parts);
    socket.set_state(PgWireConnectionState::AwaitingStartup);

    let startup_handler = handlers.startup_handler();
    let simple_query_handler = handlers.simple_query_handler();
    let extended_query_handler = handlers.extended_query_handler();
    let copy_handler = handlers.copy_handler();
    let cancel_handler = handlers.cancel_handler();
    let error_handler = handlers.error_handler();
    // pgwire's own loop (`pgwire::tokio::process_socket`), on our stream.
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::select! {
                message = socket.next() => message,
                () = &mut deadline => None,
            }
        } else {
            tokio::select! {
                message = socket.next() => message,
                why = &mut ending => {
                    ended = Some(why);
                    break;
                }
            }
        };
        // End of stream, a refused frame, or bytes that do not decode.
        let Some(Ok(message)) = message else { break };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let wait_for_sync = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // pgwire answers a CancelRequest and closes its connection.
        let cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let processing = process_message(
            message,
            &mut socket,
            startup_handler.clone(),
            simple_query_handler.clone(),
            extended_query_handler.clone(),
            copy_handler.clone(),
            cancel_handler.clone(),
        );
        let processed = tokio::select! {
            processed = processing => processed,
            // Ended while a message is handled: a terminated statement,
            // or a client that stopped reading what it asked for (the
            // handling waits on the socket). The statement runs on, or
            // stops, on its own thread; its reply is not awaited.
            why = &mut ending, if !starting => {
                ended = Some(why);
                break;
            }
        };
        if let Err(mut e) = processed {
            error_handler.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            if process_error(&mut socket, e, wait_for_sync).await.is_err() || fatal {
                break;
            }
        }
        if cancel_request {
            break;
        }
    }
    // pgwire's last words first, then ours; a client that does not read
    // them is not waited for.
    let last_words = async {
        let _ = socket.flush().await;
        let checked = socket.get_mut();
        let _ = std::future::poll_fn(|cx| checked.poll_send(cx)).await;
        if let Some(refusal) = checked.refusal.take().or_else(|| ended.as_ref().map(|e| Refusal(e.0, e.1.clone()))) {
            let _ = checked.stream.write_all(&fatal(&refusal)).await;
        }
        let _ = checked.stream.shutdown().await;
    };
    let _ = tokio::time::timeout(LAST_WORDS_TIMEOUT, last_words).await;
    ended
}

/// The startup phase: answers SSLRequest and GSSENCRequest with 'N' (no
/// TLS yet) and returns the startup or cancel packet, checked; `None` if
/// the client left.
async fn startup(tcp: &mut TcpStream) -> Result<Option<Vec<u8>>, Refusal> {
    loop {
        let mut len = [0u8; 4];
        if tcp.read_exact(&mut len).await.is_err() {
            return Ok(None);
        }
        let len = i32::from_be_bytes(len);
        let Some(body_len) = usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) else {
            return Err(violation(format!("invalid length of startup packet: {len}")));
        };
        if !(4..=STARTUP_BYTES_MAX).contains(&body_len) {
            return Err(violation(format!("invalid length of startup packet: {len}")));
        }
        let mut body = vec![0u8; body_len];
        if tcp.read_exact(&mut body).await.is_err() {
            return Ok(None);
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                if tcp.write_all(b"N").await.is_err() {
                    return Ok(None);
                }
            }
            CANCEL_REQUEST if body_len != 12 => return Err(violation("invalid length of cancel request")),
            _ => {
                let mut packet = len.to_be_bytes().to_vec();
                packet.extend_from_slice(&body);
                return Ok(Some(packet));
            }
        }
    }
}

/// The client's socket as pgwire reads it: whole frames only, each
/// checked before it is handed out; at a frame that fails the check,
/// the end of stream (and [`Checked::refusal`] says why). Replies are
/// gathered in [`Checked::replies`] and sent together (module docs).
struct Checked {
    stream: TcpStream,
    /// Bytes read from the socket: first `ready` checked ones, then the
    /// start of a frame not yet whole.
    buffer: BytesMut,
    ready: usize,
    refusal: Option<Refusal>,
    ended: bool,
    /// Replies written by pgwire and not sent yet.
    replies: BytesMut,
    /// The message boundaries of what pgwire wrote.
    reply_types: ReplyTypes,
}

/// The type of the last reply message written, read off the bytes as
/// they are written (a message's header may come in pieces).
#[derive(Default)]
struct ReplyTypes {
    header: [u8; 5],
    /// Bytes of `header` seen of the message being written.
    header_seen: usize,
    /// Bytes of its body still to come.
    body_left: usize,
    /// The type of the last message whose header was seen.
    last: Option<u8>,
}

impl ReplyTypes {
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.header_seen == 5 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                if self.body_left == 0 {
                    self.header_seen = 0;
                }
                continue;
            }
            self.header[self.header_seen] = bytes[0];
            self.header_seen += 1;
            bytes = &bytes[1..];
            if self.header_seen == 5 {
                let h = self.header;
                self.last = Some(h[0]);
                self.body_left = (u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize).saturating_sub(4);
                if self.body_left == 0 {
                    self.header_seen = 0;
                }
            }
        }
    }

    /// Whether the bytes written end a whole message.
    fn at_boundary(&self) -> bool {
        self.header_seen == 0
    }
}

/// Whether a reply whose type is `tag`, last of those written so far, may
/// wait for more: it is part of an exchange that goes on, up to the
/// ReadyForQuery that ends it.
fn held_back(tag: u8) -> bool {
    matches!(
        tag,
        b'1' // ParseComplete
            | b'2' // BindComplete
            | b'3' // CloseComplete
            | b't' // ParameterDescription
            | b'T' // RowDescription
            | b'n' // NoData
            | b'D' // DataRow
            | b'C' // CommandComplete
            | b'I' // EmptyQueryResponse
            | b's' // PortalSuspended
    )
}

impl Checked {
    fn new(stream: TcpStream) -> Checked {
        Checked {
            stream,
            buffer: BytesMut::new(),
            ready: 0,
            refusal: None,
            ended: false,
            replies: BytesMut::new(),
            reply_types: ReplyTypes::default(),
        }
    }

    /// Sends every held reply; `Pending` until the socket took them all.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.replies.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.replies) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.replies.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Checks the whole frames after the ready bytes, making them ready;
    /// `Ok(n)`: the unchecked rest needs `n` more bytes to be a whole
    /// frame (at least one).
    fn check_whole_frames(&mut self) -> Result<usize, Refusal> {
        loop {
            let rest = &self.buffer[self.ready..];
            if rest.len() < 5 {
                return Ok(5 - rest.len());
            }
            let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
            let body_len = match usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) {
                Some(n) if n <= MESSAGE_BYTES_MAX => n,
                Some(n) => {
                    return Err(Refusal(
                        "54000",
                        format!("message of {n} bytes is longer than the limit of {MESSAGE_BYTES_MAX}"),
                    ))
                }
                None => return Err(violation(format!("invalid message length {len}"))),
            };
            if rest.len() < 5 + body_len {
                return Ok(5 + body_len - rest.len());
            }
            check(rest[0], &rest[5..5 + body_len])?;
            self.ready += 5 + body_len;
        }
    }
}

impl AsyncRead for Checked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buffer[..n]);
                this.buffer.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.ended || this.refusal.is_some() {
                return Poll::Ready(Ok(()));
            }
            let missing = match this.check_whole_frames() {
                Ok(_) if this.ready > 0 => continue,
                Ok(missing) => missing,
                Err(refusal) => {
                    this.refusal = Some(refusal);
                    this.buffer = BytesMut::new();
                    return Poll::Ready(Ok(()));
                }
            };
            this.buffer.reserve(missing.max(READ_CHUNK_BYTES));
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.stream), cx, &mut this.buffer) {
                Poll::Ready(Ok(0)) => this.ended = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // About to wait for the client: it gets every reply
                    // first (a write error shows on the next write).
                    let _ = this.poll_send(cx);
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for Checked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(bytes)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replies.len() >= REPLY_BYTES_HELD_MAX {
            ready!(this.poll_send(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            this.replies.extend_from_slice(b);
            this.reply_types.scan(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let whole = this.reply_types.at_boundary();
        match this.reply_types.last {
            Some(tag) if whole && held_back(tag) && this.replies.len() < REPLY_BYTES_HELD_MAX => Poll::Ready(Ok(())),
            _ => {
                ready!(this.poll_send(cx))?;
                Pin::new(&mut this.stream).poll_flush(cx)
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// A cursor over a message body that refuses to read past its end.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if n > self.0.len() {
            return Err(violation("insufficient data left in message"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn cstring(&mut self) -> Result<(), Refusal> {
        let end = self.0.iter().position(|b| *b == 0).ok_or_else(|| violation("unterminated string in message"))?;
        self.take(end + 1).map(|_| ())
    }

    fn int16(&mut self) -> Result<i16, Refusal> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn int32(&mut self) -> Result<i32, Refusal> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn count(&mut self) -> Result<usize, Refusal> {
        usize::try_from(self.int16()?).map_err(|_| violation("negative count in message"))
    }

    fn end(self) -> Result<(), Refusal> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(violation("invalid message format: trailing bytes"))
        }
    }
}

/// Whether a frontend message of type `tag` is well-formed (the ones
/// pgwire's decoders read by trusting their counts and lengths).
fn check(tag: u8, body: &[u8]) -> Result<(), Refusal> {
    let mut b = Body(body);
    match tag {
        b'P' => {
            b.cstring()?;
            b.cstring()?;
            let types = b.count()?;
            b.take(types * 4)?;
            b.end()
        }
        b'B' => {
            b.cstring()?;
            b.cstring()?;
            let formats = b.count()?;
            b.take(formats * 2)?;
            for _ in 0..b.count()? {
                match b.int32()? {
                    -1 => {}
                    n => b.take(usize::try_from(n).map_err(|_| violation("invalid parameter length"))?).map(|_| ())?,
                }
            }
            let results = b.count()?;
            b.take(results * 2)?;
            b.end()
        }
        b'E' => {
            b.cstring()?;
            b.int32()?;
            b.end()
        }
        b'D' | b'C' => {
            b.take(1)?;
            b.cstring()?;
            b.end()
        }
        b'Q' | b'f' => {
            b.cstring()?;
            b.end()
        }
        _ => Ok(()),
    }
}

/// A FATAL ErrorResponse.
fn fatal(refusal: &Refusal) -> Vec<u8> {
    let mut fields = Vec::new();
    for (kind, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', refusal.0), (b'M', refusal.1.as_str())] {
        fields.push(kind);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&((fields.len() + 4) as i32).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    /// Goal: well-formed messages pass; every prefix of one that is cut
    /// short, and ones with counts or lengths past their end, are refused
    /// as protocol violations (never read past).
    #[test]
    fn short_and_overlong_bodies_are_violations() {
        let parse = [cstr("s1"), cstr("SELECT $1"), vec![0, 1, 0, 0, 0, 23]].concat();
        let bind = [cstr(""), cstr("s1"), vec![0, 1, 0, 1], vec![0, 1, 0, 0, 0, 4, 0, 0, 0, 7], vec![0, 0]].concat();
        let execute = [cstr(""), vec![0, 0, 0, 0]].concat();
        let describe = [vec![b'S'], cstr("s1")].concat();
        for (tag, body) in [(b'P', &parse), (b'B', &bind), (b'E', &execute), (b'D', &describe), (b'C', &describe)] {
            assert_eq!(check(tag, body), Ok(()), "{}", tag as char);
            for cut in 0..body.len() {
                let e = check(tag, &body[..cut]).unwrap_err();
                assert_eq!(e.0, "08P01", "{} cut at {cut}", tag as char);
            }
        }
        let huge_param = [cstr(""), cstr(""), vec![0, 0], vec![0, 1], 1_000_000i32.to_be_bytes().to_vec()].concat();
        assert!(check(b'B', &huge_param).is_err());
        let negative = [cstr(""), cstr(""), vec![0xff, 0xff]].concat();
        assert!(check(b'B', &negative).is_err());
        assert!(check(b'S', &[]).is_ok());
    }

    #[test]
    fn a_fatal_error_is_one_error_response() {
        let m = fatal(&violation("bad"));
        assert_eq!(m[0], b'E');
        assert_eq!(i32::from_be_bytes([m[1], m[2], m[3], m[4]]) as usize, m.len() - 1);
        assert!(m.windows(6).any(|w| w == b"C08P01"));
    }

    fn reply(tag: u8, body: &[u8]) -> Vec<u8> {
        [vec![tag], ((body.len() + 4) as u32).to_be_bytes().to_vec(), body.to_vec()].concat()
    }

    /// Goal: the type of the last reply is known however the bytes are
    /// cut, and only at a message's end is the stream at a boundary.
    #[test]
    fn reply_types_are_read_across_any_cut() {
        let bytes = [reply(b'2', b""), reply(b'D', b"\0\x01\0\0\0\x01x"), reply(b'Z', b"I")].concat();
        for cut in 0..=bytes.len() {
            let mut types = ReplyTypes::default();
            types.scan(&bytes[..cut]);
            types.scan(&bytes[cut..]);
            assert_eq!(types.last, Some(b'Z'), "cut at {cut}");
            assert!(types.at_boundary());
        }
        let mut types = ReplyTypes::default();
        types.scan(&bytes[..11]);
        assert_eq!((types.last, types.at_boundary()), (Some(b'D'), false));
    }

    /// A gateway's end of a connection, and its client's (a plain
    /// non-blocking socket, read without a runtime).
    async fn pair() -> (Checked, std::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Checked::new(server), client)
    }

    /// What the client can read now, without waiting (loopback delivers
    /// a write before the write returns).
    fn readable_now(mut client: &std::net::TcpStream) -> Vec<u8> {
        use std::io::Read;
        let mut buf = vec![0u8; 1024];
        match client.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    /// Goal: replies in the middle of an exchange wait for the one that
    /// ends it and go out together; a reply is never held while the
    /// connection waits for the client (a client that sent Parse and
    /// Flush gets its ParseComplete); shutting down sends what is held.
    #[tokio::test]
    async fn replies_are_held_to_the_end_of_an_exchange_but_never_while_waiting_for_the_client() {
        let (mut checked, client) = pair().await;
        let (bind, row, done, ready) =
            (reply(b'2', b""), reply(b'D', b"\0\0"), reply(b'C', b"SELECT 1\0"), reply(b'Z', b"I"));
        for m in [&bind, &row, &done] {
            checked.write_all(m).await.unwrap();
            checked.flush().await.unwrap();
        }
        assert_eq!(readable_now(&client), b"");
        checked.write_all(&ready).await.unwrap();
        checked.flush().await.unwrap();
        assert_eq!(readable_now(&client), [&bind[..], &row, &done, &ready].concat());

        let parsed = reply(b'1', b"");
        checked.write_all(&parsed).await.unwrap();
        checked.flush().await.unwrap();
        assert_eq!(readable_now(&client), b"");
        // The server reads; the client has sent nothing: it gets its reply.
        let mut buf = [0u8; 16];
        let read = std::pin::pin!(checked.read(&mut buf));
        assert!(futures::poll!(read).is_pending(), "nothing to read");
        assert_eq!(readable_now(&client), parsed);

        checked.write_all(&bind).await.unwrap();
        checked.shutdown().await.unwrap();
        assert_eq!(readable_now(&client), bind);
    }

    /// Goal: a long result is sent as it grows, not held whole.
    #[tokio::test]
    async fn a_long_result_is_sent_before_it_ends() {
        let (mut checked, client) = pair().await;
        let row = reply(b'D', &[7u8; 1000]);
        for _ in 0..(2 * REPLY_BYTES_HELD_MAX / row.len()) {
            checked.write_all(&row).await.unwrap();
            checked.flush().await.unwrap();
        }
        assert!(checked.replies.len() < REPLY_BYTES_HELD_MAX);
        assert!(!readable_now(&client).is_empty());
    }
}
