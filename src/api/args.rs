//! Typed reads of request parameters, each failing with a message that names the parameter.
//!
//! Empty strings count as absent: the Go SDK omits them and the Python SDK sends them, and both
//! must mean the same thing.

use super::error::ApiError;
use super::params::Params;
use crate::store::Paging;

/// The value of an optional string parameter, `None` when absent or empty.
pub fn opt<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).filter(|v| !v.is_empty())
}

/// The value of a required string parameter.
pub fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    opt(p, name).ok_or_else(|| ApiError::param(name))
}

/// The first of several names that is present (for legacy aliases: new names win).
pub fn opt_alias<'a>(p: &'a Params, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| opt(p, name))
}

pub fn opt_int(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match opt(p, name) {
        None => Ok(None),
        Some(text) => parse_int(text)
            .map(Some)
            .ok_or_else(|| ApiError::param_why(name, "must be an integer")),
    }
}

/// An optional integer that must lie in `min..=max`.
pub fn opt_int_in(p: &Params, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    match opt_int(p, name)? {
        Some(value) if value < min || value > max => Err(ApiError::param_why(
            name,
            format!("must be between {min} and {max}"),
        )),
        other => Ok(other),
    }
}

/// Integers as clients send them: decimal, optionally `5.0`-style from JSON floats.
fn parse_int(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| text.strip_suffix(".0").and_then(|t| t.parse().ok()))
}

/// Booleans as the SDKs encode them (`true`/`false`); Python's `True`/`False` and `1`/`0` too.
pub fn opt_bool(p: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match opt(p, name) {
        None => Ok(None),
        Some("true" | "True" | "1") => Ok(Some(true)),
        Some("false" | "False" | "0") => Ok(Some(false)),
        Some(_) => Err(ApiError::param_why(name, "must be true or false")),
    }
}

/// An optional value that must be one of `allowed` (compared exactly).
pub fn opt_enum<'a>(
    p: &'a Params,
    name: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match opt(p, name) {
        Some(value) if !allowed.contains(&value) => Err(ApiError::param_why(
            name,
            format!("must be one of {}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

/// `Offset`/`Limit` with the action's default page size; limits are capped at 10,000.
pub fn paging(p: &Params, default_limit: usize) -> Result<Paging, ApiError> {
    let offset = opt_int_in(p, "Offset", 0, i64::from(i32::MAX))?.unwrap_or(0) as usize;
    let limit = opt_int_in(p, "Limit", 0, i64::from(i32::MAX))?
        .map(|l| l as usize)
        .filter(|l| *l > 0)
        .unwrap_or(default_limit)
        .min(10_000);
    Ok(Paging { offset, limit })
}

/// A resource name: 1 to `max` characters (RetCode 4114 beyond 50, per the ULB error table).
pub fn name(p: &Params, param: &'static str, max: usize) -> Result<Option<String>, ApiError> {
    match opt(p, param) {
        None => Ok(None),
        Some(value) if value.chars().count() > max => Err(ApiError::NameTooLong(param)),
        Some(value) => Ok(Some(value.to_string())),
    }
}

/// The non-empty items of a `Name.N` list, in numeric index order.
pub fn list(p: &Params, name: &str) -> Vec<String> {
    p.list(name)
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A port number in 1..=65535.
pub fn opt_port(p: &Params, name: &str) -> Result<Option<u16>, ApiError> {
    Ok(opt_int_in(p, name, 1, 65_535)?.map(|v| v as u16))
}
