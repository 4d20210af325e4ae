//! The `.tar.gz` reader: `extract::unpack_tar_gz` into a fresh temp dir.
//!
//! An input that starts with the gzip magic is fed as it is (so the gzip
//! layer is fuzzed: members, CRCs, padding); any other input is a tar
//! stream, gzipped here first, so that mutations reach the tar headers
//! instead of dying in a CRC check. Whatever the outcome, nothing may be
//! written beside the target dir; when the archive is accepted, the tree
//! must obey the rules of shared/SECURITY.md part A.

#![no_main]

use std::borrow::Cow;
use std::io::Write;

use copkg::extract::{Limits, unpack_tar_gz};
use copkg_fuzz::{FUZZ_LIMITS, Scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gz: Cow<[u8]> = if data.starts_with(&[0x1f, 0x8b]) {
        Cow::Borrowed(data)
    } else {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("gzip into memory");
        Cow::Owned(encoder.finish().expect("gzip into memory"))
    };
    let scratch = Scratch::new();
    let limits: Limits = FUZZ_LIMITS;
    let result = unpack_tar_gz(&gz[..], scratch.dest(), &limits);
    scratch.assert_nothing_beside_dest();
    if let Ok(unpacked) = result {
        assert_eq!(unpacked.compressed_bytes, gz.len() as u64);
        scratch.assert_safe_tree(&unpacked.unpacked, &limits);
    }
});
