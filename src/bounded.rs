//! Whole-file reads with a size bound. Every file copkg reads whole (config
//! and CA files, site and package scripts, store markers) goes through
//! [`read_file`]: a huge file, a FIFO or a device where a small file is
//! expected costs at most the bound, never a hang or all the memory.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads the regular file at `path` whole, if it holds at most `limit`
/// bytes. It is opened non-blocking and judged on the descriptor, so a FIFO
/// or a device is refused without being read; at most `limit + 1` bytes
/// are read, whatever its size claims. The errors say what is wrong, not
/// where: callers name the file.
pub fn read_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_refuses_the_rest_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_file(&path, 10).unwrap(), b"0123456789");
        let err = read_file(&path, 9).unwrap_err();
        assert_eq!(err.to_string(), "larger than 9 bytes");

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let err = read_file(path, 1 << 20).unwrap_err();
            assert_eq!(err.to_string(), "not a regular file", "{}", path.display());
        }
        let err = read_file(&dir.path().join("missing"), 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
