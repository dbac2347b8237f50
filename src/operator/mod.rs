//! The Kubernetes side (issue 3, in progress): pure schedule arithmetic and the reconcile
//! decision for KafkaBackup. The controllers that call them are not wired yet.
pub mod decide;
pub mod schedule;
