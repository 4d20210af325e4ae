//! `copkg` package-store functions for scripts: install, install_many,
//! uninstall, installed, resolve.

use mlua::{Lua, Table};

use super::policy::Policy;
use crate::coordinate::PackageCoordinate;
use crate::exit::Coded;
use crate::journal::Outcome;
use crate::repo::{Fetcher, ProxySettings};
use crate::settings::Settings;
use crate::store::{Installed, PackageState, StoreError};

/// The hooks table of the state, for functions that need the policy.
pub(crate) struct Hooks(pub Table);

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

fn settings(lua: &Lua, function: &str) -> mlua::Result<Settings> {
    lua.app_data_ref::<Settings>()
        .map(|s| s.clone())
        .ok_or_else(|| {
            fail(
                function,
                "not available here (no settings in this Lua state)",
            )
        })
}

fn policy_layout(
    lua: &Lua,
    function: &str,
    coordinate: &PackageCoordinate,
) -> mlua::Result<crate::store::PackageLayout> {
    let hooks = lua
        .app_data_ref::<Hooks>()
        .map(|h| h.0.clone())
        .ok_or_else(|| fail(function, "no policy in this Lua state"))?;
    Policy::new(lua, &hooks)
        .layout(coordinate)
        .map_err(|e| fail(function, e))
}

fn parse(function: &str, text: &str) -> mlua::Result<PackageCoordinate> {
    text.parse().map_err(|e| fail(function, e))
}

fn fetcher(lua: &Lua, function: &str, settings: &Settings) -> mlua::Result<Fetcher> {
    Fetcher::new(settings.http.clone(), ProxySettings::from_env())
        .map_err(|e| super::raise_error(lua, function, &e))
}

fn result_table(
    lua: &Lua,
    coordinate: &PackageCoordinate,
    result: &Result<Installed, StoreError>,
) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("coordinate", coordinate.id())?;
    match result {
        Ok(Installed::Fresh { dir, record, .. }) => {
            table.set("status", "installed")?;
            table.set("dir", dir.display().to_string())?;
            table.set("sha256", record.sha256.as_deref())?;
        }
        Ok(Installed::Already { dir }) => {
            table.set("status", "already-installed")?;
            table.set("dir", dir.display().to_string())?;
        }
        Err(err) => {
            table.set("status", "failed")?;
            table.set("error", super::chain(err))?;
            table.set("exit_code", err.exit_code().code())?;
        }
    }
    Ok(table)
}

/// `copkg.install(coordinate)`: {coordinate, status, dir, sha256?}; raises on failure.
fn install(lua: &Lua, text: String) -> mlua::Result<Table> {
    const F: &str = "install";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    let request = settings.install_request(&coordinate, &layout);
    let result = settings
        .store()
        .install(&fetcher(lua, F, &settings)?, &request, &mut |_| {});
    super::journal(
        &settings,
        "install",
        &coordinate.id(),
        &Outcome::of(&result, |i| matches!(i, Installed::Fresh { .. })),
    );
    if let Err(err) = &result {
        return Err(super::raise(
            lua,
            F,
            format!("cannot install {}: {}", coordinate.id(), super::chain(err)),
            err.exit_code(),
        ));
    }
    result_table(lua, &coordinate, &result)
}

/// `copkg.install_many(coordinates, {jobs = N})`: one result table per
/// coordinate, in order, with `status = "failed"` and `error` for failures.
fn install_many(lua: &Lua, (list, options): (Vec<String>, Option<Table>)) -> mlua::Result<Table> {
    const F: &str = "install_many";
    let settings = settings(lua, F)?;
    let jobs: usize = match &options {
        Some(table) => {
            super::copkg::check_keys(F, table, &["jobs"])?;
            table.get::<Option<usize>>("jobs")?.unwrap_or(8)
        }
        None => 8,
    };
    let coordinates = list
        .iter()
        .map(|t| parse(F, t))
        .collect::<mlua::Result<Vec<_>>>()?;
    let layouts = coordinates
        .iter()
        .map(|c| policy_layout(lua, F, c))
        .collect::<mlua::Result<Vec<_>>>()?;
    let requests: Vec<_> = coordinates
        .iter()
        .zip(&layouts)
        .map(|(c, l)| settings.install_request(c, l))
        .collect();
    let fetcher = fetcher(lua, F, &settings)?;
    let results =
        settings
            .store()
            .install_parallel(&fetcher, &requests, jobs.max(1), &|_, _| {}, &|_, _| {});
    let out = lua.create_table()?;
    for (coordinate, result) in coordinates.iter().zip(&results) {
        super::journal(
            &settings,
            "install",
            &coordinate.id(),
            &Outcome::of(result, |i| matches!(i, Installed::Fresh { .. })),
        );
        out.push(result_table(lua, coordinate, result)?)?;
    }
    Ok(out)
}

