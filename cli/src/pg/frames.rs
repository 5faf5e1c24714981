//! The client's bytes, checked before pgwire decodes them.
//!
//! pgwire's decoders trust the lengths inside a message: a Bind, Parse or
//! Execute whose body ends early makes them read past it and panic (found
//! by `pg_drivers`' generated-message test). A panic in a connection's
//! task ends only that connection, but no byte sequence may panic the
//! server, and a message may also announce up to 1 GiB, which pgwire would
//! buffer. So the gateway puts a checking pump between the client's TCP
//! socket and pgwire, which serves a local socket pair:
//!
//! ```text
//!   client ──TCP──> [ startup: SSLRequest/GSSENCRequest -> 'N';
//!                     every frame: length <= MESSAGE_BYTES_MAX,
//!                     Parse/Bind/Execute/Describe/Close well-formed ] ──unix──> pgwire
//!   client <──TCP── [ copied as is ] <──unix── pgwire
//! ```
//!
//! A frame that fails the check ends the connection the way PostgreSQL
//! does: pgwire sees the client's end of stream (and rolls back what the
//! session had open), then the client gets a FATAL ErrorResponse
//! (08P01 protocol violation, or 54000 for a message over the limit) and
//! the socket closes.
//!
//! Invariants: pgwire never sees a frame of the checked types that its
//! decoder could read past; nothing the client sends is held in memory
//! beyond one frame of at most [`MESSAGE_BYTES_MAX`] bytes.

use pgwire::api::PgWireServerHandlers;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UnixStream};

/// The longest message a client may send (a Query, a Bind with its
/// parameters, a CopyData chunk): PostgreSQL allows 1 GiB; SpanDB's
/// statements are at most `sql::limits::STATEMENT_BYTES_MAX` and values
/// `sql::limits::VALUE_BYTES_MAX`, so a Bind of two largest values fits.
pub const MESSAGE_BYTES_MAX: usize = 2 * sql::limits::VALUE_BYTES_MAX + 1024 * 1024;
/// The longest startup packet (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
const STARTUP_BYTES_MAX: usize = 10_000;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// Why a connection is refused: SQLSTATE and message.
#[derive(Debug, PartialEq)]
struct Refusal(&'static str, String);

fn violation(message: impl Into<String>) -> Refusal {
    Refusal("08P01", message.into())
}

/// Serves one client connection with `handlers`, through the checking
/// pump (module docs). Returns when the connection is over.
pub async fn serve<H: PgWireServerHandlers>(tcp: TcpStream, handlers: H) {
    let (mut from_client, mut to_client) = tcp.into_split();
    let first = match startup(&mut from_client, &mut to_client).await {
        Ok(Some(packet)) => packet,
        Ok(None) => return,
        Err(refusal) => {
            let _ = to_client.write_all(&fatal(&refusal)).await;
            return;
        }
    };
    let Ok((ours, theirs)) = UnixStream::pair() else { return };
    let (mut from_pgwire, mut to_pgwire) = ours.into_split();
    if to_pgwire.write_all(&first).await.is_err() {
        return;
    }
    let server = pgwire::tokio::process_socket_unix(theirs, handlers);
    let pumps = async move {
        let refusal = {
            let inbound = async {
                let refusal = forward(&mut from_client, &mut to_pgwire).await;
                // End of stream: pgwire ends the session (rolling back).
                let _ = to_pgwire.shutdown().await;
                refusal
            };
            let outbound = tokio::io::copy(&mut from_pgwire, &mut to_client);
            tokio::pin!(inbound, outbound);
            tokio::select! {
                refusal = &mut inbound => {
                    // Let pgwire's last words (and its end) reach the client.
                    let _ = (&mut outbound).await;
                    refusal
                }
                // pgwire ended the connection (Terminate, a FATAL error).
                _ = &mut outbound => None,
            }
        };
        if let Some(refusal) = refusal {
            let _ = to_client.write_all(&fatal(&refusal)).await;
        }
        let _ = to_client.shutdown().await;
    };
    let (_served, ()) = tokio::join!(server, pumps);
}

/// The startup phase: answers SSLRequest and GSSENCRequest with 'N' (no
/// TLS yet) and returns the startup or cancel packet, checked; `None` if
/// the client left.
async fn startup(from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf) -> Result<Option<Vec<u8>>, Refusal> {
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).await.is_err() {
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
        if from.read_exact(&mut body).await.is_err() {
            return Ok(None);
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                if to.write_all(b"N").await.is_err() {
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

/// Copies the client's frames to pgwire, each checked first; returns why
/// it stopped early, or `None` when the client ended the stream.
async fn forward(from: &mut OwnedReadHalf, to: &mut (impl AsyncWrite + Unpin)) -> Option<Refusal> {
    let mut frame = Vec::new();
    loop {
        let mut header = [0u8; 5];
        if from.read_exact(&mut header).await.is_err() {
            return None;
        }
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let body_len = match usize::try_from(len).ok().and_then(|l| l.checked_sub(4)) {
            Some(n) if n <= MESSAGE_BYTES_MAX => n,
            Some(n) => {
                return Some(Refusal(
                    "54000",
                    format!("message of {n} bytes is longer than the limit of {MESSAGE_BYTES_MAX}"),
                ))
            }
            None => return Some(violation(format!("invalid message length {len}"))),
        };
        frame.clear();
        frame.extend_from_slice(&header);
        frame.resize(5 + body_len, 0);
        if from.read_exact(&mut frame[5..]).await.is_err() {
            return None;
        }
        if let Err(refusal) = check(header[0], &frame[5..]) {
            return Some(refusal);
        }
        if to.write_all(&frame).await.is_err() {
            return None;
        }
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
}
