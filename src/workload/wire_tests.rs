//! The startup's malformed and hostile paths, against a scripted server on
//! an in-memory pipe. (Every real method, against real servers set up for
//! each, is in `tests/wire_auth.rs`.)

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{Stream, WireConn, WireError};

/// A backend message: tag, length, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(tag);
    b.put_i32(body.len() as i32 + 4);
    b.put_slice(body);
    b.to_vec()
}

fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(extra);
    msg(b'R', &body)
}

fn ok() -> Vec<u8> {
    auth(0, &[])
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

fn key(pid: i32, secret: i32) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(&secret.to_be_bytes());
    msg(b'K', &body)
}

fn error(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in [(b'S', "FATAL"), (b'C', code), (b'M', message)] {
        body.push(t);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    msg(b'E', &body)
}

/// What the scripted server does, in order.
enum Step {
    /// Writes these bytes.
    Send(Vec<u8>),
    /// Reads one client message and checks its tag.
    Expect(u8),
    /// Closes the pipe.
    Close,
}

/// Reads the startup message (untagged), then plays `script`; returns the
/// bodies of the client messages it read.
async fn serve(mut s: DuplexStream, script: Vec<Step>) -> Vec<Vec<u8>> {
    let len = s.read_i32().await.unwrap() as usize;
    let mut startup = vec![0; len - 4];
    s.read_exact(&mut startup).await.unwrap();
    let mut got = Vec::new();
    for step in script {
        match step {
            Step::Send(b) => {
                if s.write_all(&b).await.is_err() {
                    break;
                }
            }
            Step::Expect(tag) => {
                let Ok(t) = s.read_u8().await else { break };
                assert_eq!(t as char, tag as char, "the client sent another message");
                let len = s.read_i32().await.unwrap() as usize;
                let mut body = vec![0; len - 4];
                s.read_exact(&mut body).await.unwrap();
                got.push(body);
            }
            Step::Close => break,
        }
    }
    got
}

async fn connect(password: Option<&str>, script: Vec<Step>) -> (Result<WireConn, WireError>, Vec<Vec<u8>>) {
    let (client, server) = tokio::io::duplex(4096);
    let server = tokio::spawn(serve(server, script));
    let mut config = tokio_postgres::Config::new();
    config.user("app").dbname("shop");
    if let Some(p) = password {
        config.password(p);
    }
    let conn = WireConn::start(Stream::Memory(client), None, &config, "test").await;
    (conn, server.await.unwrap())
}

fn protocol_error(r: Result<WireConn, WireError>) -> String {
    match r {
        Err(WireError::Protocol(m)) => m,
        Err(e) => panic!("not a protocol error: {e}"),
        Ok(_) => panic!("connected"),
    }
}

#[tokio::test]
async fn a_trusted_session_reads_its_key_and_parameters() {
    let param = msg(b'S', b"server_version\x0015.1\x00");
    let (conn, _) = connect(None, vec![Step::Send([ok(), param, key(42, 7), ready()].concat())]).await;
    let conn = conn.unwrap();
    assert_eq!((conn.key.pid, conn.key.secret), (42, 7));
}

#[tokio::test]
async fn authentication_ok_is_accepted_once() {
    let (conn, _) = connect(None, vec![Step::Send([ok(), ok(), ready()].concat())]).await;
    assert!(protocol_error(conn).contains("AuthenticationOk after authentication"));
}

#[tokio::test]
async fn ready_before_authentication_is_refused() {
    let (conn, _) = connect(Some("pw"), vec![Step::Send(ready())]).await;
    assert!(protocol_error(conn).contains("ReadyForQuery before authentication"));
}

#[tokio::test]
async fn a_password_is_never_sent_when_none_was_given() {
    let (conn, got) = connect(None, vec![Step::Send(auth(3, &[])), Step::Expect(b'p')]).await;
    assert!(matches!(conn, Err(WireError::NoPassword)), "{:?}", conn.err());
    assert!(got.is_empty(), "the client sent a password: {got:?}");
    let salt = [1, 2, 3, 4];
    let (conn, got) = connect(None, vec![Step::Send(auth(5, &salt)), Step::Expect(b'p')]).await;
    assert!(matches!(conn, Err(WireError::NoPassword)));
    assert!(got.is_empty());
}

#[tokio::test]
async fn cleartext_and_md5_send_what_was_asked() {
    let script = vec![Step::Send(auth(3, &[])), Step::Expect(b'p'), Step::Send([ok(), ready()].concat())];
    let (conn, got) = connect(Some("s3cret"), script).await;
    conn.unwrap();
    assert_eq!(got, vec![b"s3cret\0".to_vec()]);

    let salt = [9, 8, 7, 6];
    let script = vec![Step::Send(auth(5, &salt)), Step::Expect(b'p'), Step::Send([ok(), ready()].concat())];
    let (conn, got) = connect(Some("s3cret"), script).await;
    conn.unwrap();
    let hash = postgres_protocol::authentication::md5_hash(b"app", b"s3cret", salt);
    assert_eq!(got, vec![[hash.as_bytes(), b"\0"].concat()]);
}

#[tokio::test]
async fn scram_messages_out_of_order_are_refused() {
    let offer = auth(10, b"SCRAM-SHA-256\0\0");
    // Final where continue is due.
    let script = vec![Step::Send(offer.clone()), Step::Expect(b'p'), Step::Send(auth(12, b"v=abc"))];
    let (conn, _) = connect(Some("pw"), script).await;
    assert!(protocol_error(conn).contains("SASL final where SCRAM's continue was due"));
    // Ok straight after the first message: the server never proved it
    // knows the password.
    let script = vec![Step::Send(offer.clone()), Step::Expect(b'p'), Step::Send(ok())];
    let (conn, _) = connect(Some("pw"), script).await;
    assert!(protocol_error(conn).contains("AuthenticationOk where SCRAM's continue was due"));
    // Continue without a SASL start.
    let (conn, _) = connect(Some("pw"), vec![Step::Send(auth(11, b"r=x,s=y,i=1"))]).await;
    assert!(protocol_error(conn).contains("SASL continue before authentication"));
    // A continue that is not SCRAM's.
    let script = vec![Step::Send(offer), Step::Expect(b'p'), Step::Send(auth(11, b"garbage"))];
    let (conn, _) = connect(Some("pw"), script).await;
    assert!(protocol_error(conn).contains("SCRAM"));
}

#[tokio::test]
async fn only_scram_sha_256_is_taken() {
    let (conn, _) = connect(Some("pw"), vec![Step::Send(auth(10, b"SCRAM-SHA-256-PLUS\0\0"))]).await;
    assert!(protocol_error(conn).contains("needs TLS"));
    let (conn, _) = connect(Some("pw"), vec![Step::Send(auth(7, &[]))]).await;
    assert!(protocol_error(conn).contains("does not support"));
}

#[tokio::test]
async fn the_servers_refusal_and_a_closed_pipe_are_errors() {
    let script = vec![Step::Send(auth(3, &[])), Step::Expect(b'p'), Step::Send(error("28P01", "password failed"))];
    let (conn, _) = connect(Some("wrong"), script).await;
    match conn {
        Err(WireError::Db { code, message, .. }) => {
            assert_eq!((code.as_str(), message.as_str()), ("28P01", "password failed"))
        }
        other => panic!("{:?}", other.err()),
    }
    let (conn, _) = connect(Some("pw"), vec![Step::Send(auth(3, &[])), Step::Close]).await;
    assert!(matches!(conn, Err(WireError::Io(_))), "{:?}", conn.err());
}

#[tokio::test]
async fn a_message_of_impossible_length_is_an_error_not_a_hang() {
    let mut bad = vec![b'R'];
    bad.extend_from_slice(&2i32.to_be_bytes());
    let (conn, _) = connect(Some("pw"), vec![Step::Send(bad)]).await;
    assert!(conn.is_err());
}
