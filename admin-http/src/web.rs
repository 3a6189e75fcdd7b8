//! The browser client (docs/web-client.md): static files served at `/` (the page) and
//! `/app/{name}` (its scripts, style sheet and icon), embedded in the binary.
//!
//! The client is plain HTML, CSS and JavaScript modules written by hand in `admin-http/web/`;
//! there is no build step, and nothing here knows what the client does. It talks to the server
//! through the public surface every client uses: the WebSocket fallback (`/ws`, JSON frames)
//! for the session and the files routes (`/im/v1/files`) for image bytes. So this module holds
//! no feature logic, only bytes, types and caching headers.
//!
//! Caching: every file carries a strong `ETag` (a 64-bit FNV-1a hash of its bytes, computed at
//! compile time) and `Cache-Control: no-cache`, so browsers revalidate on each load and get a
//! `304` while the binary is unchanged: a new server version is picked up at once without
//! hashed file names (module scripts import each other by plain relative names).
//!
//! Security: the page is served with a Content-Security-Policy that allows scripts, styles and
//! connections only from the server's own origin and images only from it and from `blob:` URLs
//! (images are fetched with the bearer token and shown as blobs), and may not be framed. The
//! client writes user content with `textContent`, never as HTML.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The path prefix of the client's assets (the page itself is `/`).
pub const ASSET_PREFIX: &str = "/app";

/// The Content-Security-Policy of the page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    hash: u64,
}

/// 64-bit FNV-1a: enough to tell versions of a file apart (it is not a security boundary).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../web/", $name)),
            hash: fnv1a(include_bytes!(concat!("../web/", $name))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page, served at `/`.
const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Everything under `/app/`.
const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("conn.js", JS),
    asset!("model.js", JS),
    asset!("view.js", JS),
    asset!("files.js", JS),
    asset!("wire.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The client's routes: `GET /` and `GET /app/{name}` (and `HEAD` of both).
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route(&format!("{ASSET_PREFIX}/{{name}}"), get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let mut response = serve(&INDEX, &headers);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// The file, or `304` when the browser's copy (`If-None-Match`) is current.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        [(header::CONTENT_TYPE, asset.content_type.to_owned())],
        common,
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(app: Router, path: &str, etag: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = etag {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is set"))
            .to_str()
            .unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn the_page_is_html_with_its_policy() {
        let res = get(router(), "/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert!(header_of(&res, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
        assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
        let page = String::from_utf8(body(res).await).unwrap();
        assert!(page.contains(r#"<script type="module" src="/app/app.js">"#));
    }

    #[tokio::test]
    async fn assets_have_their_types_and_revalidate() {
        let res = get(router(), "/app/app.js", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header_of(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let etag = header_of(&res, header::ETAG).to_owned();
        assert_eq!(body(res).await, include_bytes!("../web/app.js"));

        let res = get(router(), "/app/style.css", None).await;
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        assert_ne!(header_of(&res, header::ETAG), etag, "each file its own tag");

        let res = get(router(), "/app/app.js", Some(&etag)).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(body(res).await.is_empty());
        let res = get(router(), "/app/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_assets_are_404() {
        for path in [
            "/app/nope.js",
            "/app/",
            "/app/../Cargo.toml",
            "/app/%2e%2e%2fsrc%2flib.rs",
            "/app/index.html/x",
        ] {
            let res = get(router(), path, None).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    /// Every module the page or a module imports is embedded (a missing one would only show
    /// in a browser).
    #[test]
    fn every_imported_module_is_embedded() {
        let mut sources = vec![std::str::from_utf8(INDEX.bytes).unwrap()];
        sources.extend(
            ASSETS
                .iter()
                .filter(|a| a.name.ends_with(".js"))
                .map(|a| std::str::from_utf8(a.bytes).unwrap()),
        );
        let mut imported = Vec::new();
        for source in sources {
            for quote in ["'./", "\"./", "\"/app/"] {
                for piece in source.split(quote).skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                        .collect();
                    if name.ends_with(".js") || name.ends_with(".css") || name.ends_with(".svg") {
                        imported.push(name);
                    }
                }
            }
        }
        assert!(imported.len() >= ASSETS.len() - 1, "found {imported:?}");
        for name in imported {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{name} is referenced but not embedded"
            );
        }
    }
}
