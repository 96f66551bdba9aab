//! Request hygiene before any work: bodies read only up to their limit,
//! one GraphQL operation per request, queries bounded in bytes and tokens,
//! and the canonical text of a query (its tokens without the insignificant
//! whitespace, commas and comments) that the result cache keys on.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::guard::ApiError;

/// How long a request body may take to arrive.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Limits on a request's size, from the server settings.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_body_bytes: usize,
    pub max_query_bytes: usize,
    pub max_query_tokens: usize,
}

/// The body, refused with 413 as soon as it is known to exceed the limit
/// (from `Content-Length`, or while streaming), never buffered past it.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    // A client that trickles its body does not hold a connection and a
    // buffer for ever.
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(limit)),
        Ok(Err(_)) => Err(ApiError::bad_input("the request body could not be read")),
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            crate::graphql::errors::Code::Timeout,
            format!("the request body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs()),
        )),
    }
}

/// The content type of a `multipart/form-data` request (a GraphQL
/// multipart request, spec: github.com/jaydenseric/graphql-multipart-request-spec).
pub fn multipart_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data").then(|| ct.to_string())
}

/// One GraphQL request from a JSON body; batched arrays are refused (each
/// operation of a batch would otherwise escape the per-request limits).
pub fn graphql_request(body: &[u8], limits: &RequestLimits) -> Result<async_graphql::Request, ApiError> {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &body[i..]).unwrap_or_default();
    if trimmed.first() == Some(&b'[') {
        return Err(ApiError::bad_input("batched operations are not supported: send one operation per request"));
    }
    let request: async_graphql::Request = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_input(r#"the body must be JSON: {"query": "…", "operationName": …, "variables": {…}}"#)
    })?;
    check_query(&request.query, limits)?;
    Ok(request)
}

/// `BAD_INPUT` for a query over the configured length or token count.
pub fn check_query(query: &str, limits: &RequestLimits) -> Result<(), ApiError> {
    if query.len() > limits.max_query_bytes {
        return Err(ApiError::bad_input(format!("query over {} bytes", limits.max_query_bytes)));
    }
    if tokens(query).count() > limits.max_query_tokens {
        return Err(ApiError::bad_input(format!("query over {} tokens", limits.max_query_tokens)));
    }
    Ok(())
}

/// The query's tokens joined by one separator: two texts that differ only in
/// whitespace, commas or comments (insignificant in GraphQL) give the same
/// canonical text; a difference inside a string literal does not vanish.
pub fn canonical(query: &str) -> String {
    // Length-prefixed tokens: no character inside a token can pass for a
    // boundary between two.
    let mut out = String::with_capacity(query.len() + 8);
    for t in tokens(query) {
        out.push_str(&t.len().to_string());
        out.push(':');
        out.push_str(t);
    }
    out
}

/// The lexical tokens of a GraphQL document (spec §2.1): punctuators, names,
/// numbers and strings (block strings included) verbatim; whitespace, line
/// terminators, commas, the BOM and comments skipped. Names and numbers are
/// runs of the remaining characters, which is all a canonical form needs.
pub fn tokens(src: &str) -> impl Iterator<Item = &str> {
    let bytes = src.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        loop {
            let rest = &src[i..];
            let c = rest.chars().next()?;
            match c {
                ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => i += c.len_utf8(),
                '#' => i += rest.find(['\n', '\r']).unwrap_or(rest.len()),
                _ => break,
            }
        }
        let start = i;
        let rest = &src[i..];
        if rest.starts_with("\"\"\"") {
            // Block string: up to the closing `"""` not escaped as `\"""`.
            let mut j = 3;
            loop {
                match rest[j..].find("\"\"\"") {
                    Some(k) if rest[..j + k].ends_with('\\') => j += k + 3,
                    Some(k) => break j += k + 3,
                    None => break j = rest.len(),
                }
            }
            i += j;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match bytes[start + j] {
                    b'\\' => j += 2,
                    b'"' => {
                        j += 1;
                        break;
                    }
                    b'\n' | b'\r' => break,
                    _ => j += 1,
                }
            }
            i += j.min(rest.len());
        } else if rest.starts_with("...") {
            i += 3;
        } else if rest.starts_with(['!', '$', '&', '(', ')', ':', '=', '@', '[', ']', '{', '|', '}']) {
            i += 1;
        } else {
            let end = rest
                .find(|c: char| {
                    matches!(c, ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' | '#' | '"') || "!$&():=@[]{|}".contains(c)
                })
                .unwrap_or(rest.len());
            i += end.max(rest.chars().next().map_or(1, char::len_utf8));
        }
        Some(&src[start..i])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_skip_what_graphql_ignores_and_keep_strings_whole() {
        let q = "query Q($a: Int = 1, $b: [String!]) {\n  x(s: \"a  b\", t: \"\"\"blk \\\"\"\" end\"\"\") # note\n { ...F } }";
        let t: Vec<&str> = tokens(q).collect();
        assert_eq!(
            t,
            [
                "query",
                "Q",
                "(",
                "$",
                "a",
                ":",
                "Int",
                "=",
                "1",
                "$",
                "b",
                ":",
                "[",
                "String",
                "!",
                "]",
                ")",
                "{",
                "x",
                "(",
                "s",
                ":",
                "\"a  b\"",
                "t",
                ":",
                "\"\"\"blk \\\"\"\" end\"\"\"",
                ")",
                "{",
                "...",
                "F",
                "}",
                "}"
            ]
        );
        assert_eq!(tokens("").count(), 0);
        assert_eq!(tokens("  # only a comment").count(), 0);
        // An unterminated string ends the token at the end of the text.
        assert_eq!(tokens("x \"abc").collect::<Vec<_>>(), ["x", "\"abc"]);
        assert_eq!(tokens("{ a(s: \"é\") }").collect::<Vec<_>>(), ["{", "a", "(", "s", ":", "\"é\"", ")", "}"]);
    }

    #[test]
    fn canonical_text_ignores_layout_but_not_literals() {
        let a = canonical("{ agency(id: \"G1\") { name } }");
        let b = canonical("{agency(id:\"G1\"){name}}  # same, packed\n");
        let c = canonical("{ agency(id: \"G1 \") { name } }");
        let d = canonical("{ agency(id: \"G1\"), { name } }");
        assert_eq!(a, b);
        assert_eq!(a, d, "commas are insignificant");
        assert_ne!(a, c, "a space inside a literal is data");
        assert_ne!(canonical("{ a(s: \"x  y\") }"), canonical("{ a(s: \"x y\") }"));
    }

    #[test]
    fn query_limits_count_bytes_and_tokens() {
        let limits = RequestLimits { max_body_bytes: 1 << 20, max_query_bytes: 40, max_query_tokens: 6 };
        assert!(check_query("{ a { b } }", &limits).is_ok()); // 6 tokens
        let e = check_query("{ a { b c } }", &limits).unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("BAD_INPUT", "query over 6 tokens"));
        let e = check_query(&format!("{{ a(s: \"{}\") }}", "x".repeat(40)), &limits).unwrap_err();
        assert_eq!(e.message, "query over 40 bytes");
        let e = graphql_request(br#" [{"query": "{ a }"}]"#, &limits).unwrap_err();
        assert_eq!(e.code.as_str(), "BAD_INPUT");
        assert!(e.message.starts_with("batched operations are not supported"), "{}", e.message);
        let r = graphql_request(br#"{"query": "{ a }", "operationName": null}"#, &limits).unwrap();
        assert_eq!(r.query, "{ a }");
    }
}
