//! The platform copkg runs on, as packages' `bin/<os>-<arch>/` dirs name it.

/// The platform copkg runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `macos`, …
    pub os: String,
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    /// `gnu` or `musl` on Linux, empty elsewhere.
    pub libc: String,
}

impl Platform {
    /// The platform of this machine (detected once per process).
    pub fn current() -> Self {
        static CURRENT: std::sync::OnceLock<Platform> = std::sync::OnceLock::new();
        CURRENT.get_or_init(Platform::detect).clone()
    }

    fn detect() -> Self {
        let os = std::env::consts::OS.to_owned();
        let arch = std::env::consts::ARCH.to_owned();
        let libc = if os != "linux" {
            String::new()
        } else if std::fs::read_dir("/lib")
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("ld-musl-"))
            })
            .unwrap_or(false)
        {
            "musl".to_owned()
        } else {
            "gnu".to_owned()
        };
        Platform { os, arch, libc }
    }

    /// `os-arch`, as in `bin/<os>-<arch>/`.
    pub fn tag(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}
