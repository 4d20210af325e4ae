//! minisign signatures: the public keys a repository is pinned to, the
//! `.minisig` beside an archive ([`parse_signature`], one small function
//! over untrusted bytes), the rule for its trusted comment, verification
//! that streams with the download, and making key pairs and signatures for
//! `copkg keygen` and `copkg pack --sign`.
//!
//! Only prehashed signatures (algorithm `ED`, a Blake2b-512 of the file
//! signed with Ed25519; minisign's default since 0.8) are accepted: their
//! check needs one pass over the archive in constant memory, so it runs as
//! the archive streams in. A legacy signature (`Ed`, the whole file signed)
//! would need the file in memory, and is refused.

use std::fmt;
use std::io::{self, Read};

use serde::Deserialize;

use crate::exit::{Coded, ExitCode};

/// What a signature file is named after: `<archive>.minisig`.
pub const SIGNATURE_SUFFIX: &str = ".minisig";
/// Largest `.minisig` read: minisign bounds a trusted comment at 8 KiB.
pub const SIGNATURE_LIMIT: u64 = 16 * 1024;

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// Signature algorithm of a prehashed signature (and of no public key).
const PREHASHED: [u8; 2] = *b"ED";
/// Signature algorithm of a legacy signature, and of every public key.
const LEGACY: [u8; 2] = *b"Ed";

/// A minisign key id: 8 bytes, shown as the minisign tool shows it (the
/// little-endian number in upper-case hex, without leading zeros).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A public key a repository's signatures may be made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// Its key id.
    pub id: KeyId,
    key: minisign_verify::PublicKey,
}

impl TrustedKey {
    /// Parses a public key as the second line of a minisign `.pub` file
    /// holds it (base64 of `Ed`, the key id and the Ed25519 key). The error
    /// says what is wrong without repeating the text.
    pub fn parse(text: &str) -> Result<TrustedKey, &'static str> {
        let bytes = decode_base64(text.trim())
            .ok_or("not base64 (expected the second line of a minisign .pub file)")?;
        if bytes.len() != 42 {
            return Err(
                "not a minisign public key (expected the second line of a minisign .pub file)",
            );
        }
        if bytes[..2] != LEGACY {
            return Err("not an Ed25519 minisign public key");
        }
        let key = minisign_verify::PublicKey::from_base64(text.trim())
            .map_err(|_| "not a minisign public key")?;
        Ok(TrustedKey {
            id: key_id(&bytes[2..10]),
            key,
        })
    }
}

fn key_id(bytes: &[u8]) -> KeyId {
    let mut id = [0; 8];
    id.copy_from_slice(&bytes[..8]);
    KeyId(id)
}

/// Whether a repository's archives must be signed (`signatures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureMode {
    /// Every archive must have a good signature by a pinned key.
    Required,
    /// A signature is checked when the repository has one; an archive
    /// without one installs (unsigned).
    IfPresent,
    /// Signatures are not fetched or checked.
    Off,
}

impl SignatureMode {
    /// The config value.
    pub fn name(self) -> &'static str {
        match self {
            SignatureMode::Required => "required",
            SignatureMode::IfPresent => "if-present",
            SignatureMode::Off => "off",
        }
    }
}

/// What one repository demands of signatures, resolved from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// Whether signatures are required, checked when present, or ignored.
    pub mode: SignatureMode,
    /// The keys pinned for the repository: a signature by any of them is
    /// accepted (several, so a key can be rotated).
    pub keys: Vec<TrustedKey>,
}

impl SignaturePolicy {
    /// No signature checks (a repository without keys).
    pub fn off() -> Self {
        SignaturePolicy {
            mode: SignatureMode::Off,
            keys: Vec::new(),
        }
    }

