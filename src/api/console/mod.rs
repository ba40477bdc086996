//! The web console for store IT and the glasses' terminal page: static pages compiled into the
//! binary (no CDN). They hold no data; every call they make needs a key (admin for the console,
//! terminal for the terminal page).

use axum::http::header;
use axum::response::{Html, IntoResponse};

pub async fn console() -> Html<&'static str> {
    Html(include_str!("console.html"))
}

pub async fn terminal() -> Html<&'static str> {
    Html(include_str!("terminal.html"))
}

pub async fn events_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("events.js"),
    )
}
