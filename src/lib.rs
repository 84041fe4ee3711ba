//! AegisIR: incident-response capture for Prometheus Alertmanager.
//!
//! An alert arrives at the [`server`], the [`intake`] records it in the events journal and
//! decides whether it starts a capture, the [`worker`] captures the host through
//! `aegisir-platform`, the [`store`] writes a verifiable bundle, and [`slack`] tells the team.

pub mod alert;
pub mod auth;
pub mod cli;
pub mod config;
pub mod diff;
pub mod health;
pub mod history;
pub mod incidents;
pub mod intake;
pub mod metrics;
pub mod pending;
pub mod redact;
pub mod report;
pub mod server;
pub mod slack;
pub mod space;
pub mod store;
pub mod tls;
pub mod worker;