    /// The pinned key ids, for messages: `A, B` or `none`.
    pub fn key_ids(&self) -> String {
        if self.keys.is_empty() {
            return "none".to_owned();
        }
        self.keys
            .iter()
            .map(|k| k.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks a `.minisig` fetched from `url` for the archive `file_name`
    /// against the pinned keys, before the archive is read: well-formed,
    /// prehashed, and by a pinned key. The rest ([`SignatureCheck`]) runs
    /// as the archive streams in.
    pub fn accept(
        &self,
        bytes: &[u8],
        url: &str,
        file_name: &str,
    ) -> Result<Signed, SignatureError> {
        let parsed = parse_signature(bytes).map_err(|err| match err {
            MalformedSignature::Legacy { key_id } => SignatureError::Legacy {
                url: url.to_owned(),
                key_id,
            },
            MalformedSignature::Invalid(reason) => SignatureError::Malformed {
                url: url.to_owned(),
                reason,
            },
        })?;
        let Some(key) = self.keys.iter().find(|k| k.id == parsed.key_id) else {
            return Err(SignatureError::UntrustedKey {
                url: url.to_owned(),
                key_id: parsed.key_id,
                pinned: self.key_ids(),
            });
        };
        Ok(Signed {
            key: key.clone(),
            signature: parsed,
            url: url.to_owned(),
            file_name: file_name.to_owned(),
        })
    }
}

/// A `.minisig` as [`parse_signature`] read it.
#[derive(Clone)]
pub struct ParsedSignature {
    /// The id of the key it claims to be made with.
    pub key_id: KeyId,
    /// The trusted comment (signed along with the signature).
    pub trusted_comment: String,
    signature: minisign_verify::Signature,
}

impl fmt::Debug for ParsedSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSignature")
            .field("key_id", &self.key_id)
            .field("trusted_comment", &self.trusted_comment)
            .finish_non_exhaustive()
    }
}

/// Why a `.minisig` could not be read as a prehashed minisign signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalformedSignature {
    /// A well-formed legacy (non-prehashed) signature.
    Legacy {
        /// The key it was made with.
        key_id: KeyId,
    },
    /// Not a minisign signature: what is wrong.
    Invalid(&'static str),
}

/// Reads a `.minisig`: four lines (an untrusted comment, the base64 of the
/// algorithm, key id and signature, the trusted comment, the base64 of the
/// global signature), each ending in `\n` or `\r\n`, nothing after them.
/// Only a prehashed signature (`ED`) is accepted. Bounded by its input
/// (callers read at most [`SIGNATURE_LIMIT`] bytes); never panics.
pub fn parse_signature(bytes: &[u8]) -> Result<ParsedSignature, MalformedSignature> {
    use MalformedSignature::Invalid;
    if bytes.len() as u64 > SIGNATURE_LIMIT {
        return Err(Invalid("larger than a minisign signature can be"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Invalid("not UTF-8 text"))?;
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // The newline that ends the last line leaves an empty piece.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let [untrusted, signature, trusted, global] = lines[..] else {
        return Err(Invalid("not four lines"));
    };
    if !untrusted.starts_with(UNTRUSTED_PREFIX) {
        return Err(Invalid("the first line is not an untrusted comment"));
    }
    let Some(trusted_comment) = trusted.strip_prefix(TRUSTED_PREFIX) else {
        return Err(Invalid("the third line is not a trusted comment"));
    };
    if trusted_comment.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Invalid("the trusted comment holds control characters"));
    }
    let signature_bytes =
        decode_base64(signature).ok_or(Invalid("the signature line is not base64"))?;
    if signature_bytes.len() != 74 {
        return Err(Invalid("the signature line has the wrong length"));
    }
    let global_bytes =
        decode_base64(global).ok_or(Invalid("the global signature line is not base64"))?;
    if global_bytes.len() != 64 {
        return Err(Invalid("the global signature line has the wrong length"));
    }
    let key_id = key_id(&signature_bytes[2..10]);
    match [signature_bytes[0], signature_bytes[1]] {
        PREHASHED => {}
        LEGACY => return Err(MalformedSignature::Legacy { key_id }),
        _ => return Err(Invalid("unknown signature algorithm")),
    }
    let rebuilt = format!("{untrusted}\n{signature}\n{trusted}\n{global}\n");
    let signature = minisign_verify::Signature::decode(&rebuilt)
        .map_err(|_| Invalid("not a minisign signature"))?;
    Ok(ParsedSignature {
        key_id,
        trusted_comment: trusted_comment.to_owned(),
        signature,
    })
}

