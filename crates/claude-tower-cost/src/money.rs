//! Exact money: [`Usd`] in integer pico-dollars, and exact decimal prices.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Pico-dollars per dollar.
const PICO: u128 = 1_000_000_000_000;

/// An exact amount of US dollars, held as integer **pico-dollars** (10⁻¹² $), so sums never
/// drift. Serialized as a decimal string of dollars (`"0.000123450000"`).
///
/// ```
/// use claude_tower::cost::Usd;
/// let a: Usd = "0.10".parse().unwrap();
/// let b = Usd::from_picodollars(200_000_000_000);
/// assert_eq!((a + b).to_string(), "$0.30");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u128);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Self = Self(0);

    /// From pico-dollars.
    #[must_use]
    pub const fn from_picodollars(pico: u128) -> Self {
        Self(pico)
    }

    /// From nano-dollars.
    #[must_use]
    pub const fn from_nanodollars(nano: u64) -> Self {
        Self(nano as u128 * 1000)
    }

    /// From whole cents.
    #[must_use]
    pub const fn from_cents(cents: u64) -> Self {
        Self(cents as u128 * (PICO / 100))
    }

    /// The amount in pico-dollars.
    #[must_use]
    pub const fn picodollars(self) -> u128 {
        self.0
    }

    /// The amount in nano-dollars, rounded up (reservations round toward safety).
    #[must_use]
    pub fn nanodollars_ceil(self) -> u64 {
        u64::try_from(self.0.div_ceil(1000)).unwrap_or(u64::MAX)
    }

    /// The amount in nano-dollars, rounded down.
    #[must_use]
    pub fn nanodollars_floor(self) -> u64 {
        u64::try_from(self.0 / 1000).unwrap_or(u64::MAX)
    }

    /// Approximate dollars as `f64` (for display and metrics only).
    #[must_use]
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / PICO as f64
    }

    /// `self - other`, or zero.
    #[must_use]
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self × numerator ÷ denominator`, rounded to the nearest pico-dollar (half up).
    /// Saturates instead of overflowing (exact for every amount below ~10²⁶ $).
    #[must_use]
    pub fn mul_ratio(self, numerator: u128, denominator: u128) -> Self {
        let denominator = denominator.max(1);
        match self.0.checked_mul(numerator) {
            Some(product) => Self(product.saturating_add(denominator / 2) / denominator),
            None => Self((self.0 / denominator).saturating_mul(numerator)),
        }
    }

    /// The exact decimal string of dollars with 12 decimals.
    #[must_use]
    pub fn to_decimal_string(self) -> String {
        format!("{}.{:012}", self.0 / PICO, self.0 % PICO)
    }
}

impl fmt::Display for Usd {
    /// `$1.23`, `$0.000123` (trailing zeros trimmed, at least two decimals).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = format!("{:012}", self.0 % PICO);
        let trimmed = full.trim_end_matches('0');
        let decimals = if trimmed.len() < 2 {
            &full[..2]
        } else {
            trimmed
        };
        write!(f, "${}.{decimals}", self.0 / PICO)
    }
}

/// Addition **saturates** at `u128::MAX` pico-dollars: amounts are computed from untrusted
/// usage numbers, and a saturated amount stays above every budget (fails safe) where a
/// wrapped one would look cheap.
impl Add for Usd {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, other: Self) {
        self.0 = self.0.saturating_add(other.0);
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Add::add)
    }
}

/// Why an amount (`Usd`, `PerMillion`, `Multiplier`) did not parse: a typed error, so `?`
/// carries it into `anyhow`, `Box<dyn Error>` or your own error type.
///
/// ```
/// use claude_tower::cost::Usd;
/// let error = "12.5.3".parse::<Usd>().unwrap_err();
/// assert!(error.to_string().contains("not a non-negative decimal"));
/// let _: &dyn std::error::Error = &error;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseAmountError {
    input: String,
    reason: String,
}

impl ParseAmountError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }

    /// The text that did not parse.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseAmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.input, self.reason)
    }
}

impl std::error::Error for ParseAmountError {}

/// Parses a non-negative decimal into an integer scaled by 10^`scale`; more decimals than
/// `scale` is an error (no silent rounding), and so is a value too large to hold.
pub(crate) fn parse_scaled(text: &str, scale: u32) -> Result<u128, ParseAmountError> {
    let text = text.trim().trim_start_matches('$');
    let error = |reason: &str| ParseAmountError::new(text, reason);
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(error("is not a number"));
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(error("is not a non-negative decimal"));
    }
    let frac = frac.trim_end_matches('0');
    let frac_len = u32::try_from(frac.len()).unwrap_or(u32::MAX);
    if frac_len > scale {
        return Err(error(&format!("has more than {scale} decimals")));
    }
    let too_large = || error("is too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| too_large())?
    };
    let frac_scaled = frac_value
        .checked_mul(10u128.pow(scale - frac_len))
        .ok_or_else(too_large)?;
    whole
        .checked_mul(10u128.pow(scale))
        .and_then(|w| w.checked_add(frac_scaled))
        .ok_or_else(too_large)
}

