//! The install manifest (`store::read_manifest`), line by line as `verify`
//! reads one: every entry it yields has a plain relative path, and the
//! paths come in strictly increasing order.

#![no_main]

use std::path::{Component, Path};

use copkg::store::read_manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = read_manifest(Path::new("/fuzz/.copkg-manifest.json"), data) else {
        return;
    };
    let mut previous: Option<&Path> = None;
    for entry in &entries {
        let path = Path::new(entry.path());
        assert!(!entry.path().is_empty(), "an empty path accepted");
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "{path:?} accepted"
        );
        if let Some(previous) = previous {
            assert!(previous < path, "{previous:?} before {path:?}");
        }
        previous = Some(path);
    }
});
