//! The `.zip` reader: `extract::unpack_zip` of the input, as a file, into a
//! fresh temp dir. Nothing may be written beside the target dir; when the
//! archive is accepted, the tree must obey the same rules as a tarball's.

#![no_main]

use std::io::Write;

use copkg::extract::unpack_zip;
use copkg_fuzz::{FUZZ_LIMITS, Scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = Scratch::new();
    // An unnamed temp file: the reader wants a file, and nothing named may
    // sit beside the target dir.
    let mut archive = tempfile::tempfile().expect("a temp file");
    archive.write_all(data).expect("the archive written");
    let result = unpack_zip(&archive, scratch.dest(), &FUZZ_LIMITS);
    scratch.assert_nothing_beside_dest();
    if let Ok(unpacked) = result {
        scratch.assert_safe_tree(&unpacked, &FUZZ_LIMITS);
    }
});
