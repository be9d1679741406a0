//! Fuzzes the chunk message parser (the worker's input) and the chunker (the planner's
//! output): any string must parse or fail cleanly; whatever parses must survive a round trip
//! unchanged; re-chunking its tasks under a byte bound must keep every task, in order, and
//! never emit a message over the bound unless it holds a single task.
#![no_main]

use batchops_core::chunk::{Chunk, Chunker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&bound, body)) = data.split_first() else { return };
    let Ok(body) = std::str::from_utf8(body) else { return };
    let Ok(chunk) = Chunk::from_body(body) else { return };
    let again = serde_json::to_string(&chunk).expect("a parsed chunk serialises");
    assert_eq!(Chunk::from_body(&again).expect("and parses again"), chunk);

    let max_bytes = 64 + usize::from(bound) * 8;
    let mut chunker = Chunker::with_max_bytes(chunk.job_id.clone(), 1 + usize::from(bound % 7), 0, max_bytes);
    let mut out: Vec<Chunk> = chunk.tasks.iter().cloned().filter_map(|t| chunker.push(t)).collect();
    out.extend(chunker.finish());
    for (n, c) in out.iter().enumerate() {
        assert_eq!(c.chunk, n as u64);
        let len = serde_json::to_vec(c).expect("serialises").len();
        assert!(len <= max_bytes || c.tasks.len() == 1, "{len} > {max_bytes}: {c:?}");
    }
    let tasks: Vec<_> = out.into_iter().flat_map(|c| c.tasks).collect();
    assert_eq!(tasks, chunk.tasks);
});
