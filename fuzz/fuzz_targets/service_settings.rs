//! Hook results: `ServiceSettings::from_json` on whatever JSON a package's
//! service.lua or the site's `service_settings` hook may return. Settings it
//! accepts are kept in the service's record and read back from there, so
//! they must survive that round trip.

#![no_main]

use copkg::declared::ServiceSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(settings) = ServiceSettings::from_json(value, "fuzz") else {
        return;
    };
    let _ = settings.stop_schedule();
    let _ = settings.stop_time();
    let _ = settings.env_pairs();
    let recorded = serde_json::to_value(&settings).expect("settings serialize");
    if let Err(err) = ServiceSettings::from_json(recorded.clone(), "record") {
        panic!("accepted settings refused when read back from {recorded}: {err}");
    }
});
