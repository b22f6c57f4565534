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
/// let redis = claude_tower::mock::RedisServer::start().await;
/// println!("{}", redis.url()); // redis://127.0.0.1:PORT/
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    /// With persistence: the data directory (append-only file, fsync on every write).
    dir: Option<std::path::PathBuf>,
}

impl RedisServer {
    /// Starts a server and waits (at most 10 s) until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not installed (the message names [`INSTALL_HINT`]) or does not
    /// come up.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a server that keeps its data across [`restart`](Self::restart) (an append-only
    /// file fsynced on every write, in a fresh directory under the system temp dir), for
    /// crash tests.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub async fn start_persistent() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("claude-tower-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir for redis");
        Self::start_with(Some(dir)).await
    }

    async fn start_with(dir: Option<std::path::PathBuf>) -> Self {
        let port = {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            listener.local_addr().expect("local address").port()
        };
        let child = spawn(port, dir.as_deref());
        let server = Self { child, port, dir };
        server.wait_up().await;
        server
    }

    async fn wait_up(&self) {
        for _ in 0..200 {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing is answered.
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (`SIGCONT`).
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the server (`SIGKILL`) and starts it again on the same port (with its data
    /// when started with [`start_persistent`](Self::start_persistent)), waiting until it
    /// answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, self.dir.as_deref());
        self.wait_up().await;
    }

    /// Kills the server (`SIGKILL`) without starting it again.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn spawn(port: u16, dir: Option<&std::path::Path>) -> Child {
    let port = port.to_string();
    let mut args: Vec<&str> = vec!["--port", &port, "--bind", "127.0.0.1", "--save", ""];
    let dir_text;
    match dir {
        Some(dir) => {
            dir_text = dir.to_string_lossy().into_owned();
            args.extend([
                "--dir",
                &dir_text,
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]);
        }
        None => args.extend(["--appendonly", "no"]),
    }
    Command::new("redis-server")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}); install it with: {INSTALL_HINT}")
        })
}
