//! copkg: installs self-contained software packages atomically and verified,
//! and launches the services in them; site policy lives in Lua.
//!
//! Data flows one way: [`cli`] → [`settings`] → [`commands`] → the core
//! modules ([`coordinate`], [`repo`], [`extract`], [`store`], [`pack`]),
//! which never print.

pub mod cli;
pub mod commands;
pub mod coordinate;
pub mod exit;
pub mod extract;
pub mod lock;
pub mod lua;
pub mod pack;
pub mod process;
pub mod repo;
pub mod rundir;
pub mod runtime;
pub mod service;
pub mod settings;
pub mod store;
