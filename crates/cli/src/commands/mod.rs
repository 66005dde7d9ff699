//! One module per subcommand.

pub mod archive;
pub mod demo;
pub mod documents;
pub mod emulator;
pub mod key;
pub mod mapping;
pub mod odata;
pub mod reconcile;
pub mod reload;
pub mod run;
pub mod status;
pub mod token;
