//! The price table ([`PriceTable`]) and the cost of one response ([`Cost`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use claude_tower_core::{Error, ErrorKind, MessagesRequest, Usage};
use serde::{Deserialize, Serialize};

use crate::money::{Multiplier, PerMillion, Usd};

pub(crate) use amounts::reservation_at;
use amounts::{iterations, scaled_up, searches_cost, web_search_cost};

/// The price table shipped with this crate (`data/prices.json`).
pub const BUILTIN_PRICES: &str = include_str!("../data/prices.json");

/// Prices of one model: one row of the table.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceRow {
    /// The model id.
    pub model: String,
    /// Other ids priced the same (dated snapshots, `-latest` aliases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Uncached input.
    pub input: PerMillion,
    /// Output (thinking included).
    pub output: PerMillion,
    /// Cache write with the 5 minute lifetime.
    pub cache_write_5m: PerMillion,
    /// Cache write with the 1 hour lifetime.
    pub cache_write_1h: PerMillion,
    /// Cache read (its ratio to input differs per model: 0.1×, 0.05×, 0.025× exist).
    pub cache_read: PerMillion,
    /// Message Batches multiplier on every category (0.5).
    pub batch_multiplier: Multiplier,
    /// Dollars per 1,000 web searches.
    pub web_search_per_1000: PerMillion,
    /// `inference_geo: "us"` multiplier on every category, where it applies.
    pub us_multiplier: Option<Multiplier>,
    /// Fast mode (`speed: "fast"`) multiplier, where it exists.
    pub fast_multiplier: Option<Multiplier>,
    /// A tier that prices the whole request once its prompt is large.
    pub above: Option<PriceTier>,
    /// Lifecycle note (retired, deprecated…).
    pub status: Option<String>,
    /// Where the numbers come from.
    pub source: String,
    /// When they were read (YYYY-MM-DD).
    pub as_of: String,
}

/// Prices for the whole request when input + cache writes + cache reads exceed
/// `input_tokens_over` (long context).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTier {
    /// The threshold on the prompt's total tokens.
    pub input_tokens_over: u64,
    /// Uncached input.
    pub input: PerMillion,
    /// Output.
    pub output: PerMillion,
    /// 5 minute cache write.
    pub cache_write_5m: PerMillion,
    /// 1 hour cache write.
    pub cache_write_1h: PerMillion,
    /// Cache read.
    pub cache_read: PerMillion,
}

/// How the input tokens of a reservation split by the rate they can be billed at (see
/// [`PriceTable::reservation`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputSplit {
    /// Tokens expected as cache reads.
    pub read: u64,
    /// Tokens that may be written to the 1 hour cache.
    pub write_1h: u64,
    /// Tokens that may be written to the 5 minute cache.
    pub write_5m: u64,
    /// Tokens billed as plain input.
    pub input: u64,
}

impl InputSplit {
    /// All tokens as plain input (no cache marker).
    #[must_use]
    pub fn input(tokens: u64) -> Self {
        Self {
            input: tokens,
            ..Self::default()
        }
    }

    /// The part billed at the highest rate present (1 h writes, else 5 min writes, else plain
    /// input): where tokens of unknown placement are reserved.
    pub fn costliest_part_mut(&mut self) -> &mut u64 {
        if self.write_1h > 0 {
            &mut self.write_1h
        } else if self.write_5m > 0 {
            &mut self.write_5m
        } else {
            &mut self.input
        }
    }

    /// All tokens.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.read
            .saturating_add(self.write_1h)
            .saturating_add(self.write_5m)
            .saturating_add(self.input)
    }
}

/// What else changes the price of a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Modifiers {
    /// Sent through the Message Batches API (or `usage.service_tier == "batch"`).
    pub batch: bool,
    /// Served in the US only (`inference_geo: "us"`).
    pub us_only: bool,
    /// Fast mode (`speed: "fast"`).
    pub fast: bool,
}

