//! The config file: `Settings::from_config_bytes` resolves one file's
//! bytes as `--config` would, without the environment or the file system.
//! Whatever it says, resolving ends in settings or an error, and an error
//! never repeats a password the file holds (shared/SECURITY.md E5).

#![no_main]

use std::path::Path;

use copkg::settings::Settings;
use libfuzzer_sys::fuzz_target;

/// The passwords of a config: long enough that an error holding one by
/// chance (a key name, a path) is not mistaken for a leak.
fn passwords(data: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut add = |v: &serde_json::Value| {
        if let Some(p) = v.get("password").and_then(|p| p.as_str())
            && p.len() >= 12
        {
            found.push(p.to_owned());
        }
    };
    add(&value);
    if let Some(repos) = value.get("repositories").and_then(|r| r.as_array()) {
        repos.iter().for_each(&mut add);
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/fuzz/config.json");
    let Err(err) = Settings::from_config_bytes(path, data, Path::new("/fuzz/home")) else {
        return;
    };
    // The whole cause chain, as main prints it.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    for password in passwords(data) {
        assert!(!text.contains(&password), "a password in the error: {text}");
    }
});
