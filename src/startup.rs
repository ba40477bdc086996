//! Builds the whole service — models, gallery, API keys, cameras, HTTP server — on a bound
//! port. `greeter serve` and the integration tests start it through the same code.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use axum_server::accept::DefaultAcceptor;

use crate::api::connections::ConnectionCap;
use crate::api::{self, AppState, Keys};
use crate::config::Settings;
use crate::engine::Engine;

type ServerFuture = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

pub struct Application {
    port: u16,
    tls: bool,
    engine: Arc<Engine>,
    stop: CancellationToken,
    server: ServerFuture,
}

impl Application {
    /// Loads everything and binds `server.bind` (port 0: any free port). Nothing is served until
    /// `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let bind = settings.server.bind.clone();
        let tls = settings
            .server
            .tls_cert
            .clone()
            .zip(settings.server.tls_key.clone());
        let engine_settings = settings.engine();
        let engine = tokio::task::spawn_blocking(move || Engine::load(engine_settings))
            .await
            .context("loading the engine panicked")??;
        let engine = Arc::new(engine);
        let keys = Keys::load(&settings.auth, &settings.gallery.data_dir)?;
        crate::telemetry::metrics();
        let stop = CancellationToken::new();
        let app = api::router(AppState {
            engine: engine.clone(),
            server: Arc::new(settings.server.clone()),
            keys: Arc::new(keys),
            stop: stop.clone(),
        });
        let listener = std::net::TcpListener::bind(&bind)
            .with_context(|| format!("cannot listen on {bind}"))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        // One server for HTTP and HTTPS: hyper closes connections that send no complete request
        // head in time (idle, half-sent, slowloris), and the cap bounds what is open at once.
        let handle = axum_server::Handle::new();
        tokio::spawn({
            let (handle, stop) = (handle.clone(), stop.clone());
            async move {
                stop.cancelled().await;
                handle.graceful_shutdown(Some(Duration::from_secs(5)));
            }
        });
        // HTTP/1.1 only (glasses, tills and browsers all speak it): the header timeouts below are
        // HTTP/1's, and an HTTP/2 connection would idle outside them
        let header_timeout = Duration::from_millis(settings.server.header_read_timeout_ms);
        let mut server = axum_server::from_tcp(listener)?
            .handle(handle)
            .http1_only()
            // a new connection that sends no request at all
            .first_request_timeout(header_timeout);
        // a request head sent too slowly, or a kept-alive connection idle between requests
        server
            .http_builder()
            .http1()
            .header_read_timeout(header_timeout);
        let capped = ConnectionCap::new(DefaultAcceptor, settings.server.max_connections);
        let server: ServerFuture = match &tls {
            Some((cert, key)) => {
                // one process-wide crypto provider; a second install (tests) is harmless
                let _ = rustls::crypto::ring::default_provider().install_default();
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot load TLS certificate {} / key {}",
                            cert.display(),
                            key.display()
                        )
                    })?;
                let mut rustls = (*config.get_inner()).clone();
                rustls.alpn_protocols = vec![b"http/1.1".to_vec()];
                let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(rustls));
                let tls = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(capped);
                Box::pin(
                    server
                        .acceptor(tls)
                        .serve(app.into_make_service_with_connect_info::<SocketAddr>()),
                )
            }
            None => Box::pin(
                server
                    .acceptor(capped)
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>()),
            ),
        };
        engine.start(&stop);
        tracing::info!(port, tls = tls.is_some(), "greeter listening");
        Ok(Application {
            port,
            tls: tls.is_some(),
            engine,
            stop,
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Cancelling it stops the cameras and shuts the server down gracefully.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.stop.cancel();
        let engine = self.engine.clone();
        if let Err(e) = crate::engine::gate::blocking(move || engine.close()).await {
            tracing::warn!(error = %crate::telemetry::chain(&e), "vector index not saved at stop (rebuilt from the store at the next start)");
        }
        result
    }
}
