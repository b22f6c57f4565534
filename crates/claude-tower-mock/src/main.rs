//! `claude-tower-mock`: serves the mock Claude API over HTTP until stopped (Ctrl-C).
//!
//! ```text
//! cargo run -p claude-tower-mock -- --addr 127.0.0.1:4010 [--api-key KEY]
//! ANTHROPIC_BASE_URL=http://127.0.0.1:4010 ANTHROPIC_API_KEY=anything your-client
//! ```
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

use std::net::SocketAddr;
use std::process::ExitCode;

use claude_tower_mock::MockServer;

#[tokio::main]
async fn main() -> ExitCode {
    let mut addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 4010));
    let mut api_key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => match value.parse() {
                Ok(parsed) => addr = parsed,
                Err(e) => {
                    eprintln!("invalid --addr {value}: {e}");
                    return ExitCode::from(2);
                }
            },
            ("--api-key", Some(value)) => api_key = Some(value),
            _ => {
                eprintln!("usage: claude-tower-mock [--addr 127.0.0.1:4010] [--api-key KEY]");
                return ExitCode::from(2);
            }
        }
    }
    let mut builder = MockServer::builder().addr(addr);
    if let Some(key) = api_key {
        builder = builder.api_key(key);
    }
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("mock Claude API listening on {}", server.base_url());
    tokio::select! {
        () = server.wait() => {}
        _ = tokio::signal::ctrl_c() => println!("stopping"),
    }
    ExitCode::SUCCESS
}