impl FromStr for Usd {
    type Err = ParseAmountError;
    /// Parses dollars (`"1.25"`, `"$0.000001"`), up to 12 decimals.
    fn from_str(text: &str) -> Result<Self, ParseAmountError> {
        parse_scaled(text, 12).map(Self)
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_decimal_string())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A price in dollars per million tokens, held exactly as pico-dollars per token
/// (`$1.25/MTok` = 1,250,000 p$/token); up to 6 decimals of $/MTok.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PerMillion(u128);

impl PerMillion {
    /// Pico-dollars per token.
    #[must_use]
    pub const fn picodollars_per_token(self) -> u128 {
        self.0
    }

    /// The cost of `tokens` tokens.
    #[must_use]
    pub fn cost(self, tokens: u64) -> Usd {
        Usd(self.0.saturating_mul(u128::from(tokens)))
    }
}

impl FromStr for PerMillion {
    type Err = ParseAmountError;
    fn from_str(text: &str) -> Result<Self, ParseAmountError> {
        parse_scaled(text, 6).map(Self)
    }
}

impl fmt::Display for PerMillion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = format!("{:06}", self.0 % 1_000_000);
        let trimmed = full.trim_end_matches('0');
        if trimmed.is_empty() {
            write!(f, "{}", self.0 / 1_000_000)
        } else {
            write!(f, "{}.{trimmed}", self.0 / 1_000_000)
        }
    }
}

impl Serialize for PerMillion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PerMillion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An exact multiplier (`"1.1"` = 11/10, `"0.5"` = 5/10), up to 6 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Multiplier {
    millionths: u128,
}

impl Multiplier {
    /// ×1.
    pub const ONE: Self = Self {
        millionths: 1_000_000,
    };

    /// Applies the multiplier to an amount (rounded half up to the pico-dollar).
    #[must_use]
    pub fn apply(self, amount: Usd) -> Usd {
        amount.mul_ratio(self.millionths, 1_000_000)
    }

    /// The ratio as (numerator, denominator).
    #[must_use]
    pub const fn ratio(self) -> (u128, u128) {
        (self.millionths, 1_000_000)
    }
}

impl Default for Multiplier {
    fn default() -> Self {
        Self::ONE
    }
}

impl FromStr for Multiplier {
    type Err = ParseAmountError;
    fn from_str(text: &str) -> Result<Self, ParseAmountError> {
        parse_scaled(text, 6).map(|millionths| Self { millionths })
    }
}

impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", PerMillion(self.millionths))
    }
}

impl Serialize for Multiplier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_is_exact() {
        assert_eq!(
            "1.25"
                .parse::<PerMillion>()
                .unwrap()
                .picodollars_per_token(),
            1_250_000
        );
        assert_eq!(
            "0.3125"
                .parse::<PerMillion>()
                .unwrap()
                .picodollars_per_token(),
            312_500
        );
        assert_eq!(
            "10".parse::<PerMillion>().unwrap().picodollars_per_token(),
            10_000_000
        );
        assert!("0.0000001".parse::<PerMillion>().is_err());
        // Too large for the scaled integer: an error, never an overflow.
        for huge in [
            "340282366920938463463374607431768211455",
            "999999999999999999999999999999",
        ] {
            let error = huge.parse::<Usd>().unwrap_err();
            assert!(error.to_string().contains("too large"), "{error}");
        }
        assert!("-1".parse::<PerMillion>().is_err());
        assert!("abc".parse::<PerMillion>().is_err());
        assert_eq!(
            "1.1".parse::<Multiplier>().unwrap().ratio(),
            (1_100_000, 1_000_000)
        );
    }

    #[test]
    fn display_and_serde() {
        assert_eq!(Usd::from_cents(123).to_string(), "$1.23");
        assert_eq!(Usd::from_picodollars(123_000_000).to_string(), "$0.000123");
        assert_eq!(Usd::ZERO.to_string(), "$0.00");
        let json = serde_json::to_string(&Usd::from_cents(5)).unwrap();
        assert_eq!(json, "\"0.050000000000\"");
        assert_eq!(
            serde_json::from_str::<Usd>(&json).unwrap(),
            Usd::from_cents(5)
        );
        assert_eq!(Usd::from_picodollars(1001).nanodollars_ceil(), 2);
    }

    #[test]
    fn multipliers_are_exact_on_table_prices() {
        let us: Multiplier = "1.1".parse().unwrap();
        let batch: Multiplier = "0.5".parse().unwrap();
        let price: PerMillion = "0.3125".parse().unwrap();
        let cost = price.cost(1_000_000);
        assert_eq!(us.apply(cost), Usd::from_picodollars(343_750_000_000));
        assert_eq!(batch.apply(cost), Usd::from_picodollars(156_250_000_000));
    }
}
