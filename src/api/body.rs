//! Reading a JSON request body: content type checked, size bounded while it streams in
//! (a client cannot make us buffer more than the limit, with or without
//! Content-Length), syntax errors told apart from wrong fields.

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::error::ApiError;

/// Largest request body accepted. A job with a 64 KiB customer_info and 16 KiB of
/// notes is well under it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// Extracts the body as `T`. Refuses: a non-JSON content type (415), a body over the
/// limit (413), malformed JSON (400), unknown fields or wrong types (422).
pub fn json<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(|ct: Option<String>, len: Option<u64>, body| async move {
            let is_json = ct
                .as_deref()
                .and_then(|c| c.split(';').next())
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                )
                .reject());
            }
            if len.is_some_and(|l| l > MAX_BODY_BYTES as u64) {
                return Err(too_large().reject());
            }
            let bytes = collect(body).await.map_err(ApiError::reject)?;
            parse::<T>(&bytes).map_err(ApiError::reject)
        })
}

async fn collect<S, B>(body: S) -> Result<BytesMut, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut out = BytesMut::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "bad_body",
                format!("the request body could not be read: {e}"),
            )
        })?;
        if out.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let c = chunk.chunk();
            out.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Every body this API takes is a JSON object. serde would also fill a struct from an
/// array (`[null, null]` was taken as an empty job edit), so anything else is refused.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::unprocessable(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                ApiError::unprocessable(format!("the request body does not fit: {e}"))
            }
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {e}"),
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Patch {
        a: Option<u32>,
        b: Option<u32>,
    }

    #[test]
    fn only_an_object_is_a_body() {
        assert!(parse::<Patch>(br#" {"a": 1} "#).is_ok());
        for (body, status) in [
            (&b"[null, null]"[..], StatusCode::UNPROCESSABLE_ENTITY),
            (b"[1, 2]", StatusCode::UNPROCESSABLE_ENTITY),
            (b"null", StatusCode::UNPROCESSABLE_ENTITY),
            (b"7", StatusCode::UNPROCESSABLE_ENTITY),
            (b"[1, 2", StatusCode::BAD_REQUEST),
            (b"", StatusCode::BAD_REQUEST),
        ] {
            let e = parse::<Patch>(body).unwrap_err();
            assert_eq!(e.status, status, "{}", String::from_utf8_lossy(body));
        }
    }
}
