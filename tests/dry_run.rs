//! `--dry-run` on every command that changes the machine, run as Ansible's
//! own module tests run: a dry run, the real run, a dry run again and the
//! real run again. A dry run changes no file under the roots (not even a
//! lock or the journal), says in `changed` what the real run then changes,
//! and refuses what the real run would refuse, with the same exit code.
//! The JSON every command prints is checked against docs/json.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

const SVC: &str = "1.ticker.dry.local";
const OLD: &str = "com.example:ticker:1.0";
const NEW: &str = "com.example:ticker:1.1";

/// Every path under the sandbox but the repository and the files the
/// service writes itself, with what would show
/// a change: type, size, mode, owner, modification time and, for files,
/// their bytes.
fn snapshot(sandbox: &Sandbox) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            // The repository, and what the service itself writes.
            if relative == "repo"
                || relative.starts_with(&format!("runtime/{SVC}/log/"))
                || relative.starts_with(&format!("runtime/{SVC}/console/"))
            {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mut seen = format!(
                "{:o} {} {}:{} {}.{}",
                meta.mode(),
                meta.len(),
                meta.uid(),
                meta.gid(),
                meta.mtime(),
                meta.mtime_nsec()
            );
            if meta.is_file() {
                seen.push_str(&format!(" {}", sha256_hex(&std::fs::read(&path).unwrap())));
            }
            out.insert(relative, seen);
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(sandbox.path(), sandbox.path(), &mut out);
    out
}

/// Asserts nothing changed between two snapshots, naming what did.
fn assert_same(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>, what: &str) {
    let differ: Vec<String> = before
        .iter()
        .filter(|(path, seen)| after.get(*path) != Some(seen))
        .map(|(path, seen)| format!("{path}: {seen} -> {:?}", after.get(path)))
        .chain(
            after
                .keys()
                .filter(|path| !before.contains_key(*path))
                .map(|path| format!("{path}: made")),
        )
        .collect();
    assert!(differ.is_empty(), "{what} changed files: {differ:#?}");
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// Whether any result line says it changed something.
fn changed(results: &[serde_json::Value]) -> bool {
    results.iter().any(|r| {
        r["changed"]
            .as_bool()
            .unwrap_or_else(|| panic!("no `changed` in {r}"))
    })
}

struct Runs<'a> {
    sandbox: &'a Sandbox,
    /// The keys of each JSON result seen, by the name docs/json.md uses.
    keys: BTreeMap<String, BTreeSet<String>>,
}