/// The trusted-comment rule: every whitespace-separated field of the form
/// `file:NAME` must name `file_name`, the archive's own file name. minisign
/// writes `timestamp:… file:NAME hashed` (tab-separated) by default; a
/// comment without a `file:` field (`minisign -t`) says nothing of the
/// file and passes. Returns the first other name.
pub fn file_named_elsewhere<'a>(trusted_comment: &'a str, file_name: &str) -> Option<&'a str> {
    trusted_comment
        .split_ascii_whitespace()
        .filter_map(|field| field.strip_prefix("file:"))
        .find(|named| *named != file_name)
}

/// A signature by a pinned key, accepted before its archive is read.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The key that made it.
    pub key: TrustedKey,
    /// The signature.
    pub signature: ParsedSignature,
    /// Where it came from.
    pub url: String,
    /// The archive's file name in the repository, which a `file:` in the
    /// trusted comment must name.
    pub file_name: String,
}

impl Signed {
    /// A check that consumes the archive's bytes as they stream past.
    pub fn check(&self) -> Result<SignatureCheck<'_>, SignatureError> {
        let verifier = self
            .key
            .key
            .verify_stream(&self.signature.signature)
            .map_err(|_| SignatureError::Legacy {
                url: self.url.clone(),
                key_id: self.key.id,
            })?;
        Ok(SignatureCheck {
            signed: self,
            verifier,
        })
    }
}

/// A signature being checked against its archive, one chunk at a time.
pub struct SignatureCheck<'a> {
    signed: &'a Signed,
    verifier: minisign_verify::StreamVerifier<'a>,
}

impl SignatureCheck<'_> {
    /// Hashes the next bytes of the archive.
    pub fn update(&mut self, bytes: &[u8]) {
        self.verifier.update(bytes);
    }

    /// Ends the check once the whole archive has gone through
    /// [`SignatureCheck::update`]: the signature and its trusted comment
    /// must verify, and the trusted comment (now known to be the signer's)
    /// must name no other file. Returns the signing key's id.
    pub fn finish(mut self, archive_url: &str) -> Result<KeyId, SignatureError> {
        let signed = self.signed;
        self.verifier.finalize().map_err(|_| SignatureError::Bad {
            url: signed.url.clone(),
            archive: archive_url.to_owned(),
            key_id: signed.key.id,
        })?;
        if let Some(named) =
            file_named_elsewhere(&signed.signature.trusted_comment, &signed.file_name)
        {
            return Err(SignatureError::OtherFile {
                url: signed.url.clone(),
                key_id: signed.key.id,
                named: named.to_owned(),
                file_name: signed.file_name.clone(),
            });
        }
        Ok(signed.key.id)
    }
}

/// A reader that feeds a [`SignatureCheck`] with every byte it reads.
pub struct CheckingReader<'a, R> {
    inner: R,
    check: Option<SignatureCheck<'a>>,
}

impl<'a, R: Read> CheckingReader<'a, R> {
    /// Reads `inner`, checking `check` (if any) on the way.
    pub fn new(inner: R, check: Option<SignatureCheck<'a>>) -> Self {
        CheckingReader { inner, check }
    }

    /// Reads what is left (nothing, after a reader that stops only at the
    /// end) and ends the check; `Ok(None)` when there was none.
    pub fn finish(mut self, archive_url: &str) -> Result<Option<KeyId>, FinishError> {
        io::copy(&mut self, &mut io::sink()).map_err(FinishError::Read)?;
        match self.check {
            Some(check) => check
                .finish(archive_url)
                .map(Some)
                .map_err(FinishError::Signature),
            None => Ok(None),
        }
    }
}

/// Why [`CheckingReader::finish`] failed.
#[derive(Debug)]
pub enum FinishError {
    /// The rest of the archive could not be read.
    Read(io::Error),
    /// The signature does not hold.
    Signature(SignatureError),
}

