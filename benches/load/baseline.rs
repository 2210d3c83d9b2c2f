//! The yardstick: the cheapest actix-web server there is (one handler, a constant answer), with
//! the app's worker count, measured in the same process with the same load generator. Every
//! figure is also reported as a fraction of its requests/second, which factors out this
//! machine and the generator's own cost.

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use crate::harness::APP_WORKERS;

pub struct Baseline {
    pub url: String,
    server: ServerHandle,
}

impl Baseline {
    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

pub fn start() -> anyhow::Result<Baseline> {
    let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "ok" })))
        .workers(APP_WORKERS)
        .bind("127.0.0.1:0")?;
    let url = format!("http://{}/", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Baseline { url, server: handle })
}