impl Runs<'_> {
    fn copkg(&self, dry_run: bool, args: &[&str]) -> Output {
        let mut cmd = self.sandbox.copkg();
        cmd.arg("--repo").arg(self.sandbox.repo()).arg("--json");
        if dry_run {
            cmd.arg("--dry-run");
        }
        run(cmd.args(args))
    }

    fn note(&mut self, name: &str, results: &[serde_json::Value]) {
        for result in results {
            let keys = result.as_object().unwrap().keys().cloned().collect();
            // The first result of a kind is the one that changed something.
            self.keys.entry(name.to_owned()).or_insert(keys);
        }
    }

    /// A dry run, then the real run; each must say `expected` for
    /// `changed`, and the dry run must leave every file as it was. Returns
    /// the dry run's plain-text plan.
    fn once(&mut self, args: &[&str], expected: bool) -> String {
        let before = snapshot(self.sandbox);
        let dry = self.copkg(true, args);
        assert_eq!(dry.code, 0, "dry run of {args:?}: {dry:?}");
        let planned = lines(&dry);
        assert!(
            planned.iter().all(|r| r["dry_run"] == true),
            "{args:?}: {planned:?}"
        );
        assert_eq!(
            changed(&planned),
            expected,
            "dry run of {args:?}: {planned:?}"
        );
        assert_same(
            &before,
            &snapshot(self.sandbox),
            &format!("the dry run of {args:?}"),
        );
        self.note(&format!("{} --dry-run", args[0]), &planned);

        let text = run(self
            .sandbox
            .copkg()
            .arg("--repo")
            .arg(self.sandbox.repo())
            .arg("--dry-run")
            .args(args));
        assert_eq!(text.code, 0, "{text:?}");
        assert_same(&before, &snapshot(self.sandbox), &format!("{args:?}"));

        let real = self.copkg(false, args);
        assert_eq!(real.code, 0, "{args:?}: {real:?}");
        let done = lines(&real);
        assert_eq!(changed(&done), expected, "{args:?}: {done:?}");
        self.note(args[0], &done);
        text.stdout
    }

    /// The four runs of an idempotent change: dry, real (both changing),
    /// dry and real again (neither changing).
    fn four(&mut self, args: &[&str]) -> String {
        let plan = self.once(args, true);
        self.once(args, false);
        plan
    }

    /// A dry run that the real run would refuse: the same code, no change.
    fn refused(&self, args: &[&str], code: i32) {
        let before = snapshot(self.sandbox);
        let dry = self.copkg(true, args);
        assert_same(&before, &snapshot(self.sandbox), &format!("{args:?}"));
        let real_would = self.copkg(false, args);
        assert_eq!(
            (dry.code, real_would.code),
            (code, code),
            "{args:?}: {dry:?} / {real_would:?}"
        );
    }
}

#[test]
fn a_dry_run_says_what_the_real_run_changes_and_changes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.pack(&example_dir("ticker"), OLD);
    sandbox.pack(&example_dir("ticker"), NEW);
    let mut runs = Runs {
        sandbox: &sandbox,
        keys: BTreeMap::new(),
    };
    // Nothing was ever started here: no state dir, and a dry run makes none.
    runs.refused(&["stop", SVC], 11);
    runs.refused(&["start", OLD, SVC], 3);

    // The repositories are asked, as the install would ask them: a
    // package none has is not found (exit 3), dry or not.
    runs.refused(&["install", "com.example:nothing:1.0"], 3);
    let plan = runs.four(&["install", OLD]);
    let dir = sandbox.root().join("com/example/ticker/1.0");
    let archive = sandbox
        .repo()
        .join("com/example/ticker/1.0/ticker-1.0-copkg.tar.gz");
    let sidecar = std::fs::read_to_string(archive.with_extension("gz.sha256")).unwrap();
    assert_eq!(
        plan,
        format!(
            "would install {OLD} into {} from {}, sha256 {}\n",
            dir.display(),
            archive.display(),
            sidecar.split_whitespace().next().unwrap()
        )
    );
    let plan = runs.four(&["start", "--user", "root", OLD, SVC, "--", "600"]);
    assert!(
        plan.starts_with(&format!("would start {SVC} from {OLD} in ")),
        "{plan}"
    );
    // Other arguments while it runs: refused, dry or not.
    runs.refused(&["start", "--user", "root", OLD, SVC, "--", "601"], 6);
    // Its package is in use.
    runs.refused(&["uninstall", OLD], 6);
    runs.four(&["enable", SVC]);

    // Upgrade and restart change every time.
    let plan = runs.once(&["upgrade", SVC, NEW], true);
    let steps: Vec<&str> = plan.lines().collect();
    assert_eq!(steps.len(), 4, "{plan}");
    assert!(
        steps[0].starts_with(&format!("would install {NEW} into ")),
        "{plan}"
    );
    assert!(
        steps[1].starts_with(&format!("would stop {SVC} (runs {OLD}, pid ")),
        "{plan}"
    );
    assert!(
        steps[2].starts_with(&format!("would start {SVC} from {NEW} in ")),
        "{plan}"
    );
    assert_eq!(
        steps[3],
        format!("would if it fails or never becomes ready: start {OLD} again")
    );
    runs.once(&["restart", SVC], true);
    runs.once(&["restart", SVC], true);

    runs.four(&["disable", SVC]);
    runs.four(&["stop", SVC]);
    // Stopped but registered: the package is still in use, without --force.
    runs.refused(&["uninstall", NEW], 6);
    runs.four(&["cleanup", SVC]);
    let plan = runs.four(&["uninstall", OLD, NEW]);
    assert_eq!(plan.lines().count(), 2, "{plan}");
    assert!(
        plan.starts_with(&format!("would uninstall {OLD} from ")),
        "{plan}"
    );

    // Commands that cannot plan refuse --dry-run, changing nothing.
    let before = snapshot(&sandbox);
    let out = runs.copkg(true, &["reload", SVC]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            2,
            "error: `copkg reload` has no --dry-run (see `copkg reload --help`)\n"
        )
    );
    assert_same(&before, &snapshot(&sandbox), "reload");

    check_documented(&runs.keys);
}