impl Modifiers {
    /// Modifiers read off a request and the usage of its response: batch from
    /// `usage.service_tier`, US-only from `usage.inference_geo` (else the request's), fast
    /// from `usage.speed` (else the request's `speed`).
    #[must_use]
    pub fn of(request: Option<&MessagesRequest>, usage: Option<&Usage>) -> Self {
        let geo = usage
            .and_then(|u| u.inference_geo.as_deref())
            .or_else(|| request.and_then(|r| r.inference_geo.as_deref()));
        Self {
            batch: usage.and_then(|u| u.service_tier.as_deref()) == Some("batch"),
            us_only: geo == Some("us"),
            // `usage.speed` says how the request was served; else the request's `speed`.
            fast: usage
                .and_then(|u| u.extra.get("speed"))
                .or_else(|| request.and_then(|r| r.extra.get("speed")))
                .and_then(|s| s.as_str())
                == Some("fast"),
        }
    }
}

/// The cost of one response, exact, with its breakdown per token class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cost {
    /// Everything.
    pub total: Usd,
    /// Uncached input.
    pub input: Usd,
    /// 5 minute cache writes.
    pub cache_write_5m: Usd,
    /// 1 hour cache writes.
    pub cache_write_1h: Usd,
    /// Cache reads.
    pub cache_read: Usd,
    /// Output.
    pub output: Usd,
    /// Web searches.
    pub web_search: Usd,
    /// The model id of the response (a known id borrows the model table's own `&'static str`:
    /// no copy per response).
    pub model: Cow<'static, str>,
    /// The table row used (`None` for a cache hit).
    pub priced_as: Option<Cow<'static, str>>,
    /// The modifiers applied.
    pub modifiers: Modifiers,
    /// Whether the long-context tier applied.
    pub above_tier: bool,
    /// Served by the response cache: nothing was billed.
    pub cached: bool,
    /// A refusal's fallback credit was redeemed on this call (`usage.fallback_credit.status`
    /// `redeemed`): its cache-miss cost is refunded, so its input and cache writes are priced
    /// at the cache-read rate (Dec-2026 API).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback_credit: bool,
}

impl Cost {
    /// The cost of a response served from the response cache: zero.
    #[must_use]
    pub fn cached(model: impl Into<String>) -> Self {
        Self {
            model: Cow::Owned(model.into()),
            cached: true,
            ..Self::default()
        }
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (input {}, cache write {}, cache read {}, output {}",
            self.total,
            self.input,
            self.cache_write_5m + self.cache_write_1h,
            self.cache_read,
            self.output
        )?;
        if self.web_search > Usd::ZERO {
            write!(f, ", web search {}", self.web_search)?;
        }
        if self.cached {
            f.write_str(", cached")?;
        }
        f.write_str(")")
    }
}

/// What to do with a model the table does not know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UnknownModel {
    /// Fail with [`ErrorKind::Config`] (the default: an unpriced response is a bug).
    Error,
    /// Price it with this row and log a `tracing` warning.
    Fallback(Box<PriceRow>),
}

#[derive(Debug, Deserialize)]
struct TableFile {
    rows: Vec<PriceRow>,
}

/// A price table: rows by model id and alias; see [`BUILTIN_PRICES`] for the shipped data.
///
/// Lookup: the exact id or an alias; then the id without a `-YYYYMMDD` snapshot suffix.
///
/// ```
/// use claude_tower::core::Usage;
/// use claude_tower::cost::{Modifiers, PriceTable};
///
/// let table = PriceTable::builtin();
/// let usage = Usage { input_tokens: 1_000, output_tokens: 200, ..Usage::default() };
/// let cost = table.cost("claude-haiku-4-5-20251001", &usage, Modifiers::default()).unwrap();
/// // 1,000 × $1/MTok + 200 × $5/MTok
/// assert_eq!(cost.total.to_string(), "$0.002");
/// ```
#[derive(Debug, Clone)]
pub struct PriceTable {
    rows: Vec<Arc<PriceRow>>,
    /// ahash: the lookup is on every priced request, and SipHash on a model id costs more
    /// than the rest of the lookup.
    index: HashMap<String, usize, ahash::RandomState>,
    unknown: UnknownModel,
}

