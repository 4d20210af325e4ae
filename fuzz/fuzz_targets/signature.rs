//! minisign public keys and `.minisig` signatures.
//!
//! The input is a public key line (as the second line of a `.pub` file
//! holds it, and a config's `publicKeys` entry), a newline, then a
//! `.minisig`. When the key parses it is pinned, and the signature goes
//! the way of a download: `SignaturePolicy::accept`, then a streamed check
//! over [`ARCHIVE`], named [`FILE_NAME`]. The seeds are signatures of that
//! archive by their own key, so the fuzzer starts from the ones that verify.
//! The whole input is also tried as a secret key file.

#![no_main]

use copkg::signature::{
    SecretKeyFile, SignatureMode, SignaturePolicy, TrustedKey, file_named_elsewhere,
    parse_signature,
};
use libfuzzer_sys::fuzz_target;

/// What every seed signature signs.
const ARCHIVE: &[u8] = b"copkg fuzz archive\n";
/// The file name the seeds' trusted comments give.
const FILE_NAME: &str = "hello-1.0.0.tar.gz";

fuzz_target!(|data: &[u8]| {
    let _ = SecretKeyFile::parse("fuzz.key", data).map(|key| key.is_encrypted());
    let (key_line, minisig) = match data.iter().position(|&b| b == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (data, &[][..]),
    };
    let parsed = parse_signature(minisig);
    if let Ok(signature) = &parsed {
        assert!(
            !signature
                .trusted_comment
                .chars()
                .any(|c| c.is_control() && c != '\t'),
            "control characters in an accepted trusted comment"
        );
        let _ = file_named_elsewhere(&signature.trusted_comment, FILE_NAME);
    }
    let Ok(key) = std::str::from_utf8(key_line).map(TrustedKey::parse) else {
        return;
    };
    let Ok(key) = key else {
        return;
    };
    let policy = SignaturePolicy {
        mode: SignatureMode::Required,
        keys: vec![key.clone()],
    };
    let url = "file:///repo/hello-1.0.0.tar.gz.minisig";
    let Ok(signed) = policy.accept(minisig, url, FILE_NAME) else {
        return;
    };
    assert!(parsed.is_ok(), "accepted what parse_signature refused");
    assert_eq!(signed.key.id, key.id);
    let Ok(mut check) = signed.check() else {
        return;
    };
    let (head, tail) = ARCHIVE.split_at(ARCHIVE.len() / 2);
    check.update(head);
    check.update(tail);
    if let Ok(id) = check.finish("file:///repo/hello-1.0.0.tar.gz") {
        assert_eq!(id, key.id);
        assert!(file_named_elsewhere(&signed.signature.trusted_comment, FILE_NAME).is_none());
    }
});
