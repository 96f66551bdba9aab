//! GraphiQL on `GET /graphql`, with nothing fetched from the internet: the
//! page is written here and its scripts, stylesheet and licences (React,
//! ReactDOM, GraphiQL) are embedded in the binary and served from
//! `GET /graphql/assets/{file}` and `GET /graphql/assets/licenses/{file}`.
//!
//! The files come from the npm registry at the versions pinned in
//! scripts/vendor-assets.sh, which writes them to assets/vendor/ (gitignored;
//! scripts/env.sh runs it before every build).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

// A vendored file under assets/vendor/, embedded in the binary.
macro_rules! vendored {
    ($file:literal) => {
        // Missing file at compile time? Run scripts/vendor-assets.sh (scripts/env.sh does).
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/vendor/", $file))
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Name in the URL, content type, bytes. Only these names are served.
type Asset = (&'static str, &'static str, &'static [u8]);

static ASSETS: &[Asset] = &[
    ("react.production.min.js", JS, vendored!("react.production.min.js")),
    ("react-dom.production.min.js", JS, vendored!("react-dom.production.min.js")),
    ("graphiql.min.js", JS, vendored!("graphiql.min.js")),
    ("graphiql.min.css", CSS, vendored!("graphiql.min.css")),
];

static LICENSES: &[Asset] = &[
    ("react.txt", TEXT, vendored!("licenses/react.txt")),
    ("react-dom.txt", TEXT, vendored!("licenses/react-dom.txt")),
    ("graphiql.txt", TEXT, vendored!("licenses/graphiql.txt")),
];

/// `package@version integrity` per line, as written by the vendor script.
const VERSIONS: &[u8] = vendored!("VERSIONS");

/// `{v}` is replaced by a tag of the vendored versions, so that browsers
/// holding the (immutable, year-long cached) assets fetch new ones after an
/// upgrade. No host anywhere: every URL is relative to the page's origin.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cip — GraphiQL</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css?v={v}">
<link rel="license" href="/graphql/assets/licenses/graphiql.txt">
<link rel="license" href="/graphql/assets/licenses/react.txt">
<link rel="license" href="/graphql/assets/licenses/react-dom.txt">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphql/assets/react.production.min.js?v={v}"></script>
<script src="/graphql/assets/react-dom.production.min.js?v={v}"></script>
<script src="/graphql/assets/graphiql.min.js?v={v}"></script>
<script>
  // ws: on an http page, wss: on an https one.
  const origin = location.protocol.replace('http', 'ws') + '//' + location.host;
  const fetcher = GraphiQL.createFetcher({ url: '/graphql', subscriptionUrl: origin + '/graphql/ws' });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultHeaders: JSON.stringify({ 'X-API-Key': '' }, null, 2),
      defaultEditorToolsVisibility: 'headers',
    }),
  );
</script>
</body>
</html>
"##;

static HTML: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(VERSIONS);
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    PAGE.replace("{v}", &tag)
});

/// `GET /graphql`: the GraphiQL page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        HTML.as_str(),
    )
        .into_response()
}

/// `GET /graphql/assets/{file}`: a script or stylesheet of the page.
pub async fn asset(Path(file): Path<String>) -> Response {
    serve(ASSETS, &file)
}

/// `GET /graphql/assets/licenses/{file}`: `<package>.txt`.
pub async fn license(Path(file): Path<String>) -> Response {
    serve(LICENSES, &file)
}

/// A file of `table` by exact name; any other name is not found.
fn serve(table: &[Asset], file: &str) -> Response {
    match table.iter().find(|(name, _, _)| *name == file) {
        Some(&(_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT))], "not found\n")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_no_host_and_every_version_tag_is_filled() {
        assert!(!HTML.contains("http:") && !HTML.contains("https:") && !HTML.contains("//unpkg"));
        assert!(!HTML.contains("{v}"));
        assert!(HTML.contains("<div id=\"graphiql\">"));
    }

    #[test]
    fn only_names_from_the_tables_are_served() {
        for name in ["", "..", "../Cargo.toml", "VERSIONS", "graphiql.min.js.map", "licenses/react.txt"] {
            assert_eq!(serve(ASSETS, name).status(), StatusCode::NOT_FOUND, "{name}");
        }
        assert_eq!(serve(ASSETS, "graphiql.min.js").status(), StatusCode::OK);
        assert_eq!(serve(LICENSES, "react.txt").status(), StatusCode::OK);
    }
}
