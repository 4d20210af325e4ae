//! Package coordinates (`group:artifact:version[@sha256:HEX]`): parsing and validation.

use std::fmt;
use std::str::FromStr;

use crate::exit::{Coded, ExitCode};

/// Why a coordinate string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoordinateError {
    /// The string does not have exactly three `:`-separated parts.
    #[error("invalid package coordinate `{input}`: expected group:artifact:version")]
    Shape {
        /// The text as given.
        input: String,
    },
    /// One part is empty, `.`/`..`, or holds a character outside `[A-Za-z0-9_.+-]`.
    #[error("invalid package coordinate `{input}`: {part} `{value}` {reason}")]
    Part {
        /// The text as given.
        input: String,
        /// Which part: group label, artifact or version.
        part: &'static str,
        /// The offending part.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `@sha256:` pin is not 64 hex digits.
    #[error("invalid digest pin in `{input}`: expected @sha256:<64 hex digits>")]
    Digest {
        /// The text as given.
        input: String,
    },
}

/// A package coordinate such as `com.comoyo:id-cassandra:2.1.1`, optionally
/// pinned to the sha256 digest of its archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageCoordinate {
    /// Dot-separated group, e.g. `com.comoyo`.
    pub group: String,
    /// Artifact name, e.g. `id-cassandra`.
    pub artifact: String,
    /// Version, e.g. `2.1.1`.
    pub version: String,
    /// Lowercase hex sha256 the archive must have, when pinned.
    pub digest: Option<String>,
}

impl PackageCoordinate {
    /// The group as path components (`com.comoyo` → `["com", "comoyo"]`).
    pub fn group_labels(&self) -> impl Iterator<Item = &str> {
        self.group.split('.')
    }

    /// `group:artifact:version`, without the digest pin.
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.group, self.artifact, self.version)
    }
}

impl fmt::Display for PackageCoordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.group, self.artifact, self.version)?;
        if let Some(digest) = &self.digest {
            write!(f, "@sha256:{digest}")?;
        }
        Ok(())
    }
}

fn check_part(input: &str, part: &'static str, value: &str) -> Result<(), CoordinateError> {
    let reason = if value.is_empty() {
        Some("is empty")
    } else if value == "." || value == ".." {
        Some("is not allowed")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
    {
        Some("may only hold A-Z a-z 0-9 _ . + -")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CoordinateError::Part {
            input: input.to_owned(),
            part,
            value: value.to_owned(),
            reason,
        }),
    }
}

/// Parses a digest written as 64 hex digits (any case) into lowercase hex.
pub fn parse_sha256_hex(text: &str) -> Option<String> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

impl FromStr for PackageCoordinate {
    type Err = CoordinateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (body, digest) = match input.split_once('@') {
            None => (input, None),
            Some((body, pin)) => {
                let hex = pin.strip_prefix("sha256:").and_then(parse_sha256_hex);
                match hex {
                    Some(hex) => (body, Some(hex)),
                    None => {
                        return Err(CoordinateError::Digest {
                            input: input.to_owned(),
                        });
                    }
                }
            }
        };
        let parts: Vec<&str> = body.split(':').collect();
        let [group, artifact, version] = parts[..] else {
            return Err(CoordinateError::Shape {
                input: input.to_owned(),
            });
        };
        if group.is_empty() {
            check_part(input, "group", group)?;
        }
        for label in group.split('.') {
            check_part(input, "group label", label)?;
        }
        check_part(input, "artifact", artifact)?;
        check_part(input, "version", version)?;
        Ok(PackageCoordinate {
            group: group.to_owned(),
            artifact: artifact.to_owned(),
            version: version.to_owned(),
            digest,
        })
    }
}

/// A service coordinate `instance.service.user.cell`, e.g. `1.idee.prod.trd`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceCoordinate {
    /// Instance, e.g. `1`.
    pub instance: String,
    /// Service name, e.g. `idee`.
    pub service: String,
    /// User or environment, e.g. `prod`.
    pub user: String,
    /// Cell or site, e.g. `trd`.
    pub cell: String,
}

