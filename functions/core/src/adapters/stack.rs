//! Creates one stack's resources — the table, the queues with their dead-letter queues and the
//! bucket — when they are missing. `batchops dev` and the integration tests use it against the
//! emulator; in AWS, `template.yaml` creates the same resources.

use super::Clients;
use crate::config::StackNames;
use crate::{Error, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// Receives of one message before SQS moves it to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;

/// Names derived from a stack name: `<stack>-jobs`, `<stack>-bucket`, `<stack>-plan` …
pub async fn ensure_stack(
    clients: &Clients,
    stack: &str,
    visibility_timeout_secs: u32,
) -> Result<StackNames> {
    let table = format!("{stack}-jobs");
    ensure_table(&clients.dynamodb, &table).await?;
    let bucket = format!("{stack}-bucket");
    ensure_bucket(&clients.s3_control, &bucket).await?;
    let mut urls = Vec::new();
    let mut work_dlq_urls = Vec::new();
    for name in ["plan", "work", "finalize", "intake", "work-high"] {
        let queue = format!("{stack}-{name}");
        let (url, dlq) = ensure_queue(&clients.sqs, &queue, visibility_timeout_secs).await?;
        if name.starts_with("work") {
            work_dlq_urls.push(dlq);
        }
        urls.push(url);
    }
    let [
        plan_queue_url,
        work_queue_url,
        finalize_queue_url,
        intake_queue_url,
        work_high_queue_url,
    ] = <[String; 5]>::try_from(urls).expect("five queues");
    ensure_intake_notification(clients, &bucket, &intake_queue_url).await?;
    Ok(StackNames {
        table,
        bucket,
        plan_queue_url,
        work_queue_url,
        work_high_queue_url,
        finalize_queue_url,
        intake_queue_url,
        work_dlq_urls,
    })
}

/// S3 → intake queue for objects created under `intake/` (what the template's bucket
/// notification does in AWS).
async fn ensure_intake_notification(
    clients: &Clients,
    bucket: &str,
    queue_url: &str,
) -> Result<()> {
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let arn = queue_arn(&clients.sqs, queue_url).await?;
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(
                    FilterRule::builder()
                        .name(FilterRuleName::Prefix)
                        .value(crate::intake::INTAKE_PREFIX)
                        .build(),
                )
                .build(),
        )
        .build();
    let queue = QueueConfiguration::builder()
        .id("batchops-intake")
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(filter)
        .build()
        .map_err(|e| Error::Record(e.to_string()))?;
    let put = clients
        .s3_control
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await;
    // An S3-compatible server without notifications (s3s-fs, used by `make bench` for its
    // data plane) runs everything but the S3 intake.
    if let Err(e) = &put
        && e.raw_response().is_some_and(|r| r.status().as_u16() == 501)
    {
        tracing::warn!(
            bucket,
            "this S3 server has no bucket notifications: intake disabled"
        );
        return Ok(());
    }
    put.map_err(|e| super::s3::s3_error("PutBucketNotificationConfiguration", bucket, "", e))?;
    Ok(())
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| Error::sqs("GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| Error::Sqs {
            op: "GetQueueAttributes",
            source: "no QueueArn".into(),
        })
}

/// Creates the job table as the template does (both indexes, TTL) unless it exists.
pub async fn ensure_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    if ddb.describe_table().table_name(table).send().await.is_ok() {
        return Ok(());
    }
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type set")
    };
    let key = |name: &str, kt: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kt)
            .build()
            .expect("name and type set")
    };
    // As the template: the ListJobs index and the sparse open-jobs index, both projecting only
    // a job's summary.
    let index = |name: &str, hash: &str| {
        let mut projection = Projection::builder().projection_type(ProjectionType::Include);
        for a in super::dynamo::SUMMARY_ATTRIBUTES {
            projection = projection.non_key_attributes(a);
        }
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key("gsi1sk", KeyType::Range))
            .projection(projection.build())
            .build()
            .map_err(|e| Error::Record(e.to_string()))
    };
    let jobs_index = index(super::dynamo::JOBS_INDEX, "gsi1pk")?;
    let open_index = index(super::dynamo::OPEN_INDEX, "open")?;
    let created = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("gsi1pk"))
        .attribute_definitions(attr("gsi1sk"))
        .attribute_definitions(attr("open"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(jobs_index)
        .global_secondary_indexes(open_index)
        .send()
        .await;
    match created {
        Ok(_) => {
            // As the template: ended jobs expire 90 days on (`expires_at`).
            ddb.update_time_to_live()
                .table_name(table)
                .time_to_live_specification(
                    aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                        .attribute_name("expires_at")
                        .enabled(true)
                        .build()
                        .map_err(|e| Error::Record(e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| Error::dynamo("UpdateTimeToLive", e))?;
            Ok(())
        }
        // Another process created it between our describe and create.
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::dynamo("CreateTable", e)),
    }
}

async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    if s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|se| {
                se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(super::s3::s3_error("CreateBucket", bucket, "", e)),
    }
}

/// Creates `<name>-dlq` and `<name>` with a redrive policy to it; returns both URLs.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_secs: u32,
) -> Result<(String, String)> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| Error::sqs("CreateQueue", e))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
            .to_string();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| Error::sqs("CreateQueue", e))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    Ok((url, dlq_url))
}
