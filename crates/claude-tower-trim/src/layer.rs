//! [`TrimLayer`] and [`Trim`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use claude_tower_core::MessagesService;
use claude_tower_core::layer_state::FreshOnClone;
use claude_tower_core::layout::{InputEstimate, position_count};
use claude_tower_core::models::ModelTable;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{Error, MessageParam, MessagesBody, MessagesRequest};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::counter::{EstimateCounter, TokenCounter};
use crate::plan::{
    TrimOptions, TrimReport, apply_cut, dropped_messages, find_cut, over_budget, truncate_blocks,
};

/// A service that writes summaries (any tower service over the Messages API, e.g. a cheap
/// model through the same stack).
pub type Summarizer =
    BoxCloneSyncService<http::Request<MessagesRequest>, http::Response<MessagesBody>, Error>;

/// How the budget is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenBudget {
    /// The model's context window (core model table) − `max_tokens` − `margin_percent` % of
    /// the window (default 5 %).
    ContextWindow {
        /// Safety margin in percent of the window.
        margin_percent: u8,
    },
    /// A fixed number of input tokens.
    Tokens(u64),
}

#[derive(Clone)]
struct Shared {
    budget: TokenBudget,
    options: TrimOptions,
    counter: Arc<dyn TokenCounter>,
    summarizer: Option<(Summarizer, String)>,
    summaries: FreshOnClone<Mutex<HashMap<u64, String>>>,
    models: ModelTable,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrimLayer")
            .field("budget", &self.budget)
            .field("options", &self.options)
            .field("counter", &self.counter)
            .field(
                "summarizer_model",
                &self.summarizer.as_ref().map(|(_, m)| m),
            )
            .finish_non_exhaustive()
    }
}

/// Trims conversations that do not fit; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct TrimLayer {
    shared: Arc<Shared>,
}

impl Default for TrimLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TrimLayer {
    /// Token budget from the context window with a 5 % margin, [`TrimOptions::default`], the core
    /// estimate, no summarizer.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                budget: TokenBudget::ContextWindow { margin_percent: 5 },
                options: TrimOptions::default(),
                counter: Arc::new(EstimateCounter),
                summarizer: None,
                summaries: FreshOnClone::default(),
                models: ModelTable::builtin().clone(),
            }),
        }
    }

    /// A builder edit: on a copy of the shared state when a layer or service still uses it
    /// (which keeps its own).
    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// The budget.
    #[must_use]
    pub fn budget(self, budget: TokenBudget) -> Self {
        self.edit(|s| s.budget = budget)
    }

    /// Trimming options.
    #[must_use]
    pub fn options(self, options: TrimOptions) -> Self {
        self.edit(|s| s.options = options)
    }

    /// How tokens are counted.
    #[must_use]
    pub fn counter(self, counter: impl TokenCounter) -> Self {
        self.edit(|s| s.counter = Arc::new(counter))
    }

    /// Replace dropped turns with one summary written by `summarizer` with `model`; the
    /// summary is reused while the dropped range is unchanged.
    #[must_use]
    pub fn summarize_with(self, summarizer: Summarizer, model: impl Into<String>) -> Self {
        let model = model.into();
        self.edit(|s| s.summarizer = Some((summarizer, model)))
    }

    /// Context windows from this table.
    #[must_use]
    pub fn models(self, models: ModelTable) -> Self {
        self.edit(|s| s.models = models)
    }
}

claude_tower_core::layer_service!(
    /// The service of a [`TrimLayer`].
    ///
    /// # Clone
    ///
    /// The call future owns a clone of the inner service and waits for its readiness after
    /// trimming, so `S: Clone`.
    #[derive(Debug)]
    TrimLayer => Trim, shared: Shared
);

claude_tower_core::boxed_response_future! {
    /// Response future of [`Trim`]: counting and summarizing are asynchronous, so it boxes an
    /// async block behind this opaque type.
    ResponseFuture
}

// Always ready: the inner service's readiness is taken only after trimming (and its
// summariser call), so an inner permit never idles while the summary is written.
claude_tower_core::always_ready_service!(Trim, ResponseFuture, call);

/// Positions (tools, system blocks, message blocks) below which the estimate is not shared:
/// re-estimating a short request costs less than storing its per-position figures.
const SHARE_ESTIMATES_FROM_POSITIONS: usize = 8;

