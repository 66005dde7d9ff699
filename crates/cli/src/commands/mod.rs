//! One module per subcommand.

pub mod demo;
pub mod emulator;
pub mod mappings;
pub mod reconcile;
pub mod reload;
pub mod run;
pub mod status;
