//! Integration tests for the emulator: every feature over real HTTP(S).

mod support;

mod auth;
mod collections;
mod control;
mod errors;
mod fixtures;
mod query;
mod rest;
