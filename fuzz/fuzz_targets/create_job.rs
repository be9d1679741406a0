//! Fuzzes the API's CreateJob body: any bytes must come back as a parse error or a validation
//! error naming a field (the API's 400), or as a request that validates; never a panic.
#![no_main]

use batchops_core::job::spec::CreateJobRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<CreateJobRequest>(data) else { return };
    if let Err(invalid) = request.validate() {
        assert!(!invalid.field.is_empty() && !invalid.message.is_empty(), "{invalid:?}");
    }
});