impl<R: Read> Read for CheckingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(check) = &mut self.check {
            check.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Why a signature was refused. Every one ends a command with exit 10.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The repository has the archive but no signature, and one is required.
    #[error(
        "{url}: not found, and repository {repository} requires a signature by one of the keys {pinned}"
    )]
    Missing {
        /// Where the signature should be.
        url: String,
        /// The repository.
        repository: String,
        /// The pinned key ids.
        pinned: String,
    },
    /// The signature is by a key not pinned for the repository.
    #[error(
        "{url} is signed by key {key_id}, which is not pinned for this repository (pinned: {pinned})"
    )]
    UntrustedKey {
        /// The signature.
        url: String,
        /// The key it names.
        key_id: KeyId,
        /// The pinned key ids.
        pinned: String,
    },
    /// The signature does not verify: the archive (or the signature, or its
    /// trusted comment) is not what the key signed.
    #[error(
        "bad signature {url} by key {key_id}: {archive} is not the file that key signed (altered or replaced)"
    )]
    Bad {
        /// The signature.
        url: String,
        /// The archive.
        archive: String,
        /// The key.
        key_id: KeyId,
    },
    /// A good signature, made for another file.
    #[error(
        "signature {url} by key {key_id} was made for `{named}`, not `{file_name}` (its trusted comment names the file)"
    )]
    OtherFile {
        /// The signature.
        url: String,
        /// The key.
        key_id: KeyId,
        /// The file its trusted comment names.
        named: String,
        /// The archive's file name.
        file_name: String,
    },
    /// A legacy (non-prehashed) signature.
    #[error(
        "{url}: legacy (not prehashed) signature by key {key_id} refused; sign with minisign's default (prehashed), not `minisign -l`"
    )]
    Legacy {
        /// The signature.
        url: String,
        /// The key it names.
        key_id: KeyId,
    },
    /// The signature file is not a minisign signature.
    #[error("malformed signature {url}: {reason}")]
    Malformed {
        /// The signature.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Coded for SignatureError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SignatureError::Missing { .. }
            | SignatureError::UntrustedKey { .. }
            | SignatureError::Bad { .. }
            | SignatureError::OtherFile { .. }
            | SignatureError::Legacy { .. }
            | SignatureError::Malformed { .. } => ExitCode::Signature,
        }
    }
}

/// Why a key pair could not be made or a secret key used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A secret key file is not one.
    #[error("{path} is not a minisign secret key: {reason}")]
    NotASecretKey {
        /// The file.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The secret key is encrypted and no password was given.
    #[error(
        "the secret key {path} is encrypted: set COPKG_KEY_PASSWORD, or run on a terminal to be asked for its password"
    )]
    PasswordNeeded {
        /// The file.
        path: String,
    },
    /// The password does not open the secret key.
    #[error("wrong password for the secret key {path}")]
    WrongPassword {
        /// The file.
        path: String,
    },
    /// A key file to be written already exists.
    #[error("{} already exists; keygen never overwrites a key", path.display())]
    Exists {
        /// The file.
        path: std::path::PathBuf,
    },
    /// A key file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The minisign library failed (randomness, key derivation).
    #[error("{action}: {message}")]
    Crypto {
        /// What was being done.
        action: &'static str,
        /// The library's message.
        message: String,
    },
}

impl Coded for KeyError {
    fn exit_code(&self) -> ExitCode {
        match self {
            KeyError::NotASecretKey { .. }
            | KeyError::PasswordNeeded { .. }
            | KeyError::WrongPassword { .. } => ExitCode::Usage,
            KeyError::Exists { .. } | KeyError::Io { .. } | KeyError::Crypto { .. } => {
                ExitCode::Failure
            }
        }
    }
}

fn crypto(action: &'static str) -> impl FnOnce(minisign::PError) -> KeyError {
    move |err| KeyError::Crypto {
        action,
        message: err.to_string(),
    }
}

/// A new key pair as minisign writes it.
pub struct KeyPairFiles {
    /// The key id.
    pub id: KeyId,
    /// The `.pub` file: an untrusted comment, then the public key in base64.
    pub public: String,
    /// The public key's base64 line alone (what `publicKeys` takes).
    pub public_base64: String,
    /// The `.key` file: the secret key, encrypted with the password if
    /// there is one (scrypt, as minisign), else not (as `minisign -W`).
    pub secret: String,
}

