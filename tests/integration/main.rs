//! Integration tests against the real test peers of testenv/ (noida-db for Kafka, moto for
//! S3). Data checks use PyPI confluent-kafka through testenv/kbo_data.py.
mod support;

mod azure_gcs;
mod continuous;
mod encryption;
mod errors;
mod faults;
mod groups;
mod incremental;
mod integrity;
mod kms;
mod least_privilege;
mod object_lock;
mod offsets;
mod pitr_offsets;
mod plan_cmd;
mod recompress;
mod recoverability;
mod repartition;
mod restore_resume;
mod restore_shards;
mod resume;
mod roundtrip;
mod runs_cmd;
mod sasl;
mod shards;
mod target_fence;
mod tenancy;
mod timeline;
mod tls;
mod validation;
