//! The web console for store IT and the glasses' terminal page: static pages compiled into the
//! binary (no CDN). They hold no data; every call they make needs a key (admin for the console,
//! terminal for the terminal page). Each page is served with a content security policy that
//! runs only its own script (by hash) and `events.js`, talks only to this service, and lets no
//! other site frame it.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const CONSOLE: &str = include_str!("console.html");
const TERMINAL: &str = include_str!("terminal.html");

static CONSOLE_POLICY: LazyLock<String> = LazyLock::new(|| policy(CONSOLE, "'none'"));
// the console previews the terminal page in a frame
static TERMINAL_POLICY: LazyLock<String> = LazyLock::new(|| policy(TERMINAL, "'self'"));

pub async fn console() -> Response {
    page(CONSOLE, &CONSOLE_POLICY)
}

pub async fn terminal() -> Response {
    page(TERMINAL, &TERMINAL_POLICY)
}

pub async fn events_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("events.js"),
    )
}

fn page(html: &'static str, policy: &str) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, policy),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

/// The policy for `html`: its inline scripts allowed by their SHA-256, nothing else inline.
fn policy(html: &str, framed_by: &str) -> String {
    let scripts: Vec<String> = inline_scripts(html)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'self'; script-src 'self' {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' blob: data:; connect-src 'self'; frame-src 'self'; \
         frame-ancestors {framed_by}; base-uri 'none'; form-action 'self'; object-src 'none'",
        scripts.join(" ")
    )
}

/// The text of each `<script>` element without a `src`.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</script>").map(|(script, _)| script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_allows_exactly_its_own_inline_script() {
        for (html, policy) in [(CONSOLE, &*CONSOLE_POLICY), (TERMINAL, &*TERMINAL_POLICY)] {
            let scripts: Vec<&str> = inline_scripts(html).collect();
            assert_eq!(scripts.len(), 1, "one inline script per page");
            assert_eq!(policy.matches("'sha256-").count(), 1, "{policy}");
            assert!(
                !policy.contains("script-src 'self' 'unsafe-inline'"),
                "{policy}"
            );
        }
        assert!(CONSOLE_POLICY.contains("frame-ancestors 'none'"));
        assert!(TERMINAL_POLICY.contains("frame-ancestors 'self'"));
    }
}
