//! Integration tests: the simulator over real HTTP, with a webhook receiver on loopback.
//! One test binary (modules below) keeps link time down.

mod delivery;
mod fetch_script;
mod helpers;
mod rest;
mod scenarios;
