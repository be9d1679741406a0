//! An in-memory DynamoDB for the model's schedules: the operations the job store and the
//! stack's set-up call, on DynamoDB's JSON wire form, with the semantics that matter —
//! conditional writes (and the item returned with a failed condition), all-or-nothing
//! transactions that are cancelled with per-item reasons, sparse global secondary indexes with
//! their projections, `Limit` before the filter, and paging by `ExclusiveStartKey`. Requests
//! are served one at a time, each isolated. `tests/tests/conformance.rs` holds it to the
//! emulator's answers.

pub mod expr;

use expr::{Condition, Item, Names, Update};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An error answer: DynamoDB's `__type` (without its namespace), message and extra fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub kind: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    fn validation(message: impl Into<String>) -> Self {
        Self {
            kind: "ValidationException",
            message: message.into(),
            extra: Map::new(),
        }
    }

    fn not_found(table: &str) -> Self {
        Self {
            kind: "ResourceNotFoundException",
            message: format!("Requested resource not found: Table: {table} not found"),
            extra: Map::new(),
        }
    }
}

type Answer = Result<Value, ApiError>;

#[derive(Clone, Debug)]
enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

#[derive(Clone, Debug)]
struct Index {
    name: String,
    hash: String,
    range: Option<String>,
    projection: Projection,
}

#[derive(Clone, Debug, Default)]
struct Table {
    hash: String,
    range: Option<String>,
    indexes: Vec<Index>,
    /// By (hash, range) key strings.
    items: BTreeMap<(String, String), Item>,
}

/// A key attribute's string (the fake's keys are strings: `S`).
fn key_str(item: &Item, attr: &str) -> Option<String> {
    item.get(attr)?.get("S")?.as_str().map(str::to_string)
}

impl Table {
    fn key_of(&self, key: &Item) -> Result<(String, String), ApiError> {
        let hash = key_str(key, &self.hash)
            .ok_or_else(|| ApiError::validation(format!("the key has no string {}", self.hash)))?;
        let range = match &self.range {
            Some(r) => key_str(key, r)
                .ok_or_else(|| ApiError::validation(format!("the key has no string {r}")))?,
            None => String::new(),
        };
        let expected = 1 + usize::from(self.range.is_some());
        if key.len() != expected {
            return Err(ApiError::validation(
                "The provided key element does not match the schema",
            ));
        }
        Ok((hash, range))
    }

    fn key_attrs(&self) -> Vec<&str> {
        std::iter::once(self.hash.as_str())
            .chain(self.range.as_deref())
            .collect()
    }

    fn key_item(&self, item: &Item) -> Item {
        self.key_attrs()
            .into_iter()
            .filter_map(|a| item.get(a).map(|v| (a.to_string(), v.clone())))
            .collect()
    }
}

fn obj(v: &Value, field: &str) -> Option<Map<String, Value>> {
    v.get(field)?.as_object().cloned()
}

/// A request's `ExpressionAttributeNames` and `ExpressionAttributeValues`.
type Placeholders = (Option<Map<String, Value>>, Option<Map<String, Value>>);

fn names(req: &Value) -> Placeholders {
    (
        obj(req, "ExpressionAttributeNames"),
        obj(req, "ExpressionAttributeValues"),
    )
}

fn text<'a>(req: &'a Value, field: &str) -> Option<&'a str> {
    req.get(field)?.as_str()
}

fn condition_failed(old: Option<&Item>, req: &Value) -> ApiError {
    let mut extra = Map::new();
    if text(req, "ReturnValuesOnConditionCheckFailure") == Some("ALL_OLD")
        && let Some(old) = old
    {
        extra.insert("Item".into(), Value::Object(old.clone()));
    }
    ApiError {
        kind: "ConditionalCheckFailedException",
        message: "The conditional request failed".into(),
        extra,
    }
}

/// One write of a request or of a transaction, checked before any is applied.
struct Write {
    table: String,
    key: (String, String),
    /// The item after the write (`None`: deleted; for a condition check, unchanged).
    after: Option<Option<Item>>,
}