impl fmt::Debug for KeyPairFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPairFiles")
            .field("id", &self.id)
            .field("public_base64", &self.public_base64)
            .finish_non_exhaustive()
    }
}

/// Makes a key pair; the secret key is encrypted with `password`, or left
/// unencrypted (as `minisign -G -W`) without one.
pub fn generate_key_pair(password: Option<&str>) -> Result<KeyPairFiles, KeyError> {
    let pair = match password {
        Some(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password.to_owned())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(crypto("cannot make a key pair"))?;
    let id = key_id(pair.pk.keynum());
    let public_base64 = pair.pk.to_base64();
    let comment = match password {
        Some(_) => "minisign encrypted secret key",
        None => "minisign secret key, not encrypted",
    };
    let secret = pair
        .sk
        .to_box(Some(comment))
        .map_err(crypto("cannot write the secret key"))?
        .into_string();
    Ok(KeyPairFiles {
        id,
        public: format!("{UNTRUSTED_PREFIX}minisign public key {id}\n{public_base64}\n"),
        public_base64,
        secret,
    })
}

/// The files [`write_key_pair`] wrote.
#[derive(Debug)]
pub struct WrittenKeyPair {
    /// The key pair.
    pub pair: KeyPairFiles,
    /// `PREFIX.pub`.
    pub public_path: std::path::PathBuf,
    /// `PREFIX.key` (mode 0600).
    pub secret_path: std::path::PathBuf,
}

/// `PREFIX.pub` and `PREFIX.key`, refused when either exists.
pub fn key_pair_paths(
    prefix: &std::path::Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf), KeyError> {
    let with = |suffix: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(suffix);
        std::path::PathBuf::from(path)
    };
    let (public_path, secret_path) = (with(".pub"), with(".key"));
    for path in [&public_path, &secret_path] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    Ok((public_path, secret_path))
}

/// Makes a key pair ([`generate_key_pair`]) and writes it to `PREFIX.pub`
/// and `PREFIX.key` (0600), neither of which may exist; on failure,
/// neither is left behind.
pub fn write_key_pair(
    prefix: &std::path::Path,
    password: Option<&str>,
) -> Result<WrittenKeyPair, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (public_path, secret_path) = key_pair_paths(prefix)?;
    let pair = generate_key_pair(password)?;
    let mut created = Vec::new();
    let mut write = |path: &std::path::Path, mode: u32, text: &str| -> Result<(), KeyError> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => KeyError::Exists {
                    path: path.to_owned(),
                },
                _ => KeyError::Io {
                    action: "cannot create",
                    path: path.to_owned(),
                    source,
                },
            })?;
        created.push(path.to_owned());
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| KeyError::Io {
                action: "cannot write",
                path: path.to_owned(),
                source,
            })
    };
    let written = write(&secret_path, 0o600, &pair.secret)
        .and_then(|()| write(&public_path, 0o644, &pair.public));
    if let Err(err) = written {
        for path in &created {
            let _ = std::fs::remove_file(path);
        }
        return Err(err);
    }
    Ok(WrittenKeyPair {
        pair,
        public_path,
        secret_path,
    })
}

/// A secret key file, read but not yet opened.
pub struct SecretKeyFile {
    path: String,
    text: String,
    /// The decoded key.
    bytes: Vec<u8>,
    encrypted: bool,
}

impl SecretKeyFile {
    /// Reads a minisign secret key file (`path` is for messages): an
    /// untrusted comment, then the key in base64, encrypted (scrypt) or
    /// not (`minisign -W`).
    pub fn parse(path: &str, bytes: &[u8]) -> Result<SecretKeyFile, KeyError> {
        let refuse = |reason| KeyError::NotASecretKey {
            path: path.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| refuse("not UTF-8 text"))?;
        let mut lines = text.lines();
        if !lines
            .next()
            .is_some_and(|l| l.starts_with(UNTRUSTED_PREFIX))
        {
            return Err(refuse("the first line is not an untrusted comment"));
        }
        let key = lines
            .next()
            .and_then(|l| decode_base64(l.trim()))
            .ok_or(refuse("the second line is not base64"))?;
        // Algorithm, KDF, checksum algorithm, salt, limits, id, key, checksum.
        if key.len() != 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32 || key[..2] != LEGACY {
            return Err(refuse("not an Ed25519 secret key"));
        }
        let encrypted = match [key[2], key[3]] {
            [0, 0] => false,
            [b'S', b'c'] => true,
            _ => return Err(refuse("unknown key encryption")),
        };
        Ok(SecretKeyFile {
            path: path.to_owned(),
            text: text.to_owned(),
            bytes: key,
            encrypted,
        })
    }

