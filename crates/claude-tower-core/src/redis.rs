//! How the layers' Redis stores connect (feature `redis`).
//!
//! A store sits on the request path: when Redis does not answer, the layer must decide (fail
//! open or closed) within about a second, not after the client's default reconnection backoff
//! (six attempts, about 6 s, on every request while the server is away).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{Error, ErrorKind};

/// Longest wait for a connection, and for a command's answer.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// The connection manager settings of the stores: [`TIMEOUT`] for connecting and for each
/// answer, one quick retry when reconnecting (the next request triggers the next attempt).
#[must_use]
pub fn request_path_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(250))
}

/// Connects (auto-reconnecting, with [`request_path_config`]) to `url`, e.g.
/// `redis://127.0.0.1:6379/`; `store` names the store in errors.
///
/// # Errors
/// When the URL is invalid or the server cannot be reached.
pub async fn connect(url: &str, store: &str) -> Result<ConnectionManager, Error> {
    let client = redis::Client::open(url).map_err(|e| error(store, &e))?;
    ConnectionManager::new_with_config(client, request_path_config())
        .await
        .map_err(|e| error(store, &e))
}

/// A Redis failure as an [`Error`] naming the store (the URL, which may hold a password, is
/// not part of it).
#[must_use]
pub fn error(store: &str, error: &redis::RedisError) -> Error {
    Error::new(ErrorKind::Other, format!("{store} (redis): {error}"))
}
