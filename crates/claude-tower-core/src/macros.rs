//! Macros for the open enums used throughout the API types.
//!
//! The Messages API may add new string values (stop reasons, roles) and new tagged objects
//! (content blocks, deltas, events) at any time. Two macros generate enums that keep the
//! values this crate knows typed and preserve everything else unchanged.

/// An enum over string values with an `Other(String)` fallback that round-trips unchanged.
macro_rules! open_str_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $value:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version of the crate does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire value.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $value => Self::$variant, )*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $( $value => Self::$variant, )*
                    _ => Self::Other(value),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from(value))
            }
        }
    };
}

/// An enum over JSON objects tagged by their `"type"` field, with an `Unknown(Value)` variant
/// that keeps any object whose type this crate does not know, byte-for-byte in value.
macro_rules! open_tagged_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($ty:ty) => $tag:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )*
            /// An object whose `type` this version of the crate does not know; kept verbatim
            /// and serialized back unchanged.
            Unknown(::serde_json::Value),
        }

        impl $name {
            /// The value of the `type` field.
            #[must_use]
            pub fn type_name(&self) -> &str {
                match self {
                    $( Self::$variant(_) => $tag, )*
                    Self::Unknown(value) => value
                        .get("type")
                        .and_then(::serde_json::Value::as_str)
                        .unwrap_or(""),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Self::$variant(inner) => ::serde::Serialize::serialize(
                        &$crate::macros::Tagged { kind: $tag, inner },
                        serializer,
                    ), )*
                    Self::Unknown(value) => ::serde::Serialize::serialize(value, serializer),
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use ::serde::de::Error as _;
                let value = <::serde_json::Value as ::serde::Deserialize>::deserialize(deserializer)?;
                let ::serde_json::Value::Object(mut map) = value else {
                    return Err(D::Error::custom(concat!(
                        "expected a JSON object for ", stringify!($name)
                    )));
                };
                let tag = match map.get("type") {
                    Some(::serde_json::Value::String(tag)) => tag.as_str(),
                    _ => return Ok(Self::Unknown(::serde_json::Value::Object(map))),
                };
                match tag {
                    $( $tag => {
                        map.remove("type");
                        <$ty as ::serde::Deserialize>::deserialize(::serde_json::Value::Object(map))
                            .map(Self::$variant)
                            .map_err(|e| D::Error::custom(format_args!(
                                concat!("invalid `", $tag, "` object: {}"), e
                            )))
                    } )*
                    _ => Ok(Self::Unknown(::serde_json::Value::Object(map))),
                }
            }
        }
    };
}

/// Serde for an enum `{ Text(String), Blocks(Vec<ContentBlock>) }`, which the API sends as a
/// JSON string or an array of blocks (message content, `tool_result` content, system).
/// Also gives the enum `blocks()` (borrowed; the string form has none) and `text()` (all
/// text concatenated).
macro_rules! text_or_blocks {
    ($name:ident, $what:literal) => {
        impl $name {
            /// Borrow the blocks; the plain-string form has none.
            #[must_use]
            pub fn blocks(&self) -> &[ContentBlock] {
                match self {
                    Self::Text(_) => &[],
                    Self::Blocks(blocks) => blocks,
                }
            }

            /// The concatenated text of the string form or of all `text` blocks.
            #[must_use]
            pub fn text(&self) -> String {
                match self {
                    Self::Text(text) => text.clone(),
                    Self::Blocks(blocks) => {
                        blocks.iter().filter_map(ContentBlock::as_text).collect()
                    }
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    Self::Text(text) => serializer.serialize_str(text),
                    Self::Blocks(blocks) => ::serde::Serialize::serialize(blocks, serializer),
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                use ::serde::de::Error as _;
                match <::serde_json::Value as ::serde::Deserialize>::deserialize(deserializer)? {
                    ::serde_json::Value::String(text) => Ok(Self::Text(text)),
                    value @ ::serde_json::Value::Array(_) => ::serde_json::from_value(value)
                        .map(Self::Blocks)
                        .map_err(D::Error::custom),
                    _ => Err(D::Error::custom(concat!(
                        $what,
                        " must be a string or an array of blocks"
                    ))),
                }
            }
        }
    };
}

pub(crate) use open_str_enum;
pub(crate) use open_tagged_enum;
pub(crate) use text_or_blocks;

/// Serializes `inner` with a leading `"type": kind` field.
#[derive(serde::Serialize)]
pub(crate) struct Tagged<'a, T: ?Sized> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    #[serde(flatten)]
    pub(crate) inner: &'a T,
}

/// Deserializes an optional JSON value keeping an explicit `null` as `Some(Value::Null)` (an
/// absent field stays `None` through `#[serde(default)]`), so a round trip writes the `null`
/// back: the API sends `"stop_details": null`, `"container": null`, and the JSON must come
/// out unchanged.
pub(crate) fn keep_null<'de, D>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <serde_json::Value as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Builder setters that take `self` by value, set one field and return `self`: one line per
/// setter instead of six. Each entry is `fn name(arg: Type) => field = value;` with its docs
/// above it; every setter is `#[must_use]`.
///
/// ```
/// # #[derive(Default)] struct Options { timeout: Option<u64>, name: Option<String> }
/// impl Options {
///     claude_tower::core::setters! {
///         /// The timeout in seconds.
///         pub fn timeout(seconds: u64) => timeout = Some(seconds);
///         /// The name.
///         pub fn name(name: impl Into<String>) => name = Some(name.into());
///     }
/// }
/// let options = Options::default().timeout(5).name("x");
/// assert_eq!((options.timeout, options.name.as_deref()), (Some(5), Some("x")));
/// ```
#[macro_export]
macro_rules! setters {
    ($($(#[$meta:meta])* $vis:vis fn $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr;)*) => {
        $(
            $(#[$meta])*
            #[must_use]
            $vis fn $name(mut self, $arg: $ty) -> Self {
                self.$field = $value;
                self
            }
        )*
    };
}
