//! AegisIR's integration tests, in one test binary.
//!
//! They drive the `aegisir` binary that cargo built: `serve` on a loopback port with a local
//! Slack capture server, the `snapshot` and `verify` commands, and an end-to-end run with the
//! real Prometheus, Alertmanager and node_exporter from Debian's packages.

mod alertmanager;
mod cli;
mod readback;
mod real_fixture;
mod serve;
mod slack_mock;
mod support;
