//! Logging, and (feature `otel`) traces exported over OTLP/HTTP.

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// Keeps the trace exporter alive; dropping it flushes what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`). With feature `otel` and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, also exports every span (the request span with its
/// `edge.*` fields among them) to that collector over OTLP/HTTP.
pub fn init() -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let registry = tracing_subscriber::registry().with(fmt);

    #[cfg(feature = "otel")]
    {
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty());
        if let Some(endpoint) = endpoint {
            match otlp_provider() {
                Ok(provider) => {
                    use opentelemetry::trace::TracerProvider as _;
                    let tracer = provider.tracer("tower-edge-example-server");
                    registry
                        .with(tracing_opentelemetry::layer().with_tracer(tracer))
                        .init();
                    tracing::info!(%endpoint, "exporting traces over OTLP");
                    return Telemetry {
                        provider: Some(provider),
                    };
                }
                Err(e) => eprintln!("warning: OTLP exporter not started: {e}"),
            }
        }
    }
    registry.init();
    Telemetry::default()
}

#[cfg(feature = "otel")]
fn otlp_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    // The endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("tower-edge-example-server")
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