/// `copkg.uninstall(coordinate)`: true if it was installed.
fn uninstall(lua: &Lua, text: String) -> mlua::Result<bool> {
    const F: &str = "uninstall";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    let store = settings.store();
    let id = coordinate.id();
    let unused =
        crate::lifecycle::ensure_unused(&settings, &store.install_dir(&layout), &id, false);
    if let Err(err) = &unused {
        super::journal(&settings, "uninstall", &id, &Outcome::failed(err));
    }
    unused.map_err(|e| super::raise_error(lua, F, &e))?;
    let result = store.uninstall(&coordinate, &layout, &mut |_| {});
    super::journal(&settings, "uninstall", &id, &Outcome::of(&result, |r| *r));
    result.map_err(|e| super::raise_error(lua, F, &e))
}

/// `copkg.installed()`: every installed package, sorted by coordinate.
fn installed(lua: &Lua, (): ()) -> mlua::Result<Table> {
    const F: &str = "installed";
    let settings = settings(lua, F)?;
    let out = lua.create_table()?;
    for (dir, record) in settings
        .store()
        .list()
        .map_err(|e| super::raise_error(lua, F, &e))?
    {
        let table = lua.create_table()?;
        table.set("coordinate", record.coordinate)?;
        table.set("dir", dir.display().to_string())?;
        table.set("sha256", record.sha256)?;
        table.set("verified", record.verified)?;
        table.set("source", record.source)?;
        table.set("signed_by", record.signed_by)?;
        table.set("installed_at", record.installed_at)?;
        out.push(table)?;
    }
    Ok(out)
}

/// `copkg.resolve(coordinate)`: {coordinate, dir, state, archives = {...},
/// sidecars = {...}, zips = {...}, zip_sidecars = {...}}.
fn resolve(lua: &Lua, text: String) -> mlua::Result<Table> {
    const F: &str = "resolve";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    let store = settings.store();
    let table = lua.create_table()?;
    table.set("coordinate", coordinate.id())?;
    table.set("dir", store.install_dir(&layout).display().to_string())?;
    let state = match store
        .state(&layout)
        .map_err(|e| super::raise_error(lua, F, &e))?
    {
        PackageState::Installed(_) => "installed",
        PackageState::Absent => "absent",
        PackageState::Foreign => "foreign",
    };
    table.set("state", state)?;
    let archives = lua.create_table()?;
    let sidecars = lua.create_table()?;
    let zips = lua.create_table()?;
    let zip_sidecars = lua.create_table()?;
    for repo in &settings.repositories {
        archives.push(repo.address(&layout.archive))?;
        sidecars.push(repo.address(&layout.sha256))?;
        if let (Some(zip), Some(sidecar)) = (&layout.zip, layout.zip_sha256()) {
            zips.push(repo.address(zip))?;
            zip_sidecars.push(repo.address(&sidecar))?;
        }
    }
    table.set("archives", archives)?;
    table.set("sidecars", sidecars)?;
    table.set("zips", zips)?;
    table.set("zip_sidecars", zip_sidecars)?;
    Ok(table)
}

/// `copkg.fetch(coordinate, path)`: downloads a package's archive (its
/// `.tar.gz`, or its `.zip` where a repository has no `.tar.gz`) to `path`
/// (a temp file beside it, renamed when complete), checked against its
/// sidecar or pin; returns {path, sha256, verified, source, format}.
fn fetch(lua: &Lua, (text, path): (String, String)) -> mlua::Result<Table> {
    const F: &str = "fetch";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    let request = settings.install_request(&coordinate, &layout);
    let store = settings.store();
    let crate::store::OpenedArchive {
        download,
        expected,
        format,
        signed,
        ..
    } = store
        .open_archive(&fetcher(lua, F, &settings)?, &request)
        .map_err(|e| super::raise_error(lua, F, &e))?;
    let target = std::path::Path::new(&path);
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let io = |e: std::io::Error| fail(F, format!("{path}: {e}"));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut buf = vec![0u8; 256 * 1024];
    let url = download.url.clone();
    // The signature, where the repository has one to check, is checked on
    // the bytes as they are written, and settled before the rename.
    let check = signed
        .as_ref()
        .map(crate::signature::Signed::check)
        .transpose()
        .map_err(|e| super::raise_error(lua, F, &e))?;
    let mut reader = crate::signature::CheckingReader::new(download, check);
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)
            .map_err(|e| fail(F, format!("{url}: {e}")))?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
        std::io::Write::write_all(&mut temp, &buf[..n]).map_err(io)?;
    }
    let signed_by = reader.finish(&url).map_err(|err| match err {
        crate::signature::FinishError::Read(e) => fail(F, format!("{url}: {e}")),
        crate::signature::FinishError::Signature(e) => super::raise_error(lua, F, &e),
    })?;
    let digest = crate::extract::hex(&sha2::Digest::finalize(hasher));
    if let Some(expected) = &expected
        && *expected != digest
    {
        return Err(super::raise(
            lua,
            F,
            format!(
                "checksum mismatch for {} from {}: expected sha256 {expected}, got {digest}",
                coordinate.id(),
                url
            ),
            crate::exit::ExitCode::ChecksumMismatch,
        ));
    }
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(target).map_err(|e| io(e.error))?;
    let table = lua.create_table()?;
    table.set("path", path.as_str())?;
    table.set("sha256", digest)?;
    table.set("verified", expected.is_some() || signed_by.is_some())?;
    table.set("signed_by", signed_by.map(|id| id.to_string()))?;
    table.set("source", url.as_str())?;
    table.set("format", format.name())?;
    Ok(table)
}

