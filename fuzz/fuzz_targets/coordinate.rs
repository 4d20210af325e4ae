//! Package coordinates (`group:artifact:version[@sha256:HEX]`) and service
//! coordinates (`instance.service.user.cell`): what is accepted is made of
//! safe path components and prints back to itself.

#![no_main]

use copkg::coordinate::{PackageCoordinate, ServiceCoordinate};
use libfuzzer_sys::fuzz_target;

/// A part that becomes a path component must be one, and a plain one.
fn assert_plain(part: &str, input: &str) {
    assert!(!part.is_empty(), "empty part accepted in {input:?}");
    assert!(
        part != "." && part != "..",
        "{part:?} accepted in {input:?}"
    );
    assert!(
        !part.contains(['/', '\0', ':', '@']) && !part.chars().any(char::is_whitespace),
        "{part:?} accepted in {input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(coordinate) = text.parse::<PackageCoordinate>() {
        for label in coordinate.group_labels() {
            assert_plain(label, text);
        }
        assert_plain(&coordinate.artifact, text);
        assert_plain(&coordinate.version, text);
        if let Some(digest) = &coordinate.digest {
            assert!(
                digest.len() == 64
                    && digest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        let printed = coordinate.to_string();
        let again: PackageCoordinate = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, refused: {e}"));
        assert_eq!(again, coordinate);
        assert_eq!(again.id(), printed.split('@').next().unwrap_or(""));
    }
    if let Ok(service) = text.parse::<ServiceCoordinate>() {
        for label in [
            &service.instance,
            &service.service,
            &service.user,
            &service.cell,
        ] {
            assert_plain(label, text);
            assert!(!label.contains('.'), "{label:?} accepted in {text:?}");
        }
        let printed = service.to_string();
        assert_eq!(printed, text, "a service coordinate prints as given");
        assert_eq!(printed.parse::<ServiceCoordinate>().as_ref(), Ok(&service));
    }
});