#[derive(Default)]
pub struct Dynamo {
    tables: Mutex<BTreeMap<String, Table>>,
    /// Seeded contention: with this probability a transaction is cancelled for a
    /// `TransactionConflict`, as DynamoDB cancels one that meets another on an item.
    conflicts: Mutex<Option<(rand::rngs::StdRng, f64)>>,
}

impl std::fmt::Debug for Dynamo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dynamo")
    }
}

impl Dynamo {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, a transaction is cancelled for contention with `probability` (drawn
    /// from `seed`), before any of it is checked.
    pub fn contend(&self, seed: u64, probability: f64) {
        use rand::SeedableRng;
        if let Ok(mut c) = self.conflicts.lock() {
            *c = Some((rand::rngs::StdRng::seed_from_u64(seed), probability));
        }
    }

    /// Serves one request (`X-Amz-Target`'s operation, its JSON body).
    pub fn handle(&self, operation: &str, req: &Value) -> Answer {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        match operation {
            "CreateTable" => create_table(&mut tables, req),
            "DescribeTable" => {
                let name = text(req, "TableName").unwrap_or_default();
                tables
                    .get(name)
                    .map(|_| json!({"Table": {"TableName": name, "TableStatus": "ACTIVE"}}))
                    .ok_or_else(|| ApiError::not_found(name))
            }
            "UpdateTimeToLive" => {
                Ok(json!({"TimeToLiveSpecification": req.get("TimeToLiveSpecification")}))
            }
            "GetItem" => get_item(&tables, req),
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let table = text(req, "TableName").unwrap_or_default().to_string();
                let (write, old) = plan_write(&tables, operation, &table, req)?;
                let t = tables.get_mut(&table).expect("checked");
                let new = apply(t, write);
                Ok(returned(operation, req, old.as_ref(), new.as_ref()))
            }
            "Query" => query(&tables, req),
            "TransactWriteItems" => {
                let contended = self.conflicts.lock().ok().is_some_and(|mut c| {
                    c.as_mut().is_some_and(|(rng, p)| {
                        use rand::Rng;
                        rng.random_bool(*p)
                    })
                });
                if contended {
                    let n = req["TransactItems"].as_array().map_or(1, Vec::len);
                    let mut reasons = vec![json!({"Code": "None"}); n];
                    reasons[0] = json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"});
                    let mut extra = Map::new();
                    extra.insert("CancellationReasons".into(), Value::Array(reasons));
                    return Err(ApiError {
                        kind: "TransactionCanceledException",
                        message: "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]".into(),
                        extra,
                    });
                }
                transact(&mut tables, req)
            }
            "BatchWriteItem" => batch_write(&mut tables, req),
            other => Err(ApiError::validation(format!(
                "the fake DynamoDB does not serve {other}"
            ))),
        }
    }
}

