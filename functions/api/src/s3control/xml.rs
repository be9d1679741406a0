//! XML <-> JSON for the S3 Control REST-XML protocol, walking the shape table of [`super::model`].
//!
//! Stock clients send a CreateJob or PutJobTagging body as XML; [`decode`] turns it into the
//! JSON that `CreateJobRequest` (or a tag list) deserialises, keyed by *member names*, so that
//! serde's `deny_unknown_fields`, core's `validate()` and the JSON API's error texts apply to
//! both protocols alike. Responses go the other way: [`encode`] writes the JSON that
//! `Job::describe()` and friends already produce as XML, and [`error_body`] the wrapped error.
//!
//! ## Decoding rules (what the clients send, and what a hostile body may try)
//! - The parser is quick-xml's low-level `Reader` over the whole body (already size-limited by
//!   the handler): no namespace resolution, and attributes are never read (`xmlns` and any
//!   other attribute are ignored). Elements match by local name; prefixes are ignored.
//! - Children are matched **by name, in any order** (boto3 keeps the caller's order, the Rust
//!   SDK sorts). An element the shape does not have is an error naming its dotted path
//!   (`CreateJobRequest.Report.Foo`), like `deny_unknown_fields`; a repeated element or map key
//!   is an error too (JSON would silently keep the last one).
//! - Lists are wrapped, one `<member>` per item (or the model's item name:
//!   `MatchAnyObjectEncryption` holds `<ObjectEncryption>`); maps are
//!   `<entry><key/><value/></entry>`. A member's wire name (`SSE-KMS`) becomes its JSON name
//!   (`SSEKMS`).
//! - Text: whitespace between child elements is ignored; a leaf's text is kept verbatim (no
//!   trimming), joining text, CDATA, the five predefined entities and character references.
//!   An empty element is `""`, `{}`, `[]` or `{}` for a string, structure, list or map, and an
//!   error for a number, boolean or timestamp. Booleans are exactly `true`/`false`; integers and
//!   longs parse as `i64` (core's types check narrower ranges); timestamps stay strings for
//!   core's `Timestamp` to parse. A union takes exactly one member.
//! - Refused outright: a DOCTYPE (so no entity expansion), processing instructions, an encoding
//!   other than UTF-8, bytes that are not UTF-8, characters XML 1.0 forbids, unknown entities,
//!   and anything ill-formed (mismatched or missing end tags, a truncated body, content after
//!   the root). Every failure is an [`XmlError`], never a panic.
//!
//! ## Encoding rules (what the clients accept)
//! - Only the shape's members are written (JSON-only fields such as `Audit` and `DryRun` are
//!   dropped); null or absent members are left out. A union with no member set is left out
//!   entirely: the Rust SDK fails a whole response on `<ManifestGenerator/>`.
//! - Timestamps are re-parsed and written as ISO-8601 UTC ending in `Z` (the Rust SDK refuses
//!   any other form); one that does not parse is left out rather than fail the response.
//! - Text is escaped; characters XML 1.0 cannot carry (C0 controls but tab and newline, U+FFFE,
//!   U+FFFF) become U+FFFD, and `\r` is written `&#13;` so the reader's newline normalisation
//!   keeps it.

use super::model::{Kind, Member, Model, Shape, model};
use batchops_core::job::spec::Timestamp;
use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, BytesText, Event};
use serde_json::{Map, Value};
use std::fmt;

/// The namespace of every S3 Control request and response root.
pub const NAMESPACE: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

/// Why a body is not a valid S3 Control document: the dotted element path where it went wrong
/// (empty for the document as a whole) and what is wrong. The wire API answers it with a 400
/// `BadRequestException` whose message is its `Display`.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "XML: {}", self.message)
        } else {
            write!(f, "XML: {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for XmlError {}

/// Parses a request body whose root element (matched by local name, namespace/prefix ignored)
/// must be `root` (a shape name: "CreateJobRequest" or "PutJobTaggingRequest") into JSON keyed
/// by member names.
pub fn decode(body: &[u8], root: &str) -> Result<Value, XmlError> {
    let document_error = |message: String| XmlError {
        path: String::new(),
        message,
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| document_error(format!("the body is not UTF-8 ({e})")))?;
    let shape = model()
        .shape(root)
        .ok_or_else(|| document_error(format!("no shape {root} in the model")))?;
    let mut reader = Reader::from_str(text);
    // Both are the defaults; stated because the rules above depend on them.
    reader.config_mut().check_end_names = true;
    reader.config_mut().trim_text(false);
    Decoder {
        reader,
        path: Vec::new(),
    }
    .document(root, shape)
}

/// Serialises `value` (JSON keyed by member names, e.g. what `Job::describe()` returns) as an
/// XML document whose root element is `root_element` with the S3 Control `xmlns`, walking the
/// model shape `shape`.
pub fn encode(root_element: &str, shape: &str, value: &Value) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let open = format!(r#"{root_element} xmlns="{NAMESPACE}""#);
    let mark = out.len();
    out.push('<');
    out.push_str(&open);
    out.push('>');
    let start = out.len();
    // A root is written even when empty (or when `shape` is unknown): clients check its name.
    if let Some(shape) = model().shape(shape) {
        write_content(&mut out, shape, value);
    }
    if out.len() == start {
        out.truncate(mark);
        out.push('<');
        out.push_str(&open);
        out.push_str("/>");
    } else {
        out.push_str("</");
        out.push_str(root_element);
        out.push('>');
    }
    out
}

/// The wrapped error body the Rust SDK requires (botocore takes it too):
/// `<ErrorResponse xmlns=…><Error><Type>Sender|Receiver</Type><Code/><Message/></Error>
/// <RequestId/></ErrorResponse>`. `sender` says whether the caller is at fault.
pub fn error_body(code: &str, message: &str, request_id: &str, sender: bool) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{}</Type><Code>"#,
        if sender { "Sender" } else { "Receiver" }
    );
    push_text(&mut out, code);
    out.push_str("</Code><Message>");
    push_text(&mut out, message);
    out.push_str("</Message></Error><RequestId>");
    push_text(&mut out, request_id);
    out.push_str("</RequestId></ErrorResponse>");
    out
}

// ---- Decoding ------------------------------------------------------------------------------

/// A recursive-descent walk of the events, guided by the shape table. Recursion is bounded by
/// the model's depth: an element the shape does not expect is an error at once.
struct Decoder<'a> {
    reader: Reader<&'a [u8]>,
    /// Wire element names from the root to the element being read.
    path: Vec<String>,
}

impl<'a> Decoder<'a> {
    fn fail(&self, message: impl Into<String>) -> XmlError {
        XmlError {
            path: self.path.join("."),
            message: message.into(),
        }
    }

