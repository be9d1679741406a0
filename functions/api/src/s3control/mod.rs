//! S3 Control's REST-XML wire for the eight job operations, beside the JSON API: [`ops`]
//! serves them, [`xml`] converts between the wire and the JSON the job service takes, walking
//! the shapes of [`model`] (generated from botocore's S3 Control model).

pub mod model;
pub mod ops;
pub mod xml;
