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

/// Why an account could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such user or group.
    #[error("no such {what} `{name}`")]
    Unknown {
        /// "user" or "group".
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// Only root may run services as another user.
    #[error(
        "only root can run a service as another user (`{0}`); without root, services run as the caller"
    )]
    NotRoot(String),
}

impl crate::exit::Coded for AccountError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            AccountError::Unknown { .. } | AccountError::NotRoot(_) => crate::exit::ExitCode::Usage,
        }
    }
}

/// What a record keeps of the account a service runs as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountRecord {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
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

    /// The account `NAME[:GROUP]` names (names or numeric ids); its group
    /// is the user's primary group unless one is given. Only root may name
    /// another user than itself.
    pub fn parse(spec: &str) -> Result<Account, AccountError> {
        use nix::unistd::{Gid, Group, Uid, User};
        let (user, group) = match spec.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (spec, None),
        };
        let unknown = |what, name: &str| AccountError::Unknown {
            what,
            name: name.to_owned(),
        };
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten(),
            Err(_) => User::from_name(user).ok().flatten(),
        }
        .ok_or_else(|| unknown("user", user))?;
        let gid = match group {
            None => found.gid.as_raw(),
            Some(group) => match group.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => Group::from_name(group)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
                    .ok_or_else(|| unknown("group", group))?,
            },
        };
        let me = nix::unistd::geteuid();
        if !me.is_root() && found.uid != me {
            return Err(AccountError::NotRoot(spec.to_owned()));
        }
        let _ = Gid::from_raw(gid);
        Ok(Account {
            uid: found.uid.as_raw(),
            gid,
            name: Some(found.name),
            home: Some(found.dir),
        })
    }

    /// `nobody` (from the password database, else uid and gid 65534): the
    /// account with no rights, for reading what needs none.
    pub fn nobody() -> Account {
        match nix::unistd::User::from_name("nobody") {
            Ok(Some(user)) => Account::from_ids(user.uid.as_raw(), user.gid.as_raw()),
            _ => Account::from_ids(65534, 65534),
        }
    }

    /// The account copkg itself runs as.
    pub fn own() -> Account {
        Account::from_ids(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }

    /// What a record keeps of it.
    pub fn record(&self) -> AccountRecord {
        AccountRecord {
            uid: self.uid,
            gid: self.gid,
        }
    }

    /// Its name, or its uid when it has none.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.uid.to_string())
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

static RUN_AS: std::sync::Mutex<Option<Account>> = std::sync::Mutex::new(None);

/// While it lives, every script and service copkg starts runs as the
/// account (when copkg must switch to it) with its environment.
#[derive(Debug)]
pub struct RunAs {
    previous: Option<Account>,
}

impl RunAs {
    /// Starts running what copkg starts as `account` (none: as copkg).
    pub fn start(account: Option<Account>) -> RunAs {
        let mut current = RUN_AS.lock().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::replace(&mut *current, account);
        RunAs { previous }
    }
}

impl Drop for RunAs {
    fn drop(&mut self) {
        *RUN_AS.lock().unwrap_or_else(|e| e.into_inner()) = self.previous.take();
    }
}

/// The account what copkg starts now runs as: the one a [`RunAs`] set, else
/// copkg's own.
pub fn current() -> Account {
    RUN_AS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(Account::own)
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
