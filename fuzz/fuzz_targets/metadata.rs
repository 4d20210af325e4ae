//! A repository's `maven-metadata.xml` (`metadata::parse`), which comes
//! from a server: what it accepts lists only valid coordinate versions,
//! and renders back to a document that parses to the same metadata.

#![no_main]

use copkg::metadata::{parse, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(metadata) = parse(data, "fuzz") {
        for version in &metadata.versions {
            let coordinate = format!("g:a:{version}");
            assert!(
                coordinate
                    .parse::<copkg::coordinate::PackageCoordinate>()
                    .is_ok(),
                "{version:?}"
            );
        }
        let again = parse(render(&metadata).as_bytes(), "rendered").expect("rendered parses");
        assert_eq!(again.versions, metadata.versions);
        assert_eq!(again.latest, metadata.latest);
        assert_eq!(again.release, metadata.release);
    }
});
