//! The `orchestrator` library: everything the commands do, without the terminal.
//! The binary (`main.rs`, `commands/`, `ui.rs`) parses arguments, renders
//! progress and maps errors to exit codes.

pub mod config;
pub mod dashboard;
pub mod demo;
pub mod deploy;
pub mod error;
pub mod k3s_release;
pub mod kubeapi;
pub mod kubeconfig;
pub mod lifecycle;
pub mod logs;
pub mod nodes;
pub mod preflight;
pub mod prereq;
pub mod process;
pub mod reporter;
pub mod stack;
pub mod state;
pub mod vagrant;
pub mod verify;
