//! GraphiQL works with no internet: the page on `GET /graphql` names no host,
//! and every script, stylesheet and licence it links is served by the binary
//! itself, byte for byte the files scripts/vendor-assets.sh put in
//! assets/vendor/.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::serve::TestApp;

/// Every `src="…"` and `href="…"` value of `html`, scripts first.
fn linked_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attr in [" src=\"", " href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("an attribute value ends with a quote");
            urls.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    urls
}

fn vendor_dir() -> PathBuf {
    crate::helpers::project_dir().join("assets/vendor")
}

/// The status line of a GET of `target` sent as is: reqwest would resolve
/// `..` segments before sending them.
async fn raw_get_status(app: &TestApp, target: &str) -> String {
    let addr = app.url.trim_start_matches("http://").to_string();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.lines().next().unwrap_or_default().to_string()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn graphiql_page_loads_only_assets_served_by_the_binary() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();

    let resp = client.get(format!("{}/graphql", app.url)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<div id="graphiql">"#), "{html}");
    assert!(html.contains("X-API-Key"), "the headers editor is pre-filled: {html}");
    for scheme in ["http:", "https:"] {
        assert!(!html.to_ascii_lowercase().contains(scheme), "the page names a host ({scheme}): {html}");
    }

    let urls = linked_urls(&html);
    let path_of = |url: &str| url.split('?').next().unwrap().to_string();
    assert!(urls.iter().any(|u| path_of(u).ends_with(".js")), "no script in {urls:?}");
    assert!(urls.iter().any(|u| path_of(u).ends_with(".css")), "no stylesheet in {urls:?}");
    assert!(html.contains("/graphql/assets/graphiql.min.js"), "{urls:?}");

    for url in &urls {
        assert!(url.starts_with('/') && !url.starts_with("//") && !url.contains(':'), "not a same-host path: {url}");
        let path = path_of(url);
        let name = path.strip_prefix("/graphql/assets/").unwrap_or_else(|| panic!("not under /graphql/assets/: {url}"));
        let (content_type, min_len) = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") if name == "graphiql.min.js" => ("text/javascript", 100_000),
            Some("js") => ("text/javascript", 10_000),
            Some("css") => ("text/css", 10_000),
            Some("txt") => ("text/plain", 500),
            _ => panic!("unexpected asset {url}"),
        };

        let resp = client.get(format!("{}{url}", app.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let headers = resp.headers().clone();
        let got = headers["content-type"].to_str().unwrap();
        assert!(got.starts_with(content_type), "{url}: content-type {got}");
        assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable", "{url}");
        let body = resp.bytes().await.unwrap();
        assert!(body.len() > min_len, "{url}: {} bytes", body.len());
        let file = std::fs::read(vendor_dir().join(name)).unwrap();
        assert!(body.starts_with(&file[..4096.min(file.len())]), "{url} is not assets/vendor/{name}");
        assert_eq!(body.len(), file.len(), "{url} is not assets/vendor/{name}");
    }

    // Sent as is, not resolved by the client.
    let status = raw_get_status(&app, "/graphql/assets/../Cargo.toml").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    for path in [
        "/graphql/assets/../Cargo.toml",
        "/graphql/assets/..%2FCargo.toml",
        "/graphql/assets/%2E%2E%2F%2E%2E%2FCargo.toml",
        "/graphql/assets/licenses/..%2F..%2FCargo.toml",
        "/graphql/assets/unknown.js",
        "/graphql/assets/VERSIONS",
        "/graphql/assets/graphiql.min.js.map",
        "/graphql/assets/licenses/unknown.txt",
    ] {
        let (status, _) = app.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
}
