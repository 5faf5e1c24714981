//! jsonb's functions, and the functions its operators bind to.
//!
//! The binder turns each operator into the function PostgreSQL names for
//! it (`planner::bind_jsonb_operator`):
//!
//! ```text
//!   j -> 'k'    jsonb_object_field(j, 'k')        j -> 2     jsonb_array_element(j, 2)
//!   j ->> 'k'   jsonb_object_field_text(j, 'k')   j ->> 2    jsonb_array_element_text(j, 2)
//!   j #> p      jsonb_extract_path(j, p)          j #>> p    jsonb_extract_path_text(j, p)
//!   a @> b      jsonb_contains(a, b)              a <@ b     jsonb_contains(b, a)
//!   j ? 'k'     jsonb_exists(j, 'k')              j ?| ks    jsonb_exists_any    j ?& ks  jsonb_exists_all
//!   a || b      jsonb_concat(a, b)                j - 'k'    jsonb_delete(j, 'k')  (or an index, or keys)
//!   j #- p      jsonb_delete_path(j, p)
//! ```
//!
//! The set-returning `jsonb_array_elements`, `jsonb_array_elements_text`
//! and `jsonb_object_keys` are `unnest` over an array these functions
//! make (`jsonb_array_elements_array` ...), so FROM plans them as it
//! plans `unnest`; `jsonb_each` and `jsonb_each_text` unnest the keys and
//! read each one's field.

use crate::error::{Error, Result, SqlState};
use crate::ops::jsonb::{self, Json};
use crate::sql_err;
use crate::types::{DataType, Value};

/// A jsonb function's parameter types and result type for arguments of
/// types `args` (`None`: untyped); `None` when `name` is not one. The
/// caller checks the arity against the parameters.
pub fn resolve(name: &str, args: &[Option<DataType>]) -> Option<(Vec<DataType>, DataType)> {
    use DataType as T;
    let j = T::Jsonb;
    let texts = DataType::array_of(T::Text).expect("text[] exists");
    let n = args.len();
    let is_texts = |i: usize| args.get(i).copied().flatten() == Some(texts);
    let is_int = |i: usize| args.get(i).copied().flatten().is_some_and(DataType::is_integer);
    Some(match name {
        "jsonb_typeof" => (vec![j], T::Text),
        "jsonb_array_length" => (vec![j], T::Int4),
        "jsonb_object_field" => (vec![j, T::Text], j),
        "jsonb_object_field_text" => (vec![j, T::Text], T::Text),
        "jsonb_array_element" => (vec![j, T::Int4], j),
        "jsonb_array_element_text" => (vec![j, T::Int4], T::Text),
        "jsonb_extract_path" | "jsonb_extract_path_text" => {
            let ret = if name.ends_with("_text") { T::Text } else { j };
            // `#>` passes a text[]; a call lists the path's steps.
            if n == 2 && is_texts(1) {
                (vec![j, texts], ret)
            } else {
                (std::iter::once(j).chain(std::iter::repeat_n(T::Text, n.saturating_sub(1))).collect(), ret)
            }
        }
        "jsonb_contains" => (vec![j, j], T::Bool),
        "jsonb_exists" => (vec![j, T::Text], T::Bool),
        "jsonb_exists_any" | "jsonb_exists_all" => (vec![j, texts], T::Bool),
        "jsonb_concat" => (vec![j, j], j),
        "jsonb_delete" if is_int(1) => (vec![j, T::Int4], j),
        "jsonb_delete" if is_texts(1) => (vec![j, texts], j),
        "jsonb_delete" => (vec![j, T::Text], j),
        "jsonb_delete_path" => (vec![j, texts], j),
        "jsonb_set" if n == 4 => (vec![j, texts, j, T::Bool], j),
        "jsonb_set" => (vec![j, texts, j], j),
        "jsonb_strip_nulls" => (vec![j], j),
        "jsonb_pretty" => (vec![j], T::Text),
        "to_jsonb" => (vec![args.first().copied().flatten().unwrap_or(T::Text)], j),
        "jsonb_build_object" | "jsonb_build_array" => (args.iter().map(|a| a.unwrap_or(T::Text)).collect(), j),
        "jsonb_array_elements_array" => (vec![j], DataType::array_of(j).expect("jsonb[] exists")),
        "jsonb_array_elements_text_array" | "jsonb_object_keys_array" => (vec![j], texts),
        _ => return None,
    })
}

