//! The account a service's files belong to, and the clean environment a
//! process copkg starts as that account gets: copkg's own variables and
//! credentials never pass to it (SECURITY.md F7).

use std::ffi::OsString;
use std::path::PathBuf;

/// A user (and group) to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// The user's name, from the password database.
    pub name: Option<String>,
    /// The user's home dir, from the password database.
    pub home: Option<PathBuf>,
}

/// The search path every script and service gets.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Account {
    /// The account with user id `uid`: its name and home from the password
    /// database where it has an entry, and `gid` as its group.
    pub fn from_ids(uid: u32, gid: u32) -> Account {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        Account {
            uid,
            gid,
            name: user.as_ref().map(|u| u.name.clone()),
            home: user.map(|u| u.dir),
        }
    }

    /// Whether copkg must switch to this account to act as it: it runs as
    /// root and the account is another.
    pub fn needs_switch(&self) -> bool {
        nix::unistd::geteuid().is_root() && self.uid != 0
    }

    /// The environment a process run as this account starts with: `PATH`,
    /// `LANG`, `HOME`, `USER` and `LOGNAME`, nothing of copkg's own.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        let mut env = vec![
            ("PATH".into(), PATH.into()),
            ("LANG".into(), "C.UTF-8".into()),
            (
                "HOME".into(),
                self.home
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/"))
                    .into_os_string(),
            ),
        ];
        if let Some(name) = &self.name {
            env.push(("USER".into(), name.into()));
            env.push(("LOGNAME".into(), name.into()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_from_the_password_database() {
        let root = Account::from_ids(0, 0);
        assert_eq!(root.name.as_deref(), Some("root"));
        assert!(!root.needs_switch());
        let env = root.environment();
        assert_eq!(env[0], ("PATH".into(), PATH.into()));
        assert!(
            env.iter()
                .all(|(k, _)| !k.to_string_lossy().starts_with("COPKG"))
        );
        let unknown = Account::from_ids(4_000_000, 4_000_000);
        assert_eq!(unknown.name, None);
        assert!(unknown.environment().contains(&("HOME".into(), "/".into())));
    }
}