    fn next(&mut self) -> Result<Event<'a>, XmlError> {
        self.reader.read_event().map_err(|e| {
            let at = self.reader.error_position();
            self.fail(format!("ill-formed XML at byte {at}: {e}"))
        })
    }

    /// The document: an optional declaration, comments and whitespace around one root element.
    fn document(mut self, root: &str, shape: &'static Shape) -> Result<Value, XmlError> {
        let mut first = true;
        let value = loop {
            match self.next()? {
                Event::Decl(decl) if first => check_encoding(&decl).map_err(|m| self.fail(m))?,
                Event::Comment(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                Event::Start(e) => {
                    self.open_root(&e, root)?;
                    break self.value(shape, false)?;
                }
                Event::Empty(e) => {
                    self.open_root(&e, root)?;
                    break self.value(shape, true)?;
                }
                Event::Eof => return Err(self.fail("the body has no root element")),
                other => return Err(self.unexpected(&other, "before the root element")),
            }
            first = false;
        };
        self.path.clear();
        loop {
            match self.next()? {
                Event::Eof => return Ok(value),
                Event::Comment(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                other => return Err(self.unexpected(&other, "after the root element")),
            }
        }
    }

    fn open_root(&mut self, e: &BytesStart<'_>, root: &str) -> Result<(), XmlError> {
        let name = self.name(e)?;
        if name != root {
            return Err(self.fail(format!("the root element must be {root}, not {name}")));
        }
        self.path.push(name);
        Ok(())
    }

    /// The local name of an element (prefix dropped).
    fn name(&self, e: &BytesStart<'_>) -> Result<String, XmlError> {
        std::str::from_utf8(e.local_name().as_ref())
            .map(str::to_string)
            .map_err(|_| self.fail("an element name is not UTF-8"))
    }

    /// Why `event` is not allowed where it was found.
    fn unexpected(&self, event: &Event<'_>, place: &str) -> XmlError {
        let what = match event {
            Event::DocType(_) => "a DOCTYPE is not allowed",
            Event::PI(_) => "processing instructions are not allowed",
            Event::Decl(_) => "an XML declaration is only allowed at the very start",
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => "text is not allowed",
            Event::Eof => "the body ends before this element is closed",
            Event::Start(_) | Event::Empty(_) => "only one root element is allowed",
            Event::End(_) => "an end tag without a start tag",
            Event::Comment(_) => "a comment is not allowed",
        };
        if matches!(event, Event::Eof) {
            self.fail(what)
        } else {
            self.fail(format!("{what} {place}"))
        }
    }

    /// The value of the element just opened (`empty` for `<X/>`), up to its end tag.
    fn value(&mut self, shape: &'static Shape, empty: bool) -> Result<Value, XmlError> {
        match &shape.kind {
            Kind::Structure { members, union } => {
                let value = if empty {
                    Map::new()
                } else {
                    self.structure(members)?
                };
                if *union && value.len() != 1 {
                    return Err(self.fail(format!(
                        "a union takes exactly one member, got {}",
                        value.len()
                    )));
                }
                Ok(Value::Object(value))
            }
            Kind::List { .. } if empty => Ok(Value::Array(Vec::new())),
            Kind::List { member } => self.list(member),
            Kind::Map { .. } if empty => Ok(Value::Object(Map::new())),
            Kind::Map { key, value } => self.map(key, value),
            scalar => {
                let text = if empty { String::new() } else { self.text()? };
                self.scalar(scalar, text)
            }
        }
    }

    /// The next child element's local name and whether it is empty, or `None` at the parent's
    /// end tag. Whitespace and comments between children are skipped; anything else is an error.
    fn next_child(&mut self) -> Result<Option<(String, bool)>, XmlError> {
        loop {
            match self.next()? {
                Event::Start(e) => return Ok(Some((self.name(&e)?, false))),
                Event::Empty(e) => return Ok(Some((self.name(&e)?, true))),
                Event::End(_) => return Ok(None),
                Event::Comment(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                other => return Err(self.unexpected(&other, "between elements")),
            }
        }
    }

    fn structure(
        &mut self,
        members: &'static std::collections::BTreeMap<String, Member>,
    ) -> Result<Map<String, Value>, XmlError> {
        let mut out = Map::new();
        while let Some((element, empty)) = self.next_child()? {
            self.path.push(element);
            let element = self.path.last().map(String::as_str).unwrap_or_default();
            let Some((name, member)) = Model::member_on_wire(members, element) else {
                return Err(self.fail("unknown element"));
            };
            if out.contains_key(name) {
                return Err(self.fail("duplicate element"));
            }
            let value = self.value(model().target(member), empty)?;
            out.insert(name.to_string(), value);
            self.path.pop();
        }
        Ok(out)
    }

    fn list(&mut self, member: &'static Member) -> Result<Value, XmlError> {
        let item = member.wire_name("member");
        let mut out = Vec::new();
        while let Some((element, empty)) = self.next_child()? {
            let known = element == item;
            self.path.push(element);
            if !known {
                return Err(self.fail(format!("unknown element (list items are <{item}>)")));
            }
            out.push(self.value(model().target(member), empty)?);
            self.path.pop();
        }
        Ok(Value::Array(out))
    }

    fn map(&mut self, key: &'static Member, value: &'static Member) -> Result<Value, XmlError> {
        let mut out = Map::new();
        while let Some((element, empty)) = self.next_child()? {
            let known = element == "entry";
            self.path.push(element);
            if !known {
                return Err(self.fail("unknown element (map entries are <entry>)"));
            }
            let (k, v) = self.entry(key, value, empty)?;
            if out.contains_key(&k) {
                return Err(self.fail(format!("duplicate map key {k:?}")));
            }
            out.insert(k, v);
            self.path.pop();
        }
        Ok(Value::Object(out))
    }

    /// One `<entry>`: exactly one key and one value, in either order.
    fn entry(
        &mut self,
        key: &'static Member,
        value: &'static Member,
        empty: bool,
    ) -> Result<(String, Value), XmlError> {
        let (key_name, value_name) = (key.wire_name("key"), value.wire_name("value"));
        let (mut k, mut v) = (None, None);
        while !empty && let Some((element, empty)) = self.next_child()? {
            let slot = if element == key_name {
                (&mut k, key)
            } else if element == value_name {
                (&mut v, value)
            } else {
                self.path.push(element);
                return Err(self.fail("unknown element (an entry holds <key> and <value>)"));
            };
            self.path.push(element);
            if slot.0.is_some() {
                return Err(self.fail("duplicate element"));
            }
            *slot.0 = Some(self.value(model().target(slot.1), empty)?);
            self.path.pop();
        }
        match (k, v) {
            (Some(Value::String(k)), Some(v)) => Ok((k, v)),
            (Some(_), Some(_)) => Err(self.fail("map keys must be strings")),
            _ => Err(self.fail(format!(
                "an entry needs a <{key_name}> and a <{value_name}>"
            ))),
        }
    }

    /// A leaf's text up to its end tag: text, CDATA and references joined, kept verbatim.
    fn text(&mut self) -> Result<String, XmlError> {
        let mut out = String::new();
        loop {
            match self.next()? {
                Event::Text(t) => out.push_str(
                    &t.xml10_content()
                        .map_err(|e| self.fail(format!("undecodable text: {e}")))?,
                ),
                Event::CData(c) => out.push_str(
                    &c.xml10_content()
                        .map_err(|e| self.fail(format!("undecodable CDATA: {e}")))?,
                ),
                Event::GeneralRef(r) => self.reference(&r, &mut out)?,
                Event::Comment(_) => {}
                Event::End(_) => break,
                Event::Start(e) | Event::Empty(e) => {
                    let name = self.name(&e)?;
                    self.path.push(name);
                    return Err(self.fail("unknown element (its parent holds a single value)"));
                }
                other => return Err(self.unexpected(&other, "in a value")),
            }
        }
        if let Some(c) = out.chars().find(|c| !xml_char(*c)) {
            return Err(self.fail(format!(
                "character U+{:04X} is not allowed in XML 1.0",
                u32::from(c)
            )));
        }
        Ok(out)
    }

    /// Appends what `&name;` stands for: a character reference or a predefined entity.
    fn reference(&self, r: &BytesRef<'_>, out: &mut String) -> Result<(), XmlError> {
        let name = String::from_utf8_lossy(r);
        if r.is_char_ref() {
            match r.resolve_char_ref() {
                Ok(Some(c)) => out.push(c),
                _ => return Err(self.fail(format!("bad character reference &{name};"))),
            }
        } else {
            match resolve_predefined_entity(&name) {
                Some(s) => out.push_str(s),
                None => return Err(self.fail(format!("unknown entity &{name};"))),
            }
        }
        Ok(())
    }

    fn scalar(&self, kind: &Kind, text: String) -> Result<Value, XmlError> {
        if text.is_empty() && !matches!(kind, Kind::String) {
            return Err(self.fail(format!("an empty element is not a {}", kind.name())));
        }
        match kind {
            Kind::Boolean => match text.as_str() {
                "true" => Ok(true.into()),
                "false" => Ok(false.into()),
                _ => Err(self.fail(format!("{text:?} is not a boolean (true or false)"))),
            },
            Kind::Integer | Kind::Long => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| self.fail(format!("{text:?} is not an {}", kind.name()))),
            _ => Ok(Value::String(text)),
        }
    }
}

/// Refuses a declaration naming an encoding other than UTF-8 (the bytes were checked to be
/// UTF-8 already; a body declared as something else was not meant as what it decodes to). The
/// declaration is scanned by hand rather than read as attributes.
fn check_encoding(decl: &[u8]) -> Result<(), String> {
    let Some(at) = decl.windows(8).position(|w| w == b"encoding") else {
        return Ok(());
    };
    let name = decl[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")
        .map(<[u8]>::trim_ascii_start)
        .and_then(|rest| {
            let (&quote, rest) = rest.split_first()?;
            let end = rest.iter().position(|&b| b == quote)?;
            matches!(quote, b'"' | b'\'').then(|| &rest[..end])
        })
        .ok_or("the XML declaration's encoding is unreadable")?;
    if name.eq_ignore_ascii_case(b"utf-8") || name.eq_ignore_ascii_case(b"utf8") {
        Ok(())
    } else {
        Err(format!(
            "the XML declaration names encoding {:?}; only UTF-8 is accepted",
            String::from_utf8_lossy(name)
        ))
    }
}

/// Whitespace only (what indentation between elements is).
fn is_blank(t: &BytesText<'_>) -> bool {
    t.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Whether XML 1.0 can carry `c` (its `Char` production; Rust chars are never surrogates).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

// ---- Encoding ------------------------------------------------------------------------------

/// Writes `<name>…</name>` for `value` (`<name/>` when it has no content), or nothing when
/// the value is absent, null, of the wrong JSON type, or an empty union. Answers whether it
/// wrote anything.
fn write_element(out: &mut String, name: &str, shape: &Shape, value: &Value) -> bool {
    let mark = out.len();
    out.push('<');
    out.push_str(name);
    out.push('>');
    let start = out.len();
    if !write_content(out, shape, value) {
        out.truncate(mark);
        return false;
    }
    if out.len() == start {
        out.truncate(start - 1);
        out.push_str("/>");
    } else {
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    true
}

/// Writes the content of an element of `shape`; `false` when the element is to be left out.
fn write_content(out: &mut String, shape: &Shape, value: &Value) -> bool {
    let m = model();
    match (&shape.kind, value) {
        (Kind::Structure { members, union }, Value::Object(o)) => {
            let mut wrote = false;
            for (name, member) in members {
                if let Some(v) = o.get(name).filter(|v| !v.is_null()) {
                    wrote |= write_element(out, member.wire_name(name), m.target(member), v);
                }
            }
            wrote || !union
        }
        (Kind::List { member }, Value::Array(items)) => {
            let (item, shape) = (member.wire_name("member"), m.target(member));
            for v in items.iter().filter(|v| !v.is_null()) {
                write_element(out, item, shape, v);
            }
            true
        }
        (Kind::Map { key, value }, Value::Object(o)) => {
            let (key_name, value_name) = (key.wire_name("key"), value.wire_name("value"));
            let shape = m.target(value);
            for (k, v) in o {
                let mark = out.len();
                out.push_str("<entry><");
                out.push_str(key_name);
                out.push('>');
                push_text(out, k);
                out.push_str("</");
                out.push_str(key_name);
                out.push('>');
                if write_element(out, value_name, shape, v) {
                    out.push_str("</entry>");
                } else {
                    out.truncate(mark);
                }
            }
            true
        }
        (Kind::String, Value::String(s)) => {
            push_text(out, s);
            true
        }
        (Kind::String, Value::Number(n)) => {
            out.push_str(&n.to_string());
            true
        }
        (Kind::String | Kind::Boolean, Value::Bool(b)) => {
            out.push_str(if *b { "true" } else { "false" });
            true
        }
        (Kind::Integer | Kind::Long, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            out.push_str(&n.to_string());
            true
        }
        (Kind::Timestamp, Value::String(s)) => match Timestamp::parse(s) {
            Some(t) => {
                out.push_str(&batchops_core::time::iso(t.0));
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Appends `s` as element text: `&`, `<`, `>` escaped, `\r` as `&#13;`, and characters
/// XML 1.0 cannot carry replaced by U+FFFD.
fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchops_core::job::spec::{
        JobManifestGenerator, JobOperation, ManifestField, ReportScope,
    };
    use batchops_core::job::{CreateJobRequest, Job};
    use serde_json::json;

    /// The CreateJob body boto3 sends (S3CONTROL.md), in boto3's order.
    const BOTO3_CREATE_JOB: &str = r#"<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">
 <ConfirmationRequired>false</ConfirmationRequired>
 <Operation><S3PutObjectCopy><TargetResource>arn:aws:s3:::dest-bucket</TargetResource>
  <TargetKeyPrefix>copied/</TargetKeyPrefix><StorageClass>STANDARD</StorageClass>
  <MetadataDirective>COPY</MetadataDirective>
  <NewObjectTagging><member><Key>k1</Key><Value>v1</Value></member></NewObjectTagging>
 </S3PutObjectCopy></Operation>
 <Report><Bucket>arn:aws:s3:::report-bucket</Bucket><Format>Report_CSV_20180820</Format>
  <Enabled>true</Enabled><Prefix>reports</Prefix><ReportScope>AllTasks</ReportScope></Report>
 <ClientRequestToken>tok-0001</ClientRequestToken>
 <Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format>
  <Fields><member>Bucket</member><member>Key</member></Fields></Spec>
  <Location><ObjectArn>arn:aws:s3:::manifest-bucket/manifest.csv</ObjectArn>
  <ETag>60e460c9d1046e73f7dde5043ac3ae85</ETag></Location></Manifest>
 <Description>copy job</Description><Priority>10</Priority>
 <RoleArn>arn:aws:iam::123456789012:role/batch-ops</RoleArn>
 <Tags><member><Key>team</Key><Value>data</Value></member></Tags>
</CreateJobRequest>
"#;

    /// The same request as the Rust SDK orders it (alphabetically), with a declaration and an
    /// `s3:` prefix on the root.
    const SORTED_CREATE_JOB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<s3:CreateJobRequest xmlns:s3="http://awss3control.amazonaws.com/doc/2018-08-20/"><ClientRequestToken>tok-0001</ClientRequestToken><ConfirmationRequired>false</ConfirmationRequired><Description>copy job</Description><Manifest><Location><ETag>60e460c9d1046e73f7dde5043ac3ae85</ETag><ObjectArn>arn:aws:s3:::manifest-bucket/manifest.csv</ObjectArn></Location><Spec><Fields><member>Bucket</member><member>Key</member></Fields><Format>S3BatchOperations_CSV_20180820</Format></Spec></Manifest><Operation><S3PutObjectCopy><MetadataDirective>COPY</MetadataDirective><NewObjectTagging><member><Value>v1</Value><Key>k1</Key></member></NewObjectTagging><StorageClass>STANDARD</StorageClass><TargetKeyPrefix>copied/</TargetKeyPrefix><TargetResource>arn:aws:s3:::dest-bucket</TargetResource></S3PutObjectCopy></Operation><Priority>10</Priority><Report><Bucket>arn:aws:s3:::report-bucket</Bucket><Enabled>true</Enabled><Format>Report_CSV_20180820</Format><Prefix>reports</Prefix><ReportScope>AllTasks</ReportScope></Report><RoleArn>arn:aws:iam::123456789012:role/batch-ops</RoleArn><Tags><member><Key>team</Key><Value>data</Value></member></Tags></s3:CreateJobRequest>"#;

    /// A CreateJob body around `inner` (a Report is required by core).
    fn create_job(inner: &str) -> String {
        format!(
            "<CreateJobRequest><Report><Enabled>false</Enabled></Report>{inner}</CreateJobRequest>"
        )
    }

    fn decode_create(body: &str) -> Result<Value, XmlError> {
        decode(body.as_bytes(), "CreateJobRequest")
    }

    fn request(body: &str) -> CreateJobRequest {
        let value = decode_create(body).unwrap();
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"))
    }

    fn error(body: &str) -> XmlError {
        decode_create(body).unwrap_err()
    }

    #[test]
    fn boto3_create_job_body_decodes_into_a_valid_request() {
        let value = decode_create(BOTO3_CREATE_JOB).unwrap();
        assert_eq!(
            value,
            json!({
                "ConfirmationRequired": false,
                "Operation": {"S3PutObjectCopy": {
                    "TargetResource": "arn:aws:s3:::dest-bucket", "TargetKeyPrefix": "copied/",
                    "StorageClass": "STANDARD", "MetadataDirective": "COPY",
                    "NewObjectTagging": [{"Key": "k1", "Value": "v1"}]}},
                "Report": {"Bucket": "arn:aws:s3:::report-bucket", "Format": "Report_CSV_20180820",
                           "Enabled": true, "Prefix": "reports", "ReportScope": "AllTasks"},
                "ClientRequestToken": "tok-0001",
                "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                             "Location": {"ObjectArn": "arn:aws:s3:::manifest-bucket/manifest.csv",
                                          "ETag": "60e460c9d1046e73f7dde5043ac3ae85"}},
                "Description": "copy job",
                "Priority": 10,
                "RoleArn": "arn:aws:iam::123456789012:role/batch-ops",
                "Tags": [{"Key": "team", "Value": "data"}],
            })
        );
        let req: CreateJobRequest = serde_json::from_value(value).unwrap();
        req.validate().unwrap();
        assert_eq!(req.priority, 10);
        assert!(!req.confirmation_required);
        assert_eq!(req.client_request_token.as_deref(), Some("tok-0001"));
        assert_eq!(req.description.as_deref(), Some("copy job"));
        assert_eq!(
            req.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/batch-ops")
        );
        assert_eq!(
            (req.tags[0].key.as_str(), req.tags[0].value.as_str()),
            ("team", "data")
        );
        let manifest = req.manifest.as_ref().unwrap();
        assert_eq!(
            manifest.spec.fields.as_deref(),
            Some(&[ManifestField::Bucket, ManifestField::Key][..])
        );
        assert_eq!(
            manifest.location.etag.as_deref(),
            Some("60e460c9d1046e73f7dde5043ac3ae85")
        );
        assert!(req.report.enabled);
        assert_eq!(req.report.report_scope, Some(ReportScope::AllTasks));
        assert_eq!(req.report.prefix.as_deref(), Some("reports"));
        let Some(JobOperation::S3PutObjectCopy(copy)) = &req.operation else {
            panic!("a copy: {:?}", req.operation);
        };
        assert_eq!(copy.target_resource, "arn:aws:s3:::dest-bucket");
        assert_eq!(copy.target_key_prefix.as_deref(), Some("copied/"));
        assert_eq!(copy.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(copy.metadata_directive.as_deref(), Some("COPY"));
        assert_eq!(copy.new_object_tagging.as_ref().unwrap()[0].key, "k1");
    }

    #[test]
    fn element_order_and_root_prefix_do_not_change_the_value() {
        assert_eq!(
            decode_create(SORTED_CREATE_JOB).unwrap(),
            decode_create(BOTO3_CREATE_JOB).unwrap()
        );
    }

    #[test]
    fn lambda_user_arguments_decode_as_a_map() {
        let req = request(&create_job(
            "<Operation><LambdaInvoke>\
               <FunctionArn>arn:aws:lambda:us-east-1:123456789012:function:f</FunctionArn>\
               <InvocationSchemaVersion>2.0</InvocationSchemaVersion>\
               <UserArguments><entry><key>mode</key><value>fast</value></entry>\
                 <entry><value></value><key>empty</key></entry></UserArguments>\
             </LambdaInvoke></Operation>",
        ));
        let Some(JobOperation::LambdaInvoke(l)) = &req.operation else {
            panic!("a LambdaInvoke: {:?}", req.operation);
        };
        let args = l.user_arguments.as_ref().unwrap();
        assert_eq!(args.len(), 2);
        assert_eq!(args["mode"], "fast");
        assert_eq!(args["empty"], "");
        assert_eq!(l.invocation_schema_version.as_deref(), Some("2.0"));
    }

    #[test]
    fn copy_metadata_user_metadata_and_timestamps_decode() {
        let req = request(&create_job(
            "<Operation><S3PutObjectCopy><TargetResource>arn:aws:s3:::dest</TargetResource>\
               <ModifiedSinceConstraint>2024-01-02T03:04:05.123456Z</ModifiedSinceConstraint>\
               <NewObjectMetadata><ContentType>text/plain</ContentType><ContentLength>42</ContentLength>\
                 <ContentMD5>abc</ContentMD5><SSEAlgorithm>AES256</SSEAlgorithm>\
                 <RequesterCharged>true</RequesterCharged>\
                 <HttpExpiresDate>2030-01-01T00:00:00Z</HttpExpiresDate>\
                 <UserMetadata><entry><key>colour</key><value>blue</value></entry></UserMetadata>\
               </NewObjectMetadata>\
               <AccessControlGrants><member><Grantee><TypeIdentifier>id</TypeIdentifier>\
                 <Identifier>abc</Identifier></Grantee><Permission>READ</Permission></member></AccessControlGrants>\
             </S3PutObjectCopy></Operation>",
        ));
        let Some(JobOperation::S3PutObjectCopy(copy)) = &req.operation else {
            panic!("a copy");
        };
        let meta = copy.new_object_metadata.as_ref().unwrap();
        assert_eq!(meta.user_metadata["colour"], "blue");
        assert_eq!(meta.content_length, Some(42));
        assert_eq!(meta.content_md5.as_deref(), Some("abc"));
        assert_eq!(meta.sse_algorithm.as_deref(), Some("AES256"));
        assert!(meta.requester_charged);
        assert_eq!(
            meta.http_expires_date.unwrap().epoch_millis(),
            Some(1_893_456_000_000)
        );
        assert_eq!(
            copy.modified_since_constraint.unwrap().epoch_millis(),
            Some(1_704_164_645_123)
        );
        assert_eq!(
            copy.access_control_grants[0].permission.as_deref(),
            Some("READ")
        );
    }

    const GENERATOR: &str = "<ManifestGenerator><S3JobManifestGenerator>\
        <SourceBucket>arn:aws:s3:::src-bucket</SourceBucket>\
        <EnableManifestOutput>true</EnableManifestOutput>\
        <ExpectedBucketOwner>123456789012</ExpectedBucketOwner>\
        <ManifestOutputLocation><Bucket>arn:aws:s3:::out-bucket</Bucket>\
          <ManifestPrefix>gen</ManifestPrefix><ManifestFormat>S3InventoryReport_CSV_20211130</ManifestFormat>\
          <ManifestEncryption><SSE-S3/></ManifestEncryption></ManifestOutputLocation>\
        <Filter><CreatedAfter>2026-01-01T00:00:00Z</CreatedAfter>\
          <CreatedBefore>2030-03-17T17:46:40.5Z</CreatedBefore>\
          <KeyNameConstraint><MatchAnyPrefix><member>a/</member><member>b/</member></MatchAnyPrefix>\
            <MatchAnySuffix><member>.txt</member></MatchAnySuffix></KeyNameConstraint>\
          <ObjectSizeGreaterThanBytes>0</ObjectSizeGreaterThanBytes>\
          <ObjectSizeLessThanBytes>100</ObjectSizeLessThanBytes>\
          <MatchAnyStorageClass><member>STANDARD</member></MatchAnyStorageClass>\
          {encryption}\
        </Filter></S3JobManifestGenerator></ManifestGenerator>\
        <Operation><S3DeleteObjectTagging/></Operation>";

    #[test]
    fn manifest_generator_with_filters_decodes_and_validates() {
        let req = request(&create_job(&GENERATOR.replace("{encryption}", "")));
        req.validate().unwrap();
        let Some(JobManifestGenerator::S3JobManifestGenerator(g)) = &req.manifest_generator else {
            panic!("a generator");
        };
        assert!(g.enable_manifest_output);
        assert_eq!(g.expected_bucket_owner.as_deref(), Some("123456789012"));
        let out = g.manifest_output_location.as_ref().unwrap();
        assert_eq!(out.manifest_encryption, Some(json!({"SSES3": {}})));
        let f = g.filter.as_ref().unwrap();
        assert_eq!(
            f.created_after.unwrap().epoch_millis(),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            f.created_before.unwrap().epoch_millis(),
            Some(1_900_000_000_500)
        );
        let k = f.key_name_constraint.as_ref().unwrap();
        assert_eq!(k.match_any_prefix, ["a/", "b/"]);
        assert_eq!(k.match_any_suffix, [".txt"]);
        assert_eq!(f.object_size_less_than_bytes, Some(100));
        assert_eq!(f.match_any_storage_class, ["STANDARD"]);
    }

    #[test]
    fn object_encryption_filters_use_their_wire_names() {
        let encryption = "<MatchAnyObjectEncryption><ObjectEncryption><SSE-KMS>\
            <KmsKeyArn>arn:aws:kms:us-east-1:123456789012:key/k</KmsKeyArn>\
            <BucketKeyEnabled>true</BucketKeyEnabled></SSE-KMS></ObjectEncryption>\
            <ObjectEncryption><NOT-SSE/></ObjectEncryption></MatchAnyObjectEncryption>";
        let req = request(&create_job(&GENERATOR.replace("{encryption}", encryption)));
        let f = req
            .manifest_generator
            .as_ref()
            .unwrap()
            .s3()
            .filter
            .as_ref()
            .unwrap();
        assert_eq!(
            f.match_any_object_encryption,
            Some(json!([
                {"SSEKMS": {"KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k", "BucketKeyEnabled": true}},
                {"NOTSSE": {}},
            ]))
        );
        // Accepted by serde, refused by core (listing does not tell encryption).
        let field = req.validate().unwrap_err().field;
        assert!(
            field.ends_with("Filter.MatchAnyObjectEncryption"),
            "{field}"
        );
        // `<member>` is not the item name here, and the JSON name is not the wire name.
        let e = error(&create_job(&GENERATOR.replace(
            "{encryption}",
            "<MatchAnyObjectEncryption><member><SSE-S3/></member></MatchAnyObjectEncryption>",
        )));
        assert!(e.path.ends_with("MatchAnyObjectEncryption.member"), "{e}");
        let e = error(&create_job(&GENERATOR.replace(
            "{encryption}",
            "<MatchAnyObjectEncryption><ObjectEncryption><SSEKMS/></ObjectEncryption></MatchAnyObjectEncryption>",
        )));
        assert!(e.path.ends_with("ObjectEncryption.SSEKMS"), "{e}");
    }

    #[test]
    fn a_union_takes_exactly_one_member() {
        let two = "<MatchAnyObjectEncryption><ObjectEncryption><SSE-S3/><NOT-SSE/>\
                   </ObjectEncryption></MatchAnyObjectEncryption>";
        let e = error(&create_job(&GENERATOR.replace("{encryption}", two)));
        assert!(e.message.contains("exactly one member"), "{e}");
        let e = error(&create_job("<ManifestGenerator/>"));
        assert_eq!(e.path, "CreateJobRequest.ManifestGenerator");
    }

    #[test]
    fn an_empty_operation_element_stays_an_operation() {
        let req = request(&create_job(
            "<Operation><S3DeleteObjectTagging/></Operation>",
        ));
        assert!(matches!(
            req.operation,
            Some(JobOperation::S3DeleteObjectTagging(_))
        ));
        let req = request(&create_job(
            "<Operation><S3DeleteObject></S3DeleteObject></Operation>",
        ));
        assert!(matches!(
            req.operation,
            Some(JobOperation::S3DeleteObject(_))
        ));
    }

    #[test]
    fn batchops_extensions_decode() {
        let req = request(&create_job(
            "<DryRun>true</DryRun><FailureThreshold><MinTasks>10</MinTasks>\
             <Percent>5</Percent></FailureThreshold>",
        ));
        assert!(req.dry_run);
        let t = req.failure_threshold.unwrap();
        assert_eq!((t.min_tasks, t.percent), (10, 5));
    }

    #[test]
    fn an_empty_list_is_an_empty_array() {
        for body in [
            "<PutJobTaggingRequest><Tags/></PutJobTaggingRequest>",
            "<PutJobTaggingRequest><Tags></Tags></PutJobTaggingRequest>",
            "<PutJobTaggingRequest>\n  <Tags>\n  </Tags>\n</PutJobTaggingRequest>",
        ] {
            assert_eq!(
                decode(body.as_bytes(), "PutJobTaggingRequest").unwrap(),
                json!({"Tags": []}),
                "{body}"
            );
        }
        let tags = decode(
            b"<PutJobTaggingRequest xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\">\
              <Tags><member><Key>a</Key><Value/></member></Tags></PutJobTaggingRequest>",
            "PutJobTaggingRequest",
        )
        .unwrap();
        assert_eq!(tags, json!({"Tags": [{"Key": "a", "Value": ""}]}));
    }

    #[test]
    fn an_unknown_element_names_its_path() {
        let e = error(
            "<CreateJobRequest><Report><Enabled>true</Enabled><Foo>x</Foo></Report></CreateJobRequest>",
        );
        assert_eq!(e.path, "CreateJobRequest.Report.Foo");
        assert_eq!(
            e.to_string(),
            "XML: CreateJobRequest.Report.Foo: unknown element"
        );
        // The account travels in a header; in the body it is unknown.
        let e = error(&create_job("<AccountId>123456789012</AccountId>"));
        assert_eq!(e.path, "CreateJobRequest.AccountId");
        // A list item with another name, an element inside a leaf, a map entry's stray child.
        assert_eq!(
            error(&create_job("<Tags><Tag/></Tags>")).path,
            "CreateJobRequest.Tags.Tag"
        );
        assert_eq!(
            error(&create_job("<Description>a<b/></Description>")).path,
            "CreateJobRequest.Description.b"
        );
        let e = error(&create_job(
            "<Operation><LambdaInvoke><UserArguments><entry><key>k</key><other/></entry>\
             </UserArguments></LambdaInvoke></Operation>",
        ));
        assert_eq!(
            e.path,
            "CreateJobRequest.Operation.LambdaInvoke.UserArguments.entry.other"
        );
    }

    #[test]
    fn a_root_other_than_the_operations_is_refused() {
        let e = decode(b"<PutJobTaggingRequest/>", "CreateJobRequest").unwrap_err();
        assert_eq!(e.path, "");
        assert!(e.message.contains("must be CreateJobRequest"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let e = error(&create_job(
            "<Description>a</Description><Description>b</Description>",
        ));
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("CreateJobRequest.Description", "duplicate element")
        );
        let e = error(&create_job(
            "<Operation><LambdaInvoke><UserArguments><entry><key>k</key><value>1</value></entry>\
             <entry><key>k</key><value>2</value></entry></UserArguments></LambdaInvoke></Operation>",
        ));
        assert!(e.message.contains("duplicate map key \"k\""), "{e}");
        let e = error(&create_job(
            "<Operation><LambdaInvoke><UserArguments><entry><key>k</key><key>j</key><value>1</value>\
             </entry></UserArguments></LambdaInvoke></Operation>",
        ));
        assert!(e.path.ends_with("entry.key"), "{e}");
        let e = error(&create_job(
            "<Operation><LambdaInvoke><UserArguments><entry><key>k</key></entry>\
             </UserArguments></LambdaInvoke></Operation>",
        ));
        assert!(e.message.contains("needs a <key> and a <value>"), "{e}");
    }

    #[test]
    fn bad_scalars_are_refused_naming_the_path() {
        let cases = [
            (
                "<ConfirmationRequired>yes</ConfirmationRequired>",
                "ConfirmationRequired",
            ),
            (
                "<ConfirmationRequired>True</ConfirmationRequired>",
                "ConfirmationRequired",
            ),
            (
                "<ConfirmationRequired> true</ConfirmationRequired>",
                "ConfirmationRequired",
            ),
            ("<ConfirmationRequired/>", "ConfirmationRequired"),
            ("<Priority>ten</Priority>", "Priority"),
            ("<Priority>1.5</Priority>", "Priority"),
            ("<Priority>99999999999999999999</Priority>", "Priority"),
            ("<Priority></Priority>", "Priority"),
            (
                "<FailureThreshold><MinTasks/></FailureThreshold>",
                "FailureThreshold.MinTasks",
            ),
        ];
        for (inner, path) in cases {
            let e = error(&create_job(inner));
            assert_eq!(e.path, format!("CreateJobRequest.{path}"), "{inner}: {e}");
        }
        let e = error(&create_job("<Priority>ten</Priority>"));
        assert_eq!(
            e.to_string(),
            r#"XML: CreateJobRequest.Priority: "ten" is not an integer"#
        );
        // An empty timestamp is an error; a bad one is core's to refuse.
        let filter = |inner: &str| {
            create_job(&format!(
                "<ManifestGenerator><S3JobManifestGenerator><SourceBucket>arn:aws:s3:::b</SourceBucket>\
                 <Filter>{inner}</Filter></S3JobManifestGenerator></ManifestGenerator>"
            ))
        };
        let e = error(&filter("<CreatedAfter/>"));
        assert!(e.path.ends_with("Filter.CreatedAfter"), "{e}");
        let value = decode_create(&filter("<CreatedAfter>soon</CreatedAfter>")).unwrap();
        let err = serde_json::from_value::<CreateJobRequest>(value).unwrap_err();
        assert!(err.to_string().contains("invalid timestamp"), "{err}");
    }

    #[test]
    fn doctype_and_processing_instructions_are_refused() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
<CreateJobRequest><Description>&lol2;</Description></CreateJobRequest>"#;
        assert!(
            error(laughs).message.contains("DOCTYPE"),
            "{}",
            error(laughs)
        );
        let pi = "<?xml-stylesheet href=\"x\"?><CreateJobRequest/>";
        assert!(error(pi).message.contains("processing instructions"));
        let inner = create_job("<Description>a<?php x?></Description>");
        assert!(error(&inner).message.contains("processing instructions"));
        // A declaration only at the very start, and only for UTF-8.
        let late = error("<CreateJobRequest><?xml version=\"1.0\"?></CreateJobRequest>");
        assert!(late.message.contains("XML declaration"), "{late}");
        let latin = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><CreateJobRequest/>";
        assert!(
            error(latin).message.contains("only UTF-8"),
            "{}",
            error(latin)
        );
        let utf8 = "<?xml version='1.0' encoding='utf-8'?><CreateJobRequest/>";
        assert_eq!(decode_create(utf8).unwrap(), json!({}));
    }

    #[test]
    fn ill_formed_bodies_are_refused_without_panicking() {
        let full = BOTO3_CREATE_JOB.as_bytes();
        // Every truncation of a real body is an error, never a panic.
        for cut in 0..full.len() - 2 {
            assert!(
                decode(&full[..cut], "CreateJobRequest").is_err(),
                "cut at {cut}"
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"not xml",
            b"<CreateJobRequest>",
            b"<CreateJobRequest></Other>",
            b"<CreateJobRequest><Description>x</Priority></CreateJobRequest>",
            b"<CreateJobRequest/><CreateJobRequest/>",
            b"<CreateJobRequest/>trailing",
            b"text<CreateJobRequest/>",
            b"<CreateJobRequest>stray text</CreateJobRequest>",
            b"<CreateJobRequest><Description>&bogus;</Description></CreateJobRequest>",
            b"<CreateJobRequest><Description>&#0;</Description></CreateJobRequest>",
            b"<CreateJobRequest><Description>&#1;</Description></CreateJobRequest>",
            b"<CreateJobRequest><Description>a & b</Description></CreateJobRequest>",
            b"<CreateJobRequest><Description>\x01</Description></CreateJobRequest>",
            b"<CreateJobRequest><Description>\xff\xfe</Description></CreateJobRequest>",
            b"\xfe\xff\x00<\x00C",
            b"<CreateJobRequest><Description><![CDATA[x</Description></CreateJobRequest>",
        ];
        for body in bad {
            let e = decode(body, "CreateJobRequest").unwrap_err();
            assert!(!e.message.is_empty(), "{body:?}");
        }
        let e = decode(b"<a>\xff</a>", "CreateJobRequest").unwrap_err();
        assert!(e.message.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn leaf_text_is_kept_verbatim() {
        let value = decode_create(&create_job(
            "<Description>  two  spaces\n\ttab  </Description>\
             <ClientRequestToken>a &amp; <![CDATA[<b>&amp;]]>&#x41;&#66;&lt;&quot;&apos;</ClientRequestToken>\
             <RoleArn>x<!-- comment -->y</RoleArn>",
        ))
        .unwrap();
        assert_eq!(value["Description"], "  two  spaces\n\ttab  ");
        assert_eq!(value["ClientRequestToken"], "a & <b>&amp;AB<\"'");
        assert_eq!(value["RoleArn"], "xy");
        // Whitespace-only text in a leaf is kept; a `&#13;` survives newline normalisation.
        let value = decode_create(&create_job("<Description> </Description>")).unwrap();
        assert_eq!(value["Description"], " ");
        let value = decode_create(&create_job("<Description>a&#13;\r\nb</Description>")).unwrap();
        assert_eq!(value["Description"], "a\r\nb");
        // A UTF-8 byte-order mark is allowed.
        let bom = format!("\u{feff}{}", create_job(""));
        assert!(decode_create(&bom).is_ok());
    }

    #[test]
    fn xml_error_display_names_the_path_when_there_is_one() {
        let e = XmlError {
            path: String::new(),
            message: "the body has no root element".into(),
        };
        assert_eq!(e.to_string(), "XML: the body has no root element");
        assert_eq!(error("").to_string(), e.to_string());
    }

    // ---- Encoding --------------------------------------------------------------------------

    /// A job made from the boto3 body, with the state DescribeJob shows.
    fn job() -> Job {
        let req: CreateJobRequest =
            serde_json::from_value(decode_create(BOTO3_CREATE_JOB).unwrap()).unwrap();
        let mut job = Job::new("job-1".into(), req, "2026-01-02T03:04:05.000Z".into());
        job.request.description = Some("line1\r\nline2\u{1}\u{FFFF} <&>".into());
        job.request.dry_run = true;
        job.termination_date = Some("2026-01-02T04:04:05+01:00".into());
        job.status_update_reason = Some("confirmed".into());
        job.failure_reasons = vec![batchops_core::job::FailureReason {
            failure_code: "Bad\u{0}Code".into(),
            failure_reason: "tab\tok".into(),
        }];
        job.total_tasks = 3;
        job.succeeded = 2;
        job.failed = 1;
        job
    }

    /// Element names and their texts, in document order, via a plain quick-xml parse; checks
    /// that the root is `root` with the S3 Control namespace.
    fn elements(xml: &str, root: &str) -> Vec<(String, String)> {
        let mut reader = Reader::from_str(xml);
        let mut out = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Decl(_) => assert!(out.is_empty()),
                Event::Start(e) | Event::Empty(e) if stack.is_empty() && out.is_empty() => {
                    let raw = String::from_utf8(e.to_vec()).unwrap();
                    assert_eq!(raw, format!(r#"{root} xmlns="{NAMESPACE}""#));
                    out.push((root.to_string(), String::new()));
                    if xml.ends_with(&format!("</{root}>")) {
                        stack.push(root.into());
                    }
                }
                Event::Start(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    stack.push(name.clone());
                    out.push((stack.join("."), String::new()));
                }
                Event::Empty(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    out.push((format!("{}.{name}", stack.join(".")), String::new()));
                }
                Event::Text(t) => out.last_mut().unwrap().1 += &t.xml10_content().unwrap(),
                Event::GeneralRef(r) => {
                    let c = r.resolve_char_ref().unwrap();
                    let s = match c {
                        Some(c) => c.to_string(),
                        None => resolve_predefined_entity(&r.decode().unwrap())
                            .unwrap()
                            .into(),
                    };
                    out.last_mut().unwrap().1 += &s;
                }
                Event::End(_) => {
                    stack.pop();
                }
                Event::Eof => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    fn text_of<'a>(elements: &'a [(String, String)], path: &str) -> Option<&'a str> {
        elements
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
    }

    #[test]
    fn describe_job_encodes_as_the_model_says() {
        let mut describe = job().describe();
        // An unset union (as a JSON `{}`) and a null member must both be left out.
        describe["Job"]["ManifestGenerator"] = json!({});
        describe["Job"]["SuspendedCause"] = Value::Null;
        describe["Job"]["JobArn"] = "arn:aws:s3:us-east-1:123456789012:job/job-1".into();
        let xml = encode("DescribeJobResult", "DescribeJobResult", &describe);
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><DescribeJobResult xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"><Job>"#), "{xml}");
        let els = elements(&xml, "DescribeJobResult");
        let at = |p: &str| text_of(&els, &format!("DescribeJobResult.Job.{p}"));
        assert_eq!(at("JobId"), Some("job-1"));
        assert_eq!(at("Status"), Some("New"));
        assert_eq!(at("Priority"), Some("10"));
        assert_eq!(at("ConfirmationRequired"), Some("false"));
        assert_eq!(
            at("JobArn"),
            Some("arn:aws:s3:us-east-1:123456789012:job/job-1")
        );
        assert_eq!(at("ProgressSummary.NumberOfTasksFailed"), Some("1"));
        assert_eq!(
            at("ProgressSummary.Timers.ElapsedTimeInActiveSeconds"),
            Some("0")
        );
        assert_eq!(at("Manifest.Spec.Fields.member"), Some("Bucket"));
        assert_eq!(at("Report.Enabled"), Some("true"));
        assert_eq!(
            at("Operation.S3PutObjectCopy.NewObjectTagging.member.Key"),
            Some("k1")
        );
        assert_eq!(at("FailureReasons.member.FailureReason"), Some("tab\tok"));
        // Timestamps: ISO UTC ending in Z.
        assert_eq!(at("CreationTime"), Some("2026-01-02T03:04:05.000Z"));
        assert_eq!(at("TerminationDate"), Some("2026-01-02T03:04:05.000Z"));
        // Control characters replaced, `\r` kept as a character reference.
        assert_eq!(
            at("Description"),
            Some("line1\r\nline2\u{FFFD}\u{FFFD} <&>")
        );
        assert!(
            xml.contains(
                "<Description>line1&#13;\nline2\u{FFFD}\u{FFFD} &lt;&amp;&gt;</Description>"
            ),
            "{xml}"
        );
        assert_eq!(
            at("FailureReasons.member.FailureCode"),
            Some("Bad\u{FFFD}Code")
        );
        // No empty union, nothing outside the shape (Audit, DryRun), no null.
        for gone in ["ManifestGenerator", "DryRun", "Audit", "SuspendedCause"] {
            assert!(!xml.contains(gone), "{gone} in {xml}");
        }
    }

    #[test]
    fn describe_job_round_trips_through_decode() {
        let describe = job().describe();
        let xml = encode("DescribeJobResult", "DescribeJobResult", &describe);
        let back = decode(xml.as_bytes(), "DescribeJobResult").unwrap();
        let mut expect = describe.clone();
        let j = expect["Job"].as_object_mut().unwrap();
        j.remove("DryRun");
        j.remove("Audit");
        j["TerminationDate"] = "2026-01-02T03:04:05.000Z".into();
        j["Description"] = "line1\r\nline2\u{FFFD}\u{FFFD} <&>".into();
        j["FailureReasons"][0]["FailureCode"] = "Bad\u{FFFD}Code".into();
        assert_eq!(back, expect);
    }

    #[test]
    fn an_empty_union_is_never_written() {
        let value = json!({"Job": {
            "JobId": "j",
            "ManifestGenerator": {"NotAMember": {}},
            "Operation": {"S3DeleteObjectTagging": {}},
            "Manifest": {"Location": {"ObjectArn": "arn:aws:s3:::b/k"}},
        }});
        let xml = encode("DescribeJobResult", "DescribeJobResult", &value);
        assert!(!xml.contains("ManifestGenerator"), "{xml}");
        // An empty structure that is not a union is written (an operation without parameters).
        assert!(
            xml.contains("<Operation><S3DeleteObjectTagging/></Operation>"),
            "{xml}"
        );
        // A list item that is an empty union is left out too.
        let filter = json!({"Job": {"ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::b",
            "Filter": {"MatchAnyObjectEncryption": [{}, {"SSEKMS": {"KmsKeyArn": "k"}}, {"SSES3": {}}]},
            "ManifestOutputLocation": {"Bucket": "arn:aws:s3:::o", "ManifestEncryption": {"SSES3": {}}},
        }}}});
        let xml = encode("DescribeJobResult", "DescribeJobResult", &filter);
        assert!(xml.contains("<MatchAnyObjectEncryption><ObjectEncryption><SSE-KMS><KmsKeyArn>k</KmsKeyArn></SSE-KMS></ObjectEncryption><ObjectEncryption><SSE-S3/></ObjectEncryption></MatchAnyObjectEncryption>"), "{xml}");
        assert!(
            xml.contains("<ManifestEncryption><SSE-S3/></ManifestEncryption>"),
            "{xml}"
        );
    }

    #[test]
    fn unparseable_timestamps_and_mistyped_values_are_left_out() {
        let value = json!({"Job": {
            "JobId": "j", "CreationTime": "yesterday", "TerminationDate": "2026-01-02",
            "Priority": "high", "ConfirmationRequired": "no", "Unknown": 1,
            "ProgressSummary": {"TotalNumberOfTasks": 1.5, "NumberOfTasksFailed": 2},
        }});
        let xml = encode("DescribeJobResult", "DescribeJobResult", &value);
        assert_eq!(
            xml,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><DescribeJobResult xmlns="{NAMESPACE}"><Job><JobId>j</JobId><ProgressSummary><NumberOfTasksFailed>2</NumberOfTasksFailed></ProgressSummary><TerminationDate>2026-01-02T00:00:00.000Z</TerminationDate></Job></DescribeJobResult>"#
            )
        );
    }

    #[test]
    fn other_response_roots_encode() {
        let summary = job().summary().list_descriptor();
        let list = encode(
            "ListJobsResult",
            "ListJobsResult",
            &json!({"Jobs": [summary], "NextToken": "abc"}),
        );
        let els = elements(&list, "ListJobsResult");
        assert_eq!(text_of(&els, "ListJobsResult.NextToken"), Some("abc"));
        assert_eq!(
            text_of(&els, "ListJobsResult.Jobs.member.JobId"),
            Some("job-1")
        );
        assert_eq!(
            text_of(&els, "ListJobsResult.Jobs.member.Operation"),
            Some("S3PutObjectCopy")
        );
        assert_eq!(
            text_of(
                &els,
                "ListJobsResult.Jobs.member.ProgressSummary.NumberOfTasksSucceeded"
            ),
            Some("2")
        );
        let created = encode("CreateJobResult", "CreateJobResult", &json!({"JobId": "j"}));
        assert!(created.ends_with(&format!(
            r#"<CreateJobResult xmlns="{NAMESPACE}"><JobId>j</JobId></CreateJobResult>"#
        )));
        let status = encode(
            "UpdateJobStatusResult",
            "UpdateJobStatusResult",
            &json!({"JobId": "j", "Status": "Ready", "StatusUpdateReason": "go"}),
        );
        assert!(status.contains(
            "<JobId>j</JobId><Status>Ready</Status><StatusUpdateReason>go</StatusUpdateReason>"
        ));
        let priority = encode(
            "UpdateJobPriorityResult",
            "UpdateJobPriorityResult",
            &json!({"JobId": "j", "Priority": 0}),
        );
        assert!(
            priority.contains("<JobId>j</JobId><Priority>0</Priority>"),
            "{priority}"
        );
        let tags = encode(
            "GetJobTaggingResult",
            "GetJobTaggingResult",
            &json!({"Tags": [{"Key": "a", "Value": ""}]}),
        );
        assert!(
            tags.contains("<Tags><member><Key>a</Key><Value/></member></Tags>"),
            "{tags}"
        );
        let none = encode(
            "GetJobTaggingResult",
            "GetJobTaggingResult",
            &json!({"Tags": []}),
        );
        assert!(
            none.ends_with(&format!(
                r#"<GetJobTaggingResult xmlns="{NAMESPACE}"><Tags/></GetJobTaggingResult>"#
            )),
            "{none}"
        );
        let empty = encode("PutJobTaggingResult", "PutJobTaggingResult", &json!({}));
        assert!(empty.ends_with(&format!(r#"<PutJobTaggingResult xmlns="{NAMESPACE}"/>"#)));
        assert_eq!(
            decode(tags.as_bytes(), "GetJobTaggingResult").unwrap(),
            json!({"Tags": [{"Key": "a", "Value": ""}]})
        );
    }

    #[test]
    fn maps_encode_as_entries() {
        let value = json!({"Job": {"Operation": {"LambdaInvoke": {
            "FunctionArn": "f", "UserArguments": {"a<": "1", "b": "2"}}}}});
        let xml = encode("DescribeJobResult", "DescribeJobResult", &value);
        assert!(xml.contains("<UserArguments><entry><key>a&lt;</key><value>1</value></entry><entry><key>b</key><value>2</value></entry></UserArguments>"), "{xml}");
        assert_eq!(decode(xml.as_bytes(), "DescribeJobResult").unwrap(), value);
    }

    #[test]
    fn error_body_is_the_wrapped_error_response() {
        assert_eq!(
            error_body("NotFoundException", "no job <x> & co", "req-1", true),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>NotFoundException</Code><Message>no job &lt;x&gt; &amp; co</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"#
            )
        );
        let receiver = error_body("InternalServiceException", "m", "r", false);
        let els = elements(&receiver, "ErrorResponse");
        assert_eq!(text_of(&els, "ErrorResponse.Error.Type"), Some("Receiver"));
        assert_eq!(
            text_of(&els, "ErrorResponse.Error.Code"),
            Some("InternalServiceException")
        );
        assert_eq!(text_of(&els, "ErrorResponse.RequestId"), Some("r"));
    }

    #[test]
    fn the_namespace_is_the_models() {
        assert_eq!(NAMESPACE, model().xml_namespace);
    }
}