    /// Whether a password is needed to open it.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Opens the key, with the password when it is encrypted. An
    /// unencrypted key's checksum is not checked: `minisign -W` (0.11)
    /// leaves it zero. Signing checks the key instead (a signature that
    /// its own public half does not verify is refused).
    pub fn open(self, password: Option<&str>) -> Result<Signer, KeyError> {
        let boxed = minisign::SecretKeyBox::from_string(&self.text)
            .map_err(crypto("cannot read the secret key"))?;
        let opened = match (self.encrypted, password) {
            (false, _) => minisign::SecretKey::from_bytes(&self.bytes),
            (true, Some(password)) => {
                minisign::SecretKey::from_box(boxed, Some(password.to_owned()))
            }
            (true, None) => return Err(KeyError::PasswordNeeded { path: self.path }),
        };
        let secret = opened.map_err(|err| match err.kind() {
            minisign::ErrorKind::Verify if self.encrypted => KeyError::WrongPassword {
                path: self.path.clone(),
            },
            minisign::ErrorKind::Verify => KeyError::NotASecretKey {
                path: self.path.clone(),
                reason: "its checksum does not match (corrupted)",
            },
            _ => crypto("cannot open the secret key")(err),
        })?;
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(crypto("cannot open the secret key"))?;
        Ok(Signer {
            id: key_id(secret.keynum()),
            secret,
            public,
        })
    }
}

/// An opened secret key, ready to sign.
pub struct Signer {
    /// Its key id.
    pub id: KeyId,
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Signs what `data` holds (read once, in constant memory), prehashed,
    /// with the trusted comment minisign writes by default:
    /// `timestamp:SECONDS<TAB>file:FILE_NAME<TAB>hashed`. Returns the
    /// `.minisig` text.
    pub fn sign(&self, data: impl Read, file_name: &str) -> Result<String, KeyError> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let trusted = format!("timestamp:{timestamp}\tfile:{file_name}\thashed");
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            data,
            Some(&trusted),
            Some("signature from copkg secret key"),
        )
        .map_err(crypto("cannot sign"))?;
        Ok(signature.into_string())
    }
}