/// The JSON results documented in docs/json.md: each `<!-- json: NAME -->`
/// marker followed by a ```json block with an example result.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md"))
        .unwrap();
    let mut out = BTreeMap::new();
    let mut rest = doc.as_str();
    while let Some(at) = rest.find("<!-- json: ") {
        rest = &rest[at + "<!-- json: ".len()..];
        let (name, after) = rest.split_once(" -->").unwrap();
        let block = after.split_once("```json\n").unwrap().1;
        let block = block.split_once("```").unwrap().0;
        let value: serde_json::Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("docs/json.md, {name}: {e}"));
        let keys = value.as_object().unwrap().keys().cloned().collect();
        out.insert(name.to_owned(), keys);
        rest = after;
    }
    out
}

fn check_documented(seen: &BTreeMap<String, BTreeSet<String>>) {
    let documented = documented();
    for (name, keys) in seen {
        assert_eq!(
            Some(keys),
            documented.get(name),
            "the JSON of `{name}` differs from docs/json.md"
        );
    }
}

#[test]
fn the_json_of_every_reading_command_is_as_documented() {
    let sandbox = Sandbox::new();
    sandbox.pack_and_install(&example_dir("ticker"), OLD);
    let copkg = |args: &[&str]| {
        let out = run(sandbox
            .copkg()
            .arg("--repo")
            .arg(sandbox.repo())
            .arg("--json")
            .args(args));
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        lines(&out)
    };
    let mut seen = BTreeMap::new();
    let mut note = |name: &str, results: Vec<serde_json::Value>| {
        assert!(!results.is_empty(), "{name} printed nothing");
        for result in results {
            assert!(result.get("changed").is_some(), "{name}: {result}");
            seen.insert(
                name.to_owned(),
                result.as_object().unwrap().keys().cloned().collect(),
            );
        }
    };
    note("start", copkg(&["start", "--user", "root", OLD, SVC]));
    note("list", copkg(&["list"]));
    note("resolve", copkg(&["resolve", OLD]));
    note("verify", copkg(&["verify", OLD]));
    note("status", copkg(&["status", SVC]));
    note("reload", copkg(&["reload", SVC]));
    note("clean-logs", copkg(&["clean-logs", SVC]));
    note("restart", copkg(&["restart", SVC]));
    note("stop", copkg(&["stop", SVC]));
    note("cleanup", copkg(&["cleanup", SVC]));
    note("prune", copkg(&["prune", "--keep", "1"]));
    note("pack", {
        let out = run(sandbox
            .copkg()
            .arg("--json")
            .arg("pack")
            .arg(example_dir("ticker"))
            .args(["--coordinate", "com.example:ticker:2.0", "--out"])
            .arg(sandbox.repo()));
        assert_eq!(out.code, 0, "{out:?}");
        lines(&out)
    });
    note("site", copkg(&["site"]));
    note("history", copkg(&["history", SVC]));
    check_documented(&seen);
}
