//! A workload connection that speaks Postgres' extended query protocol on
//! its own socket, in the task that sends the request.
//!
//! tokio-postgres runs each connection as a task of its own and hands it
//! every request through a channel: two task hops and two cross-thread
//! wake-ups per query. At pgbench's rates on two cores that costs a third
//! of the throughput (measured: 34.5k against pgbench's 58k TPS at 8
//! clients). Here the request's own task writes Bind/Execute/Sync and reads
//! to ReadyForQuery, as libpq does for pgbench. Messages are encoded and
//! parsed by `postgres-protocol`, the crate tokio-postgres is built on;
//! statements are prepared with the parameter types tokio-postgres found.
//!
//! It supports what the workload needs: trust, password, MD5 and
//! SCRAM-SHA-256 authentication (see [`super::startup`]) over TCP or a Unix
//! socket, prepared statements, simple queries (BEGIN, COMMIT, SET) and
//! cancel requests. It reaches the server the way tokio-postgres does, so
//! that its connections land where the pool's statements were prepared:
//! each host in order (its `hostaddr` when given), each address a name
//! resolves to, moving on after any failure, and with
//! `target_session_attrs=read-write` skipping a server in recovery.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{DataRowBody, ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::types::Type;

use crate::datagen::{PgKind, Value};
use crate::ledger::{Capture, spill::Captured};

/// Why a request on a wire connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The server answered with an error.
    #[error("ERROR {code}: {message}")]
    Db {
        /// SQLSTATE.
        code: String,
        /// The primary message.
        message: String,
        /// 1-based character position in the statement, if given.
        position: Option<u32>,
    },
    /// The socket failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Something the protocol does not allow, or authentication the
    /// connection does not support.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server asks for a password and the settings hold none.
    #[error("the server asks for a password and none was given")]
    NoPassword,
}

impl WireError {
    /// The SQLSTATE, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            WireError::Db { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The statement a request runs.
#[derive(Debug, Clone, Copy)]
pub enum Stmt<'a> {
    /// One prepared on the connection under this name.
    Named(&'a str),
    /// Parsed with the request, as the unnamed statement.
    Unnamed {
        /// Its SQL.
        sql: &'a str,
        /// Its parameters' types.
        types: &'a [Type],
    },
}

/// Where a server listens.
#[derive(Debug, Clone)]
enum Addr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// A connection's socket (or, in tests, an in-memory pipe).
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(test)]
    Memory(tokio::io::DuplexStream),
}

/// The hosts of `config`, in its order, each with its port: a host's own
/// port, else the one port given, else 5432; its `hostaddr` when given.
fn hosts(config: &tokio_postgres::Config) -> Result<Vec<(Host, u16)>, WireError> {
    let (names, addrs, ports) = (config.get_hosts(), config.get_hostaddrs(), config.get_ports());
    let count = names.len().max(addrs.len());
    if count == 0 {
        return Err(WireError::Protocol("the connection settings name no host".into()));
    }
    Ok((0..count)
        .map(|i| {
            let port = ports.get(i).or_else(|| ports.first()).copied().unwrap_or(5432);
            let host = match addrs.get(i) {
                Some(ip) => Host::Tcp(ip.to_string()),
                None => names[i].clone(),
            };
            (host, port)
        })
        .collect())
}

/// Every address a host resolves to, in the resolver's order.
async fn addresses(host: &Host, port: u16) -> Result<Vec<Addr>, WireError> {
    Ok(match host {
        Host::Tcp(name) => tokio::net::lookup_host((name.as_str(), port)).await?.map(Addr::Tcp).collect(),
        Host::Unix(dir) => vec![Addr::Unix(dir.join(format!(".s.PGSQL.{port}")))],
    })
}

impl Addr {
    async fn open(&self) -> Result<Stream, WireError> {
        Ok(match self {
            Addr::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }
}

impl Stream {
    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
            #[cfg(test)]
            Stream::Memory(s) => s.write_all(buf).await,
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => read_into(s, buf).await,
            Stream::Unix(s) => read_into(s, buf).await,
            #[cfg(test)]
            Stream::Memory(s) => read_into(s, buf).await,
        }
    }
}

/// How long opening a socket and the whole startup may take when the
/// settings give no `connect_timeout`: a server that accepts and then says
/// nothing must not hold a request forever.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn read_into<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(8192);
    s.read_buf(buf).await
}

/// What a cancel request needs: where, and the backend's key.
#[derive(Debug, Clone)]
pub struct CancelKey {
    addr: Option<Addr>,
    pid: i32,
    secret: i32,
}

