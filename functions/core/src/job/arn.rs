//! S3 ARNs and bucket names: how a request names buckets and objects.

/// Splits `arn:aws:s3:::bucket/key` into bucket and key.
pub fn parse_object_arn(arn: &str) -> Option<(String, String)> {
    let rest = strip_s3_arn(arn)?;
    let (bucket, key) = rest.split_once('/')?;
    (valid_bucket_name(bucket) && !key.is_empty()).then(|| (bucket.to_string(), key.to_string()))
}

/// The bucket name of `arn:aws:s3:::bucket` (a bare bucket name is accepted too).
pub fn parse_bucket_arn(arn: &str) -> Option<String> {
    let name = strip_s3_arn(arn).unwrap_or(arn);
    valid_bucket_name(name).then(|| name.to_string())
}

fn strip_s3_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(':')?;
    rest.strip_prefix("s3:::")
}

/// S3's general-purpose bucket naming rules (3–63 chars of a-z, 0-9, `.`, `-`; starts and
/// ends with a letter or digit).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_parse() {
        assert_eq!(
            parse_object_arn("arn:aws:s3:::b-1/a/b c.txt"),
            Some(("b-1".into(), "a/b c.txt".into()))
        );
        assert_eq!(parse_object_arn("arn:aws:s3:::b-1/"), None);
        assert_eq!(
            parse_bucket_arn("arn:aws:s3:::my.bucket"),
            Some("my.bucket".into())
        );
        assert_eq!(parse_bucket_arn("Bad_Bucket"), None);
    }
}
