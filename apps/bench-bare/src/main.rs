//! `bench-bare`: a bare actix-web handler answering `GET /` with a small JSON body, on
//! `127.0.0.1:$PORT` with as many workers as the server would start (`SAGE_WORKERS`, else one
//! per core). `cargo xtask bench crud` measures it next to the server's routes as the
//! physical limit of this machine.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn bare() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"success":true,"data":{"status":"healthy"}}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let workers = std::env::var("SAGE_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|w| *w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    HttpServer::new(|| App::new().route("/", web::get().to(bare)))
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
