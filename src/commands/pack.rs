//! `copkg pack DIR --coordinate G:A:V --out REPO [--sign SECRET_KEY_FILE]`

use super::{Context, Result, ResultExt, layouts, out, usage};
use crate::cli::PackArgs;
use crate::coordinate::PackageCoordinate;

/// Packs a directory into the repository layout the policy gives.
pub fn run(ctx: &Context, args: &PackArgs) -> Result {
    let coordinate: PackageCoordinate = args.coordinate.parse()?;
    if coordinate.digest.is_some() {
        return Err(usage(
            "pack takes group:artifact:version without a digest pin",
        ));
    }
    let host = ctx.host()?;
    let layout = layouts(&host, std::slice::from_ref(&coordinate))?.remove(0);
    // The key is opened (and its password asked for) before any work.
    let signer = args.sign.as_deref().map(open_key).transpose()?;
    let signature_path = format!("{}{}", layout.archive, crate::signature::SIGNATURE_SUFFIX);
    let target = crate::pack::PackTarget {
        archive: &layout.archive,
        sidecar: &layout.sha256,
        signature: signer.as_ref().map(|s| (signature_path.as_str(), s)),
    };
    let packed = crate::pack::pack(&args.dir, &args.out, target, args.force)
        .with_context(|| format!("cannot pack {coordinate}"))?;
    super::warn_unreadable(ctx, &coordinate.id(), &packed.unreadable);
    if ctx.settings.json {
        out(&serde_json::json!({
            "coordinate": coordinate.id(), "archive": packed.archive,
            "sha256_file": packed.sidecar, "sha256": packed.sha256, "unchanged": packed.unchanged,
            "signature_file": packed.signature,
            "signed_by": signer.as_ref().map(|s| s.id.to_string()),
            "changed": !packed.unchanged,
        })
        .to_string())?;
    } else {
        out(&format!(
            "packed {} into {} (sha256 {}{})",
            coordinate.id(),
            packed.archive.display(),
            packed.sha256,
            signer
                .as_ref()
                .map(|s| format!(", signed by key {}", s.id))
                .unwrap_or_default()
        ))?;
    }
    Ok(())
}

/// Reads and opens the secret key to sign with; an encrypted one with
/// `COPKG_KEY_PASSWORD` or a password asked on a terminal.
fn open_key(path: &std::path::Path) -> Result<crate::signature::Signer> {
    const KEY_FILE_LIMIT: u64 = 64 * 1024;
    // A key file that is not there, or not a file, is a bad argument.
    let bytes = crate::bounded::read_file(path, KEY_FILE_LIMIT).map_err(|err| {
        usage(format!(
            "cannot read the secret key {}: {err}",
            path.display()
        ))
    })?;
    let key = crate::signature::SecretKeyFile::parse(&path.display().to_string(), &bytes)?;
    let password = match key.is_encrypted() {
        true => super::keygen::password_for_key(path)?,
        false => None,
    };
    Ok(key.open(password.as_deref())?)
}
