//! `copkg keygen --out PREFIX`, and the key passwords `keygen` and `pack
//! --sign` read: `COPKG_KEY_PASSWORD`, else the first line of the file
//! `COPKG_KEY_PASSWORD_FILE` names, else a prompt on a terminal.

use std::io::IsTerminal;

use super::{Context, Result, out, usage};
use crate::cli::KeygenArgs;

/// The environment variable a key's password may come from (CI).
pub const PASSWORD_VAR: &str = "COPKG_KEY_PASSWORD";
/// The environment variable naming a file whose first line is the password
/// (CI secrets mounted as files).
pub const PASSWORD_FILE_VAR: &str = "COPKG_KEY_PASSWORD_FILE";
/// Largest password file read.
const PASSWORD_FILE_LIMIT: u64 = 64 * 1024;

/// Whether a password can be asked for: stdin and stderr on a terminal.
fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// `COPKG_KEY_PASSWORD`, else the first line of the file
/// `COPKG_KEY_PASSWORD_FILE` names, if either is set; an empty one is refused.
fn password_from_env() -> Result<Option<String>> {
    match std::env::var_os(PASSWORD_VAR) {
        None => password_from_file(),
        Some(value) if value.is_empty() => Err(usage(format!("{PASSWORD_VAR} is empty"))),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| usage(format!("{PASSWORD_VAR} is not UTF-8"))),
    }
}

fn password_from_file() -> Result<Option<String>> {
    let Some(path) = std::env::var_os(PASSWORD_FILE_VAR) else {
        return Ok(None);
    };
    let path = std::path::PathBuf::from(path);
    let bytes = crate::bounded::read_file(&path, PASSWORD_FILE_LIMIT).map_err(|e| {
        usage(format!(
            "{PASSWORD_FILE_VAR}: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        usage(format!(
            "{PASSWORD_FILE_VAR}: {} is not UTF-8",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(usage(format!(
            "{PASSWORD_FILE_VAR}: {} holds no password on its first line",
            path.display()
        )));
    }
    Ok(Some(line.to_owned()))
}

fn prompt(text: &str) -> Result<String> {
    rpassword::prompt_password(text).map_err(|source| super::Error::Io {
        action: "cannot read the password from the terminal",
        source,
    })
}

/// The password to encrypt a new secret key with: `COPKG_KEY_PASSWORD`,
/// else one asked twice on a terminal (empty: none); `None` without either,
/// for an unencrypted key.
fn password_for_new_key(ctx: &Context) -> Result<Option<String>> {
    if let Some(password) = password_from_env()? {
        return Ok(Some(password));
    }
    if !on_terminal() {
        ctx.progress(&format!(
            "warning: no terminal to ask for a password and {PASSWORD_VAR} is not set: \
             the secret key is written unencrypted (as minisign -W); keep it safe"
        ));
        return Ok(None);
    }
    let password = prompt("Password for the new secret key (empty for none): ")?;
    if password.is_empty() {
        ctx.progress("warning: empty password: the secret key is written unencrypted");
        return Ok(None);
    }
    if prompt("Password again: ")? != password {
        return Err(usage("the passwords do not match"));
    }
    Ok(Some(password))
}

/// The password to open an encrypted secret key `path` with:
/// `COPKG_KEY_PASSWORD`, else one asked on a terminal; `None` when neither
/// can be had.
pub fn password_for_key(path: &std::path::Path) -> Result<Option<String>> {
    if let Some(password) = password_from_env()? {
        return Ok(Some(password));
    }
    if !on_terminal() {
        return Ok(None);
    }
    prompt(&format!("Password for {}: ", path.display())).map(Some)
}

/// Makes a key pair at `PREFIX.pub` and `PREFIX.key`.
pub fn run(ctx: &Context, args: &KeygenArgs) -> Result {
    if args.out.as_os_str().is_empty() {
        return Err(usage("--out takes a path prefix"));
    }
    // Refused before a password is asked for.
    crate::signature::key_pair_paths(&args.out)?;
    let password = password_for_new_key(ctx)?;
    let written = crate::signature::write_key_pair(&args.out, password.as_deref())?;
    let pair = &written.pair;
    if ctx.settings.json {
        out(&serde_json::json!({
            "key_id": pair.id.to_string(), "public_key": pair.public_base64,
            "public_key_file": written.public_path, "secret_key_file": written.secret_path,
            "encrypted": password.is_some(), "changed": true,
        })
        .to_string())?;
    } else {
        out(&format!(
            "made key {} ({}): secret key {}, public key {}",
            pair.id,
            if password.is_some() {
                "encrypted"
            } else {
                "not encrypted"
            },
            written.secret_path.display(),
            written.public_path.display()
        ))?;
        out(&format!(
            "pin it in the config: \"publicKeys\": [\"{}\"]",
            pair.public_base64
        ))?;
    }
    Ok(())
}
