//! The request parameter map built from the query string and a form or JSON body, flattened to
//! `Name.N.Field` keys, together with the forms a client may have signed it in.
//! It owns decoding and size limits; it knows nothing of actions, signatures or HTTP types.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Bounds on what one request may carry, checked while parsing so oversized requests are cheap to reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most flattened parameters a request may carry (query and body together).
    pub max_params: usize,
    /// Longest flattened key, in bytes (e.g. `HealthCheckConfig.Enabled`).
    pub max_key_len: usize,
    /// Longest single value, in bytes after decoding.
    pub max_value_len: usize,
    /// How many levels of JSON arrays/objects a top-level value may nest: `SSLIds: [..]` is one level,
    /// `Targets: [{..}]` two. Flattened keys therefore have at most `max_depth + 1` segments.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_params: 1024,
            max_key_len: 128,
            // Certificate bodies and private keys are the largest values the API takes.
            max_value_len: 256 * 1024,
            max_depth: 4,
        }
    }
}

/// Why a request's parameters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("request parameters are not valid UTF-8")]
    InvalidUtf8,
    #[error("malformed form data: {0}")]
    MalformedForm(String),
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    #[error("unsupported JSON value for parameter {key}")]
    UnsupportedJsonValue { key: String },
    #[error("too many parameters (at most {limit})")]
    TooManyParams { limit: usize },
    #[error("parameter name too long")]
    KeyTooLong,
    #[error("value of parameter {key} is too long")]
    ValueTooLong { key: String },
}

impl ParamsError {
    /// The offending parameter, when the error is about one, for the client message.
    pub fn param_name(&self) -> Option<&str> {
        match self {
            ParamsError::UnsupportedJsonValue { key } | ParamsError::ValueTooLong { key } => {
                Some(key)
            }
            ParamsError::InvalidUtf8
            | ParamsError::MalformedForm(_)
            | ParamsError::MalformedJson(_)
            | ParamsError::TooManyParams { .. }
            | ParamsError::KeyTooLong => None,
        }
    }
}

/// The parameters of one request: flattened key -> string value, plus the nested signing form when the
/// body was JSON with arrays or objects.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Invariant: sorted by key bytes, keys unique. This is also the order signatures are computed in.
    pairs: Vec<(String, String)>,
    /// The Go SDK `JSONEncoder` form (spec §3.1 "nested JSON values"): one entry per top-level key,
    /// arrays and objects rendered by `any2String`.
    /// Invariant: `Some` only when the body had a JSON array or object; sorted by key bytes, keys unique.
    nested: Option<Vec<(String, String)>>,
}

impl Params {
    /// The value of a flattened key such as `Region`, `HealthCheckConfig.Enabled` or `SSLIds.0`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|at| self.pairs[at].1.as_str())
    }

    /// The values of `name.0`, `name.1`, ... ordered by numeric index (`name.10` after `name.2`);
    /// missing indices are skipped, since the Go SDK drops empty list items.
    pub fn list(&self, name: &str) -> Vec<&str> {
        let mut items: Vec<(&str, &str)> = self
            .with_prefix(name)
            .filter(|(rest, _)| is_index(rest))
            .collect();
        items.sort_by(|a, b| cmp_index(a.0, b.0));
        items.into_iter().map(|(_, value)| value).collect()
    }

    /// The structures `name.N.Field`, one map (field -> value) per index, ordered by numeric index.
    /// Indices that differ only by leading zeros are the same item.
    pub fn struct_list(&self, name: &str) -> Vec<BTreeMap<&str, &str>> {
        let mut fields: Vec<(&str, &str, &str)> = self
            .with_prefix(name)
            .filter_map(|(rest, value)| {
                let (index, field) = rest.split_once('.')?;
                (is_index(index) && !field.is_empty()).then_some((index, field, value))
            })
            .collect();
        fields.sort_by(|a, b| cmp_index(a.0, b.0));
        let mut items: Vec<BTreeMap<&str, &str>> = Vec::new();
        let mut current_index = None;
        for (index, field, value) in fields {
            let index = trim_index(index);
            if current_index != Some(index) {
                current_index = Some(index);
                items.push(BTreeMap::new());
            }
            if let Some(item) = items.last_mut() {
                item.insert(field, value);
            }
        }
        items
    }

    /// Every flattened pair in key byte order; this is the primary signing form.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The nested signing form in key byte order, present only when the JSON body had arrays or objects.
    pub fn nested_signing_form(&self) -> Option<Vec<(&str, &str)>> {
        self.nested.as_ref().map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
    }

    /// Number of flattened parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the request carried no parameters at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Builds a map from already flattened pairs (clients and tests); a repeated key keeps its last value.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        let mut pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        keep_last(&mut pairs, |pair| &pair.0);
        Params {
            pairs,
            nested: None,
        }
    }

    /// The pairs whose key is `name.<rest>`, as (`rest`, value), in key byte order.
    fn with_prefix(&self, name: &str) -> impl Iterator<Item = (&str, &str)> {
        // Keys starting with `name.` are exactly those in ["name.", "name/"), since `/` follows `.`.
        let below = |bound: u8| {
            self.pairs.partition_point(|(k, _)| {
                k.as_bytes()
                    .iter()
                    .lt(name.as_bytes().iter().chain(&[bound]))
            })
        };
        let (start, end) = (below(b'.'), below(b'/'));
        let skip = name.len() + 1;
        self.pairs[start..end]
            .iter()
            .map(move |(k, v)| (&k[skip..], v.as_str()))
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are left out on purpose: CreateSSL carries a certificate's private key, and a
        // `{:?}` in a log line must not leak it.
        f.debug_struct("Params")
            .field(
                "keys",
                &self.pairs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("nested_form", &self.nested.is_some())
            .finish()
    }
}

