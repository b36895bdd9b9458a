//! Pages of lists: sizes within bounds and opaque tokens bound to the
//! query they continue.

use crate::AppError;
use crate::command::{fingerprint, hex};

/// The `page_size` of a request that leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest `page_size`; larger requests are reduced to it.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size a request asks for, within bounds.
pub fn page_size(requested: i32) -> Result<u32, AppError> {
    match requested {
        n if n < 0 => Err(AppError::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// A page token: opaque to clients; it binds the position to the query, so
/// that a token used with other filters is refused.
pub fn encode_page_token(query_key: &str, after: &str) -> String {
    let tag = &fingerprint("page", query_key.as_bytes())[..16];
    hex(format!("{tag}:{after}").as_bytes())
}

/// The position a page token continues after; `None` for the first page.
pub fn decode_page_token(token: &str, query_key: &str) -> Result<Option<String>, AppError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        AppError::invalid(
            "page_token",
            "pass the next_page_token of the previous page unchanged, with the same filters",
        )
    };
    if !token.len().is_multiple_of(2) || token.len() > 1024 {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (tag, after) = text.split_once(':').ok_or_else(invalid)?;
    if tag != &fingerprint("page", query_key.as_bytes())[..16] {
        return Err(invalid());
    }
    Ok(Some(after.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_query() {
        let token = encode_page_token("Dispute|a", "case-9");
        assert_eq!(
            decode_page_token(&token, "Dispute|a").unwrap().as_deref(),
            Some("case-9")
        );
        assert!(decode_page_token(&token, "Dispute|b").is_err());
        assert!(decode_page_token("zz", "Dispute|a").is_err());
        assert_eq!(decode_page_token("", "x").unwrap(), None);
    }

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5).unwrap(), 5);
        assert_eq!(page_size(50_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