/// The request's estimate (an outer layer's when there is one); stored for the layers below
/// (budget, rate limit) when the request is long enough for that to pay.
fn shared_estimate(request: &mut http::Request<MessagesRequest>) -> u64 {
    if position_count(request.body()) < SHARE_ESTIMATES_FROM_POSITIONS {
        return InputEstimate::get(request).map_or_else(
            || request.body().estimate_input_tokens(),
            InputEstimate::total,
        );
    }
    InputEstimate::shared(request).total()
}

/// Trims the request, then calls the inner service.
async fn call<S: MessagesService>(
    shared: Arc<Shared>,
    mut inner: S,
    mut request: http::Request<MessagesRequest>,
) -> Result<http::Response<MessagesBody>, Error> {
    // The default counter is the core estimate: the request's shared one, computed once.
    let estimated = shared
        .counter
        .is_core_estimate()
        .then(|| shared_estimate(&mut request));
    let (mut parts, body) = request.into_parts();
    let (body, report) = trim_request(&shared, body, estimated).await?;
    if report.messages_dropped > 0 || report.blocks_truncated > 0 {
        // Another request now: the next layer estimates it afresh.
        parts.extensions.remove::<InputEstimate>();
    }
    let request = http::Request::from_parts(parts, body);
    let mut response = call_when_ready(&mut inner, request).await?;
    response.extensions_mut().insert(report);
    Ok(response)
}

fn budget_of(shared: &Shared, request: &MessagesRequest) -> u64 {
    match shared.budget {
        TokenBudget::Tokens(tokens) => tokens,
        TokenBudget::ContextWindow { margin_percent } => {
            let window = shared.models.context_window(&request.model);
            window
                .saturating_sub(u64::from(request.max_tokens))
                .saturating_sub(window * u64::from(margin_percent) / 100)
        }
    }
}

fn range_key(messages: &[MessageParam]) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(messages)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

async fn summary_of(shared: &Shared, dropped: &[MessageParam]) -> Result<Option<String>, Error> {
    let Some((summarizer, model)) = &shared.summarizer else {
        return Ok(None);
    };
    let key = range_key(dropped);
    if let Some(summary) = shared
        .summaries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(Some(summary.clone()));
    }
    let transcript = serde_json::to_string(dropped).unwrap_or_default();
    let request = MessagesRequest::new(model.clone(), 1024)
        .system("Summarize this earlier part of a conversation for the assistant that continues it. Keep facts, decisions, open questions and tool results that still matter. Be concise.")
        .user(transcript);
    let response = summarizer.clone().oneshot(request.into_http()).await?;
    let summary = response.into_body().into_message().await?.text();
    shared
        .summaries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, summary.clone());
    Ok(Some(summary))
}

async fn trim_request(
    shared: &Shared,
    request: MessagesRequest,
    estimated: Option<u64>,
) -> Result<(MessagesRequest, TrimReport), Error> {
    let budget = budget_of(shared, &request);
    let counted = match estimated {
        Some(estimated) => estimated,
        None => shared.counter.count(&request).await?,
    };
    let mut report = TrimReport {
        tokens_before: counted,
        tokens_after: counted,
        ..TrimReport::default()
    };
    if counted <= budget {
        return Ok((request, report));
    }
    let estimated = estimated
        .unwrap_or_else(|| request.estimate_input_tokens())
        .max(1);
    // Plan on estimates, scaled to the counter's view, and check with the counter.
    let mut plan_budget =
        (u128::from(budget) * u128::from(estimated) / u128::from(counted.max(1))) as u64;
    for _ in 0..4 {
        let (mut out, dropped) = match find_cut(&request, plan_budget, &shared.options) {
            Some(cut) => {
                let dropped = dropped_messages(&request, cut);
                let summary = summary_of(shared, &dropped).await?;
                report.summary_used = summary.is_some();
                report.messages_dropped = dropped.len();
                (apply_cut(&request, cut, summary.as_deref()), dropped.len())
            }
            None => (request.clone(), 0),
        };
        let mut after = shared.counter.count(&out).await?;
        if after > budget && shared.options.truncate_oversized {
            report.blocks_truncated = truncate_blocks(&mut out, plan_budget)?;
            after = shared.counter.count(&out).await?;
        }
        if after <= budget {
            report.tokens_after = after;
            report.tokens_dropped = counted.saturating_sub(after);
            tracing::debug!(target: "claude_tower::trim", dropped, before = counted, after, budget, "trimmed");
            return Ok((out, report));
        }
        if dropped == 0 && !shared.options.truncate_oversized {
            return Err(over_budget(after, budget));
        }
        // The counter sees more than the estimate: aim lower.
        plan_budget = plan_budget.saturating_sub(after - budget + 1);
    }
    Err(over_budget(shared.counter.count(&request).await?, budget))
}
