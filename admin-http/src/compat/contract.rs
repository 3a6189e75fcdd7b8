//! The contract-test harness of the seed dialects (feature `contract`, for tests): a seed
//! system's OpenAPI document, loaded once, with the JSON response schema of every operation and
//! status compiled by a JSON Schema validator (`$ref`s resolve into the document's
//! `components`), so tests can check real responses against it instead of hand-written field
//! checks, and list the document's operations to check that a dialect serves them all.
//!
//! The rules of [`Contract::check`]:
//! - a status the operation documents: the body must match its schema (a documented status
//!   without a JSON schema accepts any body);
//! - an error status (400 and up) the operation does not document: the body must match the
//!   document's `components/schemas/Error`, if it has one (contracts list the typical failures,
//!   not every one: a bad token is a 401 everywhere);
//! - any other status (an undocumented success) fails.
//!
//! Schemas are read as JSON Schema draft 4 (what OpenAPI 3.0's schema objects are based on),
//! with `format` checked where the validator knows the format (`uri`, `date-time`, ...).

use std::collections::BTreeMap;

use jsonschema::{Draft, Validator};
use serde_json::{json, Value};

/// HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// An OpenAPI document's operations and their compiled response schemas.
pub struct Contract {
    /// By (upper-case method, path as the document spells it).
    operations: BTreeMap<(String, String), BTreeMap<u16, Option<Validator>>>,
    /// `components/schemas/Error`, for undocumented error statuses.
    error: Option<Validator>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("operations", &self.operations.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Contract {
    /// Loads a document in YAML (or JSON, which is YAML too).
    pub fn from_yaml(text: &str) -> Result<Contract, String> {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        Contract::from_document(&json_of(doc))
    }

    /// Compiles every JSON response schema of `doc`.
    pub fn from_document(doc: &Value) -> Result<Contract, String> {
        let components = doc.get("components").cloned().unwrap_or(json!({}));
        let compile = |schema: &Value, at: &str| -> Result<Validator, String> {
            // The schema beside the document's components, so `#/components/...` resolves.
            let rooted = json!({ "allOf": [schema], "components": components });
            jsonschema::options()
                .with_draft(Draft::Draft4)
                .should_validate_formats(true)
                .build(&rooted)
                .map_err(|e| format!("{at}: the schema does not compile: {e}"))
        };
        let mut operations = BTreeMap::new();
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the document has no paths")?;
        for (path, item) in paths {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let mut responses = BTreeMap::new();
                for (status, response) in op
                    .get("responses")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let Ok(status) = status.parse::<u16>() else {
                        continue; // `default`
                    };
                    let at = format!("{} {path} {status}", method.to_uppercase());
                    let schema = response
                        .pointer("/content/application~1json/schema")
                        .map(|s| compile(s, &at))
                        .transpose()?;
                    responses.insert(status, schema);
                }
                operations.insert((method.to_uppercase(), path.clone()), responses);
            }
        }
        let error = doc
            .pointer("/components/schemas/Error")
            .map(|s| compile(s, "components/schemas/Error"))
            .transpose()?;
        Ok(Contract { operations, error })
    }

    /// Every operation, as (upper-case method, path as the document spells it).
    pub fn operations(&self) -> Vec<(String, String)> {
        self.operations.keys().cloned().collect()
    }

    /// Checks a response of the operation `method path` (the document's path template) against
    /// the contract (the rules are in the module docs); the error says what does not match.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let at = format!("{method} {path} -> {status}");
        let responses = self
            .operations
            .get(&(method.to_uppercase(), path.to_owned()))
            .ok_or_else(|| format!("{at}: the document has no such operation"))?;
        let schema = match responses.get(&status) {
            Some(schema) => schema.as_ref(),
            None if status >= 400 => Some(self.error.as_ref().ok_or_else(|| {
                format!("{at}: an undocumented error status, and no Error schema")
            })?),
            None => return Err(format!("{at}: the operation does not document this status")),
        };
        let Some(schema) = schema else {
            return Ok(());
        };
        let errors: Vec<String> = schema
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(format!("{at}: {} in {body}", errors.join("; "))),
        }
    }
}

/// One schema of a document's `components/schemas`, compiled: for envelopes a contract
/// documents beside its operations (AnyChat's failures travel with HTTP 200 in the envelope its
/// error statuses document, `components/schemas/<Response>`).
pub struct Component {
    name: String,
    validator: Validator,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .finish()
    }
}

impl Component {
    /// `components/schemas/<name>` of a document in YAML (or JSON), read as draft 4 like the
    /// operations' schemas.
    pub fn from_yaml(text: &str, name: &str) -> Result<Component, String> {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        let doc = json_of(doc);
        let components = doc.get("components").cloned().unwrap_or(json!({}));
        let schema = doc
            .pointer(&format!(
                "/components/schemas/{}",
                name.replace('~', "~0").replace('/', "~1")
            ))
            .ok_or_else(|| format!("the document has no schema {name}"))?;
        let rooted = json!({ "allOf": [schema], "components": components });
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .build(&rooted)
            .map_err(|e| format!("{name}: the schema does not compile: {e}"))?;
        Ok(Component {
            name: name.to_owned(),
            validator,
        })
    }

