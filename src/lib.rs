//! copkg: installs self-contained software packages atomically and verified,
//! and launches the services in them; site policy lives in Lua.
//!
//! Data flows one way: [`cli`] → [`settings`] → [`commands`] → the core
//! modules ([`coordinate`], [`repo`], [`extract`], [`store`], [`pack`]),
//! which never print.

pub mod account;
pub mod bounded;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod coordinate;
pub mod declared;
pub mod exit;
pub mod extract;
pub mod interrupt;
pub mod inventory;
pub mod journal;
pub mod lifecycle;
pub mod lock;
pub mod lua;
pub mod pack;
pub mod parallel;
pub mod platform;
pub mod process;
pub mod ready;
pub mod repo;
pub mod rundir;
pub mod runtime;
pub mod safepath;
pub mod service;
pub mod settings;
pub mod signature;
pub mod state;
pub mod store;
pub mod supervise;
pub mod version;

#[cfg(test)]
mod layering {
    //! Data flows one way: cli → settings → commands → core, and the Lua
    //! host sits beside the commands. These tests read the sources and fail
    //! when a module imports a layer above it.

    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Each source file (relative to src/) with the layers it names.
    fn imports() -> Vec<(String, Vec<&'static str>)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                let relative = path.strip_prefix(&src).unwrap().display().to_string();
                let in_lua = relative.starts_with("lua/");
                let in_commands = relative.starts_with("commands/");
                let mut named = Vec::new();
                for (layer, patterns) in [
                    ("commands", ["crate::commands", "copkg::commands"]),
                    ("lua", ["crate::lua", "copkg::lua"]),
                ] {
                    let own = (layer == "lua" && in_lua) || (layer == "commands" && in_commands);
                    if !own && patterns.iter().any(|p| text.contains(p)) {
                        named.push(layer);
                    }
                }
                (relative, named)
            })
            .collect()
    }

    #[test]
    fn core_modules_import_neither_the_commands_nor_the_lua_host() {
        let top = ["lib.rs", "main.rs"];
        let offenders: Vec<String> = imports()
            .into_iter()
            .filter(|(file, named)| {
                let core = !file.starts_with("lua/")
                    && !file.starts_with("commands/")
                    && !top.contains(&file.as_str());
                (core && !named.is_empty())
                    || (file.starts_with("lua/") && named.contains(&"commands"))
            })
            .map(|(file, named)| format!("{file} imports {}", named.join(" and ")))
            .collect();
        assert!(offenders.is_empty(), "layering broken: {offenders:?}");
    }

    #[test]
    fn the_check_sees_an_import() {
        // The scan must find the imports that do exist, or it proves nothing.
        let all = imports();
        let commands_mod = all.iter().find(|(f, _)| f == "commands/mod.rs").unwrap();
        assert_eq!(commands_mod.1, ["lua"]);
        let main = all.iter().find(|(f, _)| f == "main.rs").unwrap();
        assert_eq!(main.1, ["commands"]);
    }

    #[test]
    fn exit_codes_know_no_error_type() {
        let exit = include_str!("exit.rs");
        assert!(!exit.contains("use crate::"), "exit.rs imports a module");
    }
}
