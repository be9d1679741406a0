//! The pipeline against its model: seeded schedules of the real stages over the in-memory
//! services (see `batchops_tests::model`). `BATCHOPS_MODEL_SEEDS` sets how many (`make model
//! SEEDS=…`), `BATCHOPS_MODEL_SEED` replays one.

#[test]
fn every_schedule_ends_the_job_with_exact_accounting_and_a_matching_report() {
    let one = std::env::var("BATCHOPS_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let count: u64 = std::env::var("BATCHOPS_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let seeds: Vec<u64> = match one {
        Some(seed) => vec![seed],
        None => (1..=count).collect(),
    };
    match batchops_tests::model::run(seeds.iter().copied()) {
        Ok(n) => assert_eq!(n, seeds.len()),
        Err(violation) => panic!("{violation}"),
    }
}
