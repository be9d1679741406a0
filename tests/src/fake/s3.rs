//! An in-memory S3 (path-style REST) for the model's schedules: the calls the pipeline's
//! `Objects` makes and the stack's set-up — buckets, PutObject (with `If-None-Match: *`),
//! GetObject (ranges from an offset, `If-Match`), HeadObject, DeleteObject, ListObjectsV2
//! (prefix, start-after, delimiter, paging), multipart uploads — with S3's status codes and
//! XML errors. The conformance test holds it to the emulator's answers.

use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A request as the fake reads it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, percent-decoded: `/bucket/key`.
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Object {
    data: Vec<u8>,
    etag: String,
    content_type: String,
}

#[derive(Debug, Default)]
struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<u32, (Vec<u8>, String)>,
}

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    uploads: BTreeMap<String, Upload>,
    next: u64,
    /// PutObjectTagging calls that tagged an object, by bucket and key: how often a task ran.
    tag_writes: BTreeMap<(String, String), u32>,
}

#[derive(Debug, Default)]
pub struct S3 {
    state: Mutex<State>,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer {
        status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
            xml_escape(message)
        )
        .into_bytes(),
    }
}

fn xml(body: String) -> Answer {
    Answer {
        status: 200,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}").into_bytes(),
    }
}

fn empty(status: u16, headers: Vec<(String, String)>) -> Answer {
    Answer {
        status,
        headers,
        body: Vec::new(),
    }
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// The body a client sent, without `aws-chunked` framing if it used it.
fn payload(req: &Request<'_>) -> Vec<u8> {
    let chunked = (req.header)("content-encoding").is_some_and(|e| e.contains("aws-chunked"));
    if !chunked {
        return req.body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = req.body;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..end]);
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        rest = &rest[end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

impl S3 {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times each object was tagged (PutObjectTagging that found it).
    pub fn tag_writes(&self) -> BTreeMap<(String, String), u32> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tag_writes
            .clone()
    }

    pub fn handle(&self, req: &Request<'_>) -> Answer {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let path = req.path.trim_start_matches('/');
        let (bucket, key) = match path.split_once('/') {
            Some((b, k)) => (b.to_string(), k.to_string()),
            None => (path.to_string(), String::new()),
        };
        let q = |name: &str| req.query.get(name).cloned();
        if key.is_empty() {
            return match req.method {
                "PUT" if req.query.is_empty() => {
                    s.buckets.entry(bucket).or_default();
                    empty(200, Vec::new())
                }
                // Notification, lifecycle and other bucket settings: accepted.
                "PUT" => empty(200, Vec::new()),
                "HEAD" if s.buckets.contains_key(&bucket) => empty(200, Vec::new()),
                "HEAD" => empty(404, Vec::new()),
                "GET" if q("list-type").as_deref() == Some("2") => list(&s, &bucket, req),
                _ => error(
                    501,
                    "NotImplemented",
                    "the fake S3 does not serve this bucket call",
                ),
            };
        }
        if !s.buckets.contains_key(&bucket) {
            return error(404, "NoSuchBucket", "The specified bucket does not exist");
        }
        if let Some(upload_id) = q("uploadId") {
            return multipart(&mut s, req, &bucket, &key, &upload_id);
        }
        if req.query.contains_key("tagging") {
            if !s.buckets[&bucket].contains_key(&key) {
                return error(404, "NoSuchKey", "The specified key does not exist.");
            }
            return match req.method {
                "PUT" => {
                    *s.tag_writes.entry((bucket, key)).or_default() += 1;
                    empty(200, Vec::new())
                }
                "DELETE" => empty(204, Vec::new()),
                _ => xml("<Tagging><TagSet></TagSet></Tagging>".into()),
            };
        }
        match req.method {
            "POST" if req.query.contains_key("uploads") => {
                s.next += 1;
                let id = format!("upload-{}", s.next);
                s.uploads.insert(
                    id.clone(),
                    Upload {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        parts: BTreeMap::new(),
                    },
                );
                xml(format!(
                    "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                    xml_escape(&bucket),
                    xml_escape(&key)
                ))
            }
            "PUT" if req.query.is_empty() => {
                let objects = s.buckets.get_mut(&bucket).expect("checked");
                if (req.header)("if-none-match").as_deref() == Some("*")
                    && objects.contains_key(&key)
                {
                    return error(
                        412,
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                    );
                }
                let data = payload(req);
                let etag = hex::encode(Md5::digest(&data));
                let content_type =
                    (req.header)("content-type").unwrap_or_else(|| "binary/octet-stream".into());
                objects.insert(
                    key,
                    Object {
                        data,
                        etag: etag.clone(),
                        content_type,
                    },
                );
                empty(200, vec![("etag".into(), quoted(&etag))])
            }
            "GET" | "HEAD" if req.query.is_empty() || q("versionId").is_some() => {
                let Some(o) = s.buckets[&bucket].get(&key) else {
                    return if req.method == "HEAD" {
                        empty(404, Vec::new())
                    } else {
                        error(404, "NoSuchKey", "The specified key does not exist.")
                    };
                };
                if let Some(m) = (req.header)("if-match")
                    && m.trim_matches('"') != o.etag
                {
                    return error(
                        412,
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                    );
                }
                let mut headers = vec![
                    ("etag".into(), quoted(&o.etag)),
                    ("content-type".into(), o.content_type.clone()),
                    (
                        "last-modified".into(),
                        "Wed, 01 Jan 2031 00:00:00 GMT".into(),
                    ),
                    ("accept-ranges".into(), "bytes".into()),
                ];
                let (status, data) = match (req.header)("range") {
                    Some(r) if req.method == "GET" => {
                        let from: usize = r
                            .trim_start_matches("bytes=")
                            .trim_end_matches('-')
                            .parse()
                            .unwrap_or(0);
                        if from >= o.data.len() {
                            return error(
                                416,
                                "InvalidRange",
                                "The requested range is not satisfiable",
                            );
                        }
                        headers.push((
                            "content-range".into(),
                            format!("bytes {from}-{}/{}", o.data.len() - 1, o.data.len()),
                        ));
                        (206, o.data[from..].to_vec())
                    }
                    _ => (200, o.data.clone()),
                };
                headers.push(("content-length".into(), data.len().to_string()));
                Answer {
                    status,
                    headers,
                    body: if req.method == "HEAD" {
                        Vec::new()
                    } else {
                        data
                    },
                }
            }
            "DELETE" if req.query.is_empty() => {
                s.buckets.get_mut(&bucket).expect("checked").remove(&key);
                empty(204, Vec::new())
            }
            _ => error(
                501,
                "NotImplemented",
                "the fake S3 does not serve this object call",
            ),
        }
    }
}

fn list(s: &State, bucket: &str, req: &Request<'_>) -> Answer {
    let Some(objects) = s.buckets.get(bucket) else {
        return error(404, "NoSuchBucket", "The specified bucket does not exist");
    };
    let q = |name: &str| req.query.get(name).cloned().unwrap_or_default();
    let (prefix, delimiter) = (q("prefix"), q("delimiter"));
    let max: usize = req
        .query
        .get("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let after = match req.query.get("continuation-token") {
        Some(t) => t.clone(),
        None => q("start-after"),
    };
    let mut contents = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last = None;
    let mut truncated = false;
    for (key, o) in objects.range::<String, _>((
        std::ops::Bound::Excluded(after.clone()),
        std::ops::Bound::Unbounded,
    )) {
        if !key.starts_with(&prefix) {
            continue;
        }
        if contents.len() + prefixes.len() >= max {
            truncated = true;
            break;
        }
        if !delimiter.is_empty()
            && let Some(i) = key[prefix.len()..].find(&delimiter)
        {
            let p = key[..prefix.len() + i + delimiter.len()].to_string();
            if prefixes.last() != Some(&p) {
                prefixes.push(p);
            }
            last = Some(key.clone());
            continue;
        }
        contents.push(format!(
            "<Contents><Key>{}</Key><LastModified>2031-01-01T00:00:00.000Z</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            xml_escape(key),
            o.etag,
            o.data.len()
        ));
        last = Some(key.clone());
    }
    let next = match (truncated, last) {
        (true, Some(k)) => format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            xml_escape(&k)
        ),
        _ => String::new(),
    };
    let common: String = prefixes
        .iter()
        .map(|p| {
            format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                xml_escape(p)
            )
        })
        .collect();
    xml(format!(
        "<ListBucketResult><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>{next}{}{common}</ListBucketResult>",
        xml_escape(bucket),
        xml_escape(&prefix),
        contents.len() + prefixes.len(),
        contents.concat()
    ))
}