impl CancelKey {
    /// Asks the server to cancel whatever the backend is running.
    pub async fn cancel(&self) -> Result<(), WireError> {
        let Some(addr) = &self.addr else { return Ok(()) };
        let mut stream = addr.open().await?;
        let mut out = BytesMut::new();
        frontend::cancel_request(self.pid, self.secret, &mut out);
        stream.write_all(&out).await?;
        Ok(())
    }
}

/// One workload connection.
pub struct WireConn {
    stream: Stream,
    /// Messages waiting to be written.
    pub(super) out: BytesMut,
    inb: BytesMut,
    key: CancelKey,
    broken: bool,
}

pub(super) fn db_error(body: &ErrorResponseBody) -> WireError {
    let (mut code, mut message, mut position) = (String::new(), String::new(), None);
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        let value = || String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = value(),
            b'M' => message = value(),
            b'P' => position = value().parse().ok(),
            _ => {}
        }
    }
    WireError::Db { code, message, position }
}

fn protocol(e: impl std::fmt::Display) -> WireError {
    WireError::Protocol(e.to_string())
}

impl WireConn {
    /// Connects, authenticates and waits until the server is ready: each
    /// host of `config` in turn, as tokio-postgres does, until one takes
    /// the session. The error is the last host's.
    pub async fn connect(config: &tokio_postgres::Config, application_name: &str) -> Result<WireConn, WireError> {
        let timeout = config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut last = None;
        for (host, port) in hosts(config)? {
            let addrs = match addresses(&host, port).await {
                Ok(a) => a,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            for addr in addrs {
                let attempt = Self::connect_to(&addr, config, application_name);
                match tokio::time::timeout(timeout, attempt).await {
                    Ok(Ok(conn)) => return Ok(conn),
                    Ok(Err(e)) => last = Some(e),
                    Err(_) => last = Some(protocol(format!("no session within {}s", timeout.as_secs_f64()))),
                }
            }
        }
        Err(last.unwrap_or_else(|| protocol("no address to connect to")))
    }

    /// One address: the socket, the startup, and the session check.
    async fn connect_to(addr: &Addr, config: &tokio_postgres::Config, app: &str) -> Result<WireConn, WireError> {
        let stream = addr.open().await?;
        let mut conn = Self::start(stream, Some(addr.clone()), config, app).await?;
        if config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite
            && conn.simple_value("SHOW transaction_read_only").await?.as_deref() == Some("on")
        {
            return Err(protocol("the server is read-only and target_session_attrs=read-write"));
        }
        Ok(conn)
    }

    /// The startup over an open `stream`: the startup message, then
    /// authentication and the session's parameters.
    async fn start(
        stream: Stream,
        addr: Option<Addr>,
        config: &tokio_postgres::Config,
        application_name: &str,
    ) -> Result<WireConn, WireError> {
        let user = config.get_user().unwrap_or("postgres");
        let db = config.get_dbname().unwrap_or(user);
        let mut conn = WireConn {
            stream,
            out: BytesMut::with_capacity(4096),
            inb: BytesMut::with_capacity(8192),
            key: CancelKey { addr, pid: 0, secret: 0 },
            broken: false,
        };
        let params = [("user", user), ("database", db), ("application_name", application_name)];
        frontend::startup_message(params, &mut conn.out)?;
        conn.flush().await?;
        super::startup::run(&mut conn, user, config.get_password()).await?;
        Ok(conn)
    }

    /// Records the backend's cancel key.
    pub(super) fn set_key(&mut self, pid: i32, secret: i32) {
        self.key.pid = pid;
        self.key.secret = secret;
    }

    /// Runs `sql` as a simple query and returns the first column of its
    /// first row.
    async fn simple_value(&mut self, sql: &str) -> Result<Option<String>, WireError> {
        frontend::query(sql, &mut self.out)?;
        self.flush().await?;
        let mut value = None;
        loop {
            match self.next().await? {
                Message::DataRow(row) if value.is_none() => value = first_column(&row),
                Message::ErrorResponse(body) => return Err(db_error(&body)),
                Message::ReadyForQuery(_) => return Ok(value),
                _ => {}
            }
        }
    }

    /// The key to cancel this connection's running query.
    pub fn cancel_key(&self) -> CancelKey {
        self.key.clone()
    }

    /// Whether the connection failed and must not be reused.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Prepares `sql` as statement `name` with the given parameter types,
    /// closing an earlier statement of that name first.
    pub async fn prepare(&mut self, name: &str, sql: &str, types: &[Type], replace: bool) -> Result<(), WireError> {
        if replace {
            frontend::close(b'S', name, &mut self.out)?;
        }
        frontend::parse(name, sql, types.iter().map(Type::oid), &mut self.out)?;
        frontend::sync(&mut self.out);
        self.flush().await?;
        self.until_ready().await
    }

    /// Runs prepared statement `name` with `params`, each written in the
    /// binary format of its `kinds` entry, discarding its rows but for the
    /// ledger's columns when `capture` asks for them.
    pub async fn execute(
        &mut self,
        stmt: Stmt<'_>,
        params: &[Value],
        kinds: &[PgKind],
        capture: Option<(Capture, &mut Captured)>,
    ) -> Result<(), WireError> {
        let values = params.iter().zip(kinds);
        let formats = std::iter::repeat_n(1i16, params.len());
        let encode = |(v, kind): (&Value, &PgKind), buf: &mut BytesMut| match v {
            Value::Null => Ok(postgres_protocol::IsNull::Yes),
            v => v.encode(*kind, buf).map(|()| postgres_protocol::IsNull::No).map_err(Into::into),
        };
        let name = match stmt {
            Stmt::Named(name) => name,
            Stmt::Unnamed { sql, types } => {
                frontend::parse("", sql, types.iter().map(Type::oid), &mut self.out)?;
                ""
            }
        };
        frontend::bind("", name, formats, values, encode, [1i16], &mut self.out).map_err(|e| match e {
            frontend::BindError::Conversion(e) => protocol(e),
            frontend::BindError::Serialization(e) => WireError::Io(e),
        })?;
        frontend::execute("", 0, &mut self.out)?;
        frontend::sync(&mut self.out);
        self.flush().await?;
        self.until_ready_capturing(capture).await
    }

    /// Runs `sql` as a simple query (BEGIN, COMMIT, SET ...).
    pub async fn simple(&mut self, sql: &str) -> Result<(), WireError> {
        frontend::query(sql, &mut self.out)?;
        self.flush().await?;
        self.until_ready().await
    }

    pub(super) async fn flush(&mut self) -> Result<(), WireError> {
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result.map_err(|e| self.broke(e))
    }

    fn broke(&mut self, e: std::io::Error) -> WireError {
        self.broken = true;
        WireError::Io(e)
    }

    /// Reads more of the server's answer into the buffer.
    async fn fill(&mut self) -> Result<(), WireError> {
        match self.stream.read_buf(&mut self.inb).await {
            Ok(0) => {
                let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection");
                Err(self.broke(eof))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(self.broke(e)),
        }
    }

    /// The next message from the server.
    pub(super) async fn next(&mut self) -> Result<Message, WireError> {
        loop {
            match Message::parse(&mut self.inb) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(self.broke(e)),
            }
            self.fill().await?;
        }
    }

    /// Reads to ReadyForQuery; the first error the server sent, if any.
    ///
    /// Messages are skipped by their tag and length; only an error is
    /// parsed. Parsing each one into a `Message` splits the buffer into
    /// reference-counted pieces, which cost more than the rest of reading
    /// an answer.
    async fn until_ready(&mut self) -> Result<(), WireError> {
        self.until_ready_capturing(None).await
    }

    /// [`Self::until_ready`], handing each data row to `capture`.
    async fn until_ready_capturing(&mut self, mut capture: Option<(Capture, &mut Captured)>) -> Result<(), WireError> {
        let mut error = None;
        loop {
            while let Some((tag, len)) = self.whole_message()? {
                match tag {
                    b'Z' => {
                        self.inb.advance(len);
                        return error.map_or(Ok(()), Err);
                    }
                    b'E' => {
                        let Ok(Some(Message::ErrorResponse(body))) = Message::parse(&mut self.inb) else {
                            return Err(self.broke(std::io::Error::other("a malformed error response")));
                        };
                        let e = db_error(&body);
                        // FATAL errors (57P01 admin shutdown, ...) end the session.
                        if e.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) {
                            self.broken = true;
                        }
                        error.get_or_insert(e);
                    }
                    b'D' if capture.is_some() => {
                        if let Some((spec, into)) = capture.as_mut()
                            && spec.row(&self.inb[5..len], &mut into.buf)
                        {
                            into.rows += 1;
                        }
                        self.inb.advance(len);
                    }
                    _ => self.inb.advance(len),
                }
            }
            self.fill().await?;
        }
    }

    /// The tag and whole length (tag included) of the first message in the
    /// buffer, if all of it has arrived.
    fn whole_message(&mut self) -> Result<Option<(u8, usize)>, WireError> {
        let Some(header) = self.inb.get(..5) else { return Ok(None) };
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len < 4 {
            return Err(self.broke(std::io::Error::other(format!("a message of length {len}"))));
        }
        Ok((self.inb.len() > len).then_some((header[0], len + 1)))
    }
}

/// The text of a data row's first column.
fn first_column(row: &DataRowBody) -> Option<String> {
    let mut ranges = row.ranges();
    let range = ranges.next().ok().flatten().flatten()?;
    row.buffer().get(range).map(|b| String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
