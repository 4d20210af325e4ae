//! The `.sha256` checksum sidecar (`store::parse_sidecar`): what it accepts
//! is 64 lowercase hex digits that the input holds, in some case.

#![no_main]

use copkg::store::parse_sidecar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(digest) = parse_sidecar(data) {
        assert_eq!(digest.len(), 64);
        assert!(
            digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let text = std::str::from_utf8(data).expect("accepted, so UTF-8");
        assert!(
            text.to_ascii_lowercase().contains(&digest),
            "{digest} is not in {text:?}"
        );
    }
});
