//! Fuzzes the chunk message parser (the worker's input): any string must parse or fail
//! cleanly, and whatever parses must survive a round trip unchanged.
#![no_main]

use batchops_core::chunk::Chunk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    if let Ok(chunk) = Chunk::from_body(body) {
        let again = serde_json::to_string(&chunk).expect("a parsed chunk serialises");
        assert_eq!(Chunk::from_body(&again).expect("and parses again"), chunk);
    }
});
