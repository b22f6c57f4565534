//! The comparison: a seeded agent-loop workload (~10k tokens of tools + system, 4 concurrent
//! conversations of 40 turns with tool_use/tool_result pairs, some turns adding more than 20
//! blocks, pauses longer than 5 minutes) through the mock's cache simulation, for: no caching,
//! the API's automatic caching, rig-style markers (last tool + system + last message), this
//! layer, and the optimal bound (every previously sent prefix token read at the read price).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::layout::{Slot, positions, set_marker};
use claude_tower_core::{
    CacheControl, ContentBlock, Error, MessageContent, MessageParam, MessagesBody, MessagesRequest,
    System, Tool, Usage,
};
use claude_tower_mock::MockClaude;
use claude_tower_prompt_cache::PromptCacheLayer;
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt, util::BoxCloneService};

const MODEL: &str = "claude-sonnet-4-6";

/// Dollars per token: input, 5m write, 1h write, read.
#[derive(Clone, Copy)]
struct Prices {
    input: f64,
    write_5m: f64,
    write_1h: f64,
    read: f64,
}

/// The model's prices from an external table (litellm's, in `../shared/data/
/// anthropic-fixtures/prices/`), not from this repository.
fn prices() -> Option<Prices> {
    let path = claude_tower_mock::fixtures::shared_fixtures()?
        .join("prices/litellm-1.109.1-anthropic.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &json["entries"][MODEL];
    let field = |name: &str| {
        entry[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{MODEL}.{name} missing from {}", path.display()))
    };
    Some(Prices {
        input: field("input_cost_per_token"),
        write_5m: field("cache_creation_input_token_cost"),
        write_1h: field("cache_creation_input_token_cost_above_1hr"),
        read: field("cache_read_input_token_cost"),
    })
}

type Svc = BoxCloneService<http::Request<MessagesRequest>, http::Response<MessagesBody>, Error>;

fn cost(u: &Usage, prices: Prices) -> f64 {
    let split = u.cache_creation.clone().unwrap_or_default();
    u.input_tokens as f64 * prices.input
        + split.ephemeral_5m_input_tokens as f64 * prices.write_5m
        + split.ephemeral_1h_input_tokens as f64 * prices.write_1h
        + u.cache_read_tokens() as f64 * prices.read
}

fn tools() -> Vec<Tool> {
    (0..8)
        .map(|i| {
            let mut properties = serde_json::Map::new();
            for p in 0..12 {
                properties.insert(format!("param_{p}"), json!({"type": "string", "description": format!("parameter {p} of tool {i}: {}", "details ".repeat(6))}));
            }
            Tool::new(format!("tool_{i}"), format!("Tool {i}. {}", "It does a useful thing carefully. ".repeat(12)), json!({"type": "object", "properties": properties}))
        })
        .collect()
}

fn system() -> System {
    System::Text(
        "You are an agent working through tickets. Follow the runbook exactly. ".repeat(300),
    )
}

/// One request per turn: conversation `c`'s history so far.
struct Conversation {
    history: Vec<MessageParam>,
}

fn next_turn(
    rng: &mut fastrand::Rng,
    c: usize,
    t: usize,
    conversation: &mut Conversation,
) -> MessagesRequest {
    let mut request = MessagesRequest::new(MODEL, 1024).tools(tools());
    request.system = Some(Arc::new(system()));
    for message in &conversation.history {
        request = request.message(message.clone());
    }
    // After the request: the assistant's tool calls and the tool results join the history.
    let calls = if t % 9 == 4 { 11 } else { rng.usize(1..4) };
    let mut assistant = vec![ContentBlock::text(format!(
        "Conversation {c}, step {t}: calling {calls} tools."
    ))];
    let mut results = Vec::new();
    for k in 0..calls {
        let id = format!("toolu_{c}_{t}_{k}");
        assistant.push(ContentBlock::tool_use(
            id.clone(),
            format!("tool_{}", k % 8),
            json!({"param_0": format!("value {t} {k}")}),
        ));
        results.push(ContentBlock::tool_result(
            id,
            format!(
                "result {t}.{k}: {}",
                "output line ".repeat(rng.usize(5..60))
            ),
        ));
    }
    conversation
        .history
        .push(MessageParam::assistant(assistant));
    conversation.history.push(MessageParam::user(results));
    request
}

fn start(c: usize) -> Conversation {
    Conversation {
        history: vec![MessageParam::user(format!(
            "Ticket {c}: please investigate the failing deploy."
        ))],
    }
}

fn with_markers(request: MessagesRequest, slots: &[Slot]) -> MessagesRequest {
    let mut out = request;
    for slot in slots {
        set_marker(&mut out, *slot, CacheControl::ephemeral());
    }
    out
}

fn strategies() -> Vec<(&'static str, Svc)> {
    let plain = || MockClaude::new();
    vec![
        ("no caching", BoxCloneService::new(plain())),
        (
            "automatic (top-level cache_control)",
            BoxCloneService::new(
                ServiceBuilder::new()
                    .map_request(|mut r: http::Request<MessagesRequest>| {
                        r.body_mut().cache_control = Some(CacheControl::ephemeral());
                        r
                    })
                    .service(plain()),
            ),
        ),
        (
            "rig style (last tool + system + last message)",
            BoxCloneService::new(
                ServiceBuilder::new()
                    .map_request(|r: http::Request<MessagesRequest>| {
                        let (parts, body) = r.into_parts();
                        let p = positions(&body);
                        let last_tool = p
                            .iter()
                            .rev()
                            .find(|x| matches!(x.slot, Slot::Tool(_)))
                            .map(|x| x.slot);
                        let last_system = p
                            .iter()
                            .rev()
                            .find(|x| matches!(x.slot, Slot::SystemText | Slot::System(_)))
                            .map(|x| x.slot);
                        let last = p.iter().rev().find(|x| x.cacheable).map(|x| x.slot);
                        let slots: Vec<Slot> = [last_tool, last_system, last]
                            .into_iter()
                            .flatten()
                            .collect();
                        http::Request::from_parts(parts, with_markers(body, &slots))
                    })
                    .service(plain()),
            ),
        ),
        (
            "claude-tower PromptCacheLayer",
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(PromptCacheLayer::new())
                    .service(plain()),
            ),
        ),
    ]
}

/// The hashes of every prefix of a request (by position).
fn prefix_hashes(request: &MessagesRequest) -> Vec<(u64, u64)> {
    let mut hasher = DefaultHasher::new();
    let mut running = 0;
    positions(request)
        .iter()
        .map(|p| {
            let content = match p.slot {
                Slot::Tool(i) => {
                    serde_json::to_string(&request.tools.as_ref().unwrap()[i]).unwrap()
                }
                Slot::SystemText => format!("{:?}", request.system),
                Slot::MessageText(m) | Slot::Message(m, _) => {
                    let message = &request.messages[m];
                    match (&message.content, p.slot) {
                        (MessageContent::Blocks(blocks), Slot::Message(_, b)) => format!(
                            "{m}{}{}",
                            message.role,
                            serde_json::to_string(&blocks[b]).unwrap()
                        ),
                        (content, _) => format!("{m}{}{:?}", message.role, content),
                    }
                }
                other => format!("{other:?}"),
            };
            content.hash(&mut hasher);
            running += p.tokens;
            (hasher.finish(), running)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn this_layer_reaches_95_percent_of_the_optimal_saving_and_beats_every_other_strategy() {
    let Some(prices) = prices() else {
        return;
    };
    let mut totals = Vec::new();
    let mut optimal = 0.0;
    let mut requests = 0;
    let mut last_prompt = 0;
    for (index, (name, mut service)) in strategies().into_iter().enumerate() {
        let mut rng = fastrand::Rng::with_seed(42);
        let mut conversations: Vec<Conversation> = (0..4).map(start).collect();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut total = 0.0;
        let mut read = 0u64;
        let mut prompt = 0u64;
        for t in 0..40 {
            if t % 13 == 12 {
                tokio::time::advance(Duration::from_secs(6 * 60)).await; // a pause longer than 5 minutes
            }
            for (c, conversation) in conversations.iter_mut().enumerate() {
                let request = next_turn(&mut rng, c, t, conversation);
                if index == 0 {
                    // The optimal bound: the longest prefix sent before is read, the rest is input.
                    let hashes = prefix_hashes(&request);
                    let hit = hashes
                        .iter()
                        .rev()
                        .find(|(h, _)| seen.contains(h))
                        .map_or(0, |(_, tokens)| *tokens);
                    let all = hashes.last().map_or(0, |(_, tokens)| *tokens);
                    optimal += hit as f64 * prices.read + (all - hit) as f64 * prices.input;
                    seen.extend(hashes.iter().map(|(h, _)| *h));
                    requests += 1;
                }
                tokio::time::advance(Duration::from_secs(5)).await;
                let response = ServiceExt::ready(&mut service)
                    .await
                    .unwrap()
                    .call(request.into_http())
                    .await
                    .unwrap();
                let usage = response.into_body().into_message().await.unwrap().usage;
                total += cost(&usage, prices);
                read += usage.cache_read_tokens();
                prompt += usage.total_input_tokens();
                last_prompt = usage.total_input_tokens();
            }
        }
        totals.push((name, total, read as f64 / prompt as f64));
    }
    let none = totals[0].1;
    println!(
        "\n{requests} requests to {MODEL} (input ${:.2}/MTok, 5m write ${:.2}, 1h write ${:.2}, read ${:.2}; litellm 1.109.1 table); the last prompt had {last_prompt} tokens",
        prices.input * 1e6,
        prices.write_5m * 1e6,
        prices.write_1h * 1e6,
        prices.read * 1e6,
    );
    println!("| strategy | prompt cost (USD) | hit ratio | share of the optimal saving |");
    println!("|---|---|---|---|");
    for (name, total, ratio) in &totals {
        println!(
            "| {name} | ${total:.2} | {:.1} % | {:.1} % |",
            ratio * 100.0,
            (none - total) / (none - optimal) * 100.0
        );
    }
    println!("| optimal bound | ${optimal:.2} | | 100.0 % |");
    let ours = totals[3].1;
    let share = (none - ours) / (none - optimal);
    assert!(
        share >= 0.95,
        "this layer reached {:.1} % of the optimal saving",
        share * 100.0
    );
    for (name, total, _) in &totals[..3] {
        assert!(
            ours < *total,
            "{name} is not more expensive than this layer"
        );
    }
}