/// `copkg.extract(archive, dir)`: unpacks a `.tar.gz` or a `.zip` (told
/// apart by their first bytes) safely into a fresh temp dir beside `dir` and
/// renames it to `dir`, which must not exist; returns {dir, sha256, bytes,
/// entries}.
fn extract(lua: &Lua, (archive, dir): (String, String)) -> mlua::Result<Table> {
    const F: &str = "extract";
    let target = std::path::Path::new(&dir);
    if std::fs::symlink_metadata(target).is_ok() {
        return Err(fail(F, format!("{dir} already exists")));
    }
    let io = |e: std::io::Error| fail(F, format!("{dir}: {e}"));
    let read_err = |e: std::io::Error| fail(F, format!("{archive}: {e}"));
    let mut file = std::fs::File::open(&archive).map_err(read_err)?;
    let len = file.metadata().ok().map(|m| m.len());
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let temp = tempfile::Builder::new()
        .prefix(".copkg-extract.")
        .tempdir_in(parent)
        .map_err(io)?;
    let mut limits = crate::extract::Limits::default_for(len);
    if let Some(settings) = lua.app_data_ref::<Settings>() {
        if let Some(max) = settings.max_unpacked_bytes {
            limits.max_unpacked_bytes = max;
        }
        limits.max_entries = settings.max_entries;
    }
    let refused = |e: crate::extract::ExtractError| {
        super::raise(
            lua,
            F,
            format!("{archive}: {}", super::chain(&e)),
            e.exit_code(),
        )
    };
    let (sha256, unpacked) = if is_zip(&mut file).map_err(read_err)? {
        let sha256 = sha256_of(&mut file).map_err(read_err)?;
        let unpacked = crate::extract::unpack_zip(&file, temp.path(), &limits).map_err(refused)?;
        (sha256, unpacked)
    } else {
        let done = crate::extract::unpack_tar_gz(file, temp.path(), &limits).map_err(refused)?;
        (done.sha256, done.unpacked)
    };
    std::fs::rename(temp.path(), target).map_err(io)?;
    let _ = temp.keep();
    let table = lua.create_table()?;
    table.set("dir", dir.as_str())?;
    table.set("sha256", sha256)?;
    table.set("bytes", unpacked.unpacked_bytes)?;
    table.set("entries", unpacked.entries)?;
    Ok(table)
}

/// Whether a file starts as a zip archive does (a local file header, or the
/// end record of an empty one); leaves it at its start.
fn is_zip(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek};
    let mut magic = [0u8; 4];
    let n = file.take(4).read(&mut magic)?;
    file.rewind()?;
    Ok(n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06"))
}

/// The lowercase hex sha256 of a file; leaves it at its start.
fn sha256_of(file: &mut std::fs::File) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Seek;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(file, &mut hasher)?;
    file.rewind()?;
    Ok(crate::extract::hex(&hasher.finalize()))
}

/// Adds these functions to the `copkg` table.
pub(crate) fn register(lua: &Lua, module: &Table) -> mlua::Result<()> {
    module.set("install", lua.create_function(install)?)?;
    module.set("install_many", lua.create_function(install_many)?)?;
    module.set("uninstall", lua.create_function(uninstall)?)?;
    module.set("installed", lua.create_function(installed)?)?;
    module.set("resolve", lua.create_function(resolve)?)?;
    module.set("fetch", lua.create_function(fetch)?)?;
    module.set("extract", lua.create_function(extract)?)?;
    Ok(())
}
