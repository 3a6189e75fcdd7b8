//! Logging a connection in: with the caller's credentials the first time, with the access token
//! after a reconnect, and with the refresh token when the access token has expired.

use std::time::Duration;

use parley_protocol::frames::{Credential, Device, ErrorInfo, LoginResult, Request};
use parley_protocol::values::{NewPassword, Password};
use parley_protocol::{ErrorCode, InvalidInput};

use crate::config::Credentials;
use crate::error::ClientError;
use crate::link::Link;

impl Credentials {
    /// The first request of a connection for these credentials; a password that breaks the
    /// protocol's rules (a new one shorter than 8 bytes ...) is refused here.
    pub(crate) fn request(&self, device: Device) -> Result<Request, InvalidInput> {
        Ok(match self {
            Credentials::Register { account, password } => Request::Register {
                account: account.clone(),
                password: NewPassword::try_from(password.as_str())?,
                device,
            },
            Credentials::Password { account, password } => Request::Login {
                credential: Credential::Password {
                    account: account.clone(),
                    password: Password::try_from(password.as_str())?,
                },
                device,
            },
            Credentials::Token(token) => Request::Login {
                credential: Credential::AccessToken(token.clone()),
                device,
            },
            Credentials::Guest { nickname } => Request::GuestLogin {
                device,
                nickname: nickname.clone(),
            },
        })
    }
}

/// The tokens of the last successful login, for reconnects.
pub(crate) struct Tokens {
    access: String,
    refresh: Option<String>,
    /// The access token was rejected on a connection that the server then closed: start the
    /// next connection with `Refresh`.
    refresh_first: bool,
}

impl Tokens {
    pub(crate) fn from_login(login: &LoginResult) -> Self {
        Self {
            access: login.access_token.clone(),
            refresh: Some(login.refresh_token.clone()).filter(|t| !t.is_empty()),
            refresh_first: false,
        }
    }

    /// Takes the tokens of a later login. A token `Login` answers with an empty refresh token
    /// (docs/protocol.md, section 4): the one held stays, instead of being lost.
    pub(crate) fn update(&mut self, login: &LoginResult) {
        let held = self.refresh.take();
        *self = Tokens::from_login(login);
        if self.refresh.is_none() {
            self.refresh = held;
        }
    }

    /// [`Tokens::update`] with tokens taken from a login made outside the reconnect logic.
    pub(crate) fn merge(&mut self, newer: Tokens) {
        let held = self.refresh.take();
        *self = newer;
        if self.refresh.is_none() {
            self.refresh = held;
        }
    }
}

/// Why a reconnect login failed.
pub(crate) enum LoginFailure {
    /// Worth another attempt after the backoff.
    Transient(ClientError),
    /// The server refused the tokens: stop reconnecting.
    Rejected(ErrorInfo),
}

fn is_auth_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::TokenExpired | ErrorCode::AuthFailed | ErrorCode::Unauthenticated
    )
}

fn classify(e: ClientError) -> LoginFailure {
    if e.is_transient() {
        return LoginFailure::Transient(e);
    }
    match e {
        ClientError::Server(info) => LoginFailure::Rejected(info),
        other => LoginFailure::Rejected(ErrorInfo::new(ErrorCode::Unspecified, other.to_string())),
    }
}

/// Logs a fresh connection in with the stored tokens, refreshing them if the access token has
/// expired. Updates `tokens` on success or when the next attempt must refresh first.
pub(crate) async fn relogin(
    link: &mut Link,
    tokens: &mut Tokens,
    device: &Device,
    timeout: Duration,
) -> Result<LoginResult, LoginFailure> {
    if !tokens.refresh_first {
        let request = Request::Login {
            credential: Credential::AccessToken(tokens.access.clone()),
            device: device.clone(),
        };
        match link.login(request, timeout).await {
            Ok(login) => {
                tokens.update(&login);
                return Ok(login);
            }
            Err(ClientError::Server(e)) if is_auth_error(e.code) && tokens.refresh.is_some() => {
                if e.fatal {
                    // The server closes this connection: refresh on the next one.
                    tokens.refresh_first = true;
                    return Err(LoginFailure::Transient(ClientError::Server(e)));
                }
                tracing::debug!("access token refused ({e}); refreshing");
            }
            Err(e) => return Err(classify(e)),
        }
    }
    let Some(refresh_token) = tokens.refresh.clone() else {
        return Err(LoginFailure::Rejected(ErrorInfo::new(
            ErrorCode::TokenExpired,
            "access token refused and no refresh token",
        )));
    };
    let request = Request::Refresh {
        refresh_token,
        device: device.clone(),
    };
    match link.login(request, timeout).await {
        Ok(login) => {
            tokens.update(&login);
            Ok(login)
        }
        Err(e) => Err(classify(e)),
    }
}
