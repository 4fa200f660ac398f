//! `[telemetry]`: trace export.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Trace export over OTLP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://collector:4318`); spans are POSTed as
    /// JSON to `<url>/v1/traces`. Default: unset, no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans. Default `roomcast`.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "roomcast".into() }
    }
}

impl TelemetryConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("telemetry.otlp_endpoint", "must be an http(s) URL"));
        }
        if self.service_name.is_empty() {
            return Err(invalid("telemetry.service_name", "must not be empty"));
        }
        Ok(())
    }
}
