//! What this binary is: version, git commit and build profile, fixed at build time.

use serde::Serialize;

/// The build of a node, as `/version` shows it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BuildInfo {
    /// The crate version.
    pub version: &'static str,
    /// The git commit (12 hex digits), or `unknown` when built outside a checkout.
    pub commit: &'static str,
    /// `release` or `debug`.
    pub profile: &'static str,
}

impl BuildInfo {
    /// This binary's build.
    pub const CURRENT: BuildInfo = BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("ROOMCAST_GIT_COMMIT"),
        profile: env!("ROOMCAST_BUILD_PROFILE"),
    };

    /// One line for `roomcast --version`.
    pub const LONG_VERSION: &'static str = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("ROOMCAST_GIT_COMMIT"),
        ", ",
        env!("ROOMCAST_BUILD_PROFILE"),
        " build)"
    );
}
