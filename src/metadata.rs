//! Repository metadata: the `maven-metadata.xml` of each artifact, as Maven
//! writes it (`<group path>/<artifact>/maven-metadata.xml`): read from
//! repositories to list the versions they offer and resolve `G:A:latest`,
//! and kept by `copkg pack`.
//!
//! The file comes from a server, so it is parsed as hostile input: at most
//! [`METADATA_LIMIT`] bytes, no DTD (so no entity of any kind beyond XML's
//! five), a bounded depth, and only the few elements copkg reads. Every
//! version it lists must be a valid coordinate version.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::exit::{Coded, ExitCode};

/// The file name.
pub const METADATA_FILE: &str = "maven-metadata.xml";
/// Largest metadata file read.
pub const METADATA_LIMIT: u64 = 1 << 20;
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 16;
/// Most versions one file may list.
const MAX_VERSIONS: usize = 100_000;
/// The version that asks for the newest release.
pub const LATEST: &str = "latest";
/// The version that asks for the newest version, pre-releases included.
pub const LATEST_PRERELEASE: &str = "latest-prerelease";

/// What an artifact's `maven-metadata.xml` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `groupId`.
    pub group_id: String,
    /// `artifactId`.
    pub artifact_id: String,
    /// `versioning/latest`: the newest version of all.
    pub latest: Option<String>,
    /// `versioning/release`: the newest that is not a snapshot.
    pub release: Option<String>,
    /// `versioning/versions/version`, in the file's order.
    pub versions: Vec<String>,
    /// `versioning/lastUpdated`, `yyyyMMddHHmmss` in UTC.
    pub last_updated: Option<String>,
}

/// Why metadata could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file is not metadata copkg accepts.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The file or URL.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A file of the repository could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The lock of the metadata file could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// No repository has metadata for the artifact.
    #[error("{artifact}: no repository lists its versions{}", list_tried(.tried))]
    NotFound {
        /// `group:artifact`.
        artifact: String,
        /// What each repository answered.
        tried: Vec<String>,
    },
    /// No repository had metadata, and not every one could be reached.
    #[error("{artifact}: not every repository could be reached{}", list_tried(.tried))]
    Unreachable {
        /// `group:artifact`.
        artifact: String,
        /// What each repository answered.
        tried: Vec<String>,
    },
    /// The repositories list versions, but none that was asked for.
    #[error("{artifact}: the repositories list no release (only {}); ask for {group_artifact}:{LATEST_PRERELEASE} to take pre-releases", .versions.join(", "))]
    NoRelease {
        /// `group:artifact`.
        artifact: String,
        /// The same, for the hint.
        group_artifact: String,
        /// What they list.
        versions: Vec<String>,
    },
    /// A digest pin on a version to be resolved.
    #[error("{coordinate}: a digest pin names one archive; it cannot go with `{version}`")]
    Pinned {
        /// The coordinate as given.
        coordinate: String,
        /// `latest` or `latest-prerelease`.
        version: String,
    },
    /// Fetching failed in a way another repository would not fix.
    #[error("cannot fetch the versions of {artifact}")]
    Fetch {
        /// `group:artifact`.
        artifact: String,
        /// The fetch error.
        #[source]
        source: Box<crate::repo::FetchError>,
    },
}

fn list_tried(tried: &[String]) -> String {
    tried.iter().map(|t| format!("\n  {t}")).collect()
}

impl Coded for MetadataError {
    fn exit_code(&self) -> ExitCode {
        match self {
            MetadataError::Invalid { .. } | MetadataError::Io { .. } => ExitCode::Failure,
            MetadataError::Lock(source) => source.exit_code(),
            MetadataError::NotFound { .. } | MetadataError::NoRelease { .. } => ExitCode::NotFound,
            MetadataError::Unreachable { .. } => ExitCode::Network,
            MetadataError::Pinned { .. } => ExitCode::Usage,
            MetadataError::Fetch { source, .. } => source.exit_code(),
        }
    }
}