fn multipart(s: &mut State, req: &Request<'_>, bucket: &str, key: &str, id: &str) -> Answer {
    let Some(upload) = s
        .uploads
        .get_mut(id)
        .filter(|u| u.bucket == bucket && u.key == key)
    else {
        return error(404, "NoSuchUpload", "The specified upload does not exist.");
    };
    match req.method {
        "PUT" => {
            let Some(n) = req
                .query
                .get("partNumber")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                return error(400, "InvalidArgument", "partNumber");
            };
            let data = payload(req);
            let etag = hex::encode(Md5::digest(&data));
            upload.parts.insert(n, (data, etag.clone()));
            empty(200, vec![("etag".into(), quoted(&etag))])
        }
        "POST" => {
            // The parts named by the request, in order, each with its ETag.
            let body = String::from_utf8_lossy(req.body);
            let mut named = Vec::new();
            for part in body.split("<Part>").skip(1) {
                let field = |tag: &str| {
                    part.split(&format!("<{tag}>"))
                        .nth(1)
                        .and_then(|r| r.split(&format!("</{tag}>")).next())
                        .map(|v| v.replace("&quot;", "\"").trim_matches('"').to_string())
                };
                let (Some(n), Some(etag)) = (
                    field("PartNumber").and_then(|n| n.parse::<u32>().ok()),
                    field("ETag"),
                ) else {
                    return error(400, "MalformedXML", "a Part without its PartNumber or ETag");
                };
                named.push((n, etag));
            }
            let mut data = Vec::new();
            let mut digests = Vec::new();
            for (n, etag) in &named {
                match upload.parts.get(n) {
                    Some((bytes, e)) if e == etag => {
                        data.extend_from_slice(bytes);
                        digests.extend(hex::decode(e).unwrap_or_default());
                    }
                    _ => {
                        return error(
                            400,
                            "InvalidPart",
                            "One or more of the specified parts could not be found.",
                        );
                    }
                }
            }
            let etag = format!("{}-{}", hex::encode(Md5::digest(&digests)), named.len());
            s.uploads.remove(id);
            s.buckets.get_mut(bucket).expect("checked").insert(
                key.to_string(),
                Object {
                    data,
                    etag: etag.clone(),
                    content_type: "binary/octet-stream".into(),
                },
            );
            xml(format!(
                "<CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>&quot;{etag}&quot;</ETag></CompleteMultipartUploadResult>",
                xml_escape(bucket),
                xml_escape(key)
            ))
        }
        "DELETE" => {
            s.uploads.remove(id);
            empty(204, Vec::new())
        }
        _ => error(
            501,
            "NotImplemented",
            "the fake S3 does not serve this upload call",
        ),
    }
}
