//! A wire connection's startup: authentication as the sequence the
//! protocol allows, then the session's parameters up to ReadyForQuery.
//!
//! The server opens with one authentication request and the client answers
//! only what was asked: a cleartext password, an MD5 hash, or a SCRAM-SHA-256
//! exchange (initial response, continue, final, whose server signature is
//! verified). `AuthenticationOk` is accepted once, as the end of that
//! sequence, never in the middle of it; after it come ParameterStatus,
//! BackendKeyData and notices until ReadyForQuery. Anything else is a
//! protocol error that names what arrived and when. A server that asks for
//! a password when none was given gets no empty one: the connection fails
//! saying so.

use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::wire::{WireConn, WireError, db_error};

/// Where the startup is.
enum Stage {
    /// Waiting for the server's authentication request.
    Asked,
    /// A password or hash was sent; waiting for AuthenticationOk.
    PasswordSent,
    /// SCRAM's first message was sent; waiting for its continue.
    ScramStarted(Box<sasl::ScramSha256>),
    /// SCRAM's second message was sent; waiting for its final.
    ScramContinued(Box<sasl::ScramSha256>),
    /// SCRAM's server signature was verified; waiting for AuthenticationOk.
    ScramDone,
    /// Authenticated; reading the session's parameters.
    Authenticated,
}

fn protocol(what: impl Into<String>) -> WireError {
    WireError::Protocol(what.into())
}

/// The name of a message, for errors.
fn name(m: &Message) -> &'static str {
    match m {
        Message::AuthenticationOk => "AuthenticationOk",
        Message::AuthenticationCleartextPassword => "a cleartext password request",
        Message::AuthenticationMd5Password(_) => "an MD5 password request",
        Message::AuthenticationSasl(_) => "a SASL request",
        Message::AuthenticationSaslContinue(_) => "SASL continue",
        Message::AuthenticationSaslFinal(_) => "SASL final",
        Message::AuthenticationGss
        | Message::AuthenticationGssContinue(_)
        | Message::AuthenticationSspi
        | Message::AuthenticationKerberosV5
        | Message::AuthenticationScmCredential => "a GSS, SSPI or Kerberos request",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::ParameterStatus(_) => "ParameterStatus",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::NoticeResponse(_) => "a notice",
        _ => "an unexpected message",
    }
}

fn need(password: Option<&[u8]>) -> Result<&[u8], WireError> {
    password.ok_or(WireError::NoPassword)
}

/// Authenticates as `user` and reads the session's parameters until the
/// server is ready for a query.
pub(super) async fn run(conn: &mut WireConn, user: &str, password: Option<&[u8]>) -> Result<(), WireError> {
    let mut stage = Stage::Asked;
    loop {
        let message = conn.next().await?;
        if let Message::ErrorResponse(body) = &message {
            return Err(db_error(body));
        }
        stage = match (stage, message) {
            (Stage::Asked, Message::AuthenticationOk) => Stage::Authenticated,
            (Stage::Asked, Message::AuthenticationCleartextPassword) => {
                frontend::password_message(need(password)?, &mut conn.out)?;
                conn.flush().await?;
                Stage::PasswordSent
            }
            (Stage::Asked, Message::AuthenticationMd5Password(body)) => {
                let hash = md5_hash(user.as_bytes(), need(password)?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut conn.out)?;
                conn.flush().await?;
                Stage::PasswordSent
            }
            (Stage::Asked, Message::AuthenticationSasl(body)) => {
                let mut mechanisms = body.mechanisms();
                let mut has_scram = false;
                while let Some(m) = mechanisms.next().map_err(|e| protocol(e.to_string()))? {
                    has_scram |= m == sasl::SCRAM_SHA_256;
                }
                if !has_scram {
                    return Err(protocol(
                        "the server offers no SASL mechanism but SCRAM-SHA-256-PLUS, which needs TLS",
                    ));
                }
                let scram = sasl::ScramSha256::new(need(password)?, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response(sasl::SCRAM_SHA_256, scram.message(), &mut conn.out)?;
                conn.flush().await?;
                Stage::ScramStarted(Box::new(scram))
            }
            (Stage::ScramStarted(mut scram), Message::AuthenticationSaslContinue(body)) => {
                scram.update(body.data()).map_err(|e| protocol(format!("SCRAM: {e}")))?;
                frontend::sasl_response(scram.message(), &mut conn.out)?;
                conn.flush().await?;
                Stage::ScramContinued(scram)
            }
            (Stage::ScramContinued(mut scram), Message::AuthenticationSaslFinal(body)) => {
                scram.finish(body.data()).map_err(|e| protocol(format!("SCRAM: {e}")))?;
                Stage::ScramDone
            }
            (Stage::PasswordSent | Stage::ScramDone, Message::AuthenticationOk) => Stage::Authenticated,
            (Stage::Authenticated, Message::BackendKeyData(body)) => {
                conn.set_key(body.process_id(), body.secret_key());
                Stage::Authenticated
            }
            (Stage::Authenticated, Message::ParameterStatus(_) | Message::NoticeResponse(_)) => Stage::Authenticated,
            (Stage::Authenticated, Message::ReadyForQuery(_)) => return Ok(()),
            (Stage::Asked, m @ (Message::AuthenticationGss | Message::AuthenticationSspi))
            | (Stage::Asked, m @ (Message::AuthenticationKerberosV5 | Message::AuthenticationScmCredential)) => {
                return Err(protocol(format!("the server asks for {}, which rehearse does not support", name(&m))));
            }
            (stage, m) => {
                let at = match stage {
                    Stage::Asked => "before authentication",
                    Stage::PasswordSent => "after the password was sent",
                    Stage::ScramStarted(_) => "where SCRAM's continue was due",
                    Stage::ScramContinued(_) => "where SCRAM's final was due",
                    Stage::ScramDone => "after SCRAM's final, before AuthenticationOk",
                    Stage::Authenticated => "after authentication",
                };
                return Err(protocol(format!("unexpected {} {at}", name(&m))));
            }
        };
    }
}