/// Whether a version is a pre-release: one of its qualifiers is alpha,
/// beta, milestone, rc, cr or snapshot (or Maven's aliases a, b and m,
/// followed by a digit). `7.0.15-1` and `1.0-sp1` are releases.
pub fn is_prerelease(version: &str) -> bool {
    crate::version::qualifiers(version).iter().any(|q| {
        matches!(
            q.as_str(),
            "alpha" | "beta" | "milestone" | "rc" | "snapshot"
        )
    })
}

/// Whether `version` is one of the words that ask for a resolution
/// (`latest`, `latest-prerelease`, in any case), which no package may have.
pub fn is_reserved(version: &str) -> bool {
    version.eq_ignore_ascii_case(LATEST) || version.eq_ignore_ascii_case(LATEST_PRERELEASE)
}

/// The newest of `versions` in Maven order: releases only unless
/// `prereleases`.
pub fn newest<'a>(
    versions: impl IntoIterator<Item = &'a String>,
    prereleases: bool,
) -> Option<&'a String> {
    versions
        .into_iter()
        .filter(|v| prereleases || !is_prerelease(v))
        .max_by(|a, b| crate::version::compare(a, b))
}

/// Sorts versions oldest first in Maven order, dropping duplicates.
pub fn sort_versions(versions: &mut Vec<String>) {
    versions.sort_by(|a, b| crate::version::compare(a, b).then_with(|| a.cmp(b)));
    versions.dedup();
}

/// One piece of the document.
enum Token<'a> {
    Open(&'a str),
    Close(&'a str),
    Text(&'a str),
}

/// Splits a document into element tags and text, skipping the XML
/// declaration, processing instructions and comments, refusing a DTD,
/// CDATA and anything malformed.
fn tokens(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.push(Token::Text(rest));
            break;
        };
        if lt > 0 {
            out.push(Token::Text(&rest[..lt]));
        }
        rest = &rest[lt..];
        if let Some(body) = rest.strip_prefix("<!--") {
            let end = body.find("-->").ok_or("an unterminated comment")?;
            rest = &body[end + 3..];
        } else if let Some(body) = rest.strip_prefix("<?") {
            let end = body
                .find("?>")
                .ok_or("an unterminated processing instruction")?;
            rest = &body[end + 2..];
        } else if rest.starts_with("<!") {
            return Err("a DTD or CDATA section (not accepted)".to_owned());
        } else {
            let end = rest.find('>').ok_or("an unterminated tag")?;
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                out.push(Token::Close(name.trim()));
            } else if let Some(body) = tag.strip_suffix('/') {
                let name = body.split_whitespace().next().ok_or("an empty tag")?;
                out.push(Token::Open(name));
                out.push(Token::Close(name));
            } else {
                let name = tag.split_whitespace().next().ok_or("an empty tag")?;
                out.push(Token::Open(name));
            }
        }
    }
    Ok(out)
}

/// Text with XML's five predefined entities and character references
/// decoded; any other entity is refused.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let end = rest[amp..].find(';').ok_or("an unterminated entity")? + amp;
        let name = &rest[amp + 1..end];
        let decoded = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match name.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => name.strip_prefix('#').and_then(|d| d.parse().ok()),
                };
                code.and_then(char::from_u32).ok_or_else(|| {
                    format!(
                        "the entity `&{}`",
                        name.chars().take(32).collect::<String>()
                    )
                })?
            }
        };
        out.push(decoded);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a `maven-metadata.xml`; `what` names it in errors.
