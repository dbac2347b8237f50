//! Every JSON document of the repository format, as read from storage: run manifest,
//! checkpoint, segment index and offset map, each with its embedded SHA-256. A document
//! that parses must serialise and parse back to itself.
#![no_main]
use kafka_backup_operator::format::manifest::{
    Checkpoint, OffsetMap, RunManifest, SegmentIndex, from_json, to_json,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug,
{
    if let Ok(doc) = from_json::<T>(data, "fuzz.json") {
        let again = to_json(&doc);
        let back = from_json::<T>(&again, "fuzz.json").expect("a written document reads back");
        assert_eq!(format!("{doc:?}"), format!("{back:?}"), "round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<RunManifest>(data);
    round_trip::<Checkpoint>(data);
    round_trip::<SegmentIndex>(data);
    round_trip::<OffsetMap>(data);
});