fn create_table(tables: &mut BTreeMap<String, Table>, req: &Value) -> Answer {
    let name = text(req, "TableName").ok_or_else(|| ApiError::validation("TableName"))?;
    if tables.contains_key(name) {
        return Err(ApiError {
            kind: "ResourceInUseException",
            message: format!("Table already exists: {name}"),
            extra: Map::new(),
        });
    }
    let schema = |v: &Value| -> Result<(String, Option<String>), ApiError> {
        let mut hash = None;
        let mut range = None;
        for k in v.as_array().into_iter().flatten() {
            let attr = k["AttributeName"].as_str().unwrap_or_default().to_string();
            match k["KeyType"].as_str() {
                Some("HASH") => hash = Some(attr),
                Some("RANGE") => range = Some(attr),
                _ => return Err(ApiError::validation("KeyType")),
            }
        }
        Ok((
            hash.ok_or_else(|| ApiError::validation("no HASH key"))?,
            range,
        ))
    };
    for d in req["AttributeDefinitions"].as_array().into_iter().flatten() {
        if d["AttributeType"] != "S" {
            return Err(ApiError::validation(
                "the fake DynamoDB keys on strings only",
            ));
        }
    }
    let (hash, range) = schema(&req["KeySchema"])?;
    let mut indexes = Vec::new();
    for g in req["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (h, r) = schema(&g["KeySchema"])?;
        let p = &g["Projection"];
        let projection = match p["ProjectionType"].as_str() {
            Some("KEYS_ONLY") => Projection::KeysOnly,
            Some("INCLUDE") => Projection::Include(
                p["NonKeyAttributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => Projection::All,
        };
        indexes.push(Index {
            name: g["IndexName"].as_str().unwrap_or_default().to_string(),
            hash: h,
            range: r,
            projection,
        });
    }
    tables.insert(
        name.to_string(),
        Table {
            hash,
            range,
            indexes,
            items: BTreeMap::new(),
        },
    );
    Ok(json!({"TableDescription": {"TableName": name, "TableStatus": "ACTIVE"}}))
}

fn get_item(tables: &BTreeMap<String, Table>, req: &Value) -> Answer {
    let name = text(req, "TableName").unwrap_or_default();
    let t = tables.get(name).ok_or_else(|| ApiError::not_found(name))?;
    let key = t.key_of(&obj(req, "Key").unwrap_or_default())?;
    let (n, v) = names(req);
    let names = Names {
        names: n.as_ref(),
        values: v.as_ref(),
    };
    match t.items.get(&key) {
        Some(item) => {
            let item = expr::project(item, text(req, "ProjectionExpression"), names)
                .map_err(ApiError::validation)?;
            Ok(json!({ "Item": item }))
        }
        None => Ok(json!({})),
    }
}

/// Checks one Put/Update/Delete/ConditionCheck against the tables as they are: the write it
/// makes and the item before it.
fn plan_write(
    tables: &BTreeMap<String, Table>,
    operation: &str,
    table: &str,
    req: &Value,
) -> Result<(Write, Option<Item>), ApiError> {
    let t = tables
        .get(table)
        .ok_or_else(|| ApiError::not_found(table))?;
    let (n, v) = names(req);
    let names = Names {
        names: n.as_ref(),
        values: v.as_ref(),
    };
    let key = match operation {
        "PutItem" => {
            let item = obj(req, "Item").ok_or_else(|| ApiError::validation("Item"))?;
            t.key_of(&t.key_item(&item))?
        }
        _ => t.key_of(&obj(req, "Key").unwrap_or_default())?,
    };
    let old = t.items.get(&key).cloned();
    if let Some(c) = text(req, "ConditionExpression") {
        let c = Condition::parse(c, names).map_err(ApiError::validation)?;
        if !c.holds(old.as_ref().unwrap_or(&Map::new())) {
            return Err(condition_failed(old.as_ref(), req));
        }
    }
    let after = match operation {
        "PutItem" => Some(Some(obj(req, "Item").unwrap_or_default())),
        "DeleteItem" => Some(None),
        "UpdateItem" => {
            let mut base = old
                .clone()
                .unwrap_or_else(|| obj(req, "Key").unwrap_or_default());
            if let Some(u) = text(req, "UpdateExpression") {
                let u = Update::parse(u, names).map_err(ApiError::validation)?;
                if let Some(k) = u.paths().find(|p| t.key_attrs().contains(p)) {
                    return Err(ApiError::validation(format!(
                        "Cannot update attribute {k}. This attribute is part of the key"
                    )));
                }
                base = u.apply(&base).map_err(ApiError::validation)?;
            }
            Some(Some(base))
        }
        _ => None,
    };
    Ok((
        Write {
            table: table.to_string(),
            key,
            after,
        },
        old,
    ))
}

fn apply(t: &mut Table, w: Write) -> Option<Item> {
    match w.after {
        Some(Some(item)) => {
            t.items.insert(w.key, item.clone());
            Some(item)
        }
        Some(None) => {
            t.items.remove(&w.key);
            None
        }
        None => t.items.get(&w.key).cloned(),
    }
}

fn returned(operation: &str, req: &Value, old: Option<&Item>, new: Option<&Item>) -> Value {
    let which = text(req, "ReturnValues").unwrap_or("NONE");
    let attrs = match (operation, which) {
        (_, "ALL_OLD") => old.cloned(),
        ("UpdateItem", "ALL_NEW") => new.cloned(),
        ("UpdateItem", "UPDATED_NEW" | "UPDATED_OLD") => {
            let (from, other) = if which == "UPDATED_NEW" {
                (new, old)
            } else {
                (old, new)
            };
            from.map(|f| {
                f.iter()
                    .filter(|(k, v)| other.and_then(|o| o.get(*k)) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
        }
        _ => None,
    };
    match attrs {
        Some(a) if !a.is_empty() => json!({ "Attributes": a }),
        _ => json!({}),
    }
}

fn query(tables: &BTreeMap<String, Table>, req: &Value) -> Answer {
    let name = text(req, "TableName").unwrap_or_default();
    let t = tables.get(name).ok_or_else(|| ApiError::not_found(name))?;
    let (n, v) = names(req);
    let names = Names {
        names: n.as_ref(),
        values: v.as_ref(),
    };
    let kc = Condition::parse(
        text(req, "KeyConditionExpression")
            .ok_or_else(|| ApiError::validation("KeyConditionExpression"))?,
        names,
    )
    .map_err(ApiError::validation)?;
    let (hash_attr, hash_value) = kc
        .hash_key()
        .ok_or_else(|| ApiError::validation("the key condition names no hash key"))?;
    let index = match text(req, "IndexName") {
        Some(i) => Some(
            t.indexes
                .iter()
                .find(|x| x.name == i)
                .ok_or_else(|| ApiError::validation(format!("no index {i}")))?,
        ),
        None => None,
    };
    let (ih, ir) = match index {
        Some(i) => (i.hash.as_str(), i.range.as_deref()),
        None => (t.hash.as_str(), t.range.as_deref()),
    };
    if hash_attr != ih {
        return Err(ApiError::validation(format!(
            "Query condition missed key schema element: {ih}"
        )));
    }
    // The items of the partition, in the index's order (ties by the table's key).
    let mut rows: Vec<(String, (String, String), &Item)> = t
        .items
        .iter()
        .filter(|(_, item)| {
            item.get(ih) == Some(&hash_value) && ir.is_none_or(|r| key_str(item, r).is_some())
        })
        .filter(|(_, item)| kc.holds(item))
        .map(|(k, item)| {
            (
                ir.and_then(|r| key_str(item, r)).unwrap_or_default(),
                k.clone(),
                item,
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if req.get("ScanIndexForward") == Some(&Value::Bool(false)) {
        rows.reverse();
    }
    let position = |item: &Item| -> (String, (String, String)) {
        (
            ir.and_then(|r| key_str(item, r)).unwrap_or_default(),
            t.key_of(&t.key_item(item)).unwrap_or_default(),
        )
    };
    if let Some(start) = obj(req, "ExclusiveStartKey") {
        let s = position(&start);
        let forward = req.get("ScanIndexForward") != Some(&Value::Bool(false));
        rows.retain(|r| {
            let at = (r.0.clone(), r.1.clone());
            if forward { at > s } else { at < s }
        });
    }
    let limit = req.get("Limit").and_then(Value::as_u64).map(|l| l as usize);
    let evaluated: Vec<_> = rows.iter().take(limit.unwrap_or(usize::MAX)).collect();
    let more = limit.is_some_and(|l| rows.len() > l);
    let filter = match text(req, "FilterExpression") {
        Some(f) => Some(Condition::parse(f, names).map_err(ApiError::validation)?),
        None => None,
    };
    let mut items = Vec::new();
    for (_, _, item) in &evaluated {
        let visible: Item = match index.map(|i| &i.projection) {
            None | Some(Projection::All) => (*item).clone(),
            Some(p) => item
                .iter()
                .filter(|(k, _)| {
                    t.key_attrs().contains(&k.as_str())
                        || k.as_str() == ih
                        || Some(k.as_str()) == ir
                        || matches!(p, Projection::Include(a) if a.contains(k))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if filter.as_ref().is_none_or(|f| f.holds(&visible)) {
            items.push(Value::Object(
                expr::project(&visible, text(req, "ProjectionExpression"), names)
                    .map_err(ApiError::validation)?,
            ));
        }
    }
    let mut out = json!({
        "Count": items.len(),
        "ScannedCount": evaluated.len(),
    });
    if text(req, "Select") != Some("COUNT") {
        out["Items"] = Value::Array(items);
    }
    if more && let Some((_, _, last)) = evaluated.last() {
        let mut key = t.key_item(last);
        if let Some(i) = index {
            for a in std::iter::once(&i.hash).chain(i.range.as_ref()) {
                if let Some(v) = last.get(a) {
                    key.insert(a.clone(), v.clone());
                }
            }
        }
        out["LastEvaluatedKey"] = Value::Object(key);
    }
    Ok(out)
}

fn transact(tables: &mut BTreeMap<String, Table>, req: &Value) -> Answer {
    let items = req["TransactItems"].as_array().cloned().unwrap_or_default();
    if items.is_empty() || items.len() > 100 {
        return Err(ApiError::validation("TransactItems: 1 to 100"));
    }
    let mut writes = Vec::new();
    let mut reasons = Vec::new();
    let mut failed = false;
    let mut seen = Vec::new();
    for ti in &items {
        let (op, body) = match ti.as_object().and_then(|o| o.iter().next()) {
            Some((op, body)) => (op.as_str(), body),
            None => return Err(ApiError::validation("an empty TransactItem")),
        };
        let operation = match op {
            "Put" => "PutItem",
            "Update" => "UpdateItem",
            "Delete" => "DeleteItem",
            "ConditionCheck" => "ConditionCheck",
            other => return Err(ApiError::validation(format!("TransactItem {other}"))),
        };
        let table = text(body, "TableName").unwrap_or_default().to_string();
        match plan_write(tables, operation, &table, body) {
            Ok((w, _)) => {
                let id = (w.table.clone(), w.key.clone());
                if seen.contains(&id) {
                    return Err(ApiError::validation(
                        "Transaction request cannot include multiple operations on one item",
                    ));
                }
                seen.push(id);
                writes.push(w);
                reasons.push(json!({"Code": "None"}));
            }
            Err(e) if e.kind == "ConditionalCheckFailedException" => {
                failed = true;
                let mut r = json!({"Code": "ConditionalCheckFailed", "Message": e.message});
                if let Some(item) = e.extra.get("Item") {
                    r["Item"] = item.clone();
                }
                reasons.push(r);
            }
            Err(e) => return Err(e),
        }
    }
    if failed {
        let codes: Vec<&str> = reasons
            .iter()
            .map(|r| r["Code"].as_str().unwrap_or("None"))
            .collect();
        let mut extra = Map::new();
        extra.insert("CancellationReasons".into(), Value::Array(reasons.clone()));
        return Err(ApiError {
            kind: "TransactionCanceledException",
            message: format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            ),
            extra,
        });
    }
    for w in writes {
        let t = tables.get_mut(&w.table).expect("checked");
        apply(t, w);
    }
    Ok(json!({}))
}

fn batch_write(tables: &mut BTreeMap<String, Table>, req: &Value) -> Answer {
    let requests = obj(req, "RequestItems").unwrap_or_default();
    let mut planned = Vec::new();
    for (table, list) in &requests {
        for r in list.as_array().into_iter().flatten() {
            let (operation, body) = if let Some(p) = r.get("PutRequest") {
                ("PutItem", json!({"TableName": table, "Item": p["Item"]}))
            } else if let Some(d) = r.get("DeleteRequest") {
                ("DeleteItem", json!({"TableName": table, "Key": d["Key"]}))
            } else {
                return Err(ApiError::validation("a WriteRequest of neither kind"));
            };
            planned.push(plan_write(tables, operation, table, &body)?.0);
        }
    }
    if planned.len() > 25 {
        return Err(ApiError::validation("BatchWriteItem: at most 25 requests"));
    }
    for w in planned {
        let t = tables.get_mut(&w.table).expect("checked");
        apply(t, w);
    }
    Ok(json!({"UnprocessedItems": {}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(d: &Dynamo) {
        d.handle(
            "CreateTable",
            &json!({
                "TableName": "t",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
                                          {"AttributeName": "open", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "GlobalSecondaryIndexes": [{"IndexName": "open", "KeySchema": [{"AttributeName": "open", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
                                            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]}}],
            }),
        )
        .unwrap();
    }

    fn put(d: &Dynamo, sk: &str, extra: Value) -> Answer {
        let mut item = json!({"pk": {"S": "JOB#1"}, "sk": {"S": sk}});
        for (k, v) in extra.as_object().unwrap() {
            item[k] = v.clone();
        }
        d.handle("PutItem", &json!({"TableName": "t", "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}))
    }

    #[test]
    fn a_conditional_write_refuses_and_returns_the_old_item_when_asked() {
        let d = Dynamo::new();
        table(&d);
        put(&d, "CLAIM#1", json!({"lease_until": {"N": "100"}})).unwrap();
        let e = put(&d, "CLAIM#1", json!({})).unwrap_err();
        assert_eq!(e.kind, "ConditionalCheckFailedException");
        assert!(e.extra.is_empty());
        let e = d
            .handle("UpdateItem", &json!({"TableName": "t", "Key": {"pk": {"S": "JOB#1"}, "sk": {"S": "CLAIM#1"}},
                "UpdateExpression": "SET lease_until = :n", "ConditionExpression": "lease_until < :now",
                "ExpressionAttributeValues": {":n": {"N": "200"}, ":now": {"N": "50"}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}))
            .unwrap_err();
        assert_eq!(e.extra["Item"]["lease_until"], json!({"N": "100"}));
    }

    #[test]
    fn a_transaction_is_all_or_nothing_and_names_the_item_that_failed() {
        let d = Dynamo::new();
        table(&d);
        put(&d, "JOB", json!({"done": {"N": "0"}})).unwrap();
        put(&d, "CHUNK#1", json!({})).unwrap();
        let tx = |sk: &str| {
            json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "JOB#1"}, "sk": {"S": sk}}, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "JOB#1"}, "sk": {"S": "JOB"}}, "UpdateExpression": "ADD done :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}]})
        };
        let e = d.handle("TransactWriteItems", &tx("CHUNK#1")).unwrap_err();
        assert_eq!(e.kind, "TransactionCanceledException");
        assert_eq!(
            e.extra["CancellationReasons"][0]["Code"],
            "ConditionalCheckFailed"
        );
        assert_eq!(e.extra["CancellationReasons"][1]["Code"], "None");
        d.handle("TransactWriteItems", &tx("CHUNK#2")).unwrap();
        let job = d
            .handle(
                "GetItem",
                &json!({"TableName": "t", "Key": {"pk": {"S": "JOB#1"}, "sk": {"S": "JOB"}}}),
            )
            .unwrap();
        assert_eq!(
            job["Item"]["done"],
            json!({"N": "1"}),
            "counted once, by the second"
        );
    }

    #[test]
    fn a_sparse_index_pages_by_its_limit_before_the_filter_and_shows_its_projection() {
        let d = Dynamo::new();
        table(&d);
        for (i, status) in ["Active", "Complete", "Active"].iter().enumerate() {
            put(&d, &format!("JOB{i}"), json!({"open": {"S": "OPEN"}, "g": {"S": format!("2026#{i}")}, "status": {"S": status}, "secret": {"S": "x"}})).unwrap();
        }
        put(
            &d,
            "JOB9",
            json!({"g": {"S": "2026#9"}, "status": {"S": "Active"}}),
        )
        .unwrap();
        let page = |start: Option<Value>| {
            let mut q = json!({"TableName": "t", "IndexName": "open", "KeyConditionExpression": "#o = :o", "FilterExpression": "#s = :a",
                "ExpressionAttributeNames": {"#o": "open", "#s": "status"}, "ExpressionAttributeValues": {":o": {"S": "OPEN"}, ":a": {"S": "Active"}},
                "Limit": 2, "ScanIndexForward": false});
            if let Some(s) = start {
                q["ExclusiveStartKey"] = s;
            }
            d.handle("Query", &q).unwrap()
        };
        let first = page(None);
        assert_eq!(
            first["Items"].as_array().unwrap().len(),
            1,
            "JOB2 passes, JOB1 is filtered out: {first}"
        );
        assert_eq!(first["Items"][0]["sk"], json!({"S": "JOB2"}));
        assert!(first["Items"][0].get("secret").is_none(), "not projected");
        let second = page(Some(first["LastEvaluatedKey"].clone()));
        assert_eq!(second["Items"][0]["sk"], json!({"S": "JOB0"}));
        assert!(
            second.get("LastEvaluatedKey").is_none(),
            "the index holds three: {second}"
        );
    }
}