/// Why a service coordinate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid service coordinate `{input}`: {reason}")]
pub struct ServiceCoordinateError {
    input: String,
    reason: &'static str,
}

impl Coded for ServiceCoordinateError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

impl Coded for CoordinateError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

impl FromStr for ServiceCoordinate {
    type Err = ServiceCoordinateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| ServiceCoordinateError {
            input: input.to_owned(),
            reason,
        };
        let labels: Vec<&str> = input.split('.').collect();
        let [instance, service, user, cell] = labels[..] else {
            return Err(refuse("expected four labels, instance.service.user.cell"));
        };
        for label in &labels {
            if label.is_empty() {
                return Err(refuse("a label is empty"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(refuse("labels may only hold a-z 0-9 -"));
            }
        }
        Ok(ServiceCoordinate {
            instance: instance.to_owned(),
            service: service.to_owned(),
            user: user.to_owned(),
            cell: cell.to_owned(),
        })
    }
}

impl fmt::Display for ServiceCoordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.instance, self.service, self.user, self.cell
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_coordinates() {
        let c: ServiceCoordinate = "1.idee.prod.trd".parse().unwrap();
        assert_eq!(
            (
                c.instance.as_str(),
                c.service.as_str(),
                c.user.as_str(),
                c.cell.as_str()
            ),
            ("1", "idee", "prod", "trd")
        );
        assert_eq!(c.to_string(), "1.idee.prod.trd");
        assert!("a-1.web-api.dev.osl".parse::<ServiceCoordinate>().is_ok());
        for bad in [
            "1.idee.prod",
            "1.idee.prod.trd.x",
            "1..prod.trd",
            "1.Idee.prod.trd",
            "1.id_ee.prod.trd",
            "../x.a.b.c",
            "1.a b.c.d",
            "",
        ] {
            assert!(bad.parse::<ServiceCoordinate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_valid_coordinates() {
        let cases = [
            (
                "com.comoyo:id-cassandra:2.1.1",
                "com.comoyo",
                "id-cassandra",
                "2.1.1",
            ),
            ("a:b:c", "a", "b", "c"),
            (
                "org.x_y:lib+z:1.0-SNAPSHOT",
                "org.x_y",
                "lib+z",
                "1.0-SNAPSHOT",
            ),
            ("g:a:1..2", "g", "a", "1..2"),
        ];
        for (input, group, artifact, version) in cases {
            let c: PackageCoordinate = input.parse().unwrap();
            assert_eq!(
                (c.group.as_str(), c.artifact.as_str(), c.version.as_str()),
                (group, artifact, version),
                "{input}"
            );
            assert_eq!(c.to_string(), input);
            assert_eq!(c.digest, None);
        }
    }

    #[test]
    fn parses_digest_pin_lowercased() {
        let hex = "AB".repeat(32);
        let c: PackageCoordinate = format!("com.example:hello:1.0.0@sha256:{hex}")
            .parse()
            .unwrap();
        assert_eq!(c.digest.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(c.id(), "com.example:hello:1.0.0");
    }

    #[test]
    fn refuses_malformed_coordinates() {
        let cases = [
            "a:b",
            "a:b:c:d",
            "../x:y:1",
            "x:..:1",
            "x:y:.",
            ":a:1",
            "a::1",
            "a:b:",
            "a..b:c:1",
            ".a:b:1",
            "a b:c:1",
            "a:b/c:1",
            "a:b\\c:1",
            "a:b:1\0",
            "",
            "a:b:1@sha256:abc",
            "a:b:1@md5:00",
            "a:b:1@",
        ];
        for input in cases {
            assert!(
                input.parse::<PackageCoordinate>().is_err(),
                "{input:?} was accepted"
            );
        }
    }

    #[test]
    fn error_names_the_bad_part() {
        let err = "com.x:a b:1".parse::<PackageCoordinate>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid package coordinate `com.x:a b:1`: artifact `a b` may only hold A-Z a-z 0-9 _ . + -"
        );
    }
}
