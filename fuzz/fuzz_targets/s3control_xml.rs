//! Fuzzes the S3 Control wire's CreateJob body: any bytes must come back as an XML error
//! naming what is wrong, a serde error, or a request that validates (or names the bad field);
//! never a panic. A decoded body must also survive being encoded again.
#![no_main]

use batchops_api::s3control::xml;
use batchops_core::job::spec::CreateJobRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = match xml::decode(data, "CreateJobRequest") {
        Ok(v) => v,
        Err(e) => {
            assert!(!e.message.is_empty(), "{e:?}");
            return;
        }
    };
    let _ = xml::encode("CreateJobRequest", "CreateJobRequest", &value);
    let Ok(request) = serde_json::from_value::<CreateJobRequest>(value) else { return };
    if let Err(invalid) = request.validate() {
        assert!(!invalid.field.is_empty() && !invalid.message.is_empty(), "{invalid:?}");
    }
});
