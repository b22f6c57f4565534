//! [`RedisServer`]: a throwaway `redis-server` on a free loopback port, for tests of the Redis
//! stores (budgets, rate limits, caches).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The command that installs Redis on Debian, named in the panic message when it is missing.
pub const INSTALL_HINT: &str = "apt-get install -y redis-server";

/// A `redis-server` bound to `127.0.0.1` on a free port, without persistence; killed when
/// dropped.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let redis = claude_tower_mock::RedisServer::start().await;
/// println!("{}", redis.url()); // redis://127.0.0.1:PORT/
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts a server and waits (at most 10 s) until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not installed (the message names [`INSTALL_HINT`]) or does not
    /// come up.
    pub async fn start() -> Self {
        let port = {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            listener.local_addr().expect("local address").port()
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it with: {INSTALL_HINT}")
            });
        let server = Self { child, port };
        for _ in 0..200 {
            if server.ping().await {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not answer PING within 10 s");
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:PORT/`
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
