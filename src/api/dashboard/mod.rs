//! The built-in dashboard: a few static files compiled into the binary and served at
//! `/` and `/assets/{file}`.
//!
//! The dashboard is plain HTML, CSS and JavaScript modules with no framework and nothing
//! fetched from elsewhere, so it works on a farm network with no internet. It talks to
//! the daemon only through the public REST API and `/ws`, which makes it the reference
//! client for anyone building their own.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles only from
//! this origin, no inline code) and an ETag; `cache-control: no-cache` makes browsers
//! revalidate, so an upgraded daemon never serves a stale mix of old and new modules
//! while an unchanged file costs a 304.

use std::sync::LazyLock;

use warp::http::{HeaderValue, Response, StatusCode, header};
use warp::{Filter, Rejection, Reply};

/// Scripts, styles, images and connections from this origin only (`connect-src 'self'`
/// covers `ws://` to the same host); nothing may frame the page or submit it elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page itself, served at `/`.
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("index.html"),
};

/// Everything under `/assets/`. A name not listed here is a 404.
const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("icon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("api.js"),
    },
    Asset {
        name: "live.js",
        content_type: JS,
        body: include_str!("live.js"),
    },
    Asset {
        name: "format.js",
        content_type: JS,
        body: include_str!("format.js"),
    },
    Asset {
        name: "printers.js",
        content_type: JS,
        body: include_str!("printers.js"),
    },
    Asset {
        name: "jobs.js",
        content_type: JS,
        body: include_str!("jobs.js"),
    },
    Asset {
        name: "keys.js",
        content_type: JS,
        body: include_str!("keys.js"),
    },
    Asset {
        name: "settings.js",
        content_type: JS,
        body: include_str!("settings.js"),
    },
    Asset {
        name: "toast.js",
        content_type: JS,
        body: include_str!("toast.js"),
    },
    Asset {
        name: "printer-table.js",
        content_type: JS,
        body: include_str!("printer-table.js"),
    },
    Asset {
        name: "stats.js",
        content_type: JS,
        body: include_str!("stats.js"),
    },
    Asset {
        name: "export.js",
        content_type: JS,
        body: include_str!("export.js"),
    },
];

/// ETags of every file, computed once: FNV-1a of the content. The files never change
/// while the binary runs, so a hash of each is all a validator needs.
static ETAGS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS)
        .map(|a| (a.name, format!("\"{:016x}\"", fnv1a(a.body.as_bytes()))))
        .collect()
});

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn etag(name: &str) -> &'static str {
    ETAGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| e.as_str())
        .unwrap_or("\"0\"")
}

/// `GET /` and `GET /assets/{file}`.
pub fn routes() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|inm: Option<String>| serve(&INDEX, inm));
    let asset = warp::path!("assets" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(|name: String, inm: Option<String>| async move {
            ASSETS
                .iter()
                .find(|a| a.name == name)
                .map(|a| serve(a, inm))
                .ok_or_else(warp::reject::not_found)
        });
    index.or(asset).unify()
}

fn serve(asset: &Asset, if_none_match: Option<String>) -> Response<&'static [u8]> {
    let tag = etag(asset.name);
    let fresh = if_none_match
        .as_deref()
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut res = if fresh {
        let mut r = Response::new(&b""[..]);
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(asset.body.as_bytes());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

// The HTTP side (types, policy, ETags, 404s) is tested against the real binary in
// tests/dashboard.rs; here, only what needs the file list.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_refers_to_is_served() {
        // Each `/assets/x` reference and each `./x.js` import must name a served file.
        for a in std::iter::once(&INDEX).chain(ASSETS) {
            for part in a.body.split(['"', '\'']) {
                let name = part
                    .strip_prefix("/assets/")
                    .or_else(|| part.strip_prefix("./").filter(|p| p.ends_with(".js")));
                if let Some(name) = name {
                    assert!(
                        ASSETS.iter().any(|x| x.name == name),
                        "{} refers to {name}, which is not served",
                        a.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The Content-Security-Policy forbids both; they would silently not run.
        let page = INDEX.body;
        assert!(!page.contains("<script>"), "inline <script>");
        assert!(!page.contains("<style"), "inline <style>");
        assert!(!page.contains(" style="), "style attribute");
        let handler = page.split(" on").skip(1).find(|rest| {
            let word: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !word.is_empty() && rest[word.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler: on{handler:?}");
        for s in page.split("<script").skip(1) {
            assert!(s.contains("src="), "script without src: {s}");
        }
    }

    #[test]
    fn etags_differ_per_file_and_are_quoted() {
        let tags: std::collections::HashSet<_> = ETAGS.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(tags.len(), ASSETS.len() + 1);
        assert!(etag("app.js").starts_with('"') && etag("app.js").ends_with('"'));
    }
}
