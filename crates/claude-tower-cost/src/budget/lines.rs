//! Which budgets a request counts against (its lines and their store keys) and what it
//! reserves on them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use claude_tower_core::clock::utc_date;
use claude_tower_core::ext::Attribution;
use claude_tower_core::layout::InputEstimate;
use claude_tower_core::{Error, ErrorKind, MessagesRequest};

use super::reserve::{self, InputPlan};
use super::{Scope, Shared, UnknownInput, Window};
use crate::money::Usd;
use crate::pricing::{Modifiers, PriceRow, reservation_at};
use crate::store::BudgetLine;

/// Pushes `n` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, n: i64, width: usize) {
    if n < 0 {
        out.push('-');
    }
    let digits = n.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

impl Shared {
    /// `{prefix}:{scope}[:{who}]:{window}`, e.g. `claude-tower:budget:tenant:acme:day:2026-12-03`
    /// (built without `format!`: it runs on every request).
    pub(super) fn key(&self, scope: Scope, who: Option<&str>, window: Window) -> String {
        let (scope, who) = match (scope, who) {
            (Scope::Global, _) | (_, None) => ("global", None),
            (Scope::Tenant, who) => ("tenant", who),
            (Scope::User, who) => ("user", who),
            (Scope::Feature, who) => ("feature", who),
        };
        let mut key = String::with_capacity(self.prefix.len() + who.map_or(0, str::len) + 32);
        key.push_str(&self.prefix);
        key.push(':');
        key.push_str(scope);
        if let Some(who) = who {
            key.push(':');
            key.push_str(who);
        }
        let (label, parts) = match window {
            Window::Total => ("total", 0),
            Window::Day => ("day", 3),
            Window::Month => ("month", 2),
        };
        key.push(':');
        key.push_str(label);
        if parts > 0 {
            let (year, month, day) = utc_date((self.clock)());
            let date = [(year, 4), (i64::from(month), 2), (i64::from(day), 2)];
            for (i, (n, width)) in date.into_iter().take(parts).enumerate() {
                key.push(if i == 0 { ':' } else { '-' });
                push_digits(&mut key, n, width);
            }
        }
        key
    }

    /// The lines of `request`. When every rule is global they do not depend on the request:
    /// built once per UTC day and shared (no attribution read, no key built per request).
    pub(super) fn lines(&self, request: &http::Request<MessagesRequest>) -> Arc<[BudgetLine]> {
        if self.rules.iter().any(|rule| rule.scope != Scope::Global) {
            return self.lines_for(&Attribution::of(request)).into();
        }
        // Total windows never change key: no clock read, no lock.
        if self.rules.iter().all(|rule| rule.window == Window::Total) {
            return Arc::clone(
                self.total_lines
                    .get_or_init(|| self.lines_for(&Attribution::default()).into()),
            );
        }
        let day = (self.clock)()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() / 86_400);
        let mut cached = self
            .global_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((cached_day, lines)) if *cached_day == day => Arc::clone(lines),
            _ => {
                let lines: Arc<[BudgetLine]> = self.lines_for(&Attribution::default()).into();
                *cached = Some((day, Arc::clone(&lines)));
                lines
            }
        }
    }

    fn lines_for(&self, attribution: &Attribution) -> Vec<BudgetLine> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let who = match rule.scope {
                    Scope::Global => None,
                    Scope::Tenant => Some(attribution.tenant.as_deref()),
                    Scope::User => Some(attribution.user.as_deref()),
                    Scope::Feature => Some(attribution.feature.as_deref()),
                };
                let who = match who {
                    None => None,
                    Some(Some(who)) => Some(who),
                    Some(None) => {
                        // Configured but not applicable: say so (once), never silently.
                        if self.unattributed.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(
                                target: "claude_tower::budget",
                                scope = ?rule.scope,
                                "a {:?} budget is configured but a request has no such attribution: \
                                 it is not enforced for that request (set an Attribution extension, \
                                 e.g. with Client::messages().attribution(…))",
                                rule.scope
                            );
                        }
                        return None;
                    }
                };
                let ttl = match rule.window {
                    Window::Total => None,
                    Window::Day => Some(Duration::from_secs(2 * 86_400)),
                    Window::Month => Some(Duration::from_secs(32 * 86_400)),
                };
                Some(BudgetLine {
                    key: self.key(rule.scope, who, rule.window),
                    limit: rule.limit.nanodollars_floor(),
                    ttl,
                })
            })
            .collect()
    }

    /// The reservation for `request`: (total, input side, the plan behind it, the requested
    /// model's price row when the table has it, the request's price modifiers).
    pub(super) fn reservation(
        &self,
        request: &MessagesRequest,
        estimate: Option<&InputEstimate>,
        deferred: bool,
    ) -> Result<(Usd, Usd, InputPlan, Option<Arc<PriceRow>>, Modifiers), Error> {
        let mut plan = reserve::plan(
            request,
            estimate,
            self.memory.as_deref(),
            self.margin_percent,
            &*self.clock,
        );
        let unknown = request.unknown_size_inputs();
        if !unknown.is_empty() {
            match self.unknown_input {
                UnknownInput::Refuse => {
                    return Err(Error::new(
                        ErrorKind::BudgetExceeded,
                        format!(
                            "the request has inputs whose size cannot be known before sending ({unknown}) and the budget refuses them (nothing was sent)"
                        ),
                    ));
                }
                UnknownInput::Reserve {
                    document_tokens,
                    image_tokens,
                    tool_use_tokens,
                } => {
                    let window = claude_tower_core::models::ModelTable::builtin()
                        .context_window(&request.model);
                    let documents = unknown
                        .documents
                        .saturating_mul(document_tokens)
                        .min(window.max(document_tokens));
                    let extra = documents
                        .saturating_add(unknown.images.saturating_mul(image_tokens))
                        .saturating_add(unknown.tool_uses.saturating_mul(tool_use_tokens));
                    // At the highest rate the request can be billed at.
                    let part = plan.split.costliest_part_mut();
                    *part = part.saturating_add(extra);
                }
            }
        }
        let searches = request
            .tools
            .iter()
            .flat_map(|t| t.iter())
            .filter(|t| {
                t.kind
                    .as_deref()
                    .is_some_and(|k| k.starts_with("web_search"))
            })
            .map(|t| {
                t.extra
                    .get("max_uses")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(10)
            })
            .sum();
        // US-only from the request's `inference_geo`, fast from its `speed`.
        // A deferred call (`ext::Deferred`) goes out as a batch item: reserved at batch prices.
        let modifiers = Modifiers {
            batch: deferred,
            ..Modifiers::of(Some(request), None)
        };
        let max_tokens = u64::from(request.max_tokens);
        // The row, looked up once: the settle prices the response at it too.
        let row = self.table.row_shared(&request.model);
        let (input, total) = match &row {
            Some(row) => reservation_at(row, &plan.split, max_tokens, searches, modifiers),
            None => self.table.reservation(
                &request.model,
                &plan.split,
                max_tokens,
                searches,
                modifiers,
            )?,
        };
        Ok((total, input, plan, row, modifiers))
    }
}