pub fn parse(bytes: &[u8], what: &str) -> Result<Metadata, MetadataError> {
    let invalid = |reason: String| MetadataError::Invalid {
        what: what.to_owned(),
        reason,
    };
    if bytes.len() as u64 > METADATA_LIMIT {
        return Err(invalid(format!("larger than {METADATA_LIMIT} bytes")));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8".to_owned()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut metadata = Metadata::default();
    let mut path: Vec<&str> = Vec::new();
    let mut seen_root = false;
    for token in tokens(text).map_err(|r| invalid(format!("it holds {r}")))? {
        match token {
            Token::Open(name) => {
                if path.is_empty() {
                    if seen_root || name != "metadata" {
                        return Err(invalid(format!("unexpected root element <{name}>")));
                    }
                    seen_root = true;
                }
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(invalid(format!("nested deeper than {MAX_DEPTH}")));
                }
            }
            Token::Close(name) => {
                if path.pop() != Some(name) {
                    return Err(invalid(format!("mismatched </{name}>")));
                }
            }
            Token::Text(raw) => {
                let value = unescape(raw).map_err(|r| invalid(format!("it holds {r}")))?;
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                if path.is_empty() {
                    return Err(invalid("text outside the root element".to_owned()));
                }
                let field = match path[1..] {
                    ["groupId"] => &mut metadata.group_id,
                    ["artifactId"] => &mut metadata.artifact_id,
                    ["versioning", "versions", "version"] => {
                        if metadata.versions.len() >= MAX_VERSIONS {
                            return Err(invalid(format!("more than {MAX_VERSIONS} versions")));
                        }
                        check_version(value).map_err(invalid)?;
                        metadata.versions.push(value.to_owned());
                        continue;
                    }
                    ["versioning", "latest"] => metadata.latest.get_or_insert_default(),
                    ["versioning", "release"] => metadata.release.get_or_insert_default(),
                    ["versioning", "lastUpdated"] => metadata.last_updated.get_or_insert_default(),
                    // Elements copkg does not read (snapshot details, plugins…).
                    _ => continue,
                };
                *field = value.to_owned();
            }
        }
    }
    if !seen_root || !path.is_empty() {
        return Err(invalid("not a complete <metadata> document".to_owned()));
    }
    Ok(metadata)
}

/// A version as a coordinate may have it.
fn check_version(version: &str) -> Result<(), String> {
    let coordinate = format!("g:a:{version}");
    coordinate
        .parse::<crate::coordinate::PackageCoordinate>()
        .map(|_| ())
        .map_err(|_| {
            format!(
                "`{}` is not a valid version",
                version.chars().take(64).collect::<String>()
            )
        })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The document, as Maven writes it.
pub fn render(metadata: &Metadata) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n");
    xml.push_str(&format!(
        "  <groupId>{}</groupId>\n",
        escape(&metadata.group_id)
    ));
    xml.push_str(&format!(
        "  <artifactId>{}</artifactId>\n",
        escape(&metadata.artifact_id)
    ));
    xml.push_str("  <versioning>\n");
    if let Some(latest) = &metadata.latest {
        xml.push_str(&format!("    <latest>{}</latest>\n", escape(latest)));
    }
    if let Some(release) = &metadata.release {
        xml.push_str(&format!("    <release>{}</release>\n", escape(release)));
    }
    xml.push_str("    <versions>\n");
    for version in &metadata.versions {
        xml.push_str(&format!("      <version>{}</version>\n", escape(version)));
    }
    xml.push_str("    </versions>\n");
    if let Some(updated) = &metadata.last_updated {
        xml.push_str(&format!(
            "    <lastUpdated>{}</lastUpdated>\n",
            escape(updated)
        ));
    }
    xml.push_str("  </versioning>\n</metadata>\n");
    xml
}