fn is_index(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn trim_index(index: &str) -> &str {
    let trimmed = index.trim_start_matches('0');
    if trimmed.is_empty() {
        "0"
    } else {
        trimmed
    }
}

/// Numeric order of decimal indices of any length, without parsing (so no overflow).
fn cmp_index(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (trim_index(a), trim_index(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Drops all but the last element of each run of equal keys; the input must be sorted by key.
fn keep_last<T>(items: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    // `dedup_by` passes (later, earlier) and keeps the earlier slot, so the later element is swapped in.
    items.dedup_by(|later, earlier| {
        let same = key(later) == key(earlier);
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
}

/// Reads the query string and the body into one parameter map (spec §2.2 "Request parsing", §2.3, §3.1).
///
/// A key present in both the query and the body takes the body's value; within one source the last
/// occurrence wins. The body is JSON when the content type says `application/json`, or when it is
/// missing or unrecognised and the body starts with `{`; otherwise it is form-urlencoded.
pub fn parse(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Params, ParamsError> {
    let mut collector = Collector::new(limits);
    if let Some(query) = query {
        collector.form(query.as_bytes())?;
    }
    collector.source_count = 0;
    match body_kind(content_type, body) {
        BodyKind::Empty => {}
        BodyKind::Form => collector.form(body)?,
        BodyKind::Json => collector.json(body)?,
    }
    collector.finish()
}

enum BodyKind {
    Empty,
    Form,
    Json,
}

fn body_kind(content_type: Option<&str>, body: &[u8]) -> BodyKind {
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return BodyKind::Empty;
    };
    let media_type = content_type
        .map(|value| value.split(';').next().unwrap_or("").trim())
        .unwrap_or("");
    if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if media_type.eq_ignore_ascii_case("application/json") || *first == b'{' {
        BodyKind::Json
    } else {
        BodyKind::Form
    }
}

/// One flattened parameter on its way into the map.
struct Leaf {
    key: String,
    value: String,
    /// Arrival number of the top-level entry it came from; a later entry wins over an earlier one.
    entry: usize,
    /// Whether the key is a top-level one (query, form, JSON scalar) rather than derived from a
    /// JSON array/object; only top-level leaves belong in the nested signing form.
    top_level: bool,
}

/// What a JSON value turned into: the Go `any2String` text of containers is what the nested form signs.
enum JsonNode {
    Null,
    Scalar(String),
    Container(String),
}

struct Collector<'l> {
    limits: &'l Limits,
    /// Flattened leaves in arrival order.
    leaves: Vec<Leaf>,
    /// Top-level JSON entries whose nested-form value differs from any leaf: arrays, objects, nulls.
    composites: Vec<Leaf>,
    has_container: bool,
    entries: usize,
    /// Parameters seen in the current source, checked against `max_params` as they arrive.
    source_count: usize,
    /// The precise reason a JSON visitor stopped; serde only carries a message.
    error: Option<ParamsError>,
}

impl<'l> Collector<'l> {
    fn new(limits: &'l Limits) -> Collector<'l> {
        Collector {
            limits,
            leaves: Vec::new(),
            composites: Vec::new(),
            has_container: false,
            entries: 0,
            source_count: 0,
            error: None,
        }
    }

    fn next_entry(&mut self) -> usize {
        self.entries += 1;
        self.entries
    }

    fn count(&mut self) -> Result<(), ParamsError> {
        self.source_count += 1;
        if self.source_count > self.limits.max_params {
            return Err(ParamsError::TooManyParams {
                limit: self.limits.max_params,
            });
        }
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), ParamsError> {
        if key.len() > self.limits.max_key_len {
            return Err(ParamsError::KeyTooLong);
        }
        Ok(())
    }

    fn push_leaf(&mut self, leaf: Leaf) -> Result<(), ParamsError> {
        self.count()?;
        self.check_key(&leaf.key)?;
        if leaf.value.len() > self.limits.max_value_len {
            return Err(ParamsError::ValueTooLong { key: leaf.key });
        }
        self.leaves.push(leaf);
        Ok(())
    }

    fn form(&mut self, raw: &[u8]) -> Result<(), ParamsError> {
        for segment in raw.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
            // Counted before decoding so a flood of parameters is rejected without decoding it.
            self.count()?;
            let (raw_key, raw_value) = match segment.iter().position(|&b| b == b'=') {
                Some(at) => (&segment[..at], &segment[at + 1..]),
                None => (segment, &b""[..]),
            };
            let key = decode_component(raw_key).map_err(|error| match error {
                DecodeError::InvalidUtf8 => ParamsError::InvalidUtf8,
                DecodeError::BadEscape => {
                    ParamsError::MalformedForm("invalid percent escape in a parameter name".into())
                }
            })?;
            self.check_key(&key)?;
            let value = decode_component(raw_value).map_err(|error| match error {
                DecodeError::InvalidUtf8 => ParamsError::InvalidUtf8,
                DecodeError::BadEscape => {
                    ParamsError::MalformedForm(format!("invalid percent escape in {key}"))
                }
            })?;
            if value.len() > self.limits.max_value_len {
                return Err(ParamsError::ValueTooLong { key });
            }
            let entry = self.next_entry();
            self.leaves.push(Leaf {
                key,
                value,
                entry,
                top_level: true,
            });
        }
        Ok(())
    }

    fn json(&mut self, body: &[u8]) -> Result<(), ParamsError> {
        let text = std::str::from_utf8(body).map_err(|_| ParamsError::InvalidUtf8)?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let outcome = TopLevel { collector: self }
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end());
        match (self.error.take(), outcome) {
            (Some(error), _) => Err(error),
            (None, Err(error)) => Err(ParamsError::MalformedJson(error.to_string())),
            (None, Ok(())) => Ok(()),
        }
    }

    fn finish(self) -> Result<Params, ParamsError> {
        let nested = self.has_container.then(|| {
            let mut form: Vec<(&str, &str, usize)> = self
                .leaves
                .iter()
                .filter(|leaf| leaf.top_level)
                .chain(&self.composites)
                .map(|leaf| (leaf.key.as_str(), leaf.value.as_str(), leaf.entry))
                .collect();
            form.sort_by(|a, b| a.0.cmp(b.0).then(a.2.cmp(&b.2)));
            keep_last(&mut form, |item| item.0);
            form.into_iter()
                .map(|(k, v, _)| (k.to_owned(), v.to_owned()))
                .collect()
        });
        let mut leaves = self.leaves;
        // Stable, so among equal keys arrival order (body after query, later after earlier) survives.
        leaves.sort_by(|a, b| a.key.cmp(&b.key));
        keep_last(&mut leaves, |leaf| &leaf.key);
        if leaves.len() > self.limits.max_params {
            return Err(ParamsError::TooManyParams {
                limit: self.limits.max_params,
            });
        }
        Ok(Params {
            pairs: leaves
                .into_iter()
                .map(|leaf| (leaf.key, leaf.value))
                .collect(),
            nested,
        })
    }

    /// Records `error` as the reason parsing stopped and hands serde a placeholder to unwind with.
    fn reject<E: de::Error>(&mut self, error: ParamsError) -> E {
        self.error = Some(error);
        E::custom("request parameters rejected")
    }
}

enum DecodeError {
    BadEscape,
    InvalidUtf8,
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte.
/// A `%` not followed by two hex digits is an error rather than a literal, so a client's encoding bug
/// surfaces as a clear message instead of a signature mismatch.
fn decode_component(raw: &[u8]) -> Result<String, DecodeError> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8);
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'+' => {
                bytes.push(b' ');
                rest = tail;
            }
            b'%' => match tail {
                [high, low, tail @ ..] => {
                    let (Some(high), Some(low)) = (hex_digit(*high), hex_digit(*low)) else {
                        return Err(DecodeError::BadEscape);
                    };
                    bytes.push((high << 4) | low);
                    rest = tail;
                }
                _ => return Err(DecodeError::BadEscape),
            },
            other => {
                bytes.push(other);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Spec §2.3 number rule: integral values without a fraction, others in shortest decimal, no exponent.
fn format_float(value: f64) -> String {
    // Rust's `Display` for f64 already prints the shortest round-trip digits, never an exponent, and
    // integral values without `.0`; only negative zero needs help (`-0.0` is the integer 0).
    if value == 0.0 {
        "0".to_owned()
    } else {
        value.to_string()
    }
}

/// Streams the top-level JSON object into the collector, so limits stop parsing as soon as they trip.
struct TopLevel<'c, 'l> {
    collector: &'c mut Collector<'l>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let collector = self.collector;
        while let Some(key) = map.next_key::<String>()? {
            let entry = collector.next_entry();
            let node = map.next_value_seed(JsonValue {
                collector: &mut *collector,
                key: &key,
                depth: 0,
            })?;
            let outcome = match node {
                JsonNode::Scalar(value) => collector.push_leaf(Leaf {
                    key,
                    value,
                    entry,
                    top_level: true,
                }),
                // Omitted from the map, but Go's `any2String` signs a nil as `Key` + "", and it
                // still costs a parameter slot so a flood of nulls is bounded too.
                JsonNode::Null => collector.count().map(|()| {
                    collector.composites.push(Leaf {
                        key,
                        value: String::new(),
                        entry,
                        top_level: true,
                    })
                }),
                JsonNode::Container(value) => {
                    collector.has_container = true;
                    collector.composites.push(Leaf {
                        key,
                        value,
                        entry,
                        top_level: true,
                    });
                    Ok(())
                }
            };
            outcome.map_err(|error| collector.reject(error))?;
        }
        Ok(())
    }
}

/// One JSON value below the top level object, at flattened key `key`.
/// `depth` counts the arrays/objects enclosing it (0 for a top-level value).
struct JsonValue<'c, 'l> {
    collector: &'c mut Collector<'l>,
    key: &'c str,
    depth: usize,
}

impl<'l> JsonValue<'_, 'l> {
    /// Checks that a container may open here; returns the key prefix its children extend.
    fn open_container(&self) -> Result<String, ParamsError> {
        self.collector.check_key(self.key)?;
        if self.depth >= self.collector.limits.max_depth {
            return Err(ParamsError::UnsupportedJsonValue {
                key: self.key.to_owned(),
            });
        }
        let mut prefix = String::with_capacity(self.key.len() + 8);
        prefix.push_str(self.key);
        prefix.push('.');
        Ok(prefix)
    }

    /// Files a child's result under `child_key`; returns its `any2String` text.
    fn adopt(&mut self, child_key: &str, node: JsonNode) -> Result<String, ParamsError> {
        match node {
            JsonNode::Scalar(value) => {
                self.collector.push_leaf(Leaf {
                    key: child_key.to_owned(),
                    value: value.clone(),
                    entry: self.collector.entries,
                    top_level: false,
                })?;
                Ok(value)
            }
            JsonNode::Null => {
                // No key for the map (a list keeps the gap), but it still costs a parameter slot.
                self.collector.count()?;
                Ok(String::new())
            }
            JsonNode::Container(value) => Ok(value),
        }
    }

    fn child<'s>(&'s mut self, key: &'s str) -> JsonValue<'s, 'l> {
        JsonValue {
            collector: &mut *self.collector,
            key,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for JsonValue<'_, '_> {
    type Value = JsonNode;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<JsonNode, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonValue<'_, '_> {
    type Value = JsonNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<JsonNode, E> {
        Ok(JsonNode::Scalar(
            if value { "true" } else { "false" }.to_owned(),
        ))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonNode, E> {
        Ok(JsonNode::Scalar(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonNode, E> {
        Ok(JsonNode::Scalar(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonNode, E> {
        Ok(JsonNode::Scalar(format_float(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<JsonNode, E> {
        Ok(JsonNode::Scalar(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<JsonNode, E> {
        Ok(JsonNode::Scalar(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonNode, E> {
        Ok(JsonNode::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<JsonNode, A::Error> {
        let mut child_key = self
            .open_container()
            .map_err(|error| self.collector.reject(error))?;
        let base = child_key.len();
        let mut text = String::new();
        let mut index = 0usize;
        loop {
            child_key.truncate(base);
            // Writing into a String cannot fail.
            let _ = write!(child_key, "{index}");
            let Some(node) = seq.next_element_seed(self.child(&child_key))? else {
                break;
            };
            let child_text = self
                .adopt(&child_key, node)
                .map_err(|error| self.collector.reject(error))?;
            text.push_str(&child_text);
            index += 1;
        }
        if index == 0 {
            self.collector
                .count()
                .map_err(|error| self.collector.reject(error))?;
        }
        Ok(JsonNode::Container(text))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<JsonNode, A::Error> {
        let mut child_key = self
            .open_container()
            .map_err(|error| self.collector.reject(error))?;
        let base = child_key.len();
        let mut fields: Vec<(String, String)> = Vec::new();
        while let Some(field) = map.next_key::<String>()? {
            child_key.truncate(base);
            child_key.push_str(&field);
            let node = map.next_value_seed(self.child(&child_key))?;
            let child_text = self
                .adopt(&child_key, node)
                .map_err(|error| self.collector.reject(error))?;
            fields.push((field, child_text));
        }
        if fields.is_empty() {
            self.collector
                .count()
                .map_err(|error| self.collector.reject(error))?;
        }
        // Go's `map2String`: the object's own fields in key byte order, a repeated field keeping its
        // last value (as Go's JSON decoding into a map would).
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        keep_last(&mut fields, |field| &field.0);
        let mut text = String::new();
        for (field, value) in &fields {
            text.push_str(field);
            text.push_str(value);
        }
        Ok(JsonNode::Container(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_default(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<Params, ParamsError> {
        parse(query, content_type, body.as_bytes(), &Limits::default())
    }

    fn form(body: &str) -> Params {
        parse_default(None, Some(FORM), body).expect("form body parses")
    }

    fn json(body: &str) -> Params {
        parse_default(None, Some(JSON), body).expect("JSON body parses")
    }

    fn pairs(params: &Params) -> Vec<(&str, &str)> {
        params.iter().collect()
    }

    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";

    #[test]
    fn form_decoding_follows_urlencoded_rules() {
        let params = form("A=a+b&B=%E8%AF%81%E4%B9%A6&C=1%2B1%3D2&D=line%0Anext&E%2E1=x");
        assert_eq!(params.get("A"), Some("a b"));
        assert_eq!(params.get("B"), Some("证书"));
        assert_eq!(params.get("C"), Some("1+1=2"));
        assert_eq!(params.get("D"), Some("line\nnext"));
        assert_eq!(params.get("E.1"), Some("x"));
    }

    #[test]
    fn form_tolerates_empty_segments_missing_values_and_extra_equals() {
        let params = form("&A=&&B&C=x=y&");
        assert_eq!(pairs(&params), [("A", ""), ("B", ""), ("C", "x=y")]);
    }

    #[test]
    fn bad_percent_escapes_are_malformed_form() {
        for body in ["A=%zz", "A=%4", "A=%", "%G1=x"] {
            let error = parse_default(None, Some(FORM), body).unwrap_err();
            assert!(
                matches!(error, ParamsError::MalformedForm(_)),
                "{body}: {error:?}"
            );
        }
        let error = parse_default(Some("Name=100%"), None, "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed form data: invalid percent escape in Name"
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_in_every_source() {
        let cases: [(Option<&str>, Option<&str>, &[u8]); 5] = [
            (Some("A=%FF"), None, b""),
            (Some("%C3=x"), None, b""),
            (None, Some(FORM), b"A=%E8%AF"),
            (None, Some(FORM), b"A=\xff"),
            (None, Some(JSON), b"{\"A\":\"\xff\"}"),
        ];
        for (query, content_type, body) in cases {
            let error = parse(query, content_type, body, &Limits::default()).unwrap_err();
            assert!(
                matches!(error, ParamsError::InvalidUtf8),
                "{query:?} {body:?}: {error:?}"
            );
        }
    }

    #[test]
    fn body_wins_over_query_and_appears_once() {
        // The Go SDK's shape: `?Action=X` for logging, `Action` again in the body.
        let params = parse_default(
            Some("Action=FromQuery&Zone=z1"),
            Some(FORM),
            "Action=UpdateSSLBinding&Region=cn-bj2",
        )
        .unwrap();
        assert_eq!(
            pairs(&params),
            [
                ("Action", "UpdateSSLBinding"),
                ("Region", "cn-bj2"),
                ("Zone", "z1")
            ]
        );
        let params =
            parse_default(Some("Action=FromQuery"), Some(JSON), r#"{"Action":"X"}"#).unwrap();
        assert_eq!(pairs(&params), [("Action", "X")]);
    }

    #[test]
    fn last_duplicate_wins_within_a_source() {
        assert_eq!(pairs(&form("A=1&B=2&A=3")), [("A", "3"), ("B", "2")]);
        assert_eq!(
            pairs(&json(r#"{"A":1,"B":2,"A":3}"#)),
            [("A", "3"), ("B", "2")]
        );
        let params = parse_default(Some("A=1&A=2"), None, "").unwrap();
        assert_eq!(pairs(&params), [("A", "2")]);
    }

    #[test]
    fn content_type_selects_the_body_decoder() {
        let form_body = "Action=X";
        let json_body = "  \n{\"Action\":\"X\"}";
        let cases = [
            (
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                form_body,
            ),
            (Some("Application/JSON; charset=utf-8"), json_body),
            (None, json_body),
            (None, form_body),
            (Some("text/plain"), json_body),
            (Some("text/plain"), form_body),
            (Some(""), json_body),
        ];
        for (content_type, body) in cases {
            let params = parse_default(None, content_type, body).unwrap();
            assert_eq!(
                pairs(&params),
                [("Action", "X")],
                "{content_type:?} {body:?}"
            );
        }
        // An explicit form type is honoured even for a body that looks like JSON.
        let params = parse_default(None, Some(FORM), r#"{"A":1}"#).unwrap();
        assert_eq!(pairs(&params), [(r#"{"A":1}"#, "")]);
    }

    #[test]
    fn empty_bodies_are_fine() {
        for content_type in [None, Some(FORM), Some(JSON)] {
            for body in ["", " \r\n\t"] {
                let params = parse_default(Some("Action=X"), content_type, body).unwrap();
                assert_eq!(pairs(&params), [("Action", "X")]);
            }
        }
        let params = parse_default(None, None, "").unwrap();
        assert!(params.is_empty());
        assert_eq!(params.len(), 0);
    }

    #[test]
    fn json_top_level_must_be_one_object() {
        for body in [
            "[1]",
            "\"A\"",
            "5",
            "null",
            "{\"A\":1} x",
            "{\"A\":1",
            "{A:1}",
            "{} {}",
        ] {
            let error = parse_default(None, Some(JSON), body).unwrap_err();
            assert!(
                matches!(error, ParamsError::MalformedJson(_)),
                "{body}: {error:?}"
            );
        }
        let error = parse_default(None, Some(JSON), "[1]").unwrap_err();
        assert!(
            error.to_string().contains("expected a JSON object"),
            "{error}"
        );
    }

    #[test]
    fn json_scalars_are_stringified_per_spec() {
        let params = json(
            r#"{"T":true,"F":false,"I":443,"N":-7,"Big":18446744073709551615,"Whole":5.0,
                "Half":60.5,"Tiny":1e-7,"Huge":1e21,"NegZero":-0.0,"S":"a\nb","E":"","Null":null}"#,
        );
        assert_eq!(
            pairs(&params),
            [
                ("Big", "18446744073709551615"),
                ("E", ""),
                ("F", "false"),
                ("Half", "60.5"),
                ("Huge", "1000000000000000000000"),
                ("I", "443"),
                ("N", "-7"),
                ("NegZero", "0"),
                ("S", "a\nb"),
                ("T", "true"),
                ("Tiny", "0.0000001"),
                ("Whole", "5"),
            ]
        );
        assert_eq!(params.nested_signing_form(), None);
    }

    #[test]
    fn json_arrays_and_objects_are_flattened() {
        let params = json(
            r#"{"SSLIds":["ssl-1","ssl-2"],"HealthCheckConfig":{"Enabled":true,"Type":"Port"},
                "Targets":[{"ResourceId":"uhost-1","Port":80},{"ResourceId":"uhost-2","Port":81}],
                "Grid":[[1,2],[3]],"Empty":[],"EmptyObject":{}}"#,
        );
        assert_eq!(
            pairs(&params),
            [
                ("Grid.0.0", "1"),
                ("Grid.0.1", "2"),
                ("Grid.1.0", "3"),
                ("HealthCheckConfig.Enabled", "true"),
                ("HealthCheckConfig.Type", "Port"),
                ("SSLIds.0", "ssl-1"),
                ("SSLIds.1", "ssl-2"),
                ("Targets.0.Port", "80"),
                ("Targets.0.ResourceId", "uhost-1"),
                ("Targets.1.Port", "81"),
                ("Targets.1.ResourceId", "uhost-2"),
            ]
        );
        assert_eq!(params.list("SSLIds"), ["ssl-1", "ssl-2"]);
        let targets = params.struct_list("Targets");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[1]["ResourceId"], "uhost-2");
        assert_eq!(targets[1]["Port"], "81");
    }

    #[test]
    fn nested_signing_form_follows_go_any2string() {
        let params = parse_default(
            Some("Action=FromQuery&Zone=z1"),
            Some(JSON),
            r#"{"Action":"CreateListener","Certificates":["ssl-cert1"],"HTTP2Enabled":true,
                "HealthCheckConfig":{"Type":"Port","Enabled":true,"Gone":null},
                "Targets":[{"B":2,"A":1},null,[3,4.5]],"Skipped":null,"Empty":[]}"#,
        )
        .unwrap();
        assert_eq!(
            params.nested_signing_form().unwrap(),
            [
                ("Action", "CreateListener"),
                ("Certificates", "ssl-cert1"),
                ("Empty", ""),
                ("HTTP2Enabled", "true"),
                ("HealthCheckConfig", "EnabledtrueGoneTypePort"),
                ("Skipped", ""),
                ("Targets", "A1B234.5"),
                ("Zone", "z1"),
            ]
        );
        // The processing map drops nulls but keeps the list index gap.
        assert_eq!(params.get("Skipped"), None);
        assert_eq!(params.get("Targets.2.1"), Some("4.5"));
        assert_eq!(params.get("Targets.1"), None);
    }

    #[test]
    fn flattened_key_json_has_no_nested_form() {
        // Java/JS style: flattened keys with native JSON types.
        let params = json(r#"{"Certificates.0":"ssl-a","ListenerPort":443,"HTTP2Enabled":true}"#);
        assert_eq!(params.get("Certificates.0"), Some("ssl-a"));
        assert_eq!(params.get("ListenerPort"), Some("443"));
        assert_eq!(params.nested_signing_form(), None);
        assert_eq!(form("A=1").nested_signing_form(), None);
    }

    #[test]
    fn nulls_inside_arrays_leave_gaps_that_lists_tolerate() {
        let params = json(r#"{"SSLIds":["a",null,"b"]}"#);
        assert_eq!(pairs(&params), [("SSLIds.0", "a"), ("SSLIds.2", "b")]);
        assert_eq!(params.list("SSLIds"), ["a", "b"]);
    }

    #[test]
    fn depth_limit_rejects_deeper_nesting_and_names_the_key() {
        let limits = Limits::default();
        let at_limit = r#"{"A":[{"B":[{"C":1}]}]}"#;
        let params = parse(None, Some(JSON), at_limit.as_bytes(), &limits).unwrap();
        assert_eq!(params.get("A.0.B.0.C"), Some("1"));
        let too_deep = r#"{"A":[{"B":[{"C":[1]}]}]}"#;
        let error = parse(None, Some(JSON), too_deep.as_bytes(), &limits).unwrap_err();
        assert!(matches!(&error, ParamsError::UnsupportedJsonValue { key } if key == "A.0.B.0.C"));
        assert_eq!(error.param_name(), Some("A.0.B.0.C"));

        let flat_only = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        let error = parse(None, Some(JSON), br#"{"X":1,"SSLIds":["a"]}"#, &flat_only).unwrap_err();
        assert_eq!(error.param_name(), Some("SSLIds"));
        assert!(parse(None, Some(JSON), br#"{"X":1}"#, &flat_only).is_ok());
    }

    #[test]
    fn deep_nesting_is_rejected_without_recursing_through_it() {
        // Far beyond serde_json's own recursion limit: our depth check stops first.
        let body = format!("{{\"A\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let error = parse_default(None, Some(JSON), &body).unwrap_err();
        assert!(
            matches!(error, ParamsError::UnsupportedJsonValue { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn too_many_params_in_each_source() {
        let limits = Limits::default();
        let many: Vec<String> = (0..=limits.max_params).map(|i| format!("K{i}=v")).collect();
        let form_body = many.join("&");
        let exactly: String = many[..limits.max_params].join("&");
        assert!(parse(None, Some(FORM), exactly.as_bytes(), &limits).is_ok());
        for (query, content_type, body) in [
            (None, Some(FORM), form_body.as_str()),
            (Some(form_body.as_str()), None, ""),
        ] {
            let error = parse(query, content_type, body.as_bytes(), &limits).unwrap_err();
            assert!(
                matches!(error, ParamsError::TooManyParams { limit: 1024 }),
                "{error:?}"
            );
        }
        let json_body = format!(
            "{{{}}}",
            (0..=limits.max_params)
                .map(|i| format!("\"K{i}\":1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let error = parse(None, Some(JSON), json_body.as_bytes(), &limits).unwrap_err();
        assert!(matches!(error, ParamsError::TooManyParams { .. }));
        let array_body = format!("{{\"A\":[{}]}}", vec!["1"; 1025].join(","));
        let error = parse(None, Some(JSON), array_body.as_bytes(), &limits).unwrap_err();
        assert!(matches!(error, ParamsError::TooManyParams { .. }));
    }

    #[test]
    fn too_many_params_across_sources_counts_distinct_keys() {
        let limits = Limits {
            max_params: 3,
            ..Limits::default()
        };
        // Four distinct keys in total.
        let error = parse(Some("A=1&B=2"), Some(FORM), b"C=3&D=4", &limits).unwrap_err();
        assert!(matches!(error, ParamsError::TooManyParams { limit: 3 }));
        // The query's Action is overridden by the body's, leaving three.
        let params = parse(Some("Action=X"), Some(FORM), b"Action=X&B=2&C=3", &limits).unwrap();
        assert_eq!(params.len(), 3);
    }

    #[test]
    fn parsing_stops_at_the_parameter_limit() {
        // Whatever follows the limit is never read: the garbage after it would otherwise be reported.
        let limits = Limits {
            max_params: 2,
            ..Limits::default()
        };
        let error = parse(None, Some(FORM), b"A=1&B=2&C=3&D=%zz\xff", &limits).unwrap_err();
        assert!(
            matches!(error, ParamsError::TooManyParams { .. }),
            "{error:?}"
        );
        let error = parse(
            None,
            Some(JSON),
            br#"{"A":1,"B":2,"C":3,"D":[[[[[[[[[[ !"#,
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(error, ParamsError::TooManyParams { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn nulls_and_empty_containers_count_towards_the_limit() {
        let limits = Limits {
            max_params: 2,
            ..Limits::default()
        };
        for body in [
            r#"{"A":null,"B":null,"C":null}"#,
            r#"{"A":[null,null,null]}"#,
            r#"{"A":[],"B":{},"C":[]}"#,
        ] {
            let error = parse(None, Some(JSON), body.as_bytes(), &limits).unwrap_err();
            assert!(
                matches!(error, ParamsError::TooManyParams { limit: 2 }),
                "{body}: {error:?}"
            );
        }
    }

    #[test]
    fn key_and_value_lengths_are_limited() {
        let limits = Limits {
            max_key_len: 8,
            max_value_len: 4,
            ..Limits::default()
        };
        let ok = parse(None, Some(FORM), b"Abcdefgh=1234", &limits).unwrap();
        assert_eq!(ok.get("Abcdefgh"), Some("1234"));
        let key_too_long: [(&str, &[u8]); 3] = [
            (FORM, b"Abcdefghi=1"),
            (JSON, br#"{"Abcdefghi":1}"#),
            // The flattened key counts, not the JSON field name.
            (JSON, br#"{"Abcdefg":[1]}"#),
        ];
        for (content_type, body) in key_too_long {
            let error = parse(None, Some(content_type), body, &limits).unwrap_err();
            assert!(
                matches!(error, ParamsError::KeyTooLong),
                "{body:?}: {error:?}"
            );
        }
        let value_too_long: [(&str, &[u8]); 2] = [(FORM, b"A=12345"), (JSON, br#"{"A":12345}"#)];
        for (content_type, body) in value_too_long {
            let error = parse(None, Some(content_type), body, &limits).unwrap_err();
            assert_eq!(error.param_name(), Some("A"), "{body:?}: {error:?}");
        }
        let error = parse(None, Some(JSON), br#"{"L":[1,"12345"]}"#, &limits).unwrap_err();
        assert_eq!(error.param_name(), Some("L.1"));
        assert_eq!(error.to_string(), "value of parameter L.1 is too long");
        // A value exactly at the limit after decoding is fine even when its encoding is longer.
        assert!(parse(None, Some(FORM), b"A=%E8%AF%81", &limits).is_ok());
    }

    #[test]
    fn param_name_only_for_errors_about_one_parameter() {
        assert_eq!(ParamsError::InvalidUtf8.param_name(), None);
        assert_eq!(ParamsError::KeyTooLong.param_name(), None);
        assert_eq!(ParamsError::TooManyParams { limit: 1 }.param_name(), None);
        let error = ParamsError::UnsupportedJsonValue {
            key: "SSLIds".into(),
        };
        assert_eq!(error.param_name(), Some("SSLIds"));
    }

    #[test]
    fn list_orders_by_numeric_index_and_ignores_other_keys() {
        let params = Params::from_pairs([
            ("SSLIds.10", "ten"),
            ("SSLIds.2", "two"),
            ("SSLIds.0", "zero"),
            ("SSLIds.0.Field", "not a list item"),
            ("SSLIds.x", "not an index"),
            ("SSLIds.", "no index"),
            ("SSLIdsX.1", "other name"),
            ("SSLIds", "bare"),
            ("SSLId.1", "shorter name"),
        ]);
        assert_eq!(params.list("SSLIds"), ["zero", "two", "ten"]);
        assert!(params.list("Missing").is_empty());
    }

    #[test]
    fn struct_list_groups_fields_per_index() {
        let params = Params::from_pairs([
            ("Targets.10.Port", "8010"),
            ("Targets.2.Port", "8002"),
            ("Targets.2.ResourceId", "uhost-2"),
            ("Targets.0.ResourceId", "uhost-0"),
            ("Targets.3", "scalar item, not a struct"),
            ("Targets.4.", "empty field"),
        ]);
        let items = params.struct_list("Targets");
        let expected: Vec<BTreeMap<&str, &str>> = vec![
            BTreeMap::from([("ResourceId", "uhost-0")]),
            BTreeMap::from([("Port", "8002"), ("ResourceId", "uhost-2")]),
            BTreeMap::from([("Port", "8010")]),
        ];
        assert_eq!(items, expected);
    }

    #[test]
    fn from_pairs_sorts_and_keeps_the_last_duplicate() {
        let params = Params::from_pairs([("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(pairs(&params), [("a", "2"), ("b", "3")]);
        assert_eq!(params.get("b"), Some("3"));
        assert_eq!(params.get("c"), None);
        assert_eq!(params.nested_signing_form(), None);
    }

    #[test]
    fn debug_output_hides_values() {
        let params = form("PrivateKey=-----BEGIN+RSA+PRIVATE+KEY-----secret");
        let text = format!("{params:?}");
        assert!(text.contains("PrivateKey"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    fn json_tree() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[A-Za-z.0-9]{0,6}", inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_input(
            query in proptest::option::of(".{0,64}"),
            content_type in proptest::option::of(prop_oneof![
                Just(FORM.to_owned()),
                Just(JSON.to_owned()),
                ".{0,32}",
            ]),
            body in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                "[{}\\[\\]\",:0-9a-z.%+&= ]{0,128}".prop_map(String::into_bytes),
            ],
        ) {
            let _ = parse(query.as_deref(), content_type.as_deref(), &body, &Limits::default());
        }

        #[test]
        fn any_json_object_parses_or_fails_cleanly(
            fields in prop::collection::vec(("[A-Za-z0-9.]{0,8}", json_tree()), 0..8),
        ) {
            let object = serde_json::Value::Object(fields.into_iter().collect());
            let body = serde_json::to_vec(&object).unwrap();
            let limits = Limits { max_depth: 3, ..Limits::default() };
            match parse(None, None, &body, &limits) {
                Ok(params) => {
                    let keys: Vec<&str> = params.iter().map(|(k, _)| k).collect();
                    prop_assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
                }
                Err(error) => prop_assert!(
                    matches!(error, ParamsError::UnsupportedJsonValue { .. }),
                    "{error:?}"
                ),
            }
        }

        #[test]
        fn form_round_trip(
            map in prop::collection::btree_map("\\PC{0,12}", "\\PC{0,24}", 0..16),
        ) {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            for (key, value) in &map {
                serializer.append_pair(key, value);
            }
            let body = serializer.finish();
            let params = parse(None, Some(FORM), body.as_bytes(), &Limits::default()).unwrap();
            let parsed: BTreeMap<&str, &str> = params.iter().collect();
            let expected: BTreeMap<&str, &str> =
                map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn list_orders_numerically_with_gaps(
            indices in prop::collection::btree_set(0u32..2000, 0..40),
            seed in any::<u64>(),
        ) {
            let keyed: Vec<(String, String)> = indices
                .iter()
                .map(|i| (format!("SSLIds.{i}"), format!("ssl-{i}")))
                .collect();
            // A deterministic shuffle, so insertion order never matters.
            let mut shuffled: Vec<&(String, String)> = keyed.iter().collect();
            shuffled.sort_by_key(|(k, _)| {
                k.bytes().fold(seed, |h, b| h.rotate_left(5) ^ u64::from(b))
            });
            let params =
                Params::from_pairs(shuffled.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let expected: Vec<String> = indices.iter().map(|i| format!("ssl-{i}")).collect();
            prop_assert_eq!(params.list("SSLIds"), expected);
        }
    }
}