/// Decodes standard base64 with padding, strictly: `None` for anything
/// else (other characters, missing or misplaced padding, stray bits).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let padding = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &b in &chunk[..4 - padding] {
            n = (n << 6) | value(b)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - padding;
        // Bits below the last whole byte must be zero (canonical encoding).
        if decoded[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_strictly() {
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        for bad in [
            "",
            "Zm9",
            "Zm=v",
            "Zg==Zg==",
            "Zh==",
            "Z===",
            "Zm9v!mFy",
            "Zm9v YmFy",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_ids_read_as_minisign_prints_them() {
        // minisign -G printed: "minisign public key 4955E11B43F3F52B".
        let key =
            TrustedKey::parse("RWQr9fNDG+FVSQy5cS1M4arZ4tsMxiVYR9eAqtfsF/ejQijiSzlUc7hb").unwrap();
        assert_eq!(key.id.to_string(), "4955E11B43F3F52B");
        // As minisign prints a .pub's comment: no leading zeros.
        assert_eq!(
            KeyId([0x0d, 0x02, 0x38, 0x06, 0x38, 0x00, 0x87, 0x0b]).to_string(),
            "B8700380638020D"
        );
        for (bad, why) in [
            ("not base64!", "not base64"),
            ("Zm9vYmFy", "not a minisign public key"),
            // A prehashed *signature* algorithm in a key slot.
            (
                "RUQr9fNDG+FVSQy5cS1M4arZ4tsMxiVYR9eAqtfsF/ejQijiSzlUc7hb",
                "not an Ed25519",
            ),
        ] {
            let err = TrustedKey::parse(bad).unwrap_err();
            assert!(err.starts_with(why), "{bad}: {err}");
        }
    }

    /// What minisign 0.11 wrote for `minisign -S` of a file `f.tar.gz`
    /// holding "hi\n", with the key above.
    const SIGNATURE: &str = "untrusted comment: signature from minisign secret key
RUQr9fNDG+FVSSvkYoqCTI4RDVxi4cNoiioqPvq6KPvOcaE6Wm3q48D7XPkEyrfC+z08zpAc7G1VpuTb0UOfkPIlAfs5SNZssAk=
trusted comment: timestamp:1795630236\tfile:f.tar.gz\thashed
zG6SXsh8jQymvP/do9F3/L5C4euPQxnGHADB4aqLkcTVcvJvqpcMsaYwvPFX9jD5ofrGEzGP6m/bviTu6vFXBg==
";

    fn policy() -> SignaturePolicy {
        SignaturePolicy {
            mode: SignatureMode::Required,
            keys: vec![
                TrustedKey::parse("RWQr9fNDG+FVSQy5cS1M4arZ4tsMxiVYR9eAqtfsF/ejQijiSzlUc7hb")
                    .unwrap(),
            ],
        }
    }

    fn check(data: &[u8], signature: &str, file_name: &str) -> Result<KeyId, SignatureError> {
        let signed = policy().accept(signature.as_bytes(), "sig", file_name)?;
        let mut reader = CheckingReader::new(data, Some(signed.check()?));
        io::copy(&mut reader, &mut io::sink()).unwrap();
        match reader.finish("archive") {
            Ok(id) => Ok(id.unwrap()),
            Err(FinishError::Signature(err)) => Err(err),
            Err(FinishError::Read(err)) => panic!("{err}"),
        }
    }

    #[test]
    fn a_signature_made_by_minisign_verifies_as_it_streams() {
        assert_eq!(
            check(b"hi\n", SIGNATURE, "f.tar.gz").unwrap().to_string(),
            "4955E11B43F3F52B"
        );
        // CRLF line ends read the same.
        let crlf = SIGNATURE.replace('\n', "\r\n");
        assert!(check(b"hi\n", &crlf, "f.tar.gz").is_ok());
        assert!(matches!(
            check(b"hi!\n", SIGNATURE, "f.tar.gz"),
            Err(SignatureError::Bad { .. })
        ));
        // A trusted comment naming another file, and one edited to name
        // this one (the global signature no longer holds).
        assert!(matches!(
            check(b"hi\n", SIGNATURE, "g.tar.gz"),
            Err(SignatureError::OtherFile { ref named, .. }) if named == "f.tar.gz"
        ));
        let edited = SIGNATURE.replace("file:f.tar.gz", "file:g.tar.gz");
        assert!(matches!(
            check(b"hi\n", &edited, "g.tar.gz"),
            Err(SignatureError::Bad { .. })
        ));
    }

    #[test]
    fn malformed_and_legacy_signatures_are_refused_by_the_parser() {
        let lines: Vec<&str> = SIGNATURE.lines().collect();
        let legacy_line = lines[1].replacen("RUQ", "RWQ", 1);
        let legacy = SIGNATURE.replace(lines[1], &legacy_line);
        assert_eq!(
            parse_signature(legacy.as_bytes()).unwrap_err(),
            MalformedSignature::Legacy {
                key_id: policy().keys[0].id
            }
        );
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "not four lines"),
            (format!("{SIGNATURE}extra\n"), "not four lines"),
            (
                SIGNATURE.replace("untrusted comment: ", "comment: "),
                "untrusted comment",
            ),
            (
                SIGNATURE.replace("trusted comment: t", "trusted: t"),
                "trusted comment",
            ),
            (SIGNATURE.replace(lines[1], "RUQ"), "not base64"),
            (SIGNATURE.replace(lines[1], "RUQr9fND"), "wrong length"),
            (SIGNATURE.replace(lines[3], &lines[3][1..]), "not base64"),
            (SIGNATURE.replace(lines[3], &lines[3][4..]), "wrong length"),
            (
                SIGNATURE.replace("timestamp:", "time\u{1b}stamp:"),
                "control characters",
            ),
            (
                SIGNATURE.replace(&lines[1][..3], "AAA"),
                "unknown signature algorithm",
            ),
        ];
        for (text, want) in cases {
            match parse_signature(text.as_bytes()) {
                Err(MalformedSignature::Invalid(reason)) => {
                    assert!(reason.contains(want), "{want}: got {reason}")
                }
                other => panic!("{want}: got {other:?}"),
            }
        }
        assert!(parse_signature(&[0xff; 8]).is_err());
        assert!(parse_signature(&vec![b'a'; SIGNATURE_LIMIT as usize + 1]).is_err());
    }

    #[test]
    fn the_trusted_comment_rule_reads_file_fields() {
        let cases = [
            ("timestamp:1\tfile:a.tar.gz\thashed", "a.tar.gz", None),
            (
                "timestamp:1\tfile:b.tar.gz\thashed",
                "a.tar.gz",
                Some("b.tar.gz"),
            ),
            ("release 1.0 file:a.tar.gz", "a.tar.gz", None),
            ("release 1.0", "a.tar.gz", None),
            ("file:a.tar.gz file:b.tar.gz", "a.tar.gz", Some("b.tar.gz")),
            ("file:", "a.tar.gz", Some("")),
            ("myfile:b.tar.gz", "a.tar.gz", None),
        ];
        for (comment, name, want) in cases {
            assert_eq!(file_named_elsewhere(comment, name), want, "{comment}");
        }
    }

    #[test]
    fn keys_made_here_sign_what_the_verifier_accepts() {
        let pair = generate_key_pair(None).unwrap();
        let key = TrustedKey::parse(&pair.public_base64).unwrap();
        assert_eq!(key.id, pair.id);
        let file = SecretKeyFile::parse("k", pair.secret.as_bytes()).unwrap();
        assert!(!file.is_encrypted());
        let signer = file.open(None).unwrap();
        let signature = signer.sign(&b"package bytes"[..], "p.tar.gz").unwrap();
        let policy = SignaturePolicy {
            mode: SignatureMode::Required,
            keys: vec![key],
        };
        let signed = policy
            .accept(signature.as_bytes(), "sig", "p.tar.gz")
            .unwrap();
        let mut reader = CheckingReader::new(&b"package bytes"[..], Some(signed.check().unwrap()));
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert!(matches!(reader.finish("archive"), Ok(Some(id)) if id == pair.id));
        // Another key's signature is by an untrusted key.
        let other = generate_key_pair(None).unwrap();
        let other_signer = SecretKeyFile::parse("o", other.secret.as_bytes())
            .unwrap()
            .open(None)
            .unwrap();
        let foreign = other_signer
            .sign(&b"package bytes"[..], "p.tar.gz")
            .unwrap();
        assert!(matches!(
            policy.accept(foreign.as_bytes(), "sig", "p.tar.gz"),
            Err(SignatureError::UntrustedKey { key_id, .. }) if key_id == other.id
        ));
    }

    #[test]
    fn an_encrypted_key_opens_only_with_its_password() {
        let pair = generate_key_pair(Some("correct horse")).unwrap();
        let parse = || SecretKeyFile::parse("k", pair.secret.as_bytes()).unwrap();
        assert!(parse().is_encrypted());
        assert!(matches!(
            parse().open(Some("wrong")),
            Err(KeyError::WrongPassword { .. })
        ));
        assert!(matches!(
            parse().open(None),
            Err(KeyError::PasswordNeeded { .. })
        ));
        assert_eq!(parse().open(Some("correct horse")).unwrap().id, pair.id);
        assert!(matches!(
            SecretKeyFile::parse("k", pair.public.as_bytes()),
            Err(KeyError::NotASecretKey { .. })
        ));
    }
}
