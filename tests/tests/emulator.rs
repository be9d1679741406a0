//! The local emulator behaves like DynamoDB where the accounting depends on it: requests are
//! isolated, so a cancelled transaction never erases what other requests wrote meanwhile.
//! (Plain moto restores a snapshot of its tables when a transaction is cancelled; the harness
//! serves moto through `infra/emulator.py`, which isolates DynamoDB requests.)

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem, Update,
};
use batchops_tests::{sdk, unique};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The worker's commit, reduced to its shape: put the chunk record if absent and add one to
/// the job's counter, in one transaction. Returns whether this delivery won.
async fn count_once(client: &aws_sdk_dynamodb::Client, table: &str, chunk: u32) -> bool {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s("JOB"))
        .item("sk", s(&format!("CHUNK#{chunk:06}")))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap();
    let add = Update::builder()
        .table_name(table)
        .key("pk", s("JOB"))
        .key("sk", s("JOB"))
        .update_expression("ADD chunks_done :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .unwrap();
    let result = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .transact_items(TransactWriteItem::builder().update(add).build())
        .send()
        .await;
    match result {
        Ok(_) => true,
        Err(e) => {
            let code = e.as_service_error().and_then(|e| {
                aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e).map(str::to_string)
            });
            assert_eq!(
                code.as_deref(),
                Some("TransactionCanceledException"),
                "only the duplicate's condition may fail: {e:?}"
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn cancelled_transactions_never_erase_concurrent_writes() {
    let config = sdk().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("isolation");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // 150 chunks, each delivered three times at once, from 12 concurrent senders.
    const CHUNKS: u32 = 150;
    const DELIVERIES: u32 = 3;
    let mut set = tokio::task::JoinSet::new();
    for lane in 0..12u32 {
        let (client, table) = (client.clone(), table.clone());
        set.spawn(async move {
            let mut won = 0u32;
            for i in 0..CHUNKS * DELIVERIES {
                if i % 12 == lane && count_once(&client, &table, i / DELIVERIES).await {
                    won += 1;
                }
            }
            won
        });
    }
    let mut winners = 0;
    while let Some(won) = set.join_next().await {
        winners += won.unwrap();
    }
    let job = client
        .get_item()
        .table_name(&table)
        .key("pk", s("JOB"))
        .key("sk", s("JOB"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let counted: u32 = job
        .item()
        .and_then(|i| i.get("chunks_done"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(winners, CHUNKS, "each chunk won by exactly one delivery");
    assert_eq!(
        counted, CHUNKS,
        "the counter holds every winning delivery's add"
    );
}