/// Calls jsonb function `name` (resolved by [`resolve`]); `None` when it
/// is not one.
pub fn call(name: &str, args: &[Value]) -> Option<Result<Value>> {
    // The caller resolved the arguments' types; whether `name` is one of
    // these needs no types (and no allocation per row).
    resolve(name, &[])?;
    Some(call_resolved(name, args))
}

fn call_resolved(name: &str, args: &[Value]) -> Result<Value> {
    // Not strict: NULLs become JSON nulls.
    match name {
        "jsonb_build_object" => {
            if !args.len().is_multiple_of(2) {
                return sql_err!(InvalidParameterValue, "argument list must have even number of elements").map_err(
                    |e: Error| {
                        e.with_hint(
                            "The arguments of jsonb_build_object() must consist of alternating keys and values.",
                        )
                    },
                );
            }
            let mut pairs = Vec::with_capacity(args.len() / 2);
            for (i, pair) in args.chunks(2).enumerate() {
                let key = match &pair[0] {
                    Value::Null => {
                        return sql_err!(InvalidParameterValue, "argument {}: key must not be null", 2 * i + 1)
                    }
                    Value::Text(s) => s.clone(),
                    Value::Array(..) | Value::Jsonb(_) => {
                        return sql_err!(
                            InvalidParameterValue,
                            "key value must be scalar, not array, composite, or json"
                        )
                    }
                    other => crate::ops::to_text(other).unwrap_or_default(),
                };
                pairs.push((key, jsonb::from_value(&pair[1])));
            }
            return built(Json::object(pairs));
        }
        "jsonb_build_array" => return built(Json::Array(args.iter().map(jsonb::from_value).collect())),
        _ => {}
    }
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let doc = |i: usize| -> Result<&Json> {
        match &args[i] {
            Value::Jsonb(j) => Ok(j),
            other => sql_err!(InternalError, "{name}: argument {} is {other:?}, not jsonb", i + 1),
        }
    };
    let text = |i: usize| -> Result<&str> {
        match &args[i] {
            Value::Text(s) => Ok(s),
            other => sql_err!(InternalError, "{name}: argument {} is {other:?}, not text", i + 1),
        }
    };
    let int = |i: usize| {
        args[i].as_i64().ok_or_else(|| Error::new(SqlState::InternalError, format!("{name}: not an integer")))
    };
    let texts = |i: usize| -> Result<Vec<Option<String>>> {
        match &args[i] {
            Value::Array(_, items) => Ok(items.iter().map(crate::ops::to_text).collect()),
            other => sql_err!(InternalError, "{name}: argument {} is {other:?}, not text[]", i + 1),
        }
    };
    // A path's steps: from a text[] (`None` if a step is NULL), or the
    // arguments after the document.
    let path = || -> Result<Option<Vec<String>>> {
        match args.get(1) {
            Some(Value::Array(..)) => Ok(texts(1)?.into_iter().collect()),
            _ => (1..args.len()).map(|i| text(i).map(String::from)).collect::<Result<_>>().map(Some),
        }
    };
    // jsonb_set and `#-` refuse a NULL step (`#>` finds nothing).
    let path_without_nulls = || -> Result<Vec<String>> {
        match path()? {
            Some(steps) => Ok(steps),
            None => {
                let position = texts(1)?.iter().position(Option::is_none).unwrap_or(0) + 1;
                sql_err!(NullValueNotAllowed, "path element at position {position} is null")
            }
        }
    };
    let found = |j: Option<&Json>, as_text: bool| -> Value {
        match (j, as_text) {
            (None, _) => Value::Null,
            (Some(j), false) => document(j.clone()),
            (Some(j), true) => j.to_text_value().map_or(Value::Null, Value::Text),
        }
    };
    Ok(match name {
        "jsonb_typeof" => Value::Text(doc(0)?.type_name().into()),
        "jsonb_array_length" => match doc(0)? {
            Json::Array(items) => Value::Int4(i32::try_from(items.len()).unwrap_or(i32::MAX)),
            Json::Object(_) => return sql_err!(InvalidParameterValue, "cannot get array length of a non-array"),
            _ => return sql_err!(InvalidParameterValue, "cannot get array length of a scalar"),
        },
        "jsonb_object_field" | "jsonb_object_field_text" => found(doc(0)?.field(text(1)?), name.ends_with("_text")),
        "jsonb_array_element" | "jsonb_array_element_text" => found(doc(0)?.element(int(1)?), name.ends_with("_text")),
        "jsonb_extract_path" | "jsonb_extract_path_text" => match path()? {
            Some(steps) => found(doc(0)?.at_path(&steps), name.ends_with("_text")),
            None => Value::Null,
        },
        "jsonb_contains" => Value::Bool(jsonb::contains(doc(0)?, doc(1)?)),
        "jsonb_exists" => Value::Bool(jsonb::has_key(doc(0)?, text(1)?)),
        "jsonb_exists_any" | "jsonb_exists_all" => {
            let keys = texts(1)?;
            let mut present = keys.iter().flatten().map(|k| jsonb::has_key(doc(0).unwrap_or(&Json::Null), k));
            Value::Bool(if name == "jsonb_exists_any" { present.any(|p| p) } else { present.all(|p| p) })
        }
        "jsonb_concat" => built(jsonb::concat(doc(0)?, doc(1)?))?,
        "jsonb_delete" => match &args[1] {
            Value::Array(..) => {
                if doc(0)?.is_scalar() {
                    return sql_err!(InvalidParameterValue, "cannot delete from scalar");
                }
                let mut j = doc(0)?.clone();
                for key in texts(1)?.iter().flatten() {
                    j = jsonb::delete_key(&j, key)?;
                }
                document(j)
            }
            Value::Text(key) => document(jsonb::delete_key(doc(0)?, key)?),
            _ => document(jsonb::delete_index(doc(0)?, int(1)?)?),
        },
        "jsonb_delete_path" => document(jsonb::delete_path(doc(0)?, &path_without_nulls()?)?),
        "jsonb_set" => {
            let create = args.get(3).map_or(Ok(Some(true)), Value::as_bool)?.unwrap_or(true);
            document(jsonb::set_path(doc(0)?, &path_without_nulls()?, doc(2)?, create)?)
        }
        "jsonb_strip_nulls" => document(jsonb::strip_nulls(doc(0)?)),
        "jsonb_pretty" => Value::Text(jsonb::pretty(doc(0)?)?),
        "to_jsonb" => built(jsonb::from_value(&args[0]))?,
        "jsonb_array_elements_array" | "jsonb_array_elements_text_array" => {
            let Json::Array(items) = doc(0)? else {
                let what = if doc(0)?.type_name() == "object" { "an object" } else { "a scalar" };
                return sql_err!(InvalidParameterValue, "cannot extract elements from {what}");
            };
            if name == "jsonb_array_elements_array" {
                Value::Array(&DataType::Jsonb, items.iter().cloned().map(document).collect())
            } else {
                let text = |j: &Json| j.to_text_value().map_or(Value::Null, Value::Text);
                Value::Array(&DataType::Text, items.iter().map(text).collect())
            }
        }
        "jsonb_object_keys_array" => match doc(0)? {
            Json::Object(pairs) => {
                Value::Array(&DataType::Text, pairs.iter().map(|(k, _)| Value::Text(k.clone())).collect())
            }
            j => return sql_err!(InvalidParameterValue, "cannot call jsonb_object_keys on {}", article(j)),
        },
        other => return sql_err!(InternalError, "{other} is not a jsonb function"),
    })
}

fn document(j: Json) -> Value {
    Value::Jsonb(Box::new(j))
}

/// A document a function built from its arguments, checked against
/// jsonb's bounds ([`jsonb::checked`]): deeper or larger than they allow,
/// or with a `\u0000`, it is an error rather than a value that could not
/// be stored and read back.
fn built(j: Json) -> Result<Value> {
    jsonb::checked(j).map(document)
}

fn article(j: &Json) -> &'static str {
    match j {
        Json::Array(_) => "an array",
        _ => "a scalar",
    }
}