/// `yyyyMMddHHmmss` in UTC for seconds since the epoch: the journal's
/// RFC 3339 time without its separators.
pub fn timestamp(secs: u64) -> String {
    crate::journal::rfc3339(secs)
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// The metadata path of an artifact relative to a repository base.
pub fn relative_path(group: &str, artifact: &str) -> String {
    format!("{}/{artifact}/{METADATA_FILE}", group.replace('.', "/"))
}

/// What one repository answered for an artifact's versions.
#[derive(Debug, Clone)]
pub struct RepositoryOffer {
    /// The repository.
    pub repository: String,
    /// The versions it lists (its file's order), or why it lists none.
    pub versions: Result<Vec<String>, String>,
}

/// What the repositories offer for one artifact.
#[derive(Debug, Clone)]
pub struct Offered {
    /// Every version any repository lists, oldest first in Maven order.
    pub versions: Vec<String>,
    /// Each repository's answer, in the order they are tried.
    pub repositories: Vec<RepositoryOffer>,
}

/// Reads the `maven-metadata.xml` of `group:artifact` from every
/// repository. One that has none (404), or that cannot be reached, is
/// noted and the others are asked; offline, an http(s) repository is not
/// asked. A malformed file, or one for another artifact, is an error:
/// what a repository offers must not be guessed.
pub fn offered(
    fetcher: &crate::repo::Fetcher,
    repositories: &[crate::repo::Repository],
    group: &str,
    artifact: &str,
    offline: bool,
) -> Result<Offered, MetadataError> {
    let id = format!("{group}:{artifact}");
    let relative = relative_path(group, artifact);
    let mut all = Vec::new();
    let mut answers = Vec::new();
    let mut tried = Vec::new();
    let mut unreachable = false;
    for repo in repositories {
        let url = repo.address(&relative);
        if offline && matches!(repo.location, crate::repo::Location::Http(_)) {
            let why = format!("{url}: not asked (offline)");
            tried.push(why.clone());
            answers.push(RepositoryOffer {
                repository: repo.to_string(),
                versions: Err(why),
            });
            continue;
        }
        let versions = match fetcher.read_small(repo, &relative, METADATA_LIMIT) {
            Ok(bytes) => {
                let metadata = parse(&bytes, &url)?;
                if (!metadata.group_id.is_empty() && metadata.group_id != group)
                    || (!metadata.artifact_id.is_empty() && metadata.artifact_id != artifact)
                {
                    return Err(MetadataError::Invalid {
                        what: url,
                        reason: format!(
                            "it is the metadata of {}:{}",
                            metadata.group_id, metadata.artifact_id
                        ),
                    });
                }
                Ok(metadata.versions)
            }
            Err(crate::repo::FetchError::NotFound { url }) => Err(format!("{url}: not found")),
            Err(e) if e.try_next_repository() => {
                unreachable = true;
                Err(crate::exit::one_line(&e))
            }
            Err(e) => {
                return Err(MetadataError::Fetch {
                    artifact: id,
                    source: Box::new(e),
                });
            }
        };
        match &versions {
            Ok(list) => all.extend(list.iter().cloned()),
            Err(why) => tried.push(why.clone()),
        }
        answers.push(RepositoryOffer {
            repository: repo.to_string(),
            versions,
        });
    }
    if !answers.iter().any(|a| a.versions.is_ok()) {
        return Err(if unreachable {
            MetadataError::Unreachable {
                artifact: id,
                tried,
            }
        } else {
            MetadataError::NotFound {
                artifact: id,
                tried,
            }
        });
    }
    sort_versions(&mut all);
    Ok(Offered {
        versions: all,
        repositories: answers,
    })
}

/// The coordinate with `latest` (the newest release) or
/// `latest-prerelease` (the newest version) resolved from what the
/// repositories offer; any other coordinate as it is.
pub fn resolve_latest(
    fetcher: &crate::repo::Fetcher,
    repositories: &[crate::repo::Repository],
    coordinate: &crate::coordinate::PackageCoordinate,
    offline: bool,
) -> Result<crate::coordinate::PackageCoordinate, MetadataError> {
    if !is_reserved(&coordinate.version) {
        return Ok(coordinate.clone());
    }
    if coordinate.digest.is_some() {
        return Err(MetadataError::Pinned {
            coordinate: coordinate.to_string(),
            version: coordinate.version.clone(),
        });
    }
    let prereleases = coordinate.version.eq_ignore_ascii_case(LATEST_PRERELEASE);
    let offer = offered(
        fetcher,
        repositories,
        &coordinate.group,
        &coordinate.artifact,
        offline,
    )?;
    let artifact = format!("{}:{}", coordinate.group, coordinate.artifact);
    match newest(&offer.versions, prereleases) {
        Some(version) => Ok(crate::coordinate::PackageCoordinate {
            version: version.clone(),
            ..coordinate.clone()
        }),
        None => Err(MetadataError::NoRelease {
            group_artifact: artifact.clone(),
            artifact,
            versions: offer.versions,
        }),
    }
}

/// Adds `version` to the metadata of `group:artifact` in the repository
/// directory `repo`, under a lock (so concurrent packs of one artifact
/// each add theirs), written to a temp file and renamed into place: the
/// versions sorted in Maven order, `latest` the newest, `release` the
/// newest that is not a snapshot, `lastUpdated` now. A file there that
/// cannot be parsed is an error (nothing is overwritten).
pub fn add_version(
    repo: &Path,
    group: &str,
    artifact: &str,
    version: &str,
    lock_timeout: std::time::Duration,
) -> Result<PathBuf, MetadataError> {
    let path = repo.join(relative_path(group, artifact));
    let dir = path.parent().unwrap_or(repo).to_owned();
    let io_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| MetadataError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let lock_path = dir.join(format!("{METADATA_FILE}.lock"));
    let _lock = crate::lock::lock_exclusive(
        &lock_path,
        &format!("the metadata of {group}:{artifact}"),
        lock_timeout,
        &mut |_| {},
    )?;
    let mut metadata = match crate::bounded::read_file(&path, METADATA_LIMIT) {
        Ok(bytes) => parse(&bytes, &path.display().to_string())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Metadata::default(),
        Err(e) => return Err(io_err("cannot read", &path)(e)),
    };
    metadata.group_id = group.to_owned();
    metadata.artifact_id = artifact.to_owned();
    metadata.versions.push(version.to_owned());
    sort_versions(&mut metadata.versions);
    metadata.latest = metadata.versions.last().cloned();
    metadata.release = metadata
        .versions
        .iter()
        .rev()
        .find(|v| {
            !crate::version::qualifiers(v)
                .iter()
                .any(|q| q == "snapshot")
        })
        .cloned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    metadata.last_updated = Some(timestamp(now));
    let mut temp = tempfile::Builder::new()
        .prefix(".maven-metadata.")
        .tempfile_in(&dir)
        .map_err(io_err("cannot create a temp file in", &dir))?;
    // Readable by the web server that serves the repository.
    use std::os::unix::fs::PermissionsExt;
    temp.write_all(render(&metadata).as_bytes())
        .and_then(|()| {
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err("cannot write", temp.path()))?;
    let file = temp
        .persist(&path)
        .map_err(|e| io_err("cannot rename into place", &path)(e.error))?;
    drop(file);
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    // The lock file goes before the lock is let go, so none is left in
    // the repository: a waiter notices and locks the file it creates anew.
    let _ = std::fs::remove_file(&lock_path);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_releases_are_the_maven_qualifiers_only() {
        let cases = [
            ("1.0", false),
            ("7.0.15-1", false),
            ("1.0-sp1", false),
            ("1.0-ga", false),
            ("1.0.Final", false),
            ("2.0-foo", false),
            ("1.0-alpha", true),
            ("1.0-alpha-2", true),
            ("1.0a1", true),
            ("1.0b2", true),
            ("1.0m3", true),
            ("1.0-beta", true),
            ("1.0-milestone-1", true),
            ("1.0-rc1", true),
            ("1.0-RC1", true),
            ("1.0-cr2", true),
            ("1.0-SNAPSHOT", true),
            ("1.0.0-snapshot", true),
        ];
        for (version, want) in cases {
            assert_eq!(is_prerelease(version), want, "{version}");
        }
    }

    #[test]
    fn the_newest_release_is_chosen_in_maven_order() {
        let versions: Vec<String> = ["1.9", "1.10", "2.0-rc1", "1.10-1", "2.0-SNAPSHOT"]
            .map(String::from)
            .into();
        assert_eq!(newest(&versions, false).map(String::as_str), Some("1.10-1"));
        assert_eq!(
            newest(&versions, true).map(String::as_str),
            Some("2.0-SNAPSHOT")
        );
        assert_eq!(newest(&Vec::new(), true), None);
        assert!(is_reserved("latest") && is_reserved("LATEST") && is_reserved("latest-prerelease"));
        assert!(!is_reserved("latest1"));
    }

    #[test]
    fn parses_what_maven_writes_and_round_trips() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- written by Maven -->
<metadata modelVersion="1.1.0">
  <groupId>com.example</groupId>
  <artifactId>hello</artifactId>
  <versioning>
    <latest>2.0</latest>
    <release>2.0</release>
    <versions>
      <version>1.0</version>
      <version>2.0</version>
    </versions>
    <lastUpdated>20240101120000</lastUpdated>
    <snapshotVersions/>
  </versioning>
</metadata>
"#;
        let metadata = parse(text.as_bytes(), "t").unwrap();
        assert_eq!(metadata.group_id, "com.example");
        assert_eq!(metadata.versions, ["1.0", "2.0"]);
        assert_eq!(metadata.latest.as_deref(), Some("2.0"));
        assert_eq!(metadata.last_updated.as_deref(), Some("20240101120000"));
        assert_eq!(parse(render(&metadata).as_bytes(), "t").unwrap(), metadata);
    }

    #[test]
    fn hostile_documents_are_refused() {
        let big = format!(
            "<metadata>{}</metadata>",
            " ".repeat(METADATA_LIMIT as usize)
        );
        let deep = format!("<metadata>{}", "<a>".repeat(40));
        let cases: [(&str, &str); 9] = [
            (
                "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><metadata>&x;</metadata>",
                "DTD",
            ),
            (
                "<metadata><versioning><versions><version>&x;</version></versions></versioning></metadata>",
                "entity",
            ),
            (
                "<metadata><versioning><versions><version>../../etc</version></versions></versioning></metadata>",
                "not a valid version",
            ),
            (
                "<metadata><versioning><versions><version><![CDATA[1]]></version></versions></versioning></metadata>",
                "CDATA",
            ),
            ("<project></project>", "root element"),
            ("<metadata><groupId>x</artifactId></metadata>", "mismatched"),
            ("<metadata><groupId>x", "complete"),
            (&big, "larger than"),
            (&deep, "deeper"),
        ];
        for (text, needle) in cases {
            let err = parse(text.as_bytes(), "t").unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn timestamps_are_utc_civil_time() {
        assert_eq!(timestamp(0), "19700101000000");
        assert_eq!(timestamp(1_709_210_096), "20240229123456");
    }

    #[test]
    fn add_version_keeps_a_sorted_list() {
        let repo = tempfile::tempdir().unwrap();
        for version in ["1.10", "1.9", "2.0-SNAPSHOT", "1.9"] {
            add_version(
                repo.path(),
                "com.example",
                "hello",
                version,
                std::time::Duration::from_secs(5),
            )
            .unwrap();
        }
        let bytes =
            std::fs::read(repo.path().join("com/example/hello/maven-metadata.xml")).unwrap();
        let metadata = parse(&bytes, "t").unwrap();
        assert_eq!(metadata.versions, ["1.9", "1.10", "2.0-SNAPSHOT"]);
        assert_eq!(metadata.latest.as_deref(), Some("2.0-SNAPSHOT"));
        assert_eq!(metadata.release.as_deref(), Some("1.10"));
    }
}
