//! A chat backend with axum: `POST /chat` streams the reply to the browser as server-sent
//! events, each user has a daily budget, and `GET /costs` shows what each user spent.
//!
//! ```text
//! cargo run -p claude-tower-examples --example axum_chat            # a scripted demo, then exits
//! cargo run -p claude-tower-examples --example axum_chat -- --serve # serves 127.0.0.1:3000
//! curl -N -H 'x-user: ada' -H 'content-type: application/json' -d '{"message":"Hi"}' localhost:3000/chat
//! ```
//! The real API when `ANTHROPIC_API_KEY` is set, the built-in mock server otherwise.
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use claude_tower::cost::MemoryBudgetStore;
use claude_tower::ext::Attribution;
use claude_tower::prelude::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Clone)]
struct App {
    claude: Client<ClaudeService>,
    ledger: CostLedger,
}

async fn chat(State(app): State<App>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Some(user) = headers.get("x-user").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::UNAUTHORIZED, "who are you? (x-user)").into_response();
    };
    let text = body["message"].as_str().unwrap_or_default();
    let request = MessagesRequest::new("claude-haiku-4-5", 512).user(text);
    let reply = app.claude.messages().attribution(Attribution::user(user));
    match reply.stream(request).await {
        Ok(stream) => {
            Sse::new(stream.map(|text| text.map(|t| Event::default().data(t)))).into_response()
        }
        Err(e) if e.kind() == ErrorKind::BudgetExceeded => {
            (StatusCode::PAYMENT_REQUIRED, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn costs(State(app): State<App>) -> Json<Value> {
    let by_user = app.ledger.snapshot().by_user;
    Json(json!(
        by_user
            .iter()
            .map(|(user, t)| (user, t.cost.to_string()))
            .collect::<Value>()
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (transport, _mock) = claude_tower_examples::backend().await?;
    let ledger = CostLedger::new();
    let stack = ServiceBuilder::new()
        .claude_trace(TraceLayer::new())
        .claude_budget(
            BudgetLayer::new(MemoryBudgetStore::new()).per_user("0.01".parse()?, Window::Day),
        )
        .claude_cost(CostLayer::new().ledger(ledger.clone()))
        .claude_retry(RetryLayer::new())
        .claude_timeout(TimeoutLayer::new().first_event(Duration::from_secs(30)))
        .service(transport);
    let app = App {
        claude: Client::boxed(stack),
        ledger,
    };
    let router = Router::new()
        .route("/chat", post(chat))
        .route("/costs", get(costs))
        .with_state(app);
    if std::env::args().any(|a| a == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        println!("listening on http://127.0.0.1:3000");
        return Ok(axum::serve(listener, router).await?);
    }
    // The demo: the router called in-process, as a browser would call it.
    for (user, message) in [("ada", "Hello!"), ("bob", "Hi"), ("ada", "Tell me more.")] {
        let request = Request::post("/chat")
            .header("x-user", user)
            .header("content-type", "application/json")
            .body(Body::from(json!({ "message": message }).to_string()))?;
        let (status, body) = call(&router, request).await?;
        let text: String = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        println!("{user} {status}: {text}");
    }
    let (_, costs) = call(&router, Request::get("/costs").body(Body::empty())?).await?;
    println!("/costs: {costs}");
    Ok(())
}

/// One request through the router in-process; the status and the body as text.
async fn call(
    router: &Router,
    request: Request<Body>,
) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