    /// Checks `body` against the schema; the error says what does not match.
    pub fn check(&self, body: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(format!("{}: {} in {body}", self.name, errors.join("; "))),
        }
    }
}

/// An AsyncAPI (2.x) document's messages, by their `name` (what a frame's `type` says), with
/// their payload schemas compiled (draft 7: AsyncAPI's schema object is a superset of it, and
/// uses `const`), so tests can check real WebSocket frames against the document.
pub struct AsyncContract {
    messages: BTreeMap<String, Validator>,
}

impl std::fmt::Debug for AsyncContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncContract")
            .field("messages", &self.messages.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AsyncContract {
    /// Loads a document in YAML: every `components/messages/*` with a `name` and a `payload`.
    pub fn from_yaml(text: &str) -> Result<AsyncContract, String> {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        let doc = json_of(doc);
        let components = doc.get("components").cloned().unwrap_or(json!({}));
        let mut messages = BTreeMap::new();
        for (key, message) in doc
            .pointer("/components/messages")
            .and_then(Value::as_object)
            .ok_or("the document has no components/messages")?
        {
            let (Some(name), Some(payload)) = (
                message.get("name").and_then(Value::as_str),
                message.get("payload"),
            ) else {
                continue;
            };
            let rooted = json!({ "allOf": [payload], "components": components });
            let validator = jsonschema::options()
                .with_draft(Draft::Draft7)
                .build(&rooted)
                .map_err(|e| format!("message {key}: the payload does not compile: {e}"))?;
            messages.insert(name.to_owned(), validator);
        }
        Ok(AsyncContract { messages })
    }

    /// Every message name.
    pub fn names(&self) -> Vec<String> {
        self.messages.keys().cloned().collect()
    }

    /// Checks a frame against the payload schema of the message its `type` names; a frame of
    /// a type the document does not have fails.
    pub fn check(&self, frame: &Value) -> Result<(), String> {
        let kind = frame
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a frame without a type: {frame}"))?;
        let schema = self
            .messages
            .get(kind)
            .ok_or_else(|| format!("the document has no message {kind:?}: {frame}"))?;
        let errors: Vec<String> = schema
            .iter_errors(frame)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(format!("{kind}: {} in {frame}", errors.join("; "))),
        }
    }
}

/// A YAML value as JSON (keys of other types than strings, such as unquoted status codes,
/// become their text).
fn json_of(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => json!(u),
            (None, Some(i), _) => json!(i),
            (None, None, Some(f)) => json!(f),
            _ => Value::Null,
        },
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(json_of).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => match json_of(other) {
                            Value::String(s) => s,
                            v => v.to_string(),
                        },
                    };
                    (key, json_of(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => json_of(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r##"
openapi: 3.0.3
paths:
  /things/{id}:
    get:
      responses:
        200:
          content:
            application/json:
              schema:
                $ref: "#/components/schemas/Thing"
components:
  schemas:
    Thing:
      type: object
      required: [id]
      properties:
        id: { type: string }
        link: { type: string, format: uri }
    Error:
      type: object
      required: [code]
      properties:
        code: { type: string }
"##;

    #[test]
    fn frames_are_checked_against_asyncapi_payloads() {
        let doc = r#"
asyncapi: 2.6.0
components:
  messages:
    Pong:
      name: pong
      payload:
        type: object
        properties:
          type: { type: string, const: pong }
        required: [type]
"#;
        let c = AsyncContract::from_yaml(doc).expect("loads");
        assert_eq!(c.names(), vec!["pong".to_owned()]);
        assert!(c.check(&json!({"type": "pong"})).is_ok());
        assert!(
            c.check(&json!({"type": "ping"})).is_err(),
            "not in the document"
        );
        assert!(c.check(&json!({"payload": 1})).is_err(), "no type");
        let envelope = Component::from_yaml(DOC, "Error").expect("loads");
        assert!(envelope.check(&json!({"code": "X"})).is_ok());
        assert!(envelope.check(&json!({"code": 1})).is_err());
        assert!(Component::from_yaml(DOC, "Nope").is_err());
    }

    #[test]
    fn responses_are_checked_against_their_schemas() {
        let c = Contract::from_yaml(DOC).expect("loads");
        assert_eq!(
            c.operations(),
            vec![("GET".to_owned(), "/things/{id}".to_owned())]
        );
        let get = |status, body: Value| c.check("GET", "/things/{id}", status, &body);
        assert!(get(200, json!({"id": "1"})).is_ok());
        assert!(
            get(200, json!({"id": 1})).is_err(),
            "a number is not a string"
        );
        assert!(get(200, json!({})).is_err(), "id is required");
        assert!(get(200, json!({"id": "1", "link": "not a uri"})).is_err());
        assert!(
            get(404, json!({"code": "NOT_FOUND"})).is_ok(),
            "errors: the Error schema"
        );
        assert!(get(404, json!({"message": "x"})).is_err());
        assert!(
            get(201, json!({"id": "1"})).is_err(),
            "an undocumented success"
        );
        assert!(c.check("POST", "/things/{id}", 200, &json!({})).is_err());
    }
}