impl PriceTable {
    /// The table shipped with the crate.
    ///
    /// # Panics
    /// Never: the shipped data is checked by the crate's tests.
    #[must_use]
    pub fn builtin() -> Self {
        Self::from_json(BUILTIN_PRICES).expect("the shipped price table parses")
    }

    /// A table from JSON of the shipped shape (`{"rows": [...]}`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the JSON does not parse or a row repeats an id.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let file: TableFile = serde_json::from_str(json)
            .map_err(|e| Error::config(format!("invalid price table: {e}")))?;
        let mut table = Self {
            rows: Vec::new(),
            index: HashMap::default(),
            unknown: UnknownModel::Error,
        };
        for row in file.rows {
            table = table.with_row(row)?;
        }
        Ok(table)
    }

    /// Adds or replaces a row (a row with the same model id or alias is replaced).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when an alias belongs to another row.
    pub fn with_row(mut self, row: PriceRow) -> Result<Self, Error> {
        for alias in &row.aliases {
            if let Some(&i) = self.index.get(alias)
                && self.rows[i].model == *alias
            {
                return Err(Error::config(format!(
                    "price table: alias {alias} is already a row of its own"
                )));
            }
        }
        let position = match self.index.get(&row.model) {
            Some(&i) if self.rows[i].model == row.model => i,
            _ => {
                self.rows.push(Arc::new(row.clone()));
                self.rows.len() - 1
            }
        };
        for id in std::iter::once(&row.model).chain(&row.aliases) {
            self.index.insert(id.clone(), position);
        }
        self.rows[position] = Arc::new(row);
        Ok(self)
    }

    /// What to do with unknown models.
    #[must_use]
    pub fn on_unknown_model(mut self, unknown: UnknownModel) -> Self {
        self.unknown = unknown;
        self
    }

    /// The policy for unknown models.
    #[must_use]
    pub fn unknown_policy(&self) -> &UnknownModel {
        &self.unknown
    }

    /// The rows.
    pub fn rows(&self) -> impl Iterator<Item = &PriceRow> {
        self.rows.iter().map(AsRef::as_ref)
    }

    /// The row for a model id (exact, alias, or without a `-YYYYMMDD` suffix).
    #[must_use]
    pub fn row(&self, model: &str) -> Option<&PriceRow> {
        self.row_index(model).map(|i| self.rows[i].as_ref())
    }

    fn row_index(&self, model: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(model) {
            return Some(i);
        }
        let (base, suffix) = model.rsplit_once('-')?;
        if suffix.len() == 8 && suffix.chars().all(|c| c.is_ascii_digit()) {
            return self.index.get(base).copied();
        }
        None
    }

    /// The shared row of a model in the table (not the unknown-model fallback), to price the
    /// same model again without a lookup.
    pub(crate) fn row_shared(&self, model: &str) -> Option<Arc<PriceRow>> {
        self.row_index(model).map(|i| Arc::clone(&self.rows[i]))
    }

    fn resolve(&self, model: &str) -> Result<&PriceRow, Error> {
        match (self.row(model), &self.unknown) {
            (Some(row), _) => Ok(row),
            (None, UnknownModel::Fallback(row)) => {
                tracing::warn!(target: "claude_tower::cost", model, fallback = %row.model, "model not in the price table; using the fallback row");
                Ok(row)
            }
            (None, UnknownModel::Error) => Err(Error::new(
                ErrorKind::Config,
                format!("model {model:?} is not in the price table; add a row or set a fallback"),
            )),
        }
    }

    /// The exact cost of a response with this usage.
    ///
    /// Writes are priced from `usage.cache_creation` (5m/1h); writes it does not split
    /// (older responses) are priced at the 5 minute rate.
    ///
    /// When the usage has `iterations` (Dec-2026 API, SDK 2.16.0: `message`, `compaction`,
    /// `advisor_message`, `fallback_message` entries), the cost is the sum over the entries,
    /// each at its own `model`'s price (the response's model when it has none), so compaction
    /// (not in the top-level totals) is included and an advisor's tokens are priced at the
    /// advisor's rate.
    ///
    /// # Errors
    /// An unknown model with [`UnknownModel::Error`].
    pub fn cost(&self, model: &str, usage: &Usage, modifiers: Modifiers) -> Result<Cost, Error> {
        let (mut cost, row) = self.amounts(model, usage, modifiers)?;
        cost.model = model_name(model);
        cost.priced_as = Some(model_name(&row.model));
        Ok(cost)
    }

    /// [`cost`](Self::cost) without the two names (`model`, `priced_as` left empty): what the
    /// budget needs, with no allocation. Also returns the row of `model`.
    pub(crate) fn amounts(
        &self,
        model: &str,
        usage: &Usage,
        modifiers: Modifiers,
    ) -> Result<(Cost, &PriceRow), Error> {
        let row = self.resolve(model)?;
        Ok((self.amounts_at(row, usage, modifiers)?, row))
    }

    /// [`amounts`](Self::amounts) at a row already resolved (usage `iterations` with a
    /// model of their own are still looked up).
    pub(crate) fn amounts_at(
        &self,
        row: &PriceRow,
        usage: &Usage,
        modifiers: Modifiers,
    ) -> Result<Cost, Error> {
        match iterations(usage) {
            Some(entries) => {
                let mut total = Cost {
                    modifiers,
                    ..Cost::default()
                };
                for (entry_model, entry) in entries {
                    let entry_row = match entry_model.as_deref() {
                        Some(entry_model) => self.resolve(entry_model)?,
                        None => row,
                    };
                    let part = self.cost_one(entry_row, &entry, modifiers);
                    total.input += part.input;
                    total.cache_write_5m += part.cache_write_5m;
                    total.cache_write_1h += part.cache_write_1h;
                    total.cache_read += part.cache_read;
                    total.output += part.output;
                    total.web_search += part.web_search;
                    total.above_tier |= part.above_tier;
                    total.fallback_credit |= part.fallback_credit;
                    total.total += part.total;
                }
                Ok(total)
            }
            None => Ok(self.cost_one(row, usage, modifiers)),
        }
    }

    /// The amounts of one usage at `row`'s prices (names left empty).
    fn cost_one(&self, row: &PriceRow, usage: &Usage, modifiers: Modifiers) -> Cost {
        let write_total = usage.cache_write_tokens();
        let (mut write_5m, write_1h) = usage.cache_creation.as_ref().map_or((0, 0), |c| {
            (c.ephemeral_5m_input_tokens, c.ephemeral_1h_input_tokens)
        });
        // Untrusted counts: saturating sums (see `Usd`'s `Add`), never a wrap or a panic.
        write_5m =
            write_5m.saturating_add(write_total.saturating_sub(write_5m.saturating_add(write_1h)));
        let prompt = usage.total_input_tokens();
        let tier = row.above.as_ref().filter(|t| prompt > t.input_tokens_over);
        let (input, output, w5, w1, read) = match tier {
            Some(t) => (
                t.input,
                t.output,
                t.cache_write_5m,
                t.cache_write_1h,
                t.cache_read,
            ),
            None => (
                row.input,
                row.output,
                row.cache_write_5m,
                row.cache_write_1h,
                row.cache_read,
            ),
        };
        // A redeemed refusal credit refunds the cache miss: input and writes at the read rate.
        let credited = usage
            .fallback_credit()
            .and_then(|credit| credit.pointer("/status/type"))
            .and_then(serde_json::Value::as_str)
            == Some("redeemed");
        let (input, w5, w1) = if credited {
            (read, read, read)
        } else {
            (input, w5, w1)
        };
        // No allocation per response: at most three multipliers.
        let multipliers: [Option<Multiplier>; 3] = [
            modifiers.batch.then_some(row.batch_multiplier),
            row.us_multiplier.filter(|_| modifiers.us_only),
            row.fast_multiplier.filter(|_| modifiers.fast),
        ];
        let apply = |amount: Usd| multipliers.iter().flatten().fold(amount, |a, m| m.apply(a));
        let mut cost = Cost {
            input: apply(input.cost(usage.input_tokens)),
            cache_write_5m: apply(w5.cost(write_5m)),
            cache_write_1h: apply(w1.cost(write_1h)),
            cache_read: apply(read.cost(usage.cache_read_tokens())),
            output: apply(output.cost(usage.output_tokens)),
            web_search: web_search_cost(row, usage),
            model: Cow::Borrowed(""),
            priced_as: None,
            modifiers,
            above_tier: tier.is_some(),
            cached: false,
            fallback_credit: credited,
            total: Usd::ZERO,
        };
        cost.total = cost.input
            + cost.cache_write_5m
            + cost.cache_write_1h
            + cost.cache_read
            + cost.output
            + cost.web_search;
        cost
    }

    /// A reservation that prices each part of the input at the rate it can really be billed:
    /// `split.read` tokens at the cache-read rate (a prefix this process saw cached), the
    /// 1 h and 5 min write parts at their write rates, the rest at the input rate (each at the
    /// long-context tier's rate when the model has one and the prompt may cross it), plus
    /// `max_tokens` of output and `web_searches`. Returns (input side, total). Modifiers
    /// (batch, US-only, fast) apply to both, rounded up.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a model the table cannot price (see [`UnknownModel`]).
    pub fn reservation(
        &self,
        model: &str,
        split: &InputSplit,
        max_tokens: u64,
        web_searches: u64,
        modifiers: Modifiers,
    ) -> Result<(Usd, Usd), Error> {
        let row = self.resolve(model)?;
        Ok(reservation_at(
            row,
            split,
            max_tokens,
            web_searches,
            modifiers,
        ))
    }

    /// The most a request can cost, for budget reservations: `input_tokens` at the highest
    /// price an input token can have (uncached, 5m or 1h write; the long-context tier when
    /// `input_tokens` could cross it), `max_tokens` of output, and `web_searches` searches.
    ///
    /// # Errors
    /// An unknown model with [`UnknownModel::Error`].
    pub fn worst_case(
        &self,
        model: &str,
        input_tokens: u64,
        max_tokens: u64,
        web_searches: u64,
        modifiers: Modifiers,
    ) -> Result<Usd, Error> {
        let row = self.resolve(model)?;
        let mut input_price = row
            .input
            .max(row.cache_write_5m)
            .max(row.cache_write_1h)
            .max(row.cache_read);
        let mut output_price = row.output;
        if let Some(tier) = &row.above {
            input_price = input_price
                .max(tier.input)
                .max(tier.cache_write_5m)
                .max(tier.cache_write_1h);
            output_price = output_price.max(tier.output);
        }
        let total = input_price.cost(input_tokens) + output_price.cost(max_tokens);
        Ok(scaled_up(row, modifiers, total) + searches_cost(row, web_searches))
    }
}

/// A model id as [`Cost`] keeps it: borrowed from the built-in model table when it is one of
/// its ids or aliases, else copied.
pub(crate) fn model_name(model: &str) -> Cow<'static, str> {
    claude_tower_core::models::ModelTable::builtin()
        .known_id(model)
        .map_or_else(|| Cow::Owned(model.to_owned()), Cow::Borrowed)
}

mod amounts;
#[cfg(test)]
mod tests;
